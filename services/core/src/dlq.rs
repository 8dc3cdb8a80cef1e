//! The dead-letter router: what a stage does with a record it cannot handle, so the pipeline
//! moves on and nothing is lost.
//!
//! The DLQ record for a failed record of topic `T` goes to `<stage>.dlq` and carries:
//! - the original key and value bytes, unchanged, the original headers and the original
//!   timestamp — so `sfjira dlq replay` can put back exactly what failed;
//! - the Kafka Connect error headers (`__connect.errors.*`, UTF-8 text, numbers in decimal), so
//!   existing Kafka tooling reads them (reference/kafka-stack.md §5.1);
//! - sfjira's own: `sfjira.error.code` (a code of the [`crate::errors`] catalog),
//!   `sfjira.error.retryable`, `sfjira.error.attempts`, `sfjira.error.first_failed_at`
//!   (RFC 3339, UTC; kept from an earlier failure when a replayed record fails again).
//!
//! Error texts are checked against the deployment's secret values before they are written:
//! a secret that leaked into an error message is replaced by `[redacted]`.

use std::time::SystemTime;

use chrono::{DateTime, SecondsFormat, Utc};
use rdkafka::message::Message;

use crate::errors::StageError;
use crate::kafka::{IdempotentProducer, OutRecord};
use crate::telemetry::events::RecordDeadLettered;

pub const H_TOPIC: &str = "__connect.errors.topic";
pub const H_PARTITION: &str = "__connect.errors.partition";
pub const H_OFFSET: &str = "__connect.errors.offset";
pub const H_CONNECTOR: &str = "__connect.errors.connector.name";
pub const H_TASK: &str = "__connect.errors.task.id";
pub const H_STAGE: &str = "__connect.errors.stage";
pub const H_CLASS: &str = "__connect.errors.class.name";
pub const H_EXCEPTION_CLASS: &str = "__connect.errors.exception.class.name";
pub const H_EXCEPTION_MESSAGE: &str = "__connect.errors.exception.message";
pub const H_EXCEPTION_STACKTRACE: &str = "__connect.errors.exception.stacktrace";
pub const H_CODE: &str = "sfjira.error.code";
pub const H_RETRYABLE: &str = "sfjira.error.retryable";
pub const H_ATTEMPTS: &str = "sfjira.error.attempts";
pub const H_FIRST_FAILED_AT: &str = "sfjira.error.first_failed_at";

/// Every header the router adds, in the order it adds them.
pub const ERROR_HEADERS: &[&str] = &[
    H_TOPIC,
    H_PARTITION,
    H_OFFSET,
    H_CONNECTOR,
    H_TASK,
    H_STAGE,
    H_CLASS,
    H_EXCEPTION_CLASS,
    H_EXCEPTION_MESSAGE,
    H_EXCEPTION_STACKTRACE,
    H_CODE,
    H_RETRYABLE,
    H_ATTEMPTS,
    H_FIRST_FAILED_AT,
];

/// Where in a stage the record failed, in Kafka Connect's vocabulary (`__connect.errors.stage`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailedAt {
    /// Reading the record's value (e.g. Avro decoding).
    ValueConverter,
    /// Reading the record's key.
    KeyConverter,
    /// Mapping it (the transformer).
    Transformation,
    /// Writing it to the target system (the sinks).
    TaskPut,
    /// Capturing it from the source system (the sources).
    TaskPoll,
    /// Producing the stage's output to Kafka.
    KafkaProduce,
}

impl FailedAt {
    pub fn as_str(self) -> &'static str {
        match self {
            FailedAt::ValueConverter => "VALUE_CONVERTER",
            FailedAt::KeyConverter => "KEY_CONVERTER",
            FailedAt::Transformation => "TRANSFORMATION",
            FailedAt::TaskPut => "TASK_PUT",
            FailedAt::TaskPoll => "TASK_POLL",
            FailedAt::KafkaProduce => "KAFKA_PRODUCE",
        }
    }
}

