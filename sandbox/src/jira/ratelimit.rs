//! Jira Cloud's rate limits (jira-api.md §4,
//! https://developer.atlassian.com/cloud/jira/platform/rate-limiting/): a token bucket per
//! endpoint (method + path template, "per tenant and per API/resource path"), per-issue write
//! limits (20 writes / 2 s and 100 writes / 30 s), each answering 429 with Jira's headers; plus
//! injectable faults seen in the wild: a "429 storm" without `Retry-After` (JRACLOUD-82801) and
//! 503s with `Retry-After`. Buckets refill on [`SandboxClock`] time so tests can scale them.
//!
//! The points-based hourly quota applies to apps (OAuth/Forge/Connect) only, not to API-token
//! traffic, and is left out.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::{Arc, Mutex};

use axum::extract::{Request, State};
use axum::http::{HeaderName, HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, TimeDelta, Utc};
use serde::{Deserialize, Serialize};

use super::auth::ActAs;
use crate::clock::SandboxClock;

/// Rate limits of the sandbox site. Defaults are Jira Cloud's published steady-state rates.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RateLimitConfig {
    /// Off: burst and per-issue limits are not enforced (injected faults still are).
    pub enabled: bool,
    /// Requests per second per endpoint, by method (Jira: GET 100, POST 100, PUT 50, DELETE 50).
    pub get_per_second: f64,
    pub post_per_second: f64,
    pub put_per_second: f64,
    pub delete_per_second: f64,
    /// Bucket size as seconds of the steady rate (Atlassian does not publish it; 1 s here).
    pub burst_seconds: f64,
    /// Per-endpoint rates, keyed `"GET /rest/api/3/issue/{id}"` (ids and keys in paths read as
    /// `{id}`). Defaults: Jira's custom limits for get-issue (150) and its changelog (200).
    pub overrides: BTreeMap<String, f64>,
    /// Per-issue writes (POST/PUT/DELETE under `/rest/api/{2,3}/issue/{idOrKey}`): at most
    /// `per_issue_short_limit` in `per_issue_short_window_secs`, and `per_issue_long_limit` in
    /// `per_issue_long_window_secs`.
    pub per_issue_short_limit: u32,
    pub per_issue_short_window_secs: f64,
    pub per_issue_long_limit: u32,
    pub per_issue_long_window_secs: f64,
}

impl Default for RateLimitConfig {
    fn default() -> Self {
        RateLimitConfig {
            enabled: true,
            get_per_second: 100.0,
            post_per_second: 100.0,
            put_per_second: 50.0,
            delete_per_second: 50.0,
            burst_seconds: 1.0,
            overrides: BTreeMap::from([
                ("GET /rest/api/3/issue/{id}".to_string(), 150.0),
                ("GET /rest/api/3/issue/{id}/changelog".to_string(), 200.0),
            ]),
            per_issue_short_limit: 20,
            per_issue_short_window_secs: 2.0,
            per_issue_long_limit: 100,
            per_issue_long_window_secs: 30.0,
        }
    }
}

/// A fault injected through the admin API: counted faults answer the next `requests` requests,
/// one fault after another; a timed storm answers every request until its time is up.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Fault {
    /// 429 without `Retry-After` or `RateLimit-Reason`, as a gateway limit answered it
    /// (`X-Failure-Category: FAILURE CLIENT RATE LIMITED`, `X-RateLimit-Limit: 360000`;
    /// https://developer.status.atlassian.com/incidents/bb38p4wdd7mz).
    Storm429 { requests: u32 },
    /// The same 429s for every request during `seconds`, whoever sends them and however many.
    /// Gateway limits last a while rather than a number of requests, so a storm that hits a
    /// lone caller backing off ends on time instead of waiting for that caller's retries.
    Storm429For { seconds: f64 },
    /// 503 Service Unavailable with `Retry-After`.
    Unavailable503 {
        requests: u32,
        retry_after_secs: u64,
    },
}

