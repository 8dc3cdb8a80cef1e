//! Part 2 of the end-to-end bench: a backlog of changes committed while salesforce-source is
//! stopped, then drained through the whole pipeline into Jira. Reports the sustained
//! changes/s and where the time goes: records visible per stage over time, per-change waits,
//! and the jira-sink's own counters (Jira calls, 429s, limiter waits) from its `/metrics`.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use sfjira_tests::unique;

use crate::collector::{Collector, Seen, Stage};
use crate::org::Org;
use crate::report::{self, Dist};
use crate::{deploy, env_or, now_ms, stage_rows};

/// Part 2: a backlog of `n` changes, drained through the whole pipeline.
pub async fn run(n: usize) -> anyhow::Result<()> {
    println!(
        "\n== end-to-end throughput: a Salesforce backlog of {n} changes drained into Jira =="
    );
    let mut d = deploy().await?;
    d.kill("sfjira-salesforce-source").await?;
    let org = Org::connect(&d.salesforce_url).await?;
    let tag = unique("bkl")[4..12].to_string();

    // The backlog: Collections of 200 (one transaction each), four calls in flight.
    let t = Instant::now();
    let next = Arc::new(AtomicUsize::new(0));
    let mut writers = tokio::task::JoinSet::new();
    for _ in 0..4 {
        let (org, next, tag) = (org.clone(), next.clone(), tag.clone());
        writers.spawn(async move {
            let mut ids = Vec::new();
            loop {
                let from = next.fetch_add(200, Ordering::Relaxed);
                if from >= n {
                    return Ok::<_, anyhow::Error>(ids);
                }
                let chunk: Vec<_> = (from..(from + 200).min(n))
                    .map(|i| Org::account(&tag, i))
                    .collect();
                ids.extend(org.create_collection(&chunk).await?);
            }
        });
    }
    let mut ids = Vec::with_capacity(n);
    while let Some(r) = writers.join_next().await {
        ids.extend(r??);
    }
    let load_secs = t.elapsed().as_secs_f64();
    println!(
        "  committed {} changes in {load_secs:.2} s ({:.0}/s, the sandbox's own commit rate)",
        ids.len(),
        ids.len() as f64 / load_secs
    );

    let collector = Collector::start(&d.bootstrap, &d.topic_prefix)?;
    let t0_ms = now_ms();
    let t0 = Instant::now();
    d.start_service("sfjira-salesforce-source")?;
    d.wait_ready("sfjira-salesforce-source").await?;
    let stall = Duration::from_secs(env_or("SFJIRA_BENCH_BACKLOG_STALL_SECS", 180) as u64);
    let mut last = (0, Instant::now());
    let mut printed = Instant::now();
    let wanted: HashSet<&String> = ids.iter().collect();
    loop {
        tokio::time::sleep(Duration::from_millis(500)).await;
        let counts = collector.with(|s| Stage::ALL.map(|st| s.count(st)));
        let done = counts[2];
        if printed.elapsed() >= Duration::from_secs(10) {
            printed = Instant::now();
            let secs = t0.elapsed().as_secs_f64();
            println!(
                "  [{secs:>5.0} s] source topic {:>6}   jira.commands {:>6}   in Jira {:>6}   ({:.0} changes/s so far)",
                counts[0],
                counts[1],
                done,
                done as f64 / secs
            );
        }
        if done >= wanted.len() {
            break;
        }
        if done > last.0 {
            last = (done, Instant::now());
        } else if last.1.elapsed() > stall {
            println!("  stopped: nothing reached Jira for {} s", stall.as_secs());
            break;
        }
    }
    let metrics = match report::metrics_addr(&d.dir.join("sfjira-jira-sink.log")) {
        Some(addr) => report::scrape(&addr).await,
        None => String::new(),
    };
    collector.with(|s| print_backlog(s, &ids, t0_ms, &metrics));
    Ok(())
}

