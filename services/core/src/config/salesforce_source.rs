//! The `salesforce_source` section: which org to read Change Data Capture from, how to log in,
//! which channels to follow and what to do when a stored position is no longer valid. Kept in
//! its own file (not `sections.rs`) so that file stays readable as per-service sections are
//! added; it is re-exported and validated exactly like the others.

use std::path::PathBuf;

use serde::Deserialize;

use super::{ConfigError, Secret};
use crate::retry::RetryPolicy;

/// The salesforce-source service (only it reads this section).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SalesforceSourceConfig {
    /// Where OAuth tokens come from: `https://<domain>.my.salesforce.com` (client credentials
    /// need My Domain), `https://login.salesforce.com` for JWT bearer, or the sandbox's URL.
    /// `/services/oauth2/token` is appended. Required.
    pub login_url: String,
    /// How to log in.
    pub auth: SalesforceAuth,
    /// The Pub/Sub API endpoint: `https://api.pubsub.salesforce.com:7443` (TLS), or
    /// `http://127.0.0.1:17443` for the sandbox (plain HTTP/2).
    #[serde(default = "default_pubsub_url")]
    pub pubsub_url: String,
    /// A PEM file of CA certificates to trust for `https://` `login_url` and `pubsub_url`, in
    /// addition to the system's store (a TLS-inspecting proxy, the sandbox's generated CA).
    #[serde(default)]
    pub tls_ca_file: Option<PathBuf>,
    /// The org Id (`tenantid` metadata). Default: read from the token's identity URL.
    #[serde(default)]
    pub tenant_id: Option<String>,
    /// CDC channels to follow: `/data/<Object>ChangeEvent`, `/data/<Name>__ChangeEvent`,
    /// `/data/ChangeEvents`, or a custom `/data/<Name>__chn`. At least one.
    pub channels: Vec<String>,
    /// Events asked for per FetchRequest (1..=100, the Pub/Sub API's cap). More is asked only
    /// as events are handed to Kafka, so memory stays bounded when Kafka is slow.
    #[serde(default = "default_fetch_size")]
    pub fetch_size: i32,
    /// Reconnect when nothing (no event, no keepalive) arrives for this long. Salesforce sends
    /// keepalives about every 60 s; a silent stream past 120 s is usually dead.
    #[serde(default = "default_watchdog_secs")]
    pub watchdog_secs: u64,
    /// Records per Kafka transaction before the source commits at the next Salesforce
    /// transaction boundary (a Salesforce transaction is never split).
    #[serde(default = "default_source_batch_size")]
    pub batch_size: usize,
    /// What to do when the stored replay id is rejected (expired beyond retention, or the org
    /// moved): `fail` (default), `earliest` or `latest`.
    #[serde(default)]
    pub on_invalid_replay: OnInvalidReplay,
    /// Where a channel with no stored position starts: `latest` (default: only new changes)
    /// or `earliest` (everything Salesforce still retains, up to 72 h).
    #[serde(default)]
    pub start_from: StartFrom,
    /// Re-read each updated record over REST so its change record carries every field, not
    /// only the changed ones (one API call per update event). Default off.
    #[serde(default)]
    pub enrich_full_state: bool,
    /// Before subscribing, run the backfill (`sfjira backfill salesforce`) of each channel's
    /// entity, resuming an interrupted one; a completed backfill is not repeated. Default off.
    #[serde(default)]
    pub backfill_on_start: bool,
    /// A backfill stops (resumably, with a message) once `Sforce-Limit-Info` shows the org has
    /// used more than this share (0–1) of its daily API requests. Default 0.5.
    #[serde(default = "default_backfill_max_api_share")]
    pub backfill_max_api_share: f64,
    /// Retries of a `GetSchema` call that fails for a reason other than the session (the
    /// service unavailable, a timeout); once spent, the event goes to `salesforce-source.dlq`
    /// (SFJ-6005) and the stream goes on. Default: 6 tries within 60 s, waits from 0.5 s up
    /// to 10 s.
    #[serde(default = "default_schema_retry")]
    pub schema_retry: RetryPolicy,
}

/// Where a channel without a checkpoint starts.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StartFrom {
    #[default]
    Latest,
    Earliest,
}

/// How the source logs in to Salesforce. A flat struct rather than a tagged enum so that every
/// error (a literal secret, a missing key) names its exact key.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SalesforceAuth {
    /// The OAuth grant: `client_credentials` or `jwt_bearer`.
    #[serde(rename = "type")]
    pub kind: AuthKind,
    /// The connected app's consumer key (JWT `iss`).
    pub client_id: String,
    /// `client_credentials`: the consumer secret (`{ env: VAR }` or `{ file: /path }`).
    #[serde(default)]
    pub client_secret: Option<Secret>,
    /// `jwt_bearer`: the integration user's username (`sub`).
    #[serde(default)]
    pub username: Option<String>,
    /// `jwt_bearer`: the PKCS#8 PEM private key (`{ env: VAR }` or `{ file: /path/key.pem }`).
    #[serde(default)]
    pub private_key: Option<Secret>,
    /// `jwt_bearer`: the assertion's `aud`. Default: `https://login.salesforce.com`.
    #[serde(default = "default_audience")]
    pub audience: String,
}

