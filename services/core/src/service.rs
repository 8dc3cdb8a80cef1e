//! What every sfjira service binary does around its own work, in one place: load and validate
//! the configuration (exit 2 naming the key), require the service's own section, start
//! telemetry, serve `/healthz`, `/readyz` (Kafka and the registry reachable) and `/metrics`, run
//! the service until SIGINT/SIGTERM, then stop the health endpoint. A service's `main` is then
//! one call, so a fix to start-up or shutdown lands in every service at once.

use std::future::Future;
use std::path::Path;
use std::pin::Pin;
use std::process::ExitCode;
use std::sync::Arc;

use crate::config::{self, SfjiraConfig};
use crate::health::{
    HealthServer, KafkaReachable, ReadinessCheck, RegistryReachable, install_metrics_recorder,
};
use crate::kafka::client_config;

/// Resolves when the process is asked to stop (SIGINT or SIGTERM).
pub type Shutdown = Pin<Box<dyn Future<Output = ()> + Send>>;

/// Runs the service `name` (e.g. `sfjira-jira-sink`) whose configuration section is `section`
/// (`has_section` says whether the loaded configuration has it). `body` gets the configuration
/// and the shutdown signal and returns when the service has stopped.
pub async fn run<F, Fut>(
    name: &'static str,
    config_path: &Path,
    section: &str,
    has_section: fn(&SfjiraConfig) -> bool,
    body: F,
) -> ExitCode
where
    F: FnOnce(SfjiraConfig, Shutdown) -> Fut,
    Fut: Future<Output = anyhow::Result<()>>,
{
    let cfg = match config::load(Some(config_path)) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("{name}: {e}");
            return ExitCode::from(2);
        }
    };
    if !has_section(&cfg) {
        eprintln!(
            "{name}: the configuration has no `{section}` section; see docs/configuration.md"
        );
        return ExitCode::from(2);
    }
    let _telemetry =
        match crate::telemetry::init(name, cfg.telemetry.log_format, &cfg.telemetry.log_level) {
            Ok(g) => g,
            Err(e) => {
                eprintln!("{name}: telemetry: {e:#}");
                return ExitCode::from(2);
            }
        };
    match with_health(cfg, body).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{e:#}");
            eprintln!("{name}: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn with_health<F, Fut>(cfg: SfjiraConfig, body: F) -> anyhow::Result<()>
where
    F: FnOnce(SfjiraConfig, Shutdown) -> Fut,
    Fut: Future<Output = anyhow::Result<()>>,
{
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
    let result = body(cfg, Box::pin(shutdown_signal())).await;
    let _ = stop_health.send(());
    let _ = health_task.await;
    result
}

/// SIGINT or SIGTERM.
pub async fn shutdown_signal() {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .expect("SIGTERM handler");
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
}
