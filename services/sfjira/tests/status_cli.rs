//! `sfjira status` against the real broker: lag, dead letters and checkpoints as Kafka has them.

use std::process::Command;

use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use rdkafka::{Offset, TopicPartitionList};
use sfjira_core::dlq::{Attempts, DlqRouter, FailedAt, FailedRecord};
use sfjira_core::errors::{ErrorCode, StageError};
use sfjira_core::kafka::{IdempotentProducer, OutRecord};
use sfjira_tests::*;

#[tokio::test(flavor = "multi_thread")]
async fn status_shows_lag_dead_letters_and_checkpoints() {
    let prefix = format!("{}.", unique("status"));
    let issues = format!("{prefix}jira.issues");
    for t in ["jira.issues", "transformer.dlq", "sfjira.checkpoints"] {
        create_topic(&format!("{prefix}{t}"), 1).await;
    }
    let producer = IdempotentProducer::new(&client_config()).unwrap();
    for i in 0..5 {
        producer
            .send(&OutRecord::new(&issues).key(format!("{i}")).payload("x"))
            .await
            .unwrap();
    }
    // A group that has processed 2 of the 5.
    let group = format!("{prefix}group"); // found by the default filter (the topic prefix)
    let consumer: BaseConsumer = client_config().set("group.id", &group).create().unwrap();
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset(&issues, 0, Offset::Offset(2))
        .unwrap();
    consumer.commit(&tpl, CommitMode::Sync).unwrap();
    // One dead letter and one checkpoint.
    let failed = FailedRecord {
        topic: issues.clone(),
        partition: 0,
        offset: 4,
        record: OutRecord::new(&issues).key("4").payload("x"),
    };
    DlqRouter::new("transformer", &prefix, "t")
        .send(
            &producer,
            &failed,
            &StageError::new(ErrorCode::AvroBodyInvalid, "bad"),
            FailedAt::ValueConverter,
            Attempts::once(),
        )
        .await
        .unwrap();
    producer
        .send(
            &OutRecord::new(format!("{prefix}sfjira.checkpoints"))
                .key("jira-source:poll:PROJ")
                .payload("{}"),
        )
        .await
        .unwrap();

    let dir = std::env::temp_dir().join(unique("status-cli"));
    std::fs::create_dir_all(&dir).unwrap();
    let config = dir.join("sfjira.yaml");
    std::fs::write(&config, format!("kafka:\n  bootstrap_servers: \"{}\"\n  topic_prefix: \"{prefix}\"\nregistry:\n  url: \"{}\"\n", bootstrap(), registry_url())).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_sfjira"))
        .args([
            "--config",
            config.to_str().unwrap(),
            "--output",
            "json",
            "status",
        ])
        .current_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/../.."))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let lag = v["lag"]
        .as_array()
        .unwrap()
        .iter()
        .find(|l| l["group"] == group.as_str())
        .expect("the group's lag");
    assert_eq!(
        (
            lag["topic"].as_str(),
            lag["committed"].as_i64(),
            lag["end"].as_i64(),
            lag["lag"].as_i64()
        ),
        (Some(issues.as_str()), Some(2), Some(5), Some(3))
    );
    let dlq = v["dlq"].as_array().unwrap();
    assert_eq!(dlq.len(), 1, "{dlq:?}");
    assert_eq!(
        (
            dlq[0]["stage"].as_str(),
            dlq[0]["code"].as_str(),
            dlq[0]["records"].as_u64()
        ),
        (Some("transformer"), Some("SFJ-1003"), Some(1))
    );
    let cp = v["checkpoints"].as_array().unwrap();
    assert_eq!(cp[0]["key"], "jira-source:poll:PROJ");
    assert!(cp[0]["age_seconds"].as_i64().unwrap() < 600);
    let _ = std::fs::remove_dir_all(dir);
}
