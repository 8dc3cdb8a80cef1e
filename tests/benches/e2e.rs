//! `make bench`: the whole pipeline, Salesforce sandbox commit → Jira sandbox write (issue #10,
//! item 5), on a real deployment ([`Deployment`]: the sandbox and the five service binaries as
//! processes, with their own topics and groups, against the shared Kafka and registry). The
//! binaries are the ones next to this bench (`target/release`, built by `cargo build --release
//! --workspace --bins`, which `make bench` runs first).
//!
//! A change is a new Customer `Account` (one Epic created in Jira; see `e2e/org.rs` for why
//! creates and not edits). Two parts, each on a fresh deployment:
//!
//! 1. **Latency**: `SFJIRA_BENCH_E2E_RATE` changes/s (default 100), paced open-loop (a change
//!    is sent on its tick whether or not earlier ones finished), for `SFJIRA_BENCH_E2E_SECS`
//!    (default 60). Per change: **Jira's `created` of the issue − the CDC event's
//!    `commitTimestamp`**, both taken from the systems themselves (the commit time travels with
//!    the change into the audit entry's `source_time_ms`; `created` is read back from the Jira
//!    sandbox). The sandbox serves both halves from one process and one clock. Target:
//!    p99 < 500 ms. Where the time goes: each stage from the Kafka timestamps of the change's
//!    records (source topic, `jira.commands`, `sfjira.audit`) and the sink's own
//!    `started_ms`/`finished_ms`. Baseline, same run: the round trip of one sandbox write.
//! 2. **Backlog**: with salesforce-source stopped, `SFJIRA_BENCH_BACKLOG` changes (default
//!    50 000) committed through sObject Collections (200 per transaction, real change events);
//!    then the source starts and the bench measures until every change is in Jira (or nothing
//!    moved for `SFJIRA_BENCH_BACKLOG_STALL_SECS`, default 180): overall changes/s, per stage
//!    rates from the records visible per topic over time, and the jira-sink's own counters
//!    (Jira calls, 429s, time waiting on its rate limiter) from its `/metrics`.
//!
//! `SFJIRA_BENCH_E2E_PARTS=latency` or `=backlog` runs one part; `SFJIRA_BENCH_E2E_STOP` names
//! services to leave stopped (`sfjira-jira-source`: the Salesforce → Jira path alone). The services read the usual
//! `SFJIRA_<SECTION>__<KEY>` variables, so `SFJIRA_JIRA_SINK__LINGER_MS=50 cargo bench …`
//! measures another setting; the settings in effect are printed.

#[path = "e2e/backlog.rs"]
mod backlog;
#[path = "e2e/collector.rs"]
mod collector;
#[path = "e2e/org.rs"]
mod org;
#[path = "e2e/report.rs"]
mod report;

use std::collections::HashMap;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context, bail};
use sfjira_core::audit::AuditResult;
use sfjira_tests::demo::Deployment;
use sfjira_tests::{bootstrap, registry_url, unique};

use collector::{Collector, Seen, Stage};
use org::{Org, Written};
use report::Dist;

const TARGET_P99_MS: f64 = 500.0;

pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

