//! Shared helpers for jira-sink's tests: unique topics on the real broker, commands encoded
//! with the real registry, the in-process Jira sandbox, an in-process sink (or the binary), and
//! reading Jira back through its REST API.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use chrono::{DateTime, Utc};
use rdkafka::message::{Headers, Message, OwnedMessage};
use reqwest::StatusCode;
use serde_json::{Value, json};
use sfjira_core::avro::AvroCodec;
use sfjira_core::command::{
    Command, CommandKind, DeliveryMode, FieldValue, Owner, SourceRef, System, TargetRef,
};
use sfjira_core::config::SfjiraConfig;
use sfjira_core::kafka::{IdempotentProducer, OutRecord};
use sfjira_jira_sink::runtime::RunSummary;
use sfjira_sandbox::clock::SandboxClock;
use sfjira_sandbox::jira::config::JiraConfig;
use sfjira_sandbox::jira::{JiraSite, spawn_for_tests};

pub const EMAIL: &str = "sfjira@example.com";
pub const TOKEN: &str = "sandbox-token";

/// One test's topics (unique prefix) and instance id.
pub struct Stack {
    pub prefix: String,
    pub instance: String,
}

impl Stack {
    pub async fn new() -> Stack {
        let prefix = format!("{}.", sfjira_tests::unique("jsk"));
        for (t, partitions) in [
            ("jira.commands", 3),
            ("sfjira.links", 1),
            ("sfjira.audit", 1),
            ("jira-sink.dlq", 1),
        ] {
            sfjira_tests::create_topic(&format!("{prefix}{t}"), partitions).await;
        }
        Stack {
            prefix,
            instance: sfjira_tests::unique("jski"),
        }
    }

    pub fn topic(&self, base: &str) -> String {
        format!("{}{base}", self.prefix)
    }

    /// A deployment on this stack; `extra` holds `jira_sink` keys (`"  key: value\n"` lines)
    /// that override the test defaults or add to them.
    pub fn yaml(&self, site_url: &str, extra: &str) -> String {
        let overridden: Vec<&str> = extra
            .lines()
            .filter_map(|l| l.trim().split(':').next())
            .collect();
        let defaults = [
            ("linger_ms", "100".to_string()),
            ("reconcile_settle_ms", "0".to_string()),
            ("link_wait_ms", "3000".to_string()),
            ("retry_initial_delay_ms", "100".to_string()),
            ("retry_max_delay_ms", "2000".to_string()),
            ("rate_limit_per_second", "200".to_string()),
            ("rate_limit_burst", "50".to_string()),
            ("write_rate_limit_per_second", "100".to_string()),
            ("group_id", format!("\"{}jira-sink\"", self.prefix)),
        ];
        let mut section = String::new();
        for (k, v) in defaults.iter().filter(|(k, _)| !overridden.contains(k)) {
            section.push_str(&format!("  {k}: {v}\n"));
        }
        section.push_str(extra);
        format!(
            "service: {{instance_id: {inst}}}\n\
             kafka: {{bootstrap_servers: \"{bootstrap}\", topic_prefix: \"{prefix}\"}}\n\
             registry: {{url: \"{registry}\"}}\n\
             telemetry: {{log_level: warn}}\n\
             http: {{listen: \"127.0.0.1:0\"}}\n\
             jira_sink:\n  site_url: \"{site_url}\"\n  email: {EMAIL}\n  api_token: {{env: TEST_JIRA_TOKEN}}\n{section}",
            inst = self.instance,
            prefix = self.prefix,
            bootstrap = sfjira_tests::bootstrap(),
            registry = sfjira_tests::registry_url(),
        )
    }

    pub fn write_config(&self, yaml: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(sfjira_tests::unique("jsk-config"));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("sfjira.yaml");
        std::fs::write(&path, yaml).unwrap();
        path
    }

    pub fn load(&self, yaml: &str) -> SfjiraConfig {
        let path = self.write_config(yaml);
        sfjira_core::config::load_from(Some(&path), env()).expect("test config loads")
    }

    /// Produces `cmds` to `jira.commands`, Avro through the registry, keyed by reference.
    pub async fn send(&self, cmds: &[Command]) {
        let topic = self.topic("jira.commands");
        let codec = AvroCodec::new(&sfjira_tests::registry_config()).unwrap();
        let writer = codec
            .register(&topic, sfjira_core::command::avro::schema())
            .await
            .unwrap();
        let producer = IdempotentProducer::new(&sfjira_tests::client_config()).unwrap();
        for c in cmds {
            let rec = OutRecord::new(topic.clone())
                .key(c.target.external_ref.clone())
                .payload(codec.encode(&writer, c.to_avro()).unwrap())
                .header("sfjira.command-id", c.command_id.clone());
            producer.send(&rec).await.unwrap();
        }
    }

