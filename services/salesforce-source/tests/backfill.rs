//! Backfill / initial load: existing Opportunities are read with paged SOQL and published to
//! `salesforce.cdc.Opportunity` as snapshot records (change type `CREATE`, header
//! `sfjira.snapshot: true`), each page committed with its resume position; an interrupted
//! backfill resumes where it stopped, so every record is on the topic exactly once.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use common::*;
use rdkafka::message::{Headers, Message};
use serde_json::{Value, json};
use sfjira_core::avro::AvroCodec;
use sfjira_salesforce_source::backfill::{self, Options};

const SEEDED: usize = 250;

fn init_tracing() {
    let _ = tracing_subscriber::fmt()
        .with_test_writer()
        .with_env_filter("info")
        .try_init();
}

/// Creates `n` Opportunities; returns their Ids.
async fn seed(org: &Org, n: usize) -> Vec<String> {
    let mut ids = Vec::new();
    for i in 0..n {
        ids.push(
            org.create(
                "Opportunity",
                json!({"Name": format!("Opp {i}"), "StageName": "Prospecting",
                       "CloseDate": "2026-12-31", "Amount": i as f64}),
            )
            .await,
        );
    }
    ids
}

async fn deployment(name: &str, org: &Org) -> Deployment {
    let dep = Deployment::new(name, org, "").await;
    sfjira_tests::create_topic(&dep.topic("salesforce.cdc.Opportunity"), 3).await;
    dep
}

/// Every committed record of `topic` (waits `wait` for more): key, decoded value, and
/// whether it carries `sfjira.snapshot: true`.
async fn read_snapshots(topic: &str, wait: Duration) -> Vec<(String, Value, bool)> {
    let codec = AvroCodec::new(&sfjira_tests::registry_config()).unwrap();
    let mut out = Vec::new();
    for m in sfjira_tests::read_all(topic, 100_000, wait).await {
        let marked = m
            .headers()
            .and_then(|hs| hs.iter().find(|h| h.key == backfill::HEADER))
            .and_then(|h| h.value)
            == Some(&b"true"[..]);
        let value = codec.decode(m.payload().expect("a value")).await.unwrap();
        let key = String::from_utf8(m.key().unwrap().to_vec()).unwrap();
        out.push((key, to_json(value.value), marked));
    }
    out
}

