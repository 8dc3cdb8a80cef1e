//! Comment and worklog entity properties (reference §3.4 `Comment {body, visibility?, properties?}`, §3.5): set
//! on create, returned with `expand=properties` on the list and on the single comment, absent
//! otherwise. sfjira stamps its comments this way (the echo marker and the reference).

mod jira_support;

use jira_support::{adf, start};
use reqwest::StatusCode;
use serde_json::json;

#[tokio::test]
async fn comment_properties_are_kept_and_shown_on_expand() {
    let s = start().await;
    let key = s.create_task("c").await;
    let props = json!([{"key": "sfjira", "value": "sfjira"}, {"key": "sfjira.ref", "value": {"ref": "salesforce:Task:00T1"}}]);
    let (status, created) = s
        .post(
            &format!("/rest/api/3/issue/{key}/comment"),
            json!({"body": adf("hi"), "properties": props}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    let id = created["id"].as_str().unwrap();

    let (_, plain) = s.get(&format!("/rest/api/3/issue/{key}/comment")).await;
    assert!(plain["comments"][0].get("properties").is_none());
    let (_, expanded) = s
        .get(&format!(
            "/rest/api/3/issue/{key}/comment?expand=properties"
        ))
        .await;
    assert_eq!(expanded["comments"][0]["properties"], props);
    let (_, one) = s
        .get(&format!(
            "/rest/api/3/issue/{key}/comment/{id}?expand=properties"
        ))
        .await;
    assert_eq!(one["properties"][1]["value"]["ref"], "salesforce:Task:00T1");

    let (status, body) = s
        .post(
            &format!("/rest/api/3/issue/{key}/comment"),
            json!({"body": adf("bad"), "properties": [{"value": 1}]}),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
}

#[tokio::test]
async fn worklog_properties_are_kept_and_shown_on_expand() {
    let s = start().await;
    let key = s.create_task("w").await;
    let props = json!([{"key": "sfjira.ref", "value": {"ref": "salesforce:Event:00U1"}}]);
    let (status, created) = s
        .post(
            &format!("/rest/api/3/issue/{key}/worklog"),
            json!({"started": "2024-01-01T09:00:00.000+0000", "timeSpentSeconds": 60, "properties": props}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    let (_, plain) = s.get(&format!("/rest/api/3/issue/{key}/worklog")).await;
    assert!(plain["worklogs"][0].get("properties").is_none());
    let (_, expanded) = s
        .get(&format!(
            "/rest/api/3/issue/{key}/worklog?expand=properties"
        ))
        .await;
    assert_eq!(expanded["worklogs"][0]["properties"], props);
}
