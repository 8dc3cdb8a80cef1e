//! Shared helpers for jira-source's tests against the real Kafka broker and registry
//! (`sfjira_tests`) and the in-process Jira sandbox: unique topics per test, a config file,
//! signed deliveries, and reading the canonical topics back (`read_committed`).
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use apache_avro::types::Value as Avro;
use hmac::{Hmac, Mac};
use rdkafka::message::{Message, OwnedMessage};
use reqwest::StatusCode;
use serde_json::{Value, json};
use sfjira_core::avro::AvroCodec;
use sfjira_core::config::SfjiraConfig;
use sfjira_sandbox::clock::SandboxClock;
use sfjira_sandbox::jira::config::JiraConfig;
use sfjira_sandbox::jira::webhooks::DeliveryConfig;
use sfjira_sandbox::jira::{JiraSite, spawn_for_tests};
use sha2::Sha256;

pub const SECRET: &str = "it's-a-test-secret";
pub const EMAIL: &str = "sfjira@example.com";
pub const TOKEN: &str = "sandbox-token";

/// One test's topics (unique prefix) and instance id.
pub struct Stack {
    pub prefix: String,
    pub instance: String,
}

impl Stack {
    pub async fn new() -> Stack {
        let prefix = format!("{}.", sfjira_tests::unique("js"));
        for (t, partitions) in [
            ("jira.issues", 3),
            ("jira.comments", 3),
            ("jira.worklogs", 1),
            ("jira-source.dlq", 1),
            ("sfjira.checkpoints", 1),
        ] {
            sfjira_tests::create_topic(&format!("{prefix}{t}"), partitions).await;
        }
        Stack {
            prefix,
            instance: sfjira_tests::unique("jsi"),
        }
    }

    pub fn topic(&self, base: &str) -> String {
        format!("{}{base}", self.prefix)
    }

    /// The YAML of a deployment on this stack; `jira_source` is the section's body (indented
    /// by the caller's choice of keys), `bootstrap` overrides the broker list.
    pub fn yaml(&self, bootstrap: &str, site_url: &str, extra: &str) -> String {
        format!(
            "service: {{instance_id: {inst}}}\n\
             kafka: {{bootstrap_servers: \"{bootstrap}\", topic_prefix: \"{prefix}\"}}\n\
             registry: {{url: \"{registry}\"}}\n\
             telemetry: {{log_level: warn}}\n\
             http: {{listen: \"127.0.0.1:0\"}}\n\
             jira_source:\n  site_url: \"{site_url}\"\n  email: {EMAIL}\n  api_token: {{env: TEST_JIRA_TOKEN}}\n  projects: [PROJ]\n{extra}",
            inst = self.instance,
            prefix = self.prefix,
            registry = sfjira_tests::registry_url(),
        )
    }

    pub fn write_config(&self, yaml: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(sfjira_tests::unique("js-config"));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("sfjira.yaml");
        std::fs::write(&path, yaml).unwrap();
        path
    }

