//! Worklog polling alone: `/worklog/updated` + `/worklog/list` publish created and updated
//! worklogs, `/worklog/deleted` their deletion, each once. The sandbox clock runs 30× so
//! Jira's "last minute left out" rule costs 2 s of wall time.

mod support;

use std::time::{Duration, Instant};

use apache_avro::types::Value as Avro;
use reqwest::{Method, StatusCode};
use serde_json::json;
use sfjira_jira_source::service;
use sfjira_sandbox::clock::SandboxClock;
use sfjira_sandbox::jira::config::JiraConfig;
use support::*;

async fn event_types(stack: &Stack, at_least: usize) -> Vec<String> {
    let codec = sfjira_core::avro::AvroCodec::new(&sfjira_tests::registry_config()).unwrap();
    let mut out = Vec::new();
    for m in stack
        .records("jira.worklogs", at_least, Duration::from_secs(20))
        .await
    {
        use rdkafka::message::Message;
        let d = codec.decode(m.payload().unwrap()).await.unwrap();
        if let Avro::Record(f) = d.value
            && let Some((_, Avro::String(t))) = f.iter().find(|(n, _)| n == "event_type")
        {
            out.push(t.clone());
        }
    }
    out
}

#[tokio::test]
async fn worklog_feeds_publish_creation_update_and_deletion_once() {
    let stack = Stack::new().await;
    let site =
        sfjira_sandbox::jira::spawn_for_tests(JiraConfig::default(), SandboxClock::new(30.0))
            .await
            .unwrap();
    let rest = Rest::new(&site);
    let cfg = stack.load(&stack.yaml(
        &sfjira_tests::bootstrap(),
        &site.base_url(),
        "  poll_interval_ms: 500\n",
    ));
    let running = service::start(&cfg).await.expect("starts");
    let deadline = Instant::now() + Duration::from_secs(60);
    while !running.publisher.is_ready().await {
        assert!(Instant::now() < deadline, "never connected to Kafka");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let (_, key) = rest.create("logged").await;
    let (status, w) = rest
        .call(
            Method::POST,
            &format!("/rest/api/3/issue/{key}/worklog"),
            Some(json!({"started": "2026-11-27T09:00:00.000+0000", "timeSpentSeconds": 1800})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{w}");
    let wid = w["id"].as_str().unwrap().to_string();
    assert_eq!(event_types(&stack, 1).await, ["worklog_created"]);

    let (status, body) = rest
        .call(
            Method::PUT,
            &format!("/rest/api/3/issue/{key}/worklog/{wid}"),
            Some(json!({"started": "2026-11-27T09:00:00.000+0000", "timeSpentSeconds": 3600})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        event_types(&stack, 2).await,
        ["worklog_created", "worklog_updated"]
    );

    let (status, body) = rest
        .call(
            Method::DELETE,
            &format!("/rest/api/3/issue/{key}/worklog/{wid}"),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT, "{body}");
    assert_eq!(
        event_types(&stack, 3).await,
        ["worklog_created", "worklog_updated", "worklog_deleted"]
    );
    // More cycles publish nothing more.
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(event_types(&stack, 4).await.len(), 3);
    running.stop().await;
}
