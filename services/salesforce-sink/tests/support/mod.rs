//! What the salesforce-sink tests share: an in-process Salesforce org from the sandbox (with a
//! recorder of its committed transactions, which is what Change Data Capture turns into change
//! events), a deployment on the real Kafka broker and registry with unique topics, commands
//! produced the way the transformer produces them, and readers of the audit and the DLQ.

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::Utc;
use rdkafka::message::{Header, Message, OwnedHeaders, OwnedMessage};
use rdkafka::producer::{FutureProducer, FutureRecord};
use serde_json::{Value, json};
use sfjira_core::audit::AuditEntry;
use sfjira_core::avro::AvroCodec;
use sfjira_core::command::{
    Command, CommandKind, DeliveryMode, FieldValue, Owner, SourceRef, System, TargetRef,
};
use sfjira_core::config::SfjiraConfig;
use sfjira_sandbox::clock::SandboxClock;
use sfjira_sandbox::salesforce::changes::{ChangeSink, CommittedTransaction};
use sfjira_sandbox::salesforce::config::SalesforceConfig;
use sfjira_sandbox::salesforce::faults::SalesforceFaults;
use sfjira_sandbox::salesforce::{SpawnedOrg, spawn_for_tests};
use sfjira_tests::*;

pub const SECRET_VAR: &str = "SFJIRA_TEST_SF_SINK_SECRET";
pub const SECRET: &str = "sfjira-sandbox-consumer-secret";

/// Every transaction the org committed (what CDC would publish).
#[derive(Default)]
pub struct Recorder(pub Mutex<Vec<CommittedTransaction>>);

impl ChangeSink for Recorder {
    fn committed(&self, txn: CommittedTransaction) {
        self.0.lock().unwrap().push(txn);
    }
}

pub struct Org {
    pub spawned: SpawnedOrg,
    pub recorder: Arc<Recorder>,
    pub http: reqwest::Client,
    /// Change Data Capture's event bus, for an org started with [`Org::start_with_cdc`].
    pub bus: Option<Arc<sfjira_sandbox::salesforce::cdc::bus::EventBus>>,
}

impl Org {
    pub async fn start() -> Org {
        Org::start_with(SalesforceConfig::default()).await
    }

    /// An org serving HTTPS with a generated CA written to `ca_pem_path`.
    pub async fn start_tls(ca_pem_path: &std::path::Path) -> Org {
        let config = SalesforceConfig {
            tls: Some(sfjira_sandbox::salesforce::config::TlsConfig {
                ca_pem_path: ca_pem_path.to_path_buf(),
                hosts: Vec::new(),
            }),
            ..SalesforceConfig::default()
        };
        Org::start_with(config).await
    }

    pub async fn start_with(config: SalesforceConfig) -> Org {
        let spawned_tls = config.tls.clone();
        let recorder = Arc::new(Recorder::default());
        let spawned = spawn_for_tests(
            config,
            "127.0.0.1:0".parse().unwrap(),
            SandboxClock::real_time(),
            recorder.clone(),
            Arc::new(SalesforceFaults::new()),
        )
        .await
        .expect("the sandbox org starts");
        let mut http = reqwest::Client::builder();
        if let Some(tls) = &spawned_tls {
            let pem = std::fs::read(&tls.ca_pem_path).unwrap();
            http = http.add_root_certificate(reqwest::Certificate::from_pem(&pem).unwrap());
        }
        Org {
            spawned,
            recorder,
            http: http.build().unwrap(),
            bus: None,
        }
    }

    /// A whole org with Change Data Capture (event bus and Pub/Sub server); the recorder
    /// stays empty.
    pub async fn start_with_cdc() -> Org {
        let full = sfjira_sandbox::salesforce::wiring::spawn_full_for_tests(
            SalesforceConfig::default(),
            SandboxClock::real_time(),
        )
        .await
        .expect("the sandbox org starts");
        Org {
            spawned: full.http,
            recorder: Arc::new(Recorder::default()),
            http: reqwest::Client::new(),
            bus: Some(full.bus),
        }
    }

