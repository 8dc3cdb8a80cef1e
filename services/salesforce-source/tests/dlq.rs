//! Events that cannot be published go to `salesforce-source.dlq` with their raw bytes, schema
//! id and error headers, and the stream goes on: a payload that does not decode (SFJ-6001) and
//! a `GetSchema` that keeps failing past `schema_retry` (SFJ-6005). A `GetSchema` failure
//! within the budget is retried and dead-letters nothing. Against the in-process sandbox (its
//! `corruptNextEvents` / `getSchemaUnavailable*` faults) and the real broker and registry.

mod common;

use std::time::Duration;

use common::*;
use rdkafka::message::{Headers, Message, OwnedMessage};
use serde_json::json;

const WAIT: Duration = Duration::from_secs(60);
const CHANNEL: &str = "/data/AccountChangeEvent";
/// A small GetSchema budget, so giving up takes well under a second.
const SCHEMA_RETRY: &str = "  schema_retry: {initial_delay_ms: 50, max_delay_ms: 200, max_attempts: 3, max_elapsed_ms: 10000}\n";

fn header(m: &OwnedMessage, name: &str) -> Option<String> {
    m.headers()
        .and_then(|hs| hs.iter().find(|h| h.key == name))
        .and_then(|h| h.value)
        .map(|v| String::from_utf8_lossy(v).to_string())
}

/// What the sandbox stored for event `event_id` on the Account channel.
fn stored(org: &Org, event_id: &str) -> sfjira_sandbox::salesforce::cdc::log::StoredEvent {
    let bus = &org.full.bus;
    bus.read(CHANNEL, bus.earliest(CHANNEL).unwrap(), 1000)
        .unwrap()
        .into_iter()
        .find(|e| e.event_id == event_id)
        .expect("the DLQ key is the id of an event the sandbox sent")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_undecodable_payload_is_dead_lettered_and_later_events_arrive() {
    let org = Org::start().await;
    let dep = Deployment::new("sfsrc-corrupt", &org, "").await;
    let topic = dep.topic("salesforce.cdc.Account");
    let source = spawn_source(dep.config());
    let first = org.create("Account", json!({"Name": "Before"})).await;
    wait_for(&topic, 1, WAIT).await;

    // The next event's payload arrives cut short: it does not decode with its schema.
    org.faults(json!({"corruptNextEvents": 1})).await;
    org.create("Account", json!({"Name": "Broken"})).await;
    let after = org.create("Account", json!({"Name": "After"})).await;
    let recs = wait_for(&topic, 2, WAIT).await;
    let dlq = sfjira_tests::read_all(&dep.topic("salesforce-source.dlq"), 1, WAIT).await;
    stop_source(source).await;

    let keys: Vec<&str> = recs.iter().map(|r| r.key.as_str()).collect();
    assert_eq!(keys, [first.as_str(), after.as_str()], "the stream went on");
    assert_eq!(dlq.len(), 1, "exactly the broken event was dead-lettered");
    let d = &dlq[0];
    assert_eq!(
        header(d, "sfjira.error.code").as_deref(),
        Some("SFJ-6001"),
        "{:?}",
        header(d, "__connect.errors.exception.message")
    );
    assert_eq!(
        header(d, "sfjira.error.retryable").as_deref(),
        Some("false")
    );
    assert!(header(d, "__connect.errors.exception.message").is_some());
    assert!(header(d, "sfjira.salesforce.replay_id").is_some());

    // The DLQ record holds the bytes Salesforce sent (the cut payload) and the schema id.
    let event_id = String::from_utf8(d.key().expect("keyed by event id").to_vec()).unwrap();
    let sent = stored(&org, &event_id);
    assert_eq!(
        header(d, "sfjira.salesforce.schema_id").as_deref(),
        Some(sent.schema_id.as_str())
    );
    assert_eq!(
        d.payload().expect("raw bytes"),
        &sent.payload[..sent.payload.len() / 2]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn get_schema_failing_past_its_budget_dead_letters_the_event_and_the_stream_goes_on() {
    let org = Org::start().await;
    let dep = Deployment::new("sfsrc-getschema", &org, SCHEMA_RETRY).await;
    let topic = dep.topic("salesforce.cdc.Account");
    // The schema service is out before the source has any schema cached.
    org.faults(json!({"getSchemaUnavailable": true})).await;
    let source = spawn_source(dep.config());
    org.create("Account", json!({"Name": "Unlucky"})).await;
    let dlq = sfjira_tests::read_all(&dep.topic("salesforce-source.dlq"), 1, WAIT).await;
    assert_eq!(
        dlq.len(),
        1,
        "the event went to the DLQ once the budget was spent"
    );

    // GetSchema answers again: the next event is published (its schema is asked for anew).
    org.faults(json!({})).await;
    let later = org.create("Account", json!({"Name": "Later"})).await;
    let recs = wait_for(&topic, 1, WAIT).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    stop_source(source).await;
    let recs_after = read_changes(&topic, 2, Duration::from_secs(5)).await;
    assert_eq!(recs.len(), 1);
    assert_eq!(
        recs_after.len(),
        1,
        "the dead-lettered event is not published too"
    );
    assert_eq!(recs[0].key, later);

    let d = &dlq[0];
    assert_eq!(header(d, "sfjira.error.code").as_deref(), Some("SFJ-6005"));
    assert_eq!(header(d, "sfjira.error.retryable").as_deref(), Some("true"));
    assert_eq!(header(d, "sfjira.error.attempts").as_deref(), Some("3"));
    let message = header(d, "__connect.errors.exception.message").unwrap();
    assert!(message.contains("service.unavailable"), "{message}");
    let event_id = String::from_utf8(d.key().unwrap().to_vec()).unwrap();
    let sent = stored(&org, &event_id);
    assert_eq!(
        header(d, "sfjira.salesforce.schema_id").as_deref(),
        Some(sent.schema_id.as_str())
    );
    assert_eq!(d.payload().expect("raw bytes"), &sent.payload[..]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn get_schema_failing_within_its_budget_is_retried_and_dead_letters_nothing() {
    let org = Org::start().await;
    let dep = Deployment::new("sfsrc-getschema-ok", &org, SCHEMA_RETRY).await;
    let topic = dep.topic("salesforce.cdc.Account");
    // Two failures, then GetSchema answers: the third try (max_attempts 3) succeeds.
    org.faults(json!({"getSchemaUnavailableNextCalls": 2}))
        .await;
    let source = spawn_source(dep.config());
    let id = org.create("Account", json!({"Name": "Patient"})).await;
    let recs = wait_for(&topic, 1, WAIT).await;
    stop_source(source).await;
    assert_eq!(recs[0].key, id);
    let dlq = sfjira_tests::read_all(
        &dep.topic("salesforce-source.dlq"),
        1,
        Duration::from_secs(3),
    )
    .await;
    assert!(dlq.is_empty(), "nothing dead-lettered");
}
