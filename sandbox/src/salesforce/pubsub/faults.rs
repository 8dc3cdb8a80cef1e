//! Fault knobs the Pub/Sub server reads. The org's shared fault settings implement
//! [`StreamFaults`]; [`PubSubFaults`] is a standalone set for tests.

use std::collections::{HashMap, HashSet};
use std::sync::Mutex;
use std::time::Duration;

/// What the Pub/Sub server asks of the fault settings, read afresh by every stream.
pub trait StreamFaults: Send + Sync {
    /// Close each open Subscribe stream with `UNAVAILABLE` (`RST_STREAM`) after this many more
    /// events (`Some(0)` = at once).
    fn drop_streams_after_events(&self) -> Option<u32>;
    /// Send no keepalives: a silent stall.
    fn suppress_keepalives(&self) -> bool;
    /// Replay retention instead of the bus's configured one.
    fn replay_retention(&self) -> Option<Duration>;
    /// Asked when an RPC starts: whether it fails `service.unavailable` (may consume a
    /// one-shot failure).
    fn take_call_unavailable(&self) -> bool {
        self.service_unavailable()
    }
    /// Whether the service is down now: open Subscribe streams end `service.unavailable`.
    fn service_unavailable(&self) -> bool {
        false
    }
    /// Asked when a `GetSchema` call starts: whether it fails `service.unavailable` while the
    /// rest of the service works (may consume a one-shot failure).
    fn take_get_schema_unavailable(&self) -> bool {
        false
    }
    /// Asked for each change event about to be delivered for the first time: whether its
    /// payload is to be corrupted (consumes a one-shot corruption).
    fn take_corrupt_event(&self) -> bool {
        false
    }
}

/// Standalone fault settings (tests; the binary uses the org's shared ones).
#[derive(Debug, Default)]
pub struct PubSubFaults {
    inner: Mutex<PubSubFaultSettings>,
}

#[derive(Debug, Default, Clone)]
pub struct PubSubFaultSettings {
    pub drop_streams_after_events: Option<u32>,
    pub suppress_keepalives: bool,
    pub replay_retention: Option<Duration>,
    /// The service is down (see [`StreamFaults::service_unavailable`]).
    pub service_unavailable: bool,
    /// `GetSchema` fails `service.unavailable`.
    pub get_schema_unavailable: bool,
    /// The next N events delivered are corrupted.
    pub corrupt_next_events: u32,
}

impl PubSubFaults {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn update(&self, f: impl FnOnce(&mut PubSubFaultSettings)) {
        f(&mut self.inner.lock().unwrap_or_else(|e| e.into_inner()));
    }

    fn get(&self) -> PubSubFaultSettings {
        self.inner.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }
}

impl StreamFaults for PubSubFaults {
    fn drop_streams_after_events(&self) -> Option<u32> {
        self.get().drop_streams_after_events
    }
    fn suppress_keepalives(&self) -> bool {
        self.get().suppress_keepalives
    }
    fn replay_retention(&self) -> Option<Duration> {
        self.get().replay_retention
    }
    fn service_unavailable(&self) -> bool {
        self.get().service_unavailable
    }
    fn take_get_schema_unavailable(&self) -> bool {
        self.get().get_schema_unavailable
    }
    fn take_corrupt_event(&self) -> bool {
        let mut s = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        if s.corrupt_next_events > 0 {
            s.corrupt_next_events -= 1;
            true
        } else {
            false
        }
    }
}

/// Events whose payload the `corrupt_next_events` fault cut short, by event id: a corrupted
/// event stays corrupted when it is delivered again (after a resubscribe), as an event stored
/// with a bad payload would. Only an event delivered on its channel for the first time (past
/// the highest replay id delivered there so far) takes a pending corruption, so replaying old
/// events does not use it up.
#[derive(Debug, Default)]
pub(crate) struct CorruptedEvents {
    state: Mutex<CorruptionState>,
}

#[derive(Debug, Default)]
struct CorruptionState {
    /// Per channel: the highest replay id delivered so far.
    delivered_up_to: HashMap<String, u64>,
    ids: HashSet<String>,
}

impl CorruptedEvents {
    /// The payload to deliver for event `id` (replay id `replay_id` on `topic`): cut to half
    /// its length (so it cannot decode with its schema: an Avro record reads every field) when
    /// the event is, or now becomes, one of the corrupted ones.
    pub(crate) fn payload(
        &self,
        faults: &dyn StreamFaults,
        topic: &str,
        replay_id: u64,
        id: &str,
        payload: &[u8],
    ) -> Vec<u8> {
        let mut s = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let high = s.delivered_up_to.entry(topic.to_string()).or_default();
        let first_delivery = replay_id > *high;
        *high = (*high).max(replay_id);
        if s.ids.contains(id)
            || (first_delivery && faults.take_corrupt_event() && s.ids.insert(id.to_string()))
        {
            payload[..payload.len() / 2].to_vec()
        } else {
            payload.to_vec()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_corrupted_event_stays_corrupted_and_others_are_intact() {
        let faults = PubSubFaults::new();
        let corrupted = CorruptedEvents::default();
        let t = "/data/AccountChangeEvent";
        assert_eq!(corrupted.payload(&faults, t, 1, "e1", b"abcdef"), b"abcdef");
        faults.update(|f| f.corrupt_next_events = 1);
        // Redelivering an event already delivered does not take the corruption.
        assert_eq!(corrupted.payload(&faults, t, 1, "e1", b"abcdef"), b"abcdef");
        assert_eq!(corrupted.payload(&faults, t, 2, "e2", b"abcdef"), b"abc");
        assert_eq!(corrupted.payload(&faults, t, 3, "e3", b"abcdef"), b"abcdef");
        assert_eq!(
            corrupted.payload(&faults, t, 2, "e2", b"abcdef"),
            b"abc",
            "redelivered"
        );
    }
}
