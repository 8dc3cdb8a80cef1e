//! The `jira_source` section: where the Jira site is, how jira-source authenticates, where it
//! listens for webhooks and how it polls. Kept in its own file (rather than in `sections.rs`) so
//! the per-service sections added in parallel do not edit the same lines; it is wired into
//! [`super::SfjiraConfig`] like every other section.

use std::net::{Ipv4Addr, SocketAddr};

use serde::Deserialize;

use super::{ConfigError, Secret};
use crate::retry::RetryPolicy;

/// jira-source: Jira webhooks and JQL polling into Kafka.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JiraSourceConfig {
    /// The site's base URL, e.g. `https://acme.atlassian.net` (REST calls go to
    /// `<site_url>/rest/api/3/...`). Required.
    pub site_url: String,
    /// The integration account's e-mail (Basic auth user with `api_token`). Set with
    /// `api_token`, or use `oauth` instead.
    #[serde(default)]
    pub email: Option<String>,
    /// The integration account's API token, `{ env: VAR }` or `{ file: /path }`.
    #[serde(default)]
    pub api_token: Option<Secret>,
    /// OAuth 2.0 (3LO) with rotating refresh tokens, instead of `email` + `api_token`.
    #[serde(default)]
    pub oauth: Option<JiraOAuthConfig>,
    /// The admin webhook's secret (`X-Hub-Signature` HMAC key). Without it the webhook receiver
    /// is off and jira-source runs on polling alone: unsigned deliveries are never accepted.
    #[serde(default)]
    pub webhook_secret: Option<Secret>,
    /// Where the webhook receiver listens (`POST /webhooks/jira`).
    #[serde(default = "default_webhook_listen", deserialize_with = "socket_addr")]
    pub webhook_listen: SocketAddr,
    /// Largest webhook body accepted, in bytes; larger deliveries get 413.
    #[serde(default = "default_max_body_bytes")]
    pub max_body_bytes: usize,
    /// Project keys to poll (each `project = KEY` bounds the JQL). Required, at least one.
    pub projects: Vec<String>,
    /// Time between poll cycles, in milliseconds; `0` turns the poller off (webhooks only).
    #[serde(default = "default_poll_interval_ms")]
    pub poll_interval_ms: u64,
    /// How far before the watermark each poll looks again, in milliseconds: covers JQL's
    /// minute precision, clock skew and search-index lag. Repeats are deduplicated.
    #[serde(default = "default_poll_overlap_ms")]
    pub poll_overlap_ms: u64,
    /// Issues per search page (`maxResults`, 1–5000).
    #[serde(default = "default_poll_page_size")]
    pub poll_page_size: u32,
    /// Custom field ids the poller asks for (`customfield_10016`); webhooks carry them all.
    #[serde(default)]
    pub custom_fields: Vec<String>,
    /// How long a webhook identifier is remembered for deduplication, in hours (Jira retries
    /// for about half an hour; keep a margin).
    #[serde(default = "default_dedupe_retention_hours")]
    pub dedupe_retention_hours: u64,
    /// Per-request timeout towards Jira, in milliseconds.
    #[serde(default = "default_request_timeout_ms")]
    pub request_timeout_ms: u64,
    /// Steady rate of Jira requests per second for the whole process (token bucket shared by
    /// webhook changelog fetches, the poller, worklog feeds and backfill). Default 10, a tenth
    /// of Jira's documented 100 requests/s burst limit, which every app on the tenant shares.
    #[serde(default = "default_rate_limit_per_second")]
    pub rate_limit_per_second: f64,
    /// Largest burst of Jira requests above the steady rate (the bucket's size). Default 10.
    #[serde(default = "default_rate_limit_burst")]
    pub rate_limit_burst: u32,
    /// Retries of Jira calls (429 honours `Retry-After` / `X-RateLimit-Reset`; 5xx backs off).
    #[serde(default)]
    pub retry: RetryPolicy,
}

/// OAuth 2.0 (3LO): calls go to `<api_url>/ex/jira/<cloud_id>/rest/api/3/...` with a bearer
/// token; each refresh rotates the refresh token, which is kept in `token_store`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JiraOAuthConfig {
    /// The OAuth app's client id. Required.
    pub client_id: String,
    /// The OAuth app's secret. Required.
    pub client_secret: Secret,
    /// The grant's first refresh token (from the consent, with `offline_access`). Used only
    /// while `token_store` holds none: once rotated, the stored one is the only valid one.
    pub refresh_token: Secret,
    /// File holding the current refresh token (written before a new access token is used,
    /// mode 0600). One process per grant writes it: reusing a superseded refresh token after
    /// Atlassian's 10-minute leeway revokes the whole grant. Required.
    pub token_store: std::path::PathBuf,
    /// The token endpoint.
    #[serde(default = "default_token_url")]
    pub token_url: String,
    /// The API gateway (`/oauth/token/accessible-resources` and `/ex/jira/<cloud id>`).
    #[serde(default = "default_api_url")]
    pub api_url: String,
    /// The site's cloud id; by default the accessible resource whose URL is `site_url`.
    #[serde(default)]
    pub cloud_id: Option<String>,
}

