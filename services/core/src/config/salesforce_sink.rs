//! The `salesforce_sink` section: which org the salesforce-sink writes to, how it logs in, and
//! how it batches and paces its calls. Kept in its own file so per-service sections do not edit
//! the same lines; wired into [`super::SfjiraConfig`] like every other section.

use serde::Deserialize;

use super::{ConfigError, SalesforceAuth};

/// salesforce-sink: applies `salesforce.commands` to a Salesforce org.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SalesforceSinkConfig {
    /// Where OAuth tokens come from (as `salesforce_source.login_url`). Required.
    pub login_url: String,
    /// How to log in (as `salesforce_source.auth`).
    pub auth: SalesforceAuth,
    /// Consumer group of the sink.
    #[serde(default = "default_group_id")]
    pub group_id: String,
}

fn default_group_id() -> String {
    "sfjira-salesforce-sink".into()
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
        Ok(())
    }
}
