//! `sfjira-salesforce-sink`: applies `salesforce.commands` to Salesforce (issue #9).
//! `main` wires config → telemetry → health endpoint → [`runtime::run`] and waits for
//! SIGINT/SIGTERM; held batched commands are applied and committed before it exits.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use clap::Parser;
use sfjira_core::config;
use sfjira_core::health::{
    HealthServer, KafkaReachable, ReadinessCheck, RegistryReachable, install_metrics_recorder,
};
use sfjira_core::kafka::client_config;
use sfjira_salesforce_sink::runtime;

#[derive(Parser)]
#[command(
    name = "sfjira-salesforce-sink",
    version,
    about = "Applies salesforce.commands to a Salesforce org in sObject Collections batches."
)]
struct Args {
    /// The deployment configuration; its `salesforce_sink` section says which org.
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
            eprintln!("sfjira-salesforce-sink: {e}");
            return ExitCode::from(2);
        }
    };
    if cfg.salesforce_sink.is_none() {
        eprintln!(
            "sfjira-salesforce-sink: the configuration has no `salesforce_sink` section; see docs/configuration.md"
        );
        return ExitCode::from(2);
    }
    let _telemetry = match sfjira_core::telemetry::init(
        "sfjira-salesforce-sink",
        cfg.telemetry.log_format,
        &cfg.telemetry.log_level,
    ) {
        Ok(g) => g,
        Err(e) => {
            eprintln!("sfjira-salesforce-sink: telemetry: {e:#}");
            return ExitCode::from(2);
        }
    };
    match run(cfg).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{e:#}");
            eprintln!("sfjira-salesforce-sink: {e:#}");
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
    let summary = runtime::run(&cfg, shutdown_signal()).await?;
    tracing::info!(?summary, "stopped");
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
