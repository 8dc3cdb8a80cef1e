//! `make bench`: the transformer's throughput with transactions on, against a plain
//! consume → produce pass-through of the same records on the same broker in the same run, and
//! the transformer's peak memory. Needs Kafka and the registry (`make bench` starts them).
//!
//! Both sides drain a backlog of the same records already in their input topic (a stage
//! catching up after an outage, and no producer in the bench competing for the CPU while a
//! stage is timed).
//!
//! Records: ~1 KB Salesforce Opportunity change records that the demo mapping turns into one
//! Jira command each. Targets (issue #7): ratio ≥ 0.5, ≥ 30 000 records/s, < 100 MB.
//! `SFJIRA_BENCH_RECORDS` sets the count (default 50 000), `SFJIRA_BENCH_ROUNDS` the rounds
//! (default 3; the figures are the rounds' medians).

use std::path::PathBuf;
use std::time::{Duration, Instant};

use apache_avro::Schema;
use apache_avro::types::Value as Avro;
use rdkafka::ClientConfig;
use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::message::Message;
use rdkafka::producer::{FutureProducer, FutureRecord, Producer};
use sfjira_core::avro::AvroCodec;
use sfjira_core::config::RegistryConfig;
use sfjira_tests::*;

include!("support/opportunity.rs");

fn base() -> ClientConfig {
    let mut c = ClientConfig::new();
    c.set("bootstrap.servers", bootstrap());
    c
}

/// The baseline: a warm consumer that forwards every record, unchanged, from `from` to `to`.
/// Returns when `n` records (after the warm-up one) have been forwarded.
async fn pass_through(
    from: String,
    to: String,
    n: usize,
    started: tokio::sync::oneshot::Sender<()>,
) {
    let consumer: StreamConsumer = base()
        .set("group.id", unique("bench-pass"))
        .set("auto.offset.reset", "earliest")
        .set("enable.auto.commit", "true")
        // As sfjira's consumer does (core/src/kafka/consumer.rs): with librdkafka's default of
        // 1 000 ms, a full prefetch queue postponed the next fetch by a second even when the
        // queue was drained at once, and the baseline ran anywhere from 58k to 296k records/s
        // depending on whether a round hit that pause.
        .set("fetch.queue.backoff.ms", "10")
        .create()
        .unwrap();
    consumer.subscribe(&[from.as_str()]).unwrap();
    let producer: FutureProducer = base()
        .set("enable.idempotence", "true")
        .set("linger.ms", "5")
        .create()
        .unwrap();
    let mut started = Some(started);
    for _ in 0..=n {
        let m = consumer.recv().await.unwrap();
        if let Some(s) = started.take() {
            let _ = s.send(()); // the warm-up record went through: the timed part begins
        }
        loop {
            let mut rec = FutureRecord::to(&to).payload(m.payload().unwrap_or_default());
            if let Some(k) = m.key() {
                rec = rec.key(k);
            }
            match producer.send_result(rec) {
                Ok(_) => break,
                Err((e, _))
                    if e.rdkafka_error_code()
                        == Some(rdkafka::types::RDKafkaErrorCode::QueueFull) =>
                {
                    tokio::time::sleep(Duration::from_millis(1)).await
                }
                Err((e, _)) => panic!("{e}"),
            }
        }
    }
    producer.flush(Duration::from_secs(60)).unwrap();
}

/// The second baseline: the same forwarding with the transformer's exactly-once machinery
/// (sfjira's consumer and transactional producer, each record produced as it is read, offsets
/// in the transaction, transactions of up to 10 000 records committed early once nothing more
/// is waiting) and no mapping — what transactions alone cost on this broker. Returns the time
/// for `n` records after the warm-up one.
async fn eos_pass_through(from: String, to: String, n: usize) -> Duration {
    use sfjira_core::kafka::{KafkaConsumer, OffsetTracker, OutRecord, TransactionalProducer};
    let group = unique("bench-eos");
    let consumer = KafkaConsumer::new(&base(), &group, &[from.as_str()]).unwrap();
    let mut producer =
        TransactionalProducer::new(&base(), &unique("bench-eos"), Duration::from_secs(30))
            .await
            .unwrap();
    let mut done = 0usize;
    let mut started: Option<Instant> = None;
    while done < n + 1 {
        let mut offsets = OffsetTracker::new();
        let mut in_txn = 0usize;
        let first = consumer.recv().await.unwrap().detach();
        producer.begin().unwrap();
        let mut next = Some(first);
        while let Some(m) = next.take() {
            offsets.record(&m);
            producer
                .send_prepared(&OutRecord::copy_of(&m, to.clone()))
                .await
                .unwrap();
            in_txn += 1;
            // The warm-up record commits alone, so the clock starts with the timed records.
            if started.is_some() && in_txn < 10_000 {
                next = match tokio::time::timeout(Duration::from_millis(20), consumer.recv()).await
                {
                    Ok(m) => Some(m.unwrap().detach()),
                    Err(_) => None,
                };
            }
        }
        producer
            .send_offsets(&offsets.to_list(), consumer.group_metadata().unwrap())
            .await
            .unwrap();
        producer.commit().await.unwrap();
        // The warm-up record's transaction starts the clock, like the other two stages'.
        started.get_or_insert_with(Instant::now);
        done += in_txn;
    }
    started.map_or(Duration::ZERO, |t| t.elapsed())
}

