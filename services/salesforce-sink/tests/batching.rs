//! Batch closing and delivery windows: a lone change goes after the linger, not later;
//! commands of a `batched` flow wait for their window and are applied together, edits to one
//! record coalesced into one write.

mod support;

use std::time::{Duration, Instant};

use serde_json::json;
use sfjira_core::command::DeliveryMode;
use support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batched_commands_wait_for_their_window_and_coalesce() {
    let org = Org::start().await;
    let dep = Deployment::new("sfsink-window", &org, "").await;
    let sink = spawn_sink(dep.config());
    // A realtime command: applied after the linger.
    dep.produce(&[upsert(
        "Account",
        "jira:RT-1",
        Some(("Jira_Key__c", "RT-1")),
        json!({"Name": "Realtime"}),
    )])
    .await;
    dep.audit(1, Duration::from_secs(30)).await;

    // Three batched edits (6 s window) of two records.
    let window = 6_000;
    let batched = |k: &str, name: &str| {
        let mut c = upsert(
            "Account",
            &format!("jira:{k}"),
            Some(("Jira_Key__c", k)),
            json!({"Name": name}),
        );
        c.delivery = DeliveryMode::Batched {
            interval_ms: window,
        };
        c
    };
    let producer = dep.producer().await;
    // Start right after a window boundary so all three land in one window.
    let now = chrono::Utc::now().timestamp_millis() as u64;
    let to_next = window - now % window;
    tokio::time::sleep(Duration::from_millis(to_next + 50)).await;
    let writes_before = org.transactions_on("Account").len();
    let started = Instant::now();
    producer
        .send(&[batched("BA-1", "first"), batched("BA-2", "other")])
        .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    producer.send(&[batched("BA-1", "second")]).await;
    tokio::time::sleep(Duration::from_millis(700)).await;
    assert_eq!(
        org.transactions_on("Account").len(),
        writes_before,
        "nothing written before the window closes"
    );
    let audit = dep.audit(4, Duration::from_secs(30)).await;
    let waited = started.elapsed();
    stop_sink(sink).await;

    assert!(
        waited >= Duration::from_millis(4_000),
        "held until the window closed"
    );
    let live = org
        .query_all("SELECT Id, Name, Jira_Key__c FROM Account", "Jira_Key__c")
        .await;
    let writes: Vec<_> = org
        .transactions_on("Account")
        .iter()
        .map(|t| {
            t.changes
                .iter()
                .map(|c| (c.change_type, c.values.get("Name").cloned()))
                .collect::<Vec<_>>()
        })
        .collect();
    assert_eq!(
        live["BA-1"]["Name"], "second",
        "the later edit wins; writes {writes:?}, audit {audit:?}"
    );
    assert_eq!(live["BA-2"]["Name"], "other");
    assert_eq!(
        org.transactions_on("Account").len() - writes_before,
        1,
        "the window's three commands in one call"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replayed_commands_are_skipped_after_a_restart() {
    let org = Org::start().await;
    let dep = Deployment::new("sfsink-replay", &org, "").await;
    let c = upsert(
        "Account",
        "jira:RP-1",
        Some(("Jira_Key__c", "RP-1")),
        json!({"Name": "Once"}),
    );
    dep.produce(std::slice::from_ref(&c)).await;
    let sink = spawn_sink(dep.config());
    dep.audit(1, Duration::from_secs(30)).await;
    stop_sink(sink).await;
    let writes = org.transactions_on("Account").len();
    // The same command again (a transformer replay): a new sink instance skips it.
    dep.produce(std::slice::from_ref(&c)).await;
    let sink = spawn_sink(dep.config());
    tokio::time::sleep(Duration::from_secs(3)).await;
    stop_sink(sink).await;
    assert_eq!(
        org.transactions_on("Account").len(),
        writes,
        "not applied twice"
    );
    assert_eq!(dep.audit(2, Duration::from_secs(3)).await.len(), 1);
}
