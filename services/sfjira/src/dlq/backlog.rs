//! The DLQ backlog: what is waiting in `<stage>.dlq` and has not been replayed yet.
//!
//! Kafka data is never deleted to mark a record as handled. Instead, the replay position of
//! each DLQ lives in `sfjira.checkpoints` (compacted) under `dlq-replay:<dlq topic>`, as a
//! [`ReplayCheckpoint`]: per partition, the offset below which everything was replayed, plus
//! the offsets above it that were replayed out of order (when a filter skipped earlier ones).
//! The checkpoint is written in the same Kafka transaction as the replayed records, so a record
//! is replayed once even if the replay is interrupted.

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, Utc};
use rdkafka::message::{Headers, Message, OwnedMessage};
use serde::{Deserialize, Serialize};
use sfjira_core::config::SfjiraConfig;
use sfjira_core::dlq;
use sfjira_core::kafka::{client_config, latest_by_key, read_to_end, topic_name};

/// The stages that have a DLQ, in pipeline order.
pub const STAGES: &[&str] = &[
    "salesforce-source",
    "jira-source",
    "transformer",
    "jira-sink",
    "salesforce-sink",
];

pub const CHECKPOINT_TOPIC: &str = "sfjira.checkpoints";

/// How far replay of one DLQ got (see the module comment).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReplayCheckpoint {
    pub partitions: BTreeMap<i32, PartitionProgress>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartitionProgress {
    /// Every record below this offset has been replayed (or was never there).
    pub position: i64,
    /// Offsets at or above `position` that were replayed.
    #[serde(default, skip_serializing_if = "BTreeSet::is_empty")]
    pub replayed: BTreeSet<i64>,
}

impl ReplayCheckpoint {
    pub fn key(dlq_topic: &str) -> String {
        format!("dlq-replay:{dlq_topic}")
    }

    pub fn is_replayed(&self, partition: i32, offset: i64) -> bool {
        self.partitions
            .get(&partition)
            .is_some_and(|p| offset < p.position || p.replayed.contains(&offset))
    }

    /// Marks a record replayed; [`Self::compact`] then folds it into the position when it can.
    pub fn mark(&mut self, partition: i32, offset: i64) {
        let p = self.partitions.entry(partition).or_default();
        if offset >= p.position {
            p.replayed.insert(offset);
        }
    }

    /// Advances each partition's position over replayed offsets and over offsets that hold no
    /// pending record (`pending` = offsets still in the backlog, per partition).
    pub fn compact(&mut self, pending: &BTreeMap<i32, BTreeSet<i64>>) {
        for (partition, p) in self.partitions.iter_mut() {
            let next_pending = pending
                .get(partition)
                .and_then(|s| s.iter().find(|o| **o >= p.position).copied());
            let limit = next_pending.unwrap_or(i64::MAX);
            if let Some(&max) = p.replayed.iter().filter(|o| **o < limit).max() {
                p.position = p.position.max(max + 1);
            }
            let position = p.position;
            p.replayed.retain(|o| *o >= position);
        }
    }

    /// The first offset to read per partition.
    pub fn start_offsets(&self) -> BTreeMap<i32, i64> {
        self.partitions
            .iter()
            .map(|(k, v)| (*k, v.position))
            .collect()
    }
}

/// One dead-lettered record, with its error headers parsed.
#[derive(Debug, Clone, Serialize)]
pub struct DlqEntry {
    pub stage: String,
    pub dlq_topic: String,
    pub partition: i32,
    pub offset: i64,
    pub key: Option<String>,
    pub code: Option<String>,
    pub message: Option<String>,
    pub origin_topic: Option<String>,
    pub failed_stage: Option<String>,
    pub attempts: Option<String>,
    pub first_failed_at: Option<String>,
    pub dead_lettered_at: Option<DateTime<Utc>>,
    pub replay_count: u32,
    #[serde(skip)]
    pub record: OwnedMessage,
}

pub fn header(msg: &OwnedMessage, name: &str) -> Option<String> {
    let hs = msg.headers()?;
    hs.iter()
        .filter(|h| h.key == name)
        .last()
        .and_then(|h| h.value)
        .map(|v| String::from_utf8_lossy(v).into_owned())
}

