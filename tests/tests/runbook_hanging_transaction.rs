//! docs/runbook.md, "…and afterwards a stage reads nothing (a hanging transaction)", run as an
//! operator runs it: a transaction holding a group's offsets is left open on
//! `__consumer_offsets`; the group's consumer reads nothing and its watchdog says so; Kafka's
//! own `kafka-transactions describe-producers` finds the transaction on the group's partition
//! and `kafka-transactions abort --start-offset` ends it; the consumer then reads everything.
//!
//! The open transaction belongs to a producer that is still alive (a broker restart that leaves
//! one ownerless cannot be staged on demand); to the group's consumers it is the same state,
//! and `abort` ends it the same way. `find-hanging` is checked not to call a fresh one hanging,
//! which is why the runbook scans with `describe-producers` first.

use std::time::Duration;

use rdkafka::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::producer::{FutureProducer, FutureRecord, Producer};
use rdkafka::{Offset, TopicPartitionList};
use sfjira_core::kafka::{KafkaConsumer, OffsetWatchSettings, StallCause};
use sfjira_tests::demo::wait_for;
use sfjira_tests::kafka_tool::KafkaTool;
use sfjira_tests::{bootstrap, fresh_topic, unique};

fn base() -> ClientConfig {
    let mut c = ClientConfig::new();
    c.set("bootstrap.servers", bootstrap());
    c
}

#[tokio::test(flavor = "multi_thread")]
async fn the_runbooks_abort_frees_a_group_blocked_by_an_open_transaction() {
    let topic = fresh_topic("runbook-hanging", 2).await;
    let group = unique("runbook-hanging-group");
    let producer: FutureProducer = base().create().expect("producer");
    for i in 0..4 {
        producer
            .send(
                FutureRecord::to(&topic)
                    .partition(i % 2)
                    .key("k")
                    .payload(&format!("v{i}")),
                Duration::from_secs(10),
            )
            .await
            .expect("delivered");
    }

    // A transaction that added offsets for the group and was never ended.
    let outsider: BaseConsumer = base().set("group.id", &group).create().expect("client");
    let holder: FutureProducer = base()
        .set("transactional.id", unique("runbook-hanging-txn"))
        .set("transaction.timeout.ms", "300000")
        .create()
        .expect("transactional producer");
    holder
        .init_transactions(Duration::from_secs(30))
        .expect("init");
    holder.begin_transaction().expect("begin");
    let mut offsets = TopicPartitionList::new();
    offsets
        .add_partition_offset(&topic, 0, Offset::Offset(0))
        .unwrap();
    holder
        .send_offsets_to_transaction(
            &offsets,
            &outsider.group_metadata().expect("group metadata"),
            Duration::from_secs(30),
        )
        .expect("offsets in the transaction");

    // Shows as: the consumer reads nothing, and its watchdog names the cause.
    let consumer = KafkaConsumer::with_offset_watch(
        &base(),
        &group,
        &[topic.as_str()],
        OffsetWatchSettings {
            threshold: Duration::from_secs(2),
            stage: "runbook-test".into(),
        },
    )
    .expect("consumer");
    let watch = consumer.offset_watch().expect("watchdog running");
    let stall = tokio::select! {
        m = consumer.recv() => panic!("read {:?} past an open transaction", m.map(|m| m.offset())),
        s = wait_for(Duration::from_secs(60), || async { watch.stall() }) => s,
    }
    .expect("the watchdog reports the blocked group");
    assert_eq!(stall.cause, StallCause::UnstableOffsets, "{stall:?}");

    // Do: find it on the group's partition of __consumer_offsets, and abort it.
    let tool = KafkaTool::new(&bootstrap());
    let partition = tool
        .offsets_partition(&group)
        .expect("group's offsets partition");
    let open = tool
        .open_transactions("__consumer_offsets", partition)
        .await
        .expect("describe-producers");
    assert_eq!(
        open.len(),
        1,
        "one open transaction on __consumer_offsets[{partition}]: {open:?}"
    );
    let hanging = tool
        .hanging_transactions("__consumer_offsets", 1)
        .await
        .expect("find-hanging");
    assert!(
        hanging
            .iter()
            .all(|h| h.start_offset != open[0].start_offset),
        "find-hanging called a transaction younger than a minute hanging: {hanging:?}"
    );
    tool.abort(&open[0])
        .await
        .expect("kafka-transactions abort");

    // Confirm: everything is read, the watchdog clears, nothing is left open.
    let mut read = Vec::new();
    while read.len() < 4 {
        let m = tokio::time::timeout(Duration::from_secs(60), consumer.recv())
            .await
            .expect("records arrive once the transaction is aborted")
            .expect("no consumer error");
        read.push(String::from_utf8_lossy(m.payload().unwrap_or_default()).into_owned());
    }
    read.sort();
    assert_eq!(read, ["v0", "v1", "v2", "v3"]);
    wait_for(Duration::from_secs(30), || async {
        watch.stall().is_none().then_some(())
    })
    .await
    .expect("the watchdog clears");
    let left = tool
        .open_transactions("__consumer_offsets", partition)
        .await
        .expect("describe-producers");
    assert!(left.is_empty(), "still open: {left:?}");
}
