//! The mutable records of the site: issues with their comments, worklogs, changelog,
//! properties and remote links. Plain data; the rules that change it live in [`super::ops`].

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// One issue. Settable fields are kept in `fields` in a stored form per
/// [`super::catalog::FieldKind`] (user = account id, select = option id, parent = issue id,
/// rich text = the ADF document …) and expanded when rendered.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Issue {
    pub id: u64,
    pub key: String,
    pub project_key: String,
    pub issue_type_id: String,
    pub status_id: String,
    pub resolution_id: Option<String>,
    pub creator: String,
    pub fields: BTreeMap<String, Value>,
    pub created: DateTime<Utc>,
    pub updated: DateTime<Utc>,
    pub resolution_date: Option<DateTime<Utc>>,
    pub status_category_changed: DateTime<Utc>,
    pub original_estimate_seconds: Option<i64>,
    pub remaining_estimate_seconds: Option<i64>,
    pub comments: Vec<Comment>,
    pub worklogs: Vec<Worklog>,
    /// Oldest first.
    pub changelog: Vec<History>,
    pub properties: BTreeMap<String, Value>,
    pub remote_links: Vec<RemoteLink>,
}

impl Issue {
    pub fn text_field(&self, id: &str) -> Option<&str> {
        self.fields.get(id).and_then(Value::as_str)
    }

    pub fn summary(&self) -> &str {
        self.text_field("summary").unwrap_or_default()
    }

    pub fn labels(&self) -> Vec<String> {
        self.fields
            .get("labels")
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(|v| v.as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default()
    }

    pub fn parent_id(&self) -> Option<u64> {
        self.fields.get("parent").and_then(Value::as_u64)
    }

    pub fn time_spent_seconds(&self) -> i64 {
        self.worklogs.iter().map(|w| w.time_spent_seconds).sum()
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Comment {
    pub id: u64,
    pub author: String,
    pub update_author: String,
    pub body: Value,
    pub created: DateTime<Utc>,
    pub updated: DateTime<Utc>,
    pub visibility: Option<Value>,
    /// Entity properties set with the comment (`properties: [{key, value}]` on create, shown
    /// with `expand=properties`; reference §3.4).
    #[serde(default)]
    pub properties: Vec<Value>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Worklog {
    pub id: u64,
    pub issue_id: u64,
    pub author: String,
    pub update_author: String,
    pub comment: Option<Value>,
    /// As sent (offset kept), re-rendered in Jira's format.
    pub started: DateTime<chrono::FixedOffset>,
    pub time_spent_seconds: i64,
    pub created: DateTime<Utc>,
    pub updated: DateTime<Utc>,
    pub visibility: Option<Value>,
    /// Entity properties set with the worklog (`properties: [{key, value}]` on create, shown
    /// with `expand=properties`; reference §3.5).
    #[serde(default)]
    pub properties: Vec<Value>,
}

/// One changelog entry (`histories[]` / `values[]`).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct History {
    pub id: u64,
    pub author: String,
    pub created: DateTime<Utc>,
    pub items: Vec<ChangeItem>,
    /// Stored verbatim from the request; sfjira uses it as its loop-prevention marker.
    pub history_metadata: Option<Value>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChangeItem {
    pub field: String,
    pub fieldtype: String,
    pub field_id: String,
    pub from: Option<String>,
    pub from_string: Option<String>,
    pub to: Option<String>,
    pub to_string: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RemoteLink {
    pub id: u64,
    pub global_id: Option<String>,
    /// The request body as stored (object, application, relationship …).
    pub body: Value,
}

/// A worklog removed from the site, kept for `GET /worklog/deleted`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DeletedWorklog {
    pub worklog_id: u64,
    pub deleted_at: DateTime<Utc>,
}