    /// Produces `cmds` to one partition of `jira.commands`, in order.
    pub async fn send_to(&self, partition: i32, cmds: &[Command]) {
        let topic = self.topic("jira.commands");
        let codec = AvroCodec::new(&sfjira_tests::registry_config()).unwrap();
        let writer = codec
            .register(&topic, sfjira_core::command::avro::schema())
            .await
            .unwrap();
        let producer = IdempotentProducer::new(&sfjira_tests::client_config()).unwrap();
        for c in cmds {
            let mut rec = OutRecord::new(topic.clone())
                .key(c.target.external_ref.clone())
                .payload(codec.encode(&writer, c.to_avro()).unwrap());
            rec.partition = Some(partition);
            producer.send(&rec).await.unwrap();
        }
    }

    /// Produces raw bytes (a record that is not a command).
    pub async fn send_raw(&self, key: &str, payload: &[u8]) {
        let producer = IdempotentProducer::new(&sfjira_tests::client_config()).unwrap();
        let rec = OutRecord::new(self.topic("jira.commands"))
            .key(key.to_string())
            .payload(payload.to_vec());
        producer.send(&rec).await.unwrap();
    }

    /// Every record of `base` (read_committed), waiting up to `timeout` for `at_least`.
    pub async fn records(
        &self,
        base: &str,
        at_least: usize,
        timeout: Duration,
    ) -> Vec<OwnedMessage> {
        sfjira_tests::read_all(&self.topic(base), at_least, timeout).await
    }

    /// The audit entries, waiting for at least `n`.
    pub async fn audit(&self, n: usize, timeout: Duration) -> Vec<sfjira_core::audit::AuditEntry> {
        self.records("sfjira.audit", n, timeout)
            .await
            .iter()
            .filter_map(|m| m.payload().and_then(sfjira_core::audit::AuditEntry::parse))
            .collect()
    }
}

pub fn header(m: &OwnedMessage, name: &str) -> Option<String> {
    m.headers()?
        .iter()
        .find(|h| h.key == name)
        .and_then(|h| h.value)
        .map(|v| String::from_utf8_lossy(v).into_owned())
}

pub fn env() -> Vec<(String, String)> {
    vec![("TEST_JIRA_TOKEN".into(), TOKEN.into())]
}

/// A Jira site.
pub async fn jira(config: JiraConfig) -> JiraSite {
    spawn_for_tests(config, SandboxClock::real_time())
        .await
        .expect("jira site starts")
}

/// An in-process sink: stop it with the sender; the handle gives its summary.
pub struct Running {
    pub sink: std::sync::Arc<sfjira_jira_sink::sink::Sink>,
    pub stop: tokio::sync::oneshot::Sender<()>,
    pub handle: tokio::task::JoinHandle<anyhow::Result<RunSummary>>,
}

impl Running {
    pub async fn start(cfg: &SfjiraConfig) -> Running {
        let runtime = sfjira_jira_sink::service::build(cfg)
            .await
            .expect("sink builds");
        let sink = runtime.sink.clone();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let handle = tokio::spawn(runtime.run(async {
            let _ = stopped.await;
        }));
        Running { sink, stop, handle }
    }

    pub async fn stop(self) -> RunSummary {
        let _ = self.stop.send(());
        self.handle.await.unwrap().unwrap()
    }
}

pub fn t(ms: i64) -> DateTime<Utc> {
    DateTime::from_timestamp_millis(1_790_000_000_000 + ms).unwrap()
}

pub fn fv(value: Value, changed: bool, at: i64) -> FieldValue {
    FieldValue {
        value,
        owner: Owner::Salesforce,
        changed,
        source_time: t(at),
    }
}

