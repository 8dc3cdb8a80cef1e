//! The operational HTTP endpoints every sfjira service serves on one port (`http.listen`):
//!
//! - `GET /healthz`: liveness, `200 ok` for as long as the process can answer at all. It checks
//!   nothing else on purpose: an orchestrator restarts a container that fails liveness, and a
//!   restart does not bring Kafka back.
//! - `GET /readyz`: readiness, every [`ReadinessCheck`] run concurrently under a timeout;
//!   `200` with `{"kafka":"ok","registry":"ok"}` when all pass, `503` with the failing checks'
//!   error text in place of `"ok"` otherwise. Results are cached for a second, and only one run
//!   is in flight at a time, so an eager scraper cannot turn into load on Kafka.
//! - `GET /metrics`: everything recorded through the `metrics` crate (see
//!   `telemetry::events`), in the Prometheus text format.
//!
//! Conditions only a watchdog sees over time (a consumer group whose offsets cannot be fetched)
//! are raised and cleared by their owner through [`runtime_conditions`]; `/readyz` reports each
//! raised one as a failed check.
//!
//! Checks are a trait so each service adds its own (the sinks check their target API) next to
//! the two everyone needs, [`KafkaReachable`] and [`RegistryReachable`].

use std::future::Future;
use std::net::SocketAddr;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use futures::future::BoxFuture;
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use rdkafka::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer as _};

/// How long one run of all checks may take before the slow ones count as failed.
pub const DEFAULT_CHECK_TIMEOUT: Duration = Duration::from_secs(5);
/// How long a readiness result is served from cache.
const CACHE_TTL: Duration = Duration::from_secs(1);
/// How often histogram buckets are drained (the recorder leaves this to its owner).
const METRICS_UPKEEP: Duration = Duration::from_secs(5);

/// One condition the service needs to do its work. `check` answers with the reason it is not
/// met, in words an operator can act on.
pub trait ReadinessCheck: Send + Sync {
    /// The key in the `/readyz` body, e.g. `kafka`.
    fn name(&self) -> &str;
    fn check(&self) -> BoxFuture<'_, Result<(), String>>;
}

/// Kafka answers a metadata request. The client is created once and reused: a new client per
/// check would open new connections every second.
pub struct KafkaReachable {
    consumer: Arc<BaseConsumer>,
    servers: String,
    timeout: Duration,
}

impl KafkaReachable {
    /// A check using the service's own Kafka settings (`bootstrap.servers`, security), so that
    /// it fails exactly when the service could not reach Kafka.
    ///
    /// # Errors
    ///
    /// If librdkafka refuses the configuration.
    pub fn new(config: &ClientConfig) -> anyhow::Result<Self> {
        let mut config = config.clone();
        // Without a group id the consumer never joins a group and its events stay on the main
        // queue, which `check` drains.
        config.remove("group.id");
        let servers = config
            .get("bootstrap.servers")
            .unwrap_or("(bootstrap.servers unset)")
            .to_owned();
        let consumer = config.create::<BaseConsumer>().with_context(|| {
            format!("cannot create the Kafka client for the readiness check ({servers})")
        })?;
        // Less than the overall check timeout, so a down broker reports librdkafka's reason
        // rather than a bare timeout.
        Ok(KafkaReachable {
            consumer: Arc::new(consumer),
            servers,
            timeout: Duration::from_secs(4),
        })
    }
}

impl ReadinessCheck for KafkaReachable {
    fn name(&self) -> &str {
        "kafka"
    }

    fn check(&self) -> BoxFuture<'_, Result<(), String>> {
        let consumer = Arc::clone(&self.consumer);
        let timeout = self.timeout;
        Box::pin(async move {
            // librdkafka's calls block: keep them off the async workers.
            let result = tokio::task::spawn_blocking(move || {
                // Serve queued client events (errors, logs) so they do not pile up.
                let _ = consumer.poll(Duration::ZERO);
                consumer.fetch_metadata(None, timeout)
            })
            .await
            .map_err(|e| format!("metadata request did not complete: {e}"))?;
            match result {
                Ok(metadata) if metadata.brokers().is_empty() => {
                    Err(format!("{} answered with no brokers", self.servers))
                }
                Ok(_) => Ok(()),
                Err(e) => Err(format!("cannot fetch metadata from {}: {e}", self.servers)),
            }
        })
    }
}

/// The schema registry answers `GET <url>/subjects` with 200.
pub struct RegistryReachable {
    client: reqwest::Client,
    subjects_url: String,
}

