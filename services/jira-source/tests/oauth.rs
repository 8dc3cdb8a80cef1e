//! OAuth 2.0 (3LO) with rotating refresh tokens against the sandbox's token endpoint: the
//! poller works on bearer tokens through `/ex/jira/<cloud id>`, the rotated refresh token is
//! kept in the token store, and a restart after the 10-minute reuse leeway (sandbox time) goes
//! on with the stored token — using the configured, superseded one would revoke the grant.

mod support;

use std::time::{Duration, Instant};

use serde_json::{Value, json};
use sfjira_jira_source::service;
use sfjira_sandbox::clock::SandboxClock;
use sfjira_sandbox::jira::config::JiraConfig;
use support::*;

const CLIENT: &str = "sfjira-sandbox-client";
const CLIENT_SECRET: &str = "sfjira-sandbox-secret";

async fn post(url: &str, body: Value) -> (u16, Value) {
    let resp = reqwest::Client::new()
        .post(url)
        .json(&body)
        .send()
        .await
        .unwrap();
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap_or(Value::Null))
}

async fn ready(running: &service::Running) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while !running.publisher.is_ready().await {
        assert!(Instant::now() < deadline, "never connected to Kafka");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn rotating_refresh_tokens_survive_a_restart() {
    let stack = Stack::new().await;
    // 120×: access tokens live 30 s of wall time, the reuse leeway 5 s.
    let site =
        sfjira_sandbox::jira::spawn_for_tests(JiraConfig::default(), SandboxClock::new(120.0))
            .await
            .unwrap();
    let base = site.base_url();
    let rest = Rest::new(&site);
    let (status, code) = post(
        &format!("{base}/__admin/jira/oauth/code"),
        json!({"client_id": CLIENT, "user": EMAIL, "scope": "read:jira-work offline_access"}),
    )
    .await;
    assert_eq!(status, 200, "{code}");
    let (status, grant) = post(
        &format!("{base}/oauth/token"),
        json!({"grant_type": "authorization_code", "client_id": CLIENT, "client_secret": CLIENT_SECRET, "code": code["code"]}),
    )
    .await;
    assert_eq!(status, 200, "{grant}");
    let first_refresh = grant["refresh_token"].as_str().unwrap().to_string();

    let store = std::env::temp_dir()
        .join(sfjira_tests::unique("jira-oauth"))
        .with_extension("json");
    let yaml = format!(
        "service: {{instance_id: {inst}}}\n\
         kafka: {{bootstrap_servers: \"{bootstrap}\", topic_prefix: \"{prefix}\"}}\n\
         registry: {{url: \"{registry}\"}}\n\
         telemetry: {{log_level: warn}}\n\
         jira_source:\n  site_url: \"{base}\"\n  projects: [PROJ]\n  poll_interval_ms: 500\n  poll_overlap_ms: 7200000\n\
         \x20 oauth: {{client_id: {CLIENT}, client_secret: {{env: OAUTH_SECRET}}, refresh_token: {{env: OAUTH_REFRESH}}, \
         token_store: \"{store}\", token_url: \"{base}/oauth/token\", api_url: \"{base}\"}}\n",
        inst = stack.instance,
        bootstrap = sfjira_tests::bootstrap(),
        prefix = stack.prefix,
        registry = sfjira_tests::registry_url(),
        store = store.display(),
    );
    let path = stack.write_config(&yaml);
    let env = vec![
        ("OAUTH_SECRET".to_string(), CLIENT_SECRET.to_string()),
        ("OAUTH_REFRESH".to_string(), first_refresh.clone()),
    ];
    let cfg = sfjira_core::config::load_from(Some(&path), env).expect("config loads");

    let running = service::start(&cfg).await.expect("starts");
    ready(&running).await;
    rest.create("over oauth").await;
    assert_eq!(
        stack
            .records("jira.issues", 1, Duration::from_secs(30))
            .await
            .len(),
        1
    );
    let stored: Value =
        serde_json::from_slice(&std::fs::read(&store).expect("the token store is written"))
            .unwrap();
    let second_refresh = stored["refresh_token"].as_str().unwrap().to_string();
    assert_ne!(second_refresh, first_refresh, "the refresh token rotated");
    running.stop().await;

    // Past the leeway: the configured token is superseded for good.
    tokio::time::sleep(Duration::from_secs(6)).await;
    let running = service::start(&cfg).await.expect("restarts");
    ready(&running).await;
    rest.create("after the restart").await;
    let recs = decode(
        &stack
            .records("jira.issues", 2, Duration::from_secs(30))
            .await,
    )
    .await;
    assert_eq!(
        recs.len(),
        2,
        "the restarted service still reads Jira: {recs:#?}"
    );
    running.stop().await;

    // What the store prevented: reusing the first token now is refused (and revokes the grant).
    let (status, body) = post(
        &format!("{base}/oauth/token"),
        json!({"grant_type": "refresh_token", "client_id": CLIENT, "client_secret": CLIENT_SECRET, "refresh_token": first_refresh}),
    )
    .await;
    assert_eq!(status, 403, "{body}");
    assert_eq!(body["error"], "invalid_grant");
    let _ = std::fs::remove_file(store);
}
