//! Retrying operations that fail for a while: Kafka hiccups, the schema registry restarting,
//! Salesforce and Jira answering 429 or 5xx. This module owns *when* to try again and *when to
//! stop*; the caller owns *whether* an error is worth retrying (its `classify` function), since
//! only it knows that a Jira 400 is final and a 503 is not.
//!
//! The policy is exponential backoff with **full jitter**: the wait before retry `n` (counting
//! from 0) is uniform in `[0, min(max_delay, initial_delay * 2^n)]`. Jitter matters more than
//! the exponent here: every sink instance that hit the same Jira rate limit at the same moment
//! would otherwise come back at the same moment and hit it again. Full jitter (rather than
//! "delay ± 10%") spreads them over the whole window, which AWS's measurements showed gives the
//! least total work for contended resources.
//!
//! Two caps bound a retry loop, so a record is never stuck behind one forever: `max_attempts`
//! (tries, counting the first) and `max_elapsed` (wall time since the first try began). When
//! either runs out the caller gets the last error and dead-letters the record.
//!
//! A server hint (`Retry-After` on a 429/503, parsed by [`parse_retry_after`]) is a **floor**:
//! coming back earlier than the server asked only earns another 429. If honouring the hint would
//! overrun the time budget we give up at once instead of sleeping and then giving up.
//!
//! Time is read from [`tokio::time::Instant`], which is the ordinary monotonic clock in
//! production and the paused, hand-advanced clock under `tokio::time::pause()` in tests; the
//! random source can be injected with [`Backoff::with_rng`]. Both keep tests exact and instant.

use std::fmt;
use std::future::Future;
use std::time::{Duration, SystemTime};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde::Deserialize;
use tokio::time::Instant;

/// How long and how often to retry. Embedded in the config sections of the components that
/// retry (sinks, registry client), so it is part of the user's contract.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RetryPolicy {
    /// Upper bound of the first retry's wait, in milliseconds; each further retry doubles it.
    #[serde(default = "default_initial_delay_ms")]
    pub initial_delay_ms: u64,
    /// The doubling stops here: no single wait exceeds this many milliseconds (hints aside).
    #[serde(default = "default_max_delay_ms")]
    pub max_delay_ms: u64,
    /// Total tries, counting the first: `1` means never retry.
    #[serde(default = "default_max_attempts")]
    pub max_attempts: u32,
    /// Stop retrying once this many milliseconds have passed since the first try began.
    #[serde(default = "default_max_elapsed_ms")]
    pub max_elapsed_ms: u64,
}

fn default_initial_delay_ms() -> u64 {
    200
}
fn default_max_delay_ms() -> u64 {
    30_000
}
fn default_max_attempts() -> u32 {
    8
}
fn default_max_elapsed_ms() -> u64 {
    300_000
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            initial_delay_ms: default_initial_delay_ms(),
            max_delay_ms: default_max_delay_ms(),
            max_attempts: default_max_attempts(),
            max_elapsed_ms: default_max_elapsed_ms(),
        }
    }
}

impl RetryPolicy {
    /// Checks the policy can do what it says.
    ///
    /// # Errors
    ///
    /// A one-line description naming the offending field (the config layer prefixes the path).
    pub fn validate(&self) -> Result<(), String> {
        if self.initial_delay_ms == 0 {
            return Err("initial_delay_ms must be > 0 (0 would retry in a hot loop)".into());
        }
        if self.max_delay_ms < self.initial_delay_ms {
            return Err(format!(
                "max_delay_ms ({}) must be >= initial_delay_ms ({})",
                self.max_delay_ms, self.initial_delay_ms
            ));
        }
        if self.max_attempts == 0 {
            return Err("max_attempts must be >= 1 (it counts the first try)".into());
        }
        if self.max_elapsed_ms == 0 {
            return Err("max_elapsed_ms must be > 0".into());
        }
        Ok(())
    }

    /// Starts the clock for one operation: create it just before the first try.
    pub fn backoff(&self) -> Backoff {
        Backoff {
            policy: self.clone(),
            rng: StdRng::from_os_rng(),
            started: Instant::now(),
            attempts: 0,
            first_failed_at: None,
        }
    }
}

