//! Reading a topic from given offsets up to its current end, without joining a consumer group.
//!
//! Operators' tools and start-up code need "everything there is now" rather than a stream: the
//! latest checkpoint in a compacted topic, the backlog of a DLQ. The reader assigns partitions
//! directly (no group, nothing committed), reads `read_committed`, and stops at each
//! partition's end as librdkafka reports it (`PartitionEOF`, which under `read_committed` is the
//! last stable offset, so an open transaction is not waited for).

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::message::{Message, OwnedMessage};
use rdkafka::{Offset, TopicPartitionList};

/// How long to wait for any single fetch before giving up on the topic.
const FETCH_TIMEOUT: Duration = Duration::from_secs(30);

/// Reads `topic` from `start` (partition → first offset to read; partitions not named start at
/// the beginning) to its current end. Blocking: call it from `spawn_blocking` in async code.
pub fn read_to_end(
    base: &ClientConfig,
    topic: &str,
    start: &BTreeMap<i32, i64>,
) -> Result<Vec<OwnedMessage>, KafkaError> {
    let mut cfg = base.clone();
    // librdkafka wants a group id even for assign-only consumers; nothing is ever committed.
    cfg.set("group.id", "sfjira-reader")
        .set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "false")
        .set("enable.partition.eof", "true")
        .set("isolation.level", "read_committed");
    let consumer: BaseConsumer = cfg.create()?;
    let metadata = consumer.fetch_metadata(Some(topic), FETCH_TIMEOUT)?;
    let partitions: Vec<i32> = metadata
        .topics()
        .iter()
        .filter(|t| t.name() == topic)
        .flat_map(|t| t.partitions().iter().map(|p| p.id()))
        .collect();
    if partitions.is_empty() {
        return Err(KafkaError::MetadataFetch(
            rdkafka::types::RDKafkaErrorCode::UnknownTopicOrPartition,
        ));
    }

    let mut assignment = TopicPartitionList::new();
    let mut pending: BTreeSet<i32> = BTreeSet::new();
    for p in partitions {
        let (low, high) = watermarks_once_led(&consumer, topic, p)?;
        let from = start.get(&p).copied().unwrap_or(low).max(low);
        if from < high {
            assignment.add_partition_offset(topic, p, Offset::Offset(from))?;
            pending.insert(p);
        }
    }
    if pending.is_empty() {
        return Ok(Vec::new());
    }
    consumer.assign(&assignment)?;

    let mut out = Vec::new();
    while !pending.is_empty() {
        match consumer.poll(FETCH_TIMEOUT) {
            Some(Ok(m)) => out.push(m.detach()),
            Some(Err(KafkaError::PartitionEOF(p))) => {
                pending.remove(&p);
            }
            Some(Err(e)) => return Err(e),
            None => {
                return Err(KafkaError::MessageConsumption(
                    rdkafka::types::RDKafkaErrorCode::OperationTimedOut,
                ));
            }
        }
    }
    out.sort_by_key(|m| (m.partition(), m.offset()));
    Ok(out)
}

/// A partition's watermarks, waiting (up to [`FETCH_TIMEOUT`]) for it to have a leader: a topic
/// created a moment ago (`sfjira topics apply` just before a service starts) answers
/// `NotLeaderForPartition` until its leader is elected.
pub(crate) fn watermarks_once_led(
    consumer: &BaseConsumer,
    topic: &str,
    partition: i32,
) -> Result<(i64, i64), KafkaError> {
    use rdkafka::types::RDKafkaErrorCode as Code;
    let deadline = std::time::Instant::now() + FETCH_TIMEOUT;
    loop {
        match consumer.fetch_watermarks(topic, partition, FETCH_TIMEOUT) {
            Err(e)
                if matches!(
                    e.rdkafka_error_code(),
                    Some(Code::NotLeaderForPartition | Code::LeaderNotAvailable)
                ) && std::time::Instant::now() < deadline =>
            {
                std::thread::sleep(Duration::from_millis(200));
            }
            other => return other,
        }
    }
}

/// The latest record per key of a compacted topic (`sfjira.checkpoints`), read to its current
/// end; a tombstone removes its key. What every reader of positions and checkpoints needs,
/// so each does not scan and fold the topic its own way.
pub fn latest_by_key(
    base: &ClientConfig,
    topic: &str,
) -> Result<BTreeMap<String, OwnedMessage>, KafkaError> {
    let mut latest = BTreeMap::new();
    for m in read_to_end(base, topic, &BTreeMap::new())? {
        let Some(key) = m.key().map(|k| String::from_utf8_lossy(k).into_owned()) else {
            continue;
        };
        if m.payload().is_none() {
            latest.remove(&key);
        } else {
            latest.insert(key, m);
        }
    }
    Ok(latest)
}
