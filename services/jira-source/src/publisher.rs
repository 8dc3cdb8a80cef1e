//! The one writer to Kafka: every batch (a webhook delivery, a poll cycle of one project) becomes
//! one Kafka transaction holding its canonical records, any dead letters, and the
//! `sfjira.checkpoints` records of [`crate::state`] (webhook identifiers, per-entity versions,
//! the poll watermark). Batches are serialised by a mutex, so admission (dedupe + ordering)
//! and the transaction see one consistent state, which changes only after a commit.
//!
//! Kafka may be unreachable at start or later. A keeper task (re)builds the transactional
//! producer — `init_transactions` fences a zombie predecessor with the same transactional id and
//! aborts its open transaction — then reads the checkpoint topic to its end (only after the
//! fencing, so nothing of the predecessor's is pending) and registers the value schemas. Until
//! that succeeds [`Publisher::publish`] fails with [`PublishError::NotReady`] (the webhook
//! answers 503, the poller retries next cycle). An aborted transaction leaves the state as it
//! was; a fatal producer error drops the producer and the keeper builds a new one.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rdkafka::config::ClientConfig;
use sfjira_core::avro::{AvroCodec, WriterSchema};
use sfjira_core::errors::StageError;
use sfjira_core::kafka::{OutRecord, TransactionalProducer, TxnError, read_to_end};
use tokio::sync::Mutex;

use crate::canonical::{Event, Topic};
use crate::state::{State, Txn};

/// How long one transactional call may block: below Jira's 20 s response timeout, so a webhook
/// gets its 503 before Jira gives up on the request.
const OP_TIMEOUT: Duration = Duration::from_secs(8);
/// How often webhook identifiers are checked for expiry.
const EXPIRY_EVERY: Duration = Duration::from_secs(60);

/// What the publisher needs to (re)connect.
pub struct Settings {
    pub kafka: ClientConfig,
    pub transactional_id: String,
    /// Full topic names (prefix applied) of the three canonical topics.
    pub topics: HashMap<Topic, String>,
    pub checkpoints: String,
    pub codec: AvroCodec,
    pub dedupe_retention: Duration,
}

/// One transaction's worth of work.
#[derive(Default)]
pub struct Batch {
    /// Candidates in Jira's order; older-than-published ones are dropped.
    pub events: Vec<Event>,
    /// The delivery's identifier and when it arrived (epoch ms), recorded with the batch.
    pub webhook: Option<(String, i64)>,
    /// Poll positions reached (name, epoch ms), committed with the batch.
    pub watermarks: Vec<(String, i64)>,
    /// Backfill resume positions (project, position), committed with the batch.
    pub backfills: Vec<(String, serde_json::Value)>,
    pub dead_letters: Vec<OutRecord>,
}

