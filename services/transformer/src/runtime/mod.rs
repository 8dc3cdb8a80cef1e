//! The transformer's Kafka side: consume every source topic as one consumer group, map each
//! record, and produce its commands — and any dead letters — in one Kafka transaction together
//! with the consumed offsets. So each source record yields its commands exactly once, however
//! often the process crashes or a transaction is retried.
//!
//! Records stream through ([`pipeline`]): chunks are read and prepared on every core ahead of
//! the transaction loop, which produces each prepared chunk into the open transaction at once
//! and commits when the transaction is full (`batch_size` records), when the stream has caught
//! up and the transaction is `batch_wait_ms` old (a quiet stream's changes wait no longer), or
//! after [`BACKLOG_TXN_MAX`] while a backlog drains. Large transactions under load matter on
//! the broker: each transaction cost it ~4.5 ms of CPU here (`txn_phases` example), a third of
//! its work per record at 2 000 records per transaction. The process does not hold a
//! transaction's records: each chunk's inputs are dropped once prepared, its outputs once
//! produced.
//!
//! Retryable trouble (the registry unreachable, an aborted transaction) never dead-letters:
//! the transaction is aborted, reading stops, the consumer rewinds to the committed offsets
//! and the records are processed again after a backoff. Everything else a record can get wrong
//! goes to `transformer.dlq` with its catalogued code, in the same transaction, and the stream
//! moves on.

mod pipeline;
mod prepare;

use std::sync::Arc;
use std::time::{Duration, Instant};

use sfjira_core::command::avro::schema as command_schema;
use sfjira_core::config::{SfjiraConfig, TransformerConfig};
use sfjira_core::dlq::DlqRouter;
use sfjira_core::kafka::{
    KafkaConsumer, OffsetTracker, TransactionalProducer, TxnError, client_config, topic_name,
};
use sfjira_core::retry::RetryPolicy;
use sfjira_core::telemetry::events::TransactionAborted;

use crate::events::{CommandProduced, RecordsCommitted, TransactionCommitted};
use crate::mapping::Mapping;
use pipeline::{Chunk, PreparePipeline};
pub use prepare::Tracing;
use prepare::{Prepared, Preparer, Retryable};

pub const STAGE: &str = "transformer";
const TXN_TIMEOUT: Duration = Duration::from_secs(30);

/// The running transformer. Build with [`Transformer::new`], then [`Transformer::run`].
pub struct Transformer {
    settings: TransformerConfig,
    // Shared with the pipeline's tasks that read and prepare ahead of the transaction.
    consumer: Arc<KafkaConsumer>,
    producer: TransactionalProducer,
    preparer: Arc<Preparer>,
    retry: RetryPolicy,
}

/// What stopping found: how many transactions and records were committed in this run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RunSummary {
    pub transactions: u64,
    pub records: u64,
}

/// Why a transaction did not commit.
enum BatchError {
    Txn(TxnError),
    Retryable(String),
}

impl From<TxnError> for BatchError {
    fn from(e: TxnError) -> Self {
        BatchError::Txn(e)
    }
}

impl From<Retryable> for BatchError {
    fn from(e: Retryable) -> Self {
        BatchError::Retryable(e.0)
    }
}

