//! The `salesforce_sink` section: which org the salesforce-sink writes to, how it logs in, and
//! how it batches and paces its calls. Kept in its own file so per-service sections do not edit
//! the same lines; wired into [`super::SfjiraConfig`] like every other section.

use serde::Deserialize;

use super::{AuthKind, ConfigError, SalesforceAuth};
use crate::retry::RetryPolicy;

/// Records per sObject Collections call: Salesforce's own cap (reference §4.2).
pub const MAX_COLLECTION_RECORDS: usize = 200;

/// salesforce-sink: applies `salesforce.commands` to a Salesforce org.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SalesforceSinkConfig {
    /// Where OAuth tokens come from (as `salesforce_source.login_url`). Required.
    pub login_url: String,
    /// How to log in (as `salesforce_source.auth`).
    pub auth: SalesforceAuth,
    /// Consumer group of the sink. Default `sfjira-salesforce-sink`.
    #[serde(default = "default_group_id")]
    pub group_id: String,
    /// REST API version of every call (`vNN.0`), written `NN.0`. Default `64.0` (Summer '25;
    /// Collections upsert needs 46.0 or later).
    #[serde(default = "default_api_version")]
    pub api_version: String,
    /// The client id sent on every call as `Sforce-Call-Options: client=<id>`; Salesforce puts
    /// it in the resulting change events' `changeOrigin`, and the transformer drops those as our
    /// own echoes. Must equal the mapping's `echo.salesforce_client_id`. Default `sfjira`.
    #[serde(default = "default_client_id")]
    pub client_id: String,
    /// Records per sObject Collections call, 1–200. Default 200 (Salesforce's maximum).
    #[serde(default = "default_batch_size")]
    pub batch_size: usize,
    /// Commands read from Kafka per batch (one Kafka transaction for their audit, links,
    /// dead letters and offsets). Default 1000.
    #[serde(default = "default_max_batch_records")]
    pub max_batch_records: usize,
    /// How long a batch waits for more commands after its first before it is applied, so a
    /// lone change is not delayed long. Default 200 ms.
    #[serde(default = "default_linger_ms")]
    pub linger_ms: u64,
    /// Retries of `UNABLE_TO_LOCK_ROW`, 503 and timeouts: backoff with full jitter within this
    /// budget, then the rows go to `salesforce-sink.dlq`. Default: 200 ms doubling to 30 s,
    /// 8 attempts, 5 minutes.
    #[serde(default)]
    pub retry: RetryPolicy,
    /// Above this share (0–1) of the daily API allocation (`Sforce-Limit-Info`), the sink slows
    /// to `budgeted_calls_per_sec`. Default 0.8.
    #[serde(default = "default_limit_share_threshold")]
    pub limit_share_threshold: f64,
    /// Calls per second once `limit_share_threshold` is passed. Default 1.0.
    #[serde(default = "default_budgeted_calls_per_sec")]
    pub budgeted_calls_per_sec: f64,
    /// After `REQUEST_LIMIT_EXCEEDED` the sink stops consuming for this long, then tries the
    /// call again (nothing is dropped). Default 300 s.
    #[serde(default = "default_limit_pause_secs")]
    pub limit_pause_secs: u64,
    /// How far back `sfjira.audit` is read at start for the ids of commands already applied
    /// (replays are skipped). Default 24 h.
    #[serde(default = "default_audit_lookback_hours")]
    pub audit_lookback_hours: u64,
    /// How long a command waits for the link of its `attach_to` record (usually created just
    /// ahead) before it is dead-lettered. Default 30 000 ms.
    #[serde(default = "default_attach_wait_ms")]
    pub attach_wait_ms: u64,
    /// Read the records about to be changed (one SOQL query per object and batch) so the audit
    /// holds the values before each write, for `sfjira rollback`. Off: the query is made only
    /// when needed (`update_only` or deletes without a link, `both`-owned fields). Default true.
    #[serde(default = "default_read_before_write")]
    pub read_before_write: bool,
    /// Collections calls (and reads) of one batch in flight at once, 1–25 (Salesforce allows
    /// 25 concurrent long-running requests per org, shared by every integration). Default 4.
    #[serde(default = "default_max_concurrent_calls")]
    pub max_concurrent_calls: usize,
    /// A PEM file of CA certificates to trust for an `https://` `login_url` and instance, in
    /// addition to the system's store (a TLS-inspecting proxy, the sandbox's generated CA).
    /// Default: the system's store only.
    #[serde(default)]
    pub tls_ca_file: Option<std::path::PathBuf>,
    /// Timeout of one HTTP call. Default 120 s.
    #[serde(default = "default_request_timeout_secs")]
    pub request_timeout_secs: u64,
}

