//! Echo tagging (the change events caused by the sink carry our client id in `changeOrigin`,
//! so the transformer drops them), the `BOTH`-field rule (an older command does not overwrite
//! a newer Salesforce edit: `superseded`), and activities attached to a linked record.

mod support;

use std::time::Duration;

use chrono::Utc;
use serde_json::json;
use sfjira_core::audit::AuditResult;
use sfjira_core::command::Owner;
use support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn change_events_caused_by_the_sink_carry_our_client_id() {
    let org = Org::start().await;
    let dep = Deployment::new("sfsink-echo", &org, "  client_id: sfjira-echo-test\n").await;
    dep.produce(&[upsert(
        "Account",
        "jira:E-1",
        Some(("Jira_Key__c", "E-1")),
        json!({"Name": "Echo"}),
    )])
    .await;
    let sink = spawn_sink(dep.config());
    dep.audit(1, Duration::from_secs(60)).await;
    stop_sink(sink).await;
    org.create_as_alice("Account", json!({"Name": "Human"}))
        .await;

    let txns = org.transactions_on("Account");
    assert_eq!(txns.len(), 2);
    // What Change Data Capture puts in ChangeEventHeader.changeOrigin (reference §2.2).
    assert!(
        txns[0]
            .change_origin
            .starts_with("com/salesforce/api/rest/64.0;"),
        "{}",
        txns[0].change_origin
    );
    assert!(
        txns[0]
            .change_origin
            .split(';')
            .any(|p| p == "client=sfjira-echo-test"),
        "{}",
        txns[0].change_origin
    );
    assert_eq!(
        txns[1].change_origin, "",
        "a human edit carries no client id"
    );
}

