//! One REST call to the org, with everything every call shares: the session (fetched at first
//! use, fetched again once when Salesforce answers 401 `INVALID_SESSION_ID`), the
//! `Sforce-Call-Options: client=<id>` header that makes our writes recognisable as echoes, the
//! `Sforce-Limit-Info` bookkeeping and pacing ([`crate::limits`]), and the sorting of failures
//! into what the caller must do: retry later, pause, or give up on the call (reference §4.5).
//!
//! The token never reaches a log line or an error: errors carry Salesforce's `errorCode` and
//! message only.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use reqwest::Method;
use serde::Deserialize;
use serde_json::Value;
use sfjira_core::config::SalesforceSinkConfig;
use sfjira_salesforce_source::auth::{AuthError, Session, TokenClient};
use tokio::sync::Mutex;

use crate::events::{ApiCalled, TokenRefreshed};
use crate::limits::LimitGuard;

/// One `{statusCode|errorCode, message, fields}` error of Salesforce's.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct SfError {
    #[serde(alias = "errorCode", rename = "statusCode", default)]
    pub status_code: String,
    #[serde(default)]
    pub message: String,
    #[serde(default)]
    pub fields: Vec<String>,
}

/// Why a call did not answer with a success.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// 503, 5xx, a timeout or no connection: worth trying again after a backoff.
    #[error("Salesforce unavailable ({status}): {message}")]
    Unavailable { status: u16, message: String },
    /// 403 `REQUEST_LIMIT_EXCEEDED`: the org's allocation is spent; pause.
    #[error("REQUEST_LIMIT_EXCEEDED: {message}")]
    LimitExceeded { message: String },
    /// 401 even with a fresh token, or the login itself failed.
    #[error("Salesforce login failed: {0}")]
    Login(String),
    /// Any other 4xx: the request itself is wrong.
    #[error("Salesforce rejected the call ({status}): {}", first_error(.errors))]
    Rejected { status: u16, errors: Vec<SfError> },
}

fn first_error(errors: &[SfError]) -> String {
    errors
        .first()
        .map(|e| format!("{}: {}", e.status_code, e.message))
        .unwrap_or_default()
}

impl ApiError {
    pub fn is_transient(&self) -> bool {
        matches!(self, ApiError::Unavailable { .. })
    }
}

pub struct SalesforceClient {
    http: reqwest::Client,
    tokens: TokenClient,
    session: Mutex<Option<Session>>,
    api_version: String,
    call_options: String,
    pub limits: Arc<LimitGuard>,
    /// The integration user's Id (`LastModifiedById` of our own writes), once known.
    user_id: std::sync::OnceLock<String>,
}

impl SalesforceClient {
    pub fn new(cfg: &SalesforceSinkConfig) -> anyhow::Result<Self> {
        Ok(SalesforceClient {
            http: http_client(cfg, Duration::from_secs(cfg.request_timeout_secs))?,
            tokens: TokenClient::new(&cfg.login_url, cfg.auth.clone(), None)
                .with_http_client(http_client(cfg, Duration::from_secs(30))?),
            session: Mutex::new(None),
            api_version: cfg.api_version.clone(),
            call_options: format!("client={}", cfg.client_id.trim()),
            limits: Arc::new(LimitGuard::new(
                cfg.limit_share_threshold,
                cfg.budgeted_calls_per_sec,
            )),
            user_id: std::sync::OnceLock::new(),
        })
    }

    /// Logs in now (at start, so bad credentials stop the service before it consumes).
    pub async fn login(&self) -> Result<(), ApiError> {
        self.session(true).await.map(|_| ())
    }

    /// The current session; a new one when there is none, when `fresh`, or when `rejected`
    /// (a token Salesforce refused) is still the current one — calls in flight together that
    /// all hit the expiry log in once.
    async fn session_replacing(
        &self,
        fresh: bool,
        rejected: Option<&str>,
    ) -> Result<Session, ApiError> {
        let mut guard = self.session.lock().await;
        if let Some(s) = guard.as_ref() {
            let stale = fresh || rejected.is_some_and(|r| r == s.access_token);
            if !stale {
                return Ok(s.clone());
            }
        }
        let s = self.tokens.login().await.map_err(login_error)?;
        *guard = Some(s.clone());
        Ok(s)
    }

    async fn session(&self, fresh: bool) -> Result<Session, ApiError> {
        self.session_replacing(fresh, None).await
    }

    /// The integration user's Id, from `/services/oauth2/userinfo` (not an API call), cached.
    pub async fn user_id(&self) -> Option<String> {
        if let Some(id) = self.user_id.get() {
            return Some(id.clone());
        }
        let session = self.session(false).await.ok()?;
        let url = format!("{}/services/oauth2/userinfo", session.instance_url);
        let resp = self
            .http
            .get(url)
            .bearer_auth(&session.access_token)
            .send()
            .await
            .ok()?;
        let body: Value = resp.json().await.ok()?;
        let id = body.get("user_id")?.as_str()?.to_string();
        let _ = self.user_id.set(id.clone());
        Some(id)
    }

