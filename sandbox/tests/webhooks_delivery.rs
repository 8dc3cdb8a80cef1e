//! Webhook delivery against a real receiver (axum on 127.0.0.1:0): retries with one identifier
//! and a growing retry header, signatures, JQL filters, faults; and the registration REST API.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use chrono::{DateTime, Utc};
use serde_json::json;
use sfjira_sandbox::clock::SandboxClock;
use sfjira_sandbox::jira::jql::{FieldResolver, JqlIssue};
use sfjira_sandbox::jira::webhooks::deliver::Outcome;
use sfjira_sandbox::jira::webhooks::payload::{self, EventName};
use sfjira_sandbox::jira::webhooks::sign::{signature_header, verify};
use sfjira_sandbox::jira::webhooks::{
    DeliveryConfig, DeliveryFaults, Flow, WebhookConfig, WebhookDispatcher, WebhookEvent,
    WebhookRegistry, registry,
};

/// Each request received: its headers and raw body.
type Received = Arc<Mutex<Vec<(HeaderMap, Vec<u8>)>>>;

#[derive(Clone, Default)]
struct Receiver {
    /// Statuses to answer, in order; 200 once exhausted.
    script: Arc<Mutex<Vec<u16>>>,
    got: Received,
}

async fn receive(
    State(r): State<Receiver>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> StatusCode {
    r.got.lock().unwrap().push((headers, body.to_vec()));
    let mut s = r.script.lock().unwrap();
    let code = if s.is_empty() { 200 } else { s.remove(0) };
    StatusCode::from_u16(code).unwrap()
}

async fn receiver(script: Vec<u16>) -> (Receiver, String) {
    let r = Receiver {
        script: Arc::new(Mutex::new(script)),
        ..Default::default()
    };
    let app = Router::new()
        .route("/hook", post(receive))
        .with_state(r.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (r, format!("http://{addr}/hook"))
}

struct Site;
impl FieldResolver for Site {
    fn custom_field_id(&self, _: &str) -> Option<String> {
        None
    }
}

struct Snapshot(&'static str);
impl JqlIssue for Snapshot {
    fn id(&self) -> u64 {
        10001
    }
    fn key(&self) -> &str {
        "SF-1"
    }
    fn project_key(&self) -> &str {
        self.0
    }
    fn issue_type(&self) -> &str {
        "Task"
    }
    fn status(&self) -> &str {
        "To Do"
    }
    fn labels(&self) -> &[String] {
        &[]
    }
    fn assignee(&self) -> Option<&str> {
        None
    }
    fn reporter(&self) -> Option<&str> {
        None
    }
    fn custom_field_text(&self, _: &str) -> Option<String> {
        None
    }
    fn created(&self) -> DateTime<Utc> {
        Utc::now()
    }
    fn updated(&self) -> DateTime<Utc> {
        Utc::now()
    }
}

/// 10 sandbox hours per wall second: the 5–15 minute retry waits take 30–90 ms.
fn fast_clock() -> SandboxClock {
    SandboxClock::new(36_000.0)
}

fn dispatcher(clock: SandboxClock) -> WebhookDispatcher {
    let reg = WebhookRegistry::new("http://sandbox.test", clock.clone());
    WebhookDispatcher::new(reg, clock, DeliveryConfig::default()).unwrap()
}

const OPS: Snapshot = Snapshot("OPS");
const SF: Snapshot = Snapshot("SF");

fn event<'a>(issue: &'a Snapshot, clock: &SandboxClock) -> WebhookEvent<'a> {
    let user = payload::user("http://sandbox.test", "acc-1", "Ann", "UTC");
    let json_issue = json!({"id": "10001", "key": "SF-1", "self": "http://sandbox.test/rest/api/2/issue/10001", "fields": {}});
    WebhookEvent {
        name: EventName::IssueCreated.as_str().into(),
        payload: payload::issue_created(clock.now(), user, json_issue),
        issue: Some(issue),
        resolver: &Site,
        flow: Flow::Primary,
    }
}

async fn settle(d: &WebhookDispatcher) {
    tokio::time::timeout(Duration::from_secs(20), d.idle())
        .await
        .expect("deliveries finish");
}

#[tokio::test]
async fn two_failures_then_success_is_three_signed_deliveries_with_one_identifier() {
    let (rx, url) = receiver(vec![500, 500]).await;
    // Slower than the other tests so the retry spacing can be checked with little slack.
    let clock = SandboxClock::new(3_600.0);
    let d = dispatcher(clock.clone());
    d.registry().add(WebhookConfig {
        name: "sf".into(),
        url,
        events: vec!["jira:issue_created".into()],
        secret: Some("It's a Secret to Everybody".into()),
        ..Default::default()
    });
    let ids = d.dispatch(event(&SF, &clock));
    assert_eq!(ids.len(), 1);
    settle(&d).await;

    let got = rx.got.lock().unwrap().clone();
    assert_eq!(got.len(), 3);
    for (i, (h, body)) in got.iter().enumerate() {
        let h = |n: &str| h.get(n).map(|v| v.to_str().unwrap().to_string());
        assert_eq!(
            h("x-atlassian-webhook-identifier").as_deref(),
            Some(ids[0].as_str())
        );
        let retry = if i == 0 { None } else { Some(i.to_string()) };
        assert_eq!(h("x-atlassian-webhook-retry"), retry, "attempt {i}");
        assert_eq!(h("x-atlassian-webhook-flow").as_deref(), Some("Primary"));
        assert!(h("content-type").unwrap().starts_with("application/json"));
        let sig = h("x-hub-signature").unwrap();
        assert_eq!(sig, signature_header("It's a Secret to Everybody", body));
        assert!(verify(&sig, "It's a Secret to Everybody", body));
        let v: serde_json::Value = serde_json::from_slice(body).unwrap();
        assert_eq!(v["webhookEvent"], "jira:issue_created");
        assert_eq!(v["issue_event_type_name"], "issue_created");
        assert!(v["timestamp"].is_i64());
    }
    assert_eq!(got[0].1, got[2].1, "the body is the same on every retry");
    let outcomes: Vec<Outcome> = d.log().iter().map(|r| r.outcome).collect();
    assert_eq!(
        outcomes,
        [Outcome::WillRetry, Outcome::WillRetry, Outcome::Delivered]
    );
    // The retries were spaced 5–15 sandbox minutes apart (plus the attempt's own time, which
    // a busy machine stretches: one wall millisecond is 3.6 sandbox seconds here).
    let log = d.log();
    for pair in log.windows(2) {
        let gap = pair[1].at - pair[0].at;
        assert!(
            gap >= chrono::TimeDelta::minutes(5) && gap < chrono::TimeDelta::minutes(20),
            "{gap}"
        );
    }
}

#[tokio::test]
async fn jql_filter_event_list_and_non_retryable_statuses() {
    let (rx, url) = receiver(vec![404]).await;
    let clock = fast_clock();
    let d = dispatcher(clock.clone());
    d.registry().add(WebhookConfig {
        url: url.clone(),
        jql: Some("project = SF".into()),
        ..Default::default()
    });
    d.registry().add(WebhookConfig {
        url,
        events: vec!["comment_created".into()],
        ..Default::default()
    });
    assert!(
        d.dispatch(event(&OPS, &clock)).is_empty(),
        "filtered out / not subscribed"
    );
    assert_eq!(d.dispatch(event(&SF, &clock)).len(), 1);
    settle(&d).await;
    // 404 is never retried.
    assert_eq!(rx.got.lock().unwrap().len(), 1);
    assert_eq!(d.log()[0].outcome, Outcome::Failed);
    assert!(rx.got.lock().unwrap()[0].0.get("x-hub-signature").is_none());
}

#[tokio::test]
async fn outage_queues_duplicates_repeat_and_drops_vanish() {
    let (rx, url) = receiver(vec![]).await;
    let clock = fast_clock();
    let d = dispatcher(clock.clone());
    d.registry().add(WebhookConfig {
        url,
        ..Default::default()
    });

    d.set_faults(DeliveryFaults {
        outage: true,
        ..Default::default()
    });
    d.dispatch(event(&SF, &clock));
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(
        rx.got.lock().unwrap().is_empty(),
        "nothing goes out during an outage"
    );
    d.set_faults(DeliveryFaults::default());
    settle(&d).await;
    assert_eq!(rx.got.lock().unwrap().len(), 1);

    d.set_faults(DeliveryFaults {
        duplicate_probability: 1.0,
        ..Default::default()
    });
    let id = d.dispatch(event(&SF, &clock)).remove(0);
    settle(&d).await;
    let got = rx.got.lock().unwrap().clone();
    assert_eq!(got.len(), 3);
    assert!(
        got[1..]
            .iter()
            .all(|(h, _)| h["x-atlassian-webhook-identifier"] == id.as_str())
    );

    d.set_faults(DeliveryFaults {
        drop_probability: 1.0,
        ..Default::default()
    });
    d.dispatch(event(&SF, &clock));
    settle(&d).await;
    assert_eq!(rx.got.lock().unwrap().len(), 3);
    assert_eq!(d.log().last().unwrap().outcome, Outcome::Dropped);
}

#[tokio::test]
async fn registration_rest_api() {
    let reg = WebhookRegistry::new("http://sandbox.test", SandboxClock::default());
    let app = registry::router(reg.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!(
        "http://{}/rest/webhooks/1.0/webhook",
        listener.local_addr().unwrap()
    );
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    let c = reqwest::Client::new();

    let body = json!({
        "name": "sfjira", "url": "https://example.test/jira", "events": ["jira:issue_updated"],
        "filters": {"issue-related-events-section": "project = SF"}, "excludeBody": false, "secret": "s3cret"
    });
    let r = c.post(&base).json(&body).send().await.unwrap();
    assert_eq!(r.status(), 201);
    let v: serde_json::Value = r.json().await.unwrap();
    assert_eq!(v["isSigned"], true);
    assert!(v.get("secret").is_none(), "the secret is write-once");
    assert_eq!(v["filters"]["issue-related-events-section"], "project = SF");
    let this = v["self"].as_str().unwrap().to_string();
    assert!(this.ends_with("/rest/webhooks/1.0/webhook/1"));
    assert_eq!(reg.get(1).unwrap().config.secret.as_deref(), Some("s3cret"));

    let all: serde_json::Value = c.get(&base).send().await.unwrap().json().await.unwrap();
    assert_eq!(all.as_array().unwrap().len(), 1);
    assert_eq!(
        c.get(format!("{base}/1")).send().await.unwrap().status(),
        200
    );
    assert_eq!(
        c.delete(format!("{base}/1")).send().await.unwrap().status(),
        204
    );
    assert_eq!(
        c.get(format!("{base}/1")).send().await.unwrap().status(),
        404
    );
    assert_eq!(
        c.post(&base)
            .json(&json!({"name": "x"}))
            .send()
            .await
            .unwrap()
            .status(),
        400
    );
}
