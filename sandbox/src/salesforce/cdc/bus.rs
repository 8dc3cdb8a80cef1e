//! The org's event bus: turns committed transactions into change events on their channels.
//!
//! For each [`CommittedTransaction`] it assigns the `transactionKey` (a guid), the
//! `sequenceNumber` (1.. within the transaction), a monotonic `commitNumber`, and appends each
//! event to its entity's channel (`/data/<X>ChangeEvent`) and to `/data/ChangeEvents`, in commit
//! order. Subscribers learn of new events through a [`tokio::sync::watch`] counter.
//!
//! Reference §2 (https://developer.salesforce.com/docs/atlas.en-us.change_data_capture.meta/change_data_capture/cdc_other_events_overflow.htm):
//! - identical changes to several records of one object in one transaction become one event
//!   with several `recordIds` (the real platform merges within 1 s; merging across
//!   transactions is left out);
//! - past `overflow_threshold` changes in one transaction (create/delete/undelete count 1, an
//!   update 1 per changed field) the rest become one header-only `GAP_OVERFLOW` per entity;
//! - gap events can be injected ([`EventBus::inject_gap`]);
//! - events older than the retention (72 h sandbox time by default) expire, and their replay
//!   ids with them.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tokio::sync::watch;

use super::log::{ChannelLog, StoredEvent};
use super::payload::{self, Header};
use super::schema::ChangeEventSchema;
use crate::clock::SandboxClock;
use crate::salesforce::changes::{ChangeSink, ChangeType, CommittedTransaction, RecordChange};
use crate::salesforce::meta::ObjectMeta;

/// The channel of every selected entity's change events.
pub const ALL_CHANGE_EVENTS: &str = "/data/ChangeEvents";

#[derive(Debug, Clone)]
pub struct BusSettings {
    /// How long events (and their replay ids) are kept, in sandbox time. Real: 72 h.
    pub retention: Duration,
    /// Changes per transaction that still produce events. Real: 100,000.
    pub overflow_threshold: usize,
}

impl Default for BusSettings {
    fn default() -> Self {
        BusSettings {
            retention: Duration::from_secs(72 * 3600),
            overflow_threshold: 100_000,
        }
    }
}

/// Why a position cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PositionError {
    #[error("unknown topic {0}")]
    UnknownTopic(String),
    #[error("replay id not in the retention window")]
    Corrupted,
}

pub struct EventBus {
    clock: SandboxClock,
    inner: Mutex<Inner>,
    notify: watch::Sender<u64>,
}

struct Inner {
    retention: Duration,
    overflow_threshold: usize,
    schemas: BTreeMap<String, Arc<ChangeEventSchema>>,
    by_id: HashMap<String, Arc<ChangeEventSchema>>,
    channels: HashMap<String, ChannelLog>,
    commit_number: i64,
}

