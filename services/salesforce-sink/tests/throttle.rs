//! Above the configured share of the daily API allocation the sink slows to its budgeted rate
//! (and says so in a metric) but still applies everything; back under it, full speed.

mod support;

use std::time::Duration;

use serde_json::json;
use sfjira_core::audit::AuditResult;
use support::*;

fn gauge(text: &str, name: &str) -> Option<f64> {
    text.lines()
        .find(|l| l.starts_with(&format!("{name} ")))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn above_the_threshold_the_sink_slows_down_and_still_applies_everything() {
    let prometheus = sfjira_core::health::install_metrics_recorder().unwrap();
    let org = Org::start().await;
    let dep = Deployment::new(
        "sfsink-throttle",
        &org,
        "  limit_share_threshold: 0.5\n  budgeted_calls_per_sec: 4\n  batch_size: 10\n",
    )
    .await;
    // 60 % of the allocation is used already.
    org.set_limits(1_000, Some(600)).await;
    let commands: Vec<_> = (0..60)
        .map(|i| {
            let k = format!("TH-{i}");
            upsert(
                "Account",
                &format!("jira:{k}"),
                Some(("Jira_Key__c", &k)),
                json!({"Name": format!("Slow {k}")}),
            )
        })
        .collect();
    dep.produce(&commands).await;
    let sink = spawn_sink(dep.config());
    let audit = dep.audit(60, Duration::from_secs(60)).await;
    let text = prometheus.render();
    assert_eq!(
        gauge(&text, "sfjira_salesforce_sink_throttled"),
        Some(1.0),
        "{text}"
    );
    let share = gauge(&text, "sfjira_salesforce_sink_api_usage_share").unwrap();
    assert!(share > 0.5, "share {share}");
    assert!(audit.iter().all(|e| e.result == AuditResult::Applied));
    assert_eq!(audit.len(), 60);

    // The allocation grows: the next call's header ends the throttling.
    org.set_limits(100_000, Some(600)).await;
    dep.produce(&[upsert(
        "Account",
        "jira:TH-last",
        Some(("Jira_Key__c", "TH-last")),
        json!({"Name": "Fast again"}),
    )])
    .await;
    dep.audit(61, Duration::from_secs(30)).await;
    stop_sink(sink).await;
    let text = prometheus.render();
    assert_eq!(
        gauge(&text, "sfjira_salesforce_sink_throttled"),
        Some(0.0),
        "{text}"
    );
}
