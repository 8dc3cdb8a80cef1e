//! Typed internal events (after Vector's `src/internal_events`): one struct per thing a stage
//! reports, whose `emit` writes the log line and updates the Prometheus metric together. Code
//! that handles records emits these and never calls `metrics::counter!` itself, so that every
//! service exports the same metric names with the same labels, and a counter never moves
//! without a log line that explains it.
//!
//! Labels are bounded: `stage` (a handful of services), `topic` (the configured topics),
//! `code` (the error catalog), `operation` (a fixed set named in code). Record ids, keys and
//! error messages go into logs only; as labels they would create a time series per record.
//!
//! [`describe`] registers the help text of every metric; `health::install_metrics_recorder`
//! calls it once the recorder is installed.

use std::time::Duration;

use metrics::{Unit, counter, describe_counter, describe_gauge, gauge};

use crate::errors::ErrorCode;

pub const RECORDS_RECEIVED: &str = "sfjira_records_received_total";
pub const RECEIVED_BYTES: &str = "sfjira_received_bytes_total";
pub const RECORDS_SENT: &str = "sfjira_records_sent_total";
pub const SENT_BYTES: &str = "sfjira_sent_bytes_total";
pub const DLQ_RECORDS: &str = "sfjira_dlq_records_total";
pub const ERRORS: &str = "sfjira_errors_total";
pub const RETRIES: &str = "sfjira_retries_total";
pub const TRANSACTIONS_ABORTED: &str = "sfjira_transactions_aborted_total";
pub const CONSUMER_OFFSETS_UNFETCHED: &str = "sfjira_consumer_offsets_unfetched_partitions";

/// Registers the help text and unit of every metric above with the installed recorder.
pub fn describe() {
    describe_counter!(
        RECORDS_RECEIVED,
        Unit::Count,
        "Records a stage consumed from Kafka."
    );
    describe_counter!(
        RECEIVED_BYTES,
        Unit::Bytes,
        "Bytes of record values a stage consumed."
    );
    describe_counter!(
        RECORDS_SENT,
        Unit::Count,
        "Records a stage produced to Kafka."
    );
    describe_counter!(
        SENT_BYTES,
        Unit::Bytes,
        "Bytes of record values a stage produced."
    );
    describe_counter!(
        DLQ_RECORDS,
        Unit::Count,
        "Records sent to the stage's dead-letter topic, by error code."
    );
    describe_counter!(
        ERRORS,
        Unit::Count,
        "Errors a stage hit, by error code and retryability."
    );
    describe_counter!(
        RETRIES,
        Unit::Count,
        "Retries scheduled after a retryable failure."
    );
    describe_counter!(
        TRANSACTIONS_ABORTED,
        Unit::Count,
        "Kafka transactions aborted; their batch is re-processed."
    );
    describe_gauge!(
        CONSUMER_OFFSETS_UNFETCHED,
        Unit::Count,
        "Assigned partitions a consumer group has waited on for longer than the watchdog threshold, because their committed offsets cannot be fetched (0 when none)."
    );
}

/// A batch of records consumed from `topic`.
#[derive(Debug, Clone, Copy)]
pub struct RecordsReceived<'a> {
    pub stage: &'a str,
    pub topic: &'a str,
    pub count: u64,
    /// Sum of the value sizes (payload bytes, without key and headers).
    pub bytes: u64,
}

impl RecordsReceived<'_> {
    pub fn emit(&self) {
        tracing::trace!(
            stage = self.stage,
            topic = self.topic,
            count = self.count,
            bytes = self.bytes,
            "records received"
        );
        let labels = [
            ("stage", self.stage.to_owned()),
            ("topic", self.topic.to_owned()),
        ];
        counter!(RECORDS_RECEIVED, &labels).increment(self.count);
        counter!(RECEIVED_BYTES, &labels).increment(self.bytes);
    }
}

/// Records received per topic (count, value bytes), tallied while a batch is worked on and
/// emitted as [`RecordsReceived`] once its effects are committed, so a batch read twice after
/// an abort is counted once.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct ReceivedTally(std::collections::BTreeMap<String, (u64, u64)>);

impl ReceivedTally {
    /// Counts one record of `topic` with a value of `bytes`.
    pub fn add(&mut self, topic: &str, bytes: u64) {
        match self.0.get_mut(topic) {
            Some((count, sum)) => {
                *count += 1;
                *sum += bytes;
            }
            None => {
                self.0.insert(topic.to_string(), (1, bytes));
            }
        }
    }

    /// Takes in another tally (of a later part of the same batch).
    pub fn merge(&mut self, other: ReceivedTally) {
        for (topic, (count, bytes)) in other.0 {
            let e = self.0.entry(topic).or_default();
            e.0 += count;
            e.1 += bytes;
        }
    }

    /// One [`RecordsReceived`] per topic.
    pub fn emit(&self, stage: &str) {
        for (topic, (count, bytes)) in &self.0 {
            RecordsReceived {
                stage,
                topic,
                count: *count,
                bytes: *bytes,
            }
            .emit();
        }
    }
}

