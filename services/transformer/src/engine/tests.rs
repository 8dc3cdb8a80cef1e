//! Golden tests: record in → commands out, one per mapping feature, on the demo mapping
//! (`config/mapping.yaml`) and small mappings written here.

use chrono::{DateTime, Utc};
use serde_json::{Value, json};
use sfjira_core::errors::ErrorCode;

use super::*;
use crate::command::{CommandKind, DeliveryMode};
use crate::mapping::{Mapping, Owner};

fn demo() -> Mapping {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../config/mapping.yaml");
    Mapping::load(&path).unwrap_or_else(|e| panic!("{e}"))
}

fn t(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
}

fn record(source: &str, event: EventType, fields: Value) -> SourceRecord {
    SourceRecord {
        source: source.into(),
        id: fields
            .get("Id")
            .and_then(Value::as_str)
            .unwrap_or("10001")
            .into(),
        key: None,
        event,
        version: "replay-1".into(),
        commit_time: t("2026-11-27T10:00:00Z"),
        changed: Vec::new(),
        nulled: Vec::new(),
        actor: Some("0055g00000HumanAAA".into()),
        change_origin: Some("com/salesforce/api/soap/62.0;client=SfdcInternalAPI/".into()),
        history_marker: None,
        fields: fields.as_object().unwrap().clone(),
    }
}

fn won_opportunity() -> SourceRecord {
    let mut r = record(
        "salesforce.Opportunity",
        EventType::Update,
        json!({
            "Id": "0065g00000XyZabAAB", "Name": "Acme — 500 seats", "StageName": "Closed Won",
            "Amount": 250000.0, "CloseDate": "2026-12-15", "AccountId": "0015g00000AcmeAAA",
            "Description": "Rollout in two waves.\n\nWave 1: EMEA"
        }),
    );
    r.changed = vec!["StageName".into()];
    r
}

fn commands(m: &Mapping, r: &SourceRecord) -> Vec<Command> {
    match m.apply(r) {
        RecordOutcome::Flows(outcomes) => outcomes
            .into_iter()
            .filter_map(|o| match o {
                Outcome::Command(c) => Some(*c),
                Outcome::Failed { error, .. } => panic!("unexpected failure: {error}"),
                Outcome::Skipped { .. } => None,
            })
            .collect(),
        other => panic!("expected flows, got {other:?}"),
    }
}

fn only_failure(m: &Mapping, r: &SourceRecord) -> sfjira_core::StageError {
    match m.apply(r) {
        RecordOutcome::Flows(mut outcomes) => match outcomes.remove(0) {
            Outcome::Failed { error, .. } => error,
            other => panic!("expected a failure, got {other:?}"),
        },
        other => panic!("expected flows, got {other:?}"),
    }
}

#[test]
fn a_won_opportunity_becomes_a_story_under_its_accounts_epic() {
    let cmds = commands(&demo(), &won_opportunity());
    assert_eq!(cmds.len(), 1);
    let c = &cmds[0];
    assert_eq!(c.flow, "won-opportunity-to-story");
    assert_eq!(c.kind, CommandKind::Upsert);
    assert_eq!(
        c.target.external_ref,
        "salesforce:Opportunity:0065g00000XyZabAAB"
    );
    assert_eq!(c.target.project.as_deref(), Some("PROJ"));
    assert_eq!(c.target.issue_type.as_deref(), Some("Story"));
    assert_eq!(
        c.target.parent_ref.as_deref(),
        Some("salesforce:Account:0015g00000AcmeAAA")
    );
    assert_eq!(c.fields["summary"].value, json!("Acme — 500 seats"));
    assert_eq!(c.fields["duedate"].value, json!("2026-12-15"));
    assert_eq!(c.fields["Story Points"].value, json!(5.0));
    assert_eq!(c.fields["Customer Tier"].value, json!({"value": "Silver"}));
    assert_eq!(
        c.fields["description"].value["content"]
            .as_array()
            .unwrap()
            .len(),
        2,
        "two ADF paragraphs"
    );
    // Only StageName changed: the other fields ride along for a create, marked unchanged.
    assert!(!c.fields["summary"].changed);
    let status = c.transition_to.as_ref().unwrap();
    assert_eq!(
        (status.value.clone(), status.changed, status.owner),
        (json!("To Do"), true, Owner::Both)
    );
    assert_eq!(c.source.commit_time, t("2026-11-27T10:00:00Z"));
    assert_eq!(c.delivery, DeliveryMode::Realtime);
}