fn default_group_id() -> String {
    "sfjira-salesforce-sink".into()
}
fn default_api_version() -> String {
    "64.0".into()
}
fn default_client_id() -> String {
    "sfjira".into()
}
fn default_batch_size() -> usize {
    MAX_COLLECTION_RECORDS
}
fn default_max_batch_records() -> usize {
    1000
}
fn default_linger_ms() -> u64 {
    200
}
fn default_limit_share_threshold() -> f64 {
    0.8
}
fn default_budgeted_calls_per_sec() -> f64 {
    1.0
}
fn default_limit_pause_secs() -> u64 {
    300
}
fn default_audit_lookback_hours() -> u64 {
    24
}
fn default_attach_wait_ms() -> u64 {
    30_000
}
fn default_read_before_write() -> bool {
    true
}
fn default_max_concurrent_calls() -> usize {
    4
}
fn default_request_timeout_secs() -> u64 {
    120
}

impl SalesforceSinkConfig {
    pub(super) fn validate(&self) -> Result<(), ConfigError> {
        let ok = reqwest::Url::parse(&self.login_url)
            .ok()
            .is_some_and(|u| matches!(u.scheme(), "http" | "https") && u.host_str().is_some());
        if !ok {
            return Err(ConfigError::invalid(
                "salesforce_sink.login_url",
                format!("{:?} is not an http(s) URL with a host", self.login_url),
                "give the org's My Domain URL, https://login.salesforce.com, or the sandbox's URL",
            ));
        }
        let version_ok = self
            .api_version
            .strip_suffix(".0")
            .and_then(|v| v.parse::<u32>().ok())
            .is_some_and(|v| v >= 46);
        if !version_ok {
            return Err(ConfigError::invalid(
                "salesforce_sink.api_version",
                format!(
                    "{:?} is not an API version of 46.0 or later",
                    self.api_version
                ),
                "write the version as NN.0, e.g. 64.0 (Collections upsert needs 46.0+)",
            ));
        }
        let id = self.client_id.trim();
        if id.is_empty() || id.contains([',', ';', '=']) || id.len() > 40 {
            return Err(ConfigError::invalid(
                "salesforce_sink.client_id",
                format!(
                    "{:?} cannot be sent as Sforce-Call-Options client",
                    self.client_id
                ),
                "use a short name without , ; = (default sfjira), the same as the mapping's echo.salesforce_client_id",
            ));
        }
        if !(1..=MAX_COLLECTION_RECORDS).contains(&self.batch_size) {
            return Err(ConfigError::invalid(
                "salesforce_sink.batch_size",
                format!("{} is out of range", self.batch_size),
                "use 1 to 200 records per call (Salesforce's sObject Collections limit; default 200)",
            ));
        }
        if !(1..=10_000).contains(&self.max_batch_records) {
            return Err(ConfigError::invalid(
                "salesforce_sink.max_batch_records",
                format!("{} is out of range", self.max_batch_records),
                "use 1 to 10000 commands per batch (default 1000)",
            ));
        }
        if self.linger_ms > 60_000 {
            return Err(ConfigError::invalid(
                "salesforce_sink.linger_ms",
                format!("{} ms is too long", self.linger_ms),
                "use at most 60000 ms (default 200); batched flows set their own windows",
            ));
        }
        if let Err(e) = self.retry.validate() {
            return Err(ConfigError::invalid(
                "salesforce_sink.retry",
                e,
                "fix the named retry field (defaults: initial_delay_ms 200, max_delay_ms 30000, max_attempts 8, max_elapsed_ms 300000)",
            ));
        }
        if !(self.limit_share_threshold > 0.0 && self.limit_share_threshold <= 1.0) {
            return Err(ConfigError::invalid(
                "salesforce_sink.limit_share_threshold",
                format!("{} is out of range", self.limit_share_threshold),
                "use a share above 0 and at most 1 of the daily API allocation (default 0.8)",
            ));
        }
        if !(self.budgeted_calls_per_sec > 0.0 && self.budgeted_calls_per_sec.is_finite()) {
            return Err(ConfigError::invalid(
                "salesforce_sink.budgeted_calls_per_sec",
                format!("{} is not a positive rate", self.budgeted_calls_per_sec),
                "use a positive number of calls per second (default 1.0)",
            ));
        }
        if self.limit_pause_secs == 0 {
            return Err(ConfigError::invalid(
                "salesforce_sink.limit_pause_secs",
                "0 would retry an exhausted allocation in a hot loop",
                "use at least 1 second (default 300)",
            ));
        }
        if self.audit_lookback_hours == 0 {
            return Err(ConfigError::invalid(
                "salesforce_sink.audit_lookback_hours",
                "0 would forget every applied command at restart",
                "use at least 1 hour (default 24)",
            ));
        }
        if !(1..=25).contains(&self.max_concurrent_calls) {
            return Err(ConfigError::invalid(
                "salesforce_sink.max_concurrent_calls",
                format!("{} is out of range", self.max_concurrent_calls),
                "use 1 to 25 calls in flight (Salesforce's concurrent request limit is 25 per org; default 4)",
            ));
        }
        if let Some(path) = &self.tls_ca_file
            && !path.is_file()
        {
            return Err(ConfigError::invalid(
                "salesforce_sink.tls_ca_file",
                format!("{} is not a readable file", path.display()),
                "give the path of a PEM file of CA certificates, or remove the key to trust the system's store only",
            ));
        }
        if self.request_timeout_secs == 0 {
            return Err(ConfigError::invalid(
                "salesforce_sink.request_timeout_secs",
                "0 is not a timeout",
                "use at least 1 second (default 120)",
            ));
        }
        self.validate_auth()
    }

