use super::*;
use serde_json::{Map, json};
use sfjira_transformer::engine::EventType;

const MAPPING: &str = r#"version: 1
flows:
  - name: opp-to-story
    from: salesforce.Opportunity
    to: jira.issue
    when: 'record.StageName == "Closed Won"'
    target: { project: PROJ, issue_type: Story, parent: '"salesforce:Account:" + record.AccountId' }
    fields:
      summary: { from: Name, required: true }
      description: { from: Description, type: adf, owner: both }
      "Story Points": { expr: 'record.Amount / 50000.0', type: number }
      "Customer Tier": { expr: 'record.Amount >= 1000000.0 ? "Gold" : "Silver"', type: select }
    status: { from: StageName, table: { "Closed Won": "To Do" } }
  - name: story-to-opp
    from: jira.issue
    to: salesforce.Opportunity
    target: { external_id_field: Jira_Key__c, update_only: true }
    fields:
      Delivery_Status__c: { from: status, table: { "To Do": "Not Started", "Done": "Delivered" }, default: "In Progress" }
      Jira_Updated__c: { expr: 'event.commit_time', type: datetime }
"#;

fn at(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
}

fn side(source: &str, id: &str, key: Option<&str>, fields: Value, modified: &str) -> Side {
    let fields: Map<String, Value> = fields.as_object().unwrap().clone();
    Side {
        record: SourceRecord {
            source: source.into(),
            id: id.into(),
            key: key.map(String::from),
            event: EventType::Create,
            version: "v".into(),
            commit_time: at(modified),
            changed: vec![],
            nulled: vec![],
            actor: None,
            change_origin: None,
            history_marker: None,
            fields,
        },
        modified: at(modified),
    }
}

fn opportunity(amount: f64, description: &str, delivery: &str, modified: &str) -> Side {
    side(
        "salesforce.Opportunity",
        "006A",
        None,
        json!({"Id": "006A", "Name": "Big deal", "StageName": "Closed Won", "Amount": amount,
               "AccountId": "001A", "Description": description, "Delivery_Status__c": delivery,
               "Jira_Updated__c": null}),
        modified,
    )
}

fn story(points: f64, tier: &str, description: &str, status: &str, modified: &str) -> Side {
    side(
        "jira.issue",
        "10007",
        Some("PROJ-7"),
        json!({"key": "PROJ-7", "summary": "Big deal", "status": status,
               "description": description, "Story Points": points,
               "Customer Tier": {"self": "http://x", "id": "1", "value": tier}}),
        modified,
    )
}

fn pair() -> Pair {
    Pair {
        entity: "Opportunity".into(),
        id: "006A".into(),
        key: "PROJ-7".into(),
    }
}

fn run(sf: &Side, jira: &Side, include_status: bool) -> PairResult {
    let m = Mapping::parse(MAPPING, "m.yaml").unwrap();
    compare(
        &m,
        &pair(),
        Some(sf),
        Some(jira),
        include_status,
        at("2026-11-27T12:00:00Z"),
    )
}

#[test]
fn records_in_step_have_no_drift() {
    let sf = opportunity(150000.0, "Needs SSO", "Not Started", "2026-11-27T10:00:00Z");
    let jira = story(3.0, "Silver", "Needs SSO", "To Do", "2026-11-27T10:00:05Z");
    let r = run(&sf, &jira, true);
    assert!(r.drift.is_empty(), "{:?}", r.drift);
    assert!(r.repairs.is_empty() && r.problems.is_empty());
}

