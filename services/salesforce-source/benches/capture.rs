//! `make bench`: salesforce-source capture throughput and latency, end to end — from the
//! sandbox committing a change to the change record being visible in Kafka to a
//! `read_committed` consumer — and the source's peak memory. Needs Kafka and the registry
//! (`make bench` starts them).
//!
//! The sandbox org runs in this process on the real-time clock (so `commitTimestamp` and the
//! bench's clock agree); the source is the optimised binary (`cargo bench` builds it with the
//! bench profile), started as a process so its peak RSS (`VmHWM`) is its own.
//!
//! Phases, one source run:
//! 1. warm-up: one change, until visible (subscription open, schema fetched and registered);
//! 2. steady: `SFJIRA_BENCH_RATE` single-record creates per second (default 100) for
//!    `SFJIRA_BENCH_STEADY_SECS` (default 10);
//! 3. burst: `SFJIRA_BENCH_BURST` creates (default 5 000) as fast as the sandbox takes them,
//!    in sObject Collections of 200 (one Salesforce transaction each, as a data load makes).
//!
//! Per phase: events/s (events ÷ time from the first commit to the last record visible) and
//! capture latency p50/p99 (visible − `commitTimestamp`). Baseline, same run, same broker: a
//! plain idempotent produce of as many records of the burst records' mean size; the ratio is
//! burst events/s ÷ baseline records/s. The sandbox's own commit rate during the burst bounds
//! what any source can reach and is printed too.

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use apache_avro::types::Value as Avro;
use rdkafka::ClientConfig;
use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::message::Message;
use rdkafka::producer::{FutureProducer, FutureRecord, Producer};
use serde_json::{Value, json};
use sfjira_core::avro::AvroCodec;
use sfjira_sandbox::clock::SandboxClock;
use sfjira_sandbox::salesforce::config::SalesforceConfig;
use sfjira_sandbox::salesforce::wiring::spawn_full_for_tests;
use sfjira_tests::*;
use tokio::sync::mpsc;

const SECRET_VAR: &str = "SFJIRA_BENCH_SF_CLIENT_SECRET";
const SECRET: &str = "sfjira-sandbox-consumer-secret";
const CLIENT_ID: &str = "sfjira-sandbox-consumer-key";

fn env_or(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

fn peak_rss_mb(pid: u32) -> Option<f64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb / 1024.0)
}

fn cpu_seconds(pid: u32) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let after = &stat[stat.rfind(')')? + 2..];
    let f: Vec<&str> = after.split_whitespace().collect();
    let ticks: f64 = f.get(11)?.parse::<f64>().ok()? + f.get(12)?.parse::<f64>().ok()?;
    Some(ticks / 100.0)
}

/// One change record as the bench saw it.
#[derive(Debug, Clone, Copy)]
struct Seen {
    commit_ms: i64,
    visible_ms: i64,
    bytes: usize,
}

/// Reads the change topic (read_committed) and reports each record with the time it became
/// visible (taken before decoding) and its `commitTimestamp`.
fn spawn_reader(topic: String, tx: mpsc::UnboundedSender<(String, Seen)>) {
    tokio::spawn(async move {
        let consumer: StreamConsumer = client_config()
            .set("group.id", unique("bench-capture"))
            .set("auto.offset.reset", "earliest")
            .set("isolation.level", "read_committed")
            .set("enable.auto.commit", "false")
            .set("fetch.wait.max.ms", "10")
            .create()
            .expect("consumer");
        consumer.subscribe(&[topic.as_str()]).expect("subscribe");
        let codec = AvroCodec::new(&registry_config()).expect("codec");
        loop {
            let Ok(m) = consumer.recv().await else {
                continue;
            };
            let visible_ms = now_ms();
            let payload = m.payload().unwrap_or_default();
            let key = String::from_utf8_lossy(m.key().unwrap_or_default()).to_string();
            let decoded = codec.decode(payload).await.expect("a change record");
            let seen = Seen {
                commit_ms: commit_timestamp(&decoded.value).expect("commitTimestamp"),
                visible_ms,
                bytes: payload.len(),
            };
            if tx.send((key, seen)).is_err() {
                return;
            }
        }
    });
}

fn commit_timestamp(v: &Avro) -> Option<i64> {
    let Avro::Record(fields) = v else { return None };
    let (_, Avro::Record(header)) = fields.iter().find(|(n, _)| n == "ChangeEventHeader")? else {
        return None;
    };
    match header.iter().find(|(n, _)| n == "commitTimestamp")? {
        (_, Avro::Long(ms)) => Some(*ms),
        _ => None,
    }
}

