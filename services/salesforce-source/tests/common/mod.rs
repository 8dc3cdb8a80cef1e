//! What the salesforce-source tests share: an in-process Salesforce org (OAuth, REST, admin,
//! CDC bus and Pub/Sub server) from the sandbox, a deployment config pointing at it and at the
//! real Kafka broker and registry, and readers of what the source published.

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use apache_avro::types::Value as Avro;
use rdkafka::message::{Message, OwnedMessage};
use serde_json::{Value, json};
use sfjira_core::avro::AvroCodec;
use sfjira_core::config::{AuthKind, SalesforceAuth, Secret, SfjiraConfig};
use sfjira_salesforce_source::auth::TokenClient;
use sfjira_sandbox::clock::SandboxClock;
use sfjira_sandbox::salesforce::config::SalesforceConfig;
use sfjira_sandbox::salesforce::wiring::{FullOrg, spawn_full_for_tests};
use sfjira_tests::*;

pub const SECRET_VAR: &str = "SFJIRA_TEST_SF_CLIENT_SECRET";
pub const SECRET: &str = "sfjira-sandbox-consumer-secret";

pub struct Org {
    pub full: FullOrg,
    pub http: reqwest::Client,
}

impl Org {
    pub async fn start() -> Org {
        Org::start_with(SalesforceConfig::default()).await
    }

    pub async fn start_with(config: SalesforceConfig) -> Org {
        let full = spawn_full_for_tests(config, SandboxClock::new(30.0))
            .await
            .expect("the sandbox org starts");
        // With TLS, the admin calls trust the org's generated CA.
        let mut http = reqwest::Client::builder();
        if let Some(ca) = &full.ca_pem_path {
            let pem = std::fs::read(ca).expect("the CA file is written before the org starts");
            http = http.add_root_certificate(reqwest::Certificate::from_pem(&pem).unwrap());
        }
        Org {
            full,
            http: http.build().unwrap(),
        }
    }

    /// The Pub/Sub API's URL (`https://` when the org serves TLS).
    pub fn pubsub_url(&self) -> String {
        match self.full.ca_pem_path {
            Some(_) => format!("https://127.0.0.1:{}", self.full.pubsub_addr.port()),
            None => format!("http://{}", self.full.pubsub_addr),
        }
    }

    pub fn base(&self) -> &str {
        &self.full.http.base_url
    }

    fn admin(&self, path: &str) -> String {
        format!("{}/__admin/salesforce{path}", self.base())
    }

    /// Creates a record as Alice; returns its Id.
    pub async fn create(&self, object: &str, fields: Value) -> String {
        let r: Value = self
            .http
            .post(self.admin(&format!("/as/Alice/sobjects/{object}")))
            .json(&fields)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        r["id"]
            .as_str()
            .unwrap_or_else(|| panic!("create {object} failed: {r}"))
            .to_string()
    }

    pub async fn update(&self, object: &str, id: &str, fields: Value) {
        let r = self
            .http
            .patch(self.admin(&format!("/as/Alice/sobjects/{object}/{id}")))
            .json(&fields)
            .send()
            .await
            .unwrap();
        assert!(
            r.status().is_success(),
            "update {id}: {}",
            r.text().await.unwrap()
        );
    }

    pub async fn delete(&self, object: &str, id: &str) {
        let r = self
            .http
            .delete(self.admin(&format!("/as/Alice/sobjects/{object}/{id}")))
            .send()
            .await
            .unwrap();
        assert!(
            r.status().is_success(),
            "delete {id}: {}",
            r.text().await.unwrap()
        );
    }

    pub async fn faults(&self, faults: Value) {
        let r = self
            .http
            .put(self.admin("/faults"))
            .json(&faults)
            .send()
            .await
            .unwrap();
        assert!(
            r.status().is_success(),
            "faults: {}",
            r.text().await.unwrap()
        );
    }

    pub async fn expire_tokens(&self) {
        let r = self
            .http
            .post(self.admin("/faults/expire-tokens"))
            .send()
            .await
            .unwrap();
        assert!(r.status().is_success());
    }
}

/// A deployment: unique topic prefix with the source's topics created.
pub struct Deployment {
    pub prefix: String,
    pub dir: PathBuf,
    pub config_path: PathBuf,
}