/// The origin of a failed record: its place in Kafka and its content.
#[derive(Debug, Clone)]
pub struct FailedRecord {
    pub topic: String,
    pub partition: i32,
    pub offset: i64,
    /// The original record, as a record to re-produce (key, value, headers, timestamp).
    pub record: OutRecord,
}

impl FailedRecord {
    pub fn from_message<M: Message>(msg: &M) -> Self {
        FailedRecord {
            topic: msg.topic().to_string(),
            partition: msg.partition(),
            offset: msg.offset(),
            record: OutRecord::copy_of(msg, msg.topic()),
        }
    }
}

/// How many times a record was tried, and since when it has been failing.
#[derive(Debug, Clone, Copy)]
pub struct Attempts {
    pub count: u32,
    pub first_failed_at: SystemTime,
}

impl Attempts {
    /// A failure on the first try (non-retryable errors).
    pub fn once() -> Self {
        Attempts {
            count: 1,
            first_failed_at: SystemTime::now(),
        }
    }
}

#[derive(Debug, Clone)]
pub struct DlqRouter {
    stage: String,
    dlq_topic: String,
    task_id: String,
    secrets: Vec<String>,
}

impl DlqRouter {
    /// A router for `stage` (e.g. `transformer`) writing to `<topic_prefix><stage>.dlq`.
    /// `task_id` tells instances apart (`service.instance_id`).
    pub fn new(stage: &str, topic_prefix: &str, task_id: &str) -> Self {
        DlqRouter {
            stage: stage.to_string(),
            dlq_topic: format!("{topic_prefix}{stage}.dlq"),
            task_id: task_id.to_string(),
            secrets: Vec::new(),
        }
    }

    /// Secret values that must never appear in a DLQ header (the deployment's credentials).
    pub fn redacting(mut self, secrets: impl IntoIterator<Item = String>) -> Self {
        self.secrets
            .extend(secrets.into_iter().filter(|s| s.len() >= 4));
        self
    }

    pub fn dlq_topic(&self) -> &str {
        &self.dlq_topic
    }

    /// The DLQ record for `failed`: original bytes, headers and timestamp, plus the error headers.
    /// Emits [`RecordDeadLettered`]; producing it is the caller's (inside its transaction when
    /// it has one).
    pub fn dead_letter(
        &self,
        failed: &FailedRecord,
        err: &StageError,
        at: FailedAt,
        attempts: Attempts,
    ) -> OutRecord {
        let mut out = failed.record.clone();
        out.topic = self.dlq_topic.clone();
        out.partition = None;
        // A replayed record that fails again keeps the time of its first failure.
        let first_failed_at = failed
            .record
            .header_value(H_FIRST_FAILED_AT)
            .and_then(|v| std::str::from_utf8(v).ok())
            .map(str::to_string)
            .unwrap_or_else(|| rfc3339(attempts.first_failed_at));
        let headers: [(&str, String); 14] = [
            (H_TOPIC, failed.topic.clone()),
            (H_PARTITION, failed.partition.to_string()),
            (H_OFFSET, failed.offset.to_string()),
            (H_CONNECTOR, format!("sfjira-{}", self.stage)),
            (H_TASK, self.task_id.clone()),
            (H_STAGE, at.as_str().to_string()),
            (H_CLASS, format!("sfjira::{}", self.stage)),
            (H_EXCEPTION_CLASS, err.class.to_string()),
            (H_EXCEPTION_MESSAGE, self.redact(&err.to_string())),
            (H_EXCEPTION_STACKTRACE, self.redact(&err.chain())),
            (H_CODE, err.code.as_str().to_string()),
            (H_RETRYABLE, err.code.retryable().to_string()),
            (H_ATTEMPTS, attempts.count.to_string()),
            (H_FIRST_FAILED_AT, first_failed_at),
        ];
        for (name, value) in headers {
            out.set_header(name, value);
        }
        RecordDeadLettered {
            stage: &self.stage,
            topic: &failed.topic,
            code: err.code,
        }
        .emit();
        out
    }

