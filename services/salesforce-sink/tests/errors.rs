//! Per-row failures: the good rows of a call are applied, the bad ones go to
//! `salesforce-sink.dlq` with their catalogued code and Salesforce's statusCode, message and
//! fields in the headers; a record that is not a command is dead-lettered too.

mod support;

use std::collections::BTreeMap;
use std::time::Duration;

use serde_json::json;
use sfjira_core::audit::AuditResult;
use support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn good_rows_are_applied_and_bad_rows_dead_lettered_with_their_codes() {
    let org = Org::start().await;
    let dep = Deployment::new("sfsink-mixed", &org, "").await;
    let ok = |k: &str| {
        upsert(
            "Account",
            &format!("jira:{k}"),
            Some(("Jira_Key__c", k)),
            json!({"Name": format!("Good {k}")}),
        )
    };
    let mut commands = vec![ok("G-1"), ok("G-2")];
    // STRING_TOO_LONG: Name is text(255).
    commands.push(upsert(
        "Account",
        "jira:B-LONG",
        Some(("Jira_Key__c", "B-LONG")),
        json!({"Name": "x".repeat(300)}),
    ));
    // INVALID_FIELD.
    commands.push(upsert(
        "Account",
        "jira:B-FIELD",
        Some(("Jira_Key__c", "B-FIELD")),
        json!({"Name": "ok", "No_Such_Field__c": "x"}),
    ));
    // REQUIRED_FIELD_MISSING: a new Account needs a Name.
    commands.push(upsert(
        "Account",
        "jira:B-REQ",
        Some(("Jira_Key__c", "B-REQ")),
        json!({"Phone": "1"}),
    ));
    // Restricted picklist.
    commands.push(upsert(
        "Opportunity",
        "jira:B-PICK",
        Some(("Jira_Key__c", "B-PICK")),
        json!({"Name": "Deal", "StageName": "Prospecting", "CloseDate": "2026-12-31", "Delivery_Status__c": "Teleported"}),
    ));
    commands.push(ok("G-3"));
    dep.produce(&commands).await;
    dep.produce_raw("jira:GARBAGE", b"not avro at all").await;
    let sink = spawn_sink(dep.config());
    let dlq = dep.dlq(5, Duration::from_secs(60)).await;
    let audit = dep.audit(7, Duration::from_secs(30)).await;
    stop_sink(sink).await;

    let live = org
        .query_all("SELECT Id, Name, Jira_Key__c FROM Account", "Jira_Key__c")
        .await;
    for k in ["G-1", "G-2", "G-3"] {
        assert_eq!(live[k]["Name"], format!("Good {k}"), "{k} applied");
    }
    for k in ["B-LONG", "B-FIELD", "B-REQ"] {
        assert!(!live.contains_key(k), "{k} not written");
    }

    assert_eq!(dlq.len(), 5, "four bad rows and one undecodable record");
    let by_key: BTreeMap<String, _> = dlq
        .iter()
        .map(|m| {
            use rdkafka::message::Message;
            (String::from_utf8(m.key().unwrap().to_vec()).unwrap(), m)
        })
        .collect();
    let expect = [
        ("jira:B-LONG", "SFJ-9004", "STRING_TOO_LONG", Some("Name")),
        ("jira:B-FIELD", "SFJ-9003", "INVALID_FIELD", None),
        (
            "jira:B-REQ",
            "SFJ-9005",
            "REQUIRED_FIELD_MISSING",
            Some("Name"),
        ),
        (
            "jira:B-PICK",
            "SFJ-9004",
            "INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST",
            Some("Delivery_Status__c"),
        ),
    ];
    for (key, code, status, field) in expect {
        let m = by_key
            .get(key)
            .unwrap_or_else(|| panic!("{key} in the DLQ"));
        assert_eq!(
            header(m, "sfjira.error.code").as_deref(),
            Some(code),
            "{key}"
        );
        assert_eq!(
            header(m, "sfjira.salesforce.statusCode").as_deref(),
            Some(status),
            "{key}"
        );
        assert!(!header(m, "sfjira.salesforce.message").unwrap().is_empty());
        if let Some(f) = field {
            assert!(
                header(m, "sfjira.salesforce.fields").unwrap().contains(f),
                "{key}: fields header"
            );
        }
        assert_eq!(
            header(m, "__connect.errors.stage").as_deref(),
            Some("TASK_PUT")
        );
    }
    let garbage = by_key.get("jira:GARBAGE").expect("the raw record");
    assert_eq!(
        header(garbage, "sfjira.error.code").as_deref(),
        Some("SFJ-1001")
    );

    let failed = audit
        .iter()
        .filter(|e| e.result == AuditResult::Failed)
        .count();
    let applied = audit
        .iter()
        .filter(|e| e.result == AuditResult::Applied)
        .count();
    assert_eq!((applied, failed), (3, 4));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deleted_linked_record_and_an_unknown_external_id_field_are_dead_lettered() {
    let org = Org::start().await;
    let dep = Deployment::new("sfsink-gone", &org, "").await;
    dep.produce(&[upsert(
        "Account",
        "jira:GONE-1",
        Some(("Jira_Key__c", "GONE-1")),
        json!({"Name": "Soon gone"}),
    )])
    .await;
    let sink = spawn_sink(dep.config());
    let first = dep.audit(1, Duration::from_secs(60)).await;
    let id = first[0].target.rsplit(':').next().unwrap().to_string();
    // Someone deletes the record in Salesforce; the next change of its Jira issue arrives.
    org.admin_call(
        reqwest::Method::DELETE,
        &format!("/as/Alice/sobjects/Account/{id}"),
        serde_json::Value::Null,
    )
    .await;
    let update = upsert(
        "Account",
        "jira:GONE-1",
        Some(("Jira_Key__c", "GONE-1")),
        json!({"Name": "Too late"}),
    );
    let bad_field = upsert(
        "Account",
        "jira:NOEXT-1",
        Some(("No_Such_Ext__c", "NOEXT-1")),
        json!({"Name": "x"}),
    );
    dep.produce(&[update, bad_field]).await;
    let dlq = dep.dlq(2, Duration::from_secs(60)).await;
    stop_sink(sink).await;
    let code_of = |key: &str| {
        use rdkafka::message::Message;
        let m = dlq
            .iter()
            .find(|m| m.key() == Some(key.as_bytes()))
            .unwrap_or_else(|| panic!("{key} in the DLQ"));
        header(m, "sfjira.error.code").unwrap()
    };
    assert_eq!(code_of("jira:GONE-1"), "SFJ-9006");
    assert_eq!(code_of("jira:NOEXT-1"), "SFJ-9003");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_login_stops_the_start_with_its_code_and_never_shows_the_secret() {
    let org = Org::start().await;
    let dep = Deployment::new("sfsink-badlogin", &org, "").await;
    let secret = "wrong-secret-4711";
    let cfg = sfjira_core::config::load_from(
        Some(&dep.config_path),
        [(SECRET_VAR.to_string(), secret.to_string())],
    )
    .unwrap();
    let err = sfjira_salesforce_sink::runtime::run(&cfg, std::future::pending())
        .await
        .expect_err("a refused login stops the sink");
    let text = format!("{err:#}");
    assert!(text.contains("SFJ-9012"), "{text}");
    assert!(text.contains("invalid_client"), "{text}");
    assert!(!text.contains(secret), "{text}");
}
