//! Delivery of webhook events: for every registration that wants the event (and whose JQL
//! filter matches the issue), one delivery task, all concurrent and unordered, each retried
//! until it succeeds or the retries run out — at least once, like Jira (jira-api.md §5):
//!
//! - headers: `X-Atlassian-Webhook-Identifier` (same on every retry), `X-Atlassian-Webhook-Retry`
//!   (absent on the first try, then 1, 2, …), `X-Atlassian-Webhook-Flow` (`Primary`|`Secondary`),
//!   `X-Hub-Signature` when the webhook has a secret, `Content-Type: application/json`;
//! - success is any 2xx; 408, 409, 425, 429, 5xx, connection failures and timeouts are retried
//!   up to 5 times, each retry 5–15 minutes after the last ("retries up to five times, each
//!   attempt landing five to fifteen minutes after the last"), on [`SandboxClock`] time so tests
//!   can scale it; other statuses (400, 404, …) are never retried;
//! - injectable faults: duplicates (a delivery sent twice with one identifier), reordering (a
//!   random delay before the first try), drops (never sent), and a full outage (deliveries queue
//!   until it ends, then go out).
//!
//! Every attempt lands in a log that tests and J1's admin API read. Timeouts (5 s connect, 20 s
//! response, [U] Hookdeck's figures) are wall time: scaling them would make loopback receivers
//! flaky in fast tests.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Utc};
use rand::Rng;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use tokio::sync::{Notify, watch};

use super::registry::{Webhook, WebhookRegistry};
use super::sign::signature_header;
use crate::clock::SandboxClock;
use crate::jira::jql::{self, FieldResolver, JqlIssue};

/// How many attempts the log keeps.
const KEPT_RECORDS: usize = 10_000;

/// Delivery timing. Defaults are Jira Cloud's.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DeliveryConfig {
    /// Retries after the first attempt.
    pub max_retries: u32,
    /// Each retry waits a random time in this range (sandbox seconds).
    pub retry_min_secs: f64,
    pub retry_max_secs: f64,
    /// Wall-clock timeouts.
    pub connect_timeout_secs: f64,
    pub response_timeout_secs: f64,
}

impl Default for DeliveryConfig {
    fn default() -> Self {
        DeliveryConfig {
            max_retries: 5,
            retry_min_secs: 300.0,
            retry_max_secs: 900.0,
            connect_timeout_secs: 5.0,
            response_timeout_secs: 20.0,
        }
    }
}

/// Injectable delivery faults (J1's admin API sets them with [`WebhookDispatcher::set_faults`]).
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct DeliveryFaults {
    /// Chance that a delivery is sent a second time after it succeeded (same identifier).
    pub duplicate_probability: f64,
    /// Upper bound of a random delay (sandbox seconds) before the first attempt: reorders events.
    pub reorder_max_delay_secs: f64,
    /// Chance that a delivery is never sent.
    pub drop_probability: f64,
    /// While true, deliveries queue and nothing is sent.
    pub outage: bool,
}

/// `X-Atlassian-Webhook-Flow`: `Secondary` for cascades (e.g. comments deleted with an issue).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub enum Flow {
    #[default]
    Primary,
    Secondary,
}

/// One event to deliver. JQL filters are evaluated inside [`WebhookDispatcher::dispatch`], so
/// the issue and the resolver are only borrowed: a site sink can pass views of the site it is
/// handed while its lock is held (the resolver must not take that lock again).
pub struct WebhookEvent<'a> {
    /// `webhookEvent`, e.g. `jira:issue_updated`.
    pub name: String,
    pub payload: Value,
    /// The issue the event is about, as the change left it; `None` for events without an
    /// issue, which JQL filters do not apply to.
    pub issue: Option<&'a dyn JqlIssue>,
    /// Resolves field names in the webhooks' JQL filters.
    pub resolver: &'a dyn FieldResolver,
    pub flow: Flow,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    Delivered,
    /// Failed with a retryable answer; another attempt follows.
    WillRetry,
    /// Failed for good (non-retryable status, or retries exhausted).
    Failed,
    /// Dropped by an injected fault: never sent.
    Dropped,
    /// The extra copy sent by the duplicate fault.
    Duplicate,
}

/// One attempt, for assertions and the admin API.
#[derive(Debug, Clone, Serialize)]
pub struct DeliveryRecord {
    pub identifier: String,
    pub webhook_id: u64,
    pub url: String,
    pub event: String,
    pub flow: Flow,
    /// 0 on the first attempt (no `X-Atlassian-Webhook-Retry` header), then 1, 2, …
    pub retry: u32,
    pub at: DateTime<Utc>,
    pub status: Option<u16>,
    pub error: Option<String>,
    pub outcome: Outcome,
}

