//! The poller alone (no webhook configured): every change reaches Kafka within one interval,
//! exactly once, in order, with the watermark committed in `sfjira.checkpoints`.

mod support;

use std::time::{Duration, Instant};

use rdkafka::message::Message;
use serde_json::json;
use sfjira_jira_source::service;
use support::*;

#[tokio::test]
async fn the_poller_alone_delivers_every_change_within_one_interval() {
    let stack = Stack::new().await;
    let site = jira(0).await;
    let rest = Rest::new(&site);
    let interval = Duration::from_secs(2);
    let cfg = stack.load(&stack.yaml(
        &sfjira_tests::bootstrap(),
        &site.base_url(),
        &format!(
            "  poll_interval_ms: {}\n  poll_page_size: 2\n",
            interval.as_millis()
        ),
    ));
    assert!(cfg.jira_source.as_ref().unwrap().webhook_secret.is_none());
    let running = service::start(&cfg).await.expect("starts");
    assert!(
        running.webhook_addr.is_none(),
        "no webhook receiver without a secret"
    );
    let deadline = Instant::now() + Duration::from_secs(60);
    while !running.publisher.is_ready().await {
        assert!(Instant::now() < deadline, "never connected to Kafka");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    let mut keys = Vec::new();
    for i in 0..3 {
        keys.push(rest.create(&format!("polled {i}")).await);
    }
    // A custom field with a value, as a mapping's condition may read it.
    let (status, body) = rest
        .call(
            reqwest::Method::PUT,
            &format!("/rest/api/3/issue/{}", keys[1].1),
            Some(json!({"fields": {"customfield_10016": 5}})),
        )
        .await;
    assert_eq!(status, reqwest::StatusCode::NO_CONTENT, "{body}");
    for round in 0..2 {
        for (_, key) in &keys {
            rest.rename(key, &format!("{key} r{round}")).await;
        }
    }
    let (status, _) = rest
        .call(
            reqwest::Method::POST,
            &format!("/rest/api/3/issue/{}/comment", keys[0].1),
            Some(json!({"body": {"type": "doc", "version": 1, "content": [{"type": "paragraph", "content": [{"type": "text", "text": "polled comment"}]}]}})),
        )
        .await;
    assert_eq!(status, reqwest::StatusCode::CREATED);
    let changed_at = Instant::now();

    // Creations and renames, the story points, and the comment's bump of issue 0's `updated`
    // (no changelog).
    let expected = 3 * (1 + 2) + 1 + 1;
    let messages = stack.records("jira.issues", expected, interval * 3).await;
    // Within one interval (plus a cycle's own time), bounded generously for a loaded machine.
    assert!(
        changed_at.elapsed() < interval * 3,
        "took {:?}",
        changed_at.elapsed()
    );
    let comments = stack.records("jira.comments", 1, interval * 3).await;
    assert_eq!(comments.len(), 1);

    // Several more cycles: the overlap re-reads the same issues, nothing is published twice.
    tokio::time::sleep(interval * 2).await;
    let recs = decode(
        &stack
            .records("jira.issues", expected + 1, Duration::from_secs(3))
            .await,
    )
    .await;
    assert_eq!(messages.len(), expected);
    assert!(recs.iter().all(|r| r.origin == "POLL"), "{recs:#?}");
    // No `custom_fields` configured: polled records carry the custom fields, as webhooks do.
    let last_of_1 = recs.iter().rfind(|r| r.issue_id == keys[1].0);
    assert!(
        last_of_1.is_some_and(|r| r.custom_field_names.iter().any(|n| n == "Story Points")),
        "{last_of_1:#?}"
    );
    assert_one_record_per_change(&rest, &keys, &recs).await;
    let bumps: Vec<&Rec> = recs
        .iter()
        .filter(|r| r.event_type == "jira:issue_updated" && r.changelog_id.is_none())
        .collect();
    assert_eq!(bumps.len(), 1, "{bumps:#?}");
    assert_eq!(bumps[0].issue_id, keys[0].0);
    assert_eq!(
        stack
            .records("jira.comments", 2, Duration::from_secs(2))
            .await
            .len(),
        1
    );
    let watermark = stack
        .records("sfjira.checkpoints", 10_000, Duration::from_secs(3))
        .await
        .iter()
        .any(|m| m.key() == Some(b"jira-source:poll:PROJ"));
    assert!(watermark, "the watermark is committed");
    running.stop().await;
}

/// Jira's rate limits: a storm of 429s without `Retry-After` and then 503s with one are
/// retried with jittered backoff (core `retry`), and the cycle still delivers every change.
#[tokio::test]
async fn the_poller_rides_out_429_storms_and_503s() {
    use sfjira_sandbox::jira::ratelimit::Fault;
    let stack = Stack::new().await;
    let site = jira(0).await;
    let rest = Rest::new(&site);
    let cfg = stack.load(&stack.yaml(
        &sfjira_tests::bootstrap(),
        &site.base_url(),
        "  poll_interval_ms: 1000\n  retry: {initial_delay_ms: 50, max_delay_ms: 500, max_attempts: 10}\n",
    ));
    let (_, key) = rest.create("limited").await;
    rest.rename(&key, "limited, renamed").await;
    site.state.limiter.inject(Fault::Storm429 { requests: 4 });
    site.state.limiter.inject(Fault::Unavailable503 {
        requests: 2,
        retry_after_secs: 1,
    });
    let running = service::start(&cfg).await.expect("starts");
    let recs = decode(
        &stack
            .records("jira.issues", 2, Duration::from_secs(60))
            .await,
    )
    .await;
    assert_eq!(recs.len(), 2, "{recs:#?}");
    assert_eq!(recs[0].event_type, "jira:issue_created");
    assert_eq!(recs[1].summary.as_deref(), Some("limited, renamed"));
    running.stop().await;
}
