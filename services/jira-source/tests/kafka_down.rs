//! Kafka unreachable → the receiver answers 503 (so Jira retries) and acknowledges nothing;
//! once the broker is reachable the same delivery is published and answered 200.
//!
//! "Unreachable" is a bootstrap address nothing listens on; "back" is a TCP proxy started on
//! that address towards the real broker (which then advertises itself), so the real broker is
//! never stopped.

mod support;

use std::time::{Duration, Instant};

use reqwest::StatusCode;
use sfjira_jira_source::service;
use support::*;

async fn proxy(listener: tokio::net::TcpListener, target: String) {
    loop {
        let Ok((mut inbound, _)) = listener.accept().await else {
            return;
        };
        let target = target.clone();
        tokio::spawn(async move {
            if let Ok(mut outbound) = tokio::net::TcpStream::connect(target).await {
                let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
            }
        });
    }
}

#[tokio::test]
async fn kafka_unreachable_answers_503_then_the_delivery_succeeds() {
    let stack = Stack::new().await;
    let site = jira(0).await;
    // A free port, closed again: connections are refused until the proxy binds it.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let closed = format!("127.0.0.1:{port}");
    let cfg = stack.load(&stack.yaml(
        &closed,
        &site.base_url(),
        "  webhook_secret: {env: TEST_WEBHOOK_SECRET}\n  webhook_listen: \"127.0.0.1:0\"\n  poll_interval_ms: 0\n",
    ));
    let running = service::start(&cfg).await.expect("starts without Kafka");
    let url = format!("http://{}/webhooks/jira", running.webhook_addr.unwrap());

    let body = br#"{"timestamp":1764237600000,"webhookEvent":"jira:issue_created","issue":{"id":"77","key":"PROJ-77","fields":{"project":{"key":"PROJ"},"issuetype":{"name":"Task"},"summary":"while Kafka was down","created":"2026-11-27T10:00:00.000+0000","updated":"2026-11-27T10:00:00.000+0000"}}}"#;
    for _ in 0..3 {
        assert_eq!(
            deliver(&url, body, Some(&sign(body)), Some("down-1")).await,
            StatusCode::SERVICE_UNAVAILABLE
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    assert!(
        stack
            .records("jira.issues", 1, Duration::from_secs(2))
            .await
            .is_empty(),
        "nothing acknowledged, nothing published"
    );

    let listener = tokio::net::TcpListener::bind(&closed)
        .await
        .expect("the port is free again");
    tokio::spawn(proxy(listener, sfjira_tests::bootstrap()));
    // Jira retries; the first retry after Kafka is back succeeds.
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        let status = deliver(&url, body, Some(&sign(body)), Some("down-1")).await;
        if status == StatusCode::OK {
            break;
        }
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
        assert!(Instant::now() < deadline, "still 503 after Kafka came back");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let recs = decode(
        &stack
            .records("jira.issues", 2, Duration::from_secs(5))
            .await,
    )
    .await;
    assert_eq!(recs.len(), 1, "{recs:#?}");
    assert_eq!(recs[0].summary.as_deref(), Some("while Kafka was down"));
    running.stop().await;
}