    /// The change events of `channel` (`/data/AccountChangeEvent`) as Avro values, decoded
    /// with the schema each names: what a Pub/Sub subscriber receives.
    pub fn change_events(&self, channel: &str) -> Vec<apache_avro::types::Value> {
        let bus = self.bus.as_ref().expect("an org started with CDC");
        let from = bus.earliest(channel).unwrap();
        bus.read(channel, from, 1000)
            .unwrap()
            .into_iter()
            .map(|e| {
                let schema = bus.schema_by_id(&e.schema_id).expect("the event's schema");
                apache_avro::reader::datum::GenericDatumReader::builder(&schema.schema)
                    .build()
                    .unwrap()
                    .read_value(&mut &e.payload[..])
                    .expect("the payload decodes")
            })
            .collect()
    }

    pub fn base(&self) -> &str {
        &self.spawned.base_url
    }

    fn admin(&self, path: &str) -> String {
        format!("{}/__admin/salesforce{path}", self.base())
    }

    pub async fn admin_call(&self, method: reqwest::Method, path: &str, body: Value) -> Value {
        let r = self
            .http
            .request(method, self.admin(path))
            .json(&body)
            .send()
            .await
            .unwrap();
        assert!(r.status().is_success(), "admin {path}");
        r.json().await.unwrap_or(Value::Null)
    }

    pub async fn faults(&self, faults: Value) {
        self.admin_call(reqwest::Method::PUT, "/faults", faults)
            .await;
    }

    pub async fn expire_tokens(&self) {
        self.admin_call(reqwest::Method::POST, "/faults/expire-tokens", json!({}))
            .await;
    }

    pub async fn lock_rows(&self, count: u32) {
        self.admin_call(
            reqwest::Method::POST,
            "/faults/lock-rows",
            json!({"count": count}),
        )
        .await;
    }

    pub async fn set_limits(&self, max: u64, used: Option<u64>) {
        self.admin_call(
            reqwest::Method::PUT,
            "/limits",
            json!({"max": max, "used": used}),
        )
        .await;
    }