#[test]
fn command_ids_are_stable_and_differ_per_version() {
    let m = demo();
    let a = commands(&m, &won_opportunity()).remove(0).command_id;
    assert_eq!(
        a,
        commands(&m, &won_opportunity()).remove(0).command_id,
        "a replay gives the same id"
    );
    let mut next = won_opportunity();
    next.version = "replay-2".into();
    assert_ne!(a, commands(&m, &next).remove(0).command_id);
    assert_eq!(a.len(), 32);
}

/// The sinks recognise a replayed command by its id, so the id of a given source version must
/// not change between releases either: the first 16 bytes of SHA-256 over the parts, each
/// followed by a NUL, in lower-case hex (computed independently, with Python's hashlib).
#[test]
fn a_command_id_is_the_same_in_every_release() {
    assert_eq!(
        super::command_id(
            "opportunity-to-story",
            "salesforce:Opportunity",
            "0065g00000DealAAA",
            "replay-1"
        ),
        "12e39eccd7d678d161f8076d6609c58b"
    );
}

#[test]
fn triggers_and_change_conditions_skip_what_does_not_qualify() {
    let m = demo();
    let mut small = won_opportunity();
    small.fields.insert("Amount".into(), json!(5000.0));
    assert!(
        matches!(m.apply(&small), RecordOutcome::Flows(o) if matches!(o[0], Outcome::Skipped { reason: SkipReason::ConditionFalse, .. }))
    );
    let mut other_field = won_opportunity();
    other_field.changed = vec!["NextStep".into()];
    assert!(
        matches!(m.apply(&other_field), RecordOutcome::Flows(o) if matches!(o[0], Outcome::Skipped { reason: SkipReason::Unchanged, .. }))
    );
    let lead = record("salesforce.Lead", EventType::Create, json!({"Id": "00Q1"}));
    assert!(matches!(m.apply(&lead), RecordOutcome::Unmapped));
}

#[test]
fn our_own_writes_coming_back_are_echoes() {
    let m = demo();
    let mut sf = won_opportunity();
    sf.change_origin = Some("com/salesforce/api/rest/62.0;client=sfjira".into());
    assert!(matches!(m.apply(&sf), RecordOutcome::Echo));
    let mut jira = record(
        "jira.issue",
        EventType::Update,
        json!({"status": "Done", "Salesforce ID": "006A"}),
    );
    jira.actor = Some("712020:5f0c1a2b-0000-4000-8000-0000000000a1".into());
    assert!(matches!(m.apply(&jira), RecordOutcome::Echo));
    jira.actor = Some("5b10a2844c20165700ede21g".into());
    jira.history_marker = Some("sfjira".into());
    assert!(matches!(m.apply(&jira), RecordOutcome::Echo));
    // A human's change is not an echo, even through the API with another client id.
    jira.history_marker = None;
    jira.changed = vec!["status".into()];
    assert_eq!(commands(&m, &jira).len(), 1);
}

#[test]
fn jira_status_goes_back_through_a_value_table_in_batches() {
    let mut r = record(
        "jira.issue",
        EventType::Update,
        json!({"status": "In Review", "Salesforce ID": "0065g00000XyZabAAB"}),
    );
    r.key = Some("PROJ-7".into());
    r.changed = vec!["status".into()];
    let c = commands(&demo(), &r).remove(0);
    assert_eq!(c.target.external_ref, "jira:PROJ-7");
    assert_eq!(c.target.external_id_field.as_deref(), Some("Jira_Key__c"));
    assert_eq!(c.target.external_id.as_deref(), Some("PROJ-7"));
    assert!(
        c.target.update_only,
        "status goes back onto the linked opportunity only"
    );
    assert_eq!(c.fields["Delivery_Status__c"].value, json!("In Progress"));
    assert_eq!(
        c.fields["Jira_Updated__c"].value,
        json!("2026-11-27T10:00:00.000Z")
    );
    assert!(
        c.fields["Jira_Updated__c"].changed,
        "an expression over the event is new with every change: the sink writes it on update"
    );
    assert_eq!(c.delivery, DeliveryMode::Batched { interval_ms: 5_000 });
    // A status the table does not know falls back to the default.
    r.fields.insert("status".into(), json!("Blocked"));
    assert_eq!(
        commands(&demo(), &r).remove(0).fields["Delivery_Status__c"].value,
        json!("In Progress")
    );
}

