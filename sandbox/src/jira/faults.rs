//! Injected faults for the REST API, all in one [`JiraFaults`] (config `jira.faults`, or
//! `GET`/`PUT /__admin/jira/faults`): added latency, a random 500 rate per endpoint class,
//! forced 409 "conflicting update" on edits (a status the spec lists for `PUT /issue`), and
//! 503 with `Retry-After` ("Some 503s carry `Retry-After`", reference §4). Rate-limit 429s are
//! the rate limiter's job (`ratelimit.rs`).
//!
//! Requests made through the admin API's "act as a user" path are never faulted: they stand
//! for people using the Jira UI, not for the connector's calls.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::{Request, State};
use axum::http::{Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};

use super::auth::ActAs;
use super::error::ApiError;

/// Which requests a fault rate applies to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EndpointClass {
    /// GET (except search).
    Read,
    /// POST/PUT/DELETE (except search).
    Write,
    /// `/search/jql`, `/worklog/updated|deleted`.
    Search,
}

impl EndpointClass {
    pub fn of(method: &Method, path: &str) -> Self {
        if path.contains("/search")
            || path.contains("/worklog/updated")
            || path.contains("/worklog/deleted")
        {
            EndpointClass::Search
        } else if method == Method::GET || method == Method::HEAD {
            EndpointClass::Read
        } else {
            EndpointClass::Write
        }
    }
}

/// Fractions (0.0–1.0) of requests answered with a 500.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ErrorRates {
    pub read: f64,
    pub write: f64,
    pub search: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct JiraFaults {
    /// Added to every REST request (wall-clock milliseconds).
    pub latency_ms: u64,
    pub error_rate: ErrorRates,
    /// The next N `PUT /issue/{idOrKey}` answer 409.
    pub conflict_on_put: u32,
    /// The next N REST requests answer 503 with `Retry-After: retry_after_secs`.
    pub unavailable: u32,
    pub retry_after_secs: u64,
}

impl Default for JiraFaults {
    fn default() -> Self {
        JiraFaults {
            latency_ms: 0,
            error_rate: ErrorRates::default(),
            conflict_on_put: 0,
            unavailable: 0,
            retry_after_secs: 5,
        }
    }
}

pub type SharedFaults = Arc<Mutex<JiraFaults>>;

/// What the faults decide for one request (taking one-shot faults as it goes).
fn decide(faults: &SharedFaults, method: &Method, path: &str) -> (Duration, Option<ApiError>) {
    let mut f = faults.lock().unwrap_or_else(|p| p.into_inner());
    let latency = Duration::from_millis(f.latency_ms);
    if f.unavailable > 0 {
        f.unavailable -= 1;
        // [U] body text; the status and header are the documented parts.
        let mut e = ApiError::message(StatusCode::SERVICE_UNAVAILABLE, "Service Unavailable");
        e.retry_after = Some(f.retry_after_secs);
        return (latency, Some(e));
    }
    if method == Method::PUT && is_issue_edit(path) && f.conflict_on_put > 0 {
        f.conflict_on_put -= 1;
        // [U] body text; 409 "conflicting update" is in the spec for `PUT /issue`.
        let e = ApiError::message(
            StatusCode::CONFLICT,
            "A conflicting update was made to this issue. Please try again.",
        );
        return (latency, Some(e));
    }
    let rate = match EndpointClass::of(method, path) {
        EndpointClass::Read => f.error_rate.read,
        EndpointClass::Write => f.error_rate.write,
        EndpointClass::Search => f.error_rate.search,
    };
    if rate > 0.0 && rand::random::<f64>() < rate {
        // [U] body text.
        return (
            latency,
            Some(ApiError::message(
                StatusCode::INTERNAL_SERVER_ERROR,
                "Internal server error",
            )),
        );
    }
    (latency, None)
}

/// `/rest/api/3/issue/{idOrKey}` (not a sub-resource).
fn is_issue_edit(path: &str) -> bool {
    let segs: Vec<&str> = path.trim_matches('/').split('/').collect();
    let at = segs.iter().position(|s| *s == "issue");
    matches!(at, Some(i) if segs.len() == i + 2 && segs[i + 1] != "bulk")
}

/// axum middleware over the REST routes.
pub async fn inject(State(faults): State<SharedFaults>, req: Request, next: Next) -> Response {
    if req.extensions().get::<ActAs>().is_some() {
        return next.run(req).await;
    }
    let (latency, fault) = decide(&faults, req.method(), req.uri().path());
    if !latency.is_zero() {
        tokio::time::sleep(latency).await;
    }
    match fault {
        Some(e) => e.into_response(),
        None => next.run(req).await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classifies_and_counts_down() {
        assert!(is_issue_edit("/rest/api/3/issue/PROJ-1"));
        assert!(!is_issue_edit("/rest/api/3/issue/PROJ-1/comment"));
        assert!(!is_issue_edit("/rest/api/3/issue/bulk"));
        let faults: SharedFaults = Arc::new(Mutex::new(JiraFaults {
            conflict_on_put: 1,
            ..Default::default()
        }));
        let (_, f) = decide(&faults, &Method::PUT, "/rest/api/3/issue/PROJ-1");
        assert_eq!(f.unwrap().status, StatusCode::CONFLICT);
        assert!(
            decide(&faults, &Method::PUT, "/rest/api/3/issue/PROJ-1")
                .1
                .is_none()
        );
        assert_eq!(
            EndpointClass::of(&Method::POST, "/rest/api/3/search/jql"),
            EndpointClass::Search
        );
    }
}