/// What the limiter decided for one request.
#[derive(Debug, Clone, PartialEq)]
pub enum Decision {
    /// Let it through; the bucket's size and what is left, for `X-RateLimit-*` headers.
    Allow { limit: u64, remaining: u64 },
    Reject {
        status: StatusCode,
        headers: Vec<(&'static str, String)>,
    },
}

/// The site's limiter; cheap to clone (shared state).
#[derive(Debug, Clone)]
pub struct RateLimiter {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    clock: SandboxClock,
    state: Mutex<LimiterState>,
}

#[derive(Debug)]
struct LimiterState {
    config: RateLimitConfig,
    buckets: HashMap<String, Bucket>,
    /// Write times per issue id-or-key (upper-cased), oldest first.
    issue_writes: HashMap<String, VecDeque<DateTime<Utc>>>,
    faults: VecDeque<(Fault, u32)>,
    /// Until when a [`Fault::Storm429For`] answers every request.
    storm_until: Option<DateTime<Utc>>,
}

#[derive(Debug)]
struct Bucket {
    tokens: f64,
    at: DateTime<Utc>,
}

impl RateLimiter {
    pub fn new(config: RateLimitConfig, clock: SandboxClock) -> Self {
        let state = LimiterState {
            config,
            buckets: HashMap::new(),
            issue_writes: HashMap::new(),
            faults: VecDeque::new(),
            storm_until: None,
        };
        RateLimiter {
            inner: Arc::new(Inner {
                clock,
                state: Mutex::new(state),
            }),
        }
    }

    fn state(&self) -> std::sync::MutexGuard<'_, LimiterState> {
        // A panic while holding the lock leaves plain counters behind: still usable.
        self.inner.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Replaces the limits and forgets all bucket and per-issue state.
    pub fn set_config(&self, config: RateLimitConfig) {
        let mut s = self.state();
        s.config = config;
        s.buckets.clear();
        s.issue_writes.clear();
    }

    pub fn config(&self) -> RateLimitConfig {
        self.state().config.clone()
    }

    /// Queues a fault; faults apply one after another, each to its number of requests.
    pub fn inject(&self, fault: Fault) {
        let n = match &fault {
            Fault::Storm429 { requests } | Fault::Unavailable503 { requests, .. } => *requests,
            Fault::Storm429For { seconds } => {
                let until = self.inner.clock.now()
                    + TimeDelta::milliseconds((seconds.max(0.0) * 1000.0) as i64);
                let mut s = self.state();
                s.storm_until = Some(s.storm_until.map_or(until, |u| u.max(until)));
                return;
            }
        };
        if n > 0 {
            self.state().faults.push_back((fault, n));
        }
    }

    pub fn clear_faults(&self) {
        let mut s = self.state();
        s.faults.clear();
        s.storm_until = None;
    }

    /// Decides for a request and counts it.
    pub fn check(&self, method: &Method, path: &str) -> Decision {
        self.decide(method, path, true)
    }

    /// [`Self::check`] for a person acting through the admin API: the rate limits count them,
    /// injected faults do not (faults are aimed at the integration, as in [`super::faults`]).
    pub fn check_person(&self, method: &Method, path: &str) -> Decision {
        self.decide(method, path, false)
    }

    fn decide(&self, method: &Method, path: &str, faults_apply: bool) -> Decision {
        let now = self.inner.clock.now();
        let mut s = self.state();
        if faults_apply {
            if s.storm_until.is_some_and(|until| now < until) {
                return storm_429();
            }
            if let Some(d) = s.take_fault() {
                return d;
            }
        }
        if !s.config.enabled {
            return Decision::Allow {
                limit: 0,
                remaining: 0,
            };
        }
        let endpoint = format!("{} {}", method.as_str(), path_template(path));
        let rate = s.rate_for(method, &endpoint);
        let capacity = (rate * s.config.burst_seconds).max(1.0);
        let bucket = s.buckets.entry(endpoint).or_insert(Bucket {
            tokens: capacity,
            at: now,
        });
        let elapsed = (now - bucket.at).as_seconds_f64().max(0.0);
        bucket.tokens = (bucket.tokens + elapsed * rate).min(capacity);
        bucket.at = now;
        if bucket.tokens < 1.0 {
            let wait = ((1.0 - bucket.tokens) / rate).ceil().max(1.0) as i64;
            return reject_429(now, wait, capacity as u64, "jira-burst-based");
        }
        bucket.tokens -= 1.0;
        let allow = Decision::Allow {
            limit: capacity as u64,
            remaining: bucket.tokens.floor() as u64,
        };

        let is_write = matches!(
            *method,
            Method::POST | Method::PUT | Method::DELETE | Method::PATCH
        );
        match issue_in_path(path).filter(|_| is_write) {
            Some(issue) => s.per_issue(issue, now).unwrap_or(allow),
            None => allow,
        }
    }
}

impl LimiterState {
    fn take_fault(&mut self) -> Option<Decision> {
        let (fault, left) = self.faults.front_mut()?;
        *left -= 1;
        let decision = match fault {
            Fault::Storm429 { .. } | Fault::Storm429For { .. } => storm_429(),
            Fault::Unavailable503 {
                retry_after_secs, ..
            } => Decision::Reject {
                status: StatusCode::SERVICE_UNAVAILABLE,
                headers: vec![("retry-after", retry_after_secs.to_string())],
            },
        };
        if *left == 0 {
            self.faults.pop_front();
        }
        Some(decision)
    }