/// The OAuth grant.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AuthKind {
    /// OAuth 2.0 client credentials (a run-as integration user; My Domain only).
    ClientCredentials,
    /// OAuth 2.0 JWT bearer: an RS256 assertion signed with the connected app's key.
    JwtBearer,
}

/// What to do with a replay id the server refuses.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OnInvalidReplay {
    /// Stop with an error that says what happened and how to recover (default).
    #[default]
    Fail,
    /// Re-read everything still retained (duplicates downstream are possible; none lost that
    /// is still retained).
    Earliest,
    /// Skip to new events (whatever happened in between is lost until a backfill).
    Latest,
}

fn default_pubsub_url() -> String {
    "https://api.pubsub.salesforce.com:7443".into()
}
fn default_fetch_size() -> i32 {
    100
}
fn default_watchdog_secs() -> u64 {
    120
}
fn default_backfill_max_api_share() -> f64 {
    0.5
}
fn default_schema_retry() -> RetryPolicy {
    RetryPolicy {
        initial_delay_ms: 500,
        max_delay_ms: 10_000,
        max_attempts: 6,
        max_elapsed_ms: 60_000,
    }
}
fn default_source_batch_size() -> usize {
    500
}
fn default_audience() -> String {
    "https://login.salesforce.com".into()
}

impl SalesforceSourceConfig {
    pub(super) fn validate(&self) -> Result<(), ConfigError> {
        for (key, url) in [
            ("salesforce_source.login_url", &self.login_url),
            ("salesforce_source.pubsub_url", &self.pubsub_url),
        ] {
            match reqwest::Url::parse(url) {
                Ok(u) if matches!(u.scheme(), "http" | "https") && u.host_str().is_some() => {}
                _ => {
                    return Err(ConfigError::invalid(
                        key,
                        format!("{url:?} is not an http(s) URL with a host"),
                        "give a URL such as https://acme.my.salesforce.com or https://api.pubsub.salesforce.com:7443",
                    ));
                }
            }
        }
        if self.channels.is_empty() {
            return Err(ConfigError::invalid(
                "salesforce_source.channels",
                "no channel configured",
                "list at least one channel, e.g. [/data/AccountChangeEvent]",
            ));
        }
        for c in &self.channels {
            if !c.starts_with("/data/") || c.len() <= "/data/".len() {
                return Err(ConfigError::invalid(
                    "salesforce_source.channels",
                    format!("{c:?} is not a Change Data Capture channel"),
                    "use /data/<Object>ChangeEvent (e.g. /data/AccountChangeEvent) or /data/ChangeEvents",
                ));
            }
        }
        if !(1..=100).contains(&self.fetch_size) {
            return Err(ConfigError::invalid(
                "salesforce_source.fetch_size",
                format!("{} is out of range", self.fetch_size),
                "use 1 to 100 (the Pub/Sub API counts more as 100)",
            ));
        }
        if self.watchdog_secs < 5 {
            return Err(ConfigError::invalid(
                "salesforce_source.watchdog_secs",
                format!("{} is too short", self.watchdog_secs),
                "use at least 5 seconds (default 120; keepalives come about every 60 s)",
            ));
        }
        if !(self.backfill_max_api_share > 0.0 && self.backfill_max_api_share <= 1.0) {
            return Err(ConfigError::invalid(
                "salesforce_source.backfill_max_api_share",
                format!("{} is out of range", self.backfill_max_api_share),
                "use a share above 0 and at most 1 of the daily API allocation (default 0.5)",
            ));
        }
        if !(1..=10_000).contains(&self.batch_size) {
            return Err(ConfigError::invalid(
                "salesforce_source.batch_size",
                format!("{} is out of range", self.batch_size),
                "use 1 to 10000 records per Kafka transaction (default 500)",
            ));
        }
        if let Some(t) = &self.tenant_id
            && !(t.len() == 15 || t.len() == 18)
        {
            return Err(ConfigError::invalid(
                "salesforce_source.tenant_id",
                format!("{t:?} is not a 15- or 18-character org Id"),
                "copy the org Id (00D…) from Setup → Company Information, or remove the key",
            ));
        }
        if let Some(path) = &self.tls_ca_file
            && !path.is_file()
        {
            return Err(ConfigError::invalid(
                "salesforce_source.tls_ca_file",
                format!("{} is not a readable file", path.display()),
                "give the path of a PEM file of CA certificates, or remove the key to trust the system's store only",
            ));
        }
        self.schema_retry.validate().map_err(|e| {
            ConfigError::invalid(
                "salesforce_source.schema_retry",
                e,
                "see Retry policies in docs/configuration.md",
            )
        })?;
        self.auth.validate()
    }
}

