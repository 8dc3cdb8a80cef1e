use super::*;
use serde_json::json;

fn entry(id: &str, target: &str, op: &str, before: Value, after: Value, at: i64) -> AuditEntry {
    let map = |v: Value| -> BTreeMap<String, Value> {
        v.as_object()
            .map(|o| o.clone().into_iter().collect())
            .unwrap_or_default()
    };
    AuditEntry {
        command_id: id.into(),
        flow: "won-opportunity-to-story".into(),
        sink: if target.starts_with("jira") {
            "jira-sink".into()
        } else {
            "salesforce-sink".into()
        },
        target: target.into(),
        external_ref: if target.starts_with("jira") {
            "salesforce:Opportunity:006A".into()
        } else {
            "jira:PROJ-7".into()
        },
        operation: op.into(),
        before: map(before),
        after: map(after),
        result: AuditResult::Applied,
        detail: None,
        started_ms: at - 5,
        finished_ms: at,
        source_time_ms: at - 100,
    }
}

fn now() -> DateTime<Utc> {
    DateTime::from_timestamp_millis(10_000_000).unwrap()
}

fn inverse(item: &PlanItem) -> &Command {
    match &item.action {
        Action::Invert { command, .. } => command,
        other => panic!("{} was not inverted: {other:?}", item.entry.command_id),
    }
}

#[test]
fn an_update_is_undone_by_restoring_before_values_and_status() {
    let e = entry(
        "c1",
        "jira:PROJ-7",
        "update",
        json!({"summary": "old", "duedate": null, "status": "To Do"}),
        json!({"summary": "new", "duedate": "2026-12-01", "status": "Done"}),
        1000,
    );
    let plan = plan(&[e], &Selection::default(), now());
    let c = inverse(&plan[0]);
    assert_eq!(c.command_id, "rollback:c1");
    assert_eq!(c.kind, CommandKind::Upsert);
    assert_eq!(c.target.system, System::Jira);
    assert_eq!(c.target.external_ref, "salesforce:Opportunity:006A");
    assert!(c.target.update_only);
    assert_eq!(c.fields["summary"].value, json!("old"));
    assert_eq!(c.fields["duedate"].value, Value::Null);
    assert!(
        c.fields
            .values()
            .all(|f| f.changed && f.owner == Owner::Both)
    );
    assert_eq!(c.fields["summary"].source_time, now());
    assert_eq!(c.transition_to.as_ref().unwrap().value, json!("To Do"));
    assert!(!c.fields.contains_key("status"));
    assert_eq!(
        (
            c.source.system,
            c.source.entity.as_str(),
            c.source.id.as_str()
        ),
        (System::Salesforce, "Opportunity", "006A")
    );
}

#[test]
fn creates_are_deleted_and_deletes_cannot_be_undone() {
    let entries = [
        entry(
            "c1",
            "jira:PROJ-8",
            "create",
            json!({}),
            json!({"summary": "x"}),
            1000,
        ),
        entry(
            "c2",
            "salesforce:Opportunity:006B",
            "delete",
            json!({}),
            json!({}),
            2000,
        ),
        entry(
            "c3",
            "jira:PROJ-8",
            "comment",
            json!({}),
            json!({"body": "hi"}),
            3000,
        ),
    ];
    let plan = plan(&entries, &Selection::default(), now());
    let ids: Vec<&str> = plan.iter().map(|p| p.entry.command_id.as_str()).collect();
    assert_eq!(ids, ["c3", "c2", "c1"], "newest first");
    // The comment on an issue created in the same window goes with the issue.
    assert!(matches!(&plan[0].action, Action::Covered { by } if by == "c1"));
    assert!(matches!(&plan[1].action, Action::Cannot(why) if why.contains("Recycle Bin")));
    let c = inverse(&plan[2]);
    assert_eq!(c.kind, CommandKind::Delete);
    assert!(c.fields.is_empty());
}

