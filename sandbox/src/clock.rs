//! The sandbox's clock. Real services expire tokens after an hour and keep replay ids for
//! 72 hours; tests cannot wait that long. Every duration the sandbox enforces goes through a
//! [`SandboxClock`], whose `scale` makes sandbox time run faster than wall time (scale 60: one
//! sandbox minute per wall second). Timestamps handed to clients are sandbox time.

use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};

#[derive(Debug, Clone)]
pub struct SandboxClock {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    started_wall: DateTime<Utc>,
    started: Instant,
    scale: f64,
}

impl SandboxClock {
    /// `scale` = sandbox seconds per wall second (1.0 = real time). Must be positive.
    pub fn new(scale: f64) -> Self {
        assert!(
            scale > 0.0 && scale.is_finite(),
            "clock scale must be a positive number"
        );
        SandboxClock {
            inner: Arc::new(Inner {
                started_wall: Utc::now(),
                started: Instant::now(),
                scale,
            }),
        }
    }

    pub fn real_time() -> Self {
        Self::new(1.0)
    }

    pub fn scale(&self) -> f64 {
        self.inner.scale
    }

    /// The current sandbox time.
    pub fn now(&self) -> DateTime<Utc> {
        let elapsed = self.inner.started.elapsed().mul_f64(self.inner.scale);
        self.inner.started_wall
            + chrono::Duration::from_std(elapsed).unwrap_or(chrono::Duration::MAX)
    }

    /// How long to really wait for `d` of sandbox time to pass.
    pub fn wall(&self, d: Duration) -> Duration {
        d.div_f64(self.inner.scale)
    }

    /// Sleeps for `d` of sandbox time.
    pub async fn sleep(&self, d: Duration) {
        tokio::time::sleep(self.wall(d)).await
    }
}

impl Default for SandboxClock {
    fn default() -> Self {
        Self::real_time()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scaled_time_runs_faster() {
        let c = SandboxClock::new(3600.0);
        assert_eq!(c.wall(Duration::from_secs(3600)), Duration::from_secs(1));
        let t0 = c.now();
        std::thread::sleep(Duration::from_millis(10));
        assert!(c.now() - t0 >= chrono::Duration::seconds(30));
    }
}
