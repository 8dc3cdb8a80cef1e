//! `sfjira backfill jira` through the binary as an operator runs it, against the in-process Jira
//! sandbox and the real broker and registry: a finished backfill publishes every issue once and
//! is not run again. (Interruption and resume: jira-source's `tests/backfill.rs`.)

use std::process::Command;
use std::time::Duration;

use serde_json::json;
use sfjira_sandbox::clock::SandboxClock;
use sfjira_sandbox::jira::config::JiraConfig;
use sfjira_sandbox::jira::spawn_for_tests;
use sfjira_tests::*;

#[tokio::test(flavor = "multi_thread")]
async fn backfill_jira_publishes_a_project_once() {
    let prefix = format!("{}.", unique("bfjcli"));
    for (t, p) in [
        ("jira.issues", 3),
        ("jira.comments", 3),
        ("jira.worklogs", 1),
        ("jira-source.dlq", 1),
        ("sfjira.checkpoints", 1),
    ] {
        create_topic(&format!("{prefix}{t}"), p).await;
    }
    let mut config = JiraConfig::default();
    config.rate_limits.enabled = false;
    let site = spawn_for_tests(config, SandboxClock::real_time())
        .await
        .expect("jira site starts");
    let http = reqwest::Client::new();
    for i in 0..30 {
        let resp = http
            .post(format!("{}/rest/api/3/issue", site.base_url()))
            .basic_auth("sfjira@example.com", Some("sandbox-token"))
            .json(&json!({"fields": {"project": {"key": "PROJ"}, "issuetype": {"name": "Task"}, "summary": format!("cli {i}")}}))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), reqwest::StatusCode::CREATED);
    }
    let dir = std::env::temp_dir().join(unique("sfjira-bfj"));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("sfjira.yaml");
    std::fs::write(
        &path,
        format!(
            "service: {{instance_id: {inst}}}\nkafka: {{bootstrap_servers: \"{}\", topic_prefix: \"{prefix}\"}}\nregistry: {{url: \"{}\"}}\ntelemetry: {{log_level: warn}}\njira_source:\n  site_url: \"{}\"\n  email: sfjira@example.com\n  api_token: {{env: TEST_BFJ_TOKEN}}\n  projects: [PROJ]\n  poll_page_size: 10\n",
            bootstrap(),
            registry_url(),
            site.base_url(),
            inst = unique("bfj"),
        ),
    )
    .unwrap();
    let run = |path: std::path::PathBuf| {
        tokio::task::spawn_blocking(move || {
            let out = Command::new(env!("CARGO_BIN_EXE_sfjira"))
                .arg("--config")
                .arg(&path)
                .args(["backfill", "jira", "--project", "PROJ"])
                .env("TEST_BFJ_TOKEN", "sandbox-token")
                .output()
                .expect("sfjira runs");
            (
                out.status.success(),
                String::from_utf8_lossy(&out.stdout).into_owned(),
                String::from_utf8_lossy(&out.stderr).into_owned(),
            )
        })
    };
    let (ok, out, err) = run(path.clone()).await.unwrap();
    assert!(ok, "{out}\n{err}");
    assert!(
        out.contains("done") && out.contains("30 issues read, 30 records published"),
        "{out}"
    );
    let (ok, out, err) = run(path).await.unwrap();
    assert!(ok && out.contains("already finished"), "{out}\n{err}");
    let issues = read_all(&format!("{prefix}jira.issues"), 31, Duration::from_secs(10)).await;
    assert_eq!(issues.len(), 30);
}
