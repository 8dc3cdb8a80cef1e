//! `sfjira-salesforce-source`: publishes Salesforce Change Data Capture to Kafka.
//! `main` wires config → telemetry → health endpoint → [`runtime::run`] and waits for
//! SIGINT/SIGTERM; the open Kafka transaction is aborted on the way out (the next start
//! resumes after the last committed position).

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use clap::Parser;
use sfjira_core::config;
use sfjira_core::health::{
    HealthServer, KafkaReachable, ReadinessCheck, RegistryReachable, install_metrics_recorder,
};
use sfjira_core::kafka::client_config;
use sfjira_salesforce_source::runtime;

#[derive(Parser)]
#[command(
    name = "sfjira-salesforce-source",
    version,
    about = "Publishes Salesforce Change Data Capture to Kafka, exactly once."
)]
struct Args {
    /// The deployment configuration; its `salesforce_source` section names the org and channels.
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
            eprintln!("sfjira-salesforce-source: {e}");
            return ExitCode::from(2);
        }
    };
    if cfg.salesforce_source.is_none() {
        eprintln!(
            "sfjira-salesforce-source: {} has no salesforce_source section (see docs/configuration.md)",
            args.config.display()
        );
        return ExitCode::from(2);
    }
    let _telemetry = match sfjira_core::telemetry::init(
        "sfjira-salesforce-source",
        cfg.telemetry.log_format,
        &cfg.telemetry.log_level,
    ) {
        Ok(g) => g,
        Err(e) => {
            eprintln!("sfjira-salesforce-source: telemetry: {e:#}");
            return ExitCode::from(2);
        }
    };
    match run(cfg).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{e:#}");
            eprintln!("sfjira-salesforce-source: {e:#}");
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
    tracing::info!("salesforce-source running");
    let result = runtime::run(&cfg, shutdown_signal()).await;
    tracing::info!("stopped");
    let _ = stop_health.send(());
    let _ = health_task.await;
    result
}

async fn shutdown_signal() {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .expect("SIGTERM handler");
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
}