    pub fn load(&self, yaml: &str) -> SfjiraConfig {
        let path = self.write_config(yaml);
        sfjira_core::config::load_from(Some(&path), env()).expect("test config loads")
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
}

/// The secrets the config names.
pub fn env() -> Vec<(String, String)> {
    vec![
        ("TEST_JIRA_TOKEN".into(), TOKEN.into()),
        ("TEST_WEBHOOK_SECRET".into(), SECRET.into()),
    ]
}

/// A Jira site with fast webhook retries (1–2 s).
pub async fn jira(retries: u32) -> JiraSite {
    let config = JiraConfig {
        webhook_delivery: DeliveryConfig {
            max_retries: retries,
            retry_min_secs: 1.0,
            retry_max_secs: 2.0,
            ..DeliveryConfig::default()
        },
        ..JiraConfig::default()
    };
    spawn_for_tests(config, SandboxClock::real_time())
        .await
        .expect("jira site starts")
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

    /// Registers a signed admin webhook for every event to `url`.
    pub async fn register_webhook(&self, url: &str) {
        let (status, body) = self
            .call(
                reqwest::Method::POST,
                "/rest/webhooks/1.0/webhook",
                Some(json!({"name": "sfjira", "url": url, "events": [], "secret": SECRET})),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
    }

    /// Creates a PROJ task; returns (id, key).
    pub async fn create(&self, summary: &str) -> (String, String) {
        let (status, body) = self
            .call(
                reqwest::Method::POST,
                "/rest/api/3/issue",
                Some(json!({"fields": {"project": {"key": "PROJ"}, "issuetype": {"name": "Task"}, "summary": summary}})),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        (
            body["id"].as_str().unwrap().into(),
            body["key"].as_str().unwrap().into(),
        )
    }

    pub async fn rename(&self, key: &str, summary: &str) {
        let (status, body) = self
            .call(
                reqwest::Method::PUT,
                &format!("/rest/api/3/issue/{key}"),
                Some(json!({"fields": {"summary": summary}})),
            )
            .await;
        assert_eq!(status, StatusCode::NO_CONTENT, "{body}");
    }

    /// The changelog ids of an issue, oldest first.
    pub async fn changelog_ids(&self, key: &str) -> Vec<String> {
        let (status, body) = self
            .call(
                reqwest::Method::GET,
                &format!("/rest/api/3/issue/{key}?expand=changelog&fields=summary"),
                None,
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        let mut ids: Vec<u64> = body["changelog"]["histories"]
            .as_array()
            .unwrap()
            .iter()
            .map(|h| h["id"].as_str().unwrap().parse().unwrap())
            .collect();
        ids.sort();
        ids.into_iter().map(|i| i.to_string()).collect()
    }
}

pub fn sign(body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(SECRET.as_bytes()).unwrap();
    mac.update(body);
    let hex: String = mac
        .finalize()
        .into_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    format!("sha256={hex}")
}

/// POSTs `body` to the receiver with the given signature header and identifier.
pub async fn deliver(
    url: &str,
    body: &[u8],
    signature: Option<&str>,
    identifier: Option<&str>,
) -> StatusCode {
    let mut req = reqwest::Client::new()
        .post(url)
        .header("content-type", "application/json")
        .body(body.to_vec());
    if let Some(s) = signature {
        req = req.header("X-Hub-Signature", s);
    }
    if let Some(i) = identifier {
        req = req.header("X-Atlassian-Webhook-Identifier", i);
    }
    req.send()
        .await
        .map(|r| r.status())
        .unwrap_or(StatusCode::BAD_GATEWAY)
}

/// Waits (bounded) until a signed no-op delivery is acknowledged: Kafka connected, state loaded.
pub async fn wait_ready(url: &str, timeout: Duration) {
    let body = br#"{"webhookEvent":"sfjira_test_ping","timestamp":0}"#;
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        if deliver(url, body, Some(&sign(body)), None).await == StatusCode::OK {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "jira-source at {url} not ready within {timeout:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// A canonical record read back: the decoded value as JSON-ish fields.
#[derive(Debug, Clone)]
pub struct Rec {
    pub key: String,
    pub partition: i32,
    pub offset: i64,
    pub event_type: String,
    pub origin: String,
    pub webhook_id: Option<String>,
    pub changelog_id: Option<String>,
    pub issue_id: String,
    pub summary: Option<String>,
    /// The names of the custom fields the record carries (`issue.custom_fields`).
    pub custom_field_names: Vec<String>,
}

fn get<'a>(v: &'a Avro, name: &str) -> Option<&'a Avro> {
    match v {
        Avro::Record(f) => f.iter().find(|(n, _)| n == name).map(|(_, v)| v),
        _ => None,
    }
}

fn s(v: Option<&Avro>) -> Option<String> {
    match v? {
        Avro::String(s) | Avro::Enum(_, s) => Some(s.clone()),
        Avro::Union(_, b) => s(Some(b)),
        _ => None,
    }
}

pub async fn decode(messages: &[OwnedMessage]) -> Vec<Rec> {
    let codec = AvroCodec::new(&sfjira_tests::registry_config()).unwrap();
    let mut out = Vec::new();
    for m in messages {
        let d = codec
            .decode(m.payload().expect("value"))
            .await
            .expect("decodes");
        let v = &d.value;
        let issue = get(v, "issue");
        out.push(Rec {
            key: String::from_utf8(m.key().unwrap().to_vec()).unwrap(),
            partition: m.partition(),
            offset: m.offset(),
            event_type: s(get(v, "event_type")).unwrap(),
            origin: s(get(v, "origin")).unwrap(),
            webhook_id: s(get(v, "webhook_id")),
            changelog_id: s(get(v, "changelog_id")),
            issue_id: issue
                .and_then(|i| s(get(i, "id")))
                .or_else(|| s(get(v, "issue_id")))
                .unwrap(),
            summary: issue.and_then(|i| s(get(i, "summary"))),
            custom_field_names: match issue.and_then(|i| get(i, "custom_fields")) {
                Some(Avro::Map(m)) => {
                    let mut names: Vec<String> =
                        m.values().filter_map(|f| s(get(f, "name"))).collect();
                    names.sort();
                    names
                }
                _ => Vec::new(),
            },
        });
    }
    out
}

/// Per issue, its records in offset order (one partition per key, so this is publish order).
pub fn by_issue(recs: &[Rec]) -> BTreeMap<String, Vec<Rec>> {
    let mut sorted = recs.to_vec();
    sorted.sort_by_key(|r| (r.partition, r.offset));
    let mut out: BTreeMap<String, Vec<Rec>> = BTreeMap::new();
    for r in sorted {
        out.entry(r.key.clone()).or_default().push(r);
    }
    out
}

/// Asserts each issue's records are: one `jira:issue_created`, then exactly one
/// `jira:issue_updated` per changelog entry of the site, in changelog order (updates without a
/// changelog, such as a comment bumping `updated`, are the caller's to count).
pub async fn assert_one_record_per_change(rest: &Rest, keys: &[(String, String)], recs: &[Rec]) {
    let grouped = by_issue(recs);
    for (id, key) in keys {
        let got = grouped
            .get(id)
            .unwrap_or_else(|| panic!("no records for {key}"));
        let want = rest.changelog_ids(key).await;
        let changes: Vec<String> = got
            .iter()
            .filter(|r| r.event_type == "jira:issue_updated")
            .filter_map(|r| r.changelog_id.clone())
            .collect();
        assert_eq!(got[0].event_type, "jira:issue_created", "{key}: {got:#?}");
        assert_eq!(
            got.iter()
                .filter(|r| r.event_type == "jira:issue_created")
                .count(),
            1,
            "{key}: {got:#?}"
        );
        assert_eq!(
            changes, want,
            "{key}: one record per change, in Jira's order; got {got:#?}"
        );
    }
}
