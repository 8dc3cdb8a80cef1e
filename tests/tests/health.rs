//! The health server against the real stack: ready when Kafka and the registry answer, not
//! ready (503, naming the check) when the registry does not, and metrics from typed events on
//! `/metrics`.

use std::net::SocketAddr;
use std::sync::Arc;

use rdkafka::ClientConfig;
use sfjira_core::ErrorCode;
use sfjira_core::health::{
    HealthServer, KafkaReachable, ReadinessCheck, RegistryReachable, install_metrics_recorder,
};
use sfjira_core::telemetry::RecordDeadLettered;
use sfjira_tests::{bootstrap, registry_url, unique};
use tokio::sync::oneshot;

/// Starts a server with `checks` on a free port; dropping the sender shuts it down.
async fn start(checks: Vec<Arc<dyn ReadinessCheck>>) -> (SocketAddr, oneshot::Sender<()>) {
    let metrics = install_metrics_recorder().expect("recorder");
    let server = HealthServer::bind("127.0.0.1:0".parse().unwrap(), checks, metrics)
        .await
        .expect("bind");
    let addr = server.local_addr();
    let (stop, stopped) = oneshot::channel::<()>();
    tokio::spawn(server.serve(async move {
        let _ = stopped.await;
    }));
    (addr, stop)
}

fn kafka_check() -> Arc<dyn ReadinessCheck> {
    let mut config = ClientConfig::new();
    config.set("bootstrap.servers", bootstrap());
    Arc::new(KafkaReachable::new(&config).expect("kafka check"))
}

#[tokio::test]
async fn ready_when_kafka_and_registry_answer() {
    let registry: Arc<dyn ReadinessCheck> =
        Arc::new(RegistryReachable::new(&registry_url()).unwrap());
    let (addr, _stop) = start(vec![kafka_check(), registry]).await;

    let response = reqwest::get(format!("http://{addr}/readyz")).await.unwrap();
    assert_eq!(response.status(), 200);
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(body, serde_json::json!({ "kafka": "ok", "registry": "ok" }));

    let response = reqwest::get(format!("http://{addr}/healthz"))
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.text().await.unwrap(), "ok");
}

#[tokio::test]
async fn not_ready_names_the_unreachable_registry() {
    let registry: Arc<dyn ReadinessCheck> =
        Arc::new(RegistryReachable::new("http://127.0.0.1:1/apis/ccompat/v7").unwrap());
    let (addr, _stop) = start(vec![kafka_check(), registry]).await;

    let response = reqwest::get(format!("http://{addr}/readyz")).await.unwrap();
    assert_eq!(response.status(), 503);
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(body["kafka"], "ok");
    let reason = body["registry"].as_str().expect("registry reason");
    assert!(
        reason.contains("127.0.0.1:1/apis/ccompat/v7/subjects"),
        "{reason}"
    );

    // Liveness does not depend on readiness.
    let response = reqwest::get(format!("http://{addr}/healthz"))
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
}

#[tokio::test]
async fn metrics_show_typed_events() {
    let (addr, _stop) = start(vec![]).await;
    let stage = unique("health-test");
    RecordDeadLettered {
        stage: &stage,
        topic: "jira.issues",
        code: ErrorCode::AvroBodyInvalid,
    }
    .emit();
    RecordDeadLettered {
        stage: &stage,
        topic: "jira.issues",
        code: ErrorCode::AvroBodyInvalid,
    }
    .emit();

    let response = reqwest::get(format!("http://{addr}/metrics"))
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let content_type = response.headers()["content-type"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(
        content_type.starts_with("text/plain; version=0.0.4"),
        "{content_type}"
    );
    let text = response.text().await.unwrap();
    let line = format!(
        r#"sfjira_dlq_records_total{{stage="{stage}",topic="jira.issues",code="SFJ-1003"}} 2"#
    );
    assert!(text.contains(&line), "missing {line:?} in:\n{text}");
    assert!(
        text.contains("# TYPE sfjira_dlq_records_total counter"),
        "{text}"
    );

    // No checks registered: ready, with an empty report.
    let response = reqwest::get(format!("http://{addr}/readyz")).await.unwrap();
    assert_eq!(response.status(), 200);
}