/// An entry of the jira-sink for a comment or worklog (`reference`) on `issue`.
fn child(
    id: &str,
    issue: &str,
    reference: &str,
    op: &str,
    before: Value,
    after: Value,
    at: i64,
) -> AuditEntry {
    let mut e = entry(id, issue, op, before, after, at);
    e.external_ref = reference.into();
    e
}

#[test]
fn an_added_comment_is_deleted_and_an_edited_one_is_restored() {
    let entries = [
        child(
            "c1",
            "jira:PROJ-7",
            "salesforce:Task:00T1",
            "comment",
            json!({"id": null}),
            json!({"body": "hi", "id": "10042"}),
            1000,
        ),
        entry(
            "c2",
            "jira:PROJ-9",
            "comment",
            json!({"body": "a"}),
            json!({"body": "b"}),
            2000,
        ),
        child(
            "c3",
            "jira:PROJ-7",
            "salesforce:Event:00U1",
            "worklog",
            json!({"id": null}),
            json!({"timeSpentSeconds": 60, "id": "20001"}),
            3000,
        ),
    ];
    let plan = plan(&entries, &Selection::default(), now());
    let ids: Vec<&str> = plan.iter().map(|p| p.entry.command_id.as_str()).collect();
    assert_eq!(ids, ["c3", "c2", "c1"]);
    let worklog = inverse(&plan[0]);
    assert_eq!(worklog.kind, CommandKind::Delete);
    assert_eq!(worklog.target.entity, "worklog");
    assert_eq!(worklog.target.external_ref, "salesforce:Event:00U1");
    let edit = inverse(&plan[1]);
    assert_eq!(edit.kind, CommandKind::Comment);
    assert_eq!(edit.target.entity, "comment");
    assert_eq!(edit.target.attach_to.as_deref(), Some("jira:PROJ-9"));
    assert_eq!(edit.fields["body"].value, json!("a"));
    let delete = inverse(&plan[2]);
    assert_eq!(delete.command_id, "rollback:c1");
    assert_eq!(delete.kind, CommandKind::Delete);
    assert_eq!(delete.target.system, System::Jira);
    assert_eq!(delete.target.entity, "comment");
    // The comment's own reference (its link holds the comment id), on the issue it is on.
    assert_eq!(delete.target.external_ref, "salesforce:Task:00T1");
    assert_eq!(delete.target.attach_to.as_deref(), Some("jira:PROJ-7"));
    assert!(delete.target.update_only);
    assert!(delete.fields.is_empty() && delete.transition_to.is_none());
    assert_eq!(delete.source.version, "rollback:c1");
}

#[test]
fn a_comment_added_then_edited_is_deleted_once() {
    let add = child(
        "c1",
        "jira:PROJ-7",
        "salesforce:Task:00T1",
        "comment",
        json!({"id": null}),
        json!({"body": "hi", "id": "10042"}),
        1000,
    );
    let edit = child(
        "c2",
        "jira:PROJ-7",
        "salesforce:Task:00T1",
        "comment",
        json!({"id": "10042"}),
        json!({"body": "hi again", "id": "10042"}),
        2000,
    );
    // Another comment on the issue, added later: not the same record.
    let other = child(
        "c3",
        "jira:PROJ-7",
        "salesforce:Task:00T2",
        "comment",
        json!({"id": null}),
        json!({"body": "other", "id": "10043"}),
        3000,
    );
    let entries = [add, edit, other];
    let p = plan(&entries, &Selection::default(), now());
    let ids: Vec<&str> = p.iter().map(|i| i.entry.command_id.as_str()).collect();
    assert_eq!(ids, ["c3", "c2", "c1"]);
    assert_eq!(inverse(&p[0]).target.external_ref, "salesforce:Task:00T2");
    assert_eq!(p[1].action, Action::Covered { by: "c1".into() });
    assert_eq!(inverse(&p[2]).kind, CommandKind::Delete);

    // The add alone, with its later edit not rolled back: deleting would undo the edit too.
    let mut sel = Selection {
        command_ids: vec!["c1".into()],
        ..Selection::default()
    };
    let p = plan(&entries, &sel, now());
    assert_eq!(p.len(), 1);
    assert!(
        matches!(&p[0].action, Action::Cannot(why) if why.contains("changed again later by c2")),
        "{:?}",
        p[0].action
    );
    sel.force = true;
    assert_eq!(
        inverse(&plan(&entries, &sel, now())[0]).kind,
        CommandKind::Delete
    );
}