    /// As `salesforce_source.auth`, but naming this section's keys.
    fn validate_auth(&self) -> Result<(), ConfigError> {
        let a = &self.auth;
        let missing = |key: &str, why: &str| {
            ConfigError::invalid(
                format!("salesforce_sink.auth.{key}"),
                format!("missing: {why}"),
                format!("set salesforce_sink.auth.{key}"),
            )
        };
        if a.client_id.trim().is_empty() {
            return Err(missing("client_id", "the connected app's consumer key"));
        }
        match a.kind {
            AuthKind::ClientCredentials if a.client_secret.is_none() => Err(missing(
                "client_secret",
                "client_credentials needs the consumer secret ({ env: VAR } or { file: /path })",
            )),
            AuthKind::JwtBearer if a.username.as_deref().is_none_or(str::is_empty) => Err(missing(
                "username",
                "jwt_bearer needs the integration user's username",
            )),
            AuthKind::JwtBearer if a.private_key.is_none() => Err(missing(
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

    fn load(section: &str) -> Result<SfjiraConfig, ConfigError> {
        let dir = std::env::temp_dir().join(format!(
            "sfjira-sf-sink-config-{}-{}",
            std::process::id(),
            rand::random::<u64>()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("sfjira.yaml");
        let yaml = format!(
            "kafka: {{bootstrap_servers: \"127.0.0.1:9092\"}}\nregistry: {{url: \"http://127.0.0.1:8081\"}}\nsalesforce_sink:\n{section}"
        );
        std::fs::write(&path, yaml).unwrap();
        let env = [("SF_SECRET".to_string(), "s3cret".to_string())];
        let out = load_from(Some(&path), env);
        let _ = std::fs::remove_dir_all(&dir);
        out
    }

    const OK: &str = "  login_url: https://acme.my.salesforce.com\n  auth: {type: client_credentials, client_id: key, client_secret: {env: SF_SECRET}}\n";

    #[test]
    fn a_minimal_section_loads_with_defaults() {
        let s = load(OK).unwrap().salesforce_sink.unwrap();
        assert_eq!(s.client_id, "sfjira");
        assert_eq!(s.api_version, "64.0");
        assert_eq!(s.batch_size, 200);
        assert_eq!(s.linger_ms, 200);
        assert_eq!(s.limit_share_threshold, 0.8);
        assert_eq!(s.limit_pause_secs, 300);
        assert!(s.read_before_write);
        assert!(!format!("{s:?}").contains("s3cret"));
    }

    #[test]
    fn errors_name_the_key() {
        for (extra, key) in [
            ("  batch_size: 201\n", "salesforce_sink.batch_size"),
            ("  api_version: v64\n", "salesforce_sink.api_version"),
            ("  client_id: \"a;b\"\n", "salesforce_sink.client_id"),
            (
                "  limit_share_threshold: 1.5\n",
                "salesforce_sink.limit_share_threshold",
            ),
            (
                "  limit_pause_secs: 0\n",
                "salesforce_sink.limit_pause_secs",
            ),
            ("  retry: {max_attempts: 0}\n", "salesforce_sink.retry"),
            (
                "  max_concurrent_calls: 30\n",
                "salesforce_sink.max_concurrent_calls",
            ),
        ] {
            let err = load(&format!("{OK}{extra}")).unwrap_err();
            assert_eq!(err.key, key, "{err}");
        }
        let jwt = OK.replace(
            "{type: client_credentials, client_id: key, client_secret: {env: SF_SECRET}}",
            "{type: jwt_bearer, client_id: key, private_key: {env: SF_SECRET}}",
        );
        assert_eq!(load(&jwt).unwrap_err().key, "salesforce_sink.auth.username");
    }
}
