//! From a decoded source record (Avro) to the engine's [`SourceRecord`].
//!
//! Two layouts are read (see `schemas/README.md`):
//! - Salesforce change records (`salesforce.cdc.<Entity>`): Salesforce's own change-event
//!   shape — a `ChangeEventHeader` record (changed/nulled field names already decoded from the
//!   bitmaps), `replay_id`, then the entity's fields;
//! - Jira events (`jira.issues`, `jira.comments`, `jira.worklogs`): `schemas/jira/*.avsc`.
//!
//! The record arrives as JSON (`sfjira_core::avro::json`: Avro dates and timestamps already
//! ISO 8601 strings, so mappings see the same values a person would).

use chrono::{DateTime, Utc};
use serde_json::{Map, Value};
use sfjira_core::errors::{ErrorCode, StageError};

use crate::engine::{EventType, SourceRecord};

/// Reads a decoded record of `topic` (with Kafka key `key`), as JSON.
pub fn source_record(
    topic: &str,
    key: Option<&str>,
    json: Value,
) -> Result<SourceRecord, StageError> {
    let Value::Object(obj) = json else {
        return Err(invalid(topic, "the value is not a record".into()));
    };
    if obj.contains_key("ChangeEventHeader") {
        salesforce(topic, key, obj)
    } else if let Some(kind) = obj.get("event_type").and_then(Value::as_str) {
        match kind {
            k if k.starts_with("jira:issue_") => jira_issue(topic, obj),
            k if k.starts_with("comment_") => jira_child(topic, obj, "comment", "comment_id"),
            k if k.starts_with("worklog_") => jira_child(topic, obj, "worklog", "worklog_id"),
            other => Err(invalid(topic, format!("unknown Jira event type {other}"))),
        }
    } else {
        Err(invalid(topic, "neither a Salesforce change record (no ChangeEventHeader) nor a Jira event (no event_type)".into()))
    }
}

fn invalid(topic: &str, why: String) -> StageError {
    StageError::new(
        ErrorCode::SourceFieldMissing,
        format!("record from {topic}: {why}"),
    )
}

fn salesforce(
    topic: &str,
    key: Option<&str>,
    mut obj: Map<String, Value>,
) -> Result<SourceRecord, StageError> {
    let header = obj.remove("ChangeEventHeader").unwrap_or_default();
    // Borrowed, not cloned: cloning the header's arrays was most of this function's cost.
    let h = |k: &str| header.get(k).unwrap_or(&Value::Null);
    let strings = |k: &str| -> Vec<String> {
        h(k).as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|v| v.as_str().map(String::from))
                    .collect()
            })
            .unwrap_or_default()
    };
    let entity = h("entityName")
        .as_str()
        .map(String::from)
        .ok_or_else(|| invalid(topic, "ChangeEventHeader.entityName is missing".into()))?;
    let event = match h("changeType").as_str().unwrap_or("") {
        "CREATE" => EventType::Create,
        "UPDATE" => EventType::Update,
        "DELETE" => EventType::Delete,
        "UNDELETE" => EventType::Undelete,
        other => {
            return Err(StageError::new(
                ErrorCode::SourceFieldMissing,
                format!(
                    "record from {topic}: change type {other:?} carries no record to map (gap events are recovered by the salesforce-source)"
                ),
            ));
        }
    };
    let id = key
        .map(String::from)
        .or_else(|| strings("recordIds").into_iter().next())
        .ok_or_else(|| {
            invalid(
                topic,
                "no record id (key or ChangeEventHeader.recordIds)".into(),
            )
        })?;
    // Salesforce's header has commitTimestamp as a plain long (epoch ms); a logical timestamp
    // arrives here as RFC 3339 text. Accept both.
    let commit_time = match h("commitTimestamp") {
        Value::Number(n) => n.as_i64().and_then(DateTime::from_timestamp_millis),
        Value::String(s) => DateTime::parse_from_rfc3339(s)
            .ok()
            .map(|d| d.with_timezone(&Utc)),
        _ => None,
    };
    let version = obj
        .remove("replay_id")
        .and_then(|v| v.as_str().map(String::from))
        .unwrap_or_else(|| format!("commit-{}", h("commitNumber")));
    Ok(SourceRecord {
        source: format!("salesforce.{entity}"),
        id,
        key: None,
        event,
        version,
        commit_time: commit_time
            .ok_or_else(|| invalid(topic, "ChangeEventHeader.commitTimestamp is missing".into()))?,
        changed: strings("changedFields"),
        nulled: strings("nulledFields"),
        actor: h("commitUser").as_str().map(String::from),
        change_origin: h("changeOrigin").as_str().map(String::from),
        history_marker: None,
        fields: obj,
    })
}