    /// (used, max) of the daily API allocation.
    pub async fn api_usage(&self) -> (u64, u64) {
        let s: Value = self
            .http
            .get(self.admin("/state"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        (
            s["apiUsage"]["used"].as_u64().unwrap(),
            s["apiUsage"]["max"].as_u64().unwrap(),
        )
    }

    /// Creates a record as Alice (a human edit); returns its Id.
    pub async fn create_as_alice(&self, object: &str, fields: Value) -> String {
        let r = self
            .admin_call(
                reqwest::Method::POST,
                &format!("/as/Alice/sobjects/{object}"),
                fields,
            )
            .await;
        r["id"].as_str().unwrap().to_string()
    }

    pub async fn update_as_alice(&self, object: &str, id: &str, fields: Value) {
        self.admin_call(
            reqwest::Method::PATCH,
            &format!("/as/Alice/sobjects/{object}/{id}"),
            fields,
        )
        .await;
    }

    /// Every live record of `object` through the REST API (SOQL, all pages), by `key` field.
    pub async fn query_all(&self, soql: &str, key: &str) -> BTreeMap<String, Value> {
        let token = self.token().await;
        let mut out = BTreeMap::new();
        let mut url = format!("{}/services/data/v64.0/query", self.base());
        let mut first = true;
        loop {
            let mut req = self.http.get(&url).bearer_auth(&token);
            if first {
                req = req.query(&[("q", soql)]);
            }
            let v: Value = req.send().await.unwrap().json().await.unwrap();
            for r in v["records"].as_array().expect("query records") {
                out.insert(r[key].as_str().unwrap_or_default().to_string(), r.clone());
            }
            match v["nextRecordsUrl"].as_str() {
                Some(n) if v["done"] != json!(true) => {
                    url = format!("{}{n}", self.base());
                    first = false;
                }
                _ => break,
            }
        }
        out
    }

    /// A record through REST by Id.
    pub async fn get(&self, object: &str, id: &str) -> Value {
        let token = self.token().await;
        self.http
            .get(format!(
                "{}/services/data/v64.0/sobjects/{object}/{id}",
                self.base()
            ))
            .bearer_auth(&token)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }

    async fn token(&self) -> String {
        let v: Value = self
            .http
            .post(format!("{}/services/oauth2/token", self.base()))
            .form(&[
                ("grant_type", "client_credentials"),
                ("client_id", "sfjira-sandbox-consumer-key"),
                ("client_secret", SECRET),
            ])
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        v["access_token"].as_str().unwrap().to_string()
    }

    /// Committed transactions that changed `object`.
    pub fn transactions_on(&self, object: &str) -> Vec<CommittedTransaction> {
        self.recorder
            .0
            .lock()
            .unwrap()
            .iter()
            .filter(|t| t.changes.iter().any(|c| c.entity == object))
            .cloned()
            .collect()
    }
}

/// A deployment: unique topic prefix with the sink's topics created.
pub struct Deployment {
    pub prefix: String,
    pub config_path: PathBuf,
}

impl Deployment {
    pub async fn new(name: &str, org: &Org, extra: &str) -> Deployment {
        let prefix = format!("{}.", unique(name));
        for (t, p) in [
            ("salesforce.commands", 3),
            ("sfjira.links", 1),
            ("sfjira.audit", 1),
            ("salesforce-sink.dlq", 1),
        ] {
            create_topic(&format!("{prefix}{t}"), p).await;
        }
        let dir = std::env::temp_dir().join(unique("sf-sink-test"));
        std::fs::create_dir_all(&dir).unwrap();
        let yaml = format!(
            r#"service: {{instance_id: "{id}"}}
kafka:
  bootstrap_servers: "{bootstrap}"
  topic_prefix: "{prefix}"
registry: {{url: "{registry}"}}
telemetry: {{log_level: "info,sfjira_salesforce_sink=debug"}}
http: {{listen: "127.0.0.1:0"}}
salesforce_sink:
  login_url: "{base}"
  auth:
    type: client_credentials
    client_id: sfjira-sandbox-consumer-key
    client_secret: {{env: {SECRET_VAR}}}
  group_id: "{group}"
  linger_ms: 300
  retry: {{initial_delay_ms: 50, max_delay_ms: 500, max_attempts: 10, max_elapsed_ms: 30000}}
{extra}"#,
            id = unique("sink"),
            group = unique("sink-group"),
            bootstrap = bootstrap(),
            registry = registry_url(),
            base = org.base(),
        );
        let config_path = dir.join("sfjira.yaml");
        std::fs::write(&config_path, yaml).unwrap();
        Deployment {
            prefix,
            config_path,
        }
    }

    pub fn config(&self) -> SfjiraConfig {
        sfjira_core::config::load_from(
            Some(&self.config_path),
            [(SECRET_VAR.to_string(), SECRET.to_string())],
        )
        .expect("the test config loads")
    }

    pub fn topic(&self, base: &str) -> String {
        format!("{}{base}", self.prefix)
    }

    /// Produces `commands` to `salesforce.commands` as the transformer does (Avro through the
    /// registry, keyed by the external reference).
    pub async fn produce(&self, commands: &[Command]) {
        self.producer().await.send(commands).await;
    }

    /// A producer of commands kept across sends (registered schema, warm connection).
    pub async fn producer(&self) -> CommandProducer {
        let topic = self.topic("salesforce.commands");
        let codec = AvroCodec::new(&registry_config()).unwrap();
        let writer = codec
            .register(&topic, sfjira_core::command::avro::schema())
            .await
            .unwrap();
        let producer: FutureProducer = client_config()
            .set("enable.idempotence", "true")
            .set("linger.ms", "5")
            .create()
            .unwrap();
        CommandProducer {
            topic,
            codec,
            writer,
            producer,
        }
    }

    /// Produces link rows (as another sink would) and waits until they are written.
    pub async fn produce_links(&self, records: &[sfjira_core::kafka::OutRecord]) {
        let producer: FutureProducer = client_config().create().unwrap();
        for r in records {
            producer
                .send(
                    FutureRecord::to(&r.topic)
                        .key(r.key.as_deref().unwrap_or_default())
                        .payload(r.payload.as_deref().unwrap_or_default()),
                    Duration::from_secs(30),
                )
                .await
                .expect("produced");
        }
    }

    /// Produces raw bytes (a record that is not a command).
    pub async fn produce_raw(&self, key: &str, payload: &[u8]) {
        let producer: FutureProducer = client_config().create().unwrap();
        producer
            .send(
                FutureRecord::to(&self.topic("salesforce.commands"))
                    .key(key)
                    .payload(payload),
                Duration::from_secs(30),
            )
            .await
            .expect("produced");
    }

    pub async fn audit(&self, count: usize, timeout: Duration) -> Vec<AuditEntry> {
        read_all(&self.topic("sfjira.audit"), count, timeout)
            .await
            .iter()
            .filter_map(|m| m.payload().and_then(AuditEntry::parse))
            .collect()
    }

    pub async fn dlq(&self, count: usize, timeout: Duration) -> Vec<OwnedMessage> {
        read_all(&self.topic("salesforce-sink.dlq"), count, timeout).await
    }

    pub async fn links(&self, count: usize, timeout: Duration) -> Vec<sfjira_core::links::Link> {
        read_all(&self.topic("sfjira.links"), count, timeout)
            .await
            .iter()
            .filter_map(|m| m.payload().and_then(|p| serde_json::from_slice(p).ok()))
            .collect()
    }
}

pub struct CommandProducer {
    topic: String,
    codec: AvroCodec,
    writer: Arc<sfjira_core::avro::WriterSchema>,
    producer: FutureProducer,
}

impl CommandProducer {
    pub async fn send(&self, commands: &[Command]) {
        let payloads: Vec<Vec<u8>> = commands
            .iter()
            .map(|c| self.codec.encode(&self.writer, c.to_avro()).unwrap())
            .collect();
        let mut futures = Vec::new();
        for (c, payload) in commands.iter().zip(&payloads) {
            let headers = OwnedHeaders::new().insert(Header {
                key: "sfjira.command-id",
                value: Some(c.command_id.as_bytes()),
            });
            let rec = FutureRecord::to(&self.topic)
                .key(&c.target.external_ref)
                .payload(payload)
                .headers(headers);
            futures.push(self.producer.send(rec, Duration::from_secs(30)));
        }
        for f in futures {
            f.await.expect("produced");
        }
    }
}

pub fn header(m: &OwnedMessage, name: &str) -> Option<String> {
    use rdkafka::message::Headers;
    m.headers()?
        .iter()
        .find(|h| h.key == name)
        .and_then(|h| h.value)
        .map(|v| String::from_utf8_lossy(v).into_owned())
}

/// An upsert command like the transformer's: every field changed, owned by Jira.
pub fn upsert(
    object: &str,
    external_ref: &str,
    ext: Option<(&str, &str)>,
    fields: Value,
) -> Command {
    let now = Utc::now();
    Command {
        command_id: unique("cmd"),
        flow: "test-flow".into(),
        kind: CommandKind::Upsert,
        target: TargetRef {
            system: System::Salesforce,
            entity: object.into(),
            external_ref: external_ref.into(),
            project: None,
            issue_type: None,
            parent_ref: None,
            attach_to: None,
            external_id_field: ext.map(|(f, _)| f.to_string()),
            external_id: ext.map(|(_, v)| v.to_string()),
            update_only: false,
        },
        fields: fields
            .as_object()
            .unwrap()
            .iter()
            .map(|(k, v)| {
                (
                    k.clone(),
                    FieldValue {
                        value: v.clone(),
                        owner: Owner::Jira,
                        changed: true,
                        source_time: now,
                    },
                )
            })
            .collect(),
        transition_to: None,
        source: SourceRef {
            system: System::Jira,
            entity: "issue".into(),
            id: external_ref.into(),
            version: unique("v"),
            commit_time: now,
        },
        delivery: DeliveryMode::Realtime,
    }
}

/// Starts the sink in-process; send on (or drop) the sender to stop it.
pub fn spawn_sink(
    cfg: SfjiraConfig,
) -> (
    tokio::sync::oneshot::Sender<()>,
    tokio::task::JoinHandle<anyhow::Result<sfjira_salesforce_sink::runtime::RunSummary>>,
) {
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let handle = tokio::spawn(async move {
        sfjira_salesforce_sink::runtime::run(&cfg, async {
            let _ = rx.await;
        })
        .await
    });
    (tx, handle)
}

pub async fn stop_sink(
    (tx, handle): (
        tokio::sync::oneshot::Sender<()>,
        tokio::task::JoinHandle<anyhow::Result<sfjira_salesforce_sink::runtime::RunSummary>>,
    ),
) -> sfjira_salesforce_sink::runtime::RunSummary {
    let _ = tx.send(());
    tokio::time::timeout(Duration::from_secs(60), handle)
        .await
        .expect("the sink stops within 60 s")
        .expect("no panic")
        .expect("the sink ends without error")
}

/// Waits until `cond` holds, polling every 200 ms, or panics after `timeout` with `what`.
pub async fn eventually<F, Fut>(timeout: Duration, what: &str, mut cond: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        if cond().await {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}