fn default_token_url() -> String {
    "https://auth.atlassian.com/oauth/token".into()
}
fn default_api_url() -> String {
    "https://api.atlassian.com".into()
}

fn default_webhook_listen() -> SocketAddr {
    SocketAddr::from((Ipv4Addr::LOCALHOST, 9410))
}
fn default_max_body_bytes() -> usize {
    // Jira drops payloads over 25 MB; issue events with every field are rarely over 1 MB.
    10 * 1024 * 1024
}
fn default_poll_interval_ms() -> u64 {
    60_000
}
fn default_poll_overlap_ms() -> u64 {
    120_000
}
fn default_poll_page_size() -> u32 {
    100
}
fn default_dedupe_retention_hours() -> u64 {
    72
}
fn default_rate_limit_per_second() -> f64 {
    10.0
}
fn default_rate_limit_burst() -> u32 {
    10
}
fn default_request_timeout_ms() -> u64 {
    30_000
}

fn socket_addr<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<SocketAddr, D::Error> {
    let text = String::deserialize(deserializer)?;
    text.parse().map_err(|_| {
        serde::de::Error::custom(format!(
            "expected ip:port, e.g. 0.0.0.0:9410, got {text:?}; fix: give an IP address and a port"
        ))
    })
}

impl JiraSourceConfig {
    pub(super) fn validate(&self) -> Result<(), ConfigError> {
        let url = reqwest::Url::parse(&self.site_url).ok().filter(|u| {
            matches!(u.scheme(), "http" | "https")
                && u.host_str().is_some()
                && u.username().is_empty()
        });
        if url.is_none() {
            return Err(ConfigError::invalid(
                "jira_source.site_url",
                format!("{:?} is not an http(s) URL with a host", self.site_url),
                "give the site's base URL, e.g. https://acme.atlassian.net (no credentials in it)",
            ));
        }
        match (&self.email, &self.api_token, &self.oauth) {
            (Some(e), Some(_), None) if e.contains('@') => {}
            (Some(e), Some(_), None) => {
                return Err(ConfigError::invalid(
                    "jira_source.email",
                    format!("{e:?} is not an e-mail address"),
                    "the integration account's e-mail, the Basic-auth user of its API token",
                ));
            }
            (None, None, Some(o)) => {
                for (key, url) in [("token_url", &o.token_url), ("api_url", &o.api_url)] {
                    if reqwest::Url::parse(url).is_err() {
                        return Err(ConfigError::invalid(
                            format!("jira_source.oauth.{key}"),
                            format!("{url:?} is not a URL"),
                            "give an http(s) URL (defaults: Atlassian's)",
                        ));
                    }
                }
                if o.client_id.trim().is_empty() {
                    return Err(ConfigError::invalid(
                        "jira_source.oauth.client_id",
                        "is empty",
                        "the OAuth app's client id (developer console)",
                    ));
                }
            }
            _ => {
                return Err(ConfigError::invalid(
                    "jira_source.api_token",
                    "set either email + api_token (API token, Basic) or oauth (3LO), not both or neither",
                    "keep one way to authenticate",
                ));
            }
        }
        if self.projects.is_empty() {
            return Err(ConfigError::invalid(
                "jira_source.projects",
                "is empty",
                "list the project keys to capture, e.g. [PROJ]",
            ));
        }
        for p in &self.projects {
            if p.is_empty() || !p.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
                return Err(ConfigError::invalid(
                    "jira_source.projects",
                    format!("{p:?} is not a project key"),
                    "use project keys as Jira shows them (letters, digits, '_'), e.g. PROJ",
                ));
            }
        }
        if self.webhook_secret.is_none() && self.poll_interval_ms == 0 {
            return Err(ConfigError::invalid(
                "jira_source.poll_interval_ms",
                "0 turns the poller off, and without jira_source.webhook_secret there are no webhooks either",
                "set a poll interval (e.g. 60000) or a webhook_secret",
            ));
        }
        if self.max_body_bytes < 1024 {
            return Err(ConfigError::invalid(
                "jira_source.max_body_bytes",
                format!("{} is too small", self.max_body_bytes),
                "use at least 1024 bytes (default 10485760)",
            ));
        }
        if !(1..=5000).contains(&self.poll_page_size) {
            return Err(ConfigError::invalid(
                "jira_source.poll_page_size",
                format!("{} is out of range", self.poll_page_size),
                "use 1 to 5000 (Jira's maxResults range; default 100)",
            ));
        }
        if let Some(bad) = self.custom_fields.iter().find(|f| {
            f.strip_prefix("customfield_")
                .is_none_or(|n| n.is_empty() || !n.chars().all(|c| c.is_ascii_digit()))
        }) {
            return Err(ConfigError::invalid(
                "jira_source.custom_fields",
                format!("{bad:?} is not a custom field id"),
                "use ids like customfield_10016 (GET /rest/api/3/field lists them)",
            ));
        }
        if self.dedupe_retention_hours == 0 {
            return Err(ConfigError::invalid(
                "jira_source.dedupe_retention_hours",
                "must be > 0",
                "keep identifiers at least as long as Jira retries (default 72)",
            ));
        }
        if self.request_timeout_ms == 0 {
            return Err(ConfigError::invalid(
                "jira_source.request_timeout_ms",
                "must be > 0",
                "set a timeout in milliseconds, e.g. 30000",
            ));
        }
        if !(self.rate_limit_per_second > 0.0 && self.rate_limit_per_second <= 100.0) {
            return Err(ConfigError::invalid(
                "jira_source.rate_limit_per_second",
                format!("{} is out of range", self.rate_limit_per_second),
                "use more than 0 and at most 100 (Jira's documented burst limit; default 10)",
            ));
        }
        if self.rate_limit_burst == 0 {
            return Err(ConfigError::invalid(
                "jira_source.rate_limit_burst",
                "must be > 0",
                "allow at least one request at a time (default 10)",
            ));
        }
        self.retry.validate().map_err(|e| {
            ConfigError::invalid(
                "jira_source.retry",
                e,
                "see Retry policies in docs/configuration.md",
            )
        })
    }
}

