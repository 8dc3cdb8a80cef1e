//! `sfjira status`: the pipeline at a glance, from Kafka itself — consumer lag per group, topic
//! and partition; dead letters waiting, by stage and code; the sources' checkpoints and their
//! age — and, for the services named with `--service`, their readiness and headline gauges
//! (Salesforce API allocation used, the Jira limiter, pauses; [`services`]). Everything is
//! read, nothing is changed.

pub mod services;

use std::collections::BTreeMap;
use std::path::Path;
use std::process::ExitCode;
use std::time::Duration;

use chrono::{DateTime, Utc};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::{Offset, TopicPartitionList};
use serde::Serialize;
use sfjira_core::config::SfjiraConfig;
use sfjira_core::kafka::{client_config, latest_by_key, topic_name};
use sfjira_core::topics;

use crate::Output;
use crate::dlq::backlog::{self, CHECKPOINT_TOPIC, STAGES};

const TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Debug, Serialize)]
pub struct Lag {
    pub group: String,
    pub topic: String,
    pub partition: i32,
    pub committed: i64,
    pub end: i64,
    pub lag: i64,
}

#[derive(Debug, Serialize)]
pub struct DlqDepth {
    pub stage: String,
    pub code: String,
    pub records: usize,
    pub oldest: Option<DateTime<Utc>>,
}

#[derive(Debug, Serialize)]
pub struct Checkpoint {
    pub key: String,
    pub written_at: Option<DateTime<Utc>>,
    pub age_seconds: Option<i64>,
}

#[derive(Debug, Serialize)]
pub struct Status {
    pub services: Vec<services::ServiceHealth>,
    pub lag: Vec<Lag>,
    pub dlq: Vec<DlqDepth>,
    pub checkpoints: Vec<Checkpoint>,
}

/// Which consumer groups to report on.
pub enum Groups {
    /// These, by name.
    Named(Vec<String>),
    /// Groups whose name starts with `sfjira` or with the deployment's topic prefix (every
    /// sfjira service's default group does).
    Sfjira,
    /// Every group on the cluster (slow on a busy cluster: one offsets query per group).
    All,
}

pub async fn run(
    cfg: &SfjiraConfig,
    topics_file: &Path,
    groups: Groups,
    service_urls: &[(String, String)],
    output: Output,
) -> anyhow::Result<ExitCode> {
    let specs = topics::load(topics_file, &cfg.kafka.topic_prefix)?;
    let topic_names: Vec<String> = specs.into_iter().map(|s| s.name).collect();
    let base = client_config(&cfg.kafka);
    let prefix = cfg.kafka.topic_prefix.clone();
    let wanted = move |name: &str| match &groups {
        Groups::Named(names) => names.iter().any(|n| n == name),
        Groups::Sfjira => {
            name.starts_with("sfjira") || (!prefix.is_empty() && name.starts_with(prefix.as_str()))
        }
        Groups::All => true,
    };
    let lag =
        tokio::task::spawn_blocking(move || consumer_lag(&base, &topic_names, wanted)).await??;
    let mut dlq = Vec::new();
    for stage in STAGES {
        match backlog::load(cfg, stage).await {
            Ok((entries, _)) => {
                let mut by_code: BTreeMap<String, (usize, Option<DateTime<Utc>>)> = BTreeMap::new();
                for e in entries {
                    let slot = by_code
                        .entry(e.code.clone().unwrap_or_else(|| "-".into()))
                        .or_default();
                    slot.0 += 1;
                    slot.1 = match (slot.1, e.dead_lettered_at) {
                        (Some(a), Some(b)) => Some(a.min(b)),
                        (a, b) => a.or(b),
                    };
                }
                dlq.extend(
                    by_code
                        .into_iter()
                        .map(|(code, (records, oldest))| DlqDepth {
                            stage: stage.to_string(),
                            code,
                            records,
                            oldest,
                        }),
                );
            }
            Err(e) => eprintln!("note: the {stage} DLQ could not be read: {e:#}"),
        }
    }
    let checkpoints = checkpoints(cfg).await?;
    let status = Status {
        services: services::probe(service_urls).await,
        lag,
        dlq,
        checkpoints,
    };
    render(&status, output);
    Ok(ExitCode::SUCCESS)
}

