//! [`SourceRecord`]: one source change as the engine sees it, whichever system it came from.
//! The transformer's Kafka side fills it from a Salesforce change event or a canonical Jira
//! event; `sfjira mapping preview` reads it as JSON.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EventType {
    Create,
    Update,
    Delete,
    Undelete,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SourceRecord {
    /// `salesforce.<Object>`, `jira.issue`, `jira.comment`, `jira.worklog`.
    pub source: String,
    /// Record Id (Salesforce), issue / comment / worklog id (Jira).
    pub id: String,
    /// Jira issues: the issue key (`PROJ-12`).
    #[serde(default)]
    pub key: Option<String>,
    pub event: EventType,
    /// The change's position at the source (replay id, changelog id, `updated`): makes the
    /// command ids of this change unique and stable.
    pub version: String,
    /// When the change was committed at the source.
    pub commit_time: DateTime<Utc>,
    /// Fields this change set (updates; creates count every non-null field as changed).
    #[serde(default)]
    pub changed: Vec<String>,
    /// Fields this change set to null.
    #[serde(default)]
    pub nulled: Vec<String>,
    /// Who made the change: Salesforce `commitUser`, Jira `accountId`.
    #[serde(default)]
    pub actor: Option<String>,
    /// Salesforce `changeOrigin` (`com/salesforce/api/rest/62.0;client=sfjira`).
    #[serde(default)]
    pub change_origin: Option<String>,
    /// Jira: the `historyMetadata.type` of the change, when there is one.
    #[serde(default)]
    pub history_marker: Option<String>,
    /// The record's fields: for Salesforce updates, unchanged fields are null.
    pub fields: Map<String, Value>,
}

impl SourceRecord {
    /// Whether `field` changed in this event (for a create: whether it has a value).
    pub fn changed(&self, field: &str) -> bool {
        match self.event {
            EventType::Create | EventType::Undelete => {
                self.fields.get(field).is_some_and(|v| !v.is_null())
            }
            EventType::Update | EventType::Delete => self
                .changed
                .iter()
                .chain(&self.nulled)
                .any(|f| f == field || f.split('.').next() == Some(field)),
        }
    }

    pub fn nulled(&self, field: &str) -> bool {
        self.nulled.iter().any(|f| f == field)
    }
}