/// The retry state of one operation: how many tries failed and since when.
///
/// Not shared between operations: each record (or batch) gets its own, so one record's bad
/// luck does not shorten another's budget.
#[derive(Debug)]
pub struct Backoff {
    policy: RetryPolicy,
    /// `StdRng` rather than the thread-local rng so a `Backoff` can live across `.await` in a
    /// `Send` future.
    rng: StdRng,
    /// When the first try began; `max_elapsed` counts from here.
    started: Instant,
    /// Failed tries recorded so far.
    attempts: u32,
    /// Wall-clock time of the first failure, for DLQ headers and logs.
    first_failed_at: Option<SystemTime>,
}

impl Backoff {
    /// Replaces the random source, e.g. with `StdRng::seed_from_u64(7)` for reproducible tests.
    pub fn with_rng(mut self, rng: StdRng) -> Self {
        self.rng = rng;
        self
    }

    /// Records a failed try and returns how long to wait before the next one, or `None` to give
    /// up (attempts or time budget spent). `hint` is the server's requested wait (Retry-After),
    /// used as a minimum.
    pub fn next_delay(&mut self, hint: Option<Duration>) -> Option<Duration> {
        let elapsed = self.started.elapsed();
        self.next_delay_at(elapsed, hint)
    }

    /// [`Backoff::next_delay`] with the elapsed time given, so the budget logic is testable
    /// without a clock.
    fn next_delay_at(&mut self, elapsed: Duration, hint: Option<Duration>) -> Option<Duration> {
        self.record_failure();
        if self.attempts >= self.policy.max_attempts {
            return None;
        }
        let budget = Duration::from_millis(self.policy.max_elapsed_ms);
        let remaining = budget.checked_sub(elapsed).filter(|r| !r.is_zero())?;

        let cap = self.cap(self.attempts - 1);
        // Microsecond resolution: with small initial delays, whole milliseconds would give only
        // a handful of distinct values and instances would still collide.
        let cap_us = u64::try_from(cap.as_micros()).unwrap_or(u64::MAX);
        let jittered = Duration::from_micros(self.rng.random_range(0..=cap_us));

        match hint {
            // Sleeping less than asked is pointless; sleeping past the budget only to give up
            // afterwards wastes the time: decide now.
            Some(hint) if hint > remaining => None,
            Some(hint) => Some(jittered.max(hint).min(remaining)),
            // Clamped, not refused: one last try right at the deadline is still worth making.
            None => Some(jittered.min(remaining)),
        }
    }

    fn record_failure(&mut self) {
        self.attempts = self.attempts.saturating_add(1);
        self.first_failed_at.get_or_insert_with(SystemTime::now);
    }

    fn give_up<E>(&self, error: E, reason: StopReason) -> RetryError<E> {
        RetryError {
            error,
            attempts: self.attempts,
            reason,
            first_failed_at: self.first_failed_at.unwrap_or_else(SystemTime::now),
        }
    }

    /// The jitter window for retry `n` (0-based): `min(max_delay, initial * 2^n)`.
    fn cap(&self, n: u32) -> Duration {
        let factor = 1u64.checked_shl(n).unwrap_or(u64::MAX);
        let ms = self
            .policy
            .initial_delay_ms
            .saturating_mul(factor)
            .min(self.policy.max_delay_ms);
        Duration::from_millis(ms)
    }

    /// Failed tries recorded so far (calls to [`Backoff::next_delay`]).
    pub fn attempts(&self) -> u32 {
        self.attempts
    }

    /// When the first failure was recorded, `None` while nothing has failed.
    pub fn first_failed_at(&self) -> Option<SystemTime> {
        self.first_failed_at
    }

    /// Time since the first try began.
    pub fn elapsed(&self) -> Duration {
        self.started.elapsed()
    }
}

/// Parses a `Retry-After` header value: delta-seconds (`"120"`) or an HTTP-date
/// (`"Wed, 21 Oct 2015 07:28:00 GMT"`, and the two obsolete forms RFC 9110 §5.6.7 requires
/// recipients to accept). A date in the past means "now" (zero). `None` for anything else, so
/// a garbled header falls back to plain backoff instead of failing the request.
pub fn parse_retry_after(value: &str, now: SystemTime) -> Option<Duration> {
    let value = value.trim();
    if !value.is_empty() && value.bytes().all(|b| b.is_ascii_digit()) {
        return value.parse::<u64>().ok().map(Duration::from_secs);
    }
    let at = httpdate::parse_http_date(value).ok()?;
    Some(at.duration_since(now).unwrap_or(Duration::ZERO))
}