#[test]
fn comments_the_audit_cannot_place_or_restore_are_reported() {
    let entries = [
        // Audited before the sink recorded adds: added or edited, nobody knows.
        child(
            "c1",
            "jira:PROJ-7",
            "salesforce:Task:00T1",
            "comment",
            json!({}),
            json!({"body": "hi"}),
            1000,
        ),
        // An edit the sink audited without the earlier body.
        child(
            "c2",
            "jira:PROJ-7",
            "salesforce:Task:00T2",
            "comment",
            json!({"id": "10050"}),
            json!({"body": "b", "id": "10050"}),
            2000,
        ),
        child(
            "c3",
            "jira:PROJ-7",
            "salesforce:Task:00T3",
            "delete_comment",
            json!({"id": "10051"}),
            json!({"id": null}),
            3000,
        ),
    ];
    let p = plan(&entries, &Selection::default(), now());
    let why = |i: usize| match &p[i].action {
        Action::Cannot(why) => why.clone(),
        other => panic!("{other:?}"),
    };
    assert!(why(0).contains("cannot be restored"), "{}", why(0));
    assert!(why(1).contains("no field it wrote"), "{}", why(1));
    assert!(why(2).contains("by hand on jira:PROJ-7"), "{}", why(2));
    assert!(why(2).contains("salesforce:Task:00T1"), "{}", why(2));
}

#[test]
fn a_close_is_undone_by_moving_back() {
    for op in ["close", "delete"] {
        let e = entry(
            "c1",
            "jira:PROJ-7",
            op,
            json!({"status": "In Progress"}),
            json!({"status": "Done"}),
            1000,
        );
        let p = plan(&[e], &Selection::default(), now());
        let c = inverse(&p[0]);
        assert_eq!(c.kind, CommandKind::Upsert);
        assert!(c.fields.is_empty());
        assert_eq!(
            c.transition_to.as_ref().unwrap().value,
            json!("In Progress")
        );
    }
}

