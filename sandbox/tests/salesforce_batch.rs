//! Multi-record calls against the Salesforce sandbox over HTTP: sObject Collections (upsert,
//! create, delete; all-or-none), `/composite` with references, SOQL paging, and what the change
//! sink receives for each (one transaction per call, fields, origin, user).

#[path = "salesforce_support/mod.rs"]
mod support;

use reqwest::Method;
use serde_json::{Value, json};
use sfjira_sandbox::salesforce::changes::ChangeType;
use support::*;

fn row(key: &str, stage: &str) -> Value {
    json!({"attributes": {"type": "Opportunity"}, "Jira_Key__c": key, "Name": format!("Deal {key}"), "StageName": stage, "CloseDate": "2026-06-30"})
}

async fn count(org: &TestOrg, t: &str, soql: &str) -> u64 {
    let (status, v) = org
        .json(
            t,
            Method::GET,
            &format!("{V}/query?q={}", encode(soql)),
            None,
        )
        .await;
    assert_eq!(status, 200, "{v}");
    v["totalSize"].as_u64().unwrap()
}

#[tokio::test]
async fn collections_upsert_applies_good_rows_and_reports_bad_ones_in_order() {
    let org = start().await;
    let t = org.token().await;
    // An existing record, so one row updates.
    let (status, _) = org
        .call(
            &t,
            Method::PATCH,
            &format!("{V}/sobjects/Opportunity/Jira_Key__c/SFJ-2"),
            Some(json!({"Name": "Old", "StageName": "Prospecting", "CloseDate": "2026-01-01"})),
            &[],
        )
        .await;
    assert_eq!(status, 201);
    org.sink.take();
    let body = json!({"allOrNone": false, "records": [
        row("SFJ-1", "Prospecting"),
        row("SFJ-2", "Bogus stage"),
        row("SFJ-2", "Closed Won"),
        {"attributes": {"type": "Opportunity"}, "Name": "no key", "StageName": "Prospecting", "CloseDate": "2026-06-30"},
        {"attributes": {"type": "Opportunity"}, "Jira_Key__c": "SFJ-3", "Name": "x".repeat(121), "StageName": "Prospecting", "CloseDate": "2026-06-30"},
    ]});
    let (status, text) = org
        .call(
            &t,
            Method::PATCH,
            &format!("{V}/composite/sobjects/Opportunity/Jira_Key__c"),
            Some(body),
            &[("Sforce-Call-Options", "client=sfjira")],
        )
        .await;
    assert_eq!(status, 200, "{text}");
    let rows: Vec<Value> = serde_json::from_str(&text).unwrap();
    assert_eq!(rows.len(), 5);
    let id1 = rows[0]["id"].as_str().unwrap();
    assert_eq!(
        rows[0],
        json!({"id": id1, "success": true, "errors": [], "created": true})
    );
    assert_eq!(
        rows[1],
        json!({"success": false, "errors": [{"statusCode": "INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST", "message": "Stage: bad value for restricted picklist field: Bogus stage", "fields": ["StageName"]}], "created": false})
    );
    let id2 = rows[2]["id"].as_str().unwrap();
    assert_eq!(
        rows[2],
        json!({"id": id2, "success": true, "errors": [], "created": false})
    );
    assert_eq!(
        rows[3],
        json!({"success": false, "errors": [{"statusCode": "MISSING_ARGUMENT", "message": "Jira_Key__c not specified", "fields": []}], "created": false})
    );
    assert_eq!(rows[4]["errors"][0]["statusCode"], "STRING_TOO_LONG");
    // Good rows applied, bad ones not.
    assert_eq!(
        count(
            &org,
            &t,
            "SELECT Id FROM Opportunity WHERE Jira_Key__c IN ('SFJ-1', 'SFJ-2', 'SFJ-3')"
        )
        .await,
        2
    );
    assert_eq!(
        count(
            &org,
            &t,
            "SELECT Id FROM Opportunity WHERE StageName = 'Closed Won'"
        )
        .await,
        1
    );
    // One call = one transaction with both applied rows, in request order, origin from the header.
    let txns = org.sink.take();
    assert_eq!(txns.len(), 1);
    let txn = &txns[0];
    assert_eq!(
        txn.change_origin,
        "com/salesforce/api/rest/62.0;client=sfjira"
    );
    assert_eq!(txn.commit_user, org.org.org.integration_user().id);
    assert_eq!(txn.changes.len(), 2);
    assert_eq!(txn.changes[0].change_type, ChangeType::Create);
    assert_eq!(txn.changes[0].record_id, id1);
    assert_eq!(txn.changes[1].change_type, ChangeType::Update);
    assert_eq!(
        txn.changes[1].changed_fields,
        ["Name", "StageName", "CloseDate", "LastModifiedDate"]
    );
}