/// What a committed batch did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Outcome {
    pub published: usize,
    /// Older than or equal to what was already published (duplicates, late deliveries).
    pub dropped: usize,
    /// The delivery's identifier was already published: nothing was written.
    pub duplicate_delivery: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum PublishError {
    #[error("Kafka is not ready (the producer is not initialised yet)")]
    NotReady,
    #[error("the Kafka transaction failed: {0}")]
    Kafka(#[from] TxnError),
    /// A record does not encode with its schema (a defect): the caller dead-letters the input.
    #[error(transparent)]
    Encode(StageError),
}

struct Live {
    producer: TransactionalProducer,
    state: State,
    writers: HashMap<Topic, Arc<WriterSchema>>,
    last_expiry: Instant,
}

pub struct Publisher {
    settings: Settings,
    live: Mutex<Option<Live>>,
}

impl Publisher {
    /// Starts the publisher and its keeper task (which connects in the background).
    pub fn start(settings: Settings) -> Arc<Publisher> {
        let p = Arc::new(Publisher {
            settings,
            live: Mutex::new(None),
        });
        let keeper = Arc::downgrade(&p);
        tokio::spawn(async move {
            let mut wait = Duration::from_millis(200);
            while let Some(p) = keeper.upgrade() {
                if p.live.lock().await.is_none() {
                    match p.connect().await {
                        Ok(live) => {
                            tracing::info!(txn_id = %p.settings.transactional_id, "connected to Kafka; state loaded");
                            *p.live.lock().await = Some(live);
                            wait = Duration::from_millis(200);
                        }
                        Err(e) => {
                            tracing::warn!(error = %format!("{e:#}"), "cannot connect to Kafka yet; retrying");
                            wait = (wait * 2).min(Duration::from_secs(5));
                        }
                    }
                }
                drop(p);
                tokio::time::sleep(wait).await;
            }
        });
        p
    }

    async fn connect(&self) -> anyhow::Result<Live> {
        let s = &self.settings;
        let producer =
            TransactionalProducer::new(&s.kafka, &s.transactional_id, OP_TIMEOUT).await?;
        let (kafka, topic) = (s.kafka.clone(), s.checkpoints.clone());
        let messages =
            tokio::task::spawn_blocking(move || read_to_end(&kafka, &topic, &Default::default()))
                .await??;
        let state = State::load(&messages);
        let mut writers = HashMap::new();
        for t in Topic::ALL {
            writers.insert(t, s.codec.register(&s.topics[&t], t.schema()).await?);
        }
        Ok(Live {
            producer,
            state,
            writers,
            last_expiry: Instant::now(),
        })
    }

    /// Whether Kafka is connected (for readiness).
    pub async fn is_ready(&self) -> bool {
        self.live.lock().await.is_some()
    }

    /// Reads the state (`None` while not connected).
    pub async fn with_state<T>(&self, f: impl FnOnce(&State) -> T) -> Option<T> {
        self.live.lock().await.as_ref().map(|l| f(&l.state))
    }

    /// Publishes `batch` in one transaction; see the module comment.
    pub async fn publish(&self, batch: Batch) -> Result<Outcome, PublishError> {
        let mut guard = self.live.lock().await;
        let live = guard.as_mut().ok_or(PublishError::NotReady)?;
        let mut outcome = Outcome::default();
        if let Some((id, _)) = &batch.webhook
            && live.state.seen_webhook(id)
        {
            outcome.duplicate_delivery = true;
            outcome.dropped = batch.events.len();
            return Ok(outcome);
        }
        let mut txn = Txn::default();
        let mut records = Vec::new();
        let mut changed_at = Vec::new();
        for e in batch.events {
            let parent = matches!(e.entity, crate::state::Entity::Worklog(_))
                .then(|| format!("{}/{}", e.issue_id, e.issue_key));
            if !txn.admit(&live.state, &e.entity, e.kind, e.version, parent) {
                outcome.dropped += 1;
                continue;
            }
            let payload = self
                .settings
                .codec
                .encode(&live.writers[&e.topic], e.value)
                .map_err(PublishError::Encode)?;
            let (kind, id) = match &e.entity {
                crate::state::Entity::Issue(id) => ("issue", id),
                crate::state::Entity::Comment(id) => ("comment", id),
                crate::state::Entity::Worklog(id) => ("worklog", id),
            };
            records.push(
                OutRecord::new(self.settings.topics[&e.topic].clone())
                    .key(e.issue_id.clone())
                    .payload(payload)
                    .header("sfjira.source", format!("jira/{kind}/{id}")),
            );
            outcome.published += 1;
            changed_at.push(e.version.updated);
        }
        if let Some((id, at)) = &batch.webhook
            && (!records.is_empty() || !batch.dead_letters.is_empty())
        {
            txn.webhook(id, *at);
        }
        for (name, w) in &batch.watermarks {
            if live.state.watermark(name) != Some(*w) {
                txn.watermark(name, *w);
            }
        }
        for (project, position) in batch.backfills {
            txn.backfill(&project, position);
        }
        if live.last_expiry.elapsed() >= EXPIRY_EVERY {
            let cutoff = now_ms()
                - i64::try_from(self.settings.dedupe_retention.as_millis()).unwrap_or(i64::MAX);
            txn.forget_webhooks(live.state.expire_webhooks(cutoff));
            live.last_expiry = Instant::now();
        }
        if txn.is_empty() && batch.dead_letters.is_empty() {
            return Ok(outcome);
        }
        records.extend(batch.dead_letters);
        records.extend(txn.records(&self.settings.checkpoints));
        match transact(&mut live.producer, &records).await {
            Ok(()) => {
                live.state.apply(txn);
                let now = now_ms();
                for at in changed_at {
                    crate::metrics::lag(now - at);
                }
                Ok(outcome)
            }
            Err(e) => {
                if matches!(e, TxnError::Fatal(_)) {
                    // The keeper builds a new producer (and reloads the state).
                    *guard = None;
                }
                Err(e.into())
            }
        }
    }
}

async fn transact(p: &mut TransactionalProducer, records: &[OutRecord]) -> Result<(), TxnError> {
    // A webhook handler is cancelled when Jira hangs up (its delivery timeout) and may leave the
    // transaction it began open.
    p.abort_abandoned().await?;
    p.begin()?;
    for r in records {
        p.send(r).await?;
    }
    p.commit().await
}

/// The current time in epoch ms (UTC).
pub fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}
