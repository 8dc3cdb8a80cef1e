//! Webhook envelopes as Jira Cloud sends them (jira-api.md §5,
//! https://developer.atlassian.com/cloud/jira/platform/webhooks/#example-callback-for-an-issue-related-event):
//! `timestamp` (epoch ms), `webhookEvent`, and per family: issue events add
//! `issue_event_type_name`, `user`, `issue` and, on `jira:issue_updated` only, `changelog`
//! (plus `comment` when a comment caused the update); comment events carry `comment` and a
//! short `issue`; worklog events carry `worklog` only. J1 passes the issue/comment/worklog JSON
//! it renders (with v2 `self` links, as real payloads have).

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::{Map, Value, json};

/// The events the sandbox emits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EventName {
    IssueCreated,
    IssueUpdated,
    IssueDeleted,
    CommentCreated,
    CommentUpdated,
    CommentDeleted,
    WorklogCreated,
    WorklogUpdated,
    WorklogDeleted,
}

impl EventName {
    pub fn as_str(self) -> &'static str {
        match self {
            EventName::IssueCreated => "jira:issue_created",
            EventName::IssueUpdated => "jira:issue_updated",
            EventName::IssueDeleted => "jira:issue_deleted",
            EventName::CommentCreated => "comment_created",
            EventName::CommentUpdated => "comment_updated",
            EventName::CommentDeleted => "comment_deleted",
            EventName::WorklogCreated => "worklog_created",
            EventName::WorklogUpdated => "worklog_updated",
            EventName::WorklogDeleted => "worklog_deleted",
        }
    }
}

/// One changed field. Real items often have `from`/`to` null (ids only exist for some fields),
/// so every value is optional and serialised as `null` rather than left out.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct ChangeItem {
    pub field: String,
    /// `jira` for system fields, `custom` for custom fields.
    pub fieldtype: String,
    #[serde(rename = "fieldId", skip_serializing_if = "Option::is_none")]
    pub field_id: Option<String>,
    pub from: Option<String>,
    #[serde(rename = "fromString")]
    pub from_string: Option<String>,
    pub to: Option<String>,
    #[serde(rename = "toString")]
    pub to_string: Option<String>,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Changelog {
    /// Same id as the history entry in `GET /issue/{k}/changelog` (a number in the payload).
    pub id: u64,
    pub items: Vec<ChangeItem>,
}

/// The `user` object: get-user without `locale`, `emailAddress`, `groups`, `applicationRoles`;
/// its `self` is a v2 link.
pub fn user(base_url: &str, account_id: &str, display_name: &str, time_zone: &str) -> Value {
    json!({
        "self": format!("{base_url}/rest/api/2/user?accountId={account_id}"),
        "accountId": account_id,
        "accountType": "atlassian",
        "avatarUrls": {},
        "displayName": display_name,
        "active": true,
        "timeZone": time_zone,
    })
}

fn envelope(event: EventName, at: DateTime<Utc>) -> Map<String, Value> {
    let mut m = Map::new();
    m.insert("timestamp".into(), json!(at.timestamp_millis()));
    m.insert("webhookEvent".into(), json!(event.as_str()));
    m
}

/// `jira:issue_created` (`issue_event_type_name: issue_created`).
pub fn issue_created(at: DateTime<Utc>, user: Value, issue: Value) -> Value {
    issue_event(
        EventName::IssueCreated,
        "issue_created",
        at,
        user,
        issue,
        None,
        None,
    )
}

/// `jira:issue_updated`. `type_name` is Jira's `issue_event_type_name`: `issue_updated`,
/// `issue_generic` (transitions and most edits), `issue_assigned`, `issue_commented`,
/// `issue_comment_edited`, `issue_comment_deleted`, `issue_work_logged`, `issue_resolved`, ….
pub fn issue_updated(
    at: DateTime<Utc>,
    type_name: &str,
    user: Value,
    issue: Value,
    changelog: Option<&Changelog>,
    comment: Option<Value>,
) -> Value {
    issue_event(
        EventName::IssueUpdated,
        type_name,
        at,
        user,
        issue,
        changelog,
        comment,
    )
}

/// `jira:issue_deleted` (`issue_event_type_name: issue_deleted`).
pub fn issue_deleted(at: DateTime<Utc>, user: Value, issue: Value) -> Value {
    issue_event(
        EventName::IssueDeleted,
        "issue_deleted",
        at,
        user,
        issue,
        None,
        None,
    )
}

fn issue_event(
    event: EventName,
    type_name: &str,
    at: DateTime<Utc>,
    user: Value,
    issue: Value,
    changelog: Option<&Changelog>,
    comment: Option<Value>,
) -> Value {
    let mut m = envelope(event, at);
    m.insert("issue_event_type_name".into(), json!(type_name));
    m.insert("user".into(), user);
    m.insert("issue".into(), issue);
    if let (EventName::IssueUpdated, Some(c)) = (event, changelog) {
        m.insert(
            "changelog".into(),
            serde_json::to_value(c).unwrap_or(Value::Null),
        );
    }
    if let Some(c) = comment {
        m.insert("comment".into(), c);
    }
    Value::Object(m)
}

/// `comment_created|updated|deleted`: `{timestamp, webhookEvent, comment, issue}`, where `issue`
/// is the short form (`id`, `self`, `key`, `fields` with summary, status, priority, assignee,
/// issuetype, project…).
pub fn comment_event(event: EventName, at: DateTime<Utc>, comment: Value, issue: Value) -> Value {
    let mut m = envelope(event, at);
    m.insert("comment".into(), comment);
    m.insert("issue".into(), issue);
    Value::Object(m)
}

/// `worklog_created|updated|deleted`: `{timestamp, webhookEvent, worklog}`; the worklog carries
/// `issueId` (a top-level `issue` is undocumented and not sent).
pub fn worklog_event(event: EventName, at: DateTime<Utc>, worklog: Value) -> Value {
    let mut m = envelope(event, at);
    m.insert("worklog".into(), worklog);
    Value::Object(m)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn updated_carries_changelog_with_null_values() {
        let cl = Changelog {
            id: 10124,
            items: vec![ChangeItem {
                field: "summary".into(),
                fieldtype: "jira".into(),
                field_id: Some("summary".into()),
                from: None,
                from_string: Some("Old".into()),
                to: None,
                to_string: Some("New".into()),
            }],
        };
        let v = issue_updated(
            Utc::now(),
            "issue_generic",
            json!({}),
            json!({"id": "1"}),
            Some(&cl),
            None,
        );
        assert_eq!(v["webhookEvent"], "jira:issue_updated");
        assert!(v["changelog"]["items"][0]["from"].is_null());
        assert_eq!(v["changelog"]["items"][0]["toString"], "New");
        let c = issue_created(Utc::now(), json!({}), json!({}));
        assert!(c.get("changelog").is_none());
    }
}
