//! Fault injection for the org, shared by REST (this half) and the Pub/Sub server (S2) through
//! one `Arc<SalesforceFaults>`. The admin API (`/__admin/salesforce/faults`) reads and replaces
//! [`FaultSettings`] as JSON; one-shot counters (lock contention, gap events) are consumed by
//! the component they affect.
//!
//! Every knob is off by default, so a fresh org behaves like a healthy real one.

use std::collections::BTreeMap;
use std::sync::Mutex;

use serde::{Deserialize, Serialize};

/// Latency and failures for one REST endpoint class.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase", default)]
pub struct EndpointFault {
    /// Fraction of calls (0.0–1.0) answered `503 SERVER_UNAVAILABLE` instead of being served.
    pub error_rate: f64,
    /// Extra delay before the call is served, in wall milliseconds.
    pub latency_ms: u64,
}

/// Every fault knob, as the admin API shows it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase", default)]
pub struct FaultSettings {
    /// Per endpoint class: `oauth`, `sobjects`, `composite`, `query`, `describe`, `limits`,
    /// or `*` for every class without its own entry.
    pub endpoints: BTreeMap<String, EndpointFault>,
    /// Answer every REST and OAuth call `503 SERVER_UNAVAILABLE` (maintenance window).
    pub unavailable: bool,
    /// The next N record writes fail with `UNABLE_TO_LOCK_ROW` (one per record, so a
    /// collection of 3 consumes 3). Decremented as they are used.
    pub lock_next_writes: u32,
    /// The next N upserts that would create a record lose a simulated race with a concurrent
    /// upsert of the same external id: the other request's record is committed (its own
    /// transaction) and this one fails `DUPLICATE_VALUE` (reference §4.1, KB 000383480).
    pub upsert_race_next_creates: u32,
    // ---- read by the Pub/Sub server (S2); REST ignores them ----
    /// Replay retention in sandbox seconds instead of 72 h (`None` = 72 h), so
    /// `replayid.corrupted` for stale ids can be tested quickly.
    pub replay_retention_secs: Option<u64>,
    /// Close each open Subscribe stream with `UNAVAILABLE RST_STREAM` after this many more
    /// events (`Some(0)` = at once); `None` = never.
    pub drop_streams_after_events: Option<u32>,
    /// Never send keepalive (empty) FetchResponses: a silent stall (reference §8).
    pub suppress_keepalives: bool,
    /// The Pub/Sub API is down: every RPC fails, and open Subscribe streams end, with status
    /// `INTERNAL` and `error-code` `sfdc.platform.eventbus.grpc.service.unavailable` ("The
    /// service is unavailable. Try again later."), as captured from the live service
    /// (pozil/pub-sub-api-node-client#52, #64). REST is not affected (see `unavailable`).
    pub pubsub_unavailable: bool,
    /// The next N Pub/Sub RPCs (any method; a Subscribe counts once, when it opens) fail
    /// the same way, then the service is back. Decremented as they are used.
    pub pubsub_unavailable_next_calls: u32,
    /// The next N committed transactions are delivered as gap events (`GAP_CREATE` …,
    /// header only) instead of full change events. Decremented as they are used.
    pub gap_next_transactions: u32,
    /// `GetSchema` fails `service.unavailable` (as `pubsubUnavailable` does) while every other
    /// RPC, and open Subscribe streams, keep working: a partial outage of the schema service.
    pub get_schema_unavailable: bool,
    /// The next N `GetSchema` calls fail that way, then it recovers. Decremented as used.
    pub get_schema_unavailable_next_calls: u32,
    /// The next N change events delivered on their channel for the first time carry an Avro
    /// payload that does not decode with their schema (cut short); the same events are
    /// delivered cut short again on a later subscription (stored corruption, not a one-off
    /// wire error). Decremented as used.
    pub corrupt_next_events: u32,
}

/// The shared fault state.
#[derive(Debug, Default)]
pub struct SalesforceFaults {
    settings: Mutex<FaultSettings>,
}

impl SalesforceFaults {
    pub fn new() -> Self {
        Self::default()
    }

    /// A copy of the current settings.
    pub fn snapshot(&self) -> FaultSettings {
        self.lock().clone()
    }

    pub fn replace(&self, settings: FaultSettings) {
        *self.lock() = settings;
    }

    /// Changes settings in place.
    pub fn update(&self, f: impl FnOnce(&mut FaultSettings)) {
        f(&mut self.lock());
    }

    /// The fault for an endpoint class (its own entry, else `*`, else none).
    pub fn endpoint(&self, class: &str) -> EndpointFault {
        let s = self.lock();
        s.endpoints
            .get(class)
            .or_else(|| s.endpoints.get("*"))
            .cloned()
            .unwrap_or_default()
    }

    pub fn unavailable(&self) -> bool {
        self.lock().unavailable
    }

    /// Consumes one injected lock failure, if any is pending.
    pub fn take_lock_failure(&self) -> bool {
        take(&mut self.lock().lock_next_writes)
    }

    /// Consumes one injected upsert race, if any is pending.
    pub fn take_upsert_race(&self) -> bool {
        take(&mut self.lock().upsert_race_next_creates)
    }

    /// Whether a Pub/Sub RPC that starts now fails `service.unavailable`: the service is
    /// down, or one of the next-N-calls failures is consumed.
    pub fn take_pubsub_unavailable(&self) -> bool {
        let mut s = self.lock();
        s.pubsub_unavailable || take(&mut s.pubsub_unavailable_next_calls)
    }

    /// Whether a `GetSchema` call that starts now fails `service.unavailable`.
    pub fn take_get_schema_unavailable(&self) -> bool {
        let mut s = self.lock();
        s.get_schema_unavailable || take(&mut s.get_schema_unavailable_next_calls)
    }

    /// Consumes one pending payload corruption, if any (for the Pub/Sub side).
    pub fn take_corrupt_event(&self) -> bool {
        take(&mut self.lock().corrupt_next_events)
    }

    /// Consumes one pending gap transaction, if any (for the CDC side).
    pub fn take_gap_transaction(&self) -> bool {
        take(&mut self.lock().gap_next_transactions)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, FaultSettings> {
        // A panic while holding this lock cannot leave the settings half-written (every
        // update is a plain field assignment), so a poisoned lock is still usable.
        self.settings.lock().unwrap_or_else(|p| p.into_inner())
    }
}

fn take(counter: &mut u32) -> bool {
    if *counter > 0 {
        *counter -= 1;
        true
    } else {
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_are_consumed_and_wildcards_apply() {
        let f = SalesforceFaults::new();
        f.update(|s| {
            s.lock_next_writes = 2;
            s.endpoints.insert(
                "*".into(),
                EndpointFault {
                    error_rate: 1.0,
                    latency_ms: 0,
                },
            );
        });
        assert!(f.take_lock_failure());
        assert!(f.take_lock_failure());
        assert!(!f.take_lock_failure());
        assert_eq!(f.endpoint("query").error_rate, 1.0);
        f.update(|s| s.pubsub_unavailable_next_calls = 1);
        assert!(f.take_pubsub_unavailable());
        assert!(!f.take_pubsub_unavailable());
        f.update(|s| s.pubsub_unavailable = true);
        assert!(f.take_pubsub_unavailable());
        assert!(f.take_pubsub_unavailable());
        let json = serde_json::to_value(f.snapshot()).unwrap();
        assert_eq!(json["pubsubUnavailable"], true);
        assert_eq!(json["pubsubUnavailableNextCalls"], 0);
    }
}
