//! Test harness for tests that run against the real stack: the Kafka broker and the Apicurio
//! registry that `make infra-up` starts (the Makefile's `test` target starts them itself).
//!
//! Tests isolate themselves: every topic, group and transactional id is made unique with
//! [`unique`], so tests run in parallel against one broker and re-run without a reset.
//!
//! Where the stack lives (defaults match `infra/kafka/env.sh` and `infra/registry/env.sh`):
//! - `SFJIRA_TEST_BOOTSTRAP` (default `127.0.0.1:19092`)
//! - `SFJIRA_TEST_REGISTRY_URL` (default `http://127.0.0.1:18081/apis/ccompat/v7`)

pub mod demo;
pub mod kafka_tool;
pub mod private_broker;

use std::time::Duration;

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::types::RDKafkaErrorCode;

pub fn bootstrap() -> String {
    std::env::var("SFJIRA_TEST_BOOTSTRAP").unwrap_or_else(|_| "127.0.0.1:19092".into())
}

pub fn registry_url() -> String {
    std::env::var("SFJIRA_TEST_REGISTRY_URL")
        .unwrap_or_else(|_| "http://127.0.0.1:18081/apis/ccompat/v7".into())
}

/// A local port nothing listens on now and that this process has not handed out before. The
/// kernel may give the same free port to two binds in a row once the first listener is closed,
/// and two services of one deployment (or a broker's two listeners) then fight over it: seen
/// in CI as "address in use" from one service while the other answered its health checks.
pub fn free_port() -> std::io::Result<u16> {
    static HANDED_OUT: std::sync::Mutex<std::collections::BTreeSet<u16>> =
        std::sync::Mutex::new(std::collections::BTreeSet::new());
    loop {
        let port = std::net::TcpListener::bind("127.0.0.1:0")?
            .local_addr()?
            .port();
        let mut handed_out = HANDED_OUT.lock().unwrap_or_else(|e| e.into_inner());
        if handed_out.insert(port) {
            return Ok(port);
        }
    }
}

/// `<prefix>-<random>`: a name no other test run has used.
pub fn unique(prefix: &str) -> String {
    format!("{prefix}-{}", uuid::Uuid::new_v4().simple())
}

pub fn admin() -> AdminClient<DefaultClientContext> {
    ClientConfig::new()
        .set("bootstrap.servers", bootstrap())
        .create()
        .expect("admin client")
}

/// Creates a topic (replication factor 1) and waits until it is usable.
pub async fn create_topic(name: &str, partitions: i32) {
    let admin = admin();
    let topic = NewTopic::new(name, partitions, TopicReplication::Fixed(1));
    let opts = AdminOptions::new().operation_timeout(Some(Duration::from_secs(10)));
    let results = admin
        .create_topics([&topic], &opts)
        .await
        .unwrap_or_else(|e| {
            panic!(
                "cannot reach Kafka at {} ({e}); run `make infra-up`",
                bootstrap()
            )
        });
    for r in results {
        match r {
            Ok(_) | Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
            Err((t, e)) => panic!("creating topic {t}: {e}"),
        }
    }
}

/// Deletes topics a benchmark filled (hundreds of MB a run, which the dev broker would otherwise
/// keep for its default 7 days). A topic already gone is fine; anything else is reported, not
/// fatal: the figures are printed by then.
pub async fn delete_topics(names: &[String]) {
    delete_topics_on(&admin(), names).await;
}

/// [`delete_topics`] through `admin` (another broker than the shared one).
pub async fn delete_topics_on(admin: &AdminClient<DefaultClientContext>, names: &[String]) {
    let names: Vec<&str> = names.iter().map(String::as_str).collect();
    let opts = AdminOptions::new().operation_timeout(Some(Duration::from_secs(10)));
    match admin.delete_topics(&names, &opts).await {
        Ok(results) => {
            for r in results {
                if let Err((t, e)) = r
                    && e != RDKafkaErrorCode::UnknownTopicOrPartition
                {
                    eprintln!("deleting topic {t}: {e}");
                }
            }
        }
        Err(e) => eprintln!("deleting topics {names:?}: {e}"),
    }
}

/// A unique topic with `partitions` partitions, created.
pub async fn fresh_topic(prefix: &str, partitions: i32) -> String {
    let name = unique(prefix);
    create_topic(&name, partitions).await;
    name
}

/// A `RegistryConfig` for the test registry.
pub fn registry_config() -> sfjira_core::config::RegistryConfig {
    let yaml = format!(
        "kafka: {{bootstrap_servers: \"{}\"}}\nregistry: {{url: \"{}\"}}\n",
        bootstrap(),
        registry_url()
    );
    let dir = std::env::temp_dir().join(unique("sfjira-test-config"));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let path = dir.join("sfjira.yaml");
    std::fs::write(&path, yaml).expect("write test config");
    let cfg = sfjira_core::config::load_from(Some(&path), Vec::<(String, String)>::new())
        .expect("test config loads");
    let _ = std::fs::remove_dir_all(&dir);
    cfg.registry
}

/// The base rdkafka config for the test broker.
pub fn client_config() -> ClientConfig {
    let mut c = ClientConfig::new();
    c.set("bootstrap.servers", bootstrap());
    c
}

/// Reads from `topic` with a fresh group until `count` records arrived or `timeout` passed.
/// Returns (key, value, headers) of each, in order of arrival.
pub async fn read_all(
    topic: &str,
    count: usize,
    timeout: Duration,
) -> Vec<rdkafka::message::OwnedMessage> {
    use rdkafka::consumer::{Consumer, StreamConsumer};
    let consumer: StreamConsumer = client_config()
        .set("group.id", unique("reader"))
        .set("auto.offset.reset", "earliest")
        .set("isolation.level", "read_committed")
        .set("enable.auto.commit", "false")
        .create()
        .expect("consumer");
    consumer.subscribe(&[topic]).expect("subscribe");
    let mut out = Vec::new();
    let deadline = tokio::time::Instant::now() + timeout;
    while out.len() < count {
        match tokio::time::timeout_at(deadline, consumer.recv()).await {
            Ok(Ok(m)) => out.push(m.detach()),
            Ok(Err(e)) => panic!("reading {topic}: {e}"),
            Err(_) => break,
        }
    }
    out
}
