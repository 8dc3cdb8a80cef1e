//! Shared helpers for the black-box Jira tests: start a site in-process on `127.0.0.1:0` and
//! call it over HTTP as the integration account (Basic auth) unless told otherwise.
#![allow(dead_code)]

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use sfjira_sandbox::clock::SandboxClock;
use sfjira_sandbox::jira::config::JiraConfig;
use sfjira_sandbox::jira::{JiraSite, spawn_for_tests};

pub const EMAIL: &str = "sfjira@example.com";
pub const TOKEN: &str = "sandbox-token";

pub struct TestSite {
    pub site: JiraSite,
    pub base: String,
    pub http: reqwest::Client,
}

pub async fn start() -> TestSite {
    start_with(JiraConfig::default(), SandboxClock::real_time()).await
}

pub async fn start_with(config: JiraConfig, clock: SandboxClock) -> TestSite {
    let site = spawn_for_tests(config, clock)
        .await
        .expect("jira site starts");
    let base = site.base_url();
    TestSite {
        site,
        base,
        http: reqwest::Client::new(),
    }
}

/// A one-paragraph ADF document.
pub fn adf(text: &str) -> Value {
    json!({"type": "doc", "version": 1, "content": [{"type": "paragraph", "content": [{"type": "text", "text": text}]}]})
}

impl TestSite {
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// A request as the integration account.
    pub async fn call(
        &self,
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let mut req = self
            .http
            .request(method, self.url(path))
            .basic_auth(EMAIL, Some(TOKEN));
        if let Some(b) = body {
            req = req.json(&b);
        }
        read(req.send().await.expect("request sent")).await
    }

    /// A request with no credentials (admin API).
    pub async fn admin(
        &self,
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let mut req = self.http.request(method, self.url(path));
        if let Some(b) = body {
            req = req.json(&b);
        }
        read(req.send().await.expect("request sent")).await
    }

    pub async fn get(&self, path: &str) -> (StatusCode, Value) {
        self.call(Method::GET, path, None).await
    }

    pub async fn post(&self, path: &str, body: Value) -> (StatusCode, Value) {
        self.call(Method::POST, path, Some(body)).await
    }

    pub async fn put(&self, path: &str, body: Value) -> (StatusCode, Value) {
        self.call(Method::PUT, path, Some(body)).await
    }

    /// Creates a Task in PROJ and returns its key.
    pub async fn create_task(&self, summary: &str) -> String {
        let (status, body) = self
            .post("/rest/api/3/issue", json!({"fields": {"project": {"key": "PROJ"}, "issuetype": {"name": "Task"}, "summary": summary}}))
            .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        body["key"].as_str().unwrap().to_string()
    }
}

pub async fn read(resp: reqwest::Response) -> (StatusCode, Value) {
    let status = resp.status();
    let text = resp.text().await.expect("body read");
    let v = if text.is_empty() {
        Value::Null
    } else {
        serde_json::from_str(&text).unwrap_or(Value::String(text))
    };
    (status, v)
}
