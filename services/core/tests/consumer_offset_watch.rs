//! The committed-offset watchdog of `KafkaConsumer`, on the real broker.
//!
//! The stall is reproduced as Kafka produces it: a transaction that added offsets for the group
//! (`send_offsets_to_transaction`) and stays open. Until it ends, Kafka answers the group's
//! `read_committed` consumers `UNSTABLE_OFFSET_COMMIT` and librdkafka retries silently; a
//! hanging transaction is the same thing, open for ever. The tests check what an operator sees
//! (the watch's episode, `/readyz`, the gauge) and that healthy idle consumers see nothing.
//!
//! The broker is `SFJIRA_TEST_BOOTSTRAP` (default `127.0.0.1:19092`), as for the workspace's
//! other tests (the `sfjira-tests` harness, which this crate cannot depend on).

use std::time::{Duration, Instant};

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::producer::{FutureProducer, FutureRecord, Producer};
use rdkafka::{Offset, TopicPartitionList};
use sfjira_core::health::{HealthServer, install_metrics_recorder, runtime_conditions};
use sfjira_core::kafka::offset_watch::RUNBOOK_ANCHOR;
use sfjira_core::kafka::{KafkaConsumer, OffsetTracker, OffsetWatchSettings, StallCause};

const STAGE: &str = "offset-watch-test";

fn base() -> ClientConfig {
    let mut c = ClientConfig::new();
    c.set(
        "bootstrap.servers",
        std::env::var("SFJIRA_TEST_BOOTSTRAP").unwrap_or_else(|_| "127.0.0.1:19092".into()),
    );
    c
}

fn unique(prefix: &str) -> String {
    format!("{prefix}-{:016x}", rand::random::<u64>())
}

async fn fresh_topic(prefix: &str, partitions: i32) -> String {
    let name = unique(prefix);
    let admin: AdminClient<DefaultClientContext> = base().create().expect("admin client");
    let topic = NewTopic::new(&name, partitions, TopicReplication::Fixed(1));
    let opts = AdminOptions::new().operation_timeout(Some(Duration::from_secs(10)));
    for r in admin
        .create_topics([&topic], &opts)
        .await
        .expect("Kafka reachable")
    {
        r.expect("topic created");
    }
    name
}

/// `per_partition` records into each of `partitions` partitions.
async fn fill(topic: &str, partitions: i32, per_partition: usize) {
    let producer: FutureProducer = base().create().expect("producer");
    for p in 0..partitions {
        for i in 0..per_partition {
            producer
                .send(
                    FutureRecord::to(topic)
                        .partition(p)
                        .key(&format!("k{i}"))
                        .payload(&format!("v{i}")),
                    Duration::from_secs(10),
                )
                .await
                .expect("record delivered");
        }
    }
}

fn watched(group: &str, topic: &str, threshold: Duration) -> KafkaConsumer {
    KafkaConsumer::with_offset_watch(
        &base(),
        group,
        &[topic],
        OffsetWatchSettings {
            threshold,
            stage: STAGE.into(),
        },
    )
    .expect("consumer")
}

/// A transactional producer with an open transaction holding offset 1 of `topic`[0] for
/// `group`, as a stage leaves one when it dies between `send_offsets` and `commit`.
fn open_transaction_with_offsets(group: &str, topic: &str) -> FutureProducer {
    // The group's identity without joining it (generation -1: the broker skips the member check).
    let outsider: BaseConsumer = base().set("group.id", group).create().expect("client");
    let group_metadata = outsider.group_metadata().expect("group metadata");
    let producer: FutureProducer = base()
        .set("transactional.id", unique("offset-watch-txn"))
        .set("transaction.timeout.ms", "60000")
        .create()
        .expect("transactional producer");
    producer
        .init_transactions(Duration::from_secs(30))
        .expect("init");
    producer.begin_transaction().expect("begin");
    let mut offsets = TopicPartitionList::new();
    offsets
        .add_partition_offset(topic, 0, Offset::Offset(1))
        .unwrap();
    producer
        .send_offsets_to_transaction(&offsets, &group_metadata, Duration::from_secs(30))
        .expect("offsets added to the transaction");
    producer
}

/// Serves `/readyz` and `/metrics` (no checks of its own: only the runtime conditions).
async fn health() -> String {
    let metrics = install_metrics_recorder().expect("recorder");
    let server = HealthServer::bind("127.0.0.1:0".parse().unwrap(), vec![], metrics)
        .await
        .expect("bind");
    let addr = server.local_addr();
    tokio::spawn(server.serve(std::future::pending()));
    format!("http://{addr}")
}

async fn readyz(url: &str) -> (u16, serde_json::Value) {
    let r = reqwest::get(format!("{url}/readyz")).await.expect("readyz");
    (r.status().as_u16(), r.json().await.expect("json body"))
}

async fn metrics(url: &str) -> String {
    reqwest::get(format!("{url}/metrics"))
        .await
        .expect("metrics")
        .text()
        .await
        .expect("text")
}