    fn rate_for(&self, method: &Method, endpoint: &str) -> f64 {
        let c = &self.config;
        let rate = self
            .config
            .overrides
            .get(endpoint)
            .copied()
            .unwrap_or(match *method {
                Method::GET | Method::HEAD => c.get_per_second,
                Method::PUT | Method::PATCH => c.put_per_second,
                Method::DELETE => c.delete_per_second,
                _ => c.post_per_second,
            });
        rate.max(f64::MIN_POSITIVE)
    }

    /// Records a write to `issue`, or rejects it if either window is full.
    fn per_issue(&mut self, issue: String, now: DateTime<Utc>) -> Option<Decision> {
        let c = &self.config;
        let short = TimeDelta::milliseconds((c.per_issue_short_window_secs * 1000.0) as i64);
        let long = TimeDelta::milliseconds((c.per_issue_long_window_secs * 1000.0) as i64);
        let (short_limit, long_limit) = (
            c.per_issue_short_limit as usize,
            c.per_issue_long_limit as usize,
        );
        let writes = self.issue_writes.entry(issue).or_default();
        while writes.front().is_some_and(|t| now - *t >= long.max(short)) {
            writes.pop_front();
        }
        let in_short: Vec<_> = writes.iter().filter(|t| now - **t < short).collect();
        let full = if in_short.len() >= short_limit {
            Some((in_short[in_short.len() - short_limit], short, short_limit))
        } else if writes.len() >= long_limit {
            Some((&writes[writes.len() - long_limit], long, long_limit))
        } else {
            None
        };
        if let Some((oldest, window, limit)) = full {
            // The window frees a slot when the oldest write counted in it ages out.
            let wait = (*oldest + window - now).as_seconds_f64().ceil().max(1.0) as i64;
            return Some(reject_429(
                now,
                wait,
                limit as u64,
                "jira-per-issue-on-write",
            ));
        }
        writes.push_back(now);
        None
    }
}

/// The gateway's 429: no `Retry-After`, no `RateLimit-Reason`.
fn storm_429() -> Decision {
    Decision::Reject {
        status: StatusCode::TOO_MANY_REQUESTS,
        headers: vec![
            ("x-failure-category", "FAILURE CLIENT RATE LIMITED".into()),
            ("x-ratelimit-limit", "360000".into()),
        ],
    }
}

fn reject_429(now: DateTime<Utc>, wait_secs: i64, limit: u64, reason: &str) -> Decision {
    let reset = now + TimeDelta::seconds(wait_secs);
    Decision::Reject {
        status: StatusCode::TOO_MANY_REQUESTS,
        headers: vec![
            ("retry-after", wait_secs.to_string()),
            ("x-ratelimit-limit", limit.to_string()),
            ("x-ratelimit-remaining", "0".into()),
            // ISO 8601 as seen in real answers: `2026-01-01T01:01:01Z`.
            (
                "x-ratelimit-reset",
                reset.format("%Y-%m-%dT%H:%M:%SZ").to_string(),
            ),
            ("ratelimit-reason", reason.into()),
        ],
    }
}

fn is_id_or_key(seg: &str) -> bool {
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    digits(seg)
        || seg.rsplit_once('-').is_some_and(|(p, n)| {
            digits(n)
                && p.starts_with(|c: char| c.is_ascii_alphabetic())
                && p.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
        })
}

/// `/rest/api/3/issue/ABC-1/comment/10001` → `/rest/api/3/issue/{id}/comment/{id}`.
fn path_template(path: &str) -> String {
    let segs: Vec<&str> = path.split('/').collect();
    segs.iter()
        .enumerate()
        // The API version after `api` (`/rest/api/3`) is not an id.
        .map(|(i, s)| {
            if is_id_or_key(s) && (i == 0 || segs[i - 1] != "api") {
                "{id}"
            } else {
                s
            }
        })
        .collect::<Vec<_>>()
        .join("/")
}

/// The issue a write is about: `/rest/api/{2,3}/issue/{idOrKey}[/…]`.
fn issue_in_path(path: &str) -> Option<String> {
    let mut segs = path.trim_start_matches('/').split('/');
    let ok = segs.next()? == "rest"
        && segs.next()? == "api"
        && matches!(segs.next()?, "2" | "3")
        && segs.next()? == "issue";
    let id = segs.next()?;
    (ok && is_id_or_key(id)).then(|| id.to_ascii_uppercase())
}

/// axum middleware (`axum::middleware::from_fn_with_state(limiter, enforce)`): applies the
/// limits to every request except the sandbox's own `/__admin/` API.
pub async fn enforce(State(limiter): State<RateLimiter>, req: Request, next: Next) -> Response {
    if req.uri().path().starts_with("/__admin") {
        return next.run(req).await;
    }
    let decision = if req.extensions().get::<ActAs>().is_some() {
        limiter.check_person(req.method(), req.uri().path())
    } else {
        limiter.check(req.method(), req.uri().path())
    };
    match decision {
        Decision::Reject { status, headers } => {
            // [U] body: Jira's ErrorCollection shape; the exact sentence is not published.
            let text = if status == StatusCode::SERVICE_UNAVAILABLE {
                "Service Unavailable"
            } else {
                "Rate limit exceeded."
            };
            let mut resp = (
                status,
                axum::Json(serde_json::json!({"errorMessages": [text], "errors": {}})),
            )
                .into_response();
            for (name, value) in headers {
                if let Ok(v) = HeaderValue::from_str(&value) {
                    resp.headers_mut().insert(HeaderName::from_static(name), v);
                }
            }
            resp
        }
        Decision::Allow { limit, remaining } => {
            let mut resp = next.run(req).await;
            if limit > 0 {
                let h = resp.headers_mut();
                h.insert("x-ratelimit-limit", HeaderValue::from(limit));
                h.insert("x-ratelimit-remaining", HeaderValue::from(remaining));
                // "X-RateLimit-NearLimit: true when < 20% remains".
                if (remaining as f64) < 0.2 * limit as f64 {
                    h.insert("x-ratelimit-nearlimit", HeaderValue::from_static("true"));
                }
            }
            resp
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn templates_and_issue_paths() {
        assert_eq!(
            path_template("/rest/api/3/issue/ABC-12/comment/10001"),
            "/rest/api/3/issue/{id}/comment/{id}"
        );
        assert_eq!(
            path_template("/rest/api/3/issue/10001"),
            "/rest/api/3/issue/{id}"
        );
        assert_eq!(
            issue_in_path("/rest/api/3/issue/abc-12/transitions"),
            Some("ABC-12".into())
        );
        assert_eq!(
            issue_in_path("/rest/api/3/issue/10001"),
            Some("10001".into())
        );
        assert_eq!(issue_in_path("/rest/api/3/issue/bulk"), None);
        assert_eq!(issue_in_path("/rest/api/3/issue"), None);
    }

    #[test]
    fn custom_endpoint_rates_apply() {
        let l = RateLimiter::new(RateLimitConfig::default(), SandboxClock::new(0.001));
        let limit = |m: Method, p: &str| match l.check(&m, p) {
            Decision::Allow { limit, .. } => limit,
            d => panic!("{d:?}"),
        };
        assert_eq!(limit(Method::GET, "/rest/api/3/issue/SF-1"), 150);
        assert_eq!(limit(Method::GET, "/rest/api/3/issue/SF-1/changelog"), 200);
        assert_eq!(limit(Method::GET, "/rest/api/3/search/jql"), 100);
        assert_eq!(limit(Method::PUT, "/rest/api/3/issue/SF-1"), 50);
        assert_eq!(limit(Method::DELETE, "/rest/api/3/issue/SF-2"), 50);
    }
}
