//! `make bench`: jira-sink against the Jira sandbox at its default rate limits (Jira Cloud's
//! published per-endpoint rates: POST 100/s, PUT 50/s, GET issue 150/s), real Kafka and
//! registry. Two backlogs, each already in `jira.commands` when the sink starts:
//!
//! 1. creates (`SFJIRA_BENCH_CREATES`, default 2 000): commands/s, and Jira API calls per created
//!    issue in bulk mode (target ≤ 0.05);
//! 2. edits of those issues (`SFJIRA_BENCH_EDITS`, default 1 000; each a read for the audit's
//!    "before" and a `PUT`): commands/s, the share of the site's `PUT /issue` limit used
//!    (target ≥ 80 %) and the share of requests answered 429 (target < 1 %).
//!
//! The sink is configured just under the site's limits (`rate_limit_per_second: 100`,
//! `write_rate_limit_per_second: 48`).

#[path = "../tests/support/mod.rs"]
mod support;

use std::time::Duration;

use serde_json::json;
use sfjira_core::audit::AuditEntry;
use support::*;

fn env_n(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// (requests, of which 429) per endpoint label so far, from the Prometheus recorder.
fn counts(handle: &metrics_exporter_prometheus::PrometheusHandle, endpoint: &str) -> (f64, f64) {
    let text = handle.render();
    let mut all = 0.0;
    let mut throttled = 0.0;
    for line in text
        .lines()
        .filter(|l| l.starts_with("sfjira_jira_sink_api_calls_total{"))
    {
        if !line.contains(&format!("endpoint=\"{endpoint}\"")) {
            continue;
        }
        let n: f64 = line
            .rsplit(' ')
            .next()
            .and_then(|v| v.parse().ok())
            .unwrap_or(0.0);
        all += n;
        if line.contains("status=\"429\"") {
            throttled += n;
        }
    }
    (all, throttled)
}

/// Seconds from the first command started to the last finished, by the audit's clocks (the
/// sink's start-up — loading links and the audit, `GET /field` — is not counted).
fn span(entries: &[AuditEntry]) -> f64 {
    let start = entries.iter().map(|e| e.started_ms).min().unwrap_or(0);
    let end = entries.iter().map(|e| e.finished_ms).max().unwrap_or(0);
    (end - start).max(1) as f64 / 1000.0
}

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(bench());
}

async fn bench() {
    let handle = sfjira_core::health::install_metrics_recorder().unwrap();
    let creates = env_n("SFJIRA_BENCH_CREATES", 2000);
    let edits = env_n("SFJIRA_BENCH_EDITS", 1000).min(creates);
    let stack = Stack::new().await;
    let site = jira(Default::default()).await;
    let concurrency = env_n("SFJIRA_BENCH_CONCURRENCY", 16);
    let yaml = stack.yaml(
        &site.base_url(),
        &format!("  rate_limit_per_second: 100\n  write_rate_limit_per_second: 48\n  rate_limit_burst: 10\n  concurrency: {concurrency}\n  linger_ms: 500\n  retry_initial_delay_ms: 2000\n  retry_max_delay_ms: 60000\n"),
    );
    let refs: Vec<String> = (0..creates)
        .map(|i| {
            format!(
                "salesforce:Opportunity:{}-{i}",
                sfjira_tests::unique("bench")
            )
        })
        .collect();

    // 1. Creates.
    let cmds: Vec<_> = refs
        .iter()
        .map(|r| upsert(r, 1, &[("summary", json!(r)), ("Salesforce ID", json!(r))]))
        .collect();
    stack.send(&cmds).await;
    let sink = Running::start(&stack.load(&yaml)).await;
    let after_start = sink.sink.jira.calls();
    let audit = stack.audit(creates, Duration::from_secs(600)).await;
    assert_eq!(audit.len(), creates, "every create audited");
    let create_calls = sink.sink.jira.calls() - after_start;
    sink.stop().await;
    let secs = span(&audit);
    println!("jira-sink bench (sandbox at default rate limits)");
    println!(
        "  creates: {creates} in {secs:.1} s = {:.0} commands/s; {create_calls} API calls = {:.3} calls per created issue (target <= 0.05)",
        creates as f64 / secs,
        create_calls as f64 / creates as f64
    );

    // 2. Edits.
    let (edit_before, edit_429_before) = counts(&handle, "edit");
    let (all_before, all_429_before) = counts(&handle, "");
    let _ = (all_before, all_429_before);
    let cmds: Vec<_> = refs
        .iter()
        .take(edits)
        .map(|r| upsert(r, 2, &[("summary", json!(format!("{r} edited")))]))
        .collect();
    stack.send(&cmds).await;
    let sink = Running::start(&stack.load(&yaml)).await;
    let before = sink.sink.jira.calls();
    let audit = stack.audit(creates + edits, Duration::from_secs(600)).await;
    let edited: Vec<AuditEntry> = audit
        .into_iter()
        .filter(|e| e.operation == "update")
        .collect();
    assert_eq!(edited.len(), edits, "every edit audited");
    let calls = sink.sink.jira.calls() - before;
    sink.stop().await;
    let secs = span(&edited);
    let (edit_after, edit_429_after) = counts(&handle, "edit");
    let (get_all, get_429) = counts(&handle, "get");
    let puts_ok = (edit_after - edit_before) - (edit_429_after - edit_429_before);
    let throttled = (edit_429_after - edit_429_before) + get_429;
    let put_limit = 50.0;
    println!(
        "  edits: {edits} in {secs:.1} s = {:.0} commands/s; {calls} API calls; PUT /issue at {:.1}/s = {:.0} % of the site's {put_limit}/s limit (target >= 80 %)",
        edits as f64 / secs,
        puts_ok / secs,
        100.0 * puts_ok / secs / put_limit
    );
    println!(
        "  429s: {throttled} of {calls} requests = {:.2} % (target < 1 %)",
        100.0 * throttled / calls.max(1) as f64
    );
    let _ = get_all;
    for line in handle.render().lines() {
        if line.starts_with("sfjira_jira_sink_api_latency_seconds{")
            && line.contains("quantile=\"0.5\"")
        {
            println!("  median latency {line}");
        }
    }
}
