//! Invalid or expired replay ids (`on_invalid_replay`) and expired tokens, against the
//! in-process sandbox and the real broker and registry.

mod common;

use std::collections::HashSet;
use std::time::Duration;

use common::*;
use serde_json::json;

const WAIT: Duration = Duration::from_secs(60);

/// Runs the source until it has published `count` records of Account, then stops it.
async fn first_run(org: &Org, dep: &Deployment, count: usize) -> Vec<String> {
    let source = spawn_source(dep.config());
    let mut ids = Vec::new();
    for i in 0..count {
        ids.push(
            org.create("Account", json!({"Name": format!("First {i}")}))
                .await,
        );
    }
    wait_for(&dep.topic("salesforce.cdc.Account"), count, WAIT).await;
    stop_source(source).await;
    ids
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expired_replay_id_fails_by_default_with_a_recovery_hint() {
    let org = Org::start().await;
    let dep = Deployment::new("sfsrc-expired", &org, "").await;
    first_run(&org, &dep, 3).await;

    // Retention of 150 sandbox seconds (5 s wall at scale 30): everything the source saw, and
    // what happened while it was down, leaves the window.
    org.full.bus.set_retention(Duration::from_secs(150));
    org.create("Account", json!({"Name": "While down"})).await;
    tokio::time::sleep(Duration::from_secs(6)).await;
    org.create("Account", json!({"Name": "Retained"})).await;

    let (_tx, handle) = spawn_source(dep.config());
    let err = tokio::time::timeout(Duration::from_secs(30), handle)
        .await
        .expect("the source stops on its own")
        .expect("no panic")
        .expect_err("on_invalid_replay: fail stops the source");
    let text = format!("{err:#}");
    assert!(text.contains("SFJ-6002"), "{text}");
    assert!(text.contains("replay id"), "{text}");
    assert!(text.contains("backfill"), "{text}");
    assert!(text.contains("on_invalid_replay"), "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_replay_earliest_rereads_everything_retained() {
    let org = Org::start().await;
    let dep = Deployment::new("sfsrc-earliest", &org, "  on_invalid_replay: earliest\n").await;
    let first = first_run(&org, &dep, 3).await;
    let down: Vec<String> = vec![
        org.create("Account", json!({"Name": "Down 1"})).await,
        org.create("Account", json!({"Name": "Down 2"})).await,
    ];
    // An org move: every replay id handed out so far is invalid.
    org.full.bus.reset_replay_ids();

    let source = spawn_source(dep.config());
    let topic = dep.topic("salesforce.cdc.Account");
    // The 3 first records, the 3 again (re-read from the earliest retained event), the 2
    // made while the source was down.
    let recs = wait_for(&topic, 8, WAIT).await;
    let after = org.create("Account", json!({"Name": "After"})).await;
    let recs2 = wait_for(&topic, 9, WAIT).await;
    stop_source(source).await;
    let keys: HashSet<&str> = recs2.iter().map(|r| r.key.as_str()).collect();
    for id in first.iter().chain(&down).chain([&after]) {
        assert!(keys.contains(id.as_str()), "{id} missing");
    }
    assert_eq!(recs.len(), 8);
    assert_eq!(recs2.len(), 9);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_replay_latest_skips_to_new_changes() {
    let org = Org::start().await;
    let dep = Deployment::new("sfsrc-latest", &org, "  on_invalid_replay: latest\n").await;
    first_run(&org, &dep, 3).await;
    let down = org.create("Account", json!({"Name": "Down"})).await;
    org.full.bus.reset_replay_ids();

    let source = spawn_source(dep.config());
    // Let it subscribe (LATEST) before the next change.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let after = org.create("Account", json!({"Name": "After"})).await;
    let topic = dep.topic("salesforce.cdc.Account");
    let recs = wait_for(&topic, 4, WAIT).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    stop_source(source).await;
    let recs = read_changes(&topic, recs.len() + 1, Duration::from_secs(5)).await;
    let keys: Vec<&str> = recs.iter().map(|r| r.key.as_str()).collect();
    assert_eq!(recs.len(), 4, "{keys:?}");
    assert!(keys.contains(&after.as_str()));
    assert!(
        !keys.contains(&down.as_str()),
        "LATEST skips what happened in between"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn token_expiry_mid_stream_loses_and_duplicates_nothing() {
    let _ = tracing_subscriber::fmt()
        .with_test_writer()
        .with_env_filter("info,sfjira_salesforce_source=debug")
        .try_init();
    let org = Org::start().await;
    let dep = Deployment::new("sfsrc-token", &org, "").await;
    let topic = dep.topic("salesforce.cdc.Account");
    let source = spawn_source(dep.config());
    let mut ids = Vec::new();
    for i in 0..10 {
        ids.push(
            org.create("Account", json!({"Name": format!("T{i}")}))
                .await,
        );
    }
    wait_for(&topic, 10, WAIT).await;

    // The session dies, and the stream breaks every 7 events: each reconnect meets
    // UNAUTHENTICATED until the source logs in again.
    org.expire_tokens().await;
    org.faults(json!({"dropStreamsAfterEvents": 7})).await;
    for i in 10..40 {
        ids.push(
            org.create("Account", json!({"Name": format!("T{i}")}))
                .await,
        );
        if i % 10 == 0 {
            org.expire_tokens().await;
        }
    }
    // Four or five dropped streams, each followed by a backoff of at most 1 s and, after each
    // expiry, one refused Subscribe and a login: a few seconds in all (about 4 s measured), so
    // WAIT leaves a wide margin. (This once needed more: the events of the response a closing
    // server sent last were aborted when asking for more failed, and the resubscription met
    // the same end again; see `ChannelRunner::stream`.)
    wait_for(&topic, 40, WAIT).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    stop_source(source).await;
    let recs = read_changes(&topic, 41, Duration::from_secs(5)).await;
    assert_eq!(recs.len(), 40, "every change exactly once");
    let by_key = assert_exactly_once(&recs);
    for id in &ids {
        assert_eq!(by_key[id].len(), 1, "{id}");
    }
}