impl Transformer {
    pub async fn new(cfg: &SfjiraConfig, mapping: Mapping) -> anyhow::Result<Self> {
        let settings = cfg.transformer.clone().unwrap_or_default();
        let base = client_config(&cfg.kafka);
        let escaped = regex_escape(&cfg.kafka.topic_prefix);
        let source_topics = [
            format!("^{escaped}salesforce\\.cdc\\..+"),
            topic_name(&cfg.kafka, "jira.issues"),
            topic_name(&cfg.kafka, "jira.comments"),
            topic_name(&cfg.kafka, "jira.worklogs"),
        ];
        let subscribe: Vec<&str> = source_topics.iter().map(String::as_str).collect();
        // Not a static member (the sinks are): this is the group operators reset with
        // `kafka-consumer-groups --reset-offsets` to replay, and a static member stays in the
        // group after a graceful stop until its session times out, refusing the reset for 45 s.
        // So a crashed transformer's successor waits 10 s, not Kafka's 45 s, for the dead
        // member's session to end before it gets the partitions (it holds no state to lose, and
        // its heartbeats run on librdkafka's own thread, so a long batch does not miss them).
        // A value in the deployment's kafka.properties wins.
        let mut consumer_cfg = base.clone();
        if consumer_cfg.get("session.timeout.ms").is_none() {
            consumer_cfg.set("session.timeout.ms", "10000");
        }
        let consumer = KafkaConsumer::new(&consumer_cfg, &settings.group_id, &subscribe)?;
        // One transactional id per instance: a restarted instance fences its own zombie.
        let txn_id = format!(
            "{}-{}-{}",
            settings.group_id, STAGE, cfg.service.instance_id
        );
        let producer = TransactionalProducer::new(&base, &txn_id, TXN_TIMEOUT).await?;
        let codec = sfjira_core::avro::AvroCodec::new(&cfg.registry)?;
        let jira_topic = topic_name(&cfg.kafka, "jira.commands");
        let sf_topic = topic_name(&cfg.kafka, "salesforce.commands");
        let jira_writer = codec.register(&jira_topic, command_schema()).await?;
        let sf_writer = codec.register(&sf_topic, command_schema()).await?;
        let preparer = Preparer {
            mapping: Arc::new(mapping),
            tracing: Tracing::for_this_process(),
            codec,
            dlq: DlqRouter::new(STAGE, &cfg.kafka.topic_prefix, &cfg.service.instance_id),
            jira_commands: (jira_topic, jira_writer),
            salesforce_commands: (sf_topic, sf_writer),
            group_id: settings.group_id.clone(),
        };
        Ok(Transformer {
            settings,
            consumer: Arc::new(consumer),
            producer,
            preparer: Arc::new(preparer),
            retry: RetryPolicy::default(),
        })
    }

    /// Runs until `shutdown` resolves; the open transaction is committed first (what was read
    /// ahead of it is read again by the next run).
    pub async fn run(
        mut self,
        shutdown: impl std::future::Future<Output = ()>,
    ) -> anyhow::Result<RunSummary> {
        tokio::pin!(shutdown);
        let mut summary = RunSummary {
            transactions: 0,
            records: 0,
        };
        let mut backoff = self.retry.backoff();
        let mut pipeline = self.start_pipeline();
        let mut txn: Option<OpenTxn> = None;
        loop {
            let due = txn.as_ref().map(|t| t.due(&self.settings));
            let step = tokio::select! {
                biased;
                _ = &mut shutdown => break,
                _ = sleep_until(due), if due.is_some() => Step::Due,
                chunk = pipeline.next() => Step::Chunk(chunk?),
            };
            let result = match step {
                // Only armed while a transaction is open.
                Step::Due => {
                    let open = txn.take().expect("due only with an open transaction");
                    self.commit(open, &mut summary).await
                }
                Step::Chunk(chunk) => match self.produce_chunk(&mut txn, chunk).await {
                    Ok(()) if txn.as_ref().is_some_and(|t| t.complete(&self.settings)) => {
                        let open = txn.take().expect("checked above");
                        self.commit(open, &mut summary).await
                    }
                    other => other,
                },
            };
            match result {
                Ok(()) if txn.is_none() => backoff = self.retry.backoff(),
                Ok(()) => {}
                Err(failure) => {
                    txn = None;
                    self.recover(failure).await?;
                    // Nothing of the failed transaction is visible and its offsets were not
                    // committed; what was read ahead is dropped too. Read again from the
                    // committed offsets (after a rebalance some partitions may belong to
                    // another instance now), once nothing reads any more.
                    pipeline.stop().await;
                    self.consumer.rewind_to_committed(TXN_TIMEOUT)?;
                    match backoff.next_delay(None) {
                        Some(d) => tokio::time::sleep(d).await,
                        None => anyhow::bail!(
                            "transactions keep failing past the retry budget; stopping so another instance can take over"
                        ),
                    }
                    pipeline = self.start_pipeline();
                }
            }
        }
        pipeline.stop().await;
        if let Some(open) = txn.take()
            && let Err(failure) = self.commit(open, &mut summary).await
        {
            tracing::warn!(
                "the last transaction did not commit; its records are read again by the next run"
            );
            self.recover(failure).await?;
        }
        self.consumer.shutdown(&OffsetTracker::new())?;
        tracing::info!(
            transactions = summary.transactions,
            records = summary.records,
            "transformer stopped"
        );
        Ok(summary)
    }

