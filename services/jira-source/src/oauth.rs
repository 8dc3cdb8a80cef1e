//! OAuth 2.0 (3LO) with rotating refresh tokens (reference §2).
//!
//! Every refresh returns a new refresh token and supersedes the old one; reusing a superseded
//! token after a 10-minute leeway revokes the whole grant. So the current refresh token is
//! kept in one place with a single writer:
//! - one place: the `token_store` file (`{"refresh_token": …}`, mode 0600, replaced atomically
//!   by write-then-rename and synced). The configured `refresh_token` is only the grant's first
//!   one, used while the store is empty; after a restart the stored one wins.
//! - a single writer: within the process every refresh goes through one mutex, so concurrent
//!   callers wait for the refresh in progress instead of each spending the same token; across
//!   processes, one jira-source instance per grant (the deployment rule already enforced for
//!   Kafka by the transactional id).
//!
//! The new refresh token is stored before the new access token is used: a crash in between at
//! worst leaves a token that was never used, never a superseded one.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use sfjira_core::config::{JiraOAuthConfig, Secret};
use tokio::sync::{Mutex, OnceCell};

/// Refresh this long before the access token expires.
const EARLY: Duration = Duration::from_secs(60);

#[derive(Debug, thiserror::Error)]
pub enum OAuthError {
    #[error("token endpoint {url}: HTTP {status}: {body}")]
    Refused {
        url: String,
        status: u16,
        body: String,
    },
    #[error("token endpoint {url}: {0}", url = .1)]
    Transport(#[source] reqwest::Error, String),
    #[error("token store {path}: {source}")]
    Store {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("no accessible resource matches the site {0}")]
    NoSite(String),
}

struct Tokens {
    refresh: String,
    access: Option<(String, Instant)>,
}

pub struct OAuth {
    http: reqwest::Client,
    client_id: String,
    client_secret: Secret,
    token_url: String,
    api_url: String,
    site_url: String,
    cloud_id: OnceCell<String>,
    configured_cloud_id: Option<String>,
    store: PathBuf,
    tokens: Mutex<Tokens>,
}

impl OAuth {
    pub fn new(
        cfg: &JiraOAuthConfig,
        site_url: &str,
        http: reqwest::Client,
    ) -> Result<Self, OAuthError> {
        let refresh = match read_store(&cfg.token_store)? {
            Some(stored) => stored,
            None => cfg.refresh_token.expose().to_string(),
        };
        Ok(OAuth {
            http,
            client_id: cfg.client_id.clone(),
            client_secret: cfg.client_secret.clone(),
            token_url: cfg.token_url.clone(),
            api_url: cfg.api_url.trim_end_matches('/').to_string(),
            site_url: site_url.trim_end_matches('/').to_string(),
            cloud_id: OnceCell::new(),
            configured_cloud_id: cfg.cloud_id.clone(),
            store: cfg.token_store.clone(),
            tokens: Mutex::new(Tokens {
                refresh,
                access: None,
            }),
        })
    }

    /// A valid access token, refreshing (and rotating the stored refresh token) when needed.
    pub async fn access_token(&self) -> Result<String, OAuthError> {
        let mut t = self.tokens.lock().await;
        if let Some((token, until)) = &t.access
            && Instant::now() + EARLY < *until
        {
            return Ok(token.clone());
        }
        let body = json!({
            "grant_type": "refresh_token",
            "client_id": self.client_id,
            "client_secret": self.client_secret.expose(),
            "refresh_token": t.refresh,
        });
        let transport = |e| OAuthError::Transport(e, self.token_url.clone());
        let resp = self
            .http
            .post(&self.token_url)
            .json(&body)
            .send()
            .await
            .map_err(transport)?;
        let status = resp.status();
        let text = resp.text().await.map_err(transport)?;
        if !status.is_success() {
            return Err(OAuthError::Refused {
                url: self.token_url.clone(),
                status: status.as_u16(),
                body: text,
            });
        }
        let v: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
        let refused = |why: &str| OAuthError::Refused {
            url: self.token_url.clone(),
            status: status.as_u16(),
            body: format!("{why} in the answer"),
        };
        let access = v
            .get("access_token")
            .and_then(Value::as_str)
            .ok_or_else(|| refused("no access_token"))?;
        let expires = v.get("expires_in").and_then(Value::as_u64).unwrap_or(3600);
        if let Some(new_refresh) = v.get("refresh_token").and_then(Value::as_str) {
            write_store(&self.store, new_refresh)?;
            t.refresh = new_refresh.to_string();
        }
        t.access = Some((
            access.to_string(),
            Instant::now() + Duration::from_secs(expires),
        ));
        Ok(access.to_string())
    }

    /// Forgets the access token (after a 401), so the next call refreshes.
    pub async fn invalidate(&self) {
        self.tokens.lock().await.access = None;
    }

    /// `<api_url>/ex/jira/<cloud id>`, the prefix of every REST path.
    pub async fn base(&self) -> Result<String, OAuthError> {
        let id = self
            .cloud_id
            .get_or_try_init(|| async {
                if let Some(id) = &self.configured_cloud_id {
                    return Ok(id.clone());
                }
                let url = format!("{}/oauth/token/accessible-resources", self.api_url);
                let token = self.access_token().await?;
                let transport = |e| OAuthError::Transport(e, url.clone());
                let resp = self
                    .http
                    .get(&url)
                    .bearer_auth(token)
                    .send()
                    .await
                    .map_err(transport)?;
                let sites: Value = resp.json().await.map_err(transport)?;
                sites
                    .as_array()
                    .and_then(|a| {
                        a.iter().find(|s| {
                            s.get("url")
                                .and_then(Value::as_str)
                                .map(|u| u.trim_end_matches('/'))
                                == Some(self.site_url.as_str())
                        })
                    })
                    .and_then(|s| s.get("id").and_then(Value::as_str))
                    .map(String::from)
                    .ok_or_else(|| OAuthError::NoSite(self.site_url.clone()))
            })
            .await?;
        Ok(format!("{}/ex/jira/{id}", self.api_url))
    }
}

fn read_store(path: &Path) -> Result<Option<String>, OAuthError> {
    match std::fs::read(path) {
        Ok(bytes) => Ok(serde_json::from_slice::<Value>(&bytes).ok().and_then(|v| {
            v.get("refresh_token")
                .and_then(Value::as_str)
                .map(String::from)
        })),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(source) => Err(OAuthError::Store {
            path: path.display().to_string(),
            source,
        }),
    }
}

fn write_store(path: &Path, refresh: &str) -> Result<(), OAuthError> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let err = |source| OAuthError::Store {
        path: path.display().to_string(),
        source,
    };
    let tmp = path.with_extension("tmp");
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)
        .map_err(err)?;
    f.write_all(json!({"refresh_token": refresh}).to_string().as_bytes())
        .map_err(err)?;
    f.sync_all().map_err(err)?;
    std::fs::rename(&tmp, path).map_err(err)
}
