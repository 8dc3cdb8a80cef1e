//! The sink's Kafka side: consume `jira.commands` (read_committed, one consumer group), decode,
//! hold `batched` commands until their window closes, apply a batch ([`Sink::apply_batch`]),
//! and commit its audit entries and dead letters **in one Kafka transaction with the consumed
//! offsets** (links are produced as soon as they are made: [`Sink::publish_links`]).
//!
//! Backpressure: one batch is applied at a time and the next is read only after it commits,
//! so when Jira slows down (429 storms pause every call through the shared limiter)
//! consumption pauses with it; nothing is buffered beyond one batch and librdkafka's bounded
//! prefetch.
//!
//! Held commands keep their partition's committed offset at or before them (the offset
//! committed for a partition is the lowest held offset there), so a crash while holding loses
//! nothing; what was applied after them is recognised on the way back by its command id
//! (`sfjira.audit`) and skipped.

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use rdkafka::message::{Message, OwnedMessage};
use rdkafka::{Offset, TopicPartitionList};
use sfjira_core::avro::AvroCodec;
use sfjira_core::command::{Command, DeliveryMode, System};
use sfjira_core::dlq::{Attempts, FailedAt, FailedRecord};
use sfjira_core::errors::{ErrorCode, StageError};
use sfjira_core::kafka::{KafkaConsumer, OffsetTracker, TransactionalProducer, TxnError};
use sfjira_core::retry::RetryPolicy;
use sfjira_core::telemetry::messaging::process_span_for_message;
use tracing::Instrument;

use crate::metrics;
use crate::sink::{CrashPoint, Outcome, Sink, Work, now_ms};

pub const TXN_TIMEOUT: Duration = Duration::from_secs(30);

/// A `batched` command waiting for its window to close.
struct Held {
    work: Work,
    due_ms: i64,
}

pub struct Runtime {
    pub sink: Arc<Sink>,
    pub consumer: KafkaConsumer,
    pub producer: TransactionalProducer,
    pub codec: AvroCodec,
    /// Command ids already applied (or deliberately skipped): replays are skipped.
    pub applied: HashSet<String>,
    held: Vec<Held>,
}

/// What a run did, for tests and logs.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct RunSummary {
    pub batches: u64,
    pub commands: u64,
}

impl Runtime {
    pub fn new(
        sink: Arc<Sink>,
        consumer: KafkaConsumer,
        producer: TransactionalProducer,
        codec: AvroCodec,
        applied: HashSet<String>,
    ) -> Self {
        Runtime {
            sink,
            consumer,
            producer,
            codec,
            applied,
            held: Vec::new(),
        }
    }

    /// Runs until `shutdown` resolves (the batch in hand is finished and committed first).
    pub async fn run(
        mut self,
        shutdown: impl std::future::Future<Output = ()>,
    ) -> anyhow::Result<RunSummary> {
        tokio::pin!(shutdown);
        let mut summary = RunSummary::default();
        let policy = RetryPolicy::default();
        let mut backoff = policy.backoff();
        loop {
            let due = self.held.iter().map(|h| h.due_ms).min();
            let batch = tokio::select! {
                _ = &mut shutdown => break,
                b = self.next_batch(due) => b?,
            };
            let started = std::time::Instant::now();
            let mut tracker = OffsetTracker::new();
            let mut out = Outcome::default();
            let mut fresh = Vec::new();
            let mut unavailable = None;
            for msg in &batch {
                tracker.record(msg);
                let span = process_span_for_message(msg, self.consumer.group_id());
                match self
                    .decode(msg, &span, &mut out)
                    .instrument(span.clone())
                    .await
                {
                    Ok(Some(w)) => fresh.push(w),
                    Ok(None) => {}
                    Err(e) => {
                        unavailable = Some(e);
                        break;
                    }
                }
            }
            let committed = match unavailable {
                // The registry is unreachable: not the records' fault; read them again later.
                Some(e) => Err(TxnError::Aborted {
                    reason: e.to_string(),
                }),
                None => {
                    let ready = self.schedule(fresh);
                    let count = ready.len();
                    out.merge(self.sink.apply_batch(ready).await);
                    // Normally published by the operation that linked; none is left behind.
                    self.sink.publish_links(&mut out).await;
                    self.commit(&tracker, &out).await.map(|()| count)
                }
            };
            match committed {
                Ok(count) => {
                    self.applied.extend(out.finished.iter().cloned());
                    self.sink.remember_written(&out.written);
                    metrics::batch(count, started.elapsed());
                    summary.batches += 1;
                    summary.commands += count as u64;
                    backoff = policy.backoff();
                    if out.linked {
                        self.sink.crash_if(CrashPoint::AfterLink);
                    }
                }
                Err(e) => {
                    self.recover(e).await?;
                    // Nothing of the batch is committed: read it (and what was held) again.
                    self.held.clear();
                    self.consumer.rewind_to_committed(TXN_TIMEOUT)?;
                    match backoff.next_delay(None) {
                        Some(d) => tokio::time::sleep(d).await,
                        None => anyhow::bail!("batches keep failing to commit; stopping"),
                    }
                }
            }
        }
        Ok(summary)
    }

    /// Waits for a first record (or for `due_ms`, when held commands fall due), then takes
    /// what else arrives within `linger_ms`.
    async fn next_batch(&self, due_ms: Option<i64>) -> anyhow::Result<Vec<OwnedMessage>> {
        let cfg = &self.sink.cfg;
        let mut batch = Vec::new();
        let first = match due_ms {
            Some(due) => {
                let wait = Duration::from_millis((due - now_ms()).max(0) as u64);
                match tokio::time::timeout(wait, self.consumer.recv()).await {
                    Ok(m) => Some(m?.detach()),
                    Err(_) => None,
                }
            }
            None => Some(self.consumer.recv().await?.detach()),
        };
        let Some(first) = first else { return Ok(batch) };
        batch.push(first);
        let deadline = tokio::time::Instant::now() + Duration::from_millis(cfg.linger_ms);
        while batch.len() < cfg.batch_size {
            match tokio::time::timeout_at(deadline, self.consumer.recv()).await {
                Ok(m) => batch.push(m?.detach()),
                Err(_) => break,
            }
        }
        Ok(batch)
    }

