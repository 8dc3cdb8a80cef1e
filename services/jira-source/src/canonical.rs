//! From Jira's JSON (webhook payloads and REST `IssueBean`s) to sfjira's canonical events
//! (`schemas/jira/*.avsc`): `JiraIssueEvent` → `jira.issues`, `JiraCommentEvent` →
//! `jira.comments`, `JiraWorklogEvent` → `jira.worklogs`, all keyed by issue id.
//!
//! - Times are UTC epoch milliseconds, Jira's own precision (`2021-01-17T12:34:00.000+0000`).
//! - Rich text is kept as ADF JSON text and a plain-text rendering is derived; webhook payloads
//!   may carry v2 wiki strings instead of ADF, which are kept as the text (no ADF then).
//! - Custom fields are kept by id with their site names (from `GET /field`) and the value as
//!   Jira returned it (JSON text).
//! - `history_marker` is the changelog's `historyMetadata.type` (sfjira stamps its own writes).
//!
//! Each event also carries its [`Version`], the order key the publisher uses
//! (see `state.rs`): Jira's order is `(updated, changelog id)`.

use std::collections::HashMap;
use std::sync::OnceLock;

use apache_avro::Schema;
use apache_avro::types::Value as Avro;
use chrono::{DateTime, Utc};
use serde_json::{Map, Value};

use crate::state::{Entity, Kind, Version};

/// The three canonical topics (base names, before `kafka.topic_prefix`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Topic {
    Issues,
    Comments,
    Worklogs,
}

impl Topic {
    pub const ALL: [Topic; 3] = [Topic::Issues, Topic::Comments, Topic::Worklogs];

    pub fn base(self) -> &'static str {
        match self {
            Topic::Issues => "jira.issues",
            Topic::Comments => "jira.comments",
            Topic::Worklogs => "jira.worklogs",
        }
    }

    /// The parsed schema of this topic's values.
    pub fn schema(self) -> &'static Schema {
        static SCHEMAS: OnceLock<[Schema; 3]> = OnceLock::new();
        let all = SCHEMAS.get_or_init(|| {
            let parse = |text: &str| Schema::parse_str(text).expect("schemas/jira/*.avsc parse");
            [
                parse(include_str!("../../../schemas/jira/JiraIssueEvent.avsc")),
                parse(include_str!("../../../schemas/jira/JiraCommentEvent.avsc")),
                parse(include_str!("../../../schemas/jira/JiraWorklogEvent.avsc")),
            ]
        });
        &all[self as usize]
    }
}

/// Where the event came from (the `Origin` enum of the schemas).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    Webhook,
    Poll,
}

/// One canonical event, ready to encode, with what ordering and deduplication need.
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    pub topic: Topic,
    /// The Kafka key: the issue id.
    pub issue_id: String,
    pub issue_key: String,
    pub entity: Entity,
    pub kind: Kind,
    pub version: Version,
    pub value: Avro,
}

/// Why a payload cannot become a canonical event.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct Unusable(pub String);

fn missing(what: &str) -> Unusable {
    Unusable(format!("the payload has no {what}"))
}

/// Parses Jira's `yyyy-MM-dd'T'HH:mm:ss.SSSZ` (and RFC 3339) to epoch ms, UTC.
pub fn parse_time(s: &str) -> Option<i64> {
    DateTime::parse_from_str(s, "%Y-%m-%dT%H:%M:%S%.f%z")
        .or_else(|_| DateTime::parse_from_rfc3339(s))
        .ok()
        .map(|d| d.with_timezone(&Utc).timestamp_millis())
}

fn time_of(v: &Value, what: &str) -> Result<i64, Unusable> {
    v.as_str()
        .and_then(parse_time)
        .ok_or_else(|| Unusable(format!("{what} is missing or not a Jira timestamp: {v}")))
}