#[test]
fn identity_fields_without_a_before_value_are_left_alone() {
    let e = entry(
        "c1",
        "salesforce:Opportunity:006A",
        "update",
        json!({"Delivery_Status__c": "Not Started"}),
        json!({"Delivery_Status__c": "Delivered", "Jira_Key__c": "PROJ-7"}),
        1000,
    );
    let p = plan(&[e], &Selection::default(), now());
    match &p[0].action {
        Action::Invert {
            command,
            unrestored,
        } => {
            assert_eq!(
                command.fields.keys().collect::<Vec<_>>(),
                ["Delivery_Status__c"]
            );
            assert_eq!(unrestored, &["Jira_Key__c".to_string()]);
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn the_oldest_write_of_a_field_restores_it() {
    let entries = [
        entry(
            "c1",
            "jira:PROJ-7",
            "update",
            json!({"summary": "a"}),
            json!({"summary": "b"}),
            1000,
        ),
        entry(
            "c2",
            "jira:PROJ-7",
            "update",
            json!({"summary": "b", "duedate": "d1"}),
            json!({"summary": "c", "duedate": "d2"}),
            2000,
        ),
    ];
    let plan = plan(&entries, &Selection::default(), now());
    let newer = inverse(&plan[0]);
    assert_eq!(newer.fields.keys().collect::<Vec<_>>(), ["duedate"]);
    let older = inverse(&plan[1]);
    assert_eq!(older.fields["summary"].value, json!("a"));
}

#[test]
fn a_later_unselected_write_is_a_conflict_unless_forced() {
    let entries = [
        entry(
            "c1",
            "jira:PROJ-7",
            "update",
            json!({"summary": "a"}),
            json!({"summary": "b"}),
            1000,
        ),
        entry(
            "c2",
            "jira:PROJ-7",
            "update",
            json!({"summary": "b"}),
            json!({"summary": "c"}),
            2000,
        ),
    ];
    let mut sel = Selection {
        command_ids: vec!["c1".into()],
        ..Selection::default()
    };
    let p = plan(&entries, &sel, now());
    assert_eq!(p.len(), 1);
    assert!(matches!(&p[0].action, Action::Cannot(why) if why.contains("c2")));
    sel.force = true;
    let p = plan(&entries, &sel, now());
    assert_eq!(inverse(&p[0]).fields["summary"].value, json!("a"));
}

#[test]
fn filters_rollbacks_and_done_rollbacks() {
    let mut done = entry(
        "rollback:c1",
        "jira:PROJ-7",
        "update",
        json!({"summary": "b"}),
        json!({"summary": "a"}),
        3000,
    );
    done.command_id = "rollback:c1".into();
    let mut failed = entry(
        "c3",
        "jira:PROJ-7",
        "update",
        json!({}),
        json!({"x": 1}),
        2500,
    );
    failed.result = AuditResult::Failed;
    let entries = [
        entry(
            "c1",
            "jira:PROJ-7",
            "update",
            json!({"summary": "a"}),
            json!({"summary": "b"}),
            1000,
        ),
        entry(
            "c2",
            "salesforce:Opportunity:006A",
            "update",
            json!({"Delivery_Status__c": "Not Started"}),
            json!({"Delivery_Status__c": "Delivered"}),
            2000,
        ),
        failed,
        done,
        entry(
            "old",
            "jira:PROJ-7",
            "update",
            json!({"labels": []}),
            json!({"labels": ["x"]}),
            10,
        ),
    ];
    let sel = Selection {
        since_ms: 500,
        ..Selection::default()
    };
    let p = plan(&entries, &sel, now());
    let ids: Vec<&str> = p.iter().map(|i| i.entry.command_id.as_str()).collect();
    assert_eq!(ids, ["c2", "c1"]);
    assert_eq!(p[1].action, Action::AlreadyRolledBack);
    let sf = inverse(&p[0]);
    assert_eq!(
        (sf.target.system, sf.target.entity.as_str()),
        (System::Salesforce, "Opportunity")
    );
    let jira_only = Selection {
        since_ms: 500,
        target: Some(System::Jira),
        ..Selection::default()
    };
    assert_eq!(plan(&entries, &jira_only, now()).len(), 1);
}

#[test]
fn an_unknown_before_value_cannot_be_restored() {
    let e = entry(
        "c1",
        "jira:PROJ-7",
        "update",
        json!({}),
        json!({"summary": "b"}),
        1000,
    );
    let p = plan(&[e], &Selection::default(), now());
    assert!(matches!(&p[0].action, Action::Cannot(why) if why.contains("no values from before")));
}

#[test]
fn commands_the_sink_applied_as_one_write_are_undone_together() {
    // A create that absorbed the edit queued behind it: one write, audited once per command.
    let create = entry(
        "c1",
        "jira:PROJ-7",
        "create",
        json!({}),
        json!({"summary": "bad"}),
        1000,
    );
    let mut absorbed = create.clone();
    absorbed.command_id = "c2".into();
    absorbed.detail = Some("coalesced into the create by c1".into());
    let entries = [create, absorbed];
    let only_c2 = Selection {
        command_ids: vec!["c2".into()],
        ..Selection::default()
    };
    for sel in [Selection::default(), only_c2] {
        let p = plan(&entries, &sel, now());
        let ids: Vec<&str> = p.iter().map(|i| i.entry.command_id.as_str()).collect();
        assert_eq!(ids.len(), 2, "{ids:?}");
        let lead = p.iter().find(|i| i.entry.command_id == "c1").unwrap();
        assert_eq!(inverse(lead).kind, CommandKind::Delete);
        assert_eq!(inverse(lead).command_id, "rollback:c1");
        let other = p.iter().find(|i| i.entry.command_id == "c2").unwrap();
        assert_eq!(
            other.action,
            Action::SameWrite {
                leader: "c1".into()
            }
        );
    }
}