#[cfg(test)]
mod tests {
    use crate::config::{ConfigError, SfjiraConfig, load_from};

    fn load(section: &str) -> Result<SfjiraConfig, ConfigError> {
        let dir = std::env::temp_dir().join(
            format!(
                "sfjira-js-config-{}-{:?}",
                std::process::id(),
                std::thread::current().id()
            )
            .replace(|c: char| !c.is_ascii_alphanumeric() && c != '-', "_"),
        );
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("sfjira.yaml");
        let yaml = format!(
            "kafka: {{bootstrap_servers: \"127.0.0.1:9092\"}}\nregistry: {{url: \"http://127.0.0.1:8081\"}}\njira_source:\n{section}"
        );
        std::fs::write(&path, yaml).unwrap();
        let env = [
            ("JIRA_TOKEN".to_string(), "tok-123".to_string()),
            ("HOOK".to_string(), "s3cret".to_string()),
        ];
        let r = load_from(Some(&path), env);
        let _ = std::fs::remove_dir_all(dir);
        r
    }

    const BASE: &str = "  site_url: https://acme.atlassian.net\n  email: sfjira@acme.com\n  api_token: {env: JIRA_TOKEN}\n  projects: [PROJ]\n";

    #[test]
    fn a_minimal_section_loads_with_defaults_and_secrets_resolved() {
        let cfg = load(&format!("{BASE}  webhook_secret: {{env: HOOK}}\n")).unwrap();
        let js = cfg.jira_source.unwrap();
        assert_eq!(js.api_token.as_ref().unwrap().expose(), "tok-123");
        assert_eq!(js.webhook_secret.unwrap().expose(), "s3cret");
        assert_eq!(js.poll_interval_ms, 60_000);
        assert_eq!(js.webhook_listen.port(), 9410);
        assert!(!format!("{:?}", js.api_token).contains("tok-123"));
        let oauth = "  site_url: https://acme.atlassian.net\n  projects: [PROJ]\n  oauth: {client_id: app, client_secret: {env: HOOK}, refresh_token: {env: JIRA_TOKEN}, token_store: /tmp/t.json}\n";
        let o = load(oauth).unwrap().jira_source.unwrap().oauth.unwrap();
        assert_eq!(o.refresh_token.expose(), "tok-123");
        assert_eq!(o.token_url, "https://auth.atlassian.com/oauth/token");
        let both = format!(
            "{BASE}  oauth: {{client_id: app, client_secret: {{env: HOOK}}, refresh_token: {{env: JIRA_TOKEN}}, token_store: /tmp/t.json}}\n"
        );
        assert_eq!(load(&both).unwrap_err().key, "jira_source.api_token");
    }

    #[test]
    fn invalid_values_name_their_key() {
        let cases = [
            (
                BASE.replace("https://acme.atlassian.net", "not a url"),
                "jira_source.site_url",
            ),
            (BASE.replace("[PROJ]", "[]"), "jira_source.projects"),
            (
                BASE.replace("[PROJ]", "[\"PR OJ\"]"),
                "jira_source.projects",
            ),
            (
                format!("{BASE}  poll_interval_ms: 0\n"),
                "jira_source.poll_interval_ms",
            ),
            (
                format!("{BASE}  poll_page_size: 0\n"),
                "jira_source.poll_page_size",
            ),
            (
                format!("{BASE}  custom_fields: [story_points]\n"),
                "jira_source.custom_fields",
            ),
            (
                format!("{BASE}  rate_limit_per_second: 0\n"),
                "jira_source.rate_limit_per_second",
            ),
            (
                format!("{BASE}  rate_limit_burst: 0\n"),
                "jira_source.rate_limit_burst",
            ),
        ];
        for (section, key) in cases {
            let err = load(&section).expect_err(key);
            assert_eq!(err.key, key, "{err}");
        }
        let literal = BASE.replace("{env: JIRA_TOKEN}", "plain-token");
        assert!(
            load(&literal).is_err(),
            "a literal secret in the YAML is refused"
        );
    }
}