fn env_or(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn main() -> anyhow::Result<()> {
    let parts =
        std::env::var("SFJIRA_BENCH_E2E_PARTS").unwrap_or_else(|_| "latency,backlog".into());
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    rt.block_on(async {
        if parts.contains("latency") {
            let rate = env_or("SFJIRA_BENCH_E2E_RATE", 100).max(1);
            let secs = env_or("SFJIRA_BENCH_E2E_SECS", 60).max(1);
            latency(rate, secs).await.context("latency part")?;
        }
        if parts.contains("backlog") {
            let n = env_or("SFJIRA_BENCH_BACKLOG", 50_000).max(1);
            backlog::run(n).await.context("backlog part")?;
        }
        Ok(())
    })
}

async fn deploy() -> anyhow::Result<Deployment> {
    let mut d = Deployment::start(&bootstrap(), &registry_url())
        .await
        .context("starting the deployment (cargo build --release --workspace --bins first)")?;
    print_settings(&d);
    // For finding where the time goes: services left out of the run (e.g. the Jira → Salesforce
    // direction, whose polling and webhooks share the Jira site with the sink's writes).
    let stop = std::env::var("SFJIRA_BENCH_E2E_STOP").unwrap_or_default();
    for name in stop.split(',').map(str::trim).filter(|n| !n.is_empty()) {
        d.kill(name).await?;
        println!("  {name}: stopped for this run (SFJIRA_BENCH_E2E_STOP)");
    }
    Ok(d)
}

/// The jira-sink settings the services run with (file + `SFJIRA_…` variables).
fn print_settings(d: &Deployment) {
    let env = std::env::vars().chain([
        ("SFJIRA_SALESFORCE_CLIENT_SECRET".into(), "x".into()),
        ("SFJIRA_JIRA_API_TOKEN".into(), "x".into()),
        ("SFJIRA_JIRA_WEBHOOK_SECRET".into(), "x".into()),
    ]);
    match sfjira_core::config::load_from(Some(&d.config_path), env) {
        Ok(cfg) => {
            if let Some(t) = &cfg.transformer {
                println!(
                    "  transformer: batch_size {}, batch_wait_ms {}",
                    t.batch_size, t.batch_wait_ms
                );
            }
            if let Some(s) = cfg.jira_sink {
                println!(
                    "  jira-sink: linger_ms {}, batch_size {}, bulk_size {}, concurrency {}, \
                     rate limit {}/s (burst {}), writes {}/s",
                    s.linger_ms,
                    s.batch_size,
                    s.bulk_size,
                    s.concurrency,
                    s.rate_limit_per_second,
                    s.rate_limit_burst,
                    s.write_rate_limit_per_second
                );
            }
        }
        Err(e) => println!("  (settings not readable: {e})"),
    }
}

/// Part 1: paced changes, per-change latency to the Jira write.
async fn latency(rate: usize, secs: usize) -> anyhow::Result<()> {
    println!(
        "\n== end-to-end latency: {rate} changes/s for {secs} s, Salesforce commit -> Jira write =="
    );
    let d = deploy().await?;
    let collector = Collector::start(&d.bootstrap, &d.topic_prefix)?;
    let org = Org::connect(&d.salesforce_url).await?;
    let tag = unique("lat")[4..12].to_string();

    // Warm-up: subscriptions open, schemas registered, field catalog loaded.
    let mut warm = Vec::new();
    for n in 0..5 {
        warm.push(org.create_as_user(&Org::account(&tag, n)).await?.id);
    }
    if !wait_audited(&collector, &warm, Duration::from_secs(180), "warm-up").await {
        bail!("the warm-up changes never reached Jira:\n{}", d.all_logs());
    }

    // Records per transaction: 1 (default) is one change per Salesforce transaction, as a user
    // saving a record makes; more sends Collections of that many every `per_txn / rate` s.
    let per_txn = env_or("SFJIRA_BENCH_E2E_PER_TXN", 1).clamp(1, 200);
    let total = rate * secs;
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let mut tick = tokio::time::interval(Duration::from_secs_f64(per_txn as f64 / rate as f64));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let t0 = Instant::now();
    let mut next_report = rate * 10;
    for n in (0..total).step_by(per_txn) {
        tick.tick().await;
        let (org, tx) = (org.clone(), tx.clone());
        let fields: Vec<_> = (n..(n + per_txn).min(total))
            .map(|i| Org::account(&tag, 1000 + i))
            .collect();
        tokio::spawn(async move {
            let r = if fields.len() == 1 {
                org.create_as_user(&fields[0]).await.map(|w| vec![w])
            } else {
                org.create_collection_timed(&fields).await
            };
            let _ = tx.send(r);
        });
        if n >= next_report {
            next_report += rate * 10;
            let (src, audited) =
                collector.with(|s| (s.count(Stage::Source), s.count(Stage::Audited)));
            println!(
                "  [{:>3} s] sent {n:>6}   in source topic {src:>6}   in Jira {audited:>6}",
                t0.elapsed().as_secs()
            );
        }
    }
    drop(tx);
    let offered = t0.elapsed().as_secs_f64();
    let mut written: Vec<Written> = Vec::new();
    let mut failed = 0;
    while let Some(r) = rx.recv().await {
        match r {
            Ok(w) => written.extend(w),
            Err(e) => {
                failed += 1;
                if failed <= 3 {
                    eprintln!("  write failed: {e:#}");
                }
            }
        }
    }
    let ids: Vec<String> = written.iter().map(|w| w.id.clone()).collect();
    let all_in = wait_audited(&collector, &ids, Duration::from_secs(120), "drain").await;
    let created = org.jira_created(&d.jira_url).await?;

    let (stages, pairs) = collector.with(|s| stage_rows(s, &ids, &created));
    let totals: Vec<f64> = pairs.iter().map(|(_, ms)| *ms).collect();
    let p99 = Dist::of(totals.clone()).map(|d| d.p99);
    println!(
        "\n  offered {} changes in {offered:.1} s ({:.1}/s; {failed} writes failed); {} of them in Jira{}",
        written.len(),
        written.len() as f64 / offered,
        totals.len(),
        if all_in {
            ""
        } else {
            " (the rest did not arrive within 120 s of the last progress)"
        }
    );
    println!("{}", Dist::header());
    println!(
        "{}",
        Dist::row(
            "baseline: one sandbox write, round trip",
            written.iter().map(|w| w.rtt_ms).collect()
        )
    );
    let sent_to_commit: Vec<f64> = collector.with(|s| {
        written
            .iter()
            .filter_map(|w| s.audit.get(&w.id).map(|e| (e, w)))
            .filter(|(e, _)| e.source_time_ms > 0)
            .map(|(e, w)| (e.source_time_ms - w.sent_ms) as f64)
            .collect()
    });
    println!(
        "{}",
        Dist::row("request sent -> commitTimestamp", sent_to_commit)
    );
    for line in stages {
        println!("{line}");
    }
    print_windows(&pairs);
    match p99 {
        Some(p99) if totals.len() == written.len() => println!(
            "  => p99 {p99:.0} ms vs target < {TARGET_P99_MS:.0} ms: {} ({:.1}x the write round trip p99)",
            if p99 < TARGET_P99_MS { "PASS" } else { "MISS" },
            p99 / Dist::of(written.iter().map(|w| w.rtt_ms).collect())
                .map_or(1.0, |d| d.p99.max(0.001))
        ),
        Some(p99) => println!(
            "  => MISS: {} of {} changes never reached Jira (p99 of those that did: {p99:.0} ms)",
            written.len() - totals.len(),
            written.len()
        ),
        None => println!("  => MISS: no change reached Jira"),
    }
    Ok(())
}

/// End to end by 10-s window of commit time: whether latency holds over the minute or grows.
fn print_windows(pairs: &[(i64, f64)]) {
    let Some(start) = pairs.iter().map(|(c, _)| *c).min() else {
        return;
    };
    let mut windows: std::collections::BTreeMap<i64, Vec<f64>> = Default::default();
    for (commit, ms) in pairs {
        windows
            .entry((commit - start) / 10_000)
            .or_default()
            .push(*ms);
    }
    println!("  END TO END by 10-s window of commit time");
    for (w, v) in windows {
        println!(
            "{}",
            Dist::row(
                &format!("  committed {:>3}-{:>3} s", w * 10, w * 10 + 10),
                v
            )
        );
    }
}

/// Waits until every id has a jira-sink audit entry, or nothing new arrived for `stall`.
async fn wait_audited(c: &Collector, ids: &[String], stall: Duration, what: &str) -> bool {
    let mut last = (0, Instant::now());
    loop {
        let done = c.with(|s| {
            ids.iter()
                .filter(|id| s.time(Stage::Audited, id).is_some())
                .count()
        });
        if done == ids.len() {
            return true;
        }
        if done > last.0 {
            last = (done, Instant::now());
        } else if last.1.elapsed() > stall {
            println!(
                "  {what}: {done} of {} in Jira, nothing new for {} s",
                ids.len(),
                stall.as_secs()
            );
            return false;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Per-stage latency rows for the changes `ids`, and the end-to-end figure (Jira `created` −
/// commit) of each change that reached Jira.
fn stage_rows(
    s: &Seen,
    ids: &[String],
    created: &HashMap<String, i64>,
) -> (Vec<String>, Vec<(i64, f64)>) {
    let mut cols: [Vec<f64>; 8] = Default::default();
    let mut pairs = Vec::new();
    for id in ids {
        let Some(e) = s.audit.get(id) else { continue };
        if e.result != AuditResult::Applied || e.source_time_ms <= 0 {
            continue;
        }
        let commit = e.source_time_ms;
        let key = e.target.strip_prefix("jira:").unwrap_or(&e.target);
        let (src, cmd, aud) = (
            s.time(Stage::Source, id),
            s.time(Stage::Command, id),
            s.time(Stage::Audited, id),
        );
        if let (Some(src), Some(cmd), Some(aud)) = (src, cmd, aud) {
            cols[0].push((src - commit) as f64);
            cols[1].push((cmd - src) as f64);
            cols[2].push((e.started_ms - cmd) as f64);
            cols[3].push((e.finished_ms - e.started_ms) as f64);
            cols[4].push((aud - e.finished_ms) as f64);
        }
        cols[5].push((e.finished_ms - commit) as f64);
        cols[6].push((aud.unwrap_or(e.finished_ms) - commit) as f64);
        if let Some(c) = created.get(key) {
            cols[7].push((c - commit) as f64);
            pairs.push((commit, (c - commit) as f64));
        }
    }
    let labels = [
        "commit -> source topic (salesforce-source)",
        "source topic -> jira.commands (transformer)",
        "jira.commands -> sink starts write (linger)",
        "sink write: started -> finished (Jira calls)",
        "finished -> audit committed (sink txn)",
        "commit -> sink finished (audit finished_ms)",
        "commit -> audit entry visible",
    ];
    let mut rows: Vec<String> = labels
        .iter()
        .zip(cols.iter().take(7))
        .map(|(l, v)| Dist::row(l, v.clone()))
        .collect();
    let [.., total] = cols;
    rows.push(Dist::row("END TO END: commit -> Jira issue created", total));
    (rows, pairs)
}