#[tokio::test]
async fn collections_all_or_none_applies_nothing() {
    let org = start().await;
    let t = org.token().await;
    org.sink.take();
    let body = json!({"allOrNone": true, "records": [row("SFJ-10", "Prospecting"), row("SFJ-11", "Nope"), row("SFJ-12", "Prospecting")]});
    let (status, text) = org
        .call(
            &t,
            Method::PATCH,
            &format!("{V}/composite/sobjects/Opportunity/Jira_Key__c"),
            Some(body),
            &[],
        )
        .await;
    assert_eq!(status, 200);
    let rolled_back = json!({"success": false, "errors": [{"statusCode": "ALL_OR_NONE_OPERATION_ROLLED_BACK", "message": "Record rolled back because not all records were valid and the request was using AllOrNone header", "fields": []}], "created": false});
    let rows: Vec<Value> = serde_json::from_str(&text).unwrap();
    assert_eq!(rows[0], rolled_back);
    assert_eq!(
        rows[1]["errors"][0]["statusCode"],
        "INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST"
    );
    assert_eq!(rows[2], rolled_back);
    assert_eq!(count(&org, &t, "SELECT Id FROM Opportunity").await, 0);
    assert!(org.sink.take().is_empty());
    // Create and delete collections.
    let body = json!({"allOrNone": false, "records": [
        {"attributes": {"type": "Account"}, "Name": "One"},
        {"attributes": {"type": "Contact"}, "LastName": "Two"},
        {"attributes": {"type": "Account"}},
    ]});
    let (status, v) = org
        .json(
            &t,
            Method::POST,
            &format!("{V}/composite/sobjects"),
            Some(body),
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(
        v[2],
        json!({"success": false, "errors": [{"statusCode": "REQUIRED_FIELD_MISSING", "message": "Required fields are missing: [Name]", "fields": ["Name"]}]})
    );
    let (a, c) = (
        v[0]["id"].as_str().unwrap().to_string(),
        v[1]["id"].as_str().unwrap().to_string(),
    );
    assert!(a.starts_with("001") && c.starts_with("003"));
    let (status, v) = org
        .json(
            &t,
            Method::DELETE,
            &format!("{V}/composite/sobjects?ids={a},{c}&allOrNone=false"),
            None,
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(
        v,
        json!([{"id": a, "success": true, "errors": []}, {"id": c, "success": true, "errors": []}])
    );
    assert_eq!(count(&org, &t, "SELECT Id FROM Account").await, 0);
    assert_eq!(count(&org, &t, "SELECT Id FROM Account").await, 0);
    let (_, v) = org
        .json(
            &t,
            Method::GET,
            &format!(
                "{V}/queryAll?q={}",
                encode("SELECT Id, IsDeleted FROM Account")
            ),
            None,
        )
        .await;
    assert_eq!(v["records"][0]["IsDeleted"], true);
}

#[tokio::test]
async fn composite_resolves_references_in_one_transaction() {
    let org = start().await;
    let t = org.token().await;
    org.sink.take();
    let body = json!({"allOrNone": true, "compositeRequest": [
        {"method": "POST", "url": format!("{V}/sobjects/Account"), "referenceId": "acct", "body": {"Name": "Acme"}},
        {"method": "POST", "url": format!("{V}/sobjects/Opportunity"), "referenceId": "opp",
         "body": {"Name": "Deal", "StageName": "Prospecting", "CloseDate": "2026-01-01", "AccountId": "@{acct.id}"}},
        {"method": "GET", "url": format!("{V}/query?q={}", encode("SELECT Id, AccountId FROM Opportunity")), "referenceId": "q"},
        {"method": "PATCH", "url": format!("{V}/sobjects/Opportunity/@{{q.records[0].Id}}"), "referenceId": "upd", "body": {"Amount": 10}},
    ]});
    let (status, v) = org
        .json(&t, Method::POST, &format!("{V}/composite"), Some(body))
        .await;
    assert_eq!(status, 200, "{v}");
    let r = v["compositeResponse"].as_array().unwrap();
    let acct = r[0]["body"]["id"].as_str().unwrap();
    assert_eq!(
        r[0],
        json!({"body": {"id": acct, "success": true, "errors": []}, "httpHeaders": {"Location": format!("{V}/sobjects/Account/{acct}")}, "httpStatusCode": 201, "referenceId": "acct"})
    );
    assert_eq!(r[2]["body"]["records"][0]["AccountId"], json!(acct));
    assert_eq!(
        r[3],
        json!({"body": null, "httpHeaders": {}, "httpStatusCode": 204, "referenceId": "upd"})
    );
    let txns = org.sink.take();
    assert_eq!(txns.len(), 1, "composite = one transaction");
    let kinds: Vec<_> = txns[0]
        .changes
        .iter()
        .map(|c| (c.entity.as_str(), c.change_type))
        .collect();
    assert_eq!(
        kinds,
        [
            ("Account", ChangeType::Create),
            ("Opportunity", ChangeType::Create),
            ("Opportunity", ChangeType::Update)
        ]
    );
    assert_eq!(txns[0].change_origin, "com/salesforce/api/rest/62.0");
    // allOrNone: a failing subrequest rolls back the others.
    let body = json!({"allOrNone": true, "compositeRequest": [
        {"method": "POST", "url": format!("{V}/sobjects/Account"), "referenceId": "a", "body": {"Name": "Kept?"}},
        {"method": "POST", "url": format!("{V}/sobjects/Account"), "referenceId": "b", "body": {"Nope": 1}},
        {"method": "POST", "url": format!("{V}/sobjects/Account"), "referenceId": "c", "body": {"Name": "never"}},
    ]});
    let (_, v) = org
        .json(&t, Method::POST, &format!("{V}/composite"), Some(body))
        .await;
    let halted = json!([{"message": "The transaction was rolled back since another operation in the same transaction failed.", "errorCode": "PROCESSING_HALTED"}]);
    let r = v["compositeResponse"].as_array().unwrap();
    assert_eq!(
        (r[0]["httpStatusCode"].clone(), r[0]["body"].clone()),
        (json!(400), halted.clone())
    );
    assert_eq!(r[1]["body"][0]["errorCode"], "INVALID_FIELD");
    assert_eq!(r[2]["body"], halted);
    assert_eq!(count(&org, &t, "SELECT Id FROM Account").await, 1);
    assert!(org.sink.take().is_empty());
}

#[tokio::test]
async fn query_pages_with_next_records_url() {
    let org = start().await;
    let t = org.token().await;
    for chunk in 0..3 {
        let n = if chunk < 2 { 200 } else { 50 };
        let records: Vec<Value> = (0..n)
            .map(|i| json!({"attributes": {"type": "Account"}, "Name": format!("Acct {:03}", chunk * 200 + i)}))
            .collect();
        let (status, _) = org
            .json(
                &t,
                Method::POST,
                &format!("{V}/composite/sobjects"),
                Some(json!({"records": records})),
            )
            .await;
        assert_eq!(status, 200);
    }
    let q = "SELECT Id, Name FROM Account WHERE Name >= 'Acct 010' ORDER BY Name DESC";
    let mut url = format!("{V}/query?q={}", encode(q));
    let mut names = Vec::new();
    let mut pages = 0;
    loop {
        let (status, text) = org
            .call(
                &t,
                Method::GET,
                &url,
                None,
                &[("Sforce-Query-Options", "batchSize=200")],
            )
            .await;
        assert_eq!(status, 200, "{text}");
        let v: Value = serde_json::from_str(&text).unwrap();
        pages += 1;
        assert_eq!(v["totalSize"], 440);
        names.extend(
            v["records"]
                .as_array()
                .unwrap()
                .iter()
                .map(|r| r["Name"].as_str().unwrap().to_string()),
        );
        if v["done"] == true {
            assert!(v.get("nextRecordsUrl").is_none());
            break;
        }
        url = v["nextRecordsUrl"].as_str().unwrap().to_string();
        assert!(url.starts_with(&format!("{V}/query/01g")), "{url}");
    }
    assert_eq!(pages, 3);
    assert_eq!(names.len(), 440);
    assert_eq!(names[0], "Acct 449");
    assert_eq!(names[439], "Acct 010");
    let q = "SELECT Name FROM Account WHERE (Name = 'Acct 001' OR Name = 'Acct 002') AND Phone = null LIMIT 1";
    assert_eq!(count(&org, &t, q).await, 1);
}

#[tokio::test]
async fn the_sink_sees_changed_and_nulled_fields_and_who_made_them() {
    let org = start().await;
    let t = org.token().await;
    let (status, v) = org
        .json(
            &t,
            Method::POST,
            &format!("{V}/sobjects/Account"),
            Some(json!({"Name": "Acme", "BillingCity": "Paris", "Phone": "1"})),
        )
        .await;
    assert_eq!(status, 201);
    let id = v["id"].as_str().unwrap().to_string();
    let create = org.sink.take();
    assert_eq!(create.len(), 1);
    let c = &create[0].changes[0];
    assert_eq!(c.change_type, ChangeType::Create);
    assert!(c.changed_fields.contains(&"BillingCity".to_string()));
    assert_eq!(c.values["BillingCity"], "Paris");
    let (status, _) = org
        .call(
            &t,
            Method::PATCH,
            &format!("{V}/sobjects/Account/{id}"),
            Some(json!({"BillingCity": "Lyon", "Phone": null, "Name": "Acme"})),
            &[(
                "Sforce-Call-Options",
                "client=sfjira-sink, defaultNamespace=x",
            )],
        )
        .await;
    assert_eq!(status, 204);
    let txns = org.sink.take();
    assert_eq!(txns.len(), 1);
    let u = &txns[0].changes[0];
    assert_eq!(
        u.changed_fields,
        ["Phone", "BillingCity", "LastModifiedDate"]
    );
    assert_eq!(u.nulled_fields, ["Phone"]);
    assert_eq!(u.values["BillingCity"], "Lyon");
    assert_eq!(
        txns[0].change_origin,
        "com/salesforce/api/rest/62.0;client=sfjira-sink"
    );
    // A human edit through the admin API: Alice commits, no API origin.
    let resp = org
        .http
        .patch(org.url(&format!(
            "/__admin/salesforce/as/Alice/sobjects/Account/{id}"
        )))
        .json(&json!({"Phone": "2"}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let txns = org.sink.take();
    let alice = org.org.org.user("alice@sfjira.sandbox").unwrap().id.clone();
    assert!(alice.starts_with("005"));
    assert_eq!(
        (txns[0].commit_user.as_str(), txns[0].change_origin.as_str()),
        (alice.as_str(), "")
    );
    let (_, rec) = org
        .json(&t, Method::GET, &format!("{V}/sobjects/Account/{id}"), None)
        .await;
    assert_eq!(rec["LastModifiedById"], json!(alice));
    // Failed writes commit nothing.
    let (status, _) = org
        .call(
            &t,
            Method::PATCH,
            &format!("{V}/sobjects/Account/{id}"),
            Some(json!({"Bogus": 1})),
            &[],
        )
        .await;
    assert_eq!(status, 400);
    assert!(org.sink.take().is_empty());
}
