//! The transformer's typed internal events: each logs and counts in one place, so metric names
//! and labels stay consistent (after Vector's `internal_events`).

use metrics::{counter, histogram};

use crate::command::CommandKind;

/// Commands of one kind produced to `topic` in a committed transaction.
pub struct CommandProduced<'a> {
    pub topic: &'a str,
    pub kind: CommandKind,
    pub count: u64,
}

impl CommandProduced<'_> {
    pub fn emit(&self) {
        tracing::debug!(topic = self.topic, kind = ?self.kind, count = self.count, "commands produced");
        counter!("sfjira_transformer_commands_total", "topic" => self.topic.to_owned(), "kind" => format!("{:?}", self.kind).to_lowercase())
            .increment(self.count);
    }
}

/// A record (or one flow of it) that produced nothing, and why. `intentional` discards are the
/// design working (echoes, conditions); they are not errors.
pub struct RecordDiscarded<'a> {
    pub reason: &'a str,
}

impl RecordDiscarded<'_> {
    pub fn emit(&self) {
        tracing::trace!(reason = self.reason, "record discarded");
        counter!("sfjira_transformer_discarded_total", "reason" => self.reason.to_owned(), "intentional" => "true").increment(1);
    }
}

/// One transaction committed: its records and how long it was open, from its first record's
/// chunk to the commit. (The metrics keep their `batch` names, which dashboards know.)
pub struct TransactionCommitted {
    pub records: usize,
    pub seconds: f64,
}

impl TransactionCommitted {
    pub fn emit(&self) {
        tracing::debug!(
            records = self.records,
            seconds = self.seconds,
            "transaction committed"
        );
        histogram!("sfjira_transformer_batch_seconds").record(self.seconds);
        counter!("sfjira_transformer_batches_total").increment(1);
    }
}

/// The records of a committed transaction: for each, how long from its append to the input topic
/// (its Kafka timestamp) until its commands became visible — the transformer's processing
/// latency per record, queueing included.
pub struct RecordsCommitted<'a> {
    /// The records' Kafka timestamps, epoch ms.
    pub appended_ms: &'a [i64],
    pub committed_ms: i64,
}

impl RecordsCommitted<'_> {
    pub fn emit(&self) {
        let latency = histogram!("sfjira_transformer_record_latency_seconds");
        for at in self.appended_ms {
            latency.record((self.committed_ms - at).max(0) as f64 / 1000.0);
        }
    }
}
