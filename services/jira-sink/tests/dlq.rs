//! Bad commands go to `jira-sink.dlq` with the right catalogued code (and Jira's own error
//! text for its refusals); the good commands around them are applied and the partition goes on.

mod support;

use std::collections::BTreeMap;
use std::time::Duration;

use rdkafka::message::Message;
use serde_json::json;
use sfjira_core::command::{CommandKind, System};
use support::*;

const WAIT: Duration = Duration::from_secs(30);

#[tokio::test]
async fn bad_commands_are_dead_lettered_with_their_codes_and_good_ones_applied() {
    let stack = Stack::new().await;
    let site = jira(Default::default()).await;
    let rest = Rest::new(&site);
    let sink = Running::start(&stack.load(&stack.yaml(&site.base_url(), ""))).await;
    let r = |p: &str| format!("salesforce:Opportunity:{}", sfjira_tests::unique(p));

    // A linked issue that is then deleted behind the sink's back: an edit of it gets a 404.
    let gone = r("gone");
    stack
        .send(&[upsert(&gone, 1, &[("summary", json!("soon gone"))])])
        .await;
    let gone_key = rest.one_issue(&gone, WAIT).await["key"]
        .as_str()
        .unwrap()
        .to_string();
    let (s, _) = rest
        .call(
            reqwest::Method::DELETE,
            &format!("/rest/api/3/issue/{gone_key}"),
            None,
        )
        .await;
    assert_eq!(s, 204);

    let good1 = r("good1");
    let good2 = r("good2");
    let no_project = r("noproj");
    let unknown_field = r("unknown");
    let rejected = r("rejected");
    let unreachable = r("unreachable");
    let mut c_no_project = upsert(&no_project, 1, &[("summary", json!("x"))]);
    c_no_project.target.project = None;
    let c_unknown = upsert(
        &unknown_field,
        1,
        &[("summary", json!("x")), ("No Such Field", json!(1))],
    );
    // No summary: Jira answers 400 with `errors.summary`.
    let c_rejected = upsert(&rejected, 1, &[("Salesforce ID", json!("006"))]);
    let mut c_unreachable = upsert(&unreachable, 1, &[("summary", json!("stuck"))]);
    c_unreachable.transition_to = Some(fv(json!("Nowhere"), true, 1000));
    let c_gone = upsert(&gone, 2, &[("summary", json!("edit of a deleted issue"))]);
    let orphan = attached(
        CommandKind::Comment,
        &r("comment"),
        &r("never-created"),
        &[("body", json!("hi"))],
    );
    let mut for_salesforce = upsert(&r("sf"), 1, &[("Name", json!("x"))]);
    for_salesforce.target.system = System::Salesforce;
    stack.send_raw("garbage", b"not avro at all").await;
    stack
        .send(&[
            upsert(&good1, 1, &[("summary", json!("good one"))]),
            c_no_project,
            c_unknown,
            c_rejected,
            c_unreachable,
            c_gone,
            orphan,
            for_salesforce,
            upsert(&good2, 1, &[("summary", json!("good two"))]),
        ])
        .await;

    assert_eq!(
        rest.one_issue(&good1, WAIT).await["fields"]["summary"],
        "good one"
    );
    assert_eq!(
        rest.one_issue(&good2, WAIT).await["fields"]["summary"],
        "good two"
    );
    let dlq = stack.records("jira-sink.dlq", 8, WAIT).await;
    let mut codes: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for m in &dlq {
        let key = m
            .key()
            .map(|k| String::from_utf8_lossy(k).into_owned())
            .unwrap_or_default();
        codes
            .entry(header(m, "sfjira.error.code").unwrap())
            .or_default()
            .push(key);
    }
    let has = |code: &str, key: &str| {
        codes
            .get(code)
            .is_some_and(|ks| ks.iter().any(|k| k == key))
    };
    assert!(
        has("SFJ-1001", "garbage"),
        "not Avro: the codec's code; {codes:?}"
    );
    assert!(has("SFJ-8002", &no_project), "{codes:?}");
    assert!(has("SFJ-8003", &unknown_field), "{codes:?}");
    assert!(has("SFJ-8004", &rejected), "{codes:?}");
    assert!(has("SFJ-8006", &gone), "{codes:?}");
    assert!(has("SFJ-8008", &unreachable), "{codes:?}");
    assert!(
        codes.get("SFJ-8009").is_some_and(|k| k.len() == 1),
        "{codes:?}"
    );
    assert_eq!(dlq.len(), 8, "{codes:?}");
    // Jira's own words are in the message of its refusal; the token never is.
    let rejected_msg = dlq
        .iter()
        .find(|m| header(m, "sfjira.error.code").as_deref() == Some("SFJ-8004"))
        .and_then(|m| header(m, "__connect.errors.exception.message"))
        .unwrap();
    assert!(
        rejected_msg.contains("You must specify a summary"),
        "{rejected_msg}"
    );
    for m in &dlq {
        for name in [
            "__connect.errors.exception.message",
            "__connect.errors.exception.stacktrace",
        ] {
            assert!(!header(m, name).unwrap_or_default().contains(TOKEN));
        }
    }
    // The unreachable status: the issue exists (created, linked), its status is untouched.
    assert_eq!(
        rest.one_issue(&unreachable, WAIT).await["fields"]["status"]["name"],
        "To Do"
    );
    // Failed commands are audited as such.
    let audit = stack.audit(10, WAIT).await;
    assert!(
        audit
            .iter()
            .any(|e| e.external_ref == rejected
                && e.result == sfjira_core::audit::AuditResult::Failed)
    );
    sink.stop().await;
}

#[tokio::test]
async fn a_full_issue_is_a_413_and_the_comment_is_dead_lettered() {
    let stack = Stack::new().await;
    let config = sfjira_sandbox::jira::config::JiraConfig {
        limits: sfjira_sandbox::jira::site::IssueLimits {
            comments: 1,
            ..Default::default()
        },
        ..Default::default()
    };
    let site = jira(config).await;
    let rest = Rest::new(&site);
    let sink = Running::start(&stack.load(&stack.yaml(&site.base_url(), ""))).await;
    let issue_ref = format!("salesforce:Opportunity:{}", sfjira_tests::unique("006"));
    stack
        .send(&[upsert(&issue_ref, 1, &[("summary", json!("full"))])])
        .await;
    rest.one_issue(&issue_ref, WAIT).await;
    let first = attached(
        CommandKind::Comment,
        &format!("salesforce:Task:{}", sfjira_tests::unique("a")),
        &issue_ref,
        &[("body", json!("fits"))],
    );
    let second = attached(
        CommandKind::Comment,
        &format!("salesforce:Task:{}", sfjira_tests::unique("b")),
        &issue_ref,
        &[("body", json!("does not fit"))],
    );
    stack.send(&[first]).await;
    // The first comment is in before the second is sent (they are on different partitions).
    assert!(stack.audit(2, WAIT).await.len() >= 2);
    stack.send(std::slice::from_ref(&second)).await;
    let dlq = stack.records("jira-sink.dlq", 1, WAIT).await;
    assert_eq!(dlq.len(), 1);
    assert_eq!(
        header(&dlq[0], "sfjira.error.code").as_deref(),
        Some("SFJ-8007")
    );
    assert_eq!(
        header(&dlq[0], "sfjira.command-id").as_deref(),
        Some(second.command_id.as_str())
    );
    sink.stop().await;
}
