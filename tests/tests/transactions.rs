//! Exactly-once on the real broker: consume → produce → send offsets → commit, with the
//! abort path. An aborted transaction must be invisible to `read_committed` readers and must not
//! move the group's offsets; a committed one is seen exactly once with its offsets.

use std::time::Duration;

use rdkafka::Offset;
use rdkafka::consumer::Consumer;
use rdkafka::message::Message;
use sfjira_core::kafka::{
    IdempotentProducer, KafkaConsumer, OffsetTracker, OutRecord, TransactionalProducer,
};
use sfjira_tests::*;

const RECORDS: usize = 5;
const TXN_TIMEOUT: Duration = Duration::from_secs(30);

/// Reads `n` records from the consumer, tracking their offsets.
async fn take(
    consumer: &KafkaConsumer,
    n: usize,
    tracker: &mut OffsetTracker,
) -> Vec<(String, String)> {
    let mut out = Vec::new();
    while out.len() < n {
        let m = tokio::time::timeout(Duration::from_secs(30), consumer.recv())
            .await
            .expect("records arrive")
            .unwrap();
        tracker.record(&m);
        out.push((
            String::from_utf8(m.key().unwrap().to_vec()).unwrap(),
            String::from_utf8(m.payload().unwrap().to_vec()).unwrap(),
        ));
    }
    out
}

fn committed_offset(consumer: &KafkaConsumer, topic: &str) -> Offset {
    let c = consumer.inner().committed(Duration::from_secs(10)).unwrap();
    c.find_partition(topic, 0)
        .map(|e| e.offset())
        .unwrap_or(Offset::Invalid)
}

