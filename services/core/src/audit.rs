//! `sfjira.audit`: every write a sink makes (or decides not to make), with the values before
//! and after — what `sfjira rollback` inverts and what an operator reads to answer "who changed
//! this field, and why".
//!
//! Key: the target reference (`jira:PROJ-7`, `salesforce:Opportunity:006…`), so one record's
//! history is on one partition in order. Value: a JSON [`AuditEntry`]. The sinks write it in the
//! same Kafka transaction as the consumed offsets, so a command whose offset is committed has
//! its audit entry, and the command ids in the audit are the sinks' dedupe memory: a replayed
//! command whose id is already there as applied is skipped ([`applied_command_ids`]).

use std::collections::{BTreeMap, HashSet};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::{Offset, TopicPartitionList};
use serde::{Deserialize, Serialize};

use crate::kafka::{OutRecord, read_to_end};

/// The audit topic's base name (before `kafka.topic_prefix`).
pub const TOPIC: &str = "sfjira.audit";

/// What a sink did with a command.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AuditResult {
    /// Written to the target.
    Applied,
    /// Not written, on purpose: already applied, `update_only` without a target, nothing
    /// changed. `detail` says which.
    Skipped,
    /// A `BOTH`-owned field was not written because the target changed later (last writer
    /// wins by source time).
    Superseded,
    /// Not written: the command went to the sink's DLQ (`detail` has the code).
    Failed,
}

/// One audited write.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AuditEntry {
    pub command_id: String,
    pub flow: String,
    /// `jira-sink`, `salesforce-sink`.
    pub sink: String,
    /// The record written (`jira:PROJ-7`, `salesforce:Opportunity:006…`); for a failed create,
    /// the command's external reference.
    pub target: String,
    /// The command's `target.external_ref` (the source record).
    pub external_ref: String,
    /// `create`, `update`, `transition`, `comment`, `worklog`, `delete`, `delete_comment`,
    /// `delete_worklog`, `close`, `skip`.
    pub operation: String,
    /// Field values before the write (target field name → JSON), as far as known.
    #[serde(default)]
    pub before: BTreeMap<String, serde_json::Value>,
    /// Field values written.
    #[serde(default)]
    pub after: BTreeMap<String, serde_json::Value>,
    pub result: AuditResult,
    /// Why (skips, failures: the error code and message — never secrets).
    #[serde(default)]
    pub detail: Option<String>,
    /// When the sink started and finished the write, epoch milliseconds.
    pub started_ms: i64,
    pub finished_ms: i64,
    /// The source commit time of the change that caused the command, epoch milliseconds.
    #[serde(default)]
    pub source_time_ms: i64,
}

impl AuditEntry {
    /// The record to produce into `topic`.
    pub fn record(&self, topic: &str) -> OutRecord {
        OutRecord::new(topic)
            .key(self.target.clone())
            .payload(serde_json::to_vec(self).expect("an audit entry serialises"))
            .header("sfjira.command-id", self.command_id.clone())
    }

    /// Parses a value of the audit topic.
    pub fn parse(payload: &[u8]) -> Option<AuditEntry> {
        serde_json::from_slice(payload).ok()
    }
}

/// The entries of `topic` written in the last `lookback` (all of them for `None`), oldest
/// first per partition. Blocking: call from `spawn_blocking` in async code.
///
/// # Errors
///
/// Kafka errors (topic missing, broker unreachable).
pub fn read_since(
    base: &ClientConfig,
    topic: &str,
    lookback: Option<Duration>,
) -> anyhow::Result<Vec<AuditEntry>> {
    let start = match lookback {
        Some(lookback) => offsets_for_time(base, topic, SystemTime::now() - lookback)?,
        None => BTreeMap::new(),
    };
    Ok(read_to_end(base, topic, &start)?
        .iter()
        .filter_map(|m| m.payload().and_then(AuditEntry::parse))
        .collect())
}

/// The ids of commands applied (or deliberately skipped) by `sink` in the last `lookback`: a
/// sink restarting re-reads at most its uncommitted window, so a day's audit covers it with a
/// wide margin.
///
/// # Errors
///
/// As [`read_since`].
pub fn applied_command_ids(
    base: &ClientConfig,
    topic: &str,
    sink: &str,
    lookback: Duration,
) -> anyhow::Result<HashSet<String>> {
    Ok(read_since(base, topic, Some(lookback))?
        .into_iter()
        .filter(|e| {
            e.sink == sink && matches!(e.result, AuditResult::Applied | AuditResult::Skipped)
        })
        .map(|e| e.command_id)
        .collect())
}

/// Per partition, the first offset at or after `at`; a partition with nothing that recent
/// gets its end offset (an absent partition would be read from the beginning).
fn offsets_for_time(
    base: &ClientConfig,
    topic: &str,
    at: SystemTime,
) -> anyhow::Result<BTreeMap<i32, i64>> {
    let mut cfg = base.clone();
    cfg.set("group.id", "sfjira-audit-reader")
        .set("enable.auto.commit", "false");
    let consumer: BaseConsumer = cfg.create()?;
    let timeout = Duration::from_secs(30);
    let metadata = consumer.fetch_metadata(Some(topic), timeout)?;
    let at_ms = at
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_millis() as i64;
    let mut tpl = TopicPartitionList::new();
    let mut partitions = Vec::new();
    for t in metadata.topics().iter().filter(|t| t.name() == topic) {
        for p in t.partitions() {
            tpl.add_partition_offset(topic, p.id(), Offset::Offset(at_ms))?;
            partitions.push(p.id());
        }
    }
    let found = consumer.offsets_for_times(tpl, timeout)?;
    let mut out = BTreeMap::new();
    for p in partitions {
        let offset = match found.find_partition(topic, p).map(|e| e.offset()) {
            Some(Offset::Offset(o)) => o,
            // Nothing at or after `at`: start at the end (read nothing).
            _ => crate::kafka::reader::watermarks_once_led(&consumer, topic, p)?.1,
        };
        out.insert(p, offset);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entry_round_trips_through_json() {
        let e = AuditEntry {
            command_id: "c1".into(),
            flow: "opportunity-to-story".into(),
            sink: "jira-sink".into(),
            target: "jira:PROJ-7".into(),
            external_ref: "salesforce:Opportunity:006A".into(),
            operation: "update".into(),
            before: BTreeMap::from([("summary".into(), serde_json::json!("old"))]),
            after: BTreeMap::from([("summary".into(), serde_json::json!("new"))]),
            result: AuditResult::Applied,
            detail: None,
            started_ms: 1,
            finished_ms: 2,
            source_time_ms: 0,
        };
        let rec = e.record("sfjira.audit");
        assert_eq!(AuditEntry::parse(rec.payload.as_deref().unwrap()), Some(e));
    }
}
