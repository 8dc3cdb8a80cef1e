//! Salesforce schema changes while the source runs: a compatible new version registers as a
//! new version of the subject; one the registry refuses sends the event to the DLQ (raw bytes,
//! schema id, error headers) and the stream goes on.

mod common;

use std::time::Duration;

use common::*;
use rdkafka::message::{Headers, Message};
use serde_json::json;
use sfjira_sandbox::salesforce::catalog;
use sfjira_sandbox::salesforce::meta::{FieldMeta, FieldType, ObjectMeta};

const WAIT: Duration = Duration::from_secs(60);

fn account() -> ObjectMeta {
    catalog::objects()
        .into_iter()
        .find(|o| o.name == "Account")
        .expect("Account in the catalog")
}

async fn versions(subject: &str) -> Vec<u64> {
    let url = format!(
        "{}/subjects/{subject}/versions",
        sfjira_tests::registry_url()
    );
    reqwest::get(url).await.unwrap().json().await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_salesforce_schema_version_registers_without_restart() {
    let org = Org::start().await;
    let dep = Deployment::new("sfsrc-evolve", &org, "").await;
    let topic = dep.topic("salesforce.cdc.Account");
    let source = spawn_source(dep.config());
    org.create("Account", json!({"Name": "Before"})).await;
    wait_for(&topic, 1, WAIT).await;

    // A field added to Account: Salesforce sends events under a new schema id.
    let mut meta = account();
    meta.fields
        .push(FieldMeta::new("Tier__c", FieldType::String));
    org.full.bus.register(&meta).unwrap();
    org.create("Account", json!({"Name": "After"})).await;
    let recs = wait_for(&topic, 2, WAIT).await;
    stop_source(source).await;

    assert!(recs[0].value.get("Tier__c").is_none());
    assert!(
        recs[1].value.get("Tier__c").is_some(),
        "{:?}",
        recs[1].value
    );
    assert_eq!(versions(&format!("{topic}-value")).await.len(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unregistrable_schema_dead_letters_the_event_and_the_stream_goes_on() {
    let org = Org::start().await;
    let dep = Deployment::new("sfsrc-dlq", &org, "").await;
    let topic = dep.topic("salesforce.cdc.Account");
    let source = spawn_source(dep.config());
    let a1 = org.create("Account", json!({"Name": "One"})).await;
    wait_for(&topic, 1, WAIT).await;

    // Industry turns from text into a number: not BACKWARD-compatible, the registry refuses.
    let mut bad = account();
    bad.fields
        .iter_mut()
        .find(|f| f.name == "Industry")
        .unwrap()
        .ty = FieldType::Double;
    let bad_schema = org.full.bus.register(&bad).unwrap();
    org.create("Account", json!({"Name": "Two"})).await;
    let dlq = sfjira_tests::read_all(&dep.topic("salesforce-source.dlq"), 1, WAIT).await;
    assert_eq!(dlq.len(), 1, "the event went to the DLQ");

    // Back to the registered schema: the stream goes on.
    org.full.bus.register(&account()).unwrap();
    let a3 = org.create("Account", json!({"Name": "Three"})).await;
    let recs = wait_for(&topic, 2, WAIT).await;
    stop_source(source).await;
    let keys: Vec<&str> = recs.iter().map(|r| r.key.as_str()).collect();
    assert_eq!(keys, [a1.as_str(), a3.as_str()]);

    let d = &dlq[0];
    let header = |name: &str| {
        d.headers()
            .and_then(|hs| hs.iter().find(|h| h.key == name))
            .and_then(|h| h.value)
            .map(|v| String::from_utf8_lossy(v).to_string())
    };
    assert_eq!(header("sfjira.error.code").as_deref(), Some("SFJ-1006"));
    assert_eq!(
        header("sfjira.salesforce.schema_id").as_deref(),
        Some(bad_schema.id.as_str())
    );
    assert!(header("sfjira.salesforce.replay_id").is_some());
    assert!(header("__connect.errors.exception.message").is_some());
    // The raw Avro payload, decodable with Salesforce's schema.
    let raw = d.payload().expect("raw bytes");
    let value = apache_avro::reader::datum::GenericDatumReader::builder(&bad_schema.schema)
        .build()
        .unwrap()
        .read_value(&mut &raw[..])
        .expect("the raw payload is Salesforce's bytes");
    assert!(format!("{value:?}").contains("Two"));
}