/// Produces pre-encoded records as fast as the client takes them.
async fn produce(topic: &str, records: &[(String, Vec<u8>)]) {
    let producer: FutureProducer = base().set("linger.ms", "5").create().unwrap();
    for (key, bytes) in records {
        loop {
            match producer.send_result(FutureRecord::to(topic).key(key).payload(bytes)) {
                Ok(_) => break,
                Err(_) => tokio::time::sleep(Duration::from_millis(1)).await,
            }
        }
    }
    producer.flush(Duration::from_secs(60)).unwrap();
}

fn high_watermark(c: &StreamConsumer, topic: &str) -> i64 {
    let md = c
        .fetch_metadata(Some(topic), Duration::from_secs(10))
        .unwrap();
    md.topics()[0]
        .partitions()
        .iter()
        .map(|p| {
            c.fetch_watermarks(topic, p.id(), Duration::from_secs(10))
                .unwrap()
                .1
        })
        .sum()
}

/// User + system CPU seconds a process has used so far (from /proc/<pid>/stat).
fn cpu_seconds(pid: u32) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let after = &stat[stat.rfind(')')? + 2..];
    let f: Vec<&str> = after.split_whitespace().collect();
    let ticks: f64 = f.get(11)?.parse::<f64>().ok()? + f.get(12)?.parse::<f64>().ok()?;
    Some(ticks / 100.0)
}

fn peak_rss_mb(pid: u32) -> Option<f64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb / 1024.0)
}

/// CPU a stage costs per record: its own process's and the broker's, over the same span.
/// The broker's is part of the price too (transactions cost it CPU), and on this 2-core box
/// the two compete for the same cores.
struct CpuMeter {
    pid: u32,
    own: f64,
    broker: Option<(u32, f64)>,
}

impl CpuMeter {
    fn start(pid: u32) -> Self {
        let broker = broker_pid().and_then(|b| Some((b, cpu_seconds(b)?)));
        CpuMeter {
            pid,
            own: cpu_seconds(pid).unwrap_or(0.0),
            broker,
        }
    }

    /// (own, broker) microseconds per record since [`Self::start`]; the broker's is NaN when
    /// its process is not known.
    fn per_record(&self, records: f64) -> (f64, f64) {
        let own = cpu_seconds(self.pid).unwrap_or(0.0) - self.own;
        let broker = self
            .broker
            .and_then(|(pid, at)| Some(cpu_seconds(pid)? - at))
            .unwrap_or(f64::NAN);
        (own * 1e6 / records, broker * 1e6 / records)
    }
}

/// The broker `make infra-up` started (its PID file under SFJIRA_RUN_DIR, `<repo>/.run` by
/// default), if that process is a Kafka broker; `None` for a broker started elsewhere.
fn broker_pid() -> Option<u32> {
    let run = std::env::var("SFJIRA_RUN_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|_| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../.run"));
    let pid: u32 = std::fs::read_to_string(run.join("kafka/kafka.pid"))
        .ok()?
        .trim()
        .parse()
        .ok()?;
    let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).ok()?;
    String::from_utf8_lossy(&cmdline)
        .contains("kafka")
        .then_some(pid)
}

/// One round's figures. Each round runs all three stages on fresh topics; the box's noise
/// (another process, the broker's JIT and GC) moves single runs by ±30 %, so the summary is the
/// median of the rounds.
#[derive(Debug, Clone, Copy)]
struct Figures {
    base_rate: f64,
    eos_rate: f64,
    rate: f64,
    peak_mb: f64,
    cpu_share: f64,
    produced: usize,
    /// (own, broker) CPU microseconds per record of each stage.
    base_cpu: (f64, f64),
    eos_cpu: (f64, f64),
    cpu: (f64, f64),
    /// The mean command record: payload and header bytes.
    command_bytes: (usize, usize),
    input_bytes: usize,
}