/// Collects records until every id in `ids` has been seen (or `timeout`).
async fn collect(
    rx: &mut mpsc::UnboundedReceiver<(String, Seen)>,
    ids: &[String],
    timeout: Duration,
) -> Vec<Seen> {
    let mut want: HashMap<&str, Option<Seen>> = ids.iter().map(|i| (i.as_str(), None)).collect();
    let mut left = want.len();
    let deadline = tokio::time::Instant::now() + timeout;
    while left > 0 {
        let Ok(Some((key, seen))) = tokio::time::timeout_at(deadline, rx.recv()).await else {
            break;
        };
        if let Some(slot @ None) = want.get_mut(key.as_str()) {
            *slot = Some(seen);
            left -= 1;
        }
    }
    assert_eq!(
        left,
        0,
        "{left} of {} changes never became visible",
        ids.len()
    );
    want.into_values().flatten().collect()
}

struct Figures {
    events: usize,
    rate: f64,
    p50: i64,
    p99: i64,
    max: i64,
}

fn figures(seen: &[Seen]) -> Figures {
    let mut lat: Vec<i64> = seen.iter().map(|s| s.visible_ms - s.commit_ms).collect();
    lat.sort_unstable();
    let pct = |p: f64| lat[((lat.len() - 1) as f64 * p).round() as usize];
    let first = seen.iter().map(|s| s.commit_ms).min().unwrap_or(0);
    let last = seen.iter().map(|s| s.visible_ms).max().unwrap_or(0);
    Figures {
        events: seen.len(),
        rate: seen.len() as f64 / ((last - first).max(1) as f64 / 1000.0),
        p50: pct(0.5),
        p99: pct(0.99),
        max: *lat.last().unwrap_or(&0),
    }
}

/// The baseline: `n` records of `size` bytes produced plainly (idempotent, acks=all) and
/// acknowledged; records/s.
async fn baseline(topic: &str, n: usize, size: usize) -> f64 {
    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap())
        .set("enable.idempotence", "true")
        .set("linger.ms", "5")
        .create()
        .unwrap();
    let payload = vec![b'x'; size];
    let t0 = Instant::now();
    let mut pending = Vec::with_capacity(n);
    for i in 0..n {
        let key = format!("001bench{i:010}");
        loop {
            match producer.send_result(FutureRecord::to(topic).key(&key).payload(&payload)) {
                Ok(f) => {
                    pending.push(f);
                    break;
                }
                Err((e, _))
                    if e.rdkafka_error_code()
                        == Some(rdkafka::types::RDKafkaErrorCode::QueueFull) =>
                {
                    tokio::time::sleep(Duration::from_millis(1)).await;
                }
                Err((e, _)) => panic!("{e}"),
            }
        }
    }
    for f in pending {
        f.await.expect("delivered").expect("acknowledged");
    }
    producer.flush(Duration::from_secs(30)).unwrap();
    n as f64 / t0.elapsed().as_secs_f64()
}

struct Writer {
    http: reqwest::Client,
    base: String,
    token: String,
}

impl Writer {
    async fn new(base: &str) -> Writer {
        let http = reqwest::Client::new();
        let token: Value = http
            .post(format!("{base}/services/oauth2/token"))
            .form(&[
                ("grant_type", "client_credentials"),
                ("client_id", CLIENT_ID),
                ("client_secret", SECRET),
            ])
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        Writer {
            http,
            base: base.to_string(),
            token: token["access_token"].as_str().expect("a token").to_string(),
        }
    }

    async fn create(&self, name: &str) -> String {
        let r: Value = self
            .http
            .post(format!(
                "{}/services/data/v62.0/sobjects/Account",
                self.base
            ))
            .bearer_auth(&self.token)
            .json(&json!({"Name": name, "Phone": "555-0100"}))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        r["id"].as_str().expect("created").to_string()
    }

    /// Creates `names.len()` (≤ 200) Accounts in one transaction.
    async fn create_many(&self, names: &[String]) -> Vec<String> {
        let records: Vec<Value> = names
            .iter()
            .map(|n| json!({"attributes": {"type": "Account"}, "Name": n, "Phone": "555-0100"}))
            .collect();
        let r: Value = self
            .http
            .post(format!(
                "{}/services/data/v62.0/composite/sobjects",
                self.base
            ))
            .bearer_auth(&self.token)
            .json(&json!({"allOrNone": true, "records": records}))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        r.as_array()
            .expect("a collections result")
            .iter()
            .map(|x| x["id"].as_str().expect("created").to_string())
            .collect()
    }
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let rate = env_or("SFJIRA_BENCH_RATE", 100).max(1);
    let steady_secs = env_or("SFJIRA_BENCH_STEADY_SECS", 10);
    let burst = env_or("SFJIRA_BENCH_BURST", 5_000);