fn print_backlog(s: &Seen, ids: &[String], t0_ms: i64, metrics: &str) {
    let done = s.count(Stage::Audited);
    let end = s
        .visible(Stage::Audited)
        .iter()
        .max()
        .copied()
        .unwrap_or(t0_ms);
    let secs = ((end - t0_ms) as f64 / 1000.0).max(0.001);
    println!(
        "\n  {done} of {} changes in Jira in {secs:.1} s from the source's start: {:.1} changes/s sustained",
        ids.len(),
        done as f64 / secs
    );
    println!(
        "\n  Where the time goes: records visible per stage (read_committed), from the source's start"
    );
    println!(
        "  {:<44} {:>8} {:>9} {:>9} {:>10} {:>10}",
        "stage", "records", "first s", "last s", "mean /s", "peak 1s /s"
    );
    let names = [
        "salesforce-source -> salesforce.cdc.Account",
        "transformer -> jira.commands",
        "jira-sink -> Jira + sfjira.audit",
    ];
    for (stage, name) in Stage::ALL.iter().zip(names) {
        let mut v = s.visible(*stage).to_vec();
        v.sort_unstable();
        let (Some(first), Some(last)) = (v.first(), v.last()) else {
            println!("  {name:<44} {:>8}", 0);
            continue;
        };
        println!(
            "  {name:<44} {:>8} {:>9.1} {:>9.1} {:>10.1} {:>10.1}",
            v.len(),
            (first - t0_ms) as f64 / 1000.0,
            (last - t0_ms) as f64 / 1000.0,
            v.len() as f64 * 1000.0 / ((last - t0_ms) as f64).max(1.0),
            report::peak_rate(&v, 1000)
        );
    }
    let mut results: HashMap<String, usize> = HashMap::new();
    for e in s.audit.values() {
        *results
            .entry(format!("{} {:?}", e.operation, e.result).to_lowercase())
            .or_default() += 1;
    }
    println!("  jira-sink audit results: {results:?}");
    println!("\n  Per change, how long it waited at each stage (a backlog: mostly queueing)");
    println!("{}", Dist::header());
    let (rows, _) = stage_rows(s, ids, &HashMap::new());
    for r in rows.iter().take(7) {
        println!("{r}");
    }
    if metrics.is_empty() {
        println!("  (jira-sink /metrics not readable)");
        return;
    }
    let m = |name: &str| report::metric_sum(metrics, name, &[]);
    println!("\n  jira-sink /metrics");
    for (labels, v) in report::metric_rows(metrics, "sfjira_jira_sink_api_calls_total") {
        println!("  {:<44} {v:>10.0}", format!("Jira calls {labels}"));
    }
    let throttled = report::metric_rows(metrics, "sfjira_jira_sink_throttled_total");
    if throttled.is_empty() {
        println!("  {:<44} {:>10}", "429/503 answers from Jira", 0);
    }
    for (labels, v) in throttled {
        println!("  {:<44} {v:>10.0}", format!("429/503 answers {labels}"));
    }
    println!(
        "  {:<44} {:>10.0}",
        "retries",
        m("sfjira_jira_sink_retries_total")
    );
    println!(
        "  {:<44} {:>10.1}",
        "time calls waited on the sink's limiter, s",
        m("sfjira_jira_sink_limit_wait_ms_total") / 1000.0
    );
    let mean = |name: &str| m(&format!("{name}_sum")) / m(&format!("{name}_count")).max(1.0);
    println!(
        "  {:<44} {:>10.1}",
        "commands per batch (mean)",
        mean("sfjira_jira_sink_batch_size")
    );
    println!(
        "  {:<44} {:>10.2}",
        "batch read-to-commit, s (mean)",
        mean("sfjira_jira_sink_batch_seconds")
    );
    println!(
        "  {:<44} {:>10.1}",
        "issues per bulk create (mean)",
        mean("sfjira_jira_sink_bulk_create_size")
    );
    println!(
        "  {:<44} {:>10.3}",
        "Jira call latency, s (mean)",
        mean("sfjira_jira_sink_api_latency_seconds")
    );
}