    /// Calls `path` (below `/services/data/vNN.0/`), refreshing the session once on 401.
    /// Returns the status and the JSON body (`Null` for none).
    pub async fn call(
        &self,
        operation: &str,
        method: Method,
        path: &str,
        query: &[(&str, String)],
        body: Option<&Value>,
        records: usize,
    ) -> Result<(u16, Value), ApiError> {
        let mut refreshed = false;
        loop {
            self.limits.before_call().await;
            let session = self.session(false).await?;
            let url = format!(
                "{}/services/data/v{}/{}",
                session.instance_url.trim_end_matches('/'),
                self.api_version,
                path
            );
            let mut req = self
                .http
                .request(method.clone(), url)
                .bearer_auth(&session.access_token)
                .header("Sforce-Call-Options", &self.call_options)
                .query(query);
            if let Some(b) = body {
                req = req.json(b);
            }
            let started = Instant::now();
            let resp = match req.send().await {
                Ok(r) => r,
                Err(e) => {
                    ApiCalled {
                        operation,
                        status: 0,
                        records,
                        elapsed: started.elapsed(),
                    }
                    .emit();
                    // Only reqwest's own description: it never includes headers.
                    return Err(ApiError::Unavailable {
                        status: 0,
                        message: if e.is_timeout() {
                            "the call timed out".into()
                        } else {
                            format!("no answer: {}", e.without_url())
                        },
                    });
                }
            };
            let status = resp.status().as_u16();
            if let Some(v) = resp
                .headers()
                .get("sforce-limit-info")
                .and_then(|v| v.to_str().ok())
            {
                self.limits.observe(v);
            }
            let text = resp.text().await.unwrap_or_default();
            ApiCalled {
                operation,
                status,
                records,
                elapsed: started.elapsed(),
            }
            .emit();
            let json: Value = if text.is_empty() {
                Value::Null
            } else {
                serde_json::from_str(&text).unwrap_or(Value::String(text))
            };
            if status < 300 {
                return Ok((status, json));
            }
            let errors = parse_errors(&json);
            let code = errors.first().map(|e| e.status_code.as_str()).unwrap_or("");
            match status {
                401 if !refreshed => {
                    refreshed = true;
                    let before = session.access_token.clone();
                    let now = self.session_replacing(false, Some(&before)).await?;
                    if now.access_token != before {
                        TokenRefreshed.emit();
                    }
                    continue;
                }
                401 => {
                    return Err(ApiError::Login(format!(
                        "401 {code} even with a fresh session"
                    )));
                }
                403 if code == "REQUEST_LIMIT_EXCEEDED" => {
                    return Err(ApiError::LimitExceeded {
                        message: errors
                            .first()
                            .map(|e| e.message.clone())
                            .unwrap_or_default(),
                    });
                }
                s if s >= 500 => {
                    return Err(ApiError::Unavailable {
                        status: s,
                        message: first_error(&errors),
                    });
                }
                s => return Err(ApiError::Rejected { status: s, errors }),
            }
        }
    }
}

/// An HTTP client with `timeout` per request, trusting `tls_ca_file` too when set.
fn http_client(cfg: &SalesforceSinkConfig, timeout: Duration) -> anyhow::Result<reqwest::Client> {
    let mut builder = reqwest::Client::builder().timeout(timeout);
    if let Some(path) = &cfg.tls_ca_file {
        let pem = std::fs::read(path).with_context(|| {
            format!(
                "reading salesforce_sink.tls_ca_file {}: give a readable PEM file",
                path.display()
            )
        })?;
        for cert in reqwest::Certificate::from_pem_bundle(&pem)
            .context("salesforce_sink.tls_ca_file holds no valid PEM certificate")?
        {
            builder = builder.add_root_certificate(cert);
        }
    }
    Ok(builder.build()?)
}

fn login_error(e: AuthError) -> ApiError {
    if e.is_transient() {
        ApiError::Unavailable {
            status: 0,
            message: format!("login: {e}"),
        }
    } else {
        ApiError::Login(e.to_string())
    }
}

/// Salesforce's error array (`[{"message","errorCode","fields"}]`), or one error made of
/// whatever else the body is.
pub fn parse_errors(body: &Value) -> Vec<SfError> {
    match serde_json::from_value::<Vec<SfError>>(body.clone()) {
        Ok(v) if !v.is_empty() => v,
        _ => vec![SfError {
            status_code: String::new(),
            message: match body {
                Value::String(s) => s.chars().take(500).collect(),
                other => other.to_string().chars().take(500).collect(),
            },
            fields: Vec::new(),
        }],
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn error_arrays_parse_with_either_code_name() {
        let e = parse_errors(
            &json!([{"message":"Session expired or invalid","errorCode":"INVALID_SESSION_ID"}]),
        );
        assert_eq!(e[0].status_code, "INVALID_SESSION_ID");
        let e = parse_errors(
            &json!([{"statusCode":"STRING_TOO_LONG","message":"too long","fields":["Name"]}]),
        );
        assert_eq!(e[0].fields, vec!["Name".to_string()]);
        let e = parse_errors(&json!("Bad gateway"));
        assert_eq!(e[0].message, "Bad gateway");
    }
}
