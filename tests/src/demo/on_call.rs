//! The operator on call, for the end-to-end fault test: watches every service's `/readyz` and,
//! when one reports a consumer group that cannot fetch its committed offsets (the watchdog's
//! `kafka_consumer:<group>` condition), runs docs/runbook.md's hanging-transaction procedure
//! with Kafka's own tools. Everything it does is kept, so the test can print it: a Kafka fault
//! an operator had to clear is reported, never hidden.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::kafka_tool::KafkaTool;

/// What the operator did, one line per action.
pub type OnCallLog = Arc<Mutex<Vec<String>>>;

/// Starts watching `services` (name, health base URL) of the deployment on `bootstrap`.
pub fn spawn(
    services: Vec<(String, String)>,
    bootstrap: String,
) -> (tokio::task::JoinHandle<()>, OnCallLog) {
    let log: OnCallLog = Arc::default();
    let task = tokio::spawn(watch(services, bootstrap, Arc::clone(&log)));
    (task, log)
}

async fn watch(services: Vec<(String, String)>, bootstrap: String, log: OnCallLog) {
    let http = reqwest::Client::new();
    let tool = KafkaTool::new(&bootstrap);
    loop {
        tokio::time::sleep(Duration::from_secs(3)).await;
        for (service, url) in &services {
            for group in stalled_groups(&http, url).await {
                let note = |line: String| {
                    eprintln!("on call: {line}");
                    log.lock().expect("on-call log").push(line);
                };
                note(format!(
                    "{service} reports group {group} cannot fetch its offsets"
                ));
                match unstick(&tool, &group).await {
                    Ok(aborted) if aborted.is_empty() => {
                        note(format!("no open transaction stayed on {group}'s partition"))
                    }
                    Ok(aborted) => {
                        for a in aborted {
                            note(format!("aborted {a}"));
                        }
                    }
                    Err(e) => note(format!("the runbook procedure failed: {e:#}")),
                }
            }
        }
    }
}

/// The groups a service's `/readyz` names as unable to fetch their offsets.
async fn stalled_groups(http: &reqwest::Client, url: &str) -> Vec<String> {
    let Ok(r) = http
        .get(format!("{url}/readyz"))
        .timeout(Duration::from_secs(2))
        .send()
        .await
    else {
        return Vec::new(); // down (killed, restarting): nothing to read
    };
    if r.status().is_success() {
        return Vec::new();
    }
    let body: serde_json::Value = r.json().await.unwrap_or_default();
    body.as_object()
        .into_iter()
        .flatten()
        .filter_map(|(k, _)| k.strip_prefix("kafka_consumer:").map(String::from))
        .collect()
}

/// The runbook's procedure: the open transaction on the group's `__consumer_offsets`
/// partition that is still open, at the same offset, a few seconds later (a stage's own
/// transaction commits in milliseconds) is aborted. Returns what was aborted.
async fn unstick(tool: &KafkaTool, group: &str) -> anyhow::Result<Vec<String>> {
    let partition = tool.offsets_partition(group)?;
    let first = tool
        .open_transactions("__consumer_offsets", partition)
        .await?;
    tokio::time::sleep(Duration::from_secs(5)).await;
    let second = tool
        .open_transactions("__consumer_offsets", partition)
        .await?;
    let mut aborted = Vec::new();
    for t in second.iter().filter(|t| first.contains(t)) {
        tool.abort(t).await?;
        aborted.push(format!(
            "the transaction of producer {} open since offset {} on __consumer_offsets[{}]",
            t.producer_id, t.start_offset, t.partition
        ));
    }
    Ok(aborted)
}
