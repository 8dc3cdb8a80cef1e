//! A Salesforce transaction is never split across Kafka transactions: every committed
//! checkpoint (one per Kafka transaction) lies on a Salesforce transaction boundary, and the
//! events of one Salesforce transaction are published in `sequenceNumber` order.

mod common;

use std::time::Duration;

use common::*;
use rdkafka::message::Message;
use serde_json::json;
use sfjira_salesforce_source::checkpoint::{self, Position};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_salesforce_transaction_is_never_split_across_kafka_transactions() {
    let org = Org::start().await;
    // Small Kafka batches and small fetches: a 60-event transaction spans many responses.
    let dep = Deployment::new("sfsrc-txn", &org, "  batch_size: 5\n  fetch_size: 7\n").await;
    let topic = dep.topic("salesforce.cdc.Account");
    let source = spawn_source(dep.config());
    for round in 0..3 {
        create_in_one_transaction(&org, 60, &format!("T{round}")).await;
        org.create("Account", json!({"Name": format!("Single {round}")}))
            .await;
    }
    let recs = wait_for(&topic, 183, Duration::from_secs(90)).await;
    stop_source(source).await;

    // (replay id, transactionKey, sequenceNumber) in stream order.
    let mut events: Vec<(u64, String, i64)> = recs
        .iter()
        .map(|r| {
            (
                u64::from_str_radix(r.value["replay_id"].as_str().unwrap(), 16).unwrap(),
                r.header("transactionKey").as_str().unwrap().to_string(),
                r.header("sequenceNumber").as_i64().unwrap(),
            )
        })
        .collect();
    events.sort();
    let keys: std::collections::BTreeSet<&str> = events.iter().map(|e| e.1.as_str()).collect();
    assert_eq!(
        keys.len(),
        6,
        "three 60-event transactions and three single ones"
    );
    for key in &keys {
        let seqs: Vec<i64> = events.iter().filter(|e| e.1 == *key).map(|e| e.2).collect();
        assert!(seqs.windows(2).all(|w| w[0] < w[1]), "{key}: {seqs:?}");
    }

    let cp_key = checkpoint::key("/data/AccountChangeEvent");
    let positions: Vec<u64> = sfjira_tests::read_all(
        &dep.topic("sfjira.checkpoints"),
        10_000,
        Duration::from_secs(5),
    )
    .await
    .iter()
    .filter(|m| m.key() == Some(cp_key.as_bytes()))
    .map(|m| {
        let p: Position = serde_json::from_slice(m.payload().unwrap()).unwrap();
        u64::from_str_radix(&p.replay_id, 16).unwrap()
    })
    .collect();
    assert!(positions.len() >= 2, "{positions:?}");
    for p in &positions {
        for key in &keys {
            let before = events.iter().any(|e| e.1 == *key && e.0 <= *p);
            let after = events.iter().any(|e| e.1 == *key && e.0 > *p);
            assert!(
                !(before && after),
                "checkpoint {p} splits Salesforce transaction {key}"
            );
        }
    }
}