#[test]
fn comments_and_tasks_cross_over() {
    let m = demo();
    let mut task = record(
        "salesforce.Task",
        EventType::Create,
        json!({"Id": "00T1", "WhatId": "0065g00000XyZabAAB", "Subject": "Call", "Description": "Customer wants SSO"}),
    );
    task.changed = vec![];
    let c = commands(&m, &task).remove(0);
    assert_eq!(c.kind, CommandKind::Comment);
    assert_eq!(
        c.target.attach_to.as_deref(),
        Some("salesforce:Opportunity:0065g00000XyZabAAB")
    );
    assert_eq!(c.fields["body"].value["type"], json!("doc"));
    let comment = record(
        "jira.comment",
        EventType::Create,
        json!({"issue_key": "PROJ-7", "comment_id": "10001", "body_text": "Deployed"}),
    );
    let c = commands(&m, &comment).remove(0);
    assert_eq!(c.target.entity, "Task");
    assert_eq!(c.target.external_ref, "jira:comment:10001");
    assert_eq!(c.target.external_id.as_deref(), Some("comment:10001"));
    assert_eq!(
        c.target.attach_to.as_deref(),
        Some("jira:PROJ-7"),
        "the task goes onto the record linked to the issue"
    );
    assert_eq!(c.fields["Subject"].value, json!("Jira comment on PROJ-7"));
    assert_eq!(c.fields["Status"].value, json!("Completed"));
}

#[test]
fn deletes_follow_the_flow_rule() {
    let m = demo();
    let mut gone = won_opportunity();
    gone.event = EventType::Delete;
    let c = commands(&m, &gone).remove(0);
    assert_eq!(c.kind, CommandKind::Close);
    assert!(c.fields.is_empty());
    let task = record(
        "salesforce.Task",
        EventType::Delete,
        json!({"Id": "00T1", "WhatId": "006X"}),
    );
    assert!(
        matches!(m.apply(&task), RecordOutcome::Flows(o) if matches!(o[0], Outcome::Skipped { reason: SkipReason::DeleteIgnored, .. }))
    );
}

#[test]
fn a_nulled_field_clears_the_target_and_a_merely_absent_one_does_not() {
    let mut r = won_opportunity();
    r.fields.insert("Description".into(), Value::Null);
    r.changed = vec!["StageName".into()];
    let c = commands(&demo(), &r).remove(0);
    assert!(
        !c.fields.contains_key("description"),
        "null but untouched: left alone"
    );
    r.nulled = vec!["Description".into()];
    let c = commands(&demo(), &r).remove(0);
    assert_eq!(c.fields["description"].value, Value::Null);
    assert!(c.fields["description"].changed);
}

const SMALL: &str = r#"
version: 1
flows:
  - name: f
    from: salesforce.Opportunity
    to: jira.issue
    target: { project: P, issue_type: Story }
    fields:
      summary: { from: Name, required: true }
      priority: { from: Rating, table: { Hot: High, Warm: Medium } }
      "Story Points": { from: Amount, type: integer }
      customfield_1: { expr: 'record.Amount / record.Seats' }
      missing: { from: NoSuchField__c }
"#;

#[test]
fn bad_records_fail_with_catalogued_codes() {
    let m = Mapping::parse(SMALL, "small.yaml").unwrap();
    let good = json!({"Id": "006A", "Name": "Deal", "Rating": "Hot", "Amount": 10, "Seats": 2, "NoSuchField__c": "x"});
    let with = |patch: Value| {
        let mut f = good.clone();
        for (k, v) in patch.as_object().unwrap() {
            if v.is_null() && k.starts_with('-') {
                f.as_object_mut().unwrap().remove(&k[1..]);
            } else {
                f[k] = v.clone();
            }
        }
        record("salesforce.Opportunity", EventType::Create, f)
    };
    assert_eq!(commands(&m, &with(json!({}))).len(), 1);
    let cases = [
        (
            json!({"Rating": "Cold"}),
            ErrorCode::ValueNotInTable,
            "'Cold' is not in the value table",
        ),
        (
            json!({"Name": ""}),
            ErrorCode::RequiredFieldEmpty,
            "summary: required",
        ),
        (
            json!({"Amount": 10.5}),
            ErrorCode::ValueNotConvertible,
            "not a whole number",
        ),
        (
            json!({"Seats": "two"}),
            ErrorCode::MappingExpressionFailed,
            "record.Amount / record.Seats",
        ),
        (
            json!({"-NoSuchField__c": null}),
            ErrorCode::SourceFieldMissing,
            "no field NoSuchField__c",
        ),
    ];
    for (patch, code, text) in cases {
        let err = only_failure(&m, &with(patch.clone()));
        assert_eq!(err.code, code, "{patch}: {err}");
        assert!(
            err.message.contains(text) && err.message.contains("flow f"),
            "{patch}: {}",
            err.message
        );
    }
}