impl SalesforceAuth {
    fn validate(&self) -> Result<(), ConfigError> {
        if self.client_id.trim().is_empty() {
            return Err(ConfigError::invalid(
                "salesforce_source.auth.client_id",
                "empty",
                "set the connected app's consumer key",
            ));
        }
        let missing = |key: &str, why: &str| {
            ConfigError::invalid(
                format!("salesforce_source.auth.{key}"),
                format!("missing: {why}"),
                format!("set salesforce_source.auth.{key}"),
            )
        };
        match self.kind {
            AuthKind::ClientCredentials if self.client_secret.is_none() => Err(missing(
                "client_secret",
                "client_credentials needs the consumer secret ({ env: VAR } or { file: /path })",
            )),
            AuthKind::JwtBearer if self.username.as_deref().is_none_or(str::is_empty) => {
                Err(missing(
                    "username",
                    "jwt_bearer needs the integration user's username",
                ))
            }
            AuthKind::JwtBearer if self.private_key.is_none() => Err(missing(
                "private_key",
                "jwt_bearer needs the PEM private key ({ env: VAR } or { file: /path })",
            )),
            _ => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::{SfjiraConfig, load_from};
    use super::*;

    fn load(section: &str, env: &[(&str, &str)]) -> Result<SfjiraConfig, ConfigError> {
        let dir = std::env::temp_dir().join(format!(
            "sfjira-sf-source-config-{}-{}",
            std::process::id(),
            rand::random::<u64>()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("sfjira.yaml");
        let yaml = format!(
            "kafka: {{bootstrap_servers: \"127.0.0.1:9092\"}}\nregistry: {{url: \"http://127.0.0.1:8081\"}}\nsalesforce_source:\n{section}"
        );
        std::fs::write(&path, yaml).unwrap();
        let env = env.iter().map(|(k, v)| (k.to_string(), v.to_string()));
        let out = load_from(Some(&path), env);
        let _ = std::fs::remove_dir_all(&dir);
        out
    }

    const OK: &str = "  login_url: https://acme.my.salesforce.com\n  auth: {type: client_credentials, client_id: key, client_secret: {env: SF_SECRET}}\n  channels: [/data/AccountChangeEvent]\n";

    #[test]
    fn a_minimal_section_loads_with_defaults() {
        let cfg = load(OK, &[("SF_SECRET", "s3cret")]).unwrap();
        let s = cfg.salesforce_source.unwrap();
        assert_eq!(s.fetch_size, 100);
        assert_eq!(s.watchdog_secs, 120);
        assert_eq!(s.on_invalid_replay, OnInvalidReplay::Fail);
        assert_eq!(s.start_from, StartFrom::Latest);
        assert_eq!(s.pubsub_url, "https://api.pubsub.salesforce.com:7443");
        assert_eq!(s.tls_ca_file, None);
        assert_eq!(s.schema_retry.max_attempts, 6);
        assert_eq!(s.auth.kind, AuthKind::ClientCredentials);
        assert_eq!(s.auth.client_secret.as_ref().unwrap().expose(), "s3cret");
        assert!(!format!("{s:?}").contains("s3cret"));
    }

    #[test]
    fn errors_name_the_key() {
        let env = [("SF_SECRET", "x")];
        let err = load(&format!("{OK}  fetch_size: 500\n"), &env).unwrap_err();
        assert_eq!(err.key, "salesforce_source.fetch_size");
        let err = load(&OK.replace("/data/AccountChangeEvent", "Account"), &env).unwrap_err();
        assert_eq!(err.key, "salesforce_source.channels");
        let err = load(&format!("{OK}  on_invalid_replay: skip\n"), &env).unwrap_err();
        assert!(err.key.contains("on_invalid_replay"), "{err}");
        let literal = OK.replace("{env: SF_SECRET}", "plain-text-secret");
        let err = load(&literal, &env).unwrap_err();
        assert_eq!(err.key, "salesforce_source.auth.client_secret", "{err}");
        let jwt = OK.replace(
            "{type: client_credentials, client_id: key, client_secret: {env: SF_SECRET}}",
            "{type: jwt_bearer, client_id: key, private_key: {env: SF_SECRET}}",
        );
        let err = load(&jwt, &env).unwrap_err();
        assert_eq!(err.key, "salesforce_source.auth.username", "{err}");
        let err = load(&format!("{OK}  tls_ca_file: /nonexistent/ca.pem\n"), &env).unwrap_err();
        assert_eq!(err.key, "salesforce_source.tls_ca_file", "{err}");
        let err = load(&format!("{OK}  schema_retry: {{max_attempts: 0}}\n"), &env).unwrap_err();
        assert_eq!(err.key, "salesforce_source.schema_retry", "{err}");
    }
}