    /// A record as a command, or its dead letter; `None` also for replays of applied commands.
    /// `Err` when the registry cannot be reached (the batch is read again after a backoff).
    async fn decode(
        &self,
        msg: &OwnedMessage,
        span: &tracing::Span,
        out: &mut Outcome,
    ) -> Result<Option<Work>, StageError> {
        let origin = FailedRecord::from_message(msg);
        let dead = |out: &mut Outcome, err: StageError, at: FailedAt| {
            tracing::warn!(error = %err, offset = msg.offset(), "undecodable command");
            out.records.push(
                self.sink
                    .dlq
                    .dead_letter(&origin, &err, at, Attempts::once()),
            );
        };
        let value = match self.codec.decode(msg.payload().unwrap_or_default()).await {
            Ok(d) => d.value,
            Err(e) if e.retryable() => return Err(e),
            // Not Avro, an unknown schema id, a body cut short: the codec's own code (SFJ-100x)
            // says what is wrong and how to fix it, as in every other stage.
            Err(e) => {
                dead(out, e, FailedAt::ValueConverter);
                return Ok(None);
            }
        };
        let cmd = match Command::from_avro(value) {
            Ok(c) => c,
            Err(e) => {
                dead(
                    out,
                    StageError::new(ErrorCode::JiraCommandUndecodable, e.to_string()),
                    FailedAt::ValueConverter,
                );
                return Ok(None);
            }
        };
        if self.applied.contains(&cmd.command_id) {
            tracing::debug!(command = %cmd.command_id, "already applied; skipped");
            metrics::command("replay", "skipped");
            return Ok(None);
        }
        let work = Work {
            cmd,
            origin,
            span: span.clone(),
        };
        if work.cmd.target.system != System::Jira {
            let err = StageError::new(
                ErrorCode::JiraCommandInvalid,
                format!(
                    "command {} targets {}, not Jira",
                    work.cmd.command_id, work.cmd.target.system
                ),
            );
            self.sink.fail(out, &work, "skip", &err, now_ms());
            return Ok(None);
        }
        Ok(Some(work))
    }

    /// Splits fresh commands into those applied now and those held for their batching window;
    /// returns what is due (held commands first: they were consumed first).
    fn schedule(&mut self, fresh: Vec<Work>) -> Vec<Work> {
        let now = now_ms();
        for w in fresh {
            let held_due = self
                .held
                .iter()
                .find(|h| h.work.cmd.target.external_ref == w.cmd.target.external_ref)
                .map(|h| h.due_ms);
            let due = match (w.cmd.delivery, held_due) {
                // Behind a held command of the same record: keep their order.
                (_, Some(d)) => Some(d),
                (DeliveryMode::Batched { interval_ms }, None) if interval_ms > 0 => {
                    let i = interval_ms as i64;
                    Some((now / i + 1) * i)
                }
                _ => None,
            };
            match due {
                Some(due_ms) => self.held.push(Held { work: w, due_ms }),
                None => self.held.push(Held {
                    work: w,
                    due_ms: i64::MIN,
                }),
            }
        }
        let (ready, keep): (Vec<Held>, Vec<Held>) =
            self.held.drain(..).partition(|h| h.due_ms <= now);
        self.held = keep;
        ready.into_iter().map(|h| h.work).collect()
    }

    /// The offsets to commit: one past what was processed, but never past a held command.
    fn offsets(&self, tracker: &OffsetTracker) -> TopicPartitionList {
        let mut next: BTreeMap<(String, i32), i64> = BTreeMap::new();
        for e in tracker.to_list().elements() {
            if let Offset::Offset(o) = e.offset() {
                next.insert((e.topic().to_string(), e.partition()), o);
            }
        }
        for h in &self.held {
            let o = &h.work.origin;
            let e = next
                .entry((o.topic.clone(), o.partition))
                .or_insert(o.offset);
            *e = (*e).min(o.offset);
        }
        let mut tpl = TopicPartitionList::new();
        for ((t, p), o) in next {
            tpl.add_partition_offset(&t, p, Offset::Offset(o))
                .expect("a fresh list accepts any offset");
        }
        tpl
    }

    async fn commit(&mut self, tracker: &OffsetTracker, out: &Outcome) -> Result<(), TxnError> {
        let offsets = self.offsets(tracker);
        if out.records.is_empty() && offsets.count() == 0 {
            return Ok(());
        }
        self.producer.begin()?;
        for r in &out.records {
            self.producer.send(r).await?;
        }
        if offsets.count() > 0 {
            let group = self
                .consumer
                .group_metadata()
                .ok_or_else(|| TxnError::Aborted {
                    reason: "the consumer has no group metadata yet".into(),
                })?;
            self.producer.send_offsets(&offsets, group).await?;
        }
        self.producer.commit().await
    }

    async fn recover(&mut self, e: TxnError) -> anyhow::Result<()> {
        match e {
            TxnError::Fatal(err) => {
                tracing::error!(error = %err, "fatal producer error; re-creating the producer");
                self.producer.recover().await?;
            }
            TxnError::Aborted { reason } => {
                tracing::warn!(%reason, "transaction aborted; the batch is read and applied again");
                let _ = self.producer.abort().await;
            }
        }
        Ok(())
    }
}
