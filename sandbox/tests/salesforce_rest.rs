//! Single-record REST against the Salesforce sandbox over HTTP: CRUD, upsert by external id,
//! every validation error byte for byte, query errors, limits and versions (reference §4).

#[path = "salesforce_support/mod.rs"]
mod support;

use reqwest::Method;
use serde_json::{Value, json};
use support::*;

async fn create(org: &TestOrg, token: &str, object: &str, body: Value) -> String {
    let (status, v) = org
        .json(
            token,
            Method::POST,
            &format!("{V}/sobjects/{object}"),
            Some(body),
        )
        .await;
    assert_eq!(status, 201, "{v}");
    v["id"].as_str().unwrap().to_string()
}

async fn expect_error(
    org: &TestOrg,
    token: &str,
    method: Method,
    path: &str,
    body: Option<Value>,
    status: u16,
    expected: &str,
) {
    let (s, text) = org.call(token, method, path, body, &[]).await;
    assert_eq!((s, text.as_str()), (status, expected), "{path}");
}

fn opp(key: &str) -> Value {
    json!({"Name": "Big deal", "StageName": "Prospecting", "CloseDate": "2026-12-31", "Amount": 125000, "Jira_Key__c": key})
}

#[tokio::test]
async fn create_read_update_delete_round_trip() {
    let org = start().await;
    let t = org.token().await;
    let resp = org
        .http
        .post(org.url(&format!("{V}/sobjects/Account")))
        .bearer_auth(&t)
        .json(&json!({"Name": "Acme", "BillingCity": "Paris", "BillingCountry": "France"}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 201);
    let location = resp.headers()["location"].to_str().unwrap().to_string();
    let acct = resp.json::<Value>().await.unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(location, format!("{V}/sobjects/Account/{acct}"));
    assert_eq!(acct.len(), 18);
    assert!(acct.starts_with("001"));
    assert_eq!(
        sfjira_sandbox::salesforce::ids::normalize(&acct[..15]).as_deref(),
        Some(acct.as_str())
    );
    let (status, v) = org
        .json(
            &t,
            Method::GET,
            &format!("{V}/sobjects/Account/{acct}"),
            None,
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(
        v["attributes"],
        json!({"type": "Account", "url": format!("{V}/sobjects/Account/{acct}")})
    );
    assert_eq!(v["BillingAddress"]["city"], "Paris");
    assert_eq!(v["BillingCity"], "Paris");
    assert_eq!(v["OwnerId"], json!(org.org.org.integration_user().id));
    // The 15-character form reads the same record.
    let (status, _) = org
        .json(
            &t,
            Method::GET,
            &format!("{V}/sobjects/Account/{}", &acct[..15]),
            None,
        )
        .await;
    assert_eq!(status, 200);
    let (status, v) = org
        .json(
            &t,
            Method::PATCH,
            &format!("{V}/sobjects/Account/{acct}"),
            Some(json!({"BillingCity": null, "Phone": "555"})),
        )
        .await;
    assert_eq!((status, v), (204, Value::Null));
    let (_, v) = org
        .json(
            &t,
            Method::GET,
            &format!("{V}/sobjects/Account/{acct}?fields=Phone,BillingCity"),
            None,
        )
        .await;
    assert_eq!(v["Phone"], "555");
    assert_eq!(v["BillingCity"], Value::Null);
    let (status, _) = org
        .json(
            &t,
            Method::DELETE,
            &format!("{V}/sobjects/Account/{acct}"),
            None,
        )
        .await;
    assert_eq!(status, 204);
    expect_error(
        &org,
        &t,
        Method::GET,
        &format!("{V}/sobjects/Account/{acct}"),
        None,
        404,
        r#"[{"message":"entity is deleted","errorCode":"ENTITY_IS_DELETED"}]"#,
    )
    .await;
}

#[tokio::test]
async fn validation_errors_are_byte_for_byte() {
    let org = start().await;
    let t = org.token().await;
    let path = format!("{V}/sobjects/Opportunity");
    let long = "x".repeat(121);
    expect_error(&org, &t, Method::POST, &path, Some(json!({"Name": long, "StageName": "Prospecting", "CloseDate": "2026-01-01"})), 400,
        &format!(r#"[{{"message":"Name: data value too large: {long} (max length=120)","errorCode":"STRING_TOO_LONG","fields":["Name"]}}]"#)).await;
    expect_error(&org, &t, Method::POST, &path, Some(json!({"Name": "A", "Bogus__c": 1})), 400,
        r#"[{"message":"No such column 'Bogus__c' on sobject of type Opportunity","errorCode":"INVALID_FIELD"}]"#).await;
    expect_error(&org, &t, Method::POST, &path, Some(json!({"Name": "A"})), 400,
        r#"[{"message":"Required fields are missing: [StageName, CloseDate]","errorCode":"REQUIRED_FIELD_MISSING","fields":["StageName","CloseDate"]}]"#).await;
    expect_error(&org, &t, Method::POST, &path, Some(json!({"Name": "A", "StageName": "Won-ish", "CloseDate": "2026-01-01"})), 400,
        r#"[{"message":"Stage: bad value for restricted picklist field: Won-ish","errorCode":"INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST","fields":["StageName"]}]"#).await;
    expect_error(&org, &t, Method::POST, &path, Some(json!({"Name": "A", "StageName": "Prospecting", "CloseDate": "2026-01-01", "AccountId": "001xyz"})), 400,
        r#"[{"message":"Account ID: id value of incorrect type: 001xyz","errorCode":"MALFORMED_ID","fields":["AccountId"]}]"#).await;
    let first = create(&org, &t, "Opportunity", opp("SFJ-1")).await;
    expect_error(&org, &t, Method::POST, &path, Some(opp("sfj-1")), 400,
        &format!(r#"[{{"message":"duplicate value found: Jira_Key__c duplicates value on record with id: {first}","errorCode":"DUPLICATE_VALUE","fields":[]}}]"#)).await;
    // Injected lock contention: the next write fails, the one after succeeds.
    let resp = org
        .http
        .post(org.url("/__admin/salesforce/faults/lock-rows"))
        .json(&json!({"count": 1}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let rec = format!("{path}/{first}");
    expect_error(&org, &t, Method::PATCH, &rec, Some(json!({"Amount": 1})), 400,
        r#"[{"message":"unable to obtain exclusive access to this record or 1 records","errorCode":"UNABLE_TO_LOCK_ROW","fields":[]}]"#).await;
    let (status, _) = org
        .call(&t, Method::PATCH, &rec, Some(json!({"Amount": 1})), &[])
        .await;
    assert_eq!(status, 204);
    let (status, _) = org.call(&t, Method::DELETE, &rec, None, &[]).await;
    assert_eq!(status, 204);
    expect_error(
        &org,
        &t,
        Method::PATCH,
        &rec,
        Some(json!({"Amount": 2})),
        400,
        r#"[{"message":"entity is deleted","errorCode":"ENTITY_IS_DELETED","fields":[]}]"#,
    )
    .await;
    let missing = sfjira_sandbox::salesforce::ids::make_id("006", 999_999);
    expect_error(
        &org,
        &t,
        Method::GET,
        &format!("{path}/{missing}"),
        None,
        404,
        r#"[{"message":"The requested resource does not exist","errorCode":"NOT_FOUND"}]"#,
    )
    .await;
    expect_error(&org, &t, Method::GET, &format!("{path}/nonsense"), None, 404,
        r#"[{"message":"Provided external ID field does not exist or is not accessible: nonsense","errorCode":"NOT_FOUND"}]"#).await;
    expect_error(
        &org,
        &t,
        Method::GET,
        &format!("{V}/sobjects/Nope__c/describe"),
        None,
        404,
        r#"[{"message":"The requested resource does not exist","errorCode":"NOT_FOUND"}]"#,
    )
    .await;
}

#[tokio::test]
async fn upsert_by_external_id_answers_201_200_300_404() {
    let org = start().await;
    let t = org.token().await;
    let path = format!("{V}/sobjects/Opportunity/Jira_Key__c/SFJ-7");
    let body = json!({"Name": "Deal", "StageName": "Prospecting", "CloseDate": "2026-03-01"});
    let (status, v) = org
        .call(&t, Method::PATCH, &path, Some(body.clone()), &[])
        .await;
    let id = serde_json::from_str::<Value>(&v).unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(
        (status, v),
        (
            201,
            format!(r#"{{"id":"{id}","success":true,"errors":[],"created":true}}"#)
        )
    );
    let (status, v) = org
        .call(
            &t,
            Method::PATCH,
            &path,
            Some(json!({"StageName": "Closed Won"})),
            &[],
        )
        .await;
    assert_eq!(
        (status, v),
        (
            200,
            format!(r#"{{"id":"{id}","success":true,"errors":[],"created":false}}"#)
        )
    );
    let (_, rec) = org
        .json(
            &t,
            Method::GET,
            &format!("{V}/sobjects/Opportunity/{id}"),
            None,
        )
        .await;
    assert_eq!(rec["StageName"], "Closed Won");
    assert_eq!(rec["Jira_Key__c"], "SFJ-7");
    // updateOnly refuses to create.
    expect_error(
        &org,
        &t,
        Method::PATCH,
        &format!("{V}/sobjects/Opportunity/Jira_Key__c/SFJ-8?updateOnly=true"),
        Some(body.clone()),
        404,
        r#"[{"message":"The requested resource does not exist","errorCode":"NOT_FOUND"}]"#,
    )
    .await;
    // Not an external id field.
    expect_error(
        &org,
        &t,
        Method::PATCH,
        &format!("{V}/sobjects/Opportunity/Name/Deal"),
        Some(body),
        404,
        r#"[{"message":"The requested resource does not exist","errorCode":"NOT_FOUND"}]"#,
    )
    .await;
    // A TLD-like suffix reads as a response format unless the dot is encoded.
    let body = json!({"LastName": "Doe"});
    expect_error(
        &org,
        &t,
        Method::PATCH,
        &format!("{V}/sobjects/Contact/Jira_Key__c/a@b.inc"),
        Some(body.clone()),
        404,
        r#"[{"message":"The requested resource does not exist","errorCode":"NOT_FOUND"}]"#,
    )
    .await;
    let (status, _) = org
        .call(
            &t,
            Method::PATCH,
            &format!("{V}/sobjects/Contact/Jira_Key__c/a@b%2Einc"),
            Some(body),
            &[],
        )
        .await;
    assert_eq!(status, 201);
    let (_, v) = org
        .json(
            &t,
            Method::GET,
            &format!("{V}/query?q={}", encode("SELECT Jira_Key__c FROM Contact")),
            None,
        )
        .await;
    assert_eq!(v["records"][0]["Jira_Key__c"], "a@b.inc");
    // Two records share a non-unique external id: 300 with their URLs.
    let a = create(
        &org,
        &t,
        "Account",
        json!({"Name": "A", "Legacy_Id__c": "L1"}),
    )
    .await;
    let b = create(
        &org,
        &t,
        "Account",
        json!({"Name": "B", "Legacy_Id__c": "L1"}),
    )
    .await;
    let (status, v) = org
        .call(
            &t,
            Method::PATCH,
            &format!("{V}/sobjects/Account/Legacy_Id__c/L1"),
            Some(json!({"Phone": "1"})),
            &[],
        )
        .await;
    assert_eq!(
        (status, v),
        (
            300,
            format!(r#"["{V}/sobjects/Account/{a}","{V}/sobjects/Account/{b}"]"#)
        )
    );
}

#[tokio::test]
async fn query_errors_are_byte_for_byte() {
    let org = start().await;
    let t = org.token().await;
    let q = "SELECT Id FROM Account WHERE Name = 'a' AND Phone = '1' OR Phone = '2'";
    let (status, text) = org
        .call(
            &t,
            Method::GET,
            &format!("{V}/query?q={}", encode(q)),
            None,
            &[],
        )
        .await;
    let expected = json!([{
        "message": format!("\n{q}\n{}^\nERROR at Row:1:Column:57\nunexpected token: 'OR'", " ".repeat(56)),
        "errorCode": "MALFORMED_QUERY",
    }]);
    assert_eq!((status, text), (400, expected.to_string()));
    let q = "SELECT Id, Bogus FROM Account";
    let (status, text) = org
        .call(
            &t,
            Method::GET,
            &format!("{V}/query?q={}", encode(q)),
            None,
            &[],
        )
        .await;
    let expected = json!([{
        "message": format!("\n{q}\n{}^\nERROR at Row:1:Column:12\nNo such column 'Bogus' on entity 'Account'. If you are attempting to use a custom field, be sure to append the '__c' after the custom field name. Please reference your WSDL or the describe call for the appropriate names.", " ".repeat(11)),
        "errorCode": "INVALID_FIELD",
    }]);
    assert_eq!((status, text), (400, expected.to_string()));
}

#[tokio::test]
async fn the_daily_allocation_is_counted_and_enforced() {
    let mut config = config();
    config.daily_api_limit = 3;
    let org = start_with(config, sfjira_sandbox::clock::SandboxClock::real_time()).await;
    let t = org.token().await;
    for n in 1..=3 {
        let resp = org
            .http
            .get(org.url(&format!("{V}/limits")))
            .bearer_auth(&t)
            .send()
            .await
            .unwrap();
        assert_eq!(
            resp.headers()["sforce-limit-info"],
            format!("api-usage={n}/3").as_str()
        );
        let body: Value = resp.json().await.unwrap();
        assert_eq!(
            body["DailyApiRequests"],
            json!({"Max": 3, "Remaining": 3 - n})
        );
    }
    let resp = org
        .http
        .get(org.url(&format!("{V}/limits")))
        .bearer_auth(&t)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.headers()["sforce-limit-info"], "api-usage=3/3");
    assert!(resp.headers().get("retry-after").is_none());
    let (status, _, text) = parts(resp).await;
    assert_eq!(
        (status, text.as_str()),
        (
            403,
            r#"[{"message":"TotalRequests Limit exceeded.","errorCode":"REQUEST_LIMIT_EXCEEDED"}]"#
        )
    );
}

#[tokio::test]
async fn versions_describe_and_faults() {
    let org = start().await;
    let versions: Value = org
        .http
        .get(org.url("/services/data/"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        versions[0],
        json!({"label": "Summer '22", "url": "/services/data/v55.0", "version": "55.0"})
    );
    assert_eq!(
        versions.as_array().unwrap().last().unwrap()["version"],
        "66.0"
    );
    let t = org.token().await;
    let (status, _) = org
        .call(&t, Method::GET, "/services/data/v40.0/limits", None, &[])
        .await;
    assert_eq!(status, 404);
    let (status, d) = org
        .json(
            &t,
            Method::GET,
            &format!("{V}/sobjects/Account/describe"),
            None,
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(d["keyPrefix"], "001");
    let field = |name: &str| {
        d["fields"]
            .as_array()
            .unwrap()
            .iter()
            .find(|f| f["name"] == name)
            .unwrap()
            .clone()
    };
    assert_eq!(field("BillingCity")["compoundFieldName"], "BillingAddress");
    assert_eq!(field("BillingAddress")["type"], "address");
    assert_eq!(field("Jira_Key__c")["externalId"], true);
    assert_eq!(field("Jira_Key__c")["unique"], true);
    assert_eq!(field("Jira_Key__c")["length"], 255);
    let (_, d) = org
        .json(
            &t,
            Method::GET,
            &format!("{V}/sobjects/Escalation__c/describe"),
            None,
        )
        .await;
    assert_eq!(d["keyPrefix"], "a0X");
    assert_eq!(d["custom"], true);
    let sev = d["fields"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["name"] == "Severity__c")
        .unwrap()
        .clone();
    assert_eq!(sev["restrictedPicklist"], true);
    assert_eq!(sev["picklistValues"][0]["value"], "Sev1");
    // Maintenance: every call 503 until switched off.
    let faults = json!({"unavailable": true});
    org.http
        .put(org.url("/__admin/salesforce/faults"))
        .json(&faults)
        .send()
        .await
        .unwrap();
    let (status, text) = org
        .call(&t, Method::GET, &format!("{V}/limits"), None, &[])
        .await;
    assert_eq!(
        (status, text.as_str()),
        (
            503,
            r#"[{"message":"Server temporarily unavailable. Try again later.","errorCode":"SERVER_UNAVAILABLE"}]"#
        )
    );
    org.http
        .put(org.url("/__admin/salesforce/faults"))
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    let (status, _) = org
        .call(&t, Method::GET, &format!("{V}/limits"), None, &[])
        .await;
    assert_eq!(status, 200);
    // Per endpoint class: queries fail, everything else is served (after the latency).
    let faults = json!({"endpoints": {"query": {"errorRate": 1.0}, "limits": {"latencyMs": 150}}});
    let resp = org
        .http
        .put(org.url("/__admin/salesforce/faults"))
        .json(&faults)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let query = format!("{V}/query?q=SELECT+Id+FROM+Account");
    let (status, _) = org.call(&t, Method::GET, &query, None, &[]).await;
    assert_eq!(status, 503);
    let started = std::time::Instant::now();
    let (status, _) = org
        .call(&t, Method::GET, &format!("{V}/limits"), None, &[])
        .await;
    assert_eq!(status, 200);
    assert!(started.elapsed() >= std::time::Duration::from_millis(150));
    org.http
        .put(org.url("/__admin/salesforce/faults"))
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    let (status, _) = org.call(&t, Method::GET, &query, None, &[]).await;
    assert_eq!(status, 200);
}

#[tokio::test]
async fn a_lost_upsert_race_answers_duplicate_value_and_a_retry_updates() {
    let org = start().await;
    let t = org.token().await;
    let faults = json!({"upsertRaceNextCreates": 1});
    let resp = org
        .http
        .put(org.url("/__admin/salesforce/faults"))
        .json(&faults)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let path = format!("{V}/sobjects/Opportunity/Jira_Key__c/SFJ-99");
    let body = json!({"Name": "Raced", "StageName": "Prospecting", "CloseDate": "2026-03-01"});
    let (status, text) = org
        .call(&t, Method::PATCH, &path, Some(body.clone()), &[])
        .await;
    assert_eq!(status, 400, "{text}");
    // The concurrent request's record exists and was committed as its own transaction.
    let txns = org.sink.take();
    assert_eq!(txns.len(), 1);
    let winner = txns[0].changes[0].record_id.clone();
    assert_eq!(
        text,
        format!(
            r#"[{{"message":"duplicate value found: Jira_Key__c duplicates value on record with id: {winner}","errorCode":"DUPLICATE_VALUE","fields":[]}}]"#
        )
    );
    let (status, text) = org.call(&t, Method::PATCH, &path, Some(body), &[]).await;
    assert_eq!(
        (status, text),
        (
            200,
            format!(r#"{{"id":"{winner}","success":true,"errors":[],"created":false}}"#)
        )
    );
}
