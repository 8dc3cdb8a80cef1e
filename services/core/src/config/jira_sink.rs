//! The `jira_sink` section: which Jira site the jira-sink writes to, as whom, and how it
//! batches, paces and retries. Kept in its own file so per-service sections do not edit the
//! same lines; wired into [`super::SfjiraConfig`] like every other section.

use serde::Deserialize;

use super::{ConfigError, Secret};

/// jira-sink: applies `jira.commands` to a Jira site.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JiraSinkConfig {
    /// The site's base URL, e.g. `https://acme.atlassian.net`. Required.
    pub site_url: String,
    /// The integration account's e-mail (Basic auth user with `api_token`).
    pub email: String,
    /// The integration account's API token, `{ env: VAR }` or `{ file: /path }`.
    pub api_token: Secret,
    /// Consumer group of the sink.
    #[serde(default = "default_group_id")]
    pub group_id: String,
}

fn default_group_id() -> String {
    "sfjira-jira-sink".into()
}

impl JiraSinkConfig {
    pub(super) fn validate(&self) -> Result<(), ConfigError> {
        let ok = reqwest::Url::parse(&self.site_url)
            .ok()
            .is_some_and(|u| matches!(u.scheme(), "http" | "https") && u.host_str().is_some());
        if !ok {
            return Err(ConfigError::invalid(
                "jira_sink.site_url",
                format!("{:?} is not an http(s) URL with a host", self.site_url),
                "give the site's base URL, e.g. https://acme.atlassian.net",
            ));
        }
        Ok(())
    }
}
