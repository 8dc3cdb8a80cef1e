//! The `jira:` section of the sandbox's YAML file (`--config` / `SFJIRA_SANDBOX_CONFIG`). Every
//! key is optional; without a file the site runs with the seed users and tokens below. The
//! file is shared with the Salesforce half, so only the `jira` key is read here, strictly
//! (unknown keys are an error, so a typo does not silently fall back to a default).
//!
//! ```yaml
//! jira:
//!   base_url: http://127.0.0.1:18080      # prefix of `self` links (default: the listen address)
//!   cloud_id: 9f3c2b1a-...                # what /oauth/token/accessible-resources reports
//!   snapshot: /tmp/jira-site.json         # load at start, save after every change
//!   users:                                # people added to the seed (Alice, Bob, integration)
//!     - { account_id: "712020:…", email: carol@example.com, display_name: Carol, time_zone: Europe/Paris }
//!   api_tokens:                           # Basic email:token; replaces the default tokens
//!     sfjira@example.com: [sandbox-token]
//!   oauth_clients:                        # 3LO apps for POST /oauth/token
//!     - { client_id: sfjira-sandbox-client, client_secret: sfjira-sandbox-secret }
//!   limits: { comments: 5000, worklogs: 10000, remote_links: 2000 }   # per issue → 413
//!   search_indexing_lag_ms: 0             # /search/jql eventual consistency
//!   faults: { latency_ms: 0, error_rate: { read: 0.0, write: 0.0, search: 0.0 }, conflict_on_put: 0, unavailable: 0, retry_after_secs: 5 }
//!   rate_limits: { enabled: true, ... }   # see ratelimit.rs
//!   webhooks:                             # admin webhooks registered at start
//!     - { name: sfjira, url: "http://127.0.0.1:9000/jira", events: [jira:issue_updated], jql: "project = PROJ", secret: s3cret }
//!   webhook_delivery: { max_retries: 5, retry_min_secs: 300, retry_max_secs: 900 }
//! ```

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::Context;
use serde::Deserialize;

use super::faults::JiraFaults;
use super::ratelimit::RateLimitConfig;
use super::site::IssueLimits;
use super::site::catalog::User;
use super::webhooks::{DeliveryConfig, WebhookConfig};

/// The default cloud id of the sandbox site (any UUID; clients must not parse it).
pub const DEFAULT_CLOUD_ID: &str = "5d1f6a2e-0c3b-4b8e-9a47-5a4e1c0de5b0";

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct JiraConfig {
    /// Prefix of every `self` link; default `http://<listen address>`.
    pub base_url: Option<String>,
    pub cloud_id: String,
    /// JSON file holding the site's issues: loaded at start when present, saved on change.
    pub snapshot: Option<PathBuf>,
    /// Extra people, on top of the seed users.
    pub users: Vec<UserConfig>,
    /// Basic-auth tokens by email. Replaces [`default_api_tokens`] when given.
    pub api_tokens: Option<BTreeMap<String, Vec<String>>>,
    /// OAuth 2.0 (3LO) apps. Default: one app, `sfjira-sandbox-client` / `sfjira-sandbox-secret`.
    pub oauth_clients: Vec<OAuthClient>,
    pub limits: IssueLimits,
    /// How long a write stays invisible to `/search/jql` (milliseconds of sandbox time).
    pub search_indexing_lag_ms: u64,
    pub faults: JiraFaults,
    pub rate_limits: RateLimitConfig,
    /// Admin webhooks registered at start (same as `POST /rest/webhooks/1.0/webhook`).
    pub webhooks: Vec<WebhookConfig>,
    /// Delivery timing (retries, timeouts).
    pub webhook_delivery: DeliveryConfig,
}

impl Default for JiraConfig {
    fn default() -> Self {
        JiraConfig {
            base_url: None,
            cloud_id: DEFAULT_CLOUD_ID.into(),
            snapshot: None,
            users: Vec::new(),
            api_tokens: None,
            oauth_clients: vec![OAuthClient {
                client_id: "sfjira-sandbox-client".into(),
                client_secret: "sfjira-sandbox-secret".into(),
            }],
            limits: IssueLimits::default(),
            search_indexing_lag_ms: 0,
            faults: JiraFaults::default(),
            rate_limits: RateLimitConfig::default(),
            webhooks: Vec::new(),
            webhook_delivery: DeliveryConfig::default(),
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UserConfig {
    pub account_id: String,
    pub email: String,
    pub display_name: String,
    #[serde(default = "default_time_zone")]
    pub time_zone: String,
}

fn default_time_zone() -> String {
    "Etc/UTC".into()
}

impl From<UserConfig> for User {
    fn from(u: UserConfig) -> Self {
        User {
            account_id: u.account_id,
            email: u.email,
            display_name: u.display_name,
            account_type: "atlassian".into(),
            time_zone: u.time_zone,
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OAuthClient {
    pub client_id: String,
    pub client_secret: String,
}

/// The seed accounts' API tokens (documented in `sandbox/README.md`).
pub fn default_api_tokens() -> BTreeMap<String, Vec<String>> {
    BTreeMap::from([
        ("sfjira@example.com".into(), vec!["sandbox-token".into()]),
        ("alice@example.com".into(), vec!["alice-token".into()]),
        ("bob@example.com".into(), vec!["bob-token".into()]),
    ])
}

impl JiraConfig {
    /// Reads the `jira:` section of `path`; `None` → defaults.
    pub fn load(path: Option<&Path>) -> anyhow::Result<Self> {
        let Some(path) = path else {
            return Ok(Self::default());
        };
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("reading the sandbox config {}", path.display()))?;
        Self::from_yaml(&text).with_context(|| format!("in the sandbox config {}", path.display()))
    }

    /// Parses a whole sandbox config file and keeps its `jira:` section.
    pub fn from_yaml(text: &str) -> anyhow::Result<Self> {
        let doc: serde_yaml::Value = serde_yaml::from_str(text).context("not valid YAML")?;
        match doc.get("jira") {
            None | Some(serde_yaml::Value::Null) => Ok(Self::default()),
            Some(section) => {
                serde_yaml::from_value(section.clone()).context("in the `jira` section")
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_only_the_jira_section_strictly() {
        let c = JiraConfig::from_yaml(
            "salesforce: {anything: 1}\njira:\n  search_indexing_lag_ms: 5\n",
        )
        .unwrap();
        assert_eq!(c.search_indexing_lag_ms, 5);
        assert_eq!(c.oauth_clients.len(), 1);
        assert!(JiraConfig::from_yaml("jira:\n  typo_key: 1\n").is_err());
        assert!(
            JiraConfig::from_yaml("salesforce: {}\n")
                .unwrap()
                .snapshot
                .is_none()
        );
    }
}