    /// Builds the DLQ record and sends it with an idempotent producer (stages without a
    /// transaction: sinks, the sources' HTTP paths).
    pub async fn send(
        &self,
        producer: &IdempotentProducer,
        failed: &FailedRecord,
        err: &StageError,
        at: FailedAt,
        attempts: Attempts,
    ) -> Result<(), StageError> {
        let record = self.dead_letter(failed, err, at, attempts);
        producer.send(&record).await.map(|_| ())
    }

    fn redact(&self, text: &str) -> String {
        self.secrets
            .iter()
            .fold(text.to_string(), |t, s| t.replace(s.as_str(), "[redacted]"))
    }
}

fn rfc3339(t: SystemTime) -> String {
    DateTime::<Utc>::from(t).to_rfc3339_opts(SecondsFormat::Millis, true)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::errors::ErrorCode;

    fn failed() -> FailedRecord {
        let mut record = OutRecord::new("jira.issues")
            .key(b"10001".to_vec())
            .payload(vec![0, 0, 0, 0, 7, 1, 2]);
        record
            .headers
            .push(("traceparent".into(), Some(b"00-abc-def-01".to_vec())));
        record.timestamp = Some(1_700_000_000_000);
        FailedRecord {
            topic: "jira.issues".into(),
            partition: 3,
            offset: 42,
            record,
        }
    }

    #[test]
    fn dead_letter_keeps_the_original_and_adds_every_header() {
        let router =
            DlqRouter::new("transformer", "", "i-1").redacting(["hunter2-secret".to_string()]);
        let err = StageError::new(ErrorCode::AvroBodyInvalid, "bad body near hunter2-secret");
        let out = router.dead_letter(&failed(), &err, FailedAt::ValueConverter, Attempts::once());
        assert_eq!(out.topic, "transformer.dlq");
        assert_eq!(out.key.as_deref(), Some(&b"10001"[..]));
        assert_eq!(out.payload.as_deref(), Some(&[0, 0, 0, 0, 7, 1, 2][..]));
        assert_eq!(out.timestamp, Some(1_700_000_000_000));
        assert_eq!(out.header_value("traceparent"), Some(&b"00-abc-def-01"[..]));
        for h in ERROR_HEADERS {
            assert!(out.header_value(h).is_some(), "missing {h}");
        }
        let text = |h| String::from_utf8(out.header_value(h).unwrap().to_vec()).unwrap();
        assert_eq!(text(H_OFFSET), "42");
        assert_eq!(text(H_STAGE), "VALUE_CONVERTER");
        assert_eq!(text(H_CODE), "SFJ-1003");
        assert_eq!(text(H_RETRYABLE), "false");
        assert!(
            !text(H_EXCEPTION_MESSAGE).contains("hunter2"),
            "{}",
            text(H_EXCEPTION_MESSAGE)
        );
    }

    #[test]
    fn a_replayed_failure_keeps_its_first_failure_time_and_headers_are_not_doubled() {
        let router = DlqRouter::new("jira-sink", "", "i-1");
        let err = StageError::new(ErrorCode::RateLimited, "429");
        let mut f = failed();
        f.record
            .set_header(H_FIRST_FAILED_AT, "2026-01-01T00:00:00.000Z");
        f.record.set_header(H_CODE, "SFJ-1001");
        let out = router.dead_letter(&f, &err, FailedAt::TaskPut, Attempts::once());
        assert_eq!(
            out.header_value(H_FIRST_FAILED_AT),
            Some(&b"2026-01-01T00:00:00.000Z"[..])
        );
        assert_eq!(out.headers.iter().filter(|(n, _)| n == H_CODE).count(), 1);
        assert_eq!(out.header_value(H_CODE), Some(&b"SFJ-4001"[..]));
    }
}
