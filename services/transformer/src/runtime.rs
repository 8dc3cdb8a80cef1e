//! The transformer's Kafka side: consume every source topic as one consumer group, map each
//! record, and produce its commands — and any dead letters — in one Kafka transaction together
//! with the consumed offsets. So each source record yields its commands exactly once, however
//! often the process crashes or the batch is retried.
//!
//! Retryable trouble (the registry unreachable, an aborted transaction) never dead-letters: the
//! batch is aborted, the consumer rewinds to the committed offsets, and the batch is tried
//! again after a backoff. Everything else a record can get wrong goes to `transformer.dlq` with
//! its catalogued code, in the same transaction, and the stream moves on.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rdkafka::message::{Message, OwnedMessage};
use sfjira_core::avro::{AvroCodec, WriterSchema};
use sfjira_core::command::{System, avro::schema as command_schema};
use sfjira_core::config::{SfjiraConfig, TransformerConfig};
use sfjira_core::dlq::{Attempts, DlqRouter, FailedAt, FailedRecord};
use sfjira_core::errors::StageError;
use sfjira_core::kafka::{
    KafkaConsumer, OffsetTracker, OutRecord, TransactionalProducer, TxnError, client_config,
    topic_name,
};
use sfjira_core::retry::RetryPolicy;
use sfjira_core::telemetry::events::{RecordsReceived, TransactionAborted};
use sfjira_core::telemetry::messaging::process_span_for_message;
use tracing::Instrument;

use crate::engine::{Outcome, RecordOutcome};
use crate::events::{BatchCommitted, CommandProduced, RecordDiscarded};
use crate::input;
use crate::mapping::Mapping;

pub const STAGE: &str = "transformer";
const TXN_TIMEOUT: Duration = Duration::from_secs(30);

/// The running transformer. Build with [`Transformer::new`], then [`Transformer::run`].
pub struct Transformer {
    settings: TransformerConfig,
    mapping: Arc<Mapping>,
    codec: AvroCodec,
    consumer: KafkaConsumer,
    producer: TransactionalProducer,
    dlq: DlqRouter,
    jira_commands: (String, Arc<WriterSchema>),
    salesforce_commands: (String, Arc<WriterSchema>),
    retry: RetryPolicy,
}

/// What stopping found: how many batches were committed in this run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RunSummary {
    pub batches: u64,
    pub records: u64,
}

impl Transformer {
    pub async fn new(cfg: &SfjiraConfig, mapping: Mapping) -> anyhow::Result<Self> {
        let settings = cfg.transformer.clone().unwrap_or_default();
        let base = client_config(&cfg.kafka);
        let prefix = &cfg.kafka.topic_prefix;
        let escaped = regex_escape(prefix);
        let source_topics = [
            format!("^{escaped}salesforce\\.cdc\\..+"),
            topic_name(&cfg.kafka, "jira.issues"),
            topic_name(&cfg.kafka, "jira.comments"),
            topic_name(&cfg.kafka, "jira.worklogs"),
        ];
        let subscribe: Vec<&str> = source_topics.iter().map(String::as_str).collect();
        let consumer = KafkaConsumer::new(&base, &settings.group_id, &subscribe)?;
        // One transactional id per instance: a restarted instance fences its own zombie.
        let txn_id = format!(
            "{}-{}-{}",
            settings.group_id, STAGE, cfg.service.instance_id
        );
        let producer = TransactionalProducer::new(&base, &txn_id, TXN_TIMEOUT).await?;
        let codec = AvroCodec::new(&cfg.registry)?;
        let jira_topic = topic_name(&cfg.kafka, "jira.commands");
        let sf_topic = topic_name(&cfg.kafka, "salesforce.commands");
        let jira_writer = codec.register(&jira_topic, command_schema()).await?;
        let sf_writer = codec.register(&sf_topic, command_schema()).await?;
        Ok(Transformer {
            settings,
            mapping: Arc::new(mapping),
            codec,
            consumer,
            producer,
            dlq: DlqRouter::new(STAGE, prefix, &cfg.service.instance_id),
            jira_commands: (jira_topic, jira_writer),
            salesforce_commands: (sf_topic, sf_writer),
            retry: RetryPolicy::default(),
        })
    }

