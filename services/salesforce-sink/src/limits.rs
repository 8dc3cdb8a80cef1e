//! Staying inside the org's daily API allocation. Every response's `Sforce-Limit-Info:
//! api-usage=USED/LIMIT` (reference §4.6) updates the share used; above the configured share
//! the sink spaces its calls to a budgeted rate, so a busy day degrades to "slower" rather than
//! to `REQUEST_LIMIT_EXCEEDED` for every integration of the org. The allocation is per org and
//! rolling over 24 h, so the pacing is a simple minimum gap between calls, shared by every call
//! of this process.

use std::sync::Mutex;
use std::time::Duration;

use tokio::time::Instant;

use crate::events::{ApiUsageObserved, ThrottleChanged};

pub use sfjira_salesforce_source::events::ApiUsage;

#[derive(Debug)]
pub struct LimitGuard {
    threshold: f64,
    calls_per_sec: f64,
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    share: f64,
    throttled: bool,
    next_call_at: Option<Instant>,
}

impl LimitGuard {
    pub fn new(threshold: f64, calls_per_sec: f64) -> Self {
        LimitGuard {
            threshold,
            calls_per_sec,
            state: Mutex::new(State::default()),
        }
    }

    /// The last share of the allocation seen (0 before the first response).
    pub fn share(&self) -> f64 {
        self.state.lock().expect("limit state").share
    }

    /// Whether calls are being spaced to the budgeted rate.
    pub fn throttled(&self) -> bool {
        self.state.lock().expect("limit state").throttled
    }

    /// Records a `Sforce-Limit-Info` header value.
    pub fn observe(&self, header: &str) {
        let Some(usage) = ApiUsage::parse(header) else {
            return;
        };
        ApiUsageObserved {
            used: usage.used,
            limit: usage.limit,
        }
        .emit();
        let share = if usage.limit == 0 {
            1.0
        } else {
            usage.used as f64 / usage.limit as f64
        };
        let mut s = self.state.lock().expect("limit state");
        s.share = share;
        let throttled = share > self.threshold;
        if throttled != s.throttled {
            s.throttled = throttled;
            ThrottleChanged {
                throttled,
                share,
                calls_per_sec: self.calls_per_sec,
            }
            .emit();
        }
    }

    /// Waits, when throttled, until this call's slot in the budgeted rate.
    pub async fn before_call(&self) {
        let wait = {
            let mut s = self.state.lock().expect("limit state");
            if !s.throttled {
                return;
            }
            let gap = Duration::from_secs_f64(1.0 / self.calls_per_sec);
            let now = Instant::now();
            let at = s.next_call_at.filter(|t| *t > now).unwrap_or(now);
            s.next_call_at = Some(at + gap);
            at - now
        };
        if !wait.is_zero() {
            tokio::time::sleep(wait).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn above_the_threshold_calls_are_spaced() {
        let g = LimitGuard::new(0.8, 2.0);
        g.observe("api-usage=10/100");
        assert!(!g.throttled());
        let t0 = Instant::now();
        for _ in 0..3 {
            g.before_call().await;
        }
        assert_eq!(Instant::now(), t0, "no wait under the threshold");
        g.observe("api-usage=81/100");
        assert!(g.throttled());
        assert!((g.share() - 0.81).abs() < 1e-9);
        for _ in 0..3 {
            g.before_call().await;
        }
        assert_eq!(
            Instant::now() - t0,
            Duration::from_secs(1),
            "3 calls at 2/s"
        );
        g.observe("garbage");
        assert!(g.throttled(), "an unreadable header changes nothing");
    }
}