#[tokio::main]
async fn main() {
    let env = |name: &str, default: usize| -> usize {
        std::env::var(name)
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(default)
    };
    let n = env("SFJIRA_BENCH_RECORDS", 50_000);
    let rounds = env("SFJIRA_BENCH_ROUNDS", 3).max(1);
    let mut all = Vec::new();
    for r in 1..=rounds {
        let f = round(n).await;
        println!(
            "round {r}: plain {:.0}/s, in transactions {:.0}/s, transformer {:.0}/s ({:.2}), {:.1} MB, {:.1} us/record",
            f.base_rate,
            f.eos_rate,
            f.rate,
            f.rate / f.base_rate,
            f.peak_mb,
            f.cpu.0
        );
        all.push(f);
    }
    let median = |key: &dyn Fn(&Figures) -> f64| {
        let mut v: Vec<f64> = all.iter().map(key).collect();
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    let base_rate = median(&|f| f.base_rate);
    let eos_rate = median(&|f| f.eos_rate);
    let rate = median(&|f| f.rate);
    println!("median of {rounds} round(s):");
    let stage = |name: &str, rate: f64, cpu: fn(&Figures) -> (f64, f64)| {
        println!(
            "{name:<36} {rate:>9.0} records/s (CPU per record: {:.1} us in the process, {:.1} us in the broker)",
            median(&|f| cpu(f).0),
            median(&|f| cpu(f).1)
        );
    };
    stage("baseline: consume -> produce", base_rate, |f| f.base_cpu);
    stage("transformer: EOS, demo mapping", rate, |f| f.cpu);
    stage("baseline: same, in transactions", eos_rate, |f| f.eos_cpu);
    println!(
        "{:<36} {:>9.2}   (target >= 0.5)",
        "ratio transformer / baseline",
        median(&|f| f.rate / f.base_rate)
    );
    println!(
        "{:<36} {:>9.2}   (mapping's share: what is left after transactions)",
        "ratio transformer / txn baseline",
        median(&|f| f.rate / f.eos_rate)
    );
    println!(
        "{:<36} {:>9.1} MB (target < 100 MB; the highest round)",
        "transformer peak RSS",
        all.iter().map(|f| f.peak_mb).fold(0.0, f64::max)
    );
    println!(
        "{:<36} {:>9.0}% of one core while running",
        "transformer CPU",
        median(&|f| f.cpu_share)
    );
    let (payload, headers) = all[0].command_bytes;
    println!(
        "{:<36} {:>9} B + {headers} B of headers (input records: {} B)",
        "mean command record", payload, all[0].input_bytes
    );
    let produced = all.iter().map(|f| f.produced).min().unwrap_or(0);
    println!(
        "{:<36} {:>9} of {} (the lowest round)",
        "commands produced",
        produced,
        n + 1
    );
}

/// Runs the three stages once on fresh topics, which it deletes at the end.
async fn round(n: usize) -> Figures {
    let prefix = format!("{}.", unique("bench"));
    let input = format!("{prefix}salesforce.cdc.Opportunity");
    let pass_in = format!("{prefix}passthrough.in");
    let pass_out = format!("{prefix}passthrough.out");
    let topics: Vec<String> = [
        "salesforce.cdc.Opportunity",
        "jira.issues",
        "jira.comments",
        "jira.worklogs",
        "jira.commands",
        "salesforce.commands",
        "transformer.dlq",
        "passthrough.in",
        "passthrough.out",
        "eos.in",
        "eos.out",
    ]
    .iter()
    .map(|t| format!("{prefix}{t}"))
    .collect();
    for t in &topics {
        create_topic(t, 2).await;
    }
    let registry = RegistryConfig {
        url: registry_url(),
        username: None,
        password: None,
        timeout_ms: 10_000,
    };
    let codec = AvroCodec::new(&registry).unwrap();
    let writer = codec
        .register(&input, &Schema::parse_str(SCHEMA).unwrap())
        .await
        .unwrap();
    // Record 0 warms each side up (group joined, schemas cached); 1..=n are timed.
    let records: Vec<(String, Vec<u8>)> = (0..=n)
        .map(|i| {
            (
                format!("0065g{i:013}"),
                codec.encode(&writer, record(i)).unwrap(),
            )
        })
        .collect();
    println!(
        "{n} records of {} bytes (+1 warm-up), 2 partitions",
        records[1].1.len()
    );

    // Both sides drain the same backlog: the records are in the topic before the stage
    // starts, so the bench's own producer does not compete for the CPU while it is timed.
    // Baseline: a plain consume -> produce of the same bytes.
    produce(&pass_in, &records).await;
    let (started_tx, started_rx) = tokio::sync::oneshot::channel();
    let forward = tokio::spawn(pass_through(
        pass_in.clone(),
        pass_out.clone(),
        n,
        started_tx,
    ));
    started_rx.await.unwrap();
    let t0 = Instant::now();
    let meter = CpuMeter::start(std::process::id());
    forward.await.unwrap();
    let baseline = t0.elapsed();
    let base_cpu = meter.per_record(n as f64);
    let base_rate = n as f64 / baseline.as_secs_f64();

    // Second baseline: the same forwarding in Kafka transactions, no mapping.
    let eos_in = format!("{prefix}eos.in");
    let eos_out = format!("{prefix}eos.out");
    produce(&eos_in, &records).await;
    let meter = CpuMeter::start(std::process::id());
    let eos = eos_pass_through(eos_in, eos_out, n).await;
    let eos_cpu = meter.per_record(n as f64);
    let eos_rate = n as f64 / eos.as_secs_f64();

    // The transformer, as its own process (so its memory is its own), warmed up the same way.
    let dir = std::env::temp_dir().join(unique("bench"));
    std::fs::create_dir_all(&dir).unwrap();
    let mapping = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../config/mapping.yaml");
    let config = dir.join("sfjira.yaml");
    std::fs::write(
        &config,
        format!(
            "kafka:\n  bootstrap_servers: \"{}\"\n  topic_prefix: \"{prefix}\"\nregistry:\n  url: \"{}\"\nhttp:\n  listen: 127.0.0.1:0\n\
             telemetry:\n  log_level: warn\ntransformer:\n  mapping: {}\n  group_id: {prefix}transformer\n",
            bootstrap(),
            registry_url(),
            mapping.display()
        ),
    )
    .unwrap();
    let commands = format!("{prefix}jira.commands");
    let bin =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../target/release/sfjira-transformer");
    produce(&input, &records).await;
    // SFJIRA_BENCH_LOG=<file> keeps the transformer's log (with
    // SFJIRA_TELEMETRY__LOG_LEVEL=sfjira_transformer=debug: every batch's size and commit time).
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
    let mut child = std::process::Command::new(&bin)
        .arg("--config")
        .arg(&config)
        .stdout(log())
        .stderr(log())
        .spawn()
        .unwrap_or_else(|e| panic!("{}: {e} (make bench builds it first)", bin.display()));
    // The clock starts once the first transaction is visible (group joined, schemas cached);
    // what that first batch carried is not counted.
    let watermarks: StreamConsumer = base().set("group.id", "bench-watermarks").create().unwrap();
    let deadline = Instant::now() + Duration::from_secs(120);
    let mut done_at_start = 0;
    while done_at_start == 0 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(5)).await;
        done_at_start = high_watermark(&watermarks, &commands);
    }
    let meter = CpuMeter::start(child.id());
    let t0 = Instant::now();
    let mut peak = 0.0_f64;
    // The watermark counts commit markers too (one per transaction and partition), so it
    // passes n + 1 a little before the last command is visible; the exact count is read after.
    let deadline = Instant::now() + Duration::from_secs(600);
    while high_watermark(&watermarks, &commands) < n as i64 + 1 && Instant::now() < deadline {
        peak = peak.max(peak_rss_mb(child.id()).unwrap_or(0.0));
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let elapsed = t0.elapsed();
    let timed = (n as i64 + 1 - done_at_start).max(1) as f64;
    let cpu_per_record = meter.per_record(timed);
    peak = peak.max(peak_rss_mb(child.id()).unwrap_or(0.0));
    let _ = std::process::Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    let _ = child.wait();
    let commands_read = read_all(&commands, n + 1, Duration::from_secs(60)).await;
    let produced = commands_read.len();
    let command_bytes = mean_record_bytes(&commands_read);
    let _ = std::fs::remove_dir_all(dir);
    delete_topics(&topics).await;
    Figures {
        base_rate,
        eos_rate,
        rate: timed / elapsed.as_secs_f64(),
        peak_mb: peak,
        // The process's CPU over the span, as a share of one core.
        cpu_share: 100.0 * cpu_per_record.0 * timed / 1e6 / elapsed.as_secs_f64(),
        produced,
        base_cpu,
        eos_cpu,
        cpu: cpu_per_record,
        command_bytes,
        input_bytes: records[1].1.len(),
    }
}

/// Mean payload and header bytes of `records`.
fn mean_record_bytes(records: &[rdkafka::message::OwnedMessage]) -> (usize, usize) {
    use rdkafka::message::Headers;
    let n = records.len().max(1);
    let payload: usize = records
        .iter()
        .map(|m| m.payload().map_or(0, <[u8]>::len))
        .sum();
    let headers: usize = records
        .iter()
        .filter_map(|m| m.headers())
        .map(|h| {
            h.iter()
                .map(|x| x.key.len() + x.value.map_or(0, <[u8]>::len))
                .sum::<usize>()
        })
        .sum();
    (payload / n, headers / n)
}