fn jira_event_type(topic: &str, obj: &Map<String, Value>) -> Result<EventType, StageError> {
    let kind = obj.get("event_type").and_then(Value::as_str).unwrap_or("");
    Ok(match kind.rsplit('_').next() {
        Some("created") => EventType::Create,
        Some("updated") => EventType::Update,
        Some("deleted") => EventType::Delete,
        _ => return Err(invalid(topic, format!("unknown Jira event type {kind}"))),
    })
}

fn time(obj: &Map<String, Value>, k: &str) -> Option<DateTime<Utc>> {
    obj.get(k)
        .and_then(Value::as_str)
        .and_then(|s| DateTime::parse_from_rfc3339(s).ok())
        .map(|d| d.with_timezone(&Utc))
}

fn text(obj: &Map<String, Value>, k: &str) -> Option<String> {
    obj.get(k).and_then(Value::as_str).map(String::from)
}

fn jira_issue(topic: &str, mut obj: Map<String, Value>) -> Result<SourceRecord, StageError> {
    let event = jira_event_type(topic, &obj)?;
    let issue = match obj.remove("issue") {
        Some(Value::Object(i)) => i,
        _ => return Err(invalid(topic, "no issue".into())),
    };
    let mut fields = Map::new();
    for (from, to) in [
        ("id", "id"),
        ("key", "key"),
        ("project_key", "project"),
        ("issue_type", "issue_type"),
        ("summary", "summary"),
        ("status", "status"),
        ("status_category", "status_category"),
        ("priority", "priority"),
        ("assignee_account_id", "assignee"),
        ("reporter_account_id", "reporter"),
        ("labels", "labels"),
        ("parent_key", "parent"),
        ("due_date", "duedate"),
        ("resolution", "resolution"),
        ("created", "created"),
        ("updated", "updated"),
        ("description_text", "description"),
    ] {
        fields.insert(to.into(), issue.get(from).cloned().unwrap_or(Value::Null));
    }
    if let Some(adf) = issue.get("description_adf_json").and_then(Value::as_str) {
        fields.insert(
            "description_adf".into(),
            serde_json::from_str(adf).unwrap_or(Value::Null),
        );
    }
    // Custom fields under their id and their name: `record.customfield_10016`, `record["Story Points"]`.
    let mut names = Map::new();
    if let Some(Value::Object(custom)) = issue.get("custom_fields") {
        for (id, cf) in custom {
            let value = cf
                .get("value_json")
                .and_then(Value::as_str)
                .and_then(|s| serde_json::from_str(s).ok())
                .unwrap_or(Value::Null);
            if let Some(name) = cf.get("name").and_then(Value::as_str) {
                names.insert(name.to_string(), Value::String(id.clone()));
                fields.insert(name.to_string(), value.clone());
            }
            fields.insert(id.clone(), value);
        }
    }
    let mut changed = Vec::new();
    if let Some(Value::Array(items)) = obj.get("changelog") {
        for item in items {
            for k in ["field", "field_id"] {
                if let Some(f) = item.get(k).and_then(Value::as_str) {
                    // Jira names some system fields differently in changelogs and in /issue.
                    let f = match f {
                        "Key" => "key",
                        "issuetype" => "issue_type",
                        "Parent" | "IssueParentAssociation" => "parent",
                        other => other,
                    };
                    if !changed.iter().any(|c| c == f) {
                        changed.push(f.to_string());
                    }
                    if let Some(id) = names.get(f).and_then(Value::as_str) {
                        changed.push(id.to_string());
                    }
                }
            }
        }
    }
    let updated = time(&issue, "updated");
    let version = text(&obj, "changelog_id")
        .map(|c| format!("changelog-{c}"))
        .unwrap_or_else(|| {
            format!(
                "updated-{}",
                updated.map(|t| t.timestamp_millis()).unwrap_or(0)
            )
        });
    Ok(SourceRecord {
        source: "jira.issue".into(),
        id: text(&issue, "id").ok_or_else(|| invalid(topic, "issue.id is missing".into()))?,
        key: text(&issue, "key"),
        event,
        version,
        commit_time: time(&obj, "timestamp")
            .or(updated)
            .ok_or_else(|| invalid(topic, "no timestamp".into()))?,
        changed,
        nulled: Vec::new(),
        actor: text(&obj, "actor_account_id"),
        change_origin: None,
        history_marker: text(&obj, "history_marker"),
        fields,
    })
}