impl RegistryReachable {
    /// `url` is the registry's Confluent-compatible base, e.g.
    /// `http://127.0.0.1:18081/apis/ccompat/v7`.
    ///
    /// # Errors
    ///
    /// If the HTTP client cannot be built (TLS initialisation).
    pub fn new(url: &str) -> anyhow::Result<Self> {
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(4))
            .build()
            .context("cannot build the HTTP client for the registry readiness check")?;
        Ok(RegistryReachable {
            client,
            subjects_url: format!("{}/subjects", url.trim_end_matches('/')),
        })
    }
}

impl ReadinessCheck for RegistryReachable {
    fn name(&self) -> &str {
        "registry"
    }

    fn check(&self) -> BoxFuture<'_, Result<(), String>> {
        Box::pin(async move {
            let url = &self.subjects_url;
            let response = self
                .client
                .get(url)
                .send()
                .await
                .map_err(|e| format!("GET {url}: {}", error_chain(&e.without_url())))?;
            match response.status() {
                reqwest::StatusCode::OK => Ok(()),
                status => Err(format!("GET {url}: HTTP {status}")),
            }
        })
    }
}

/// `err` and its causes on one line: reqwest's own message ("error sending request") hides
/// the useful part ("Connection refused") in its sources.
fn error_chain(err: &dyn std::error::Error) -> String {
    let mut out = err.to_string();
    let mut next = err.source();
    while let Some(cause) = next {
        out.push_str(": ");
        out.push_str(&cause.to_string());
        next = cause.source();
    }
    out
}

/// Reasons not to be ready that components raise and clear themselves at run time, for the
/// conditions no request can check on demand (a watchdog sees them over time, see
/// `kafka::offset_watch`). Process-wide, because those components (a Kafka consumer deep in a
/// stage) are created after the health server and know nothing of it: every [`HealthServer`]
/// in the process reports every raised condition as a failed check in `/readyz`. A condition
/// that is not raised does not appear in the body at all.
pub struct RuntimeConditions {
    raised: std::sync::Mutex<std::collections::BTreeMap<u64, (String, String)>>,
    next_id: std::sync::atomic::AtomicU64,
}

/// The process's [`RuntimeConditions`].
pub fn runtime_conditions() -> &'static RuntimeConditions {
    static CONDITIONS: OnceLock<RuntimeConditions> = OnceLock::new();
    CONDITIONS.get_or_init(|| RuntimeConditions {
        raised: std::sync::Mutex::new(std::collections::BTreeMap::new()),
        next_id: std::sync::atomic::AtomicU64::new(0),
    })
}

