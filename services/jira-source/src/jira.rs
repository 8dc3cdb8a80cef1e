//! The Jira REST v3 client jira-source needs: JQL search (`POST /rest/api/3/search/jql`,
//! paged by `nextPageToken`), one issue with its changelog, and the field names.
//!
//! Auth is an API token (Basic `email:token` against the site) or OAuth 2.0 (3LO, bearer tokens
//! against `api.atlassian.com/ex/jira/<cloud id>`, see `oauth.rs`; a 401 drops the access token
//! and the retry refreshes it). Every request first takes a token from the process's shared
//! [`JiraRateLimiter`] (`ratelimit.rs`: token bucket + shared pause). Every call goes through
//! core's [`retry`] with full jitter: 429 and 503 wait at least what `Retry-After` (or, failing
//! that, `X-RateLimit-Reset`) asks — and that wait is applied to every call through the shared
//! limiter's pause; other 5xx and connection failures (and 429s without a hint) back off
//! exponentially; 401/403 and other 4xx are final. Only reads are made, so retrying is always
//! safe.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use crate::oauth::{OAuth, OAuthError};
use crate::ratelimit::JiraRateLimiter;
use reqwest::StatusCode;
use serde_json::{Value, json};
use sfjira_core::config::{JiraSourceConfig, Secret};
use sfjira_core::errors::{ErrorCode, StageError};
use sfjira_core::retry::{self, RetryDecision, RetryPolicy, parse_retry_after};

/// A failed call, with what the retry loop needs.
#[derive(Debug, thiserror::Error)]
pub enum JiraError {
    /// Getting an OAuth access token failed (403 `invalid_grant` means re-consent).
    #[error("OAuth: {0}")]
    Auth(#[source] OAuthError),
    #[error("{method} {path}: HTTP {status}: {body}")]
    Status {
        method: &'static str,
        path: String,
        status: StatusCode,
        body: String,
        hint: Option<Duration>,
    },
    #[error("{method} {path}: {source}")]
    Transport {
        method: &'static str,
        path: String,
        #[source]
        source: reqwest::Error,
    },
}

impl JiraError {
    fn oauth_decision(e: &OAuthError) -> RetryDecision {
        match e {
            OAuthError::Transport(..) => RetryDecision::Retry { hint: None },
            OAuthError::Refused { status, .. } if *status == 429 || *status >= 500 => {
                RetryDecision::Retry { hint: None }
            }
            _ => RetryDecision::Fail,
        }
    }

    pub fn status(&self) -> Option<StatusCode> {
        match self {
            JiraError::Status { status, .. } => Some(*status),
            JiraError::Transport { .. } | JiraError::Auth(_) => None,
        }
    }

    fn decision(&self) -> RetryDecision {
        match self {
            JiraError::Transport { .. } => RetryDecision::Retry { hint: None },
            JiraError::Auth(e) => Self::oauth_decision(e),
            JiraError::Status { status, hint, .. }
                if *status == StatusCode::TOO_MANY_REQUESTS || status.is_server_error() =>
            {
                RetryDecision::Retry { hint: *hint }
            }
            JiraError::Status { .. } => RetryDecision::Fail,
        }
    }

    /// The catalogued error for logs and DLQ headers.
    pub fn stage_error(self) -> StageError {
        if let JiraError::Auth(OAuthError::Refused {
            status: 400..=499, ..
        }) = &self
        {
            return StageError::caused_by(
                ErrorCode::JiraAuthRejected,
                "refreshing the OAuth token",
                self,
            );
        }
        let code = match self.status() {
            Some(StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN) => ErrorCode::JiraAuthRejected,
            _ => ErrorCode::JiraPollFailed,
        };
        StageError::caused_by(code, "calling Jira", self)
    }
}

/// The wait a 429/503 asks for: `Retry-After`, else `X-RateLimit-Reset` (an ISO timestamp).
/// Shared with the jira-sink, which talks to the same site under the same rules.
pub fn hint(headers: &reqwest::header::HeaderMap) -> Option<Duration> {
    let now = SystemTime::now();
    if let Some(d) = headers
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| parse_retry_after(v, now))
    {
        return Some(d);
    }
    let reset = headers.get("x-ratelimit-reset")?.to_str().ok()?;
    let at = chrono::DateTime::parse_from_rfc3339(reset).ok()?;
    let wait = at.timestamp_millis() - chrono::Utc::now().timestamp_millis();
    Some(Duration::from_millis(u64::try_from(wait).unwrap_or(0)))
}

/// How calls authenticate.
enum Auth {
    /// API token: Basic `email:token` against the site URL.
    Basic { email: String, token: Secret },
    /// OAuth 2.0 (3LO): a bearer token against `api.atlassian.com/ex/jira/<cloud id>`.
    OAuth(Box<OAuth>),
}

