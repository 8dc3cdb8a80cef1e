//! The transformer's Kafka side: consume every source topic as one consumer group, map each
//! record, and produce its commands — and any dead letters — in one Kafka transaction together
//! with the consumed offsets. So each source record yields its commands exactly once, however
//! often the process crashes or the batch is retried.
//!
//! Batches are pipelined: while batch N commits (a broker round trip), batch N+1 is read and
//! prepared ([`prepare`]) on another task — so on another core: joined on one task, the
//! preparing's CPU work would hold off the commit's polls and the two would barely overlap;
//! only then does N+1's transaction begin. If N's commit fails, the
//! prepared N+1 is dropped with it and both are read again from the committed offsets.
//!
//! Retryable trouble (the registry unreachable, an aborted transaction) never dead-letters:
//! the consumer rewinds to the committed offsets and the records are processed again after a
//! backoff. Everything else a record can get wrong goes to `transformer.dlq` with its
//! catalogued code, in the same transaction, and the stream moves on.

mod prepare;

use std::sync::Arc;
use std::time::{Duration, Instant};

use rdkafka::message::OwnedMessage;
use sfjira_core::command::avro::schema as command_schema;
use sfjira_core::config::{SfjiraConfig, TransformerConfig};
use sfjira_core::dlq::DlqRouter;
use sfjira_core::kafka::{
    KafkaConsumer, OffsetTracker, TransactionalProducer, TxnError, client_config, topic_name,
};
use sfjira_core::retry::RetryPolicy;
use sfjira_core::telemetry::events::{RecordsReceived, TransactionAborted};

use crate::events::{BatchCommitted, CommandProduced, RecordsCommitted};
use crate::mapping::Mapping;
pub use prepare::Tracing;
use prepare::{Prepared, Preparer, Retryable};

pub const STAGE: &str = "transformer";
const TXN_TIMEOUT: Duration = Duration::from_secs(30);

/// The running transformer. Build with [`Transformer::new`], then [`Transformer::run`].
pub struct Transformer {
    settings: TransformerConfig,
    // Shared with the task that reads and prepares the next batch while this one commits.
    consumer: Arc<KafkaConsumer>,
    producer: TransactionalProducer,
    preparer: Arc<Preparer>,
    retry: RetryPolicy,
}

/// What stopping found: how many batches and records were committed in this run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RunSummary {
    pub batches: u64,
    pub records: u64,
}