/// What the caller's `classify` says about an error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RetryDecision {
    /// Transient: try again, waiting at least `hint` if the server said so.
    Retry {
        /// The server's requested wait (e.g. from `Retry-After`), used as a floor.
        hint: Option<Duration>,
    },
    /// Final: trying again unchanged cannot succeed (a 400, a mapping error...).
    Fail,
}

/// Why [`retry`] stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StopReason {
    /// `classify` said the error is final.
    Permanent,
    /// The error was retryable but the attempt or time budget ran out.
    Exhausted,
}

/// The last error of a retry loop that did not succeed, with what the DLQ headers need.
#[derive(Debug)]
pub struct RetryError<E> {
    /// The error of the last try.
    pub error: E,
    /// Tries made, counting the first.
    pub attempts: u32,
    /// Whether the error was final or the budget ran out (a DLQ replay may help the latter).
    pub reason: StopReason,
    /// When the first try failed.
    pub first_failed_at: SystemTime,
}

impl<E: fmt::Display> fmt::Display for RetryError<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.reason {
            StopReason::Permanent => write!(
                f,
                "failed after {} attempt(s): {}",
                self.attempts, self.error
            ),
            StopReason::Exhausted => write!(
                f,
                "retry budget exhausted after {} attempt(s): {}",
                self.attempts, self.error
            ),
        }
    }
}

impl<E: std::error::Error + 'static> std::error::Error for RetryError<E> {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.error)
    }
}

/// Runs `op` until it succeeds, `classify` calls its error final, or `policy`'s budget runs out.
///
/// Each retry is logged with the attempt number and the wait; the error is logged through its
/// `Display` only, which for sfjira's errors never contains credentials.
///
/// # Errors
///
/// The last error, with the number of tries and why retrying stopped.
pub async fn retry<T, E, F, Fut>(
    policy: &RetryPolicy,
    op: F,
    classify: impl Fn(&E) -> RetryDecision,
) -> Result<T, RetryError<E>>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, E>>,
    E: fmt::Display,
{
    retry_with(policy.backoff(), op, classify).await
}