    /// Runs until `shutdown` resolves; the batch in hand is finished (committed) first.
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
        loop {
            let batch = tokio::select! {
                _ = &mut shutdown => break,
                batch = self.next_batch() => batch?,
            };
            let started = Instant::now();
            let failure = match self.try_batch(&batch).await {
                Ok(()) => {
                    BatchCommitted {
                        records: batch.len(),
                        seconds: started.elapsed().as_secs_f64(),
                    }
                    .emit();
                    summary.batches += 1;
                    summary.records += batch.len() as u64;
                    backoff = self.retry.backoff();
                    continue;
                }
                Err(e) => e,
            };
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
            // Nothing of the failed attempt is visible and its offsets were not committed: read
            // the batch again from the committed offsets (after a rebalance, some of its
            // partitions may belong to another instance now).
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

    /// Waits for one record, then takes what else arrives within `batch_wait_ms`.
    async fn next_batch(&self) -> anyhow::Result<Vec<OwnedMessage>> {
        let first = self.consumer.recv().await?.detach();
        let mut batch = vec![first];
        let deadline =
            tokio::time::Instant::now() + Duration::from_millis(self.settings.batch_wait_ms);
        while batch.len() < self.settings.batch_size {
            match tokio::time::timeout_at(deadline, self.consumer.recv()).await {
                Ok(msg) => batch.push(msg?.detach()),
                Err(_) => break,
            }
        }
        Ok(batch)
    }

    /// Processes `batch` in one transaction: commands, dead letters and offsets commit together.
    async fn try_batch(&mut self, batch: &[OwnedMessage]) -> Result<(), BatchError> {
        self.producer.begin()?;
        let mut offsets = OffsetTracker::new();
        // Metrics per batch and topic, not per record.
        let mut received: BTreeMap<&str, (u64, u64)> = BTreeMap::new();
        for msg in batch {
            let span = process_span_for_message(msg, &self.settings.group_id);
            self.process(msg).instrument(span).await?;
            offsets.record(msg);
            let entry = received.entry(msg.topic()).or_default();
            entry.0 += 1;
            entry.1 += msg.payload().map_or(0, <[u8]>::len) as u64;
        }
        let group = self.consumer.group_metadata().ok_or_else(|| {
            BatchError::Retryable("the consumer has no group metadata yet".into())
        })?;
        self.producer
            .send_offsets(&offsets.to_list(), group)
            .await?;
        self.producer.commit().await?;
        for (topic, (count, bytes)) in received {
            RecordsReceived {
                stage: STAGE,
                topic,
                count,
                bytes,
            }
            .emit();
        }
        Ok(())
    }

    /// One record: its commands, or its dead letter, into the open transaction.
    async fn process(&mut self, msg: &OwnedMessage) -> Result<(), BatchError> {
        let failed = |err: StageError, at: FailedAt| (err, at);
        let outcome = async {
            let payload = msg.payload().unwrap_or_default();
            let decoded = self
                .codec
                .decode(payload)
                .await
                .map_err(|e| failed(e, FailedAt::ValueConverter))?;
            let key = msg.key().map(|k| String::from_utf8_lossy(k).into_owned());
            input::source_record(msg.topic(), key.as_deref(), decoded.value)
                .map_err(|e| failed(e, FailedAt::Transformation))
        }
        .await;
        let record = match outcome {
            Ok(r) => r,
            Err((err, _)) if err.retryable() => return Err(BatchError::Retryable(err.to_string())),
            Err((err, at)) => return self.dead_letter(msg, &err, at).await,
        };
        match self.mapping.apply(&record) {
            RecordOutcome::Echo => RecordDiscarded { reason: "echo" }.emit(),
            RecordOutcome::Unmapped => RecordDiscarded { reason: "unmapped" }.emit(),
            RecordOutcome::Flows(outcomes) => {
                let mut first_error = None;
                for o in outcomes {
                    match o {
                        Outcome::Command(cmd) => self.produce_command(&cmd, &record.source).await?,
                        Outcome::Skipped { reason, .. } => RecordDiscarded {
                            reason: skip_label(reason),
                        }
                        .emit(),
                        Outcome::Failed { error, .. } => {
                            first_error.get_or_insert(error);
                        }
                    }
                }
                // The record goes to the DLQ once, with its first failing flow's error; its other
                // flows' commands are produced (a replay re-produces them with the same command
                // ids, which the sinks recognise).
                if let Some(err) = first_error {
                    self.dead_letter(msg, &err, FailedAt::Transformation)
                        .await?;
                }
            }
        }
        Ok(())
    }

    async fn produce_command(
        &mut self,
        cmd: &sfjira_core::command::Command,
        source: &str,
    ) -> Result<(), BatchError> {
        let (topic, writer) = match cmd.target.system {
            System::Jira => &self.jira_commands,
            System::Salesforce => &self.salesforce_commands,
        };
        let payload = self
            .codec
            .encode(writer, cmd.to_avro())
            .map_err(|e| BatchError::Retryable(e.to_string()))?;
        let record = OutRecord::new(topic.clone())
            .key(cmd.target.external_ref.clone())
            .payload(payload)
            .header("sfjira.command-id", cmd.command_id.clone())
            .header("sfjira.source", format!("{source},{}", cmd.source.id));
        let topic = topic.clone();
        self.producer.send(&record).await?;
        CommandProduced {
            topic: &topic,
            kind: cmd.kind,
        }
        .emit();
        Ok(())
    }

    async fn dead_letter(
        &mut self,
        msg: &OwnedMessage,
        err: &StageError,
        at: FailedAt,
    ) -> Result<(), BatchError> {
        let failed = FailedRecord {
            topic: msg.topic().to_string(),
            partition: msg.partition(),
            offset: msg.offset(),
            record: owned_copy(msg),
        };
        let record = self.dlq.dead_letter(&failed, err, at, Attempts::once());
        self.producer.send(&record).await?;
        Ok(())
    }
}

enum BatchError {
    Txn(TxnError),
    Retryable(String),
}

impl From<TxnError> for BatchError {
    fn from(e: TxnError) -> Self {
        BatchError::Txn(e)
    }
}

fn skip_label(reason: crate::engine::SkipReason) -> &'static str {
    use crate::engine::SkipReason::*;
    match reason {
        ConditionFalse => "condition_false",
        Unchanged => "unchanged",
        DeleteIgnored => "delete_ignored",
        NothingToWrite => "nothing_to_write",
    }
}

fn owned_copy(msg: &OwnedMessage) -> OutRecord {
    use rdkafka::message::Headers;
    OutRecord {
        topic: msg.topic().to_string(),
        partition: None,
        key: msg.key().map(<[u8]>::to_vec),
        payload: msg.payload().map(<[u8]>::to_vec),
        headers: msg
            .headers()
            .map(|hs| {
                hs.iter()
                    .map(|h| (h.key.to_string(), h.value.map(<[u8]>::to_vec)))
                    .collect()
            })
            .unwrap_or_default(),
        timestamp: msg.timestamp().to_millis(),
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
