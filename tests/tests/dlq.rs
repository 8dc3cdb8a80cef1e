//! The DLQ router on the real broker: a dead-lettered record keeps its original key, value,
//! headers and timestamp byte for byte, and carries every error header as UTF-8 text.

use std::time::Duration;

use rdkafka::message::{Header, Headers, Message, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord};
use sfjira_core::dlq::{self, Attempts, DlqRouter, FailedAt, FailedRecord};
use sfjira_core::errors::{ErrorCode, StageError};
use sfjira_core::kafka::{IdempotentProducer, KafkaConsumer};
use sfjira_tests::*;

#[tokio::test(flavor = "multi_thread")]
async fn a_dead_letter_carries_every_header_and_the_original_bytes() {
    let input = fresh_topic("dlq-in", 1).await;
    let prefix = format!("{}.", unique("dlqtest"));
    let router = DlqRouter::new("transformer", &prefix, "instance-7")
        .redacting(["s3cr3t-token".to_string()]);
    create_topic(router.dlq_topic(), 1).await;

    // An original record with binary (non-UTF-8) bytes, its own headers and a set timestamp.
    let key = vec![0xff, 0x00, 0x10];
    let value = vec![0x00, 0x00, 0x00, 0x00, 0x2a, 0xde, 0xad, 0xbe, 0xef];
    let ts = 1_767_225_600_123_i64;
    let raw: FutureProducer = client_config().create().unwrap();
    raw.send(
        FutureRecord::to(&input)
            .key(&key)
            .payload(&value)
            .timestamp(ts)
            .headers(OwnedHeaders::new().insert(Header {
                key: "sfjira.source",
                value: Some("salesforce,Opportunity,006A"),
            })),
        Duration::from_secs(10),
    )
    .await
    .unwrap();

    let consumer = KafkaConsumer::new(&client_config(), &unique("dlq-group"), &[&input]).unwrap();
    let msg = consumer.recv().await.unwrap();
    let failed = FailedRecord::from_message(&msg);
    let err = StageError::new(
        ErrorCode::AvroBodyInvalid,
        "could not decode (token s3cr3t-token)",
    );
    let producer = IdempotentProducer::new(&client_config()).unwrap();
    router
        .send(
            &producer,
            &failed,
            &err,
            FailedAt::ValueConverter,
            Attempts::once(),
        )
        .await
        .unwrap();

    let got = read_all(router.dlq_topic(), 1, Duration::from_secs(30)).await;
    assert_eq!(got.len(), 1);
    let d = &got[0];
    assert_eq!(d.key(), Some(&key[..]));
    assert_eq!(d.payload(), Some(&value[..]));
    assert_eq!(d.timestamp().to_millis(), Some(ts));

    let headers = d.headers().expect("headers");
    let get = |name: &str| -> String {
        let h = headers
            .iter()
            .find(|h| h.key == name)
            .unwrap_or_else(|| panic!("header {name} missing"));
        String::from_utf8(h.value.unwrap().to_vec())
            .unwrap_or_else(|_| panic!("header {name} is not UTF-8"))
    };
    assert_eq!(
        get("sfjira.source"),
        "salesforce,Opportunity,006A",
        "original headers kept"
    );
    for name in dlq::ERROR_HEADERS {
        get(name);
    }
    assert_eq!(get(dlq::H_TOPIC), input);
    assert_eq!(get(dlq::H_PARTITION), "0");
    assert_eq!(get(dlq::H_OFFSET), msg.offset().to_string());
    assert_eq!(get(dlq::H_CONNECTOR), "sfjira-transformer");
    assert_eq!(get(dlq::H_TASK), "instance-7");
    assert_eq!(get(dlq::H_STAGE), "VALUE_CONVERTER");
    assert_eq!(get(dlq::H_CODE), "SFJ-1003");
    assert_eq!(get(dlq::H_RETRYABLE), "false");
    assert_eq!(get(dlq::H_ATTEMPTS), "1");
    assert!(get(dlq::H_FIRST_FAILED_AT).ends_with('Z'));
    assert!(get(dlq::H_EXCEPTION_MESSAGE).contains("could not decode"));
    for h in headers.iter() {
        let v = h
            .value
            .map(|v| String::from_utf8_lossy(v).into_owned())
            .unwrap_or_default();
        assert!(
            !v.contains("s3cr3t-token"),
            "secret leaked into header {}",
            h.key
        );
    }
}
