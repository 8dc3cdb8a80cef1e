//! The vertical slice: commands from `salesforce.commands` applied as sObject Collections
//! upserts by external id, checked through the org's REST API; audit and links written.

mod support;

use std::collections::BTreeSet;
use std::time::Duration;

use serde_json::json;
use sfjira_core::audit::AuditResult;
use support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_upserts_take_at_most_six_collection_calls() {
    let org = Org::start().await;
    let dep = Deployment::new("sfsink-1000", &org, "").await;
    let commands: Vec<_> = (0..1000)
        .map(|i| {
            let key = format!("K-{i}");
            upsert(
                "Account",
                &format!("jira:{key}"),
                Some(("Jira_Key__c", &key)),
                json!({"Name": format!("Account {i}")}),
            )
        })
        .collect();
    dep.produce(&commands).await;
    let (used_before, _) = org.api_usage().await;
    let sink = spawn_sink(dep.config());
    let audit = dep.audit(1000, Duration::from_secs(120)).await;
    stop_sink(sink).await;

    assert_eq!(audit.len(), 1000);
    assert!(
        audit
            .iter()
            .all(|e| e.result == AuditResult::Applied && e.operation == "create")
    );
    let ids: BTreeSet<_> = audit.iter().map(|e| e.command_id.clone()).collect();
    assert_eq!(ids.len(), 1000, "one audit entry per command");

    // Each Collections call is one committed transaction in the org.
    let calls = org.transactions_on("Account");
    assert!(
        calls.len() <= 6,
        "{} write calls for 1000 upserts",
        calls.len()
    );
    let (used_after, _) = org.api_usage().await;
    // Writes plus the reads before them (read_before_write), nothing else.
    assert!(
        used_after - used_before <= 12,
        "{} API calls",
        used_after - used_before
    );

    let records = org
        .query_all("SELECT Id, Name, Jira_Key__c FROM Account", "Jira_Key__c")
        .await;
    assert_eq!(records.len(), 1000);
    assert_eq!(records["K-7"]["Name"], "Account 7");
    assert_eq!(records["K-999"]["Name"], "Account 999");

    let links = dep.links(2000, Duration::from_secs(30)).await;
    assert_eq!(
        links.len(),
        2000,
        "a link and its reverse per created record"
    );
    let l = links.iter().find(|l| l.reference == "jira:K-7").unwrap();
    let id = records["K-7"]["Id"].as_str().unwrap();
    assert_eq!(
        l.counterpart.as_deref(),
        Some(format!("salesforce:Account:{id}").as_str())
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn linked_records_are_updated_by_id_with_changed_fields_only_and_merged() {
    let org = Org::start().await;
    let dep = Deployment::new("sfsink-linked", &org, "").await;
    // First command creates the record (and its link) …
    let create = upsert(
        "Account",
        "jira:P-1",
        Some(("Jira_Key__c", "P-1")),
        json!({"Name": "Acme", "Phone": "111"}),
    );
    dep.produce(&[create]).await;
    let sink = spawn_sink(dep.config());
    dep.audit(1, Duration::from_secs(60)).await;
    let id = org
        .query_all("SELECT Id, Jira_Key__c FROM Account", "Jira_Key__c")
        .await["P-1"]["Id"]
        .as_str()
        .unwrap()
        .to_string();
    // … a human then edits the phone in Salesforce …
    org.update_as_alice("Account", &id, json!({"Phone": "222"}))
        .await;
    // … and two later commands for the record arrive together: Name changed, Phone unchanged
    // (so it must not overwrite Alice's edit), then Description.
    let mut c2 = upsert(
        "Account",
        "jira:P-1",
        Some(("Jira_Key__c", "P-1")),
        json!({"Name": "Acme Corp", "Phone": "111"}),
    );
    c2.fields.get_mut("Phone").unwrap().changed = false;
    let c3 = upsert(
        "Account",
        "jira:P-1",
        Some(("Jira_Key__c", "P-1")),
        json!({"Description": "merged"}),
    );
    let writes_before = org.transactions_on("Account").len();
    dep.produce(&[c2, c3]).await;
    let audit = dep.audit(3, Duration::from_secs(60)).await;
    stop_sink(sink).await;

    assert_eq!(audit.len(), 3);
    assert!(audit[1..].iter().all(|e| e.operation == "update"
        && e.result == AuditResult::Applied
        && e.target == format!("salesforce:Account:{id}")));
    assert_eq!(audit[1].before["Name"], "Acme", "before values read");
    let rec = org.get("Account", &id).await;
    assert_eq!(rec["Name"], "Acme Corp");
    assert_eq!(
        rec["Phone"], "222",
        "an unchanged field does not overwrite a newer edit"
    );
    assert_eq!(rec["Description"], "merged");
    assert_eq!(
        org.transactions_on("Account").len() - writes_before,
        1,
        "two commands for one record, one write"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn update_only_never_creates_and_deletes_remove_linked_records() {
    let org = Org::start().await;
    let dep = Deployment::new("sfsink-updonly", &org, "").await;
    let mut feedback = upsert(
        "Opportunity",
        "jira:NOPE-1",
        Some(("Jira_Key__c", "NOPE-1")),
        json!({"Delivery_Status__c": "Delivered"}),
    );
    feedback.target.update_only = true;
    let create = upsert(
        "Account",
        "jira:D-1",
        Some(("Jira_Key__c", "D-1")),
        json!({"Name": "Doomed"}),
    );
    let mut delete = upsert(
        "Account",
        "jira:D-1",
        Some(("Jira_Key__c", "D-1")),
        json!({}),
    );
    delete.kind = sfjira_core::command::CommandKind::Delete;
    dep.produce(&[feedback, create]).await;
    let sink = spawn_sink(dep.config());
    dep.audit(2, Duration::from_secs(60)).await;
    dep.produce(&[delete]).await;
    let audit = dep.audit(3, Duration::from_secs(60)).await;
    stop_sink(sink).await;

    let skip = audit
        .iter()
        .find(|e| e.external_ref == "jira:NOPE-1")
        .unwrap();
    assert_eq!(skip.result, AuditResult::Skipped);
    assert!(
        org.transactions_on("Opportunity").is_empty(),
        "nothing created"
    );
    let del = audit.iter().find(|e| e.operation == "delete").unwrap();
    assert_eq!(del.result, AuditResult::Applied);
    let live = org
        .query_all("SELECT Id, Jira_Key__c FROM Account", "Jira_Key__c")
        .await;
    assert!(!live.contains_key("D-1"), "the linked record is deleted");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_feedback_command_finds_its_record_through_the_jira_sinks_link() {
    let org = Org::start().await;
    let dep = Deployment::new("sfsink-feedback", &org, "").await;
    // An opportunity made in Salesforce became PROJ-9 in Jira; the Jira sink linked them.
    let opp = org
        .create_as_alice(
            "Opportunity",
            json!({"Name": "Big deal", "StageName": "Closed Won", "CloseDate": "2026-12-31"}),
        )
        .await;
    let link = sfjira_core::links::Link::linked(
        &format!("salesforce:Opportunity:{opp}"),
        "jira:PROJ-9",
        Some("10009"),
        "jira-sink-cmd",
    );
    dep.produce_links(&link.records_both_ways(&dep.topic("sfjira.links")))
        .await;
    // The story's status comes back (flow story-status-to-opportunity: update_only).
    let mut feedback = upsert(
        "Opportunity",
        "jira:PROJ-9",
        Some(("Jira_Key__c", "PROJ-9")),
        json!({"Delivery_Status__c": "In Progress"}),
    );
    feedback.target.update_only = true;
    dep.produce(&[feedback]).await;
    let sink = spawn_sink(dep.config());
    let audit = dep.audit(1, Duration::from_secs(60)).await;
    stop_sink(sink).await;
    assert_eq!(audit[0].result, AuditResult::Applied, "{:?}", audit[0]);
    assert_eq!(audit[0].operation, "update");
    assert_eq!(audit[0].target, format!("salesforce:Opportunity:{opp}"));
    assert_eq!(
        audit[0].before["Delivery_Status__c"],
        serde_json::Value::Null
    );
    let rec = org.get("Opportunity", &opp).await;
    assert_eq!(rec["Delivery_Status__c"], "In Progress");
    assert_eq!(
        rec["Jira_Key__c"],
        serde_json::Value::Null,
        "only the command's fields"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sink_writes_over_https_trusting_the_configured_ca() {
    let dir = std::env::temp_dir().join(sfjira_tests::unique("sfsink-tls"));
    std::fs::create_dir_all(&dir).unwrap();
    let ca = dir.join("ca.pem");
    let org = Org::start_tls(&ca).await;
    assert!(org.base().starts_with("https://"));
    let dep = Deployment::new(
        "sfsink-tls",
        &org,
        &format!("  tls_ca_file: \"{}\"\n", ca.display()),
    )
    .await;
    dep.produce(&[upsert(
        "Account",
        "jira:TLS-1",
        Some(("Jira_Key__c", "TLS-1")),
        json!({"Name": "Over TLS"}),
    )])
    .await;
    let sink = spawn_sink(dep.config());
    let audit = dep.audit(1, Duration::from_secs(60)).await;
    stop_sink(sink).await;
    assert_eq!(audit[0].result, AuditResult::Applied);
    let live = org
        .query_all("SELECT Id, Name, Jira_Key__c FROM Account", "Jira_Key__c")
        .await;
    assert_eq!(live["TLS-1"]["Name"], "Over TLS");
}