impl RuntimeConditions {
    /// A flag reported under `name` (the key in the `/readyz` body) while raised.
    pub fn flag(&'static self, name: impl Into<String>) -> ReadinessFlag {
        ReadinessFlag {
            conditions: self,
            id: self
                .next_id
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed),
            name: name.into(),
        }
    }

    /// Every raised condition: name and reason, in the order they were created.
    pub fn raised(&self) -> Vec<(String, String)> {
        self.lock().values().cloned().collect()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, std::collections::BTreeMap<u64, (String, String)>> {
        // The map stays consistent even if a holder panicked: every update is one insert/remove.
        self.raised.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// One not-ready condition of [`RuntimeConditions`]; dropping it clears it.
pub struct ReadinessFlag {
    conditions: &'static RuntimeConditions,
    id: u64,
    name: String,
}

impl ReadinessFlag {
    /// Not ready, because of `reason` (words an operator can act on).
    pub fn raise(&self, reason: impl Into<String>) {
        self.conditions
            .lock()
            .insert(self.id, (self.name.clone(), reason.into()));
    }

    pub fn clear(&self) {
        self.conditions.lock().remove(&self.id);
    }

    pub fn is_raised(&self) -> bool {
        self.conditions.lock().contains_key(&self.id)
    }
}

impl Drop for ReadinessFlag {
    fn drop(&mut self) {
        self.clear();
    }
}

/// Installs the global Prometheus recorder for the `metrics` crate and returns its handle.
/// Idempotent: every call returns the same handle, so libraries and tests can call it freely.
///
/// # Errors
///
/// If another recorder was installed globally first (every call then fails the same way).
pub fn install_metrics_recorder() -> anyhow::Result<PrometheusHandle> {
    static HANDLE: OnceLock<Result<PrometheusHandle, String>> = OnceLock::new();
    HANDLE
        .get_or_init(|| {
            let handle = PrometheusBuilder::new()
                .install_recorder()
                .map_err(|e| e.to_string())?;
            crate::telemetry::events::describe();
            Ok(handle)
        })
        .clone()
        .map_err(|e| anyhow::anyhow!("cannot install the Prometheus metrics recorder: {e}"))
}

/// The `/healthz`, `/readyz`, `/metrics` server, bound but not yet serving.
pub struct HealthServer {
    listener: tokio::net::TcpListener,
    local_addr: SocketAddr,
    checks: Vec<Arc<dyn ReadinessCheck>>,
    metrics: PrometheusHandle,
    check_timeout: Duration,
}

impl HealthServer {
    /// Binds `addr` (port 0 picks a free port; see [`Self::local_addr`]).
    ///
    /// # Errors
    ///
    /// If the address cannot be bound; the message names the address and the setting.
    pub async fn bind(
        addr: SocketAddr,
        checks: Vec<Arc<dyn ReadinessCheck>>,
        metrics: PrometheusHandle,
    ) -> anyhow::Result<Self> {
        let listener = tokio::net::TcpListener::bind(addr).await.map_err(|e| {
            let reason = match e.kind() {
                std::io::ErrorKind::AddrInUse => "address in use".to_owned(),
                std::io::ErrorKind::PermissionDenied => "permission denied".to_owned(),
                std::io::ErrorKind::AddrNotAvailable => "no such address on this host".to_owned(),
                _ => e.to_string(),
            };
            anyhow::Error::new(e).context(format!(
                "cannot listen on {addr} for /healthz: {reason}; set http.listen"
            ))
        })?;
        let local_addr = listener
            .local_addr()
            .context("bound health listener has no address")?;
        Ok(HealthServer {
            listener,
            local_addr,
            checks,
            metrics,
            check_timeout: DEFAULT_CHECK_TIMEOUT,
        })
    }

    /// Changes how long a readiness run may take (default [`DEFAULT_CHECK_TIMEOUT`]).
    pub fn with_check_timeout(mut self, timeout: Duration) -> Self {
        self.check_timeout = timeout;
        self
    }

    /// The address actually bound.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Serves until `shutdown` completes, then finishes the requests in flight and returns.
    ///
    /// # Errors
    ///
    /// If the listener fails.
    pub async fn serve(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        let state = Arc::new(AppState {
            checks: self.checks,
            check_timeout: self.check_timeout,
            cached: tokio::sync::Mutex::new(None),
            metrics: self.metrics.clone(),
        });
        let app = Router::new()
            .route("/healthz", get(|| async { "ok" }))
            .route("/readyz", get(readyz))
            .route("/metrics", get(metrics))
            .with_state(state);

        let upkeep_handle = self.metrics;
        let upkeep = tokio::spawn(async move {
            loop {
                tokio::time::sleep(METRICS_UPKEEP).await;
                upkeep_handle.run_upkeep();
            }
        });

        tracing::info!(addr = %self.local_addr, "serving /healthz, /readyz, /metrics");
        let served = axum::serve(self.listener, app)
            .with_graceful_shutdown(shutdown)
            .await;
        upkeep.abort();
        served.with_context(|| format!("health server on {} failed", self.local_addr))
    }
}

struct AppState {
    checks: Vec<Arc<dyn ReadinessCheck>>,
    check_timeout: Duration,
    /// The last run and when it finished. A tokio mutex, held during a run, so concurrent
    /// requests wait for that run instead of starting their own.
    cached: tokio::sync::Mutex<Option<(Instant, Arc<Readiness>)>>,
    metrics: PrometheusHandle,
}

/// One run of every check: name and outcome, in registration order.
struct Readiness(Vec<(String, Result<(), String>)>);

impl Readiness {
    fn ready(&self) -> bool {
        self.0.iter().all(|(_, r)| r.is_ok())
    }

    fn body(&self) -> serde_json::Value {
        let map = self
            .0
            .iter()
            .map(|(name, r)| {
                (
                    name.clone(),
                    serde_json::Value::from(r.as_ref().err().map_or("ok", String::as_str)),
                )
            })
            .collect::<serde_json::Map<_, _>>();
        serde_json::Value::Object(map)
    }
}

async fn run_checks(state: &AppState) -> Arc<Readiness> {
    let mut cached = state.cached.lock().await;
    if let Some((at, readiness)) = cached.as_ref()
        && at.elapsed() < CACHE_TTL
    {
        return Arc::clone(readiness);
    }
    let runs = state.checks.iter().map(|check| async move {
        let outcome = match tokio::time::timeout(state.check_timeout, check.check()).await {
            Ok(outcome) => outcome,
            Err(_) => Err(format!("no answer within {:?}", state.check_timeout)),
        };
        (check.name().to_owned(), outcome)
    });
    let mut outcomes = futures::future::join_all(runs).await;
    // Conditions raised at run time (e.g. a consumer whose group offsets cannot be fetched)
    // count like failed checks for as long as they are raised.
    outcomes.extend(
        runtime_conditions()
            .raised()
            .into_iter()
            .map(|(name, reason)| (name, Err(reason))),
    );
    let readiness = Arc::new(Readiness(outcomes));
    for (name, outcome) in &readiness.0 {
        if let Err(e) = outcome {
            tracing::warn!(check = %name, error = %e, "not ready");
        }
    }
    *cached = Some((Instant::now(), Arc::clone(&readiness)));
    readiness
}

async fn readyz(State(state): State<Arc<AppState>>) -> Response {
    let readiness = run_checks(&state).await;
    let status = if readiness.ready() {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, axum::Json(readiness.body())).into_response()
}

async fn metrics(State(state): State<Arc<AppState>>) -> Response {
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        state.metrics.render(),
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Fixed(&'static str, Result<(), String>);

    impl ReadinessCheck for Fixed {
        fn name(&self) -> &str {
            self.0
        }
        fn check(&self) -> BoxFuture<'_, Result<(), String>> {
            let r = self.1.clone();
            Box::pin(async move { r })
        }
    }

    struct Slow;

    impl ReadinessCheck for Slow {
        fn name(&self) -> &str {
            "slow"
        }
        fn check(&self) -> BoxFuture<'_, Result<(), String>> {
            Box::pin(async {
                tokio::time::sleep(Duration::from_secs(60)).await;
                Ok(())
            })
        }
    }

    fn state(checks: Vec<Arc<dyn ReadinessCheck>>) -> AppState {
        AppState {
            checks,
            check_timeout: DEFAULT_CHECK_TIMEOUT,
            cached: tokio::sync::Mutex::new(None),
            metrics: PrometheusBuilder::new().build_recorder().handle(),
        }
    }

    #[tokio::test]
    async fn slow_checks_time_out_and_fail_readiness() {
        let mut s = state(vec![Arc::new(Fixed("kafka", Ok(()))), Arc::new(Slow)]);
        s.check_timeout = Duration::from_millis(50);
        let r = run_checks(&s).await;
        assert!(!r.ready());
        assert_eq!(r.body()["kafka"], "ok");
        assert!(
            r.body()["slow"]
                .as_str()
                .unwrap()
                .starts_with("no answer within")
        );
    }

    #[tokio::test]
    async fn results_are_cached_briefly() {
        let s = state(vec![Arc::new(Fixed("registry", Err("down".into())))]);
        let first = run_checks(&s).await;
        let second = run_checks(&s).await;
        assert!(Arc::ptr_eq(&first, &second));
        assert_eq!(first.body(), serde_json::json!({ "registry": "down" }));
    }

    #[test]
    fn a_flag_is_reported_while_raised_and_cleared_when_dropped() {
        // A private board: the process-wide one is read by the other tests' runs.
        let board: &'static RuntimeConditions = Box::leak(Box::new(RuntimeConditions {
            raised: std::sync::Mutex::new(std::collections::BTreeMap::new()),
            next_id: std::sync::atomic::AtomicU64::new(0),
        }));
        let a = board.flag("kafka_consumer:a");
        let b = board.flag("kafka_consumer:b");
        a.raise("stuck");
        b.raise("also stuck");
        b.clear();
        assert!(a.is_raised() && !b.is_raised());
        assert_eq!(
            board.raised(),
            vec![("kafka_consumer:a".to_owned(), "stuck".to_owned())]
        );
        drop(a);
        assert!(board.raised().is_empty());
    }

    #[tokio::test]
    async fn bind_failure_names_the_address() {
        let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = taken.local_addr().unwrap();
        let handle = PrometheusBuilder::new().build_recorder().handle();
        let err = HealthServer::bind(addr, vec![], handle)
            .await
            .err()
            .unwrap();
        assert_eq!(
            err.to_string(),
            format!("cannot listen on {addr} for /healthz: address in use; set http.listen")
        );
    }
}
