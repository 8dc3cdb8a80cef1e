//! The shared Jira rate limiter (issue #6 item 7): every Jira call of the process — webhook
//! changelog fetches, the poller, the worklog feeds, backfill — goes through one
//! [`JiraRateLimiter`] held by the one [`crate::jira::JiraClient`] (and its clones of the `Arc`).
//!
//! Two mechanisms:
//! - a **token bucket**: `rate_limit_per_second` requests/s steady state with bursts of up to
//!   `rate_limit_burst`, well under Jira's documented burst limits (100 GET/POST per second per
//!   tenant and path, shared by every app and token on the tenant; `jira-api.md` §4), so sfjira
//!   leaves room for everyone else;
//! - a shared **"paused until"** instant: when any call gets a 429/503 carrying `Retry-After`
//!   (or, failing that, `X-RateLimit-Reset`), [`JiraRateLimiter::pause`] moves it forward and
//!   every call — not just the one that was refused — waits until then before sending. A quota
//!   429 means "pause everything until the reset" (Atlassian's guidance), which per-call
//!   retries cannot do.
//!
//! Without a hint (a gateway 429 with no `Retry-After`, other 5xx, connection failures) the
//! refused call backs off alone, jittered and exponential, through core `retry` (see `jira.rs`);
//! the bucket still paces everyone else.

use std::sync::Mutex;
use std::time::Duration;

use tokio::time::Instant;

/// Default steady rate: a tenth of Jira's documented 100 requests/s per path.
pub const DEFAULT_PER_SECOND: f64 = 10.0;
/// Default burst (bucket size).
pub const DEFAULT_BURST: u32 = 10;

/// See the module comment. Cheap to share behind an `Arc`.
#[derive(Debug)]
pub struct JiraRateLimiter {
    per_second: f64,
    burst: f64,
    state: Mutex<State>,
}

#[derive(Debug)]
struct State {
    tokens: f64,
    at: Instant,
    paused_until: Option<Instant>,
}

impl JiraRateLimiter {
    /// A limiter allowing `per_second` requests/s with bursts of `burst` (both > 0).
    pub fn new(per_second: f64, burst: u32) -> Self {
        let per_second = if per_second > 0.0 {
            per_second
        } else {
            DEFAULT_PER_SECOND
        };
        let burst = f64::from(burst.max(1));
        JiraRateLimiter {
            per_second,
            burst,
            state: Mutex::new(State {
                tokens: burst,
                at: Instant::now(),
                paused_until: None,
            }),
        }
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Waits until a request may be sent: the shared pause is over and the bucket has a token
    /// (which is taken).
    pub async fn acquire(&self) {
        loop {
            let wait = {
                let mut s = self.state();
                let now = Instant::now();
                match s.paused_until {
                    Some(until) if until > now => until - now,
                    _ => {
                        s.paused_until = None;
                        let elapsed = now.saturating_duration_since(s.at).as_secs_f64();
                        s.tokens = (s.tokens + elapsed * self.per_second).min(self.burst);
                        s.at = now;
                        if s.tokens >= 1.0 {
                            s.tokens -= 1.0;
                            return;
                        }
                        Duration::from_secs_f64((1.0 - s.tokens) / self.per_second)
                    }
                }
            };
            tokio::time::sleep(wait).await;
        }
    }

    /// Jira asked for a pause of `wait` (Retry-After / X-RateLimit-Reset): no call is sent
    /// before then. A shorter pause never shortens a longer one already in force.
    pub fn pause(&self, wait: Duration) {
        let until = Instant::now() + wait;
        let mut s = self.state();
        if s.paused_until.is_none_or(|u| u < until) {
            s.paused_until = Some(until);
            tracing::warn!(
                wait_ms = wait.as_millis() as u64,
                "Jira asked to slow down: every Jira call pauses"
            );
        }
    }

    /// How long calls are still paused for (zero when not paused).
    pub fn paused_for(&self) -> Duration {
        self.state()
            .paused_until
            .map(|u| u.saturating_duration_since(Instant::now()))
            .unwrap_or(Duration::ZERO)
    }
}

impl Default for JiraRateLimiter {
    fn default() -> Self {
        JiraRateLimiter::new(DEFAULT_PER_SECOND, DEFAULT_BURST)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_bucket_caps_the_rate_and_a_pause_holds_everyone() {
        let l = JiraRateLimiter::new(50.0, 2);
        let start = Instant::now();
        for _ in 0..12 {
            l.acquire().await;
        }
        // 2 from the burst, then 10 at 50/s.
        let took = start.elapsed();
        assert!(took >= Duration::from_millis(190), "{took:?}");
        l.pause(Duration::from_millis(300));
        l.pause(Duration::from_millis(100));
        assert!(l.paused_for() > Duration::from_millis(250));
        let before = Instant::now();
        l.acquire().await;
        assert!(before.elapsed() >= Duration::from_millis(290));
        assert_eq!(l.paused_for(), Duration::ZERO);
    }
}
