//! The TLS path: the sandbox org serves OAuth/REST and the Pub/Sub API over TLS with a
//! certificate from a CA it generates; the source, given that CA as
//! `salesforce_source.tls_ca_file`, logs in, subscribes over gRPC+TLS, re-reads a gap over REST
//! and publishes. Without the CA it refuses to start, naming the login failure.

mod common;

use std::time::Duration;

use common::*;
use serde_json::json;
use sfjira_sandbox::salesforce::config::{SalesforceConfig, TlsConfig};

const WAIT: Duration = Duration::from_secs(60);

async fn tls_org(name: &str) -> Org {
    let dir = std::env::temp_dir().join(sfjira_tests::unique(name));
    std::fs::create_dir_all(&dir).unwrap();
    Org::start_with(SalesforceConfig {
        tls: Some(TlsConfig {
            ca_pem_path: dir.join("ca.pem"),
            hosts: Vec::new(),
        }),
        ..SalesforceConfig::default()
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_source_streams_over_tls_trusting_the_configured_ca() {
    let org = tls_org("sfsrc-tls").await;
    assert!(org.base().starts_with("https://"), "{}", org.base());
    let dep = Deployment::new("sfsrc-tls", &org, "").await;
    let cfg = dep.config();
    let settings = cfg.salesforce_source.as_ref().unwrap();
    assert!(settings.pubsub_url.starts_with("https://"));
    assert!(settings.tls_ca_file.is_some());
    let topic = dep.topic("salesforce.cdc.Account");
    let source = spawn_source(cfg);

    let a = org
        .create("Account", json!({"Name": "Over TLS", "Phone": "1"}))
        .await;
    wait_for(&topic, 1, WAIT).await;
    // A gap: the source re-reads the record over REST (HTTPS, the same CA).
    org.faults(json!({"gapNextTransactions": 1})).await;
    org.update("Account", &a, json!({"Phone": "2"})).await;
    let recs = wait_for(&topic, 2, WAIT).await;
    stop_source(source).await;

    assert!(recs.iter().all(|r| r.key == a));
    assert_eq!(recs[0].change_type(), "CREATE");
    assert_eq!(recs[0].value["Name"], "Over TLS");
    assert_eq!(recs[1].change_type(), "UPDATE");
    assert_eq!(recs[1].value["Phone"], "2", "current state read over HTTPS");
    assert_eq!(recs[1].value["Name"], "Over TLS");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_the_ca_the_source_does_not_trust_the_org() {
    let org = tls_org("sfsrc-tls-untrusted").await;
    let dep = Deployment::new("sfsrc-tls-untrusted", &org, "").await;
    let mut cfg = dep.config();
    cfg.salesforce_source.as_mut().unwrap().tls_ca_file = None;
    let (_tx, handle) = spawn_source(cfg);
    let err = tokio::time::timeout(Duration::from_secs(60), handle)
        .await
        .expect("the source gives up on its own")
        .expect("no panic")
        .expect_err("an untrusted certificate stops the start");
    let text = format!("{err:#}");
    assert!(text.contains("SFJ-6003"), "{text}");
    assert!(text.contains("token endpoint"), "{text}");
}
