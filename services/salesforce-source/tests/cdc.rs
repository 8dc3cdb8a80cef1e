//! salesforce-source against the in-process sandbox org and the real Kafka broker and registry:
//! what arrives, in which shape, and that restarts, expired replay ids and expired tokens
//! neither lose nor duplicate anything.

mod common;

use std::time::Duration;

use common::*;
use serde_json::json;

const WAIT: Duration = Duration::from_secs(60);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn creates_updates_deletes_arrive_as_typed_avro_with_decoded_field_names() {
    let org = Org::start().await;
    let dep = Deployment::new("sfsrc-shape", &org, "").await;
    let source = spawn_source(dep.config());

    let id = org
        .create(
            "Account",
            json!({"Name": "Acme", "Phone": "+33 1 23", "BillingStreet": "1 rue Haute", "BillingCity": "Paris", "AnnualRevenue": 1500000.5}),
        )
        .await;
    org.update(
        "Account",
        &id,
        json!({"BillingCity": "Lyon", "Phone": null}),
    )
    .await;
    org.delete("Account", &id).await;

    let topic = dep.topic("salesforce.cdc.Account");
    let recs = wait_for(&topic, 3, WAIT).await;
    stop_source(source).await;
    assert_eq!(recs.len(), 3, "{recs:#?}");
    assert!(recs.iter().all(|r| r.key == id), "key = record Id");
    let types: Vec<&str> = recs.iter().map(Rec::change_type).collect();
    assert_eq!(types, ["CREATE", "UPDATE", "DELETE"]);

    let create = &recs[0];
    assert_eq!(create.value["Name"], "Acme");
    assert_eq!(create.value["AnnualRevenue"], 1500000.5, "typed, not text");
    assert_eq!(create.value["BillingAddress"]["City"], "Paris");
    assert_eq!(create.strings("recordIds"), vec![id.clone()]);
    assert!(create.header("commitTimestamp").is_i64());

    let update = &recs[1];
    let changed = update.strings("changedFields");
    assert!(
        changed.contains(&"BillingAddress.City".to_string()),
        "{changed:?}"
    );
    assert!(changed.contains(&"Phone".to_string()), "{changed:?}");
    assert_eq!(update.strings("nulledFields"), ["Phone"]);
    assert_eq!(update.value["BillingAddress"]["City"], "Lyon");
    assert!(
        update.value["Name"].is_null(),
        "an update carries its changed fields only"
    );

    // The replay id is the hex of the event's 8 bytes and grows with the stream.
    let replays: Vec<u64> = recs
        .iter()
        .map(|r| u64::from_str_radix(r.value["replay_id"].as_str().unwrap(), 16).unwrap())
        .collect();
    assert!(replays.windows(2).all(|w| w[0] < w[1]), "{replays:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restart_resumes_from_the_checkpoint_without_loss_or_duplicate() {
    let org = Org::start().await;
    let dep = Deployment::new("sfsrc-restart", &org, "").await;
    let topic = dep.topic("salesforce.cdc.Account");

    let source = spawn_source(dep.config());
    let mut ids = Vec::new();
    for i in 0..20 {
        ids.push(
            org.create("Account", json!({"Name": format!("A{i}")}))
                .await,
        );
    }
    wait_for(&topic, 20, WAIT).await;
    stop_source(source).await;

    // Changes while the source is down, then a restart.
    for id in &ids[..10] {
        org.update("Account", id, json!({"Phone": "1"})).await;
    }
    let source = spawn_source(dep.config());
    for id in &ids[10..] {
        org.update("Account", id, json!({"Phone": "2"})).await;
    }
    let recs = wait_for(&topic, 40, WAIT).await;
    // Nothing more trickles in.
    tokio::time::sleep(Duration::from_secs(2)).await;
    stop_source(source).await;
    let recs_after = read_changes(&topic, 41, Duration::from_secs(5)).await;
    assert_eq!(recs_after.len(), 40, "exactly 40 changes, no duplicate");
    let by_key = assert_exactly_once(&recs);
    for id in &ids {
        let types: Vec<&str> = by_key[id].iter().map(Rec::change_type).collect();
        assert_eq!(types, ["CREATE", "UPDATE"], "{id}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keepalives_advance_the_stored_position() {
    use rdkafka::message::Message;
    use sfjira_salesforce_source::checkpoint::Position;

    let org = Org::start().await;
    let dep = Deployment::new("sfsrc-keepalive", &org, "").await;
    let source = spawn_source(dep.config());
    org.create("Account", json!({"Name": "Only one"})).await;
    let recs = wait_for(&dep.topic("salesforce.cdc.Account"), 1, WAIT).await;
    let event_replay =
        u64::from_str_radix(recs[0].value["replay_id"].as_str().unwrap(), 16).unwrap();
    // Keepalives every 60 sandbox seconds = 2 s wall at scale 30.
    tokio::time::sleep(Duration::from_secs(7)).await;
    stop_source(source).await;

    let key = sfjira_salesforce_source::checkpoint::key("/data/AccountChangeEvent");
    let checkpoints = sfjira_tests::read_all(
        &dep.topic("sfjira.checkpoints"),
        1000,
        Duration::from_secs(5),
    )
    .await;
    let positions: Vec<u64> = checkpoints
        .iter()
        .filter(|m| m.key() == Some(key.as_bytes()))
        .map(|m| {
            let p: Position = serde_json::from_slice(m.payload().unwrap()).unwrap();
            u64::from_str_radix(&p.replay_id, 16).unwrap()
        })
        .collect();
    assert!(
        positions.len() >= 3,
        "a checkpoint per keepalive: {positions:?}"
    );
    assert!(
        positions.last().copied().unwrap() > event_replay,
        "the stored position moved past the last event ({event_replay}): {positions:?}"
    );
}
