//! `sfjira-jira-sink`: applies `jira.commands` to Jira (issue #8). `main` wires config →
//! telemetry → health endpoint → [`service::build`] and runs until SIGINT/SIGTERM; the batch in
//! hand is committed first. A `kill -9` loses and duplicates nothing: see docs/jira-sink.md.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use clap::Parser;
use sfjira_core::config;
use sfjira_core::health::{
    HealthServer, KafkaReachable, ReadinessCheck, RegistryReachable, install_metrics_recorder,
};
use sfjira_core::kafka::client_config;
use sfjira_jira_sink::service;

#[derive(Parser)]
#[command(
    name = "sfjira-jira-sink",
    version,
    about = "Applies jira.commands to Jira without duplicates."
)]
struct Args {
    /// The deployment configuration; its `jira_sink` section says where Jira is.
    #[arg(
        long,
        short,
        env = "SFJIRA_CONFIG",
        default_value = "config/sfjira.yaml"
    )]
    config: PathBuf,
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = Args::parse();
    let cfg = match config::load(Some(&args.config)) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("sfjira-jira-sink: {e}");
            return ExitCode::from(2);
        }
    };
    if cfg.jira_sink.is_none() {
        eprintln!(
            "sfjira-jira-sink: the configuration has no `jira_sink` section; see docs/configuration.md"
        );
        return ExitCode::from(2);
    }
    let _telemetry = match sfjira_core::telemetry::init(
        "sfjira-jira-sink",
        cfg.telemetry.log_format,
        &cfg.telemetry.log_level,
    ) {
        Ok(g) => g,
        Err(e) => {
            eprintln!("sfjira-jira-sink: telemetry: {e:#}");
            return ExitCode::from(2);
        }
    };
    match run(cfg).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{e:#}");
            eprintln!("sfjira-jira-sink: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(cfg: config::SfjiraConfig) -> anyhow::Result<()> {
    let metrics = install_metrics_recorder()?;
    let checks: Vec<Arc<dyn ReadinessCheck>> = vec![
        Arc::new(KafkaReachable::new(&client_config(&cfg.kafka))?),
        Arc::new(RegistryReachable::new(&cfg.registry.url)?),
    ];
    let health = HealthServer::bind(cfg.http.listen, checks, metrics).await?;
    tracing::info!(listen = %health.local_addr(), "health and metrics endpoint up");
    let (stop_health, health_stopped) = tokio::sync::oneshot::channel::<()>();
    let health_task = tokio::spawn(health.serve(async {
        let _ = health_stopped.await;
    }));
    let runtime = service::build(&cfg).await?;
    tracing::info!("jira-sink running");
    let summary = runtime.run(shutdown_signal()).await?;
    tracing::info!(
        batches = summary.batches,
        commands = summary.commands,
        "stopped"
    );
    let _ = stop_health.send(());
    let _ = health_task.await;
    Ok(())
}

async fn shutdown_signal() {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .expect("SIGTERM handler");
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
}