#[test]
fn drift_is_reported_and_repaired_from_the_owner() {
    let sf = opportunity(150000.0, "Needs SSO", "Delivered", "2026-11-27T10:00:00Z");
    // Story Points edited by hand in Jira; status moved on (not compared by default).
    let jira = story(
        5.0,
        "Silver",
        "Needs SSO",
        "In Progress",
        "2026-11-27T11:00:00Z",
    );
    let r = run(&sf, &jira, false);
    let fields: Vec<(&str, &str, &str, &str)> = r
        .drift
        .iter()
        .map(|d| {
            (
                d.field.as_str(),
                d.salesforce.as_str(),
                d.jira_value.as_str(),
                d.repair.as_str(),
            )
        })
        .collect();
    assert_eq!(
        fields,
        [
            ("Story Points", "3.0", "5.0", "write jira"),
            (
                "Delivery_Status__c",
                "Delivered",
                "In Progress",
                "write salesforce"
            ),
        ]
    );
    assert_eq!(r.drift[0].owner, Owner::Salesforce);
    assert_eq!(r.drift[0].record, "salesforce:Opportunity:006A");
    assert_eq!(r.drift[0].jira, "jira:PROJ-7");
    assert_eq!(r.repairs.len(), 2);
    let to_jira = &r.repairs[0];
    assert!(to_jira.command_id.starts_with("reconcile:"));
    assert_eq!(to_jira.target.system, System::Jira);
    assert_eq!(to_jira.target.external_ref, "salesforce:Opportunity:006A");
    assert!(to_jira.target.update_only);
    assert_eq!(to_jira.fields.keys().collect::<Vec<_>>(), ["Story Points"]);
    assert_eq!(to_jira.fields["Story Points"].value, json!(3.0));
    assert!(to_jira.fields["Story Points"].changed);
    assert!(to_jira.transition_to.is_none());
    let to_sf = &r.repairs[1];
    assert_eq!(to_sf.target.external_ref, "jira:PROJ-7");
    assert_eq!(
        to_sf.fields["Delivery_Status__c"].value,
        json!("In Progress")
    );
    assert!(
        !to_sf.fields.contains_key("Jira_Updated__c"),
        "event fields are not compared"
    );
    // The same drift gives the same id (a second --repair is deduplicated by the sinks).
    assert_eq!(
        run(&sf, &jira, false).repairs[0].command_id,
        to_jira.command_id
    );

    let with_status = run(&sf, &jira, true);
    let status = with_status
        .drift
        .iter()
        .find(|d| d.field == "status")
        .unwrap();
    assert_eq!(
        (status.salesforce.as_str(), status.jira_value.as_str()),
        ("To Do", "In Progress")
    );
    assert_eq!(
        with_status.repairs[0].transition_to.as_ref().unwrap().value,
        json!("To Do")
    );
}

#[test]
fn both_owned_fields_follow_the_later_edit() {
    let jira = story(
        3.0,
        "Silver",
        "Edited in Jira",
        "To Do",
        "2026-11-27T11:00:00Z",
    );
    let older_sf = opportunity(150000.0, "Needs SSO", "Not Started", "2026-11-27T10:00:00Z");
    let r = run(&older_sf, &jira, false);
    assert_eq!(r.drift.len(), 1);
    assert_eq!(r.drift[0].owner, Owner::Both);
    assert!(
        r.drift[0]
            .repair
            .starts_with("skip: owned by both and jira was modified later"),
        "{}",
        r.drift[0].repair
    );
    assert!(r.repairs.is_empty());

    let newer_sf = opportunity(150000.0, "Needs SSO", "Not Started", "2026-11-27T11:30:00Z");
    let r = run(&newer_sf, &jira, false);
    assert_eq!(r.drift[0].repair, "write jira");
    let f = &r.repairs[0].fields["description"];
    assert_eq!(
        (f.owner, f.source_time),
        (Owner::Both, at("2026-11-27T11:30:00Z"))
    );
}

#[test]
fn a_missing_side_is_drift_without_repair() {
    let m = Mapping::parse(MAPPING, "m.yaml").unwrap();
    let sf = opportunity(150000.0, "x", "Not Started", "2026-11-27T10:00:00Z");
    let r = compare(
        &m,
        &pair(),
        Some(&sf),
        None,
        false,
        at("2026-11-27T12:00:00Z"),
    );
    assert_eq!(r.drift.len(), 1);
    assert_eq!(
        (r.drift[0].field.as_str(), r.drift[0].jira_value.as_str()),
        ("(record)", "(missing)")
    );
    assert!(r.repairs.is_empty());
}

#[test]
fn fields_read_covers_from_and_expressions() {
    let m = Mapping::parse(MAPPING, "m.yaml").unwrap();
    assert_eq!(
        fields_read(&m.flows[0]),
        ["AccountId", "Amount", "Description", "Name", "StageName"]
    );
    assert_eq!(
        record_refs(r#"'x' in record && record["Salesforce ID"] != null"#),
        ["Salesforce ID"]
    );
}
