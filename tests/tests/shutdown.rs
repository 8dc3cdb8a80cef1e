//! Stopping is bounded: every service asked to stop (SIGTERM) while its Kafka broker is gone
//! exits within `service.stop_grace_secs` and a margin — on its own, or ended by the grace
//! with status 1 and an error saying why — instead of hanging until an orchestrator's
//! SIGKILL. With the broker up, a stop is clean (status 0).
//!
//! Runs on a private broker (the test stops it) with its own sandbox and services.

use std::time::Duration;

use reqwest::Method;
use serde_json::json;
use sfjira_tests::demo::stack::SERVICES;
use sfjira_tests::demo::{Deployment, Engineer, SalesUser};
use sfjira_tests::private_broker::PrivateBroker;
use sfjira_tests::registry_url;

const GRACE_SECS: u64 = 3;
/// Beyond the grace: the process's own exit, and a loaded CI machine.
const MARGIN: Duration = Duration::from_secs(20);

#[tokio::test(flavor = "multi_thread")]
async fn every_service_stops_within_its_grace_even_with_its_broker_gone() {
    let broker = tokio::task::spawn_blocking(PrivateBroker::start)
        .await
        .unwrap()
        .expect("a private broker starts");
    let mut d = Deployment::start(&broker.bootstrap, &registry_url())
        .await
        .expect("the deployment starts");
    d.set_service_env("SFJIRA_SERVICE__STOP_GRACE_SECS", &GRACE_SECS.to_string());
    for name in SERVICES {
        d.kill(name).await.unwrap();
        d.start_service(name).unwrap();
        d.wait_ready(name).await.unwrap();
    }

    // The broker up: a stop is clean.
    let (status, took) = d
        .terminate("sfjira-transformer", MARGIN)
        .await
        .unwrap()
        .unwrap_or_else(|| panic!("no exit:\n{}", d.log_tail("sfjira-transformer")));
    assert!(
        status.success(),
        "{status} after {took:?}:\n{}",
        d.log_tail("sfjira-transformer")
    );
    d.start_service("sfjira-transformer").unwrap();
    d.wait_ready("sfjira-transformer").await.unwrap();

    // The broker gone, with work in hand: a Salesforce change and a Jira issue the sources
    // must publish (their Kafka calls now wait for a broker that is not there).
    tokio::task::block_in_place(|| broker.stop()).expect("the broker stops");
    SalesUser::new(&d.salesforce_url, "Alice")
        .create(
            "Account",
            json!({"Name": "Stop Test Ltd", "Type": "Customer"}),
        )
        .await
        .unwrap();
    Engineer::new(&d.jira_url, "bob@example.com")
        .call(
            Method::POST,
            "/issue",
            Some(json!({"fields": {
                "project": {"key": "PROJ"}, "issuetype": {"name": "Task"}, "summary": "stop test"
            }})),
        )
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_secs(3)).await;
    // Every service still exits, within the grace and the margin.
    for name in SERVICES {
        let limit = Duration::from_secs(GRACE_SECS) + MARGIN;
        let Some((status, took)) = d.terminate(name, limit).await.unwrap() else {
            panic!(
                "{name} had not exited {limit:?} after SIGTERM with its broker gone:\n{}",
                d.log_tail(name)
            );
        };
        eprintln!("{name}: {status} after {took:?}");
        if !status.success() {
            let log = d.log_tail(name);
            assert_eq!(status.code(), Some(1), "{name}:\n{log}");
            assert!(
                log.contains("after the stop signal"),
                "{name} ended by its grace says so:\n{log}"
            );
        }
    }
}
