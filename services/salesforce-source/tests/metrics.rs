//! The source's metrics, as Prometheus renders them: changes per entity and change type,
//! capture lag, gap recoveries, REST API usage, auth refreshes and reconnects.

mod common;

use std::time::Duration;

use common::*;
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_source_reports_its_metrics() {
    let prometheus = sfjira_core::health::install_metrics_recorder().unwrap();
    let org = Org::start().await;
    let dep = Deployment::new("sfsrc-metrics", &org, "").await;
    let topic = dep.topic("salesforce.cdc.Account");
    let source = spawn_source(dep.config());
    let a = org.create("Account", json!({"Name": "Measured"})).await;
    org.faults(json!({"gapNextTransactions": 1})).await;
    org.update("Account", &a, json!({"Phone": "1"})).await;
    wait_for(&topic, 2, Duration::from_secs(60)).await;
    // A refused session on the next Subscribe: one auth refresh, one reconnect.
    org.expire_tokens().await;
    org.faults(json!({"dropStreamsAfterEvents": 1})).await;
    org.update("Account", &a, json!({"Phone": "2"})).await;
    org.update("Account", &a, json!({"Phone": "3"})).await;
    wait_for(&topic, 4, Duration::from_secs(60)).await;
    stop_source(source).await;

    let text = prometheus.render();
    for needle in [
        r#"sfjira_salesforce_source_changes_total{entity="Account",change_type="CREATE"} 1"#,
        "sfjira_salesforce_source_capture_lag_seconds",
        r#"sfjira_salesforce_source_gap_recoveries_total{entity="Account",gap="GAP_UPDATE"} 1"#,
        "sfjira_salesforce_source_api_requests_used",
        "sfjira_salesforce_source_auth_refreshes_total",
        r#"reason="auth""#,
    ] {
        assert!(text.contains(needle), "{needle} missing from:\n{text}");
    }
}
