//! Shared helpers for the Salesforce black-box tests (a module of each `salesforce_*.rs`
//! test; in a folder so Cargo does not build it as a test of its own). Starts the org
//! in-process on 127.0.0.1:0 with a recording change sink, gets tokens, signs JWT assertions
//! with the test-only key in `tests/fixtures/`.
#![allow(dead_code)]

use std::sync::{Arc, Mutex};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use rsa::pkcs1v15::SigningKey;
use rsa::pkcs8::DecodePrivateKey;
use rsa::signature::{SignatureEncoding, Signer};
use serde_json::Value;
use sfjira_sandbox::clock::SandboxClock;
use sfjira_sandbox::salesforce::changes::{ChangeSink, CommittedTransaction};
use sfjira_sandbox::salesforce::config::SalesforceConfig;
use sfjira_sandbox::salesforce::faults::SalesforceFaults;
use sfjira_sandbox::salesforce::{SpawnedOrg, spawn_for_tests};

pub const TEST_KEY: &str = include_str!("../fixtures/salesforce_test_key.pem");
pub const TEST_CERT: &str = include_str!("../fixtures/salesforce_test_cert.pem");
pub const OTHER_KEY: &str = include_str!("../fixtures/salesforce_other_key.pem");
pub const CONSUMER_KEY: &str = "test-consumer-key";
pub const CONSUMER_SECRET: &str = "test-consumer-secret";
pub const V: &str = "/services/data/v62.0";

/// Remembers every committed transaction, in order.
#[derive(Default)]
pub struct Recording(pub Mutex<Vec<CommittedTransaction>>);

impl ChangeSink for Recording {
    fn committed(&self, txn: CommittedTransaction) {
        self.0.lock().unwrap().push(txn);
    }
}

impl Recording {
    pub fn take(&self) -> Vec<CommittedTransaction> {
        std::mem::take(&mut *self.0.lock().unwrap())
    }
}

pub struct TestOrg {
    pub base: String,
    pub http: reqwest::Client,
    pub sink: Arc<Recording>,
    pub org: SpawnedOrg,
}

pub fn config() -> SalesforceConfig {
    let mut c = SalesforceConfig::default();
    c.connected_app.consumer_key = CONSUMER_KEY.into();
    c.connected_app.consumer_secret = CONSUMER_SECRET.into();
    c.connected_app.certificate_pem = Some(TEST_CERT.into());
    c
}

pub async fn start_with(config: SalesforceConfig, clock: SandboxClock) -> TestOrg {
    let sink = Arc::new(Recording::default());
    let org = spawn_for_tests(
        config,
        "127.0.0.1:0".parse().unwrap(),
        clock,
        sink.clone(),
        Arc::new(SalesforceFaults::new()),
    )
    .await
    .expect("org starts");
    TestOrg {
        base: org.base_url.clone(),
        http: reqwest::Client::new(),
        sink,
        org,
    }
}

pub async fn start() -> TestOrg {
    start_with(config(), SandboxClock::real_time()).await
}

/// `application/x-www-form-urlencoded` / query-string encoding.
pub fn encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

pub fn form(pairs: &[(&str, &str)]) -> String {
    pairs
        .iter()
        .map(|(k, v)| format!("{}={}", encode(k), encode(v)))
        .collect::<Vec<_>>()
        .join("&")
}

/// An RS256 JWT over `claims`, signed with `key_pem` (PKCS#8).
pub fn jwt(key_pem: &str, claims: &Value) -> String {
    let key = rsa::RsaPrivateKey::from_pkcs8_pem(key_pem).expect("test key");
    let signer = SigningKey::<sha2::Sha256>::new(key);
    let head = URL_SAFE_NO_PAD.encode(br#"{"alg":"RS256"}"#);
    let body = URL_SAFE_NO_PAD.encode(claims.to_string());
    let signed = format!("{head}.{body}");
    let sig = signer.sign(signed.as_bytes()).to_vec();
    format!("{signed}.{}", URL_SAFE_NO_PAD.encode(sig))
}

/// (status, content-type, body text).
pub async fn parts(resp: reqwest::Response) -> (u16, String, String) {
    let status = resp.status().as_u16();
    let ct = resp
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_string())
        .unwrap_or_default();
    (status, ct, resp.text().await.unwrap())
}

impl TestOrg {
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    pub async fn token_request(&self, pairs: &[(&str, &str)]) -> reqwest::Response {
        self.http
            .post(self.url("/services/oauth2/token"))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(form(pairs))
            .send()
            .await
            .unwrap()
    }

    /// A client-credentials token (runs as the integration user).
    pub async fn token(&self) -> String {
        let resp = self
            .token_request(&[
                ("grant_type", "client_credentials"),
                ("client_id", CONSUMER_KEY),
                ("client_secret", CONSUMER_SECRET),
            ])
            .await;
        assert_eq!(resp.status(), 200);
        let body: Value = resp.json().await.unwrap();
        body["access_token"].as_str().unwrap().to_string()
    }

    /// A REST call with `token`, JSON body, extra headers; returns (status, body text).
    pub async fn call(
        &self,
        token: &str,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
        headers: &[(&str, &str)],
    ) -> (u16, String) {
        let mut req = self.http.request(method, self.url(path)).bearer_auth(token);
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        if let Some(b) = body {
            req = req
                .header("content-type", "application/json")
                .body(b.to_string());
        }
        let resp = req.send().await.unwrap();
        let status = resp.status().as_u16();
        (status, resp.text().await.unwrap())
    }

    pub async fn json(
        &self,
        token: &str,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> (u16, Value) {
        let (status, text) = self.call(token, method, path, body, &[]).await;
        let v = if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).unwrap_or_else(|e| panic!("{e}: {text}"))
        };
        (status, v)
    }
}