/// A JSON scalar as text (ids arrive as strings or numbers).
fn text(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

fn opt(v: Option<String>) -> Avro {
    match v {
        Some(s) => Avro::Union(1, Box::new(Avro::String(s))),
        None => Avro::Union(0, Box::new(Avro::Null)),
    }
}

fn opt_long(v: Option<i64>, ts: bool) -> Avro {
    match v {
        Some(n) if ts => Avro::Union(1, Box::new(Avro::TimestampMillis(n))),
        Some(n) => Avro::Union(1, Box::new(Avro::Long(n))),
        None => Avro::Union(0, Box::new(Avro::Null)),
    }
}

fn record(fields: Vec<(&str, Avro)>) -> Avro {
    Avro::Record(
        fields
            .into_iter()
            .map(|(k, v)| (k.to_string(), v))
            .collect(),
    )
}

fn origin(o: Origin) -> Avro {
    match o {
        Origin::Webhook => Avro::Enum(0, "WEBHOOK".into()),
        Origin::Poll => Avro::Enum(1, "POLL".into()),
    }
}

/// Plain text of an ADF document (paragraph-like blocks on their own lines), or the string
/// itself for a v2 wiki-markup body.
pub fn adf_text(doc: &Value) -> Option<String> {
    fn walk(node: &Value, out: &mut String) {
        match node.get("type").and_then(Value::as_str) {
            Some("text") => out.push_str(node.get("text").and_then(Value::as_str).unwrap_or("")),
            Some("hardBreak") => out.push('\n'),
            Some("mention") | Some("emoji") | Some("date") | Some("status") => {
                let attrs = node.get("attrs").unwrap_or(&Value::Null);
                let t = ["text", "shortName", "timestamp"]
                    .iter()
                    .find_map(|k| attrs.get(*k).and_then(text));
                out.push_str(&t.unwrap_or_default());
            }
            Some("inlineCard") => out.push_str(
                node.pointer("/attrs/url")
                    .and_then(Value::as_str)
                    .unwrap_or(""),
            ),
            _ => {}
        }
        if let Some(children) = node.get("content").and_then(Value::as_array) {
            for c in children {
                walk(c, out);
            }
        }
        let block = matches!(
            node.get("type").and_then(Value::as_str),
            Some("paragraph" | "heading" | "codeBlock" | "blockquote" | "rule" | "listItem")
        );
        if block && !out.ends_with('\n') {
            out.push('\n');
        }
    }
    match doc {
        Value::String(s) => Some(s.clone()),
        Value::Object(_) => {
            let mut out = String::new();
            walk(doc, &mut out);
            Some(out.trim_end().to_string())
        }
        _ => None,
    }
}

/// (ADF JSON text, plain text) of a rich-text value.
fn rich(v: Option<&Value>) -> (Option<String>, Option<String>) {
    match v {
        Some(o @ Value::Object(_)) => (Some(o.to_string()), adf_text(o)),
        Some(Value::String(s)) => (None, Some(s.clone())),
        _ => (None, None),
    }
}

fn account(v: Option<&Value>) -> Option<String> {
    v.and_then(|u| u.get("accountId")).and_then(text)
}

/// The change that produced an issue event: its changelog (`id`, `items`, optional
/// `historyMetadata`), when there is one.
pub struct ChangeContext<'a> {
    pub event_type: &'a str,
    pub origin: Origin,
    pub webhook_id: Option<&'a str>,
    /// When the change happened (epoch ms).
    pub timestamp: i64,
    pub actor: Option<String>,
    pub changelog: Option<&'a Value>,
}