/// A batch of records produced to `topic` (delivered, not merely queued).
#[derive(Debug, Clone, Copy)]
pub struct RecordsSent<'a> {
    pub stage: &'a str,
    pub topic: &'a str,
    pub count: u64,
    pub bytes: u64,
}

impl RecordsSent<'_> {
    pub fn emit(&self) {
        tracing::trace!(
            stage = self.stage,
            topic = self.topic,
            count = self.count,
            bytes = self.bytes,
            "records sent"
        );
        let labels = [
            ("stage", self.stage.to_owned()),
            ("topic", self.topic.to_owned()),
        ];
        counter!(RECORDS_SENT, &labels).increment(self.count);
        counter!(SENT_BYTES, &labels).increment(self.bytes);
    }
}

/// One record from `topic` written to the stage's DLQ with `code`. A warning: nothing is lost,
/// but someone has to look at it (the remediation is in the log line).
#[derive(Debug, Clone, Copy)]
pub struct RecordDeadLettered<'a> {
    pub stage: &'a str,
    /// The topic the record came from.
    pub topic: &'a str,
    pub code: ErrorCode,
}

impl RecordDeadLettered<'_> {
    pub fn emit(&self) {
        tracing::warn!(
            stage = self.stage,
            topic = self.topic,
            error.code = self.code.as_str(),
            remediation = self.code.remediation(),
            "record dead-lettered: {}",
            self.code.summary()
        );
        counter!(
            DLQ_RECORDS,
            "stage" => self.stage.to_owned(),
            "topic" => self.topic.to_owned(),
            "code" => self.code.as_str(),
        )
        .increment(1);
    }
}

/// A stage hit an error. `retryable` is whether this occurrence will be retried, which can
/// differ from `code.retryable()` once the retry budget is spent.
#[derive(Debug, Clone, Copy)]
pub struct StageErrorOccurred<'a> {
    pub stage: &'a str,
    pub code: ErrorCode,
    pub retryable: bool,
}

impl StageErrorOccurred<'_> {
    pub fn emit(&self) {
        if self.retryable {
            tracing::warn!(
                stage = self.stage,
                error.code = self.code.as_str(),
                retryable = true,
                "{}",
                self.code.summary()
            );
        } else {
            tracing::error!(
                stage = self.stage,
                error.code = self.code.as_str(),
                retryable = false,
                remediation = self.code.remediation(),
                "{}",
                self.code.summary()
            );
        }
        counter!(
            ERRORS,
            "stage" => self.stage.to_owned(),
            "code" => self.code.as_str(),
            "retryable" => if self.retryable { "true" } else { "false" },
        )
        .increment(1);
    }
}

/// A retryable failure of `operation` (a fixed name such as `jira.create_issue` or
/// `kafka.commit`, never an id) will be tried again, attempt number `attempt`, after `delay`.
#[derive(Debug, Clone, Copy)]
pub struct RetryScheduled<'a> {
    pub stage: &'a str,
    pub operation: &'a str,
    /// The attempt about to be made (2 for the first retry).
    pub attempt: u32,
    pub delay: Duration,
}

impl RetryScheduled<'_> {
    pub fn emit(&self) {
        tracing::info!(
            stage = self.stage,
            operation = self.operation,
            attempt = self.attempt,
            delay_ms = self.delay.as_millis() as u64,
            "retry scheduled"
        );
        counter!(RETRIES, "stage" => self.stage.to_owned(), "operation" => self.operation.to_owned())
            .increment(1);
    }
}

/// A Kafka transaction was aborted; its batch will be consumed and processed again.
#[derive(Debug, Clone, Copy)]
pub struct TransactionAborted<'a> {
    pub stage: &'a str,
}

impl TransactionAborted<'_> {
    pub fn emit(&self) {
        tracing::warn!(
            stage = self.stage,
            "Kafka transaction aborted; the batch will be re-processed"
        );
        counter!(TRANSACTIONS_ABORTED, "stage" => self.stage.to_owned()).increment(1);
    }
}

/// A consumer has waited longer than its watchdog's threshold for the committed offsets of
/// assigned partitions, so it reads nothing from them (see `kafka::offset_watch`). An error,
/// logged once per episode: the stage cannot make progress until an operator acts. `group` is
/// a label: a stage has one configured group, so it stays bounded.
#[derive(Debug, Clone, Copy)]
pub struct ConsumerOffsetsStalled<'a> {
    pub stage: &'a str,
    pub group: &'a str,
    /// The stalled partitions, `topic[partition]`, comma-separated (log only).
    pub partitions: &'a str,
    pub partition_count: usize,
    pub waited: Duration,
    /// What is most likely holding the offsets back, in words.
    pub cause: &'a str,
    /// Where the runbook says what to do.
    pub runbook: &'a str,
}