/// Committed offset and end of every partition of `topics`, for every `wanted` group that has
/// committed on one of them.
pub fn consumer_lag(
    base: &rdkafka::ClientConfig,
    topics: &[String],
    wanted: impl Fn(&str) -> bool,
) -> anyhow::Result<Vec<Lag>> {
    let probe: BaseConsumer = base.clone().set("group.id", "sfjira-status").create()?;
    let md = probe.fetch_metadata(None, TIMEOUT)?;
    let mut partitions: Vec<(String, i32, i64)> = Vec::new();
    for t in md
        .topics()
        .iter()
        .filter(|t| topics.iter().any(|n| n == t.name()))
    {
        for p in t.partitions() {
            let (_, high) = probe.fetch_watermarks(t.name(), p.id(), TIMEOUT)?;
            partitions.push((t.name().to_string(), p.id(), high));
        }
    }
    let groups = probe.fetch_group_list(None, TIMEOUT)?;
    let mut out = Vec::new();
    for g in groups.groups().iter().filter(|g| wanted(g.name())) {
        let consumer: BaseConsumer = base.clone().set("group.id", g.name()).create()?;
        let mut tpl = TopicPartitionList::new();
        for (t, p, _) in &partitions {
            tpl.add_partition(t, *p);
        }
        let committed = consumer.committed_offsets(tpl, TIMEOUT)?;
        for (t, p, end) in &partitions {
            if let Some(Offset::Offset(c)) = committed.find_partition(t, *p).map(|e| e.offset()) {
                out.push(Lag {
                    group: g.name().to_string(),
                    topic: t.clone(),
                    partition: *p,
                    committed: c,
                    end: *end,
                    lag: (end - c).max(0),
                });
            }
        }
    }
    out.sort_by(|a, b| (&a.group, &a.topic, a.partition).cmp(&(&b.group, &b.topic, b.partition)));
    Ok(out)
}

async fn checkpoints(cfg: &SfjiraConfig) -> anyhow::Result<Vec<Checkpoint>> {
    let base = client_config(&cfg.kafka);
    let topic = topic_name(&cfg.kafka, CHECKPOINT_TOPIC);
    let latest = match tokio::task::spawn_blocking(move || latest_by_key(&base, &topic)).await? {
        Ok(l) => l,
        Err(_) => return Ok(Vec::new()), // no checkpoint topic yet
    };
    let latest: BTreeMap<String, Option<DateTime<Utc>>> = latest
        .into_iter()
        .map(|(key, m)| {
            (
                key,
                m.timestamp()
                    .to_millis()
                    .and_then(DateTime::from_timestamp_millis),
            )
        })
        .collect();
    let now = Utc::now();
    Ok(latest
        .into_iter()
        .map(|(key, written_at)| Checkpoint {
            key,
            age_seconds: written_at.map(|t| (now - t).num_seconds()),
            written_at,
        })
        .collect())
}

fn render(s: &Status, output: Output) {
    if output == Output::Json {
        println!(
            "{}",
            serde_json::to_string_pretty(s).expect("status serialises")
        );
        return;
    }
    if !s.services.is_empty() {
        println!("SERVICES");
    }
    for h in &s.services {
        println!("  {:<20} {:<12} {}", h.name, h.state, h.url);
        if h.state != "ready" && !h.detail.is_empty() {
            println!("      {}", h.detail);
        }
        for (series, value) in &h.gauges {
            println!("      {series} = {value}");
        }
    }
    println!("CONSUMER LAG");
    if s.lag.is_empty() {
        println!("  (no consumer group has committed on sfjira's topics)");
    }
    for l in &s.lag {
        println!(
            "  {:<32} {:<40} p{:<3} committed {:>10}  end {:>10}  lag {:>8}",
            l.group, l.topic, l.partition, l.committed, l.end, l.lag
        );
    }
    println!("DEAD LETTERS (waiting for replay)");
    if s.dlq.is_empty() {
        println!("  (none)");
    }
    for d in &s.dlq {
        let oldest = d
            .oldest
            .map(|t| t.to_rfc3339())
            .unwrap_or_else(|| "-".into());
        println!(
            "  {:<18} {:<10} {:>8} record(s), oldest {oldest}",
            d.stage, d.code, d.records
        );
    }
    println!("CHECKPOINTS");
    if s.checkpoints.is_empty() {
        println!("  (none)");
    }
    for c in &s.checkpoints {
        let age = c
            .age_seconds
            .map(|a| format!("{a}s ago"))
            .unwrap_or_else(|| "-".into());
        println!("  {:<56} {age}", c.key);
    }
}
