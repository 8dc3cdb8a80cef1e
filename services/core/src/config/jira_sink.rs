//! The `jira_sink` section: which Jira site the jira-sink writes to, as whom, and how it
//! batches, paces and retries. Kept in its own file so per-service sections do not edit the
//! same lines; wired into [`super::SfjiraConfig`] like every other section.
//!
//! Defaults follow Atlassian's guidance (jira-api.md §4): retries start at 2 s and double,
//! `Retry-After` is a floor, and the request rate stays a fraction of the tenant's burst limit
//! that every app and token on the site shares.

use serde::Deserialize;

use super::{ConfigError, Secret};
use crate::retry::RetryPolicy;

/// jira-sink: applies `jira.commands` to a Jira site.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JiraSinkConfig {
    /// The site's base URL, e.g. `https://acme.atlassian.net`. Required.
    pub site_url: String,
    /// The integration account's e-mail (Basic auth user with `api_token`). Every write is
    /// made as this account, which is how the transformer recognises echoes. Required.
    pub email: String,
    /// The integration account's API token, `{ env: VAR }` or `{ file: /path }`. Required.
    pub api_token: Secret,
    /// Consumer group of the sink. Default `sfjira-jira-sink`.
    #[serde(default = "default_group_id")]
    pub group_id: String,
    /// `historyMetadata.type` stamped on every edit and transition, and the value of the
    /// `sfjira` property on comments: must equal the mapping's `echo.jira_history_marker`.
    /// Default `sfjira`.
    #[serde(default = "default_history_marker")]
    pub history_marker: String,
    /// `historyMetadata.generator.id`: tells sink instances/deployments apart in the
    /// changelog. Default `sfjira-jira-sink`.
    #[serde(default = "default_generator_id")]
    pub generator_id: String,
    /// Records read into one batch at most (one Kafka transaction). Default 100: a batch's
    /// audit entries and offsets commit only once its last command is applied, and at Jira's
    /// write limits (5 PUT/s here) a batch of 500 took over a minute under 429 storms; 100
    /// still fills two bulk creates of 50. Links do not wait for the commit: each is produced
    /// as soon as its issue is created (a batch of 500 once held a story's link past the
    /// salesforce-sink's 30 s `attach_wait_ms`, dead-lettering a comment with SFJ-9011).
    #[serde(default = "default_batch_size")]
    pub batch_size: usize,
    /// How long a batch waits to fill, in milliseconds. Edits to one issue that arrive within
    /// it are coalesced into one `PUT` (Jira limits writes per issue). Default 500.
    #[serde(default = "default_linger_ms")]
    pub linger_ms: u64,
    /// Issues per `POST /issue/bulk` call, 1–50 (Jira's maximum). Default 50.
    #[serde(default = "default_bulk_size")]
    pub bulk_size: usize,
    /// Jira calls in flight at once, at most. Default 8.
    #[serde(default = "default_concurrency")]
    pub concurrency: usize,
    /// Steady Jira requests per second for the whole process (one token bucket for every
    /// call). Default 10, a tenth of Jira's documented 100 requests/s per path, shared by every
    /// app on the tenant.
    #[serde(default = "default_rate_limit_per_second")]
    pub rate_limit_per_second: f64,
    /// Largest burst above the steady rate (the bucket's size). Default 10.
    #[serde(default = "default_rate_limit_burst")]
    pub rate_limit_burst: u32,
    /// Steady `PUT`/`DELETE` requests per second, on top of `rate_limit_per_second`: Jira
    /// limits these to half the rate of `GET`/`POST` (50 vs 100 per second and path). Default
    /// 5.
    #[serde(default = "default_write_rate_limit_per_second")]
    pub write_rate_limit_per_second: f64,
    /// Per-request timeout towards Jira, in milliseconds. Default 30000.
    #[serde(default = "default_request_timeout_ms")]
    pub request_timeout_ms: u64,
    /// First retry's backoff window in milliseconds (full jitter, doubling): Atlassian's 2 s
    /// base. Default 2000.
    #[serde(default = "default_retry_initial_delay_ms")]
    pub retry_initial_delay_ms: u64,
    /// Longest single backoff (a `Retry-After` may ask for more). Default 60000.
    #[serde(default = "default_retry_max_delay_ms")]
    pub retry_max_delay_ms: u64,
    /// How long a command is retried on 429, 5xx, 409 and timeouts before it is
    /// dead-lettered (`SFJ-8010`), in milliseconds. Default 86400000 (24 h).
    #[serde(default = "default_retry_budget_ms")]
    pub retry_budget_ms: u64,
    /// What a `DELETE` command does: `delete` the issue, or `close` it (transition to
    /// `closed_status`, keeping its history). Default `delete`.
    #[serde(default)]
    pub delete_mode: DeleteMode,
    /// The status `CLOSE` commands (and `delete_mode: close`) move the issue to. Default
    /// `Done`.
    #[serde(default = "default_closed_status")]
    pub closed_status: String,
    /// How long a command whose parent (`parent_ref`) or issue (`attach_to`) has no link yet
    /// waits for it before it is dead-lettered (`SFJ-8009`), in milliseconds. Default 30000.
    #[serde(default = "default_link_wait_ms")]
    pub link_wait_ms: u64,
    /// After a create whose answer was lost (crash, timeout, 5xx), how long after the intent
    /// the sink waits before searching Jira for the stamped marker: JQL search is eventually
    /// consistent ("a few seconds to minutes"). Default 30000.
    #[serde(default = "default_reconcile_settle_ms")]
    pub reconcile_settle_ms: u64,
    /// How far back `sfjira.audit` is read at start for the ids of commands already applied
    /// (replays are skipped), in hours. Default 24.
    #[serde(default = "default_audit_lookback_hours")]
    pub audit_lookback_hours: u64,
    /// Dry run: read and plan, write nothing to Jira; every command is audited as `skipped`
    /// with what it would have written, and offsets advance. Default `false`.
    #[serde(default)]
    pub dry_run: bool,
}