impl ConsumerOffsetsStalled<'_> {
    pub fn emit(&self) {
        tracing::error!(
            stage = self.stage,
            group = self.group,
            partitions = self.partitions,
            waited_ms = self.waited.as_millis() as u64,
            runbook = self.runbook,
            "Kafka consumer group {} reads nothing: no committed offsets for {} after {:?}; {}; see {}",
            self.group,
            self.partitions,
            self.waited,
            self.cause,
            self.runbook
        );
        gauge!(
            CONSUMER_OFFSETS_UNFETCHED,
            "stage" => self.stage.to_owned(),
            "group" => self.group.to_owned(),
        )
        .set(self.partition_count as f64);
    }
}

/// The stall of [`ConsumerOffsetsStalled`] ended: the group's offsets could be fetched again.
#[derive(Debug, Clone, Copy)]
pub struct ConsumerOffsetsRecovered<'a> {
    pub stage: &'a str,
    pub group: &'a str,
    /// From the first failed look to the recovery.
    pub stalled_for: Duration,
}

impl ConsumerOffsetsRecovered<'_> {
    pub fn emit(&self) {
        tracing::info!(
            stage = self.stage,
            group = self.group,
            stalled_for_ms = self.stalled_for.as_millis() as u64,
            "Kafka consumer group {} recovered: its committed offsets can be fetched again",
            self.group
        );
        gauge!(
            CONSUMER_OFFSETS_UNFETCHED,
            "stage" => self.stage.to_owned(),
            "group" => self.group.to_owned(),
        )
        .set(0.0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use metrics_exporter_prometheus::PrometheusBuilder;

    #[test]
    fn events_count_with_bounded_labels() {
        // A local recorder: the global one belongs to the health module and other tests.
        let recorder = PrometheusBuilder::new().build_recorder();
        let handle = recorder.handle();
        metrics::with_local_recorder(&recorder, || {
            describe();
            RecordsReceived {
                stage: "transformer",
                topic: "jira.issues",
                count: 3,
                bytes: 300,
            }
            .emit();
            RecordDeadLettered {
                stage: "transformer",
                topic: "jira.issues",
                code: ErrorCode::AvroBodyInvalid,
            }
            .emit();
            StageErrorOccurred {
                stage: "jira-sink",
                code: ErrorCode::RateLimited,
                retryable: true,
            }
            .emit();
            RetryScheduled {
                stage: "jira-sink",
                operation: "jira.create_issue",
                attempt: 2,
                delay: Duration::from_millis(250),
            }
            .emit();
            TransactionAborted {
                stage: "transformer",
            }
            .emit();
            ConsumerOffsetsStalled {
                stage: "jira-sink",
                group: "sfjira-jira-sink",
                partitions: "jira.commands[0], jira.commands[1]",
                partition_count: 2,
                waited: Duration::from_secs(31),
                cause: "offsets unstable",
                runbook: "docs/runbook.md",
            }
            .emit();
            ConsumerOffsetsStalled {
                stage: "transformer",
                group: "sfjira-transformer",
                partitions: "jira.issues[0]",
                partition_count: 1,
                waited: Duration::from_secs(31),
                cause: "offsets unstable",
                runbook: "docs/runbook.md",
            }
            .emit();
            ConsumerOffsetsRecovered {
                stage: "transformer",
                group: "sfjira-transformer",
                stalled_for: Duration::from_secs(40),
            }
            .emit();
        });
        let text = handle.render();
        for line in [
            r#"sfjira_records_received_total{stage="transformer",topic="jira.issues"} 3"#,
            r#"sfjira_received_bytes_total{stage="transformer",topic="jira.issues"} 300"#,
            r#"sfjira_dlq_records_total{stage="transformer",topic="jira.issues",code="SFJ-1003"} 1"#,
            r#"sfjira_errors_total{stage="jira-sink",code="SFJ-4001",retryable="true"} 1"#,
            r#"sfjira_retries_total{stage="jira-sink",operation="jira.create_issue"} 1"#,
            r#"sfjira_transactions_aborted_total{stage="transformer"} 1"#,
            r#"sfjira_consumer_offsets_unfetched_partitions{stage="jira-sink",group="sfjira-jira-sink"} 2"#,
            r#"sfjira_consumer_offsets_unfetched_partitions{stage="transformer",group="sfjira-transformer"} 0"#,
            "# HELP sfjira_dlq_records_total",
        ] {
            assert!(text.contains(line), "missing {line:?} in:\n{text}");
        }
    }

    #[test]
    fn a_tally_emits_each_topics_records_once_merged() {
        let recorder = PrometheusBuilder::new().build_recorder();
        let handle = recorder.handle();
        let mut first = ReceivedTally::default();
        first.add("a", 10);
        first.add("b", 5);
        let mut later = ReceivedTally::default();
        later.add("a", 30);
        first.merge(later);
        metrics::with_local_recorder(&recorder, || first.emit("transformer"));
        let text = handle.render();
        for line in [
            r#"sfjira_records_received_total{stage="transformer",topic="a"} 2"#,
            r#"sfjira_received_bytes_total{stage="transformer",topic="a"} 40"#,
            r#"sfjira_records_received_total{stage="transformer",topic="b"} 1"#,
            r#"sfjira_received_bytes_total{stage="transformer",topic="b"} 5"#,
        ] {
            assert!(text.contains(line), "missing {line:?} in:\n{text}");
        }
    }
}
