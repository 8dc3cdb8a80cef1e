//! `make bench`: the salesforce-sink against the in-process sandbox org, on the real broker
//! and registry (`make bench` starts them).
//!
//! 1. Throughput: a backlog of `SFJIRA_BENCH_RECORDS` (default 5 000) new-record upserts of
//!    one object is applied; reported as records per second upserted and records per API call
//!    (Collections writes plus the reads before them). `SFJIRA_BENCH_CONCURRENT_CALLS` sets
//!    `max_concurrent_calls` (default 4).
//! 2. Linger cost: `SFJIRA_BENCH_STEADY` (default 100) commands produced one every 100 ms (a
//!    steady low rate); reported as p50/p99 of command-to-write latency, from the command's
//!    produce time to Salesforce's acknowledgement of its write (the audit's `finished_ms`),
//!    next to the configured `linger_ms` (the floor of that latency by design).

#[path = "../tests/support/mod.rs"]
mod support;

use std::collections::HashMap;
use std::time::Duration;

use serde_json::json;
use support::*;

fn env_count(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn commands(prefix: &str, n: usize) -> Vec<sfjira_core::command::Command> {
    (0..n)
        .map(|i| {
            let k = format!("{prefix}-{i}");
            upsert(
                "Account",
                &format!("jira:{k}"),
                Some(("Jira_Key__c", &k)),
                json!({"Name": format!("Bench {k}"), "Phone": "+1 555 0100", "Description": "x".repeat(200)}),
            )
        })
        .collect()
}

async fn throughput(n: usize) {
    let org = Org::start().await;
    let concurrency = env_count("SFJIRA_BENCH_CONCURRENT_CALLS", 4);
    let extra = format!("  linger_ms: 200\n  retry: {{}}\n  max_concurrent_calls: {concurrency}\n");
    let dep = Deployment::new("sfsink-bench", &org, &extra).await;
    dep.produce(&commands("B", n)).await;
    let (used_before, _) = org.api_usage().await;
    let sink = spawn_sink(dep.config());
    let audit = dep.audit(n, Duration::from_secs(600)).await;
    stop_sink(sink).await;
    // From the first write's start to the last write's end (start-up and group join excluded).
    let first = audit.iter().map(|e| e.started_ms).min().unwrap_or(0);
    let last = audit.iter().map(|e| e.finished_ms).max().unwrap_or(0);
    let elapsed = Duration::from_millis((last - first).max(1) as u64);
    assert_eq!(audit.len(), n, "every command applied");
    let (used_after, _) = org.api_usage().await;
    let calls = (used_after - used_before).max(1);
    let writes = org.transactions_on("Account").len().max(1);
    println!(
        "salesforce-sink throughput: {n} upserts in {:.2} s = {:.0} records/s ({concurrency} calls in flight)",
        elapsed.as_secs_f64(),
        n as f64 / elapsed.as_secs_f64()
    );
    println!(
        "salesforce-sink records per API call: {:.1} ({calls} calls: {writes} Collections writes, {} reads); per write call: {:.1} (max 200)",
        n as f64 / calls as f64,
        calls as usize - writes.min(calls as usize),
        n as f64 / writes as f64
    );
}

async fn steady(n: usize) {
    let org = Org::start().await;
    let linger_ms = 200;
    let dep = Deployment::new(
        "sfsink-bench-steady",
        &org,
        &format!("  linger_ms: {linger_ms}\n"),
    )
    .await;
    let sink = spawn_sink(dep.config());
    // Warm-up: the sink has joined its group and logged in.
    dep.produce(&commands("W", 1)).await;
    dep.audit(1, Duration::from_secs(60)).await;
    let producer = dep.producer().await;
    let mut produced: HashMap<String, i64> = HashMap::new();
    for c in commands("S", n) {
        produced.insert(c.command_id.clone(), chrono::Utc::now().timestamp_millis());
        producer.send(std::slice::from_ref(&c)).await;
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let audit = dep.audit(n + 1, Duration::from_secs(120)).await;
    stop_sink(sink).await;
    let mut lat: Vec<i64> = audit
        .iter()
        .filter_map(|e| produced.get(&e.command_id).map(|p| e.finished_ms - p))
        .collect();
    lat.sort_unstable();
    assert_eq!(lat.len(), n, "every steady command applied");
    let pct = |p: f64| lat[((lat.len() as f64 * p).ceil() as usize).clamp(1, lat.len()) - 1];
    println!(
        "salesforce-sink command-to-write latency at 10 commands/s: p50 {} ms, p99 {} ms (linger_ms {linger_ms})",
        pct(0.50),
        pct(0.99)
    );
}

fn main() {
    // `cargo bench` passes `--bench`; anything else (e.g. `cargo test --benches`) only checks
    // that the bench builds.
    if !std::env::args().any(|a| a == "--bench") {
        return;
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        throughput(env_count("SFJIRA_BENCH_RECORDS", 5_000)).await;
        steady(env_count("SFJIRA_BENCH_STEADY", 100)).await;
    });
}