fn jira_child(
    topic: &str,
    obj: Map<String, Value>,
    entity: &str,
    id_field: &str,
) -> Result<SourceRecord, StageError> {
    let event = jira_event_type(topic, &obj)?;
    let id =
        text(&obj, id_field).ok_or_else(|| invalid(topic, format!("{id_field} is missing")))?;
    let updated = time(&obj, "updated");
    let mut fields = obj.clone();
    for adf_key in ["body_adf_json", "comment_adf_json"] {
        if let Some(adf) = fields
            .remove(adf_key)
            .and_then(|v| v.as_str().map(String::from))
        {
            fields.insert(
                adf_key.trim_end_matches("_json").into(),
                serde_json::from_str(&adf).unwrap_or(Value::Null),
            );
        }
    }
    Ok(SourceRecord {
        source: format!("jira.{entity}"),
        id,
        key: None,
        event,
        version: format!(
            "updated-{}",
            updated.map(|t| t.timestamp_millis()).unwrap_or(0)
        ),
        commit_time: time(&obj, "timestamp")
            .or(updated)
            .ok_or_else(|| invalid(topic, "no timestamp".into()))?,
        changed: Vec::new(),
        nulled: Vec::new(),
        actor: text(&obj, "actor_account_id"),
        change_origin: None,
        history_marker: text(&obj, "history_marker"),
        fields,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use apache_avro::types::Value as Avro;
    use serde_json::json;
    use sfjira_core::avro::json::to_json;

    #[test]
    fn a_salesforce_change_record() {
        let header = Avro::Record(vec![
            ("entityName".into(), Avro::String("Opportunity".into())),
            (
                "recordIds".into(),
                Avro::Array(vec![Avro::String("006A".into())]),
            ),
            ("changeType".into(), Avro::Enum(1, "UPDATE".into())),
            (
                "changeOrigin".into(),
                Avro::String("com/salesforce/api/rest/62.0;client=sfjira".into()),
            ),
            ("commitTimestamp".into(), Avro::Long(1_795_780_800_000)),
            ("commitNumber".into(), Avro::Long(42)),
            ("commitUser".into(), Avro::String("005U".into())),
            (
                "changedFields".into(),
                Avro::Array(vec![
                    Avro::String("StageName".into()),
                    Avro::String("BillingAddress.City".into()),
                ]),
            ),
            ("nulledFields".into(), Avro::Array(vec![])),
        ]);
        let value = Avro::Record(vec![
            ("ChangeEventHeader".into(), header),
            ("replay_id".into(), Avro::String("00000000000000ff".into())),
            (
                "StageName".into(),
                Avro::Union(1, Box::new(Avro::String("Closed Won".into()))),
            ),
            (
                "CloseDate".into(),
                Avro::Union(1, Box::new(Avro::Date(20_802))),
            ),
        ]);
        let r = source_record("salesforce.cdc.Opportunity", Some("006A"), to_json(value)).unwrap();
        assert_eq!(
            (
                r.source.as_str(),
                r.id.as_str(),
                r.event,
                r.version.as_str()
            ),
            (
                "salesforce.Opportunity",
                "006A",
                EventType::Update,
                "00000000000000ff"
            )
        );
        assert_eq!(r.changed, ["StageName", "BillingAddress.City"]);
        assert_eq!(r.fields["CloseDate"], json!("2026-12-15"));
        assert!(r.changed("BillingAddress"));
        assert_eq!(r.commit_time.timestamp_millis(), 1_795_780_800_000);
    }
}
