//! What every sfjira service binary does around its own work, in one place: load and validate
//! the configuration (exit 2 naming the key), require the service's own section, start
//! telemetry, serve `/healthz`, `/readyz` (Kafka and the registry reachable) and `/metrics`, run
//! the service until SIGINT/SIGTERM, then stop the health endpoint. A service's `main` is then
//! one call, so a fix to start-up or shutdown lands in every service at once.
//!
//! Stopping is bounded ([`StopSignal`]): a service still stopping `service.stop_grace_secs`
//! after the signal — a Kafka call waiting for brokers that are gone — is ended with status 1
//! rather than left for the orchestrator's SIGKILL. Every stage is safe to end so (nothing
//! uncommitted is lost: it is read again), and an error saying why beats a silent kill.

use std::future::Future;
use std::path::Path;
use std::pin::Pin;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;

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
    let signal = StopSignal::listen(Duration::from_secs(cfg.service.stop_grace_secs));
    let result = signal.bound(body(cfg, signal.shutdown())).await;
    let _ = stop_health.send(());
    let _ = health_task.await;
    result
}

/// SIGINT or SIGTERM, listened for from the start (on a task of its own, so a service busy in
/// a long call still hears it), and the grace period that follows it.
pub struct StopSignal {
    received: watch::Receiver<bool>,
    grace: Duration,
}

impl StopSignal {
    /// Starts listening; a service then runs under [`StopSignal::bound`].
    pub fn listen(grace: Duration) -> StopSignal {
        let (tx, received) = watch::channel(false);
        tokio::spawn(async move {
            shutdown_signal().await;
            tracing::info!(
                grace_secs = grace.as_secs(),
                "stop requested; finishing the batch in hand"
            );
            let _ = tx.send(true);
        });
        StopSignal { received, grace }
    }

    /// Resolves when the signal has come: what a service's run loop selects on.
    pub fn shutdown(&self) -> Shutdown {
        Box::pin(self.received())
    }

    /// Resolves when the signal has come. The sender lives until the signal: an error means
    /// the signal task is gone, and the service is left to run.
    fn received(&self) -> impl Future<Output = ()> + Send + 'static {
        let mut received = self.received.clone();
        async move {
            if received.wait_for(|r| *r).await.is_err() {
                std::future::pending::<()>().await;
            }
        }
    }

    /// Runs `service` to its end; if it is still running the grace period after the signal,
    /// logs why and ends the process with status 1 — without waiting for the calls still in
    /// flight (tokio's runtime would, when dropped, wait for its blocking Kafka calls).
    pub async fn bound<T>(&self, service: impl Future<Output = T>) -> T {
        let grace = self.grace;
        let received = self.received();
        let overdue = async move {
            received.await;
            tokio::time::sleep(grace).await;
        };
        tokio::select! {
            out = service => out,
            () = overdue => {
                let why = format!(
                    "still stopping {} s after the stop signal (a Kafka or API call waiting on a \
                     peer that is gone?); exiting now — what was not committed is read again by \
                     the next instance (service.stop_grace_secs)",
                    grace.as_secs()
                );
                tracing::error!("{why}");
                eprintln!("{why}");
                std::process::exit(1);
            }
        }
    }
}

/// SIGINT or SIGTERM.
async fn shutdown_signal() {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .expect("SIGTERM handler");
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
}