/// Why a batch did not commit.
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

    /// Runs until `shutdown` resolves; the batch in hand is committed first.
    pub async fn run(
        mut self,
        shutdown: impl std::future::Future<Output = ()>,
    ) -> anyhow::Result<RunSummary> {
        tokio::pin!(shutdown);
        let mut summary = RunSummary {
            batches: 0,
            records: 0,
        };
        let mut backoff = self.retry.backoff();
        // A batch read and prepared, waiting for its transaction.
        let mut ready: Option<Result<Prepared, Retryable>> = None;
        loop {
            let prepared = match ready.take() {
                Some(p) => p,
                None => {
                    let batch = tokio::select! {
                        _ = &mut shutdown => break,
                        batch = next_batch(&self.consumer, &self.settings) => batch?,
                    };
                    Arc::clone(&self.preparer)
                        .prepare_in_slices(batch, cores())
                        .await
                }
            };
            let started = Instant::now();
            // Commit this batch while the next one is read and prepared.
            let (committed, next) = match prepared {
                Ok(p) => {
                    // The next batch is read and prepared on its own task, so its CPU work runs
                    // on another core instead of starving this batch's commit of polls.
                    let prepare_next = tokio::spawn(read_and_prepare(
                        Arc::clone(&self.consumer),
                        Arc::clone(&self.preparer),
                        self.settings.clone(),
                    ));
                    let committed = commit(&mut self.producer, &self.consumer, p).await;
                    // Always joined before going on: a rewind after a failed commit must not
                    // race a read still in progress.
                    let next = prepare_next
                        .await
                        .map_err(|e| anyhow::anyhow!("preparing the next batch: {e}"))??;
                    (committed, next)
                }
                Err(e) => (Err(BatchError::from(e)), None),
            };
            match committed {
                Ok((records, produced)) => {
                    BatchCommitted {
                        records,
                        seconds: started.elapsed().as_secs_f64(),
                    }
                    .emit();
                    for ((topic, kind), n) in produced {
                        CommandProduced {
                            topic: &topic,
                            kind,
                            count: n,
                        }
                        .emit();
                    }
                    summary.batches += 1;
                    summary.records += records as u64;
                    backoff = self.retry.backoff();
                    ready = next;
                    continue;
                }
                Err(failure) => self.recover(failure).await?,
            }
            // Nothing of the failed attempt is visible and its offsets were not committed (a
            // batch prepared meanwhile is dropped too): read again from the committed offsets
            // (after a rebalance some partitions may belong to another instance now).
            self.consumer.rewind_to_committed(TXN_TIMEOUT)?;
            match backoff.next_delay(None) {
                Some(d) => tokio::time::sleep(d).await,
                None => anyhow::bail!(
                    "batches keep failing past the retry budget; stopping so another instance can take over"
                ),
            }
        }
        self.consumer.shutdown(&OffsetTracker::new())?;
        tracing::info!(
            batches = summary.batches,
            records = summary.records,
            "transformer stopped"
        );
        Ok(summary)
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

type Produced = std::collections::BTreeMap<(String, sfjira_core::command::CommandKind), u64>;

/// One transaction: the prepared records and the batch's offsets commit together.
async fn commit(
    producer: &mut TransactionalProducer,
    consumer: &KafkaConsumer,
    p: Prepared,
) -> Result<(usize, Produced), BatchError> {
    producer.begin()?;
    for record in &p.outputs {
        producer.send_prepared(record).await?;
    }
    let group = consumer
        .group_metadata()
        .ok_or_else(|| BatchError::Retryable("the consumer has no group metadata yet".into()))?;
    producer.send_offsets(&p.offsets.to_list(), group).await?;
    producer.commit().await?;
    RecordsCommitted {
        appended_ms: &p.appended_ms,
        committed_ms: chrono::Utc::now().timestamp_millis(),
    }
    .emit();
    for (topic, (count, bytes)) in &p.received {
        RecordsReceived {
            stage: STAGE,
            topic,
            count: *count,
            bytes: *bytes,
        }
        .emit();
    }
    Ok((p.records, p.produced))
}

/// The next batch, prepared; `None` when nothing arrives within `batch_wait_ms`.
async fn read_and_prepare(
    consumer: Arc<KafkaConsumer>,
    preparer: Arc<Preparer>,
    settings: TransformerConfig,
) -> anyhow::Result<Option<Result<Prepared, Retryable>>> {
    match next_batch_soon(&consumer, &settings).await? {
        Some(batch) => Ok(Some(preparer.prepare_in_slices(batch, cores()).await)),
        None => Ok(None),
    }
}

/// Waits for one record, then takes what else arrives within `batch_wait_ms`.
async fn next_batch(
    consumer: &KafkaConsumer,
    settings: &TransformerConfig,
) -> anyhow::Result<Vec<OwnedMessage>> {
    let first = consumer.recv().await?.detach();
    fill(consumer, settings, vec![first]).await
}

/// Like [`next_batch`], but gives up (None) if nothing arrives within `batch_wait_ms`, so a
/// quiet stream does not hold the commit of the batch before it.
async fn next_batch_soon(
    consumer: &KafkaConsumer,
    settings: &TransformerConfig,
) -> anyhow::Result<Option<Vec<OwnedMessage>>> {
    let wait = Duration::from_millis(settings.batch_wait_ms);
    match tokio::time::timeout(wait, consumer.recv()).await {
        Ok(first) => Ok(Some(fill(consumer, settings, vec![first?.detach()]).await?)),
        Err(_) => Ok(None),
    }
}

async fn fill(
    consumer: &KafkaConsumer,
    settings: &TransformerConfig,
    mut batch: Vec<OwnedMessage>,
) -> anyhow::Result<Vec<OwnedMessage>> {
    let deadline = tokio::time::Instant::now() + Duration::from_millis(settings.batch_wait_ms);
    while batch.len() < settings.batch_size {
        match tokio::time::timeout_at(deadline, consumer.recv()).await {
            Ok(msg) => batch.push(msg?.detach()),
            Err(_) => break,
        }
    }
    Ok(batch)
}

/// How many slices a batch is prepared in: one per core.
fn cores() -> usize {
    std::thread::available_parallelism().map_or(1, usize::from)
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