/// `JiraIssueEvent` from an `IssueBean` (`id`, `key`, `fields`) and the change.
/// `names` maps custom field ids to their names on the site.
pub fn issue_event(
    issue: &Value,
    change: &ChangeContext<'_>,
    names: &HashMap<String, String>,
) -> Result<Event, Unusable> {
    let id = issue
        .get("id")
        .and_then(text)
        .ok_or_else(|| missing("issue.id"))?;
    let key = issue
        .get("key")
        .and_then(text)
        .ok_or_else(|| missing("issue.key"))?;
    let empty = Map::new();
    let f = issue
        .get("fields")
        .and_then(Value::as_object)
        .unwrap_or(&empty);
    let get = |k: &str| f.get(k).filter(|v| !v.is_null());
    let name_of = |k: &str| get(k).and_then(|v| v.get("name")).and_then(text);
    let project_key = get("project")
        .and_then(|p| p.get("key"))
        .and_then(text)
        .or_else(|| key.rsplit_once('-').map(|(p, _)| p.to_string()))
        .ok_or_else(|| missing("fields.project.key"))?;
    let issue_type = name_of("issuetype").ok_or_else(|| missing("fields.issuetype.name"))?;
    let created = time_of(get("created").unwrap_or(&Value::Null), "fields.created")?;
    let updated = time_of(get("updated").unwrap_or(&Value::Null), "fields.updated")?;
    let labels = get("labels")
        .and_then(Value::as_array)
        .map(|a| a.iter().filter_map(text).map(Avro::String).collect())
        .unwrap_or_default();
    let (desc_adf, desc_text) = rich(get("description"));
    let mut custom = HashMap::new();
    for (k, v) in f
        .iter()
        .filter(|(k, v)| k.starts_with("customfield_") && !v.is_null())
    {
        let name = names.get(k).cloned().unwrap_or_else(|| k.clone());
        custom.insert(
            k.clone(),
            record(vec![
                ("name", Avro::String(name)),
                ("value_json", Avro::String(v.to_string())),
            ]),
        );
    }
    let issue_rec = record(vec![
        ("id", Avro::String(id.clone())),
        ("key", Avro::String(key.clone())),
        ("project_key", Avro::String(project_key)),
        ("issue_type", Avro::String(issue_type)),
        ("summary", opt(get("summary").and_then(text))),
        ("status", opt(name_of("status"))),
        (
            "status_category",
            opt(get("status")
                .and_then(|s| s.pointer("/statusCategory/key"))
                .and_then(text)),
        ),
        ("priority", opt(name_of("priority"))),
        ("assignee_account_id", opt(account(get("assignee")))),
        ("reporter_account_id", opt(account(get("reporter")))),
        ("labels", Avro::Array(labels)),
        (
            "parent_key",
            opt(get("parent").and_then(|p| p.get("key")).and_then(text)),
        ),
        ("due_date", opt(get("duedate").and_then(text))),
        ("resolution", opt(name_of("resolution"))),
        ("created", Avro::TimestampMillis(created)),
        ("updated", Avro::TimestampMillis(updated)),
        ("description_adf_json", opt(desc_adf)),
        ("description_text", opt(desc_text)),
        ("custom_fields", Avro::Map(custom)),
    ]);
    let cl = change.changelog.filter(|c| !c.is_null());
    let changelog_id = cl.and_then(|c| c.get("id")).and_then(text);
    let items = cl
        .and_then(|c| c.get("items"))
        .and_then(Value::as_array)
        .map(|items| {
            items
                .iter()
                .map(|i| {
                    let s = |k: &str| opt(i.get(k).and_then(text));
                    record(vec![
                        (
                            "field",
                            Avro::String(i.get("field").and_then(text).unwrap_or_default()),
                        ),
                        ("field_id", s("fieldId")),
                        (
                            "fieldtype",
                            Avro::String(i.get("fieldtype").and_then(text).unwrap_or_default()),
                        ),
                        ("from", s("from")),
                        ("from_string", s("fromString")),
                        ("to", s("to")),
                        ("to_string", s("toString")),
                    ])
                })
                .collect()
        })
        .unwrap_or_default();
    let marker = cl
        .and_then(|c| c.pointer("/historyMetadata/type"))
        .and_then(text);
    let kind = Kind::of(change.event_type);
    let changelog_num = changelog_id.as_deref().and_then(|c| c.parse::<u64>().ok());
    let value = record(vec![
        ("event_type", Avro::String(change.event_type.to_string())),
        ("origin", origin(change.origin)),
        ("webhook_id", opt(change.webhook_id.map(String::from))),
        ("timestamp", Avro::TimestampMillis(change.timestamp)),
        ("actor_account_id", opt(change.actor.clone())),
        ("history_marker", opt(marker)),
        ("changelog_id", opt(changelog_id)),
        ("changelog", Avro::Array(items)),
        ("issue", issue_rec),
    ]);
    Ok(Event {
        topic: Topic::Issues,
        entity: Entity::Issue(id.clone()),
        issue_id: id,
        issue_key: key,
        kind,
        version: Version {
            updated,
            changelog: changelog_num,
        },
        value,
    })
}

