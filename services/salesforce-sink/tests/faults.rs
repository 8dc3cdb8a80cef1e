//! Trouble at the org while the sink runs — an expired session, lock contention, a create
//! race, 503s, the daily API allocation used up — ends with every command applied exactly once
//! (one audit entry each, one record per key, nothing in the DLQ), and the pause and resume
//! after `REQUEST_LIMIT_EXCEEDED` show in the metrics.

mod support;

use std::collections::BTreeSet;
use std::time::Duration;

use serde_json::json;
use sfjira_core::audit::{AuditEntry, AuditResult};
use support::*;

fn commands(prefix: &str, n: usize) -> Vec<sfjira_core::command::Command> {
    (0..n)
        .map(|i| {
            let k = format!("{prefix}-{i}");
            upsert(
                "Account",
                &format!("jira:{k}"),
                Some(("Jira_Key__c", &k)),
                json!({"Name": format!("Name {k}")}),
            )
        })
        .collect()
}

/// Every command applied once, every record there once, nothing dead-lettered.
async fn assert_all_applied_once(org: &Org, dep: &Deployment, audit: &[AuditEntry], n: usize) {
    assert_eq!(audit.len(), n, "one audit entry per command");
    let ids: BTreeSet<_> = audit.iter().map(|e| &e.command_id).collect();
    assert_eq!(ids.len(), n, "no command audited twice");
    assert!(
        audit.iter().all(|e| e.result == AuditResult::Applied),
        "{:?}",
        audit.iter().find(|e| e.result != AuditResult::Applied)
    );
    let live = org
        .query_all("SELECT Id, Name, Jira_Key__c FROM Account", "Jira_Key__c")
        .await;
    assert_eq!(live.len(), n, "one record per key");
    let creates: usize = org
        .transactions_on("Account")
        .iter()
        .flat_map(|t| &t.changes)
        .filter(|c| c.change_type == sfjira_sandbox::salesforce::changes::ChangeType::Create)
        .count();
    assert_eq!(creates, n, "each record created once");
    assert!(dep.dlq(1, Duration::from_secs(2)).await.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expired_session_is_refreshed_and_nothing_is_lost() {
    let prometheus = sfjira_core::health::install_metrics_recorder().unwrap();
    let org = Org::start().await;
    let dep = Deployment::new("sfsink-token", &org, "").await;
    let all = commands("T", 400);
    dep.produce(&all[..200]).await;
    let sink = spawn_sink(dep.config());
    dep.audit(200, Duration::from_secs(60)).await;
    org.expire_tokens().await;
    dep.produce(&all[200..]).await;
    let audit = dep.audit(400, Duration::from_secs(60)).await;
    stop_sink(sink).await;
    assert_all_applied_once(&org, &dep, &audit, 400).await;
    assert!(
        prometheus
            .render()
            .contains("sfjira_salesforce_sink_auth_refreshes_total")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn locked_rows_races_and_503s_are_retried() {
    let org = Org::start().await;
    let dep = Deployment::new("sfsink-lock", &org, "").await;
    // 30 rows fail UNABLE_TO_LOCK_ROW, 5 creates lose a race (DUPLICATE_VALUE), and a third
    // of the Collections calls answer 503.
    org.faults(json!({
        "lockNextWrites": 30,
        "upsertRaceNextCreates": 5,
        "endpoints": {"composite": {"errorRate": 0.3}}
    }))
    .await;
    let all = commands("L", 300);
    dep.produce(&all).await;
    let sink = spawn_sink(dep.config());
    let audit = dep.audit(300, Duration::from_secs(90)).await;
    stop_sink(sink).await;
    // The raced records were created by the "other" upsert: count them as creates too.
    assert_eq!(audit.len(), 300);
    let ids: BTreeSet<_> = audit.iter().map(|e| &e.command_id).collect();
    assert_eq!(ids.len(), 300);
    assert!(audit.iter().all(|e| e.result == AuditResult::Applied));
    let live = org
        .query_all("SELECT Id, Name, Jira_Key__c FROM Account", "Jira_Key__c")
        .await;
    assert_eq!(live.len(), 300);
    assert!(
        live.values()
            .all(|r| r["Name"].as_str().unwrap().starts_with("Name L-"))
    );
    assert!(dep.dlq(1, Duration::from_secs(2)).await.is_empty());
    let faults = org
        .admin_call(reqwest::Method::GET, "/faults", serde_json::Value::Null)
        .await;
    assert_eq!(faults["lockNextWrites"], 0, "every lock fault was hit");
    assert_eq!(faults["upsertRaceNextCreates"], 0, "every race was hit");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_exhausted_allocation_pauses_consumption_until_calls_are_accepted_again() {
    let prometheus = sfjira_core::health::install_metrics_recorder().unwrap();
    let org = Org::start().await;
    let dep = Deployment::new("sfsink-limit", &org, "  limit_pause_secs: 1\n").await;
    let sink = spawn_sink(dep.config());
    // Let the sink start, then use up the allocation.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let (used, _) = org.api_usage().await;
    org.set_limits(used, Some(used)).await;
    let all = commands("X", 250);
    dep.produce(&all).await;
    let paused = || {
        let text = prometheus.render();
        text.lines()
            .any(|l| l.starts_with("sfjira_salesforce_sink_paused ") && l.ends_with(" 1"))
    };
    eventually(Duration::from_secs(30), "the pause", || async { paused() }).await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert!(paused(), "still paused while the allocation is spent");
    assert!(
        prometheus
            .render()
            .lines()
            .any(|l| l.starts_with("sfjira_salesforce_sink_api_usage_share ") && l.ends_with(" 1")),
        "the share is a metric"
    );
    assert!(
        org.transactions_on("Account").is_empty(),
        "nothing written meanwhile"
    );
    assert!(dep.audit(1, Duration::from_secs(1)).await.is_empty());
    // The allocation grows (the rolling 24 h window moved on): the sink resumes.
    org.set_limits(100_000, Some(used)).await;
    let audit = dep.audit(250, Duration::from_secs(60)).await;
    stop_sink(sink).await;
    assert_all_applied_once(&org, &dep, &audit, 250).await;
    let text = prometheus.render();
    assert!(!paused(), "{text}");
    for needle in [
        "sfjira_salesforce_sink_pauses_total",
        "sfjira_salesforce_sink_resumes_total",
        "sfjira_salesforce_sink_api_usage_share",
    ] {
        assert!(text.contains(needle), "{needle} missing from:\n{text}");
    }
}