fn entry(stage: &str, dlq_topic: &str, m: OwnedMessage) -> DlqEntry {
    let h = |n| header(&m, n);
    DlqEntry {
        stage: stage.to_string(),
        dlq_topic: dlq_topic.to_string(),
        partition: m.partition(),
        offset: m.offset(),
        key: m.key().map(|k| String::from_utf8_lossy(k).into_owned()),
        code: h(dlq::H_CODE),
        message: h(dlq::H_EXCEPTION_MESSAGE),
        origin_topic: h(dlq::H_TOPIC),
        failed_stage: h(dlq::H_STAGE),
        attempts: h(dlq::H_ATTEMPTS),
        first_failed_at: h(dlq::H_FIRST_FAILED_AT),
        dead_lettered_at: m
            .timestamp()
            .to_millis()
            .and_then(DateTime::from_timestamp_millis),
        replay_count: h(super::replay::H_REPLAY_COUNT)
            .and_then(|v| v.parse().ok())
            .unwrap_or(0),
        record: m,
    }
}

/// The checkpoint of `dlq_topic` (the latest value under its key).
pub async fn load_checkpoint(
    cfg: &SfjiraConfig,
    dlq_topic: &str,
) -> anyhow::Result<ReplayCheckpoint> {
    let base = client_config(&cfg.kafka);
    let topic = topic_name(&cfg.kafka, CHECKPOINT_TOPIC);
    let key = ReplayCheckpoint::key(dlq_topic);
    let mut latest = tokio::task::spawn_blocking(move || latest_by_key(&base, &topic)).await??;
    match latest.remove(&key).as_ref().and_then(|m| m.payload()) {
        Some(bytes) => serde_json::from_slice(bytes)
            .map_err(|e| anyhow::anyhow!("checkpoint {key} is not readable: {e}")),
        None => Ok(ReplayCheckpoint::default()), // never replayed, or a tombstone (reset)
    }
}

/// Everything in `stage`'s DLQ that has not been replayed, with the stage's checkpoint.
pub async fn load(
    cfg: &SfjiraConfig,
    stage: &str,
) -> anyhow::Result<(Vec<DlqEntry>, ReplayCheckpoint)> {
    let dlq_topic = topic_name(&cfg.kafka, &format!("{stage}.dlq"));
    let checkpoint = load_checkpoint(cfg, &dlq_topic).await?;
    let base = client_config(&cfg.kafka);
    let start = checkpoint.start_offsets();
    let t = dlq_topic.clone();
    let records = tokio::task::spawn_blocking(move || read_to_end(&base, &t, &start))
        .await?
        .map_err(|e| {
            anyhow::anyhow!(
                "reading {dlq_topic}: {e} (run `sfjira topics apply` if it does not exist)"
            )
        })?;
    let entries = records
        .into_iter()
        .filter(|m| !checkpoint.is_replayed(m.partition(), m.offset()))
        .map(|m| entry(stage, &dlq_topic, m))
        .collect();
    Ok((entries, checkpoint))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn out_of_order_replays_are_remembered_until_the_gap_closes() {
        let mut c = ReplayCheckpoint::default();
        // Backlog on partition 0: offsets 3, 5, 8. A filter replays 5 first.
        let mut pending: BTreeMap<i32, BTreeSet<i64>> =
            BTreeMap::from([(0, BTreeSet::from([3, 8]))]);
        c.mark(0, 5);
        c.compact(&pending);
        assert!(c.is_replayed(0, 5) && !c.is_replayed(0, 3) && !c.is_replayed(0, 8));
        assert_eq!(
            c.partitions[&0].position, 0,
            "3 is still pending, so the position stays"
        );
        // Then 3 is replayed: the position jumps past 5, and the sparse set empties.
        pending.get_mut(&0).unwrap().remove(&3);
        c.mark(0, 3);
        c.compact(&pending);
        assert_eq!(
            c.partitions[&0],
            PartitionProgress {
                position: 6,
                replayed: BTreeSet::new()
            }
        );
        assert!(!c.is_replayed(0, 8));
        let json = serde_json::to_string(&c).unwrap();
        assert_eq!(serde_json::from_str::<ReplayCheckpoint>(&json).unwrap(), c);
    }
}
