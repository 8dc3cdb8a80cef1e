//! Gap events (`GAP_CREATE`, `GAP_UPDATE`, `GAP_DELETE`) are recovered: the record is re-read
//! over REST and published with its current state, marked `sfjira.gap-recovered`.

mod common;

use std::time::Duration;

use common::*;
use rdkafka::message::{Headers, Message};
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gap_events_are_recovered_with_current_record_state() {
    let _ = tracing_subscriber::fmt()
        .with_test_writer()
        .with_env_filter("info")
        .try_init();
    let org = Org::start().await;
    let dep = Deployment::new("sfsrc-gap", &org, "").await;
    let topic = dep.topic("salesforce.cdc.Account");
    let source = spawn_source(dep.config());

    let a = org
        .create("Account", json!({"Name": "Gappy", "BillingCity": "Paris"}))
        .await;
    org.faults(json!({"gapNextTransactions": 1})).await;
    org.update("Account", &a, json!({"Phone": "99", "BillingCity": "Nice"}))
        .await;
    // Recovered before the record goes away (a gap for a record deleted since is skipped: its
    // delete is an event of its own).
    wait_for(&topic, 2, Duration::from_secs(60)).await;
    org.faults(json!({"gapNextTransactions": 1})).await;
    let b = org
        .create(
            "Account",
            json!({"Name": "Born in a gap", "AnnualRevenue": 7.5}),
        )
        .await;
    org.faults(json!({"gapNextTransactions": 1})).await;
    org.delete("Account", &a).await;

    let recs = wait_for(&topic, 4, Duration::from_secs(60)).await;
    let raw = sfjira_tests::read_all(&topic, 4, Duration::from_secs(10)).await;
    stop_source(source).await;
    let gap_header = |key: &str, ty: &str| -> Option<String> {
        raw.iter()
            .find(|m| {
                m.key() == Some(key.as_bytes())
                    && recs.iter().any(|r| {
                        r.offset == m.offset()
                            && r.partition == m.partition()
                            && r.change_type() == ty
                    })
            })
            .and_then(|m| m.headers())
            .and_then(|hs| hs.iter().find(|h| h.key == "sfjira.gap-recovered"))
            .and_then(|h| h.value)
            .map(|v| String::from_utf8_lossy(v).to_string())
    };

    let of = |key: &str| -> Vec<&Rec> { recs.iter().filter(|r| r.key == key).collect() };
    let a_recs = of(&a);
    let types: Vec<&str> = a_recs.iter().map(|r| r.change_type()).collect();
    assert_eq!(types, ["CREATE", "UPDATE", "DELETE"]);
    let update = a_recs[1];
    assert_eq!(update.value["Phone"], "99");
    assert_eq!(update.value["Name"], "Gappy", "the full current state");
    assert_eq!(update.value["BillingAddress"]["City"], "Nice");
    let changed = update.strings("changedFields");
    assert!(
        changed.contains(&"Name".to_string()) && changed.contains(&"Phone".to_string()),
        "{changed:?}"
    );
    assert_eq!(gap_header(&a, "UPDATE").as_deref(), Some("GAP_UPDATE"));
    assert_eq!(gap_header(&a, "DELETE").as_deref(), Some("GAP_DELETE"));
    assert_eq!(
        gap_header(&a, "CREATE"),
        None,
        "a normal event is not marked"
    );

    let b_recs = of(&b);
    assert_eq!(b_recs.len(), 1);
    assert_eq!(b_recs[0].change_type(), "CREATE");
    assert_eq!(b_recs[0].value["Name"], "Born in a gap");
    assert_eq!(b_recs[0].value["AnnualRevenue"], 7.5);
    assert_eq!(gap_header(&b, "CREATE").as_deref(), Some("GAP_CREATE"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_overflowing_transaction_is_resynced_from_rest() {
    let org = Org::start().await;
    let dep = Deployment::new("sfsrc-overflow", &org, "").await;
    let topic = dep.topic("salesforce.cdc.Account");
    let source = spawn_source(dep.config());
    // Past 4 changes in one transaction, Salesforce sends one GAP_OVERFLOW instead.
    org.full.bus.set_overflow_threshold(4);
    let ids = create_in_one_transaction(&org, 10, "Flood").await;
    let recs = wait_for(&topic, 14, Duration::from_secs(60)).await;
    let raw = sfjira_tests::read_all(&topic, 14, Duration::from_secs(10)).await;
    stop_source(source).await;

    for id in &ids {
        assert!(recs.iter().any(|r| &r.key == id), "{id} is on the topic");
    }
    let resynced: Vec<&Rec> = recs
        .iter()
        .filter(|r| {
            raw.iter().any(|m| {
                m.offset() == r.offset
                    && m.partition() == r.partition
                    && m.headers().is_some_and(|hs| {
                        hs.iter().any(|h| {
                            h.key == "sfjira.gap-recovered" && h.value == Some(&b"GAP_OVERFLOW"[..])
                        })
                    })
            })
        })
        .collect();
    assert_eq!(
        resynced.len(),
        10,
        "every record of the window re-read once"
    );
    for r in resynced {
        assert_eq!(r.change_type(), "UPDATE");
        assert!(r.value["Name"].as_str().unwrap().starts_with("Flood"));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn enrich_full_state_fills_the_fields_an_update_left_out() {
    let org = Org::start().await;
    let dep = Deployment::new("sfsrc-enrich", &org, "  enrich_full_state: true\n").await;
    let topic = dep.topic("salesforce.cdc.Account");
    let source = spawn_source(dep.config());
    let a = org
        .create(
            "Account",
            json!({"Name": "Whole", "Phone": "1", "BillingCity": "Oslo"}),
        )
        .await;
    org.update("Account", &a, json!({"Phone": "2"})).await;
    let recs = wait_for(&topic, 2, Duration::from_secs(60)).await;
    stop_source(source).await;
    let update = &recs[1];
    assert_eq!(update.change_type(), "UPDATE");
    assert_eq!(update.value["Phone"], "2", "the event's own value");
    assert_eq!(update.value["Name"], "Whole", "filled from the record");
    assert_eq!(update.value["BillingAddress"]["City"], "Oslo");
    assert!(
        !update
            .strings("changedFields")
            .contains(&"Name".to_string()),
        "changedFields stays the event's"
    );
}