/// Receives for `how_long`, failing on any record; the consumer must be waiting.
async fn expect_nothing(consumer: &KafkaConsumer, how_long: Duration) {
    if let Ok(m) = tokio::time::timeout(how_long, consumer.recv()).await {
        let m = m.expect("no consumer error");
        panic!(
            "the consumer read {}[{}]@{} while it should wait",
            m.topic(),
            m.partition(),
            m.offset()
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn an_open_transaction_holding_the_groups_offsets_is_reported_until_it_ends() {
    let topic = fresh_topic("offset-watch-stalled", 2).await;
    fill(&topic, 2, 2).await;
    let group = unique("offset-watch-stalled-group");
    let blocker = open_transaction_with_offsets(&group, &topic);
    let url = health().await;

    let consumer = watched(&group, &topic, Duration::from_secs(2));
    let watch = consumer.offset_watch().expect("watch running");
    let deadline = Instant::now() + Duration::from_secs(30);
    let stall = loop {
        // It must read nothing meanwhile: that is the failure being reported.
        expect_nothing(&consumer, Duration::from_millis(200)).await;
        if let Some(stall) = watch.stall() {
            break stall;
        }
        assert!(Instant::now() < deadline, "no stall reported within 30 s");
    };
    assert_eq!(stall.group, group);
    assert_eq!(
        stall.partitions,
        vec![(topic.clone(), 0), (topic.clone(), 1)],
        "every assigned partition waits (librdkafka fetches the group's offsets in one request)"
    );
    assert_eq!(stall.cause, StallCause::UnstableOffsets);

    let condition = format!("kafka_consumer:{group}");
    let (status, body) = readyz(&url).await;
    assert_eq!(status, 503, "{body}");
    let reason = body[&condition].as_str().expect("condition reported");
    assert!(
        reason.contains(&format!("{topic}[0], {topic}[1]")),
        "{reason}"
    );
    assert!(reason.contains("hanging transaction"), "{reason}");
    assert!(reason.contains(RUNBOOK_ANCHOR), "{reason}");
    let gauge = format!(
        "sfjira_consumer_offsets_unfetched_partitions{{stage=\"{STAGE}\",group=\"{group}\"}}"
    );
    assert!(
        metrics(&url).await.contains(&format!("{gauge} 2")),
        "gauge at 2"
    );

    // The operator's fix: end the transaction (here its own producer aborts it).
    tokio::task::spawn_blocking(move || {
        blocker
            .abort_transaction(Duration::from_secs(30))
            .expect("abort")
    })
    .await
    .unwrap();

    let mut tracker = OffsetTracker::new();
    for _ in 0..4 {
        let m = tokio::time::timeout(Duration::from_secs(30), consumer.recv())
            .await
            .expect("records arrive once the transaction ended")
            .expect("no consumer error");
        tracker.record(&m);
    }
    let list = tracker.to_list();
    for p in 0..2 {
        assert_eq!(
            list.find_partition(&topic, p).unwrap().offset(),
            Offset::Offset(2),
            "both records of partition {p} read (the aborted offsets never counted)"
        );
    }
    let deadline = Instant::now() + Duration::from_secs(30);
    while watch.stall().is_some() {
        assert!(Instant::now() < deadline, "the stall never cleared");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (status, body) = readyz(&url).await;
        if status == 200 {
            assert!(body.get(&condition).is_none(), "{body}");
            break;
        }
        assert!(Instant::now() < deadline, "still not ready: {body}");
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    assert!(
        metrics(&url).await.contains(&format!("{gauge} 0")),
        "gauge back at 0"
    );
}

/// Idle for several thresholds; the watch must have looked (and found the offsets stable)
/// without ever reporting.
async fn assert_idle_and_quiet(consumer: &KafkaConsumer, group: &str) {
    let watch = consumer.offset_watch().expect("watch running");
    let until = Instant::now() + Duration::from_secs(6);
    while Instant::now() < until {
        expect_nothing(consumer, Duration::from_millis(100)).await;
        assert_eq!(watch.stall(), None);
    }
    assert!(
        watch.idle_looks() >= 3,
        "the watch looked at the idle partitions ({} looks)",
        watch.idle_looks()
    );
    let condition = format!("kafka_consumer:{group}");
    assert!(
        runtime_conditions()
            .raised()
            .iter()
            .all(|(name, _)| *name != condition)
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn an_idle_consumer_on_an_empty_topic_never_reports() {
    let topic = fresh_topic("offset-watch-empty", 2).await;
    let group = unique("offset-watch-empty-group");
    let consumer = watched(&group, &topic, Duration::from_secs(1));
    assert_idle_and_quiet(&consumer, &group).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_consumer_restarted_after_reading_everything_never_reports() {
    let topic = fresh_topic("offset-watch-caught-up", 1).await;
    fill(&topic, 1, 3).await;
    let group = unique("offset-watch-caught-up-group");
    {
        let first = watched(&group, &topic, Duration::from_secs(1));
        let mut tracker = OffsetTracker::new();
        for _ in 0..3 {
            let m = tokio::time::timeout(Duration::from_secs(30), first.recv())
                .await
                .expect("records arrive")
                .expect("no consumer error");
            tracker.record(&m);
        }
        first.shutdown(&tracker).expect("commit and leave");
    }
    // Restarted with nothing left to read: no record ever gives it a position.
    let consumer = watched(&group, &topic, Duration::from_secs(1));
    assert_idle_and_quiet(&consumer, &group).await;
}