/// Delivers events to the registry's webhooks; cheap to clone.
#[derive(Clone)]
pub struct WebhookDispatcher {
    inner: Arc<Inner>,
}

struct Inner {
    registry: WebhookRegistry,
    clock: SandboxClock,
    config: DeliveryConfig,
    client: reqwest::Client,
    faults: Mutex<DeliveryFaults>,
    outage: watch::Sender<bool>,
    log: Mutex<VecDeque<DeliveryRecord>>,
    in_flight: AtomicUsize,
    idle: Notify,
}

/// A delivery in progress: everything that stays the same across its attempts.
struct Delivery {
    identifier: String,
    hook: Webhook,
    event: String,
    flow: Flow,
    body: Vec<u8>,
    signature: Option<String>,
}

impl WebhookDispatcher {
    pub fn new(
        registry: WebhookRegistry,
        clock: SandboxClock,
        config: DeliveryConfig,
    ) -> anyhow::Result<Self> {
        let client = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs_f64(config.connect_timeout_secs))
            .timeout(Duration::from_secs_f64(config.response_timeout_secs))
            // [U] as seen in a captured delivery.
            .user_agent("Atlassian Webhook HTTP Client")
            .build()
            .map_err(|e| anyhow::anyhow!("building the webhook HTTP client: {e}"))?;
        let inner = Inner {
            registry,
            clock,
            config,
            client,
            faults: Mutex::new(DeliveryFaults::default()),
            outage: watch::Sender::new(false),
            log: Mutex::new(VecDeque::new()),
            in_flight: AtomicUsize::new(0),
            idle: Notify::new(),
        };
        Ok(WebhookDispatcher {
            inner: Arc::new(inner),
        })
    }

    pub fn registry(&self) -> &WebhookRegistry {
        &self.inner.registry
    }

    pub fn set_faults(&self, faults: DeliveryFaults) {
        self.inner.outage.send_replace(faults.outage);
        *self.inner.faults.lock().unwrap_or_else(|p| p.into_inner()) = faults;
    }

    pub fn faults(&self) -> DeliveryFaults {
        self.inner
            .faults
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// The attempts so far (the latest 10 000), in the order they finished.
    pub fn log(&self) -> Vec<DeliveryRecord> {
        let log = self.inner.log.lock().unwrap_or_else(|p| p.into_inner());
        log.iter().cloned().collect()
    }

    pub fn clear_log(&self) {
        self.inner
            .log
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clear();
    }

    /// Waits until no delivery is in progress (queued ones during an outage count).
    pub async fn idle(&self) {
        loop {
            let notified = self.inner.idle.notified();
            if self.inner.in_flight.load(Ordering::SeqCst) == 0 {
                return;
            }
            notified.await;
        }
    }

    /// Starts delivering `event` to every webhook that wants it; returns the identifiers of
    /// the deliveries started. Must be called inside a tokio runtime.
    pub fn dispatch(&self, event: WebhookEvent<'_>) -> Vec<String> {
        let now = self.inner.clock.now();
        let mut ids = Vec::new();
        for hook in self.inner.registry.list() {
            if !hook.wants(&event.name) || !filter_matches(&hook, &event, now) {
                continue;
            }
            let mut payload = event.payload.clone();
            if let Value::Object(m) = &mut payload {
                // REST-registered webhooks get the ids that matched (jira-api.md §5).
                m.insert("matchedWebhookIds".into(), json!([hook.id]));
            }
            let body = if hook.config.exclude_body {
                Vec::new()
            } else {
                payload.to_string().into_bytes()
            };
            // [U] identifier format; only its stability across retries is documented.
            let identifier = uuid::Uuid::new_v4().to_string();
            let signature = hook
                .config
                .secret
                .as_deref()
                .map(|s| signature_header(s, &body));
            let d = Delivery {
                identifier: identifier.clone(),
                hook,
                event: event.name.clone(),
                flow: event.flow,
                body,
                signature,
            };
            self.inner.in_flight.fetch_add(1, Ordering::SeqCst);
            let inner = self.inner.clone();
            tokio::spawn(async move {
                inner.run(d).await;
                if inner.in_flight.fetch_sub(1, Ordering::SeqCst) == 1 {
                    inner.idle.notify_waiters();
                }
            });
            ids.push(identifier);
        }
        ids
    }
}

