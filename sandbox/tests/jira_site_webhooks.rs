//! The site's writes reach webhook receivers end to end: an admin webhook registered over REST
//! (signed, JQL-filtered) receives `jira:issue_updated` with the changelog and the human actor
//! after an edit made through the admin API; and the site survives a restart through its
//! snapshot file.

mod jira_support;

use std::sync::{Arc, Mutex};

use axum::Router;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::routing::post;
use jira_support::{start, start_with};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use sfjira_sandbox::clock::SandboxClock;
use sfjira_sandbox::jira::config::JiraConfig;

type Received = Arc<Mutex<Vec<(HeaderMap, Value)>>>;

async fn receiver() -> (Received, String) {
    let got: Received = Arc::default();
    let app = Router::new()
        .route(
            "/hook",
            post(|State(got): State<Received>, headers: HeaderMap, body: axum::body::Bytes| async move {
                got.lock().unwrap().push((headers, serde_json::from_slice(&body).unwrap_or(Value::Null)));
                axum::http::StatusCode::OK
            }),
        )
        .with_state(got.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (got, format!("http://{addr}/hook"))
}

#[tokio::test]
async fn edits_by_people_reach_signed_filtered_webhooks() {
    let s = start().await;
    let (got, url) = receiver().await;
    let (status, hook) = s
        .post(
            "/rest/webhooks/1.0/webhook",
            json!({"name": "sfjira", "url": url, "events": ["jira:issue_updated", "comment_created"],
                   "filters": {"issue-related-events-section": "project = PROJ"}, "secret": "s3cret"}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{hook}");
    let key = s.create_task("hooked").await;
    let (status, _) = s
        .admin(
            Method::PUT,
            &format!("/__admin/jira/as/alice@example.com/rest/api/3/issue/{key}"),
            Some(json!({"fields": {"summary": "renamed"}, "historyMetadata": {"type": "ui"}})),
        )
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    // A TEAM issue does not match the filter.
    let (status, _) = s
        .post("/rest/api/3/issue", json!({"fields": {"project": {"key": "TEAM"}, "issuetype": {"name": "Task"}, "summary": "other"}}))
        .await;
    assert_eq!(status, StatusCode::CREATED);
    s.site.state.webhooks.idle().await;

    let got = got.lock().unwrap().clone();
    assert_eq!(got.len(), 1, "only the PROJ update: {got:?}");
    let (headers, body) = &got[0];
    assert!(
        headers["x-hub-signature"]
            .to_str()
            .unwrap()
            .starts_with("sha256=")
    );
    assert!(headers.contains_key("x-atlassian-webhook-identifier"));
    assert_eq!(body["webhookEvent"], "jira:issue_updated");
    assert_eq!(body["user"]["displayName"], "Alice");
    assert_eq!(body["issue"]["key"], key);
    assert!(
        body["issue"]["self"]
            .as_str()
            .unwrap()
            .contains("/rest/api/2/issue/")
    );
    assert_eq!(body["changelog"]["items"][0]["field"], "summary");
    assert_eq!(body["changelog"]["items"][0]["toString"], "renamed");
    assert!(body["changelog"]["items"][0]["from"].is_null());
}

#[tokio::test]
async fn snapshot_survives_a_restart() {
    let dir = std::env::temp_dir().join(format!("sfjira-jira-snapshot-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("site.json");
    let config = JiraConfig {
        snapshot: Some(path.clone()),
        ..Default::default()
    };
    let key = {
        let s = start_with(config.clone(), SandboxClock::real_time()).await;
        s.create_task("persisted").await
    };
    let s = start_with(config, SandboxClock::real_time()).await;
    let (status, issue) = s.get(&format!("/rest/api/3/issue/{key}")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(issue["fields"]["summary"], "persisted");
    // Numbering continues after the snapshot's issues.
    assert_eq!(s.create_task("next").await, "PROJ-2");
    let _ = std::fs::remove_dir_all(dir);
}
