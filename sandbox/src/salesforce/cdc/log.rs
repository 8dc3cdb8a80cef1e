//! One channel's retained events and its replay ids.
//!
//! Replay ids are 8-byte big-endian counters (what real clients see: reference §1.4), opaque
//! and deliberately not contiguous (the counter advances by 1–3), so clients that compute ids
//! instead of storing them fail here as they would against a real org. A position ("cursor") is
//! the replay id of the last event a subscriber has; delivery resumes after it.

use std::collections::VecDeque;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use rand::Rng;

/// A retained event.
#[derive(Debug, Clone)]
pub struct StoredEvent {
    pub replay_id: u64,
    /// `ProducerEvent.id` (a guid).
    pub event_id: String,
    pub schema_id: String,
    /// Avro binary datum.
    pub payload: Arc<[u8]>,
    /// When it was appended (sandbox time), for retention.
    pub at: DateTime<Utc>,
}

#[derive(Debug)]
pub struct ChannelLog {
    /// The position before the channel's first event.
    base: u64,
    last: u64,
    events: VecDeque<StoredEvent>,
}

impl ChannelLog {
    pub fn new() -> Self {
        let base = rand::rng().random_range(1_000_000..2_000_000u64);
        ChannelLog {
            base,
            last: base,
            events: VecDeque::new(),
        }
    }

    pub fn append(
        &mut self,
        event_id: String,
        schema_id: String,
        payload: Arc<[u8]>,
        at: DateTime<Utc>,
    ) -> u64 {
        self.last += rand::rng().random_range(1..=3u64);
        self.events.push_back(StoredEvent {
            replay_id: self.last,
            event_id,
            schema_id,
            payload,
            at,
        });
        self.last
    }

    /// The replay id of the newest event (or the start position of an empty channel).
    pub fn latest(&self) -> u64 {
        self.last
    }

    /// The position before the oldest retained event.
    pub fn earliest(&self) -> u64 {
        self.events.front().map_or(self.last, |e| e.replay_id - 1)
    }

    /// Whether `id` is a position a client may resume from: anywhere from just before the
    /// oldest retained event to the newest position. Older ids have left the retention window;
    /// newer ones were never handed out.
    pub fn is_valid(&self, id: u64) -> bool {
        (self.earliest()..=self.last).contains(&id)
    }

    /// Moves the newest position on without an event, as the real bus (shared by many orgs)
    /// does between a tenant's events; keepalives report it. Returns the new position, or
    /// `None` when events after `cursor` are waiting (a position past them would lose them).
    pub fn advance_idle(&mut self, cursor: u64) -> Option<u64> {
        if self.events.back().is_some_and(|e| e.replay_id > cursor) {
            return None;
        }
        self.last += rand::rng().random_range(1..=3u64);
        Some(self.last)
    }

    /// Up to `max` events after `cursor`.
    pub fn after(&self, cursor: u64, max: usize) -> Vec<StoredEvent> {
        let start = self.events.partition_point(|e| e.replay_id <= cursor);
        self.events.iter().skip(start).take(max).cloned().collect()
    }

    /// Forgets events appended before `cutoff`.
    pub fn expire(&mut self, cutoff: DateTime<Utc>) {
        while self.events.front().is_some_and(|e| e.at < cutoff) {
            self.events.pop_front();
        }
    }

    /// Re-numbers every retained event as after an org move: every stored id becomes invalid.
    pub fn renumber(&mut self) {
        self.base = self.last + (1 << 40);
        self.last = self.base;
        for e in self.events.iter_mut() {
            self.last += 1;
            e.replay_id = self.last;
        }
    }

    pub fn len(&self) -> usize {
        self.events.len()
    }

    pub fn is_empty(&self) -> bool {
        self.events.is_empty()
    }
}

impl Default for ChannelLog {
    fn default() -> Self {
        Self::new()
    }
}

/// The wire form of a replay id.
pub fn encode_replay_id(id: u64) -> Vec<u8> {
    id.to_be_bytes().to_vec()
}

/// Parses a replay id; `None` unless exactly 8 bytes.
pub fn decode_replay_id(bytes: &[u8]) -> Option<u64> {
    Some(u64::from_be_bytes(bytes.try_into().ok()?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_increase_and_expire() {
        let mut log = ChannelLog::new();
        let t0 = Utc::now();
        let start = log.latest();
        let a = log.append("a".into(), "s".into(), Arc::from(&b""[..]), t0);
        let b = log.append(
            "b".into(),
            "s".into(),
            Arc::from(&b""[..]),
            t0 + chrono::Duration::hours(1),
        );
        assert!(start < a && a < b);
        assert_eq!(log.after(log.earliest(), 10).len(), 2);
        assert_eq!(log.after(a, 10)[0].event_id, "b");
        log.expire(t0 + chrono::Duration::minutes(1));
        assert!(!log.is_valid(start) && log.is_valid(b) && log.is_valid(b - 1));
        assert!(log.advance_idle(a).is_none(), "b is waiting after a");
        let idle = log.advance_idle(b).unwrap();
        assert!(idle > b && log.is_valid(idle) && !log.is_valid(idle + 1));
        assert_eq!(decode_replay_id(&encode_replay_id(b)), Some(b));
        log.renumber();
        assert!(!log.is_valid(b));
    }
}