/// What a `DELETE` command does in Jira.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DeleteMode {
    /// `DELETE /issue/{key}` (with its sub-tasks).
    #[default]
    Delete,
    /// Transition to `closed_status`.
    Close,
}

fn default_group_id() -> String {
    "sfjira-jira-sink".into()
}
fn default_history_marker() -> String {
    "sfjira".into()
}
fn default_generator_id() -> String {
    "sfjira-jira-sink".into()
}
fn default_batch_size() -> usize {
    100
}
fn default_linger_ms() -> u64 {
    // Long enough to gather what one Salesforce transaction or burst sends together (their
    // creates share bulk calls, their edits of one issue coalesce), short enough that a lone
    // change is not held: at 500 ms the wait was most of the end-to-end p99 (`make bench`).
    50
}
fn default_bulk_size() -> usize {
    50
}
fn default_concurrency() -> usize {
    8
}
fn default_rate_limit_per_second() -> f64 {
    10.0
}
fn default_rate_limit_burst() -> u32 {
    10
}
fn default_write_rate_limit_per_second() -> f64 {
    5.0
}
fn default_request_timeout_ms() -> u64 {
    30_000
}
fn default_retry_initial_delay_ms() -> u64 {
    2_000
}
fn default_retry_max_delay_ms() -> u64 {
    60_000
}
fn default_retry_budget_ms() -> u64 {
    24 * 3_600_000
}
fn default_closed_status() -> String {
    "Done".into()
}
fn default_link_wait_ms() -> u64 {
    30_000
}
fn default_reconcile_settle_ms() -> u64 {
    30_000
}
fn default_audit_lookback_hours() -> u64 {
    24
}

impl JiraSinkConfig {
    /// The retry policy of Jira calls: full-jitter exponential from `retry_initial_delay_ms`,
    /// capped at `retry_max_delay_ms`, for `retry_budget_ms`, with no attempt cap (the budget
    /// is in time).
    pub fn retry_policy(&self) -> RetryPolicy {
        RetryPolicy {
            initial_delay_ms: self.retry_initial_delay_ms,
            max_delay_ms: self.retry_max_delay_ms,
            max_attempts: u32::MAX,
            max_elapsed_ms: self.retry_budget_ms,
        }
    }

