//! `sfjira dlq replay`: puts dead-lettered records back on the topic they failed from.
//!
//! Each batch is one Kafka transaction holding the replayed records and the DLQ's new
//! [`ReplayCheckpoint`], so an interrupted replay neither loses nor repeats a record. The
//! transactional id is fixed per DLQ, so two replays of the same DLQ at once fence each other
//! instead of both replaying.
//!
//! A replayed record is the original (key, value, headers) minus the DLQ's error headers, plus
//! `sfjira.replay.count` and `sfjira.replayed-from`; `sfjira.error.first_failed_at` stays, so
//! if it fails again its new DLQ entry still says when the trouble started. Its timestamp is
//! the replay time (an old timestamp could put it straight past the topic's retention); the
//! original one travels in `sfjira.original-timestamp`.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use rdkafka::message::{Headers, Message};
use sfjira_core::config::SfjiraConfig;
use sfjira_core::dlq;
use sfjira_core::kafka::{OutRecord, TransactionalProducer, client_config, topic_name};

use super::backlog::{CHECKPOINT_TOPIC, DlqEntry, ReplayCheckpoint};

pub const H_REPLAY_COUNT: &str = "sfjira.replay.count";
pub const H_REPLAYED_FROM: &str = "sfjira.replayed-from";
pub const H_ORIGINAL_TIMESTAMP: &str = "sfjira.original-timestamp";

/// Records per transaction: progress is durable batch by batch.
const BATCH: usize = 100;
const TXN_TIMEOUT: Duration = Duration::from_secs(30);

/// What to do with the selected records.
pub struct ReplayPlan<'a> {
    pub dlq_topic: &'a str,
    pub entries: Vec<&'a DlqEntry>,
    /// Every offset still in the backlog before this replay (to advance the checkpoint).
    pub backlog: BTreeMap<i32, BTreeSet<i64>>,
    pub checkpoint: ReplayCheckpoint,
    /// Send everything here instead of each record's `__connect.errors.topic`.
    pub to_topic: Option<String>,
    /// Records per second at most (None: as fast as Kafka takes them).
    pub rate: Option<f64>,
}

/// The record to re-produce for `entry`, or why it cannot be replayed.
pub fn replay_record(entry: &DlqEntry, to_topic: Option<&str>) -> Result<OutRecord, String> {
    let target = match to_topic {
        Some(t) => t.to_string(),
        None => entry.origin_topic.clone().ok_or_else(|| {
            format!(
                "{}/{}/{} has no {} header; pass --to-topic",
                entry.dlq_topic,
                entry.partition,
                entry.offset,
                dlq::H_TOPIC
            )
        })?,
    };
    let m = &entry.record;
    let mut out = OutRecord::new(target);
    out.key = m.key().map(<[u8]>::to_vec);
    out.payload = m.payload().map(<[u8]>::to_vec);
    if let Some(hs) = m.headers() {
        out.headers = hs
            .iter()
            .filter(|h| {
                h.key == dlq::H_FIRST_FAILED_AT
                    || !(h.key.starts_with("__connect.errors.")
                        || h.key.starts_with("sfjira.error."))
            })
            .map(|h| (h.key.to_string(), h.value.map(<[u8]>::to_vec)))
            .collect();
    }
    out.set_header(H_REPLAY_COUNT, (entry.replay_count + 1).to_string());
    out.set_header(
        H_REPLAYED_FROM,
        format!("{}/{}/{}", entry.dlq_topic, entry.partition, entry.offset),
    );
    if let Some(ts) = m.timestamp().to_millis() {
        out.set_header(H_ORIGINAL_TIMESTAMP, ts.to_string());
    }
    Ok(out)
}