    let org = spawn_full_for_tests(SalesforceConfig::default(), SandboxClock::real_time())
        .await
        .expect("the sandbox org starts");
    let base = org.http.base_url.clone();
    let prefix = format!("{}.", unique("bench-sfsrc"));
    let topics = [
        ("salesforce.cdc.Account", 3),
        ("sfjira.checkpoints", 1),
        ("salesforce-source.dlq", 1),
        ("bench.baseline", 3),
    ]
    .map(|(t, p)| (format!("{prefix}{t}"), p));
    for (t, p) in &topics {
        create_topic(t, *p).await;
    }
    let dir = std::env::temp_dir().join(unique("bench-sfsrc"));
    std::fs::create_dir_all(&dir).unwrap();
    let config = dir.join("sfjira.yaml");
    std::fs::write(
        &config,
        format!(
            r#"service: {{instance_id: "{id}"}}
kafka:
  bootstrap_servers: "{bootstrap}"
  topic_prefix: "{prefix}"
registry: {{url: "{registry}"}}
telemetry: {{log_level: "warn"}}
http: {{listen: "127.0.0.1:0"}}
salesforce_source:
  login_url: "{base}"
  pubsub_url: "http://{pubsub}"
  auth: {{type: client_credentials, client_id: {CLIENT_ID}, client_secret: {{env: {SECRET_VAR}}}}}
  channels: [/data/AccountChangeEvent]
  start_from: earliest
"#,
            id = unique("bench-src"),
            bootstrap = bootstrap(),
            registry = registry_url(),
            pubsub = org.pubsub_addr,
        ),
    )
    .unwrap();
    let topic = format!("{prefix}salesforce.cdc.Account");
    let (tx, mut rx) = mpsc::unbounded_channel();
    spawn_reader(topic.clone(), tx);

    // SFJIRA_BENCH_LOG=<file> keeps the source's log.
    let log = || match std::env::var("SFJIRA_BENCH_LOG") {
        Ok(path) => std::process::Stdio::from(
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)
                .unwrap(),
        ),
        Err(_) => std::process::Stdio::null(),
    };
    let bin = PathBuf::from(env!("CARGO_BIN_EXE_sfjira-salesforce-source"));
    let mut child = std::process::Command::new(&bin)
        .arg("--config")
        .arg(&config)
        .env(SECRET_VAR, SECRET)
        .stdout(log())
        .stderr(log())
        .spawn()
        .unwrap_or_else(|e| panic!("{}: {e}", bin.display()));
    let pid = child.id();

    let writer = Writer::new(&base).await;
    // 1. Warm-up.
    let warm = vec![writer.create("warm-up").await];
    collect(&mut rx, &warm, Duration::from_secs(60)).await;
    let cpu0 = cpu_seconds(pid).unwrap_or(0.0);

    // 2. Steady rate.
    let mut ticks = tokio::time::interval(Duration::from_secs_f64(1.0 / rate as f64));
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let mut steady_ids = Vec::new();
    let t0 = Instant::now();
    for i in 0..rate * steady_secs {
        ticks.tick().await;
        steady_ids.push(writer.create(&format!("steady {i}")).await);
    }
    let offered = steady_ids.len() as f64 / t0.elapsed().as_secs_f64();
    let steady = figures(&collect(&mut rx, &steady_ids, Duration::from_secs(60)).await);

    // 3. Burst.
    let mut burst_ids = Vec::new();
    let t0 = Instant::now();
    let names: Vec<String> = (0..burst).map(|i| format!("burst {i}")).collect();
    for chunk in names.chunks(200) {
        burst_ids.extend(writer.create_many(chunk).await);
    }
    let sandbox_rate = burst_ids.len() as f64 / t0.elapsed().as_secs_f64();
    let burst_seen = collect(&mut rx, &burst_ids, Duration::from_secs(120)).await;
    let cpu = cpu_seconds(pid).unwrap_or(0.0) - cpu0;
    let peak = peak_rss_mb(pid).unwrap_or(0.0);
    let _ = std::process::Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status();
    let _ = child.wait();
    let burst_fig = figures(&burst_seen);
    let mean_size = burst_seen.iter().map(|s| s.bytes).sum::<usize>() / burst_seen.len().max(1);

    // Baseline: a plain produce of as many records of the same size.
    let base_rate = baseline(&format!("{prefix}bench.baseline"), burst, mean_size).await;

    println!("salesforce-source capture (sandbox commit -> record visible, read_committed)");
    println!(
        "  steady  {:>6} events  offered {:>7.0}/s  captured {:>7.0} events/s  latency p50 {:>5} ms  p99 {:>5} ms  max {:>5} ms",
        steady.events, offered, steady.rate, steady.p50, steady.p99, steady.max
    );
    println!(
        "  burst   {:>6} events  sandbox {:>7.0}/s  captured {:>7.0} events/s  latency p50 {:>5} ms  p99 {:>5} ms  max {:>5} ms",
        burst_fig.events, sandbox_rate, burst_fig.rate, burst_fig.p50, burst_fig.p99, burst_fig.max
    );
    println!(
        "  baseline: plain produce of {burst} records of {mean_size} B: {base_rate:.0} records/s; burst/baseline ratio {:.3}",
        burst_fig.rate / base_rate
    );
    println!(
        "  source process: peak RSS (VmHWM) {peak:.1} MB; CPU {cpu:.1} s for {} events",
        steady.events + burst_fig.events
    );
    delete_topics(&topics.map(|(t, _)| t)).await;
}