/// A command of `kind` for `reference` with `fields` (all changed, owned by Salesforce).
pub fn cmd(kind: CommandKind, reference: &str, version: u64, fields: &[(&str, Value)]) -> Command {
    Command {
        command_id: format!("{reference}#{version}#{}", uuid::Uuid::new_v4().simple()),
        flow: "test-flow".into(),
        kind,
        target: TargetRef {
            system: System::Jira,
            entity: "issue".into(),
            external_ref: reference.into(),
            project: Some("PROJ".into()),
            issue_type: Some("Task".into()),
            parent_ref: None,
            attach_to: None,
            external_id_field: None,
            external_id: None,
            update_only: false,
        },
        fields: fields
            .iter()
            .map(|(k, v)| (k.to_string(), fv(v.clone(), true, version as i64 * 1000)))
            .collect::<BTreeMap<_, _>>(),
        transition_to: None,
        source: SourceRef {
            system: System::Salesforce,
            entity: "Opportunity".into(),
            id: reference.into(),
            version: version.to_string(),
            commit_time: t(version as i64 * 1000),
        },
        delivery: DeliveryMode::Realtime,
    }
}

pub fn upsert(reference: &str, version: u64, fields: &[(&str, Value)]) -> Command {
    cmd(CommandKind::Upsert, reference, version, fields)
}

/// A comment (or worklog) command on the issue of `issue_ref`.
pub fn attached(
    kind: CommandKind,
    reference: &str,
    issue_ref: &str,
    fields: &[(&str, Value)],
) -> Command {
    let mut c = cmd(kind, reference, 1, fields);
    c.target.entity = if kind == CommandKind::Comment {
        "comment"
    } else {
        "worklog"
    }
    .into();
    c.target.attach_to = Some(issue_ref.into());
    c.target.project = None;
    c.target.issue_type = None;
    c
}

pub struct Rest {
    pub base: String,
    pub http: reqwest::Client,
}

impl Rest {
    pub fn new(site: &JiraSite) -> Rest {
        Rest {
            base: site.base_url(),
            http: reqwest::Client::new(),
        }
    }

    pub async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let mut req = self
            .http
            .request(method, format!("{}{path}", self.base))
            .basic_auth(EMAIL, Some(TOKEN));
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = req.send().await.expect("jira answers");
        let status = resp.status();
        let text = resp.text().await.unwrap_or_default();
        (status, serde_json::from_str(&text).unwrap_or(Value::Null))
    }

    pub async fn get(&self, path: &str) -> Value {
        let (s, v) = self.call(reqwest::Method::GET, path, None).await;
        assert_eq!(s, StatusCode::OK, "GET {path}: {v}");
        v
    }

    pub async fn put_admin(&self, path: &str, body: Value) {
        let resp = self
            .http
            .put(format!("{}{path}", self.base))
            .json(&body)
            .send()
            .await
            .unwrap();
        assert!(resp.status().is_success(), "{path}: {}", resp.status());
    }

    pub async fn post_admin(&self, path: &str, body: Value) {
        let resp = self
            .http
            .post(format!("{}{path}", self.base))
            .json(&body)
            .send()
            .await
            .unwrap();
        assert!(resp.status().is_success(), "{path}: {}", resp.status());
    }

    /// Issues carrying the sink's marker for `reference` (every one, to count duplicates).
    pub async fn issues_for(&self, reference: &str) -> Vec<Value> {
        let marker = sfjira_jira_sink::fields::marker_label(reference);
        self.search(&format!("labels = \"{marker}\"")).await
    }

    /// Every issue matching `jql` with all fields.
    pub async fn search(&self, jql: &str) -> Vec<Value> {
        let mut out = Vec::new();
        let mut token: Option<String> = None;
        loop {
            let mut body = json!({"jql": jql, "fields": ["*all"], "maxResults": 5000});
            if let Some(t) = &token {
                body["nextPageToken"] = json!(t);
            }
            let (s, v) = self
                .call(reqwest::Method::POST, "/rest/api/3/search/jql", Some(body))
                .await;
            assert_eq!(s, StatusCode::OK, "{v}");
            out.extend(v["issues"].as_array().cloned().unwrap_or_default());
            match v["nextPageToken"].as_str() {
                Some(t) if v["isLast"] != json!(true) => token = Some(t.to_string()),
                _ => return out,
            }
        }
    }

    /// The one issue of `reference`, waiting up to `timeout` for it (panics on duplicates).
    pub async fn one_issue(&self, reference: &str, timeout: Duration) -> Value {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let found = self.issues_for(reference).await;
            assert!(found.len() <= 1, "duplicates for {reference}: {found:?}");
            if let Some(i) = found.into_iter().next() {
                return i;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "no issue for {reference}"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
}

/// Polls `check` until it is true or `timeout` passes.
pub async fn eventually<F, Fut>(timeout: Duration, mut check: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        if check().await {
            return true;
        }
        if tokio::time::Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}
