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

/// `--service name=url`: a real service health endpoint (sfjira-core's, with its Kafka check)
/// that is ready and exports a headline gauge, one whose Kafka is unreachable, and an address
/// nobody listens on — each reported for what it is.
#[tokio::test(flavor = "multi_thread")]
async fn status_shows_each_services_readiness_and_headline_gauges() {
    use std::sync::Arc;

    use sfjira_core::health::{
        HealthServer, KafkaReachable, ReadinessCheck, install_metrics_recorder,
    };

    let metrics = install_metrics_recorder().unwrap();
    metrics::gauge!("sfjira_salesforce_sink_api_requests_used").set(812.0);
    metrics::counter!("sfjira_transformer_commands_total").increment(3);
    let serve = |checks: Vec<Arc<dyn ReadinessCheck>>| {
        let metrics = metrics.clone();
        async move {
            let server = HealthServer::bind("127.0.0.1:0".parse().unwrap(), checks, metrics)
                .await
                .unwrap();
            let addr = server.local_addr();
            tokio::spawn(server.serve(std::future::pending()));
            format!("http://{addr}")
        }
    };
    let ready = serve(vec![Arc::new(
        KafkaReachable::new(&client_config()).unwrap(),
    )])
    .await;
    let mut dead_kafka = rdkafka::ClientConfig::new();
    dead_kafka.set("bootstrap.servers", "127.0.0.1:1");
    let not_ready = serve(vec![Arc::new(KafkaReachable::new(&dead_kafka).unwrap())]).await;
    let nobody = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        format!("http://{}", l.local_addr().unwrap())
    };

    let prefix = format!("{}.", unique("status-svc"));
    let dir = std::env::temp_dir().join(unique("status-cli"));
    std::fs::create_dir_all(&dir).unwrap();
    let config = dir.join("sfjira.yaml");
    std::fs::write(&config, format!("kafka:\n  bootstrap_servers: \"{}\"\n  topic_prefix: \"{prefix}\"\nregistry:\n  url: \"{}\"\n", bootstrap(), registry_url())).unwrap();
    let out = tokio::task::spawn_blocking(move || {
        Command::new(env!("CARGO_BIN_EXE_sfjira"))
            .args([
                "--config",
                config.to_str().unwrap(),
                "--output",
                "json",
                "status",
            ])
            .args(["--service", &format!("salesforce-sink={ready}")])
            .args(["--service", &format!("transformer={not_ready}")])
            .args(["--service", &format!("jira-sink={nobody}")])
            .current_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/../.."))
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let svc = |name: &str| {
        v["services"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["name"] == name)
            .cloned()
            .unwrap_or_else(|| panic!("{name} in {v}"))
    };
    let sink = svc("salesforce-sink");
    assert_eq!(sink["state"], "ready", "{sink}");
    let gauges = sink["gauges"].as_array().unwrap();
    assert!(
        gauges.contains(&serde_json::json!([
            "sfjira_salesforce_sink_api_requests_used",
            812.0
        ])),
        "{gauges:?}"
    );
    assert!(
        !gauges
            .iter()
            .any(|g| g[0].as_str().unwrap().contains("commands_total")),
        "only headline gauges: {gauges:?}"
    );
    let transformer = svc("transformer");
    assert_eq!(transformer["state"], "not ready", "{transformer}");
    assert!(
        transformer["detail"].as_str().unwrap().contains("kafka"),
        "{transformer}"
    );
    assert_eq!(svc("jira-sink")["state"], "unreachable");
}
