//! Crash injection at each step of a create — before the call (intent durable), after Jira's
//! 201 before the link is recorded, after the link is committed — then a restart of the
//! binary: exactly one issue per reference, every time.

mod support;

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::json;
use support::*;

fn spawn(config: &std::path::Path, crash_at: Option<&str>) -> Child {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_sfjira-jira-sink"));
    cmd.arg("--config")
        .arg(config)
        .stdout(Stdio::null())
        .stderr(Stdio::inherit());
    for (k, v) in env() {
        cmd.env(k, v);
    }
    match crash_at {
        Some(at) => cmd.env("SFJIRA_JIRA_SINK_CRASH_AT", at),
        None => cmd.env_remove("SFJIRA_JIRA_SINK_CRASH_AT"),
    };
    cmd.spawn().expect("the binary starts")
}

/// Kills the child on drop, so a failing test leaves no process behind.
struct Guard(Child);

impl Drop for Guard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

async fn exits_within(child: &mut Guard, timeout: Duration) -> bool {
    let deadline = tokio::time::Instant::now() + timeout;
    while tokio::time::Instant::now() < deadline {
        if child.0.try_wait().unwrap().is_some() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    false
}

async fn crash_then_restart(point: &str) {
    let stack = Stack::new().await;
    let site = jira(Default::default()).await;
    let rest = Rest::new(&site);
    let config = stack.write_config(&stack.yaml(&site.base_url(), ""));
    let refs: Vec<String> = (0..5)
        .map(|i| format!("salesforce:Opportunity:{}-{i}", sfjira_tests::unique("006")))
        .collect();
    let cmds: Vec<_> = refs
        .iter()
        .map(|r| upsert(r, 1, &[("summary", json!(format!("deal {r}")))]))
        .collect();
    stack.send(&cmds).await;

    let mut first = Guard(spawn(&config, Some(point)));
    assert!(
        exits_within(&mut first, Duration::from_secs(90)).await,
        "the injected crash at {point} happened"
    );
    let mut second = Guard(spawn(&config, None));
    for r in &refs {
        let issue = rest.one_issue(r, Duration::from_secs(60)).await;
        assert_eq!(issue["fields"]["summary"], format!("deal {r}"));
    }
    // Let the restarted sink finish its batch, then check again: still one each.
    assert!(
        eventually(Duration::from_secs(30), || async {
            let audit = stack.audit(refs.len(), Duration::from_secs(2)).await;
            refs.iter()
                .all(|r| audit.iter().any(|e| &e.external_ref == r))
        })
        .await,
        "every command audited"
    );
    for r in &refs {
        assert_eq!(
            rest.issues_for(r).await.len(),
            1,
            "exactly one issue for {r} after a crash at {point}"
        );
    }
    if point == "after_create" {
        let audit = stack.audit(refs.len(), Duration::from_secs(5)).await;
        assert!(
            audit.iter().any(|e| e
                .detail
                .as_deref()
                .is_some_and(|d| d.contains("found by its marker"))),
            "the restart found the issues by their marker: {audit:?}"
        );
    }
    let all = rest.search("project = PROJ").await;
    assert_eq!(all.len(), refs.len(), "no stray issue");
    let _ = second.0.kill();
    let _ = second.0.wait();
}

#[tokio::test]
async fn crash_before_the_create_call_then_restart() {
    crash_then_restart("before_call").await;
}

#[tokio::test]
async fn crash_after_201_before_the_link_then_restart() {
    crash_then_restart("after_create").await;
}

#[tokio::test]
async fn crash_after_the_link_then_restart() {
    crash_then_restart("after_link").await;
}

/// A comment added just before a crash (its intent recorded, its link not): the replayed
/// command finds it by its `sfjira.ref` property instead of adding it again.
#[tokio::test]
async fn a_comment_added_before_a_crash_is_found_not_added_twice() {
    let stack = Stack::new().await;
    let site = jira(Default::default()).await;
    let rest = Rest::new(&site);
    let sink = Running::start(&stack.load(&stack.yaml(&site.base_url(), ""))).await;
    let issue_ref = format!("salesforce:Opportunity:{}", sfjira_tests::unique("006"));
    stack
        .send(&[upsert(
            &issue_ref,
            1,
            &[("summary", json!("with a comment"))],
        )])
        .await;
    let key = rest.one_issue(&issue_ref, Duration::from_secs(30)).await["key"]
        .as_str()
        .unwrap()
        .to_string();

    let comment_ref = format!("salesforce:Task:{}", sfjira_tests::unique("00T"));
    let command = attached(
        sfjira_core::command::CommandKind::Comment,
        &comment_ref,
        &issue_ref,
        &[("body", json!("once"))],
    );
    // What the crashed run left: a durable intent and the stamped comment in Jira.
    let producer =
        sfjira_core::kafka::IdempotentProducer::new(&sfjira_tests::client_config()).unwrap();
    let intent = sfjira_core::links::Link::intent(&comment_ref, &command.command_id);
    producer
        .send(&intent.record(&stack.topic("sfjira.links")))
        .await
        .unwrap();
    let (s, _) = rest
        .call(
            reqwest::Method::POST,
            &format!("/rest/api/3/issue/{key}/comment"),
            Some(json!({"body": {"type": "doc", "version": 1, "content": []},
                "properties": [{"key": "sfjira", "value": "sfjira"},
                               {"key": "sfjira.ref", "value": {"ref": comment_ref, "command_id": command.command_id}}]})),
        )
        .await;
    assert_eq!(s, 201);
    tokio::time::sleep(Duration::from_secs(1)).await;
    stack.send(std::slice::from_ref(&command)).await;
    let audit = stack.audit(2, Duration::from_secs(30)).await;
    assert!(
        audit.iter().any(|e| e.command_id == command.command_id),
        "{audit:?}"
    );
    let comments = rest.get(&format!("/rest/api/3/issue/{key}/comment")).await;
    assert_eq!(
        comments["comments"].as_array().unwrap().len(),
        1,
        "{comments}"
    );
    sink.stop().await;
}