/// [`retry`] with a caller-made [`Backoff`] (a seeded rng, or a clock started earlier).
///
/// # Errors
///
/// As [`retry`].
pub async fn retry_with<T, E, F, Fut>(
    mut backoff: Backoff,
    mut op: F,
    classify: impl Fn(&E) -> RetryDecision,
) -> Result<T, RetryError<E>>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, E>>,
    E: fmt::Display,
{
    loop {
        let error = match op().await {
            Ok(value) => return Ok(value),
            Err(error) => error,
        };
        let hint = match classify(&error) {
            RetryDecision::Retry { hint } => hint,
            RetryDecision::Fail => {
                backoff.record_failure();
                return Err(backoff.give_up(error, StopReason::Permanent));
            }
        };
        let Some(delay) = backoff.next_delay(hint) else {
            tracing::warn!(
                attempts = backoff.attempts(),
                elapsed_ms = backoff.elapsed().as_millis() as u64,
                error = %error,
                "retry budget exhausted, giving up"
            );
            return Err(backoff.give_up(error, StopReason::Exhausted));
        };
        let delay_ms = delay.as_millis() as u64;
        let hint_ms = hint.map(|h| h.as_millis() as u64);
        // One failure is routine (a 429, a leader election); a run of them is worth a look.
        if backoff.attempts() == 1 {
            tracing::debug!(attempt = backoff.attempts(), delay_ms, hint_ms, error = %error, "retrying");
        } else {
            tracing::warn!(attempt = backoff.attempts(), delay_ms, hint_ms, error = %error, "retrying");
        }
        tokio::time::sleep(delay).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU32, Ordering};

    fn policy(initial: u64, max: u64, attempts: u32, elapsed: u64) -> RetryPolicy {
        RetryPolicy {
            initial_delay_ms: initial,
            max_delay_ms: max,
            max_attempts: attempts,
            max_elapsed_ms: elapsed,
        }
    }

    fn seeded(p: &RetryPolicy) -> Backoff {
        p.backoff().with_rng(StdRng::seed_from_u64(42))
    }

    #[test]
    fn defaults_validate() {
        let p = RetryPolicy::default();
        assert_eq!(
            (
                p.initial_delay_ms,
                p.max_delay_ms,
                p.max_attempts,
                p.max_elapsed_ms
            ),
            (200, 30_000, 8, 300_000)
        );
        p.validate().unwrap();
        assert!(
            policy(0, 1, 1, 1)
                .validate()
                .unwrap_err()
                .contains("initial_delay_ms")
        );
        assert!(
            policy(10, 5, 1, 1)
                .validate()
                .unwrap_err()
                .contains("max_delay_ms")
        );
        assert!(
            policy(1, 5, 0, 1)
                .validate()
                .unwrap_err()
                .contains("max_attempts")
        );
    }

    #[test]
    fn delays_stay_within_the_jitter_window() {
        let p = policy(100, 5_000, u32::MAX, u64::MAX);
        for seed in 0..200 {
            let mut b = p.backoff().with_rng(StdRng::seed_from_u64(seed));
            for n in 0..20u32 {
                let cap = Duration::from_millis((100u64 << n.min(40)).min(5_000));
                let d = b.next_delay_at(Duration::ZERO, None).unwrap();
                assert!(d <= cap, "retry {n}: {d:?} > {cap:?}");
            }
        }
    }

    #[test]
    fn jitter_covers_the_whole_window() {
        // Retry 3 of (100 ms, max 500 ms): window is min(500, 800) = 500 ms.
        let p = policy(100, 500, u32::MAX, u64::MAX);
        let cap = Duration::from_millis(500);
        let mut rng = StdRng::seed_from_u64(1);
        let samples: Vec<Duration> = (0..1000)
            .map(|_| {
                let mut b = p.backoff().with_rng(StdRng::seed_from_u64(rng.random()));
                for _ in 0..3 {
                    b.next_delay_at(Duration::ZERO, None);
                }
                b.next_delay_at(Duration::ZERO, None).unwrap()
            })
            .collect();
        let min = *samples.iter().min().unwrap();
        let max = *samples.iter().max().unwrap();
        assert!(min < cap / 10, "min {min:?}");
        assert!(max > cap * 9 / 10, "max {max:?}");
        assert!(samples.iter().all(|d| *d <= cap));
    }

    #[test]
    fn gives_up_after_max_attempts() {
        let mut b = seeded(&policy(10, 100, 3, u64::MAX));
        assert!(b.next_delay_at(Duration::ZERO, None).is_some()); // try 1 failed
        assert!(b.next_delay_at(Duration::ZERO, None).is_some()); // try 2 failed
        assert_eq!(b.next_delay_at(Duration::ZERO, None), None); // try 3 failed: that was the last
        assert_eq!(b.attempts(), 3);
        assert!(b.first_failed_at().is_some());
    }

    #[test]
    fn gives_up_when_time_budget_is_spent() {
        let mut b = seeded(&policy(10, 100, 100, 1_000));
        assert!(b.next_delay_at(Duration::from_millis(500), None).is_some());
        assert_eq!(b.next_delay_at(Duration::from_millis(1_000), None), None);
        // A jittered wait never runs past the deadline.
        let mut b = seeded(&policy(10_000, 10_000, 100, 1_000));
        let d = b.next_delay_at(Duration::from_millis(990), None).unwrap();
        assert!(d <= Duration::from_millis(10));
    }

    #[test]
    fn hint_is_a_floor() {
        let mut b = seeded(&policy(10, 100, 100, 600_000));
        for _ in 0..50 {
            let d = b
                .next_delay_at(Duration::ZERO, Some(Duration::from_secs(2)))
                .unwrap();
            assert_eq!(
                d,
                Duration::from_secs(2),
                "jitter (<= 100 ms) below the hint"
            );
        }
        // A hint below the jitter does not shorten it.
        let mut b = seeded(&policy(1_000, 1_000, 100, 600_000));
        let plain = seeded(&policy(1_000, 1_000, 100, 600_000)).next_delay_at(Duration::ZERO, None);
        assert_eq!(
            b.next_delay_at(Duration::ZERO, Some(Duration::from_nanos(1))),
            plain
        );
    }

    #[test]
    fn hint_beyond_budget_gives_up() {
        let mut b = seeded(&policy(10, 100, 100, 60_000));
        assert_eq!(
            b.next_delay_at(Duration::from_secs(30), Some(Duration::from_secs(31))),
            None
        );
        let mut b = seeded(&policy(10, 100, 100, 60_000));
        assert_eq!(
            b.next_delay_at(Duration::from_secs(30), Some(Duration::from_secs(30))),
            Some(Duration::from_secs(30))
        );
    }

    #[test]
    fn retry_after_parsing() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_445_412_400); // 2015-10-21 07:26:40 UTC
        assert_eq!(
            parse_retry_after("120", now),
            Some(Duration::from_secs(120))
        );
        assert_eq!(parse_retry_after(" 0 ", now), Some(Duration::ZERO));
        assert_eq!(
            parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT", now),
            Some(Duration::from_secs(80))
        );
        // Obsolete RFC 850 and asctime forms must be accepted too.
        assert_eq!(
            parse_retry_after("Wednesday, 21-Oct-15 07:28:00 GMT", now),
            Some(Duration::from_secs(80))
        );
        assert_eq!(
            parse_retry_after("Wed Oct 21 07:28:00 2015", now),
            Some(Duration::from_secs(80))
        );
        // In the past: retry now.
        assert_eq!(
            parse_retry_after("Wed, 21 Oct 2015 07:00:00 GMT", now),
            Some(Duration::ZERO)
        );
        for garbage in [
            "",
            "soon",
            "-5",
            "1.5",
            "12abc",
            "Wed, 32 Oct 2015 07:28:00 GMT",
        ] {
            assert_eq!(parse_retry_after(garbage, now), None, "{garbage:?}");
        }
    }

    #[derive(Debug)]
    struct Failure(&'static str);
    impl fmt::Display for Failure {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str(self.0)
        }
    }

    #[tokio::test(start_paused = true)]
    async fn retry_stops_on_fail_immediately() {
        let calls = AtomicU32::new(0);
        let start = Instant::now();
        let result: Result<(), _> = retry(
            &RetryPolicy::default(),
            || {
                calls.fetch_add(1, Ordering::SeqCst);
                async { Err(Failure("400 bad request")) }
            },
            |_| RetryDecision::Fail,
        )
        .await;
        let err = result.unwrap_err();
        assert_eq!(calls.load(Ordering::SeqCst), 1);
        assert_eq!((err.attempts, err.reason), (1, StopReason::Permanent));
        assert_eq!(
            start.elapsed(),
            Duration::ZERO,
            "no sleep before a final failure"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn retry_retries_then_returns_success() {
        let calls = AtomicU32::new(0);
        let start = Instant::now();
        let result = retry(
            &RetryPolicy::default(),
            || {
                let n = calls.fetch_add(1, Ordering::SeqCst) + 1;
                async move { if n < 3 { Err(Failure("503")) } else { Ok(n) } }
            },
            |_| RetryDecision::Retry {
                hint: Some(Duration::from_secs(1)),
            },
        )
        .await;
        assert_eq!(result.unwrap(), 3);
        assert_eq!(calls.load(Ordering::SeqCst), 3);
        // Two waits, each at least the 1 s hint (jitter for retries 0 and 1 is <= 400 ms).
        assert_eq!(start.elapsed(), Duration::from_secs(2));
    }

    #[tokio::test(start_paused = true)]
    async fn retry_gives_up_when_exhausted() {
        let calls = AtomicU32::new(0);
        let result: Result<(), _> = retry_with(
            seeded(&policy(10, 100, 4, 60_000)),
            || {
                calls.fetch_add(1, Ordering::SeqCst);
                async { Err(Failure("503")) }
            },
            |_| RetryDecision::Retry { hint: None },
        )
        .await;
        let err = result.unwrap_err();
        assert_eq!(calls.load(Ordering::SeqCst), 4);
        assert_eq!((err.attempts, err.reason), (4, StopReason::Exhausted));
        assert_eq!(
            err.to_string(),
            "retry budget exhausted after 4 attempt(s): 503"
        );
    }
}
