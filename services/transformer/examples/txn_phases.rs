//! Where a Kafka transaction's time goes on this broker: forwards a backlog in transactions of
//! `SFJIRA_PROBE_BATCH` records (default 2000) and prints per-phase percentiles — produce until
//! every delivery report is in, `send_offsets_to_transaction`, `commit_transaction`,
//! `begin_transaction`. Extra producer settings: `SFJIRA_PROBE_PRODUCER="k=v,k=v"`.
//! Needs Kafka (`make infra-up`). Run:
//! `cargo run --release -p sfjira-transformer --example txn_phases`

use std::time::{Duration, Instant};

use rdkafka::ClientConfig;
use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::message::Message;
use rdkafka::producer::{FutureProducer, FutureRecord, Producer};
use rdkafka::{Offset, TopicPartitionList};
use sfjira_tests::{bootstrap, create_topic, unique};

fn env_or(key: &str, default: usize) -> usize {
    std::env::var(key)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn pct(v: &mut [f64], p: f64) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    v[((v.len() as f64 - 1.0) * p).round() as usize]
}

fn report(name: &str, v: &mut [f64]) {
    if v.is_empty() {
        return;
    }
    let sum: f64 = v.iter().sum();
    println!(
        "{name:>14}: p50 {:7.2}  p90 {:7.2}  p99 {:7.2}  max {:7.2}  total {:8.0} ms",
        pct(v, 0.5),
        pct(v, 0.9),
        pct(v, 0.99),
        pct(v, 1.0),
        sum
    );
}

#[tokio::main]
async fn main() {
    let n = env_or("SFJIRA_PROBE_RECORDS", 50_000);
    let batch_size = env_or("SFJIRA_PROBE_BATCH", 2000);
    let input = unique("probe.in");
    let output = unique("probe.out");
    create_topic(&input, 2).await;
    create_topic(&output, 2).await;
    let payload = vec![b'x'; 1000];
    let plain: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap())
        .set("linger.ms", "5")
        .create()
        .unwrap();
    for i in 0..n {
        let key = format!("k{i}");
        loop {
            match plain.send_result(FutureRecord::to(&input).key(&key).payload(&payload)) {
                Ok(_) => break,
                Err(_) => tokio::time::sleep(Duration::from_millis(1)).await,
            }
        }
    }
    plain.flush(Duration::from_secs(60)).unwrap();

    let small_queue = std::env::var("SFJIRA_PROBE_QUEUE_KB").ok();
    let mut cc = ClientConfig::new();
    if let Ok(extra) = std::env::var("SFJIRA_PROBE_CONSUMER") {
        for kv in extra.split(',').filter(|s| !s.is_empty()) {
            let (k, v) = kv.split_once('=').expect("k=v");
            cc.set(k, v);
        }
    }
    let consumer: StreamConsumer = cc
        .set("bootstrap.servers", bootstrap())
        .set("group.id", unique("probe"))
        .set("auto.offset.reset", "earliest")
        .set("enable.auto.commit", "false")
        .set("isolation.level", "read_committed")
        .set(
            "queued.max.messages.kbytes",
            small_queue.as_deref().unwrap_or("65536"),
        )
        .create()
        .unwrap();
    consumer.subscribe(&[input.as_str()]).unwrap();
    let mut pc = ClientConfig::new();
    pc.set("bootstrap.servers", bootstrap())
        .set("transactional.id", unique("probe-txn"));
    if let Ok(extra) = std::env::var("SFJIRA_PROBE_PRODUCER") {
        for kv in extra.split(',').filter(|s| !s.is_empty()) {
            let (k, v) = kv.split_once('=').expect("k=v");
            pc.set(k, v);
        }
    }
    let producer: FutureProducer = pc.create().unwrap();
    producer.init_transactions(Duration::from_secs(30)).unwrap();

    let (mut begin, mut produce, mut offsets, mut commit) = (vec![], vec![], vec![], vec![]);
    let (mut read, mut sizes, mut deliveries) = (vec![], vec![], vec![]);
    let offsets_first = std::env::var("SFJIRA_PROBE_ORDER").as_deref() == Ok("offsets_first");
    let wait_ms = env_or("SFJIRA_PROBE_WAIT_MS", 20) as u64;
    let per_recv = std::env::var("SFJIRA_PROBE_FILL").as_deref() == Ok("per_recv");

    let mut done = 0;
    let started = Instant::now();
    while done < n {
        let t = Instant::now();
        let mut batch = vec![consumer.recv().await.unwrap().detach()];
        let deadline = tokio::time::Instant::now() + Duration::from_millis(wait_ms);
        while batch.len() < batch_size {
            let next = if per_recv {
                tokio::time::timeout(Duration::from_millis(wait_ms), consumer.recv()).await
            } else {
                tokio::time::timeout_at(deadline, consumer.recv()).await
            };
            match next {
                Ok(m) => batch.push(m.unwrap().detach()),
                Err(_) => break,
            }
        }
        read.push(t.elapsed().as_secs_f64() * 1e3);
        sizes.push(batch.len() as f64);
        let t = Instant::now();
        producer.begin_transaction().unwrap();
        begin.push(t.elapsed().as_secs_f64() * 1e3);
        let t = Instant::now();
        let mut futs = Vec::with_capacity(batch.len());
        let mut next = TopicPartitionList::new();
        for m in &batch {
            let mut rec = FutureRecord::to(&output).payload(m.payload().unwrap_or_default());
            if let Some(k) = m.key() {
                rec = rec.key(k);
            }
            futs.push(producer.send_result(rec).map_err(|(e, _)| e).unwrap());
            next.add_partition_offset(m.topic(), m.partition(), Offset::Offset(m.offset() + 1))
                .unwrap();
        }
        // Offsets first (what the transformer did before): added while the records are still
        // in flight, then the delivery reports; otherwise the reports first.
        if !offsets_first {
            for f in futs.drain(..) {
                f.await.unwrap().unwrap();
            }
        }
        produce.push(t.elapsed().as_secs_f64() * 1e3);
        let t = Instant::now();
        let meta = consumer.group_metadata().unwrap();
        producer
            .send_offsets_to_transaction(&next, &meta, Duration::from_secs(30))
            .unwrap();
        offsets.push(t.elapsed().as_secs_f64() * 1e3);
        if offsets_first {
            let t = Instant::now();
            for f in futs {
                f.await.unwrap().unwrap();
            }
            deliveries.push(t.elapsed().as_secs_f64() * 1e3);
        }
        let t = Instant::now();
        producer
            .commit_transaction(Duration::from_secs(30))
            .unwrap();
        commit.push(t.elapsed().as_secs_f64() * 1e3);
        done += batch.len();
    }
    let secs = started.elapsed().as_secs_f64();
    println!(
        "{done} records in {} transactions: {:.0} records/s",
        commit.len(),
        done as f64 / secs
    );
    report("read (ms)", &mut read);
    report("batch size", &mut sizes);
    report("begin", &mut begin);
    report("produce", &mut produce);
    report("send_offsets", &mut offsets);
    report("deliveries", &mut deliveries);
    report("commit", &mut commit);
}
