//! `sfjira-jira-source`: publishes Jira webhooks and JQL polls to Kafka (issue #6).
//! `main` wires config → telemetry → health endpoint → [`service::start`] and waits for
//! SIGINT/SIGTERM. A `kill -9` loses nothing: see `webhook.rs` and `state.rs`.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use clap::Parser;
use futures::future::BoxFuture;
use sfjira_core::config;
use sfjira_core::health::{
    HealthServer, KafkaReachable, ReadinessCheck, RegistryReachable, install_metrics_recorder,
};
use sfjira_core::kafka::client_config;
use sfjira_core::service::StopSignal;
use sfjira_jira_source::publisher::Publisher;
use sfjira_jira_source::service;

#[derive(Parser)]
#[command(
    name = "sfjira-jira-source",
    version,
    about = "Publishes Jira webhooks and JQL polls to Kafka, exactly once."
)]
struct Args {
    /// The deployment configuration; its `jira_source` section says where Jira is.
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
            eprintln!("sfjira-jira-source: {e}");
            return ExitCode::from(2);
        }
    };
    if cfg.jira_source.is_none() {
        eprintln!(
            "sfjira-jira-source: the configuration has no `jira_source` section; see docs/configuration.md"
        );
        return ExitCode::from(2);
    }
    let _telemetry = match sfjira_core::telemetry::init(
        "sfjira-jira-source",
        cfg.telemetry.log_format,
        &cfg.telemetry.log_level,
    ) {
        Ok(g) => g,
        Err(e) => {
            eprintln!("sfjira-jira-source: telemetry: {e:#}");
            return ExitCode::from(2);
        }
    };
    match run(cfg).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{e:#}");
            eprintln!("sfjira-jira-source: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(cfg: config::SfjiraConfig) -> anyhow::Result<()> {
    let metrics = install_metrics_recorder()?;
    let signal = StopSignal::listen(Duration::from_secs(cfg.service.stop_grace_secs));
    let running = signal.bound(service::start(&cfg)).await?;
    let checks: Vec<Arc<dyn ReadinessCheck>> = vec![
        Arc::new(KafkaReachable::new(&client_config(&cfg.kafka))?),
        Arc::new(RegistryReachable::new(&cfg.registry.url)?),
        Arc::new(PublisherReady(running.publisher.clone())),
    ];
    let health = HealthServer::bind(cfg.http.listen, checks, metrics).await?;
    tracing::info!(listen = %health.local_addr(), "health and metrics endpoint up");
    let (stop_health, health_stopped) = tokio::sync::oneshot::channel::<()>();
    let health_task = tokio::spawn(health.serve(async {
        let _ = health_stopped.await;
    }));

    tracing::info!("jira-source running");
    signal.shutdown().await;
    signal.bound(running.stop()).await;
    tracing::info!("stopped");
    let _ = stop_health.send(());
    let _ = health_task.await;
    Ok(())
}

/// Ready once the transactional producer is up and the checkpoint state is loaded: until then
/// webhooks get 503.
struct PublisherReady(Arc<Publisher>);

impl ReadinessCheck for PublisherReady {
    fn name(&self) -> &str {
        "publisher"
    }
    fn check(&self) -> BoxFuture<'_, Result<(), String>> {
        Box::pin(async move {
            if self.0.is_ready().await {
                Ok(())
            } else {
                Err(
                    "not connected to Kafka yet (transactions initialising or checkpoints loading)"
                        .into(),
                )
            }
        })
    }
}
