//! The org as a whole: records survive a restart through the snapshot file, and the full
//! in-process org (REST + event bus + Pub/Sub server) turns REST writes into change events.

#[path = "salesforce_support/mod.rs"]
mod support;

use reqwest::Method;
use serde_json::json;
use sfjira_sandbox::clock::SandboxClock;
use sfjira_sandbox::salesforce::wiring::spawn_full_for_tests;
use support::*;

#[tokio::test]
async fn records_survive_a_restart_through_the_snapshot() {
    let path =
        std::env::temp_dir().join(format!("sfjira-sf-snapshot-{}.json", uuid::Uuid::new_v4()));
    let mut cfg = config();
    cfg.snapshot_path = Some(path.clone());
    let first = start_with(cfg.clone(), SandboxClock::real_time()).await;
    let t = first.token().await;
    let (status, v) = first
        .json(
            &t,
            Method::POST,
            &format!("{V}/sobjects/Account"),
            Some(json!({"Name": "Persistent"})),
        )
        .await;
    assert_eq!(status, 201);
    let id = v["id"].as_str().unwrap().to_string();
    first.org.server.abort();
    let second = start_with(cfg, SandboxClock::real_time()).await;
    let t = second.token().await;
    let (status, v) = second
        .json(&t, Method::GET, &format!("{V}/sobjects/Account/{id}"), None)
        .await;
    assert_eq!((status, v["Name"].clone()), (200, json!("Persistent")));
    // New Ids continue after the restored ones.
    let (_, v) = second
        .json(
            &t,
            Method::POST,
            &format!("{V}/sobjects/Account"),
            Some(json!({"Name": "Next"})),
        )
        .await;
    assert!(v["id"].as_str().unwrap() > id.as_str());
    let _ = std::fs::remove_file(path);
}

#[tokio::test]
async fn rest_writes_reach_the_event_bus() {
    let full = spawn_full_for_tests(config(), SandboxClock::real_time())
        .await
        .unwrap();
    let http = reqwest::Client::new();
    let base = full.http.base_url.clone();
    let resp = http
        .post(format!("{base}/services/oauth2/token"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(form(&[
            ("grant_type", "client_credentials"),
            ("client_id", CONSUMER_KEY),
            ("client_secret", CONSUMER_SECRET),
        ]))
        .send()
        .await
        .unwrap();
    let token = resp.json::<serde_json::Value>().await.unwrap()["access_token"]
        .as_str()
        .unwrap()
        .to_string();
    let resp = http
        .post(format!("{base}{V}/sobjects/Account"))
        .bearer_auth(&token)
        .json(&json!({"Name": "Evented", "BillingCity": "Oslo"}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 201);
    assert_eq!(full.bus.retained("/data/AccountChangeEvent"), 1);
    assert_eq!(full.bus.retained("/data/ChangeEvents"), 1);
    // An armed gap fault turns the next transaction into a gap event (still one event).
    full.http.faults.update(|f| f.gap_next_transactions = 1);
    let resp = http
        .post(format!("{base}{V}/sobjects/Account"))
        .bearer_auth(&token)
        .json(&json!({"Name": "Gapped"}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 201);
    assert_eq!(full.bus.retained("/data/AccountChangeEvent"), 2);
    assert_eq!(full.http.faults.snapshot().gap_next_transactions, 0);
    assert!(full.pubsub_addr.port() > 0);
}
