//! One HTTP call of reconcile, retried the way every sfjira client retries (core's
//! [`retry`](sfjira_core::retry) with full jitter): 429 and 503 wait at least what
//! `Retry-After` asks, other 5xx and connection failures back off; every other answer is
//! returned to the caller, which decides what a 400 or 404 means.

use std::time::{Duration, SystemTime};

use reqwest::StatusCode;
use serde_json::Value;
use sfjira_core::retry::{self, RetryDecision, RetryPolicy, parse_retry_after};

/// A try worth repeating: what went wrong, and how long the server asked us to wait.
struct Transient {
    message: String,
    hint: Option<Duration>,
}

impl std::fmt::Display for Transient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

/// Sends the request `build` makes (again for each try) and returns the status and JSON body
/// of the first answer that is not worth retrying. `what` names the call in errors.
pub async fn send(
    what: &str,
    build: impl Fn() -> reqwest::RequestBuilder,
) -> anyhow::Result<(StatusCode, Value)> {
    let once = || async {
        let resp = build().send().await.map_err(|e| Transient {
            message: format!("{what}: {e}"),
            hint: None,
        })?;
        let status = resp.status();
        let hint = resp
            .headers()
            .get("retry-after")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| parse_retry_after(v, SystemTime::now()));
        if status == StatusCode::TOO_MANY_REQUESTS || status.is_server_error() {
            let mut body = resp.text().await.unwrap_or_default();
            body.truncate(500);
            return Err(Transient {
                message: format!("{what} answered {status}: {body}"),
                hint,
            });
        }
        let body: Value = resp.json().await.unwrap_or(Value::Null);
        Ok((status, body))
    };
    let classify = |t: &Transient| RetryDecision::Retry { hint: t.hint };
    retry::retry(&RetryPolicy::default(), once, classify)
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))
}