#[test]
fn changed_tells_what_this_change_touched() {
    let yaml = r#"
version: 1
flows:
  - name: f
    from: salesforce.Account
    to: jira.issue
    when: 'changed("BillingAddress") && !changed( "Name" )'
    target: { project: P, issue_type: Epic }
    fields:
      summary: { from: Name }
      "City": { expr: 'record.BillingAddress.City' }
"#;
    let m = Mapping::parse(yaml, "m.yaml").unwrap();
    let mut r = record(
        "salesforce.Account",
        EventType::Update,
        json!({"Id": "001A", "Name": "Acme", "BillingAddress": {"City": "Lyon"}}),
    );
    r.changed = vec!["BillingAddress.City".into()];
    let c = commands(&m, &r).remove(0);
    assert!(
        c.fields["City"].changed && !c.fields["summary"].changed,
        "a compound part counts for its compound"
    );
    r.changed.push("Name".into());
    assert!(
        matches!(m.apply(&r), RecordOutcome::Flows(o) if matches!(o[0], Outcome::Skipped { reason: SkipReason::ConditionFalse, .. }))
    );
    let bad = yaml.replace(r#"changed("BillingAddress")"#, "changed(record.Name)");
    let err = Mapping::parse(&bad, "m.yaml").unwrap_err().to_string();
    assert!(
        err.contains("m.yaml:7:11") && err.contains("changed() takes one field name in quotes"),
        "{err}"
    );
}

#[test]
fn an_update_that_makes_the_condition_true_goes_out_even_with_no_mapped_field_changed() {
    let mut r = record(
        "salesforce.Account",
        EventType::Update,
        json!({"Id": "0015g00000AcmeAAA", "Name": "Globex", "Type": "Customer"}),
    );
    r.changed = vec!["Type".into()];
    let c = commands(&demo(), &r).remove(0);
    assert_eq!(
        c.target.external_ref,
        "salesforce:Account:0015g00000AcmeAAA"
    );
    assert!(
        c.fields.values().all(|f| !f.changed),
        "nothing mapped changed: a linked epic gets no write, a missing one is created whole"
    );
    assert_eq!(c.fields["summary"].value, json!("Globex"));
    // A change the condition does not read, with nothing mapped changed: nothing to do.
    r.changed = vec!["Phone".into()];
    assert!(commands(&demo(), &r).is_empty());
}

#[test]
fn flows_of_one_record_each_see_the_fields_they_read() {
    // Two flows on one source read different fields: the record's scope holds what each reads.
    let yaml = r#"
version: 1
flows:
  - name: epic
    from: salesforce.Account
    to: jira.issue
    when: 'record.Type == "Customer"'
    target: { project: P, issue_type: Epic }
    fields:
      summary: { expr: 'record.Name + " (" + record.Type + ")"' }
  - name: region
    from: salesforce.Account
    to: jira.issue
    when: 'record.Region == "EMEA"'
    target: { project: R, issue_type: Task }
    fields:
      summary: { expr: '"EMEA: " + record.Phone' }
"#;
    let m = Mapping::parse(yaml, "m.yaml").unwrap();
    let r = record(
        "salesforce.Account",
        EventType::Create,
        json!({"Id": "001A", "Name": "Acme", "Type": "Customer", "Region": "EMEA", "Phone": "+33 1"}),
    );
    let c = commands(&m, &r);
    let summaries: Vec<_> = c
        .iter()
        .map(|c| c.fields["summary"].value.clone())
        .collect();
    assert_eq!(summaries, [json!("Acme (Customer)"), json!("EMEA: +33 1")]);
}
