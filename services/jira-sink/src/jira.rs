//! The Jira REST v3 client of the sink: every call takes a token from the process's one
//! [`JiraRateLimiter`] (shared with jira-source's design: token bucket + a process-wide pause on
//! `Retry-After` / `X-RateLimit-Reset`) and a permit of the concurrency cap, and is counted in
//! the metrics. Writes are made as the integration account (Basic `email:api_token`).
//!
//! Retrying is split on purpose: [`JiraClient::call_once`] makes one attempt and classifies its
//! failure ([`CallError::retryable`]); [`JiraClient::call`] retries with core `retry` (full
//! jitter from 2 s, `Retry-After` as a floor, for `retry_budget_ms`). Creates do not use
//! `call`: a create whose answer was lost may have happened, so the create path searches for
//! its marker before trying again (`create.rs`).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use reqwest::Method;
use serde_json::Value;
use sfjira_core::config::{JiraSinkConfig, Secret};
use sfjira_core::errors::{ErrorCode, StageError};
use sfjira_core::retry::{self, RetryDecision, RetryPolicy, StopReason};
use sfjira_jira_source::ratelimit::JiraRateLimiter;
use tokio::sync::Semaphore;

use crate::metrics;

/// A failed call.
#[derive(Debug, Clone, thiserror::Error)]
pub enum CallError {
    /// Jira answered with a non-2xx status; `body` is its JSON (an ErrorCollection) or text.
    #[error("{method} {path}: HTTP {status}: {}", body_text(.body))]
    Status {
        method: Method,
        path: String,
        status: u16,
        body: Value,
        hint: Option<Duration>,
    },
    /// No answer: connection refused, reset, or the request timed out (the write may or may
    /// not have happened).
    #[error("{method} {path}: {message}")]
    Transport {
        method: Method,
        path: String,
        message: String,
    },
}