#[tokio::test(flavor = "multi_thread")]
async fn aborted_transactions_are_invisible_and_committed_ones_are_seen_once_with_their_offsets() {
    let input = fresh_topic("txn-in", 1).await;
    let output = fresh_topic("txn-out", 1).await;
    let base = client_config();
    let source = IdempotentProducer::new(&base).unwrap();
    for i in 0..RECORDS {
        source
            .send(
                &OutRecord::new(&input)
                    .key(format!("k{i}"))
                    .payload(format!("v{i}")),
            )
            .await
            .unwrap();
    }

    let group = unique("txn-group");
    let consumer = KafkaConsumer::new(&base, &group, &[&input]).unwrap();
    let mut txn = TransactionalProducer::new(&base, &unique("txn-id"), TXN_TIMEOUT)
        .await
        .unwrap();

    // First attempt: produce the outputs and the offsets, then abort.
    let mut tracker = OffsetTracker::new();
    let batch = take(&consumer, RECORDS, &mut tracker).await;
    txn.begin().unwrap();
    for (k, v) in &batch {
        txn.send(
            &OutRecord::new(&output)
                .key(k.as_str())
                .payload(format!("aborted-{v}")),
        )
        .await
        .unwrap();
    }
    txn.send_offsets(&tracker.to_list(), consumer.group_metadata().unwrap())
        .await
        .unwrap();
    // The aborted records really reach the log (the watermark check below relies on it).
    txn.flush().await.unwrap();
    txn.abort().await.unwrap();
    assert_eq!(
        committed_offset(&consumer, &input),
        Offset::Invalid,
        "an aborted transaction commits no offsets"
    );

    // The stage rewinds and processes the same batch again, this time committing.
    consumer
        .rewind_to_committed(Duration::from_secs(10))
        .unwrap();
    let mut tracker = OffsetTracker::new();
    let again = take(&consumer, RECORDS, &mut tracker).await;
    assert_eq!(
        again, batch,
        "after the abort the same records are read again"
    );
    txn.begin().unwrap();
    for (k, v) in &again {
        txn.send(
            &OutRecord::new(&output)
                .key(k.as_str())
                .payload(format!("committed-{v}")),
        )
        .await
        .unwrap();
    }
    txn.send_offsets(&tracker.to_list(), consumer.group_metadata().unwrap())
        .await
        .unwrap();
    txn.commit().await.unwrap();

    assert_eq!(
        committed_offset(&consumer, &input),
        Offset::Offset(RECORDS as i64),
        "offsets committed in the transaction"
    );

    // A read_committed reader sees each committed output exactly once and nothing aborted.
    // (It waits well past the expected count so a duplicate would have time to show up.)
    let seen = read_all(&output, RECORDS + 1, Duration::from_secs(5)).await;
    let values: Vec<String> = seen
        .iter()
        .map(|m| String::from_utf8(m.payload().unwrap().to_vec()).unwrap())
        .collect();
    let expected: Vec<String> = (0..RECORDS).map(|i| format!("committed-v{i}")).collect();
    assert_eq!(values, expected);
    // The aborted records are in the log all the same (read_uncommitted would show them):
    // 5 aborted + 1 abort marker + 5 committed + 1 commit marker.
    let (_, high) = consumer
        .inner()
        .fetch_watermarks(&output, 0, Duration::from_secs(10))
        .unwrap();
    assert_eq!(high, 2 * RECORDS as i64 + 2);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_new_producer_with_the_same_transactional_id_fences_the_old_one() {
    let output = fresh_topic("txn-fence", 1).await;
    let base = client_config();
    let id = unique("txn-fenced");
    let mut zombie = TransactionalProducer::new(&base, &id, TXN_TIMEOUT)
        .await
        .unwrap();
    zombie.begin().unwrap();
    zombie
        .send(&OutRecord::new(&output).key("k").payload("from the zombie"))
        .await
        .unwrap();

    // A restarted instance initialises the same id: the zombie's open transaction is aborted.
    let mut successor = TransactionalProducer::new(&base, &id, TXN_TIMEOUT)
        .await
        .unwrap();
    successor.begin().unwrap();
    successor
        .send(
            &OutRecord::new(&output)
                .key("k")
                .payload("from the successor"),
        )
        .await
        .unwrap();
    successor.commit().await.unwrap();

    let err = zombie.commit().await.unwrap_err();
    assert!(
        matches!(err, sfjira_core::kafka::TxnError::Fatal(_)),
        "the zombie is fenced: {err}"
    );

    let seen = read_all(&output, 2, Duration::from_secs(5)).await;
    let values: Vec<&[u8]> = seen.iter().map(|m| m.payload().unwrap()).collect();
    assert_eq!(values, vec![&b"from the successor"[..]]);
}

/// A caller cancelled between begin and commit (a webhook handler whose client hung up) leaves
/// its transaction open; `abort_abandoned` ends it, so the next transaction begins and commits,
/// and the abandoned records are never visible.
#[tokio::test(flavor = "multi_thread")]
async fn a_transaction_abandoned_by_a_cancelled_caller_is_aborted_before_the_next() {
    let output = fresh_topic("txn-abandoned", 1).await;
    let base = client_config();
    let mut p = TransactionalProducer::new(&base, &unique("txn-abandoned"), TXN_TIMEOUT)
        .await
        .unwrap();
    let abandoned = OutRecord::new(&output).key("k").payload("abandoned");
    {
        // What a dropped handler future leaves behind: begun, sent, never ended.
        p.begin().unwrap();
        p.send(&abandoned).await.unwrap();
    }
    assert!(p.is_open());
    assert!(p.begin().is_err(), "a second begin fails while one is open");
    p.abort_abandoned().await.unwrap();
    assert!(!p.is_open());
    p.abort_abandoned().await.unwrap(); // nothing open: a no-op
    p.begin().unwrap();
    p.send(&OutRecord::new(&output).key("k").payload("kept"))
        .await
        .unwrap();
    p.commit().await.unwrap();
    let seen = read_all(&output, 2, Duration::from_secs(5)).await;
    let payloads: Vec<String> = seen
        .iter()
        .map(|m| String::from_utf8(m.payload().unwrap().to_vec()).unwrap())
        .collect();
    assert_eq!(payloads, ["kept"], "only the committed record is visible");
}

/// `recv_now` hands over what the consumer already holds and never waits: the stage's reader
/// uses it to tell a backlog (records waiting) from a caught-up stream.
#[tokio::test(flavor = "multi_thread")]
async fn recv_now_takes_what_is_waiting_and_never_waits() {
    let topic = fresh_topic("recv-now", 1).await;
    let base = client_config();
    let source = IdempotentProducer::new(&base).unwrap();
    for i in 0..3 {
        source
            .send(&OutRecord::new(&topic).key(format!("k{i}")).payload("v"))
            .await
            .unwrap();
    }
    let consumer = KafkaConsumer::new(&base, &unique("recv-now"), &[&topic]).unwrap();
    // The first record needs the group joined and a fetch: wait for it.
    let first = tokio::time::timeout(Duration::from_secs(30), consumer.recv())
        .await
        .expect("the first record arrives")
        .unwrap();
    assert_eq!(first.offset(), 0);
    drop(first);
    // The same fetch brought the other two: they are there at once.
    let mut offsets = Vec::new();
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while offsets.len() < 2 && std::time::Instant::now() < deadline {
        match consumer.recv_now() {
            Some(m) => offsets.push(m.unwrap().offset()),
            None => tokio::time::sleep(Duration::from_millis(10)).await,
        }
    }
    assert_eq!(offsets, [1, 2]);
    // Nothing more in the topic: an immediate None, however often it is asked.
    let started = std::time::Instant::now();
    for _ in 0..100 {
        assert!(consumer.recv_now().is_none(), "nothing else was produced");
    }
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "recv_now never waits"
    );
}