    fn start_pipeline(&self) -> PreparePipeline {
        PreparePipeline::start(Arc::clone(&self.consumer), Arc::clone(&self.preparer))
    }

    /// Produces a prepared chunk into the open transaction (beginning one if none is open).
    async fn produce_chunk(
        &mut self,
        txn: &mut Option<OpenTxn>,
        chunk: Chunk,
    ) -> Result<(), BatchError> {
        let mut prepared = chunk.prepared?;
        let open = match txn {
            Some(open) => open,
            None => {
                self.producer.begin()?;
                txn.insert(OpenTxn {
                    started: Instant::now(),
                    done: Prepared::empty(),
                    caught_up: false,
                })
            }
        };
        for record in &prepared.outputs {
            self.producer.send_prepared(record).await?;
        }
        prepared.outputs = Vec::new();
        open.done.absorb(prepared);
        open.caught_up = chunk.caught_up;
        Ok(())
    }

    /// Adds the transaction's offsets and commits it; its records' metrics are counted once
    /// it is visible.
    async fn commit(&mut self, open: OpenTxn, summary: &mut RunSummary) -> Result<(), BatchError> {
        let group = self.consumer.group_metadata().ok_or_else(|| {
            BatchError::Retryable("the consumer has no group metadata yet".into())
        })?;
        let done = open.done;
        self.producer
            .send_offsets(&done.offsets.to_list(), group)
            .await?;
        self.producer.commit().await?;
        RecordsCommitted {
            appended_ms: &done.appended_ms,
            committed_ms: chrono::Utc::now().timestamp_millis(),
        }
        .emit();
        done.received.emit(STAGE);
        TransactionCommitted {
            records: done.records,
            seconds: open.started.elapsed().as_secs_f64(),
        }
        .emit();
        for ((topic, kind), n) in &done.produced {
            CommandProduced {
                topic,
                kind: *kind,
                count: *n,
            }
            .emit();
        }
        summary.transactions += 1;
        summary.records += done.records as u64;
        Ok(())
    }

    async fn recover(&mut self, failure: BatchError) -> anyhow::Result<()> {
        match failure {
            BatchError::Txn(TxnError::Fatal(e)) => {
                tracing::error!(error = %e, "fatal producer error; re-creating the producer");
                self.producer.recover().await?;
            }
            BatchError::Txn(TxnError::Aborted { reason }) => {
                TransactionAborted { stage: STAGE }.emit();
                tracing::warn!(%reason, "transaction aborted; the batch is read and processed again");
            }
            BatchError::Retryable(e) => {
                self.producer.abort().await?;
                tracing::warn!(error = %e, "retryable failure; the batch is read and processed again after a backoff");
            }
        }
        Ok(())
    }
}

/// How much longer than `batch_wait_ms` a transaction may stay open while a backlog drains
/// (records were waiting when its last chunk was read): long enough that `batch_size` is what
/// ends it at full speed, short enough that a slow stretch still commits several times a
/// second — far inside the 30 s transaction timeout.
pub const BACKLOG_TXN_MAX: Duration = Duration::from_millis(250);

/// What the transaction loop waits for next.
enum Step {
    Chunk(Chunk),
    Due,
}

/// The open transaction: its chunks' outputs are produced; what is left is their offsets and
/// the bookkeeping for after the commit.
struct OpenTxn {
    started: Instant,
    done: Prepared,
    /// Whether the stream was caught up when the last chunk was read.
    caught_up: bool,
}

impl OpenTxn {
    /// When the transaction commits if nothing else ends it first.
    fn due(&self, settings: &TransformerConfig) -> tokio::time::Instant {
        let wait = Duration::from_millis(settings.batch_wait_ms);
        let wait = if self.caught_up {
            wait
        } else {
            wait.max(BACKLOG_TXN_MAX)
        };
        tokio::time::Instant::from_std(self.started + wait)
    }

    /// Whether the transaction is to commit now, after a chunk.
    fn complete(&self, settings: &TransformerConfig) -> bool {
        self.done.records >= settings.batch_size
            || tokio::time::Instant::now() >= self.due(settings)
    }
}

async fn sleep_until(due: Option<tokio::time::Instant>) {
    match due {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

fn regex_escape(s: &str) -> String {
    s.chars().fold(String::new(), |mut out, c| {
        if "\\.+*?()|[]{}^$".contains(c) {
            out.push('\\');
        }
        out.push(c);
        out
    })
}
