//! The webhook receiver against the real broker and registry and the in-process Jira site:
//! forged and unsigned deliveries are refused with nothing published; malformed JSON is
//! dead-lettered with its raw body; duplicated, retried and reordered deliveries yield exactly
//! one record per change, in Jira's order per issue.

mod support;

use std::time::Duration;

use rdkafka::message::Message;
use reqwest::StatusCode;
use sfjira_jira_source::service;
use sfjira_sandbox::jira::webhooks::DeliveryFaults;
use support::*;

#[tokio::test]
async fn forged_unsigned_and_malformed_deliveries() {
    let stack = Stack::new().await;
    let site = jira(0).await;
    let cfg = stack.load(&stack.yaml(
        &sfjira_tests::bootstrap(),
        &site.base_url(),
        "  webhook_secret: {env: TEST_WEBHOOK_SECRET}\n  webhook_listen: \"127.0.0.1:0\"\n  poll_interval_ms: 0\n  max_body_bytes: 4096\n",
    ));
    let running = service::start(&cfg).await.expect("starts");
    let url = format!("http://{}/webhooks/jira", running.webhook_addr.unwrap());
    wait_ready(&url, Duration::from_secs(60)).await;

    let body = br#"{"timestamp":1,"webhookEvent":"jira:issue_created","issue":{"id":"1","key":"PROJ-1","fields":{"project":{"key":"PROJ"},"issuetype":{"name":"Task"},"created":"2026-11-27T10:00:00.000+0000","updated":"2026-11-27T10:00:00.000+0000"}}}"#;
    assert_eq!(
        deliver(&url, body, None, Some("u-1")).await,
        StatusCode::UNAUTHORIZED,
        "unsigned"
    );
    let forged = sign(b"another body");
    assert_eq!(
        deliver(&url, body, Some(&forged), Some("f-1")).await,
        StatusCode::UNAUTHORIZED,
        "forged"
    );
    let sha1 = sign(body).replace("sha256=", "sha1=");
    assert_eq!(
        deliver(&url, body, Some(&sha1), Some("f-2")).await,
        StatusCode::UNAUTHORIZED,
        "unknown method"
    );
    let too_big = vec![b' '; 8192];
    assert_eq!(
        deliver(&url, &too_big, Some(&sign(&too_big)), None).await,
        StatusCode::PAYLOAD_TOO_LARGE
    );

    let malformed = b"{not json";
    assert_eq!(
        deliver(&url, malformed, Some(&sign(malformed)), Some("m-1")).await,
        StatusCode::BAD_REQUEST
    );
    let dlq = stack
        .records("jira-source.dlq", 1, Duration::from_secs(20))
        .await;
    assert_eq!(dlq.len(), 1);
    assert_eq!(
        dlq[0].payload(),
        Some(&malformed[..]),
        "the raw body is kept"
    );
    let header = |name: &str| {
        use rdkafka::message::Headers;
        dlq[0]
            .headers()
            .unwrap()
            .iter()
            .find(|h| h.key == name)
            .and_then(|h| h.value)
            .map(|v| String::from_utf8_lossy(v).to_string())
    };
    assert_eq!(header("sfjira.error.code").as_deref(), Some("SFJ-7001"));
    assert_eq!(
        header("x-atlassian-webhook-identifier").as_deref(),
        Some("m-1")
    );

    // Nothing reached the canonical topic, and none of the refused identifiers was recorded.
    assert!(
        stack
            .records("jira.issues", 1, Duration::from_secs(3))
            .await
            .is_empty()
    );
    let checkpoints = stack
        .records("sfjira.checkpoints", 100, Duration::from_secs(3))
        .await;
    let keys: Vec<String> = checkpoints
        .iter()
        .map(|m| String::from_utf8_lossy(m.key().unwrap()).to_string())
        .collect();
    assert_eq!(
        keys,
        vec!["jira-source:webhook:m-1".to_string()],
        "{keys:?}"
    );

    // The same body, signed, is accepted: one record; its retry publishes nothing more.
    assert_eq!(
        deliver(&url, body, Some(&sign(body)), Some("ok-1")).await,
        StatusCode::OK
    );
    assert_eq!(
        deliver(&url, body, Some(&sign(body)), Some("ok-1")).await,
        StatusCode::OK
    );
    let recs = decode(
        &stack
            .records("jira.issues", 2, Duration::from_secs(5))
            .await,
    )
    .await;
    assert_eq!(recs.len(), 1, "{recs:#?}");
    assert_eq!(recs[0].webhook_id.as_deref(), Some("ok-1"));
    assert_eq!(recs[0].origin, "WEBHOOK");
    running.stop().await;
}