/// Replays `plan.entries`; returns how many were replayed.
pub async fn run(cfg: &SfjiraConfig, mut plan: ReplayPlan<'_>) -> anyhow::Result<usize> {
    // Everything is checked before anything is sent.
    let records: Vec<(&DlqEntry, OutRecord)> = plan
        .entries
        .iter()
        .map(|e| replay_record(e, plan.to_topic.as_deref()).map(|r| (*e, r)))
        .collect::<Result<_, _>>()
        .map_err(|e| anyhow::anyhow!(e))?;
    let base = client_config(&cfg.kafka);
    let txn_id = format!("sfjira-dlq-replay-{}", plan.dlq_topic);
    let mut producer = TransactionalProducer::new(&base, &txn_id, TXN_TIMEOUT).await?;
    let checkpoint_topic = topic_name(&cfg.kafka, CHECKPOINT_TOPIC);
    let pause = plan.rate.map(|r| Duration::from_secs_f64(1.0 / r));
    let mut done = 0;
    for batch in records.chunks(BATCH) {
        producer.begin()?;
        for (entry, record) in batch {
            producer.send(record).await?;
            plan.checkpoint.mark(entry.partition, entry.offset);
            plan.backlog
                .entry(entry.partition)
                .or_default()
                .remove(&entry.offset);
            if let Some(p) = pause {
                tokio::time::sleep(p).await;
            }
        }
        plan.checkpoint.compact(&plan.backlog);
        let value = serde_json::to_vec(&plan.checkpoint)?;
        let cp = OutRecord::new(&checkpoint_topic)
            .key(ReplayCheckpoint::key(plan.dlq_topic))
            .payload(value);
        producer.send(&cp).await?;
        producer.commit().await?;
        done += batch.len();
    }
    Ok(done)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rdkafka::message::{Header, OwnedHeaders, OwnedMessage, Timestamp};

    fn entry(headers: OwnedHeaders) -> DlqEntry {
        let record = OwnedMessage::new(
            Some(b"v".to_vec()),
            Some(b"k".to_vec()),
            "transformer.dlq".into(),
            Timestamp::CreateTime(1_700_000_000_000),
            0,
            7,
            Some(headers),
        );
        DlqEntry {
            stage: "transformer".into(),
            dlq_topic: "transformer.dlq".into(),
            partition: 0,
            offset: 7,
            key: Some("k".into()),
            code: Some("SFJ-1003".into()),
            message: None,
            origin_topic: Some("jira.issues".into()),
            failed_stage: None,
            attempts: None,
            first_failed_at: None,
            dead_lettered_at: None,
            replay_count: 1,
            record,
        }
    }

    #[test]
    fn replayed_records_drop_the_error_headers_and_count_replays() {
        let h = |k, v| Header {
            key: k,
            value: Some(v),
        };
        let headers = OwnedHeaders::new()
            .insert(h("traceparent", "00-abc-def-01"))
            .insert(h(dlq::H_TOPIC, "jira.issues"))
            .insert(h(dlq::H_CODE, "SFJ-1003"))
            .insert(h(dlq::H_FIRST_FAILED_AT, "2026-01-01T00:00:00.000Z"))
            .insert(h(H_REPLAY_COUNT, "1"));
        let out = replay_record(&entry(headers), None).unwrap();
        assert_eq!(out.topic, "jira.issues");
        assert_eq!(out.key.as_deref(), Some(&b"k"[..]));
        assert_eq!(out.payload.as_deref(), Some(&b"v"[..]));
        let names: Vec<&str> = out.headers.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(
            names,
            [
                "traceparent",
                dlq::H_FIRST_FAILED_AT,
                H_REPLAY_COUNT,
                H_REPLAYED_FROM,
                H_ORIGINAL_TIMESTAMP
            ]
        );
        assert_eq!(out.header_value(H_REPLAY_COUNT), Some(&b"2"[..]));
        assert_eq!(
            out.header_value(H_REPLAYED_FROM),
            Some(&b"transformer.dlq/0/7"[..])
        );
        assert_eq!(out.timestamp, None);
        assert_eq!(
            replay_record(&entry(OwnedHeaders::new()), Some("elsewhere"))
                .unwrap()
                .topic,
            "elsewhere"
        );
    }
}
