//! Fault knobs the Pub/Sub server reads. The org's shared fault settings implement
//! [`StreamFaults`]; [`PubSubFaults`] is a standalone set for tests.

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
}