impl EventBus {
    /// A bus with a channel for each of `objects` (the CDC-enabled entities).
    pub fn new(
        objects: &[ObjectMeta],
        settings: BusSettings,
        clock: SandboxClock,
    ) -> anyhow::Result<Self> {
        let mut channels = HashMap::new();
        channels.insert(ALL_CHANGE_EVENTS.to_string(), ChannelLog::new());
        let bus = EventBus {
            clock,
            inner: Mutex::new(Inner {
                retention: settings.retention,
                overflow_threshold: settings.overflow_threshold,
                schemas: BTreeMap::new(),
                by_id: HashMap::new(),
                channels,
                commit_number: 10_000_000_000,
            }),
            notify: watch::channel(0).0,
        };
        for meta in objects {
            bus.register(meta)?;
        }
        Ok(bus)
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Enables CDC for `meta`, or updates its schema after a field change (older schema ids
    /// stay resolvable, as events already sent still name them).
    pub fn register(&self, meta: &ObjectMeta) -> anyhow::Result<Arc<ChangeEventSchema>> {
        let schema = Arc::new(ChangeEventSchema::build(meta)?);
        let mut inner = self.lock();
        inner.channels.entry(schema.channel.clone()).or_default();
        inner.by_id.insert(schema.id.clone(), schema.clone());
        inner.schemas.insert(schema.entity.clone(), schema.clone());
        Ok(schema)
    }

    pub fn schema_by_id(&self, id: &str) -> Option<Arc<ChangeEventSchema>> {
        self.lock().by_id.get(id).cloned()
    }

    pub fn schema_of(&self, entity: &str) -> Option<Arc<ChangeEventSchema>> {
        self.lock().schemas.get(entity).cloned()
    }

    /// The current schema id of a topic; `Some("")` for `/data/ChangeEvents`, whose events
    /// each carry their own entity's schema id; `None` for an unknown topic.
    pub fn topic_schema_id(&self, topic: &str) -> Option<String> {
        let inner = self.lock();
        if topic == ALL_CHANGE_EVENTS {
            return Some(String::new());
        }
        inner
            .schemas
            .values()
            .find(|s| s.channel == topic)
            .map(|s| s.id.clone())
    }

    /// Notified (the counter changes) whenever events are appended.
    pub fn watch(&self) -> watch::Receiver<u64> {
        self.notify.subscribe()
    }

    pub fn retention(&self) -> Duration {
        self.lock().retention
    }

    /// Changes the retention (fault: shortened retention); takes effect at once.
    pub fn set_retention(&self, retention: Duration) {
        let mut inner = self.lock();
        inner.retention = retention;
        self.expire(&mut inner);
    }

    pub fn set_overflow_threshold(&self, threshold: usize) {
        self.lock().overflow_threshold = threshold;
    }

    /// Simulates an org move: every replay id handed out so far becomes invalid.
    pub fn reset_replay_ids(&self) {
        self.lock()
            .channels
            .values_mut()
            .for_each(ChannelLog::renumber);
    }

    fn expire(&self, inner: &mut Inner) {
        let retention =
            chrono::Duration::from_std(inner.retention).unwrap_or(chrono::Duration::MAX);
        let cutoff = self.clock.now() - retention;
        inner.channels.values_mut().for_each(|c| c.expire(cutoff));
    }

    /// The newest replay id of `topic`.
    pub fn latest(&self, topic: &str) -> Result<u64, PositionError> {
        let inner = self.lock();
        inner
            .channels
            .get(topic)
            .map(ChannelLog::latest)
            .ok_or_else(|| PositionError::UnknownTopic(topic.into()))
    }

    /// The position before the oldest retained event of `topic`.
    pub fn earliest(&self, topic: &str) -> Result<u64, PositionError> {
        let mut inner = self.lock();
        self.expire(&mut inner);
        inner
            .channels
            .get(topic)
            .map(ChannelLog::earliest)
            .ok_or_else(|| PositionError::UnknownTopic(topic.into()))
    }

    /// Checks that a client's replay id is a usable position on `topic`.
    pub fn check_position(&self, topic: &str, replay_id: u64) -> Result<(), PositionError> {
        let mut inner = self.lock();
        self.expire(&mut inner);
        let channel = inner
            .channels
            .get(topic)
            .ok_or_else(|| PositionError::UnknownTopic(topic.into()))?;
        if channel.is_valid(replay_id) {
            Ok(())
        } else {
            Err(PositionError::Corrupted)
        }
    }

    /// The position a keepalive reports to a subscriber at `cursor` with nothing to deliver:
    /// the channel's newest position, moved on as the real shared bus does. `None` when events
    /// after `cursor` are waiting (deliver them instead).
    pub fn idle_position(&self, topic: &str, cursor: u64) -> Result<Option<u64>, PositionError> {
        let mut inner = self.lock();
        let channel = inner
            .channels
            .get_mut(topic)
            .ok_or_else(|| PositionError::UnknownTopic(topic.into()))?;
        Ok(channel.advance_idle(cursor))
    }

    /// Up to `max` retained events of `topic` after `cursor`.
    pub fn read(
        &self,
        topic: &str,
        cursor: u64,
        max: usize,
    ) -> Result<Vec<StoredEvent>, PositionError> {
        let mut inner = self.lock();
        self.expire(&mut inner);
        let channel = inner
            .channels
            .get(topic)
            .ok_or_else(|| PositionError::UnknownTopic(topic.into()))?;
        Ok(channel.after(cursor, max))
    }

    /// Retained events on `topic` (for tests and the admin API).
    pub fn retained(&self, topic: &str) -> usize {
        self.lock().channels.get(topic).map_or(0, ChannelLog::len)
    }

    /// Emits a header-only gap event (`GAP_CREATE` … `GAP_UNDELETE`, `GAP_OVERFLOW`) in a
    /// transaction of its own.
    pub fn inject_gap(
        &self,
        entity: &str,
        change_type: ChangeType,
        record_ids: Vec<String>,
        commit_user: &str,
    ) -> anyhow::Result<()> {
        anyhow::ensure!(
            change_type.as_str().starts_with("GAP_"),
            "{} is not a gap change type",
            change_type.as_str()
        );
        let mut inner = self.lock();
        let schema = inner
            .schemas
            .get(entity)
            .cloned()
            .ok_or_else(|| anyhow::anyhow!("CDC is not enabled for {entity}"))?;
        inner.commit_number += 1;
        let header = Header {
            entity: entity.to_string(),
            record_ids,
            change_type,
            change_origin: String::new(),
            transaction_key: uuid::Uuid::new_v4().to_string(),
            sequence_number: 1,
            commit_timestamp: self.clock.now().timestamp_millis(),
            commit_number: inner.commit_number,
            commit_user: commit_user.to_string(),
        };
        self.append(&mut inner, &schema, &header, None)?;
        drop(inner);
        self.notify.send_modify(|n| *n += 1);
        Ok(())
    }

    fn append(
        &self,
        inner: &mut Inner,
        schema: &ChangeEventSchema,
        header: &Header,
        change: Option<&RecordChange>,
    ) -> anyhow::Result<()> {
        let bytes: Arc<[u8]> = payload::encode(schema, header, change)?.into();
        let id = uuid::Uuid::new_v4().to_string();
        let at = self.clock.now();
        for topic in [schema.channel.as_str(), ALL_CHANGE_EVENTS] {
            let channel = inner.channels.entry(topic.to_string()).or_default();
            channel.append(id.clone(), schema.id.clone(), bytes.clone(), at);
        }
        Ok(())
    }

    fn publish(&self, txn: &CommittedTransaction) {
        let mut inner = self.lock();
        self.expire(&mut inner);
        inner.commit_number += 1;
        let base = Header {
            entity: String::new(),
            record_ids: Vec::new(),
            change_type: ChangeType::Create,
            change_origin: txn.change_origin.clone(),
            transaction_key: uuid::Uuid::new_v4().to_string(),
            sequence_number: 0,
            commit_timestamp: txn.commit_timestamp.timestamp_millis(),
            commit_number: inner.commit_number,
            commit_user: txn.commit_user.clone(),
        };
        let threshold = inner.overflow_threshold;
        let (mut used, mut overflowed, mut seq) = (0usize, false, 0i32);
        let mut overflow_sent = HashSet::new();
        for group in merge_identical(&txn.changes) {
            let first = group[0];
            let Some(schema) = inner.schemas.get(&first.entity).cloned() else {
                tracing::debug!(entity = %first.entity, "CDC not enabled for this entity; no event");
                continue;
            };
            let cost: usize = group.iter().map(|c| cost(c)).sum();
            if !overflowed && used + cost > threshold {
                overflowed = true;
            }
            seq += 1;
            let mut header = Header {
                entity: schema.entity.clone(),
                sequence_number: seq,
                ..base.clone()
            };
            let result = if overflowed {
                if !overflow_sent.insert(schema.entity.clone()) {
                    seq -= 1;
                    continue;
                }
                header.change_type = ChangeType::GapOverflow;
                self.append(&mut inner, &schema, &header, None)
            } else {
                used += cost;
                header.change_type = first.change_type;
                header.record_ids = group.iter().map(|c| c.record_id.clone()).collect();
                self.append(&mut inner, &schema, &header, Some(first))
            };
            if let Err(e) = result {
                tracing::error!(entity = %schema.entity, error = %e, "could not encode a change event");
            }
        }
        drop(inner);
        self.notify.send_modify(|n| *n += 1);
    }
}

impl ChangeSink for EventBus {
    fn committed(&self, txn: CommittedTransaction) {
        self.publish(&txn);
    }
}

/// Overflow accounting: an update counts one per changed field, anything else one.
fn cost(c: &RecordChange) -> usize {
    match c.change_type {
        ChangeType::Update => c.changed_fields.len().max(1),
        _ => 1,
    }
}

/// Groups adjacent changes that are identical but for the record id.
fn merge_identical(changes: &[RecordChange]) -> Vec<Vec<&RecordChange>> {
    let mut groups: Vec<Vec<&RecordChange>> = Vec::new();
    for c in changes {
        match groups.last_mut() {
            Some(g) if same_change(g[0], c) => g.push(c),
            _ => groups.push(vec![c]),
        }
    }
    groups
}

fn same_change(a: &RecordChange, b: &RecordChange) -> bool {
    a.entity == b.entity
        && a.change_type == b.change_type
        && a.changed_fields == b.changed_fields
        && a.nulled_fields == b.nulled_fields
        && a.changed_fields
            .iter()
            .all(|f| a.values.get(f) == b.values.get(f))
}