fn opts(page_size: usize) -> Options {
    Options {
        page_size,
        ..Options::new("Opportunity")
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn interrupted_backfill_resumes_and_publishes_each_record_once() {
    init_tracing();
    let org = Org::start().await;
    let ids: BTreeSet<String> = seed(&org, SEEDED).await.into_iter().collect();
    let dep = deployment("sfsrc-backfill", &org).await;
    let cfg = dep.config();
    let topic = dep.topic("salesforce.cdc.Opportunity");

    // Interrupted after the first page (200: the smallest batch Salesforce allows).
    let first = backfill::run(
        &cfg,
        &Options {
            max_pages: Some(1),
            ..opts(200)
        },
    )
    .await
    .unwrap();
    assert_eq!((first.records, first.pages, first.done), (200, 1, false));
    let rest = backfill::run(&cfg, &opts(200)).await.unwrap();
    assert!(rest.resumed && rest.done, "{rest:?}");
    assert_eq!(rest.records, (SEEDED - 200) as u64);
    let again = backfill::run(&cfg, &opts(200)).await.unwrap();
    assert_eq!(
        (again.records, again.done),
        (0, true),
        "a complete backfill is not repeated"
    );

    let recs = read_snapshots(&topic, Duration::from_secs(10)).await;
    assert_eq!(recs.len(), SEEDED, "every record exactly once");
    let keys: BTreeSet<String> = recs.iter().map(|r| r.0.clone()).collect();
    assert_eq!(keys, ids);
    for (key, v, marked) in &recs {
        assert!(marked, "{key} carries {}: true", backfill::HEADER);
        let h = &v["ChangeEventHeader"];
        assert_eq!(h["changeType"], "CREATE");
        assert_eq!(h["changeOrigin"], backfill::ORIGIN);
        assert_eq!(h["entityName"], "Opportunity");
        assert_eq!(h["recordIds"], json!([key]));
        assert!(h["commitTimestamp"].as_i64().unwrap() > 0);
        assert!(v["Name"].as_str().unwrap().starts_with("Opp "));
        assert_eq!(v["StageName"], "Prospecting");
        let changed: Vec<&str> = h["changedFields"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(Value::as_str)
            .collect();
        assert!(
            changed.contains(&"Name") && changed.contains(&"Amount"),
            "{changed:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn since_filters_and_api_share_stops_resumably() {
    init_tracing();
    let org = Org::start().await;
    seed(&org, SEEDED).await;
    let all_dep = deployment("sfsrc-backfill-all", &org).await;
    let all = backfill::run(&all_dep.config(), &opts(2000)).await.unwrap();
    assert_eq!((all.records, all.pages), (SEEDED as u64, 1));
    let recs = read_snapshots(
        &all_dep.topic("salesforce.cdc.Opportunity"),
        Duration::from_secs(8),
    )
    .await;
    let stamps: BTreeMap<String, i64> = recs
        .iter()
        .map(|(k, v, _)| {
            (
                k.clone(),
                v["ChangeEventHeader"]["commitTimestamp"].as_i64().unwrap(),
            )
        })
        .collect();
    let mut sorted: Vec<i64> = stamps.values().copied().collect();
    sorted.sort();
    let since_ms = sorted[SEEDED - 60];
    let expected: BTreeSet<String> = stamps
        .iter()
        .filter(|(_, t)| **t >= since_ms)
        .map(|(k, _)| k.clone())
        .collect();
    assert!(expected.len() >= 60 && expected.len() < SEEDED);

    let dep = deployment("sfsrc-backfill-since", &org).await;
    let since = chrono::DateTime::from_timestamp_millis(since_ms).unwrap();
    let r = backfill::run(
        &dep.config(),
        &Options {
            since: Some(since),
            restart: true,
            ..opts(2000)
        },
    )
    .await
    .unwrap();
    assert!(r.done);
    let recs = read_snapshots(
        &dep.topic("salesforce.cdc.Opportunity"),
        Duration::from_secs(8),
    )
    .await;
    let got: BTreeSet<String> = recs.iter().map(|r| r.0.clone()).collect();
    assert_eq!(recs.len(), expected.len());
    assert_eq!(
        got, expected,
        "--since keeps records with SystemModstamp >= since"
    );

    // Above the allowed share of the daily API allocation: stop after the committed page,
    // with a message that says why and how to resume; resuming completes it.
    let dep = deployment("sfsrc-backfill-limit", &org).await;
    let err = backfill::run(
        &dep.config(),
        &Options {
            max_api_share: Some(1e-9),
            ..opts(200)
        },
    )
    .await
    .unwrap_err()
    .to_string();
    assert!(
        err.contains("daily API requests") && err.contains("resume"),
        "{err}"
    );
    let rest = backfill::run(
        &dep.config(),
        &Options {
            rate: Some(1000.0),
            ..opts(200)
        },
    )
    .await
    .unwrap();
    assert_eq!((rest.records, rest.done), ((SEEDED - 200) as u64, true));
    let recs = read_snapshots(
        &dep.topic("salesforce.cdc.Opportunity"),
        Duration::from_secs(8),
    )
    .await;
    assert_eq!(recs.len(), SEEDED);
}

#[test]
fn since_channels_and_keys() {
    use chrono::{DateTime, Utc};
    let now = DateTime::parse_from_rfc3339("2024-05-03T00:00:00Z")
        .unwrap()
        .with_timezone(&Utc);
    let since = |t: &str| backfill::parse_since(t, now);
    assert_eq!(
        since("2d").unwrap().to_rfc3339(),
        "2024-05-01T00:00:00+00:00"
    );
    assert_eq!(since("90s").unwrap(), now - chrono::Duration::seconds(90));
    assert_eq!(
        since("2024-04-01T10:00:00Z").unwrap().to_rfc3339(),
        "2024-04-01T10:00:00+00:00"
    );
    assert!(since("2x").is_err() && since("soon").is_err());
    assert_eq!(
        backfill::channel_of("Opportunity"),
        "/data/OpportunityChangeEvent"
    );
    assert_eq!(
        backfill::channel_of("Escalation__c"),
        "/data/Escalation__ChangeEvent"
    );
    assert_eq!(
        backfill::entity_of("/data/Escalation__ChangeEvent").as_deref(),
        Some("Escalation__c")
    );
    assert_eq!(
        backfill::entity_of("/data/AccountChangeEvent").as_deref(),
        Some("Account")
    );
    assert_eq!(backfill::entity_of("/data/ChangeEvents"), None);
    assert_eq!(
        backfill::key("Opportunity"),
        "salesforce-source:backfill:Opportunity"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backfill_on_start_loads_existing_records_before_following_changes() {
    init_tracing();
    let org = Org::start().await;
    let mut ids = BTreeSet::new();
    for i in 0..3 {
        ids.insert(
            org.create("Account", json!({"Name": format!("Existing {i}")}))
                .await,
        );
    }
    let dep = Deployment::new("sfsrc-backfill-start", &org, "  backfill_on_start: true\n").await;
    let topic = dep.topic("salesforce.cdc.Account");
    let source = spawn_source(dep.config());
    // 3 snapshots, then the 3 CREATE events (start_from: earliest).
    wait_for(&topic, 6, Duration::from_secs(60)).await;
    stop_source(source).await;
    let recs = read_snapshots(&topic, Duration::from_secs(5)).await;
    let snapshots: BTreeSet<String> = recs.iter().filter(|r| r.2).map(|r| r.0.clone()).collect();
    assert_eq!(snapshots, ids, "one snapshot per existing record");
    assert_eq!(
        recs.iter().filter(|r| !r.2).count(),
        3,
        "and the change events"
    );
}