#[tokio::test]
async fn duplicated_retried_and_reordered_deliveries_publish_each_change_once_in_order() {
    let stack = Stack::new().await;
    let site = jira(5).await;
    let rest = Rest::new(&site);
    let cfg = stack.load(&stack.yaml(
        &sfjira_tests::bootstrap(),
        &site.base_url(),
        "  webhook_secret: {env: TEST_WEBHOOK_SECRET}\n  webhook_listen: \"127.0.0.1:0\"\n  poll_interval_ms: 0\n",
    ));
    let running = service::start(&cfg).await.expect("starts");
    let url = format!("http://{}/webhooks/jira", running.webhook_addr.unwrap());
    wait_ready(&url, Duration::from_secs(60)).await;
    rest.register_webhook(&url).await;
    // Every delivery is sent twice (same identifier) and held back up to 1.5 s at random.
    site.state.webhooks.set_faults(DeliveryFaults {
        duplicate_probability: 1.0,
        reorder_max_delay_secs: 1.5,
        ..DeliveryFaults::default()
    });

    let mut keys = Vec::new();
    for i in 0..3 {
        keys.push(rest.create(&format!("issue {i}")).await);
    }
    for round in 0..4 {
        for (_, key) in &keys {
            rest.rename(key, &format!("{key} v{round}")).await;
        }
    }
    tokio::time::timeout(Duration::from_secs(60), site.state.webhooks.idle())
        .await
        .expect("deliveries settle");
    let log = site.state.webhooks.log();
    assert!(
        log.iter()
            .any(|d| d.outcome == sfjira_sandbox::jira::webhooks::deliver::Outcome::Duplicate),
        "the fault fired"
    );

    let expected = 3 * (1 + 4);
    let recs = decode(
        &stack
            .records("jira.issues", expected + 1, Duration::from_secs(10))
            .await,
    )
    .await;
    assert_eq!(recs.len(), expected, "{recs:#?}");
    assert_one_record_per_change(&rest, &keys, &recs).await;

    // A retry sent again later (same identifier; X-Atlassian-Webhook-Retry) publishes nothing.
    let first = log
        .iter()
        .find(|d| d.status == Some(200))
        .unwrap()
        .identifier
        .clone();
    let body = br#"{"timestamp":1,"webhookEvent":"jira:issue_created","issue":{"id":"1","key":"PROJ-1","fields":{}}}"#;
    assert_eq!(
        deliver(&url, body, Some(&sign(body)), Some(&first)).await,
        StatusCode::OK
    );
    let again = stack
        .records("jira.issues", expected + 1, Duration::from_secs(3))
        .await;
    assert_eq!(again.len(), expected);
    running.stop().await;
}

#[tokio::test]
async fn comment_and_worklog_deliveries_reach_their_topics_once() {
    let stack = Stack::new().await;
    let site = jira(3).await;
    let rest = Rest::new(&site);
    let cfg = stack.load(&stack.yaml(
        &sfjira_tests::bootstrap(),
        &site.base_url(),
        "  webhook_secret: {env: TEST_WEBHOOK_SECRET}\n  webhook_listen: \"127.0.0.1:0\"\n  poll_interval_ms: 0\n",
    ));
    let running = service::start(&cfg).await.expect("starts");
    let url = format!("http://{}/webhooks/jira", running.webhook_addr.unwrap());
    wait_ready(&url, Duration::from_secs(60)).await;
    rest.register_webhook(&url).await;
    site.state.webhooks.set_faults(DeliveryFaults {
        duplicate_probability: 1.0,
        ..DeliveryFaults::default()
    });

    let (id, key) = rest.create("with children").await;
    let adf = serde_json::json!({"type": "doc", "version": 1, "content": [{"type": "paragraph", "content": [{"type": "text", "text": "note"}]}]});
    let (status, body) = rest
        .call(
            reqwest::Method::POST,
            &format!("/rest/api/3/issue/{key}/comment"),
            Some(serde_json::json!({"body": adf})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let (status, body) = rest
        .call(
            reqwest::Method::POST,
            &format!("/rest/api/3/issue/{key}/worklog"),
            Some(serde_json::json!({"started": "2026-11-27T09:00:00.000+0000", "timeSpentSeconds": 1800, "comment": adf})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    tokio::time::timeout(Duration::from_secs(30), site.state.webhooks.idle())
        .await
        .expect("deliveries settle");

    let comments = stack
        .records("jira.comments", 2, Duration::from_secs(5))
        .await;
    assert_eq!(comments.len(), 1);
    let worklogs = stack
        .records("jira.worklogs", 2, Duration::from_secs(3))
        .await;
    assert_eq!(worklogs.len(), 1);
    let codec = sfjira_core::avro::AvroCodec::new(&sfjira_tests::registry_config()).unwrap();
    let w = codec.decode(worklogs[0].payload().unwrap()).await.unwrap();
    let text = format!("{:?}", w.value);
    assert!(
        text.contains(&key) && text.contains(&id),
        "issue id and key resolved: {text}"
    );
    assert_eq!(worklogs[0].key(), Some(id.as_bytes()));
    running.stop().await;
}