/// The `changeOrigin` of a decoded change event.
fn change_origin(event: &apache_avro::types::Value) -> Option<String> {
    use apache_avro::types::Value as A;
    let A::Record(fields) = event else {
        return None;
    };
    let (_, header) = fields.iter().find(|(k, _)| k == "ChangeEventHeader")?;
    let A::Record(h) = header else { return None };
    match &h.iter().find(|(k, _)| k == "changeOrigin")?.1 {
        A::String(s) => Some(s.clone()),
        A::Union(_, b) => match b.as_ref() {
            A::String(s) => Some(s.clone()),
            _ => None,
        },
        _ => None,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_published_change_events_carry_our_client_id() {
    let org = Org::start_with_cdc().await;
    let dep = Deployment::new("sfsink-cdc", &org, "").await;
    dep.produce(&[upsert(
        "Account",
        "jira:E-2",
        Some(("Jira_Key__c", "E-2")),
        json!({"Name": "Echo through CDC"}),
    )])
    .await;
    let sink = spawn_sink(dep.config());
    dep.audit(1, Duration::from_secs(60)).await;
    stop_sink(sink).await;
    org.create_as_alice("Account", json!({"Name": "Human"}))
        .await;
    let events = org.change_events("/data/AccountChangeEvent");
    let origins: Vec<_> = events.iter().map(change_origin).collect();
    assert_eq!(origins.len(), 2, "{origins:?}");
    let ours = origins[0].as_deref().unwrap();
    assert!(
        ours.split(';').any(|p| p == "client=sfjira"),
        "the sink's change: {ours}"
    );
    assert!(
        !origins[1]
            .as_deref()
            .unwrap_or("")
            .contains("client=sfjira"),
        "a human change is not ours"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_older_command_does_not_overwrite_a_newer_salesforce_edit_of_a_both_field() {
    let org = Org::start().await;
    let dep = Deployment::new("sfsink-both", &org, "").await;
    let sink = spawn_sink(dep.config());
    // The sink creates the record.
    dep.produce(&[upsert(
        "Account",
        "jira:C-1",
        Some(("Jira_Key__c", "C-1")),
        json!({"Name": "Start", "Description": "from jira"}),
    )])
    .await;
    dep.audit(1, Duration::from_secs(60)).await;
    let id = org
        .query_all("SELECT Id, Jira_Key__c FROM Account", "Jira_Key__c")
        .await["C-1"]["Id"]
        .as_str()
        .unwrap()
        .to_string();
    // A change made in Jira before Alice's edit in Salesforce arrives after it.
    let jira_edit_time = Utc::now() - chrono::Duration::seconds(30);
    org.update_as_alice("Account", &id, json!({"Description": "alice wins"}))
        .await;
    let mut late = upsert(
        "Account",
        "jira:C-1",
        Some(("Jira_Key__c", "C-1")),
        json!({"Description": "stale jira text", "Phone": "555"}),
    );
    for f in late.fields.values_mut() {
        f.source_time = jira_edit_time;
    }
    late.fields.get_mut("Description").unwrap().owner = Owner::Both;
    // And one made after Alice's edit wins.
    let mut newer = upsert(
        "Account",
        "jira:C-2",
        Some(("Jira_Key__c", "C-2")),
        json!({"Name": "Other"}),
    );
    newer.fields.get_mut("Name").unwrap().owner = Owner::Both;
    dep.produce(&[late, newer]).await;
    let audit = dep.audit(3, Duration::from_secs(60)).await;
    stop_sink(sink).await;

    let rec = org.get("Account", &id).await;
    assert_eq!(rec["Description"], "alice wins", "the later edit wins");
    assert_eq!(
        rec["Phone"], "555",
        "a field the other side did not touch is written"
    );
    let e = audit
        .iter()
        .find(|e| e.external_ref == "jira:C-1" && e.after.contains_key("Phone"))
        .unwrap();
    assert_eq!(e.result, AuditResult::Applied);
    assert!(
        e.detail.as_deref().unwrap().contains("Description"),
        "{e:?}"
    );
    assert!(!e.after.contains_key("Description"));
    let c2 = audit.iter().find(|e| e.external_ref == "jira:C-2").unwrap();
    assert_eq!(c2.result, AuditResult::Applied);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_both_field_alone_and_superseded_is_audited_as_superseded() {
    let org = Org::start().await;
    let dep = Deployment::new("sfsink-supersede", &org, "").await;
    let id = org
        .create_as_alice("Account", json!({"Name": "Human", "Jira_Key__c": "S-1"}))
        .await;
    let mut stale = upsert(
        "Account",
        "jira:S-1",
        Some(("Jira_Key__c", "S-1")),
        json!({"Name": "stale"}),
    );
    let f = stale.fields.get_mut("Name").unwrap();
    f.owner = Owner::Both;
    f.source_time = Utc::now() - chrono::Duration::minutes(5);
    dep.produce(&[stale]).await;
    let sink = spawn_sink(dep.config());
    let audit = dep.audit(1, Duration::from_secs(60)).await;
    stop_sink(sink).await;
    assert_eq!(audit[0].result, AuditResult::Superseded, "{:?}", audit[0]);
    assert_eq!(audit[0].target, format!("salesforce:Account:{id}"));
    assert_eq!(audit[0].before["Name"], "Human");
    assert_eq!(org.get("Account", &id).await["Name"], "Human");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_activity_is_attached_to_its_linked_record() {
    let org = Org::start().await;
    let dep = Deployment::new("sfsink-task", &org, "  attach_wait_ms: 10000\n").await;
    let opp = upsert(
        "Opportunity",
        "jira:PROJ-7",
        Some(("Jira_Key__c", "PROJ-7")),
        json!({"Name": "Deal", "StageName": "Prospecting", "CloseDate": "2026-12-31"}),
    );
    let mut task = upsert(
        "Task",
        "jira:comment:10042",
        Some(("Jira_Comment_Id__c", "10042")),
        json!({"Subject": "Jira comment on PROJ-7", "Status": "Completed"}),
    );
    task.target.attach_to = Some("jira:PROJ-7".into());
    let mut orphan = upsert(
        "Task",
        "jira:comment:10043",
        Some(("Jira_Comment_Id__c", "10043")),
        json!({"Subject": "nowhere"}),
    );
    orphan.target.attach_to = Some("jira:NOT-LINKED".into());
    dep.produce(&[opp, task, orphan]).await;
    let sink = spawn_sink(dep.config());
    let dlq = dep.dlq(1, Duration::from_secs(60)).await;
    dep.audit(3, Duration::from_secs(30)).await;
    stop_sink(sink).await;
    let opp_id = org
        .query_all("SELECT Id, Jira_Key__c FROM Opportunity", "Jira_Key__c")
        .await["PROJ-7"]["Id"]
        .as_str()
        .unwrap()
        .to_string();
    let tasks = org
        .query_all(
            "SELECT Id, WhatId, Jira_Comment_Id__c FROM Task",
            "Jira_Comment_Id__c",
        )
        .await;
    assert_eq!(tasks["10042"]["WhatId"], opp_id.as_str());
    assert!(!tasks.contains_key("10043"));
    assert_eq!(
        header(&dlq[0], "sfjira.error.code").as_deref(),
        Some("SFJ-9011")
    );
}
