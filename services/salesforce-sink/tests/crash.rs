//! A sink killed mid-run (no graceful stop: its task is dropped between Salesforce writes and
//! Kafka commits) and started again: every command ends applied, each record exists once, and
//! each command has exactly one audit entry.

mod support;

use std::collections::BTreeSet;
use std::time::Duration;

use serde_json::json;
use sfjira_core::audit::AuditResult;
use support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_sink_restarts_without_loss_or_duplicates() {
    let org = Org::start().await;
    let dep = Deployment::new("sfsink-crash", &org, "  max_batch_records: 100\n").await;
    let n = 1500;
    let commands: Vec<_> = (0..n)
        .map(|i| {
            let k = format!("CR-{i}");
            upsert(
                "Account",
                &format!("jira:{k}"),
                Some(("Jira_Key__c", &k)),
                json!({"Name": format!("Crash {k}")}),
            )
        })
        .collect();
    dep.produce(&commands).await;
    // Slow writes so the kill lands inside a batch.
    org.faults(json!({"endpoints": {"composite": {"latencyMs": 150}}}))
        .await;
    let (_stop, handle) = spawn_sink(dep.config());
    eventually(Duration::from_secs(60), "some writes", || async {
        org.transactions_on("Account").len() >= 3
    })
    .await;
    handle.abort();
    let _ = handle.await;
    org.faults(json!({})).await;

    let sink = spawn_sink(dep.config());
    // Asks for more than there should be, to see any duplicate.
    let audit = dep.audit(n + 50, Duration::from_secs(15)).await;
    stop_sink(sink).await;

    let applied: Vec<_> = audit
        .iter()
        .filter(|e| e.result == AuditResult::Applied)
        .collect();
    let ids: BTreeSet<_> = applied.iter().map(|e| &e.command_id).collect();
    assert_eq!(ids.len(), n, "every command applied");
    assert_eq!(audit.len(), n, "no command audited twice");
    let live = org
        .query_all("SELECT Id, Name, Jira_Key__c FROM Account", "Jira_Key__c")
        .await;
    assert_eq!(live.len(), n, "each record exists once");
    assert!(dep.dlq(1, Duration::from_secs(2)).await.is_empty());
}