impl Deployment {
    pub async fn new(name: &str, org: &Org, extra: &str) -> Deployment {
        let prefix = format!("{}.", unique(name));
        for (t, p) in [
            ("salesforce.cdc.Account", 3),
            ("salesforce.cdc.Contact", 3),
            ("sfjira.checkpoints", 1),
            ("salesforce-source.dlq", 1),
        ] {
            create_topic(&format!("{prefix}{t}"), p).await;
        }
        let dir = std::env::temp_dir().join(unique("sf-source-test"));
        std::fs::create_dir_all(&dir).unwrap();
        let yaml = format!(
            r#"service: {{instance_id: "{id}"}}
kafka:
  bootstrap_servers: "{bootstrap}"
  topic_prefix: "{prefix}"
registry: {{url: "{registry}"}}
telemetry: {{log_level: "info,sfjira_salesforce_source=debug"}}
http: {{listen: "127.0.0.1:0"}}
salesforce_source:
  login_url: "{base}"
  pubsub_url: "{pubsub}"
{ca}  auth:
    type: client_credentials
    client_id: sfjira-sandbox-consumer-key
    client_secret: {{env: {SECRET_VAR}}}
  channels: [/data/AccountChangeEvent]
  start_from: earliest
  watchdog_secs: 10
{extra}"#,
            id = unique("src"),
            bootstrap = bootstrap(),
            registry = registry_url(),
            base = org.base(),
            pubsub = org.pubsub_url(),
            ca = org
                .full
                .ca_pem_path
                .as_ref()
                .map_or(String::new(), |p| format!(
                    "  tls_ca_file: \"{}\"\n",
                    p.display()
                )),
        );
        let config_path = dir.join("sfjira.yaml");
        std::fs::write(&config_path, yaml).unwrap();
        Deployment {
            prefix,
            dir,
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
}

/// Starts the source in-process; drop or send on the returned sender to stop it.
pub fn spawn_source(
    cfg: SfjiraConfig,
) -> (
    tokio::sync::oneshot::Sender<()>,
    tokio::task::JoinHandle<anyhow::Result<()>>,
) {
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let handle = tokio::spawn(async move {
        sfjira_salesforce_source::runtime::run(&cfg, async {
            let _ = rx.await;
        })
        .await
    });
    (tx, handle)
}

/// Stops an in-process source and checks it ended cleanly.
pub async fn stop_source(
    (tx, handle): (
        tokio::sync::oneshot::Sender<()>,
        tokio::task::JoinHandle<anyhow::Result<()>>,
    ),
) {
    let _ = tx.send(());
    tokio::time::timeout(Duration::from_secs(30), handle)
        .await
        .expect("the source stops within 30 s")
        .expect("no panic")
        .expect("the source ends without error");
}

/// One decoded change record.
#[derive(Debug, Clone)]
pub struct Rec {
    pub key: String,
    pub partition: i32,
    pub offset: i64,
    pub value: Value,
}

impl Rec {
    pub fn header(&self, k: &str) -> &Value {
        &self.value["ChangeEventHeader"][k]
    }
    pub fn change_type(&self) -> &str {
        self.header("changeType").as_str().unwrap_or("")
    }
    pub fn strings(&self, k: &str) -> Vec<String> {
        self.header(k)
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|v| v.as_str().map(String::from))
                    .collect()
            })
            .unwrap_or_default()
    }
}

/// Reads `topic` (read_committed) until `count` records or `timeout`, and decodes them.
pub async fn read_changes(topic: &str, count: usize, timeout: Duration) -> Vec<Rec> {
    let codec = AvroCodec::new(&registry_config()).unwrap();
    let mut out = Vec::new();
    for m in read_all(topic, count, timeout).await {
        out.push(decode(&codec, &m).await);
    }
    out.sort_by_key(|r| (r.partition, r.offset));
    out
}

async fn decode(codec: &AvroCodec, m: &OwnedMessage) -> Rec {
    let d = codec
        .decode(m.payload().expect("a value"))
        .await
        .expect("the value decodes through the registry");
    Rec {
        key: String::from_utf8(m.key().unwrap().to_vec()).unwrap(),
        partition: m.partition(),
        offset: m.offset(),
        value: to_json(d.value),
    }
}

pub fn to_json(v: Avro) -> Value {
    match v {
        Avro::Null => Value::Null,
        Avro::Boolean(b) => json!(b),
        Avro::Int(i) => json!(i),
        Avro::Long(i) => json!(i),
        Avro::Float(f) => json!(f),
        Avro::Double(f) => json!(f),
        Avro::String(s) | Avro::Enum(_, s) => json!(s),
        Avro::Union(_, b) => to_json(*b),
        Avro::Array(a) => Value::Array(a.into_iter().map(to_json).collect()),
        Avro::Record(fields) => {
            Value::Object(fields.into_iter().map(|(k, v)| (k, to_json(v))).collect())
        }
        other => json!(format!("{other:?}")),
    }
}

/// Waits until `topic` holds at least `count` committed records, or panics after `timeout`.
pub async fn wait_for(topic: &str, count: usize, timeout: Duration) -> Vec<Rec> {
    let recs = read_changes(topic, count, timeout).await;
    assert!(
        recs.len() >= count,
        "expected at least {count} records on {topic} within {timeout:?}, got {}",
        recs.len()
    );
    recs
}

/// Records per key in offset order, and a check that no (key, replay id) repeats.
pub fn assert_exactly_once(recs: &[Rec]) -> BTreeMap<String, Vec<Rec>> {
    let mut seen = std::collections::HashSet::new();
    let mut by_key: BTreeMap<String, Vec<Rec>> = BTreeMap::new();
    for r in recs {
        let replay = r.value["replay_id"].as_str().unwrap().to_string();
        assert!(
            seen.insert((r.key.clone(), replay.clone())),
            "duplicate record {} replay {replay}",
            r.key
        );
        by_key.entry(r.key.clone()).or_default().push(r.clone());
    }
    by_key
}

/// Creates `n` Accounts in one Salesforce transaction (sObject Collections, allOrNone).
pub async fn create_in_one_transaction(org: &Org, n: usize, tag: &str) -> Vec<String> {
    let session = TokenClient::new(
        org.base(),
        SalesforceAuth {
            kind: AuthKind::ClientCredentials,
            client_id: "sfjira-sandbox-consumer-key".into(),
            client_secret: Some(Secret::new(SECRET)),
            username: None,
            private_key: None,
            audience: String::new(),
        },
        None,
    )
    .login()
    .await
    .unwrap();
    let records: Vec<_> = (0..n)
        .map(|i| json!({"attributes": {"type": "Account"}, "Name": format!("{tag} {i}")}))
        .collect();
    let r = org
        .http
        .post(format!(
            "{}/services/data/v62.0/composite/sobjects",
            org.base()
        ))
        .bearer_auth(&session.access_token)
        .json(&json!({"allOrNone": true, "records": records}))
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success());
    let body: Value = r.json().await.unwrap();
    body.as_array()
        .expect("a collections result array")
        .iter()
        .map(|x| x["id"].as_str().expect("created").to_string())
        .collect()
}
