use std::collections::HashMap;

use apache_avro::types::Value as Avro;
use serde_json::json;

use super::*;

fn field<'a>(v: &'a Avro, name: &str) -> &'a Avro {
    match v {
        Avro::Record(fields) => {
            &fields
                .iter()
                .find(|(n, _)| n == name)
                .unwrap_or_else(|| panic!("no {name}"))
                .1
        }
        other => panic!("not a record: {other:?}"),
    }
}

fn some_str(v: &Avro) -> Option<&str> {
    match v {
        Avro::Union(_, b) => match b.as_ref() {
            Avro::String(s) => Some(s),
            _ => None,
        },
        Avro::String(s) => Some(s),
        _ => None,
    }
}

fn adf(text: &str) -> Value {
    json!({"type": "doc", "version": 1, "content": [
        {"type": "paragraph", "content": [{"type": "text", "text": text}, {"type": "hardBreak"}, {"type": "text", "text": "line 2"}]},
        {"type": "paragraph", "content": [{"type": "mention", "attrs": {"id": "x", "text": "@Alice"}}]}
    ]})
}

fn issue() -> Value {
    json!({"id": "10001", "key": "PROJ-1", "self": "http://h/rest/api/2/issue/10001", "fields": {
        "summary": "Renamed", "labels": ["a", "b"], "duedate": "2026-12-15",
        "created": "2026-11-27T10:00:00.000+0100", "updated": "2026-11-27T10:05:00.123+0000",
        "project": {"key": "PROJ"}, "issuetype": {"name": "Task"},
        "status": {"name": "In Progress", "statusCategory": {"key": "indeterminate"}},
        "priority": {"name": "High"}, "assignee": {"accountId": "acc-a"}, "reporter": null,
        "parent": {"key": "PROJ-0"}, "resolution": null, "description": adf("Hello"),
        "customfield_10016": 5, "customfield_10050": null
    }})
}

#[test]
fn an_issue_update_becomes_a_valid_jira_issue_event() {
    let changelog = json!({"id": 10124, "items": [
        {"field": "summary", "fieldtype": "jira", "fieldId": "summary", "from": null, "fromString": "Old", "to": null, "toString": "Renamed"},
        {"field": "Story Points", "fieldtype": "custom", "from": 3, "to": "5"}],
        "historyMetadata": {"type": "sfjira-sync"}});
    let names = HashMap::from([("customfield_10016".to_string(), "Story Points".to_string())]);
    let change = ChangeContext {
        event_type: "jira:issue_updated",
        origin: Origin::Webhook,
        webhook_id: Some("wh-1"),
        timestamp: 1_795_773_900_123,
        actor: Some("acc-a".into()),
        changelog: Some(&changelog),
    };
    let e = issue_event(&issue(), &change, &names).unwrap();
    assert!(e.value.validate(Topic::Issues.schema()), "{:#?}", e.value);
    assert_eq!(e.issue_id, "10001");
    assert_eq!(
        e.version,
        Version {
            updated: 1_795_773_900_123,
            changelog: Some(10124)
        }
    );
    assert_eq!(e.kind, Kind::Updated);
    let v = &e.value;
    assert_eq!(field(v, "origin"), &Avro::Enum(0, "WEBHOOK".into()));
    assert_eq!(some_str(field(v, "history_marker")), Some("sfjira-sync"));
    assert_eq!(some_str(field(v, "changelog_id")), Some("10124"));
    let i = field(v, "issue");
    // 10:00 at +01:00 is 09:00 UTC.
    assert_eq!(
        field(i, "created"),
        &Avro::TimestampMillis(1_795_770_000_000)
    );
    assert_eq!(some_str(field(i, "status_category")), Some("indeterminate"));
    assert_eq!(
        some_str(field(i, "description_text")),
        Some("Hello\nline 2\n@Alice")
    );
    assert!(
        some_str(field(i, "description_adf_json"))
            .unwrap()
            .contains("\"doc\"")
    );
    match field(i, "custom_fields") {
        Avro::Map(m) => {
            assert_eq!(m.len(), 1, "null custom fields are left out");
            assert_eq!(
                some_str(field(&m["customfield_10016"], "name")),
                Some("Story Points")
            );
            assert_eq!(
                some_str(field(&m["customfield_10016"], "value_json")),
                Some("5")
            );
        }
        other => panic!("{other:?}"),
    }
    match field(v, "changelog") {
        Avro::Array(items) => {
            assert_eq!(items.len(), 2);
            assert_eq!(some_str(field(&items[1], "from")), Some("3"));
            assert_eq!(some_str(field(&items[0], "to_string")), Some("Renamed"));
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn an_event_without_an_issue_type_is_unusable() {
    let mut i = issue();
    i["fields"].as_object_mut().unwrap().remove("issuetype");
    let change = ChangeContext {
        event_type: "jira:issue_created",
        origin: Origin::Poll,
        webhook_id: None,
        timestamp: 0,
        actor: None,
        changelog: None,
    };
    let err = issue_event(&i, &change, &HashMap::new()).unwrap_err();
    assert!(err.0.contains("issuetype"), "{err}");
}

#[test]
fn comments_and_worklogs_become_valid_events() {
    let comment = json!({"id": "100", "author": {"accountId": "acc-a"}, "updateAuthor": {"accountId": "acc-b"},
        "body": adf("Hi"), "created": "2026-11-27T10:00:00.000+0000", "updated": "2026-11-27T10:01:00.000+0000"});
    let c = comment_event(
        "comment_updated",
        Origin::Poll,
        None,
        1,
        "10001",
        "PROJ-1",
        &comment,
    )
    .unwrap();
    assert!(c.value.validate(Topic::Comments.schema()), "{:#?}", c.value);
    assert_eq!(some_str(field(&c.value, "actor_account_id")), Some("acc-b"));
    assert_eq!(c.entity, Entity::Comment("100".into()));

    let worklog = json!({"id": "200", "issueId": "10001", "author": {"accountId": "acc-a"},
        "comment": "wiki text", "started": "2026-11-27T09:00:00.000+0000", "timeSpentSeconds": 3600,
        "created": "2026-11-27T10:00:00.000+0000", "updated": "2026-11-27T10:00:00.000+0000"});
    let w = worklog_event(
        "worklog_created",
        Origin::Webhook,
        Some("wh"),
        1,
        "PROJ-1",
        &worklog,
    )
    .unwrap();
    assert!(w.value.validate(Topic::Worklogs.schema()), "{:#?}", w.value);
    assert_eq!(some_str(field(&w.value, "comment_text")), Some("wiki text"));
    assert_eq!(w.issue_id, "10001");
    assert_eq!(w.kind, Kind::Created);
}