pub struct JiraClient {
    http: reqwest::Client,
    base: String,
    auth: Auth,
    retry: RetryPolicy,
    /// Shared by every call of the process.
    limiter: Arc<JiraRateLimiter>,
    /// Custom field id → name on the site (`GET /field`), loaded on first need.
    names: Mutex<Option<HashMap<String, String>>>,
}

/// One page of search results.
pub struct SearchPage {
    pub issues: Vec<Value>,
    pub next_page_token: Option<String>,
}

impl JiraClient {
    /// A client with its own limiter built from `cfg` (`rate_limit_per_second`,
    /// `rate_limit_burst`); every call made through this client (and the `Arc`s of it) shares it.
    pub fn new(cfg: &JiraSourceConfig) -> anyhow::Result<Self> {
        let limiter = Arc::new(JiraRateLimiter::new(
            cfg.rate_limit_per_second,
            cfg.rate_limit_burst,
        ));
        Self::with_limiter(cfg, limiter)
    }

    /// A client sharing `limiter` with other clients of the process.
    pub fn with_limiter(
        cfg: &JiraSourceConfig,
        limiter: Arc<JiraRateLimiter>,
    ) -> anyhow::Result<Self> {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_millis(cfg.request_timeout_ms))
            .build()?;
        let auth = match (&cfg.oauth, &cfg.email, &cfg.api_token) {
            (Some(o), _, _) => Auth::OAuth(Box::new(OAuth::new(o, &cfg.site_url, http.clone())?)),
            (None, Some(email), Some(token)) => Auth::Basic {
                email: email.clone(),
                token: token.clone(),
            },
            _ => anyhow::bail!("jira_source needs email + api_token or oauth"),
        };
        Ok(JiraClient {
            http,
            base: cfg.site_url.trim_end_matches('/').to_string(),
            auth,
            retry: cfg.retry.clone(),
            limiter,
            names: Mutex::new(None),
        })
    }

    /// The shared limiter every call goes through.
    pub fn limiter(&self) -> &Arc<JiraRateLimiter> {
        &self.limiter
    }

    async fn call(
        &self,
        method: &'static str,
        path: &str,
        body: Option<&Value>,
    ) -> Result<Value, JiraError> {
        let once = || async {
            let (base, bearer) = match &self.auth {
                Auth::Basic { .. } => (self.base.clone(), None),
                Auth::OAuth(o) => {
                    let token = o.access_token().await.map_err(JiraError::Auth)?;
                    (o.base().await.map_err(JiraError::Auth)?, Some(token))
                }
            };
            let url = format!("{base}{path}");
            let mut req = match method {
                "POST" => self.http.post(&url),
                _ => self.http.get(&url),
            }
            .header("Accept", "application/json");
            req = match (&self.auth, bearer) {
                (Auth::Basic { email, token }, _) => req.basic_auth(email, Some(token.expose())),
                (_, Some(b)) => req.bearer_auth(b),
                (_, None) => req,
            };
            if let Some(b) = body {
                req = req.json(b);
            }
            let transport = |source| JiraError::Transport {
                method,
                path: path.to_string(),
                source,
            };
            self.limiter.acquire().await;
            let resp = req.send().await.map_err(transport)?;
            let status = resp.status();
            if status.is_success() {
                return resp.json::<Value>().await.map_err(transport);
            }
            if let (Auth::OAuth(o), StatusCode::UNAUTHORIZED) = (&self.auth, status) {
                // Revoked or expired early: the next try refreshes.
                o.invalidate().await;
            }
            let hint = hint(resp.headers());
            if let Some(wait) = hint
                && (status == StatusCode::TOO_MANY_REQUESTS
                    || status == StatusCode::SERVICE_UNAVAILABLE)
            {
                // Every call of the process waits, not just this one.
                self.limiter.pause(wait);
            }
            let mut body = resp.text().await.unwrap_or_default();
            body.truncate(500);
            Err(JiraError::Status {
                method,
                path: path.to_string(),
                status,
                body,
                hint,
            })
        };
        let oauth = matches!(self.auth, Auth::OAuth(_));
        let classify = |e: &JiraError| match e {
            JiraError::Status {
                status: StatusCode::UNAUTHORIZED,
                ..
            } if oauth => RetryDecision::Retry { hint: None },
            other => other.decision(),
        };
        retry::retry(&self.retry, once, classify)
            .await
            .map_err(|e| e.error)
    }

    /// One page of `jql`, with `fields` and the changelog expanded.
    pub async fn search(
        &self,
        jql: &str,
        fields: &[String],
        page_size: u32,
        token: Option<&str>,
    ) -> Result<SearchPage, JiraError> {
        let mut body =
            json!({"jql": jql, "fields": fields, "expand": "changelog", "maxResults": page_size});
        if let Some(t) = token {
            body["nextPageToken"] = json!(t);
        }
        let v = self
            .call("POST", "/rest/api/3/search/jql", Some(&body))
            .await?;
        Ok(SearchPage {
            issues: v
                .get("issues")
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default(),
            next_page_token: v
                .get("nextPageToken")
                .and_then(Value::as_str)
                .filter(|_| v.get("isLast").and_then(Value::as_bool) != Some(true))
                .map(String::from),
        })
    }

    /// One issue with every field and its changelog; `None` when it no longer exists.
    pub async fn issue(&self, id_or_key: &str) -> Result<Option<Value>, JiraError> {
        match self
            .call(
                "GET",
                &format!("/rest/api/3/issue/{id_or_key}?expand=changelog"),
                None,
            )
            .await
        {
            Ok(v) => Ok(Some(v)),
            Err(e) if e.status() == Some(StatusCode::NOT_FOUND) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// One page of `/worklog/updated` or `/worklog/deleted` (`feed`) since `since` (epoch ms):
    /// (worklog ids with their time, `until`, whether it is the last page).
    pub async fn worklog_feed(
        &self,
        feed: &str,
        since: i64,
    ) -> Result<(Vec<(u64, i64)>, i64, bool), JiraError> {
        let v = self
            .call(
                "GET",
                &format!("/rest/api/3/worklog/{feed}?since={since}"),
                None,
            )
            .await?;
        let values = v
            .get("values")
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(|w| {
                        Some((
                            w.get("worklogId")?.as_u64()?,
                            w.get("updatedTime")?.as_i64()?,
                        ))
                    })
                    .collect()
            })
            .unwrap_or_default();
        let until = v.get("until").and_then(Value::as_i64).unwrap_or(since);
        let last = v.get("lastPage").and_then(Value::as_bool).unwrap_or(true);
        Ok((values, until, last))
    }

    /// The worklogs with these ids (`POST /worklog/list`, at most 1000).
    pub async fn worklog_list(&self, ids: &[u64]) -> Result<Vec<Value>, JiraError> {
        let v = self
            .call(
                "POST",
                "/rest/api/3/worklog/list",
                Some(&json!({"ids": ids})),
            )
            .await?;
        Ok(v.as_array().cloned().unwrap_or_default())
    }

    /// (key, project key) of an issue, `None` when it no longer exists.
    pub async fn issue_key(&self, id: &str) -> Result<Option<(String, String)>, JiraError> {
        match self
            .call(
                "GET",
                &format!("/rest/api/3/issue/{id}?fields=project"),
                None,
            )
            .await
        {
            Ok(v) => Ok(Some((
                v.get("key")
                    .and_then(Value::as_str)
                    .unwrap_or(id)
                    .to_string(),
                v.pointer("/fields/project/key")
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_string(),
            ))),
            Err(e) if e.status() == Some(StatusCode::NOT_FOUND) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Custom field names by id, fetched once (and again when `missing` names an unknown id).
    pub async fn field_names(
        &self,
        missing: &[&str],
    ) -> Result<HashMap<String, String>, JiraError> {
        {
            let cached = self.names.lock().expect("names");
            if let Some(n) = cached
                .as_ref()
                .filter(|n| missing.iter().all(|m| n.contains_key(*m)))
            {
                return Ok(n.clone());
            }
        }
        let v = self.call("GET", "/rest/api/3/field", None).await?;
        let names: HashMap<String, String> = v
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|f| {
                        Some((
                            f.get("id")?.as_str()?.to_string(),
                            f.get("name")?.as_str()?.to_string(),
                        ))
                    })
                    .collect()
            })
            .unwrap_or_default();
        let mut names = names;
        // An id the site does not list keeps its id as its name, so it is not fetched again.
        for m in missing {
            names
                .entry((*m).to_string())
                .or_insert_with(|| (*m).to_string());
        }
        *self.names.lock().expect("names") = Some(names.clone());
        Ok(names)
    }
}

#[cfg(test)]
mod tests {
    use super::hint;
    use reqwest::header::{HeaderMap, HeaderValue};
    use std::time::Duration;

    #[test]
    fn retry_after_wins_and_rate_limit_reset_is_the_fallback() {
        let mut h = HeaderMap::new();
        assert_eq!(hint(&h), None);
        let reset = (chrono::Utc::now() + chrono::Duration::seconds(30)).to_rfc3339();
        h.insert("x-ratelimit-reset", HeaderValue::from_str(&reset).unwrap());
        let d = hint(&h).unwrap();
        assert!(
            d > Duration::from_secs(28) && d <= Duration::from_secs(30),
            "{d:?}"
        );
        h.insert("retry-after", HeaderValue::from_static("5"));
        assert_eq!(hint(&h), Some(Duration::from_secs(5)));
    }
}