    pub(super) fn validate(&self) -> Result<(), ConfigError> {
        let ok = reqwest::Url::parse(&self.site_url).ok().is_some_and(|u| {
            matches!(u.scheme(), "http" | "https")
                && u.host_str().is_some()
                && u.username().is_empty()
        });
        if !ok {
            return Err(ConfigError::invalid(
                "jira_sink.site_url",
                format!("{:?} is not an http(s) URL with a host", self.site_url),
                "give the site's base URL, e.g. https://acme.atlassian.net (no credentials in it)",
            ));
        }
        if !self.email.contains('@') {
            return Err(ConfigError::invalid(
                "jira_sink.email",
                format!("{:?} is not an e-mail address", self.email),
                "the integration account's e-mail, the Basic-auth user of its API token",
            ));
        }
        let nonempty = [
            ("group_id", &self.group_id),
            ("history_marker", &self.history_marker),
            ("generator_id", &self.generator_id),
            ("closed_status", &self.closed_status),
        ];
        for (key, value) in nonempty {
            if value.trim().is_empty() {
                return Err(ConfigError::invalid(
                    format!("jira_sink.{key}"),
                    "is empty",
                    "remove the key to use its default (see docs/configuration.md)",
                ));
            }
        }
        let ranges: [(&str, u64, u64, u64, &str); 6] = [
            ("batch_size", self.batch_size as u64, 1, 10_000, "e.g. 100"),
            (
                "bulk_size",
                self.bulk_size as u64,
                1,
                50,
                "Jira creates at most 50 issues per bulk call",
            ),
            ("concurrency", self.concurrency as u64, 1, 64, "e.g. 8"),
            (
                "request_timeout_ms",
                self.request_timeout_ms,
                100,
                600_000,
                "e.g. 30000",
            ),
            (
                "rate_limit_burst",
                u64::from(self.rate_limit_burst),
                1,
                10_000,
                "e.g. 10",
            ),
            (
                "audit_lookback_hours",
                self.audit_lookback_hours,
                1,
                24 * 365,
                "e.g. 24",
            ),
        ];
        for (key, value, min, max, hint) in ranges {
            if !(min..=max).contains(&value) {
                return Err(ConfigError::invalid(
                    format!("jira_sink.{key}"),
                    format!("{value} is outside {min}..={max}"),
                    format!("give a value in range ({hint})"),
                ));
            }
        }
        for (key, rate) in [
            ("rate_limit_per_second", self.rate_limit_per_second),
            (
                "write_rate_limit_per_second",
                self.write_rate_limit_per_second,
            ),
        ] {
            if !(rate.is_finite() && rate > 0.0) {
                return Err(ConfigError::invalid(
                    format!("jira_sink.{key}"),
                    format!("{rate} is not a positive rate"),
                    "give requests per second, e.g. 10",
                ));
            }
        }
        if let Err(problem) = self.retry_policy().validate() {
            return Err(ConfigError::invalid(
                "jira_sink.retry_initial_delay_ms",
                problem,
                "retry_initial_delay_ms > 0, retry_max_delay_ms >= it, retry_budget_ms > 0",
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use crate::config::{ConfigError, DeleteMode, SfjiraConfig, load_from};

    fn load(extra: &str) -> Result<SfjiraConfig, ConfigError> {
        let yaml = format!(
            "kafka: {{bootstrap_servers: \"127.0.0.1:19092\"}}\n\
             registry: {{url: \"http://127.0.0.1:18081\"}}\n\
             jira_sink:\n  site_url: https://acme.atlassian.net\n  email: sync@acme.test\n  api_token: {{env: T}}\n{extra}"
        );
        let path = std::env::temp_dir().join(format!(
            "sfjira-jira-sink-config-{}-{}",
            std::process::id(),
            yaml.len()
        ));
        std::fs::write(&path, yaml).unwrap();
        let out = load_from(
            Some(&path),
            vec![("T".to_string(), "secret-token".to_string())],
        );
        let _ = std::fs::remove_file(&path);
        out
    }

    #[test]
    fn defaults_follow_atlassians_guidance() {
        let c = load("").unwrap().jira_sink.unwrap();
        assert_eq!(c.retry_budget_ms, 86_400_000);
        assert_eq!(c.retry_initial_delay_ms, 2_000);
        assert_eq!(c.bulk_size, 50);
        assert_eq!(c.delete_mode, DeleteMode::Delete);
        assert_eq!(c.history_marker, "sfjira");
        assert_eq!(c.closed_status, "Done");
        assert!(!c.dry_run);
        let p = c.retry_policy();
        assert_eq!(p.max_elapsed_ms, 86_400_000);
        assert!(p.validate().is_ok());
    }

    #[test]
    fn bad_values_name_the_key_and_the_fix() {
        let e = load("  bulk_size: 51\n").unwrap_err();
        assert_eq!(e.key, "jira_sink.bulk_size");
        assert!(e.fix.contains("50"), "{e}");
        let e = load("  delete_mode: archive\n").unwrap_err();
        assert!(e.to_string().contains("delete_mode"), "{e}");
        let e = load("  write_rate_limit_per_second: 0\n").unwrap_err();
        assert_eq!(e.key, "jira_sink.write_rate_limit_per_second");
        let e = load("  history_marker: \"\"\n").unwrap_err();
        assert_eq!(e.key, "jira_sink.history_marker");
        let e = load("  retry_max_delay_ms: 10\n").unwrap_err();
        assert!(e.key.starts_with("jira_sink.retry"), "{e}");
        assert!(!e.to_string().contains("secret-token"));
        let e = load("  colour: red\n").unwrap_err();
        assert!(e.to_string().contains("colour"), "{e}");
    }
}
