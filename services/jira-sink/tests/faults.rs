//! The same 2 000 commands (creates, edits with transitions, comments, more edits) applied to
//! a well-behaved site and to one answering 10 % of reads, writes and searches with 500,
//! bursts of 429 without `Retry-After` (gateway storms), real 429s with `Retry-After` (the
//! sink runs faster than the site's PUT limit), 503s with `Retry-After` and 409 conflicts: the
//! final state is the same, there are no duplicates and nothing is dead-lettered.
//!
//! `SFJIRA_FAULT_TEST_REFS` (default 500, four commands each) scales it.

mod support;

use std::collections::BTreeMap;
use std::time::Duration;

use serde_json::{Value, json};
use sfjira_core::command::{Command, CommandKind};
use sfjira_sandbox::jira::JiraSite;
use sfjira_sandbox::jira::config::JiraConfig;
use sfjira_sandbox::jira::faults::{ErrorRates, JiraFaults};
use sfjira_sandbox::jira::ratelimit::RateLimitConfig;
use support::*;

fn commands(refs: &[String]) -> Vec<Command> {
    let mut out = Vec::new();
    for (i, r) in refs.iter().enumerate() {
        out.push(upsert(
            r,
            1,
            &[
                ("summary", json!(format!("deal {i}"))),
                ("Salesforce ID", json!(format!("006{i}"))),
            ],
        ));
    }
    for (i, r) in refs.iter().enumerate() {
        let mut c = upsert(r, 2, &[("summary", json!(format!("deal {i} won")))]);
        let status = ["In Progress", "In Review", "Done"][i % 3];
        c.transition_to = Some(fv(json!(status), true, 2000));
        out.push(c);
    }
    for (i, r) in refs.iter().enumerate() {
        out.push(attached(
            CommandKind::Comment,
            &format!("{r}:comment"),
            r,
            &[("body", json!(format!("note {i}")))],
        ));
    }
    for (i, r) in refs.iter().enumerate() {
        out.push(upsert(
            r,
            3,
            &[("labels", json!([format!("tier{}", i % 4)]))],
        ));
    }
    out
}

/// Per reference: summary, status, Salesforce ID, labels, comment texts.
fn state(site: &JiraSite) -> BTreeMap<String, Value> {
    let s = site.state.lock_site();
    let mut out = BTreeMap::new();
    for issue in s.state.issues.values() {
        let reference = issue.properties["sfjira"]["ref"]
            .as_str()
            .unwrap()
            .to_string();
        let comments: Vec<Value> = issue.comments.iter().map(|c| c.body.clone()).collect();
        let mut labels = issue.labels();
        labels.sort();
        let v = json!({
            "summary": issue.summary(),
            "status": issue.status_id,
            "sfid": issue.fields.get("customfield_10050"),
            "labels": labels,
            "comments": comments,
        });
        assert!(
            out.insert(reference.clone(), v).is_none(),
            "duplicate issue for {reference}"
        );
    }
    out
}

async fn run(refs: &[String], config: JiraConfig, faulty: bool) -> BTreeMap<String, Value> {
    let stack = Stack::new().await;
    let site = jira(config).await;
    let rest = Rest::new(&site);
    let cmds = commands(refs);
    let sink = Running::start(&stack.load(&stack.yaml(
        &site.base_url(),
        "  link_wait_ms: 120000\n  concurrency: 16\n",
    )))
    .await;
    stack.send(&cmds).await;
    if faulty {
        // A gateway storm (no Retry-After), then 503s with Retry-After, mid-run.
        rest.post_admin(
            "/__admin/jira/faults/ratelimit",
            json!({"kind": "storm429", "requests": 40}),
        )
        .await;
        tokio::time::sleep(Duration::from_secs(2)).await;
        rest.post_admin(
            "/__admin/jira/faults/ratelimit",
            json!({"kind": "unavailable503", "requests": 10, "retry_after_secs": 1}),
        )
        .await;
        tokio::time::sleep(Duration::from_secs(2)).await;
        rest.post_admin(
            "/__admin/jira/faults/ratelimit",
            json!({"kind": "storm429", "requests": 40}),
        )
        .await;
    }
    let audit = stack.audit(cmds.len(), Duration::from_secs(240)).await;
    assert_eq!(audit.len(), cmds.len(), "every command audited once");
    assert!(
        audit
            .iter()
            .all(|e| e.result == sfjira_core::audit::AuditResult::Applied),
        "{:?}",
        audit
            .iter()
            .filter(|e| e.result != sfjira_core::audit::AuditResult::Applied)
            .take(3)
            .collect::<Vec<_>>()
    );
    let dlq = stack
        .records("jira-sink.dlq", 1, Duration::from_secs(2))
        .await;
    assert!(dlq.is_empty(), "nothing dead-lettered (faulty: {faulty})");
    let calls = sink.sink.jira.calls();
    sink.stop().await;
    eprintln!(
        "{} commands, {calls} Jira calls (faulty: {faulty})",
        cmds.len()
    );
    let s = state(&site);
    assert_eq!(s.len(), refs.len(), "one issue per reference");
    s
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn faults_and_rate_limits_change_nothing_in_the_end() {
    let n: usize = std::env::var("SFJIRA_FAULT_TEST_REFS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(500);
    let refs: Vec<String> = (0..n)
        .map(|i| format!("salesforce:Opportunity:{}-{i}", sfjira_tests::unique("006")))
        .collect();
    let calm = JiraConfig {
        rate_limits: RateLimitConfig {
            enabled: false,
            ..Default::default()
        },
        ..Default::default()
    };
    let stormy = JiraConfig {
        faults: JiraFaults {
            error_rate: ErrorRates {
                read: 0.1,
                write: 0.1,
                search: 0.1,
            },
            conflict_on_put: 30,
            ..Default::default()
        },
        rate_limits: RateLimitConfig {
            put_per_second: 40.0,
            post_per_second: 60.0,
            ..Default::default()
        },
        ..Default::default()
    };
    // Independent stacks and sites: run both at once.
    let (expected, got) = tokio::join!(run(&refs, calm, false), run(&refs, stormy, true));
    for r in &refs {
        assert_eq!(got.get(r), expected.get(r), "{r}");
    }
}