/// Whether `hook`'s JQL filter (if any) matches the event's issue.
fn filter_matches(hook: &Webhook, event: &WebhookEvent<'_>, now: DateTime<Utc>) -> bool {
    let (Some(jql), Some(issue)) = (hook.config.jql.as_deref(), event.issue) else {
        return true;
    };
    match jql::parse(jql, event.resolver) {
        Ok(q) => q.matches(issue, now),
        Err(e) => {
            tracing::warn!(webhook = hook.id, error = %e, "webhook JQL filter does not parse; event not delivered");
            false
        }
    }
}

impl Inner {
    fn record(
        &self,
        d: &Delivery,
        retry: u32,
        status: Option<u16>,
        error: Option<String>,
        outcome: Outcome,
    ) {
        let rec = DeliveryRecord {
            identifier: d.identifier.clone(),
            webhook_id: d.hook.id,
            url: d.hook.config.url.clone(),
            event: d.event.clone(),
            flow: d.flow,
            retry,
            at: self.clock.now(),
            status,
            error,
            outcome,
        };
        let mut log = self.log.lock().unwrap_or_else(|p| p.into_inner());
        // Bounded: a long-running sandbox keeps the latest attempts only.
        if log.len() >= KEPT_RECORDS {
            log.pop_front();
        }
        log.push_back(rec);
    }

    async fn run(&self, d: Delivery) {
        let (drop, delay, duplicate) = {
            let f = self
                .faults
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .clone();
            let mut rng = rand::rng();
            let delay = if f.reorder_max_delay_secs > 0.0 {
                rng.random_range(0.0..f.reorder_max_delay_secs)
            } else {
                0.0
            };
            let chance =
                |rng: &mut rand::rngs::ThreadRng, p: f64| p > 0.0 && rng.random_bool(p.min(1.0));
            (
                chance(&mut rng, f.drop_probability),
                delay,
                chance(&mut rng, f.duplicate_probability),
            )
        };
        if drop {
            self.record(&d, 0, None, None, Outcome::Dropped);
            return;
        }
        if delay > 0.0 {
            self.clock.sleep(Duration::from_secs_f64(delay)).await;
        }
        for retry in 0..=self.config.max_retries {
            let (status, error) = self.attempt(&d, retry).await;
            let retryable = match status {
                Some(s) if (200..300).contains(&s) => {
                    self.record(&d, retry, status, None, Outcome::Delivered);
                    if duplicate {
                        let (s2, e2) = self.attempt(&d, retry).await;
                        self.record(&d, retry, s2, e2, Outcome::Duplicate);
                    }
                    return;
                }
                Some(s) => matches!(s, 408 | 409 | 425 | 429) || s >= 500,
                None => true, // connection failure or timeout
            };
            if !retryable || retry == self.config.max_retries {
                self.record(&d, retry, status, error, Outcome::Failed);
                return;
            }
            self.record(&d, retry, status, error, Outcome::WillRetry);
            let wait = {
                let (lo, hi) = (
                    self.config.retry_min_secs,
                    self.config.retry_max_secs.max(self.config.retry_min_secs),
                );
                if hi > lo {
                    rand::rng().random_range(lo..hi)
                } else {
                    lo
                }
            };
            self.clock.sleep(Duration::from_secs_f64(wait)).await;
        }
    }

    /// One POST; waits out an outage first. Returns the status, or the transport error.
    async fn attempt(&self, d: &Delivery, retry: u32) -> (Option<u16>, Option<String>) {
        let mut outage = self.outage.subscribe();
        // `wait_for` only fails if the sender is gone, which `self` prevents.
        let _ = outage.wait_for(|o| !*o).await;
        let flow = match d.flow {
            Flow::Primary => "Primary",
            Flow::Secondary => "Secondary",
        };
        let mut req = self
            .client
            .post(&d.hook.config.url)
            .header("Content-Type", "application/json; charset=utf-8")
            .header("X-Atlassian-Webhook-Identifier", &d.identifier)
            .header("X-Atlassian-Webhook-Flow", flow)
            .body(d.body.clone());
        if retry > 0 {
            req = req.header("X-Atlassian-Webhook-Retry", retry.to_string());
        }
        if let Some(sig) = &d.signature {
            req = req.header("X-Hub-Signature", sig);
        }
        match req.send().await {
            Ok(resp) => (Some(resp.status().as_u16()), None),
            Err(e) => (
                None,
                Some(format!("delivering to {}: {e}", d.hook.config.url)),
            ),
        }
    }
}