/// `JiraCommentEvent` from a comment object and its issue's id and key.
pub fn comment_event(
    event_type: &str,
    origin_: Origin,
    webhook_id: Option<&str>,
    timestamp: i64,
    issue_id: &str,
    issue_key: &str,
    comment: &Value,
) -> Result<Event, Unusable> {
    let id = comment
        .get("id")
        .and_then(text)
        .ok_or_else(|| missing("comment.id"))?;
    let created = time_of(
        comment.get("created").unwrap_or(&Value::Null),
        "comment.created",
    )?;
    let updated = time_of(
        comment.get("updated").unwrap_or(&Value::Null),
        "comment.updated",
    )?;
    let (adf, plain) = rich(comment.get("body"));
    let author = account(comment.get("author"));
    let actor = account(comment.get("updateAuthor")).or_else(|| author.clone());
    let marker = comment
        .get("properties")
        .and_then(Value::as_array)
        .and_then(|ps| {
            ps.iter()
                .find(|p| p.get("key").and_then(Value::as_str) == Some("sfjira"))
        })
        .and_then(|p| p.get("value"))
        .map(|v| v.as_str().map_or_else(|| v.to_string(), String::from));
    let value = record(vec![
        ("event_type", Avro::String(event_type.to_string())),
        ("origin", origin(origin_)),
        ("webhook_id", opt(webhook_id.map(String::from))),
        ("timestamp", Avro::TimestampMillis(timestamp)),
        ("actor_account_id", opt(actor)),
        ("history_marker", opt(marker)),
        ("issue_id", Avro::String(issue_id.to_string())),
        ("issue_key", Avro::String(issue_key.to_string())),
        ("comment_id", Avro::String(id.clone())),
        ("author_account_id", opt(author)),
        ("body_adf_json", opt(adf)),
        ("body_text", opt(plain)),
        ("created", Avro::TimestampMillis(created)),
        ("updated", Avro::TimestampMillis(updated)),
    ]);
    Ok(Event {
        topic: Topic::Comments,
        issue_id: issue_id.to_string(),
        issue_key: issue_key.to_string(),
        entity: Entity::Comment(id),
        kind: Kind::of(event_type),
        version: Version {
            updated,
            changelog: None,
        },
        value,
    })
}

/// `JiraWorklogEvent` from a worklog object (which carries `issueId`) and its issue's key.
pub fn worklog_event(
    event_type: &str,
    origin_: Origin,
    webhook_id: Option<&str>,
    timestamp: i64,
    issue_key: &str,
    worklog: &Value,
) -> Result<Event, Unusable> {
    let id = worklog
        .get("id")
        .and_then(text)
        .ok_or_else(|| missing("worklog.id"))?;
    let issue_id = worklog
        .get("issueId")
        .and_then(text)
        .ok_or_else(|| missing("worklog.issueId"))?;
    let created = time_of(
        worklog.get("created").unwrap_or(&Value::Null),
        "worklog.created",
    )?;
    let updated = time_of(
        worklog.get("updated").unwrap_or(&Value::Null),
        "worklog.updated",
    )?;
    let started = worklog
        .get("started")
        .and_then(Value::as_str)
        .and_then(parse_time);
    let (adf, plain) = rich(worklog.get("comment"));
    let author = account(worklog.get("author"));
    let actor = account(worklog.get("updateAuthor")).or_else(|| author.clone());
    let value = record(vec![
        ("event_type", Avro::String(event_type.to_string())),
        ("origin", origin(origin_)),
        ("webhook_id", opt(webhook_id.map(String::from))),
        ("timestamp", Avro::TimestampMillis(timestamp)),
        ("actor_account_id", opt(actor)),
        ("history_marker", opt(None)),
        ("issue_id", Avro::String(issue_id.clone())),
        ("issue_key", Avro::String(issue_key.to_string())),
        ("worklog_id", Avro::String(id.clone())),
        ("author_account_id", opt(author)),
        ("started", opt_long(started, true)),
        (
            "time_spent_seconds",
            opt_long(
                worklog.get("timeSpentSeconds").and_then(Value::as_i64),
                false,
            ),
        ),
        ("comment_adf_json", opt(adf)),
        ("comment_text", opt(plain)),
        ("created", Avro::TimestampMillis(created)),
        ("updated", Avro::TimestampMillis(updated)),
    ]);
    Ok(Event {
        topic: Topic::Worklogs,
        issue_id,
        issue_key: issue_key.to_string(),
        entity: Entity::Worklog(id),
        kind: Kind::of(event_type),
        version: Version {
            updated,
            changelog: None,
        },
        value,
    })
}

#[cfg(test)]
#[path = "canonical_tests.rs"]
mod tests;