fn body_text(body: &Value) -> String {
    let mut s = match body {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    s.truncate(1000);
    s
}

impl CallError {
    pub fn status(&self) -> Option<u16> {
        match self {
            CallError::Status { status, .. } => Some(*status),
            CallError::Transport { .. } => None,
        }
    }

    /// 429, 5xx, 409 (conflicting update) and no answer are worth retrying; other 4xx are not.
    pub fn retryable(&self) -> bool {
        match self {
            CallError::Transport { .. } => true,
            CallError::Status { status, .. } => *status == 429 || *status == 409 || *status >= 500,
        }
    }

    /// Whether a write that failed like this may nevertheless have been applied (no answer, or
    /// a 5xx from somewhere behind the gateway). A 429 or a 4xx was refused before processing.
    pub fn maybe_applied(&self) -> bool {
        match self {
            CallError::Transport { .. } => true,
            CallError::Status { status, .. } => *status >= 500,
        }
    }

    pub fn hint(&self) -> Option<Duration> {
        match self {
            CallError::Status { hint, .. } => *hint,
            CallError::Transport { .. } => None,
        }
    }

    /// Jira's answer body (ErrorCollection) when there is one.
    pub fn body(&self) -> Option<&Value> {
        match self {
            CallError::Status { body, .. } => Some(body),
            CallError::Transport { .. } => None,
        }
    }

    /// The catalogued error of a final failure (`exhausted`: the retry budget ran out).
    pub fn stage_error(&self, what: &str, exhausted: bool) -> StageError {
        let code = if exhausted || self.retryable() {
            ErrorCode::JiraRetriesExhausted
        } else {
            match self.status() {
                Some(401 | 403) => ErrorCode::JiraWriteForbidden,
                Some(404) => ErrorCode::JiraTargetNotFound,
                Some(413) => ErrorCode::JiraLimitReached,
                _ => ErrorCode::JiraWriteRejected,
            }
        };
        StageError::caused_by(code, format!("{what}: {self}"), self.clone())
    }
}

/// See the module comment. Share it behind an `Arc`.
pub struct JiraClient {
    http: reqwest::Client,
    base: String,
    email: String,
    token: Secret,
    limiter: Arc<JiraRateLimiter>,
    /// `PUT`/`DELETE` pace (Jira allows them half the rate of `GET`/`POST`).
    writes: JiraRateLimiter,
    inflight: Semaphore,
    policy: RetryPolicy,
    calls: AtomicU64,
}

impl JiraClient {
    pub fn new(cfg: &JiraSinkConfig) -> anyhow::Result<Self> {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_millis(cfg.request_timeout_ms))
            .build()?;
        Ok(JiraClient {
            http,
            base: cfg.site_url.trim_end_matches('/').to_string(),
            email: cfg.email.clone(),
            token: cfg.api_token.clone(),
            limiter: Arc::new(JiraRateLimiter::new(
                cfg.rate_limit_per_second,
                cfg.rate_limit_burst,
            )),
            writes: JiraRateLimiter::new(cfg.write_rate_limit_per_second, cfg.rate_limit_burst),
            inflight: Semaphore::new(cfg.concurrency),
            policy: cfg.retry_policy(),
            calls: AtomicU64::new(0),
        })
    }

    /// HTTP requests sent so far (tests and the bench count API calls per command).
    pub fn calls(&self) -> u64 {
        self.calls.load(Ordering::Relaxed)
    }

    pub fn retry_policy(&self) -> &RetryPolicy {
        &self.policy
    }

    /// One attempt. `endpoint` labels the metrics.
    pub async fn call_once(
        &self,
        method: Method,
        endpoint: &'static str,
        path: &str,
        body: Option<&Value>,
    ) -> Result<Value, CallError> {
        let _permit = self
            .inflight
            .acquire()
            .await
            .expect("semaphore never closed");
        let waiting = Instant::now();
        if method == Method::PUT || method == Method::DELETE {
            self.writes.acquire().await;
        }
        self.limiter.acquire().await;
        metrics::limiter_wait(waiting.elapsed());
        let mut req = self
            .http
            .request(method.clone(), format!("{}{path}", self.base))
            .header("Accept", "application/json")
            .basic_auth(&self.email, Some(self.token.expose()));
        if let Some(b) = body {
            req = req.json(b);
        }
        self.calls.fetch_add(1, Ordering::Relaxed);
        let started = Instant::now();
        let resp = match req.send().await {
            Ok(r) => r,
            Err(e) => {
                metrics::api_call(endpoint, 0, started.elapsed());
                return Err(CallError::Transport {
                    method,
                    path: path.to_string(),
                    message: e.to_string(),
                });
            }
        };
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        let text = resp.text().await.unwrap_or_default();
        metrics::api_call(endpoint, status, started.elapsed());
        let parsed =
            || serde_json::from_str::<Value>(&text).unwrap_or_else(|_| Value::String(text.clone()));
        if (200..300).contains(&status) {
            return Ok(if text.trim().is_empty() {
                Value::Null
            } else {
                parsed()
            });
        }
        let hint = sfjira_jira_source::jira::hint(&headers);
        if status == 429 || status == 503 {
            let reason = match (status, headers.get("ratelimit-reason")) {
                (503, _) => "unavailable".to_string(),
                (_, Some(r)) => r.to_str().unwrap_or("unknown").to_string(),
                (_, None) if hint.is_none() => "no-retry-after".to_string(),
                (_, None) => "unspecified".to_string(),
            };
            metrics::throttled(reason);
            if let Some(wait) = hint {
                // Every call of the process waits, not just this one.
                self.limiter.pause(wait);
            }
        }
        Err(CallError::Status {
            method,
            path: path.to_string(),
            status,
            body: parsed(),
            hint,
        })
    }

    /// Retries [`Self::call_once`] while the failure is retryable and the budget lasts. Only for
    /// calls that are safe to repeat (reads, edits, transitions, deletes).
    ///
    /// # Errors
    ///
    /// The last failure, with whether the budget ran out.
    pub async fn call(
        &self,
        method: Method,
        endpoint: &'static str,
        path: &str,
        body: Option<&Value>,
    ) -> Result<Value, (CallError, bool)> {
        let classify = |e: &CallError| {
            if e.retryable() {
                metrics::retry(endpoint);
                RetryDecision::Retry { hint: e.hint() }
            } else {
                RetryDecision::Fail
            }
        };
        retry::retry(
            &self.policy,
            || self.call_once(method.clone(), endpoint, path, body),
            classify,
        )
        .await
        .map_err(|e| (e.error, e.reason == StopReason::Exhausted))
    }
}
