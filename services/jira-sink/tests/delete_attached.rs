//! `DELETE` of a comment or worklog (what `sfjira rollback` makes of an added one), through
//! Kafka and the registry against the sandbox: the comment / worklog linked to the command's
//! reference goes from its issue (named by the issue's reference, or by `jira:KEY` as rollback
//! writes it), a 503 on the way is retried, a replay is a no-op, a second delete of what is
//! gone is done (audited `skipped`), and each step is in the audit.

mod support;

use std::time::Duration;

use serde_json::{Value, json};
use sfjira_core::audit::{AuditEntry, AuditResult};
use sfjira_core::command::{Command, CommandKind};
use support::*;

const WAIT: Duration = Duration::from_secs(30);

/// The `DELETE` of the comment / worklog `reference`, on the issue `attach_to`.
fn delete_of(entity: &str, reference: &str, attach_to: &str, version: u64) -> Command {
    let mut c = cmd(CommandKind::Delete, reference, version, &[]);
    c.target.entity = entity.into();
    c.target.attach_to = Some(attach_to.into());
    c.target.project = None;
    c.target.issue_type = None;
    c.target.update_only = true;
    c
}

async fn ids(rest: &Rest, key: &str, kind: &str) -> Vec<String> {
    let list = if kind == "comment" {
        "comments"
    } else {
        "worklogs"
    };
    rest.get(&format!("/rest/api/3/issue/{key}/{kind}")).await[list]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|c| c["id"].as_str().map(str::to_string))
        .collect()
}

fn of<'a>(audit: &'a [AuditEntry], command_id: &str) -> Option<&'a AuditEntry> {
    audit.iter().find(|e| e.command_id == command_id)
}

#[tokio::test]
async fn delete_removes_the_linked_comment_and_worklog_once() {
    let stack = Stack::new().await;
    let site = jira(Default::default()).await;
    let rest = Rest::new(&site);
    let sink = Running::start(&stack.load(&stack.yaml(&site.base_url(), ""))).await;

    let issue_ref = format!("salesforce:Opportunity:{}", sfjira_tests::unique("006"));
    let comment_ref = format!("salesforce:Task:{}", sfjira_tests::unique("00T"));
    let kept_ref = format!("salesforce:Task:{}", sfjira_tests::unique("00T"));
    let worklog_ref = format!("salesforce:Event:{}", sfjira_tests::unique("00U"));
    let comment = attached(
        CommandKind::Comment,
        &comment_ref,
        &issue_ref,
        &[("body", json!("added by mistake"))],
    );
    let kept = attached(
        CommandKind::Comment,
        &kept_ref,
        &issue_ref,
        &[("body", json!("stays"))],
    );
    let worklog = attached(
        CommandKind::Worklog,
        &worklog_ref,
        &issue_ref,
        &[
            ("started", json!("2026-01-05T09:30:00Z")),
            ("timeSpentSeconds", json!(3600)),
        ],
    );
    stack
        .send(&[upsert(&issue_ref, 1, &[("summary", json!("Has notes"))])])
        .await;
    stack.send(&[comment.clone(), kept, worklog.clone()]).await;
    let key = rest.one_issue(&issue_ref, WAIT).await["key"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(
        eventually(WAIT, || async {
            ids(&rest, &key, "comment").await.len() == 2
                && ids(&rest, &key, "worklog").await.len() == 1
        })
        .await,
        "comments and worklog added"
    );

    // The adds are audited as adds, with the ids they made (what rollback inverts).
    let audit = stack.audit(4, WAIT).await;
    let added = of(&audit, &comment.command_id).expect("comment audited");
    assert_eq!(added.operation, "comment");
    assert_eq!(added.target, format!("jira:{key}"));
    assert_eq!(added.before["id"], Value::Null);
    let comment_id = added.after["id"].as_str().expect("comment id").to_string();
    assert!(ids(&rest, &key, "comment").await.contains(&comment_id));
    let worklog_id = of(&audit, &worklog.command_id)
        .expect("worklog audited")
        .after["id"]
        .as_str()
        .expect("worklog id")
        .to_string();

    // The comment's DELETE names its issue as rollback does (`jira:KEY`); the worklog's by the
    // issue's reference. A 503 on the way is retried.
    let calls = sink.sink.jira.calls();
    rest.post_admin(
        "/__admin/jira/faults/ratelimit",
        json!({"kind": "unavailable503", "requests": 1, "retry_after_secs": 1}),
    )
    .await;
    let del_comment = delete_of("comment", &comment_ref, &format!("jira:{key}"), 2);
    let del_worklog = delete_of("worklog", &worklog_ref, &issue_ref, 2);
    stack
        .send(&[del_comment.clone(), del_worklog.clone()])
        .await;
    // Wait on the audit, not on Jira: the one 503 is for the sink's calls, not ours.
    assert_eq!(stack.audit(6, WAIT).await.len(), 6);
    assert_eq!(
        sink.sink.jira.calls() - calls,
        3,
        "one DELETE each, one of them answered 503 and sent again"
    );
    let left = ids(&rest, &key, "comment").await;
    assert!(!left.contains(&comment_id), "comment deleted: {left:?}");
    assert_eq!(left.len(), 1, "the other comment stays");
    assert!(
        ids(&rest, &key, "worklog").await.is_empty(),
        "worklog deleted"
    );

    // A replay (same command id) is skipped; a second delete of the same comment (another
    // command id: a rollback run again after its audit aged out) finds it gone: done.
    let again = delete_of("comment", &comment_ref, &issue_ref, 3);
    stack.send(&[del_comment.clone(), again.clone()]).await;
    let audit = stack.audit(7, WAIT).await;
    assert_eq!(
        audit.len(),
        7,
        "one entry per command, none for the replay: {audit:?}"
    );
    let deleted = of(&audit, &del_comment.command_id).unwrap();
    assert_eq!(
        (deleted.operation.as_str(), deleted.result),
        ("delete_comment", AuditResult::Applied),
        "{deleted:?}"
    );
    assert_eq!(deleted.target, format!("jira:{key}"));
    assert_eq!(deleted.external_ref, comment_ref);
    assert_eq!(deleted.before["id"], json!(comment_id));
    assert_eq!(deleted.after["id"], Value::Null);
    let deleted = of(&audit, &del_worklog.command_id).unwrap();
    assert_eq!(
        (deleted.operation.as_str(), deleted.result),
        ("delete_worklog", AuditResult::Applied)
    );
    assert_eq!(deleted.before["id"], json!(worklog_id));
    let gone = of(&audit, &again.command_id).unwrap();
    assert_eq!(gone.result, AuditResult::Skipped, "{gone:?}");
    assert!(
        gone.detail
            .as_deref()
            .unwrap_or("")
            .contains("already deleted"),
        "{gone:?}"
    );
    assert_eq!(ids(&rest, &key, "comment").await.len(), 1);
    assert!(
        stack
            .records("jira-sink.dlq", 1, Duration::from_secs(2))
            .await
            .is_empty(),
        "nothing dead-lettered"
    );
    sink.stop().await;
}

#[tokio::test]
async fn a_delete_without_its_issue_or_link_is_refused_or_skipped() {
    let stack = Stack::new().await;
    let site = jira(Default::default()).await;
    let sink = Running::start(&stack.load(&stack.yaml(&site.base_url(), ""))).await;
    let issue_ref = format!("salesforce:Opportunity:{}", sfjira_tests::unique("006"));
    stack
        .send(&[upsert(&issue_ref, 1, &[("summary", json!("x"))])])
        .await;
    // No attach_to: the sink cannot know the issue (Jira's path needs it).
    let mut no_issue = delete_of("comment", "salesforce:Task:00Tnone", &issue_ref, 2);
    no_issue.target.attach_to = None;
    // Never linked (never added): nothing to delete.
    let never = delete_of("worklog", "salesforce:Event:00Unever", &issue_ref, 2);
    stack.send(&[no_issue.clone(), never.clone()]).await;
    let audit = stack.audit(3, WAIT).await;
    let refused = of(&audit, &no_issue.command_id).expect("audited");
    assert_eq!(refused.result, AuditResult::Failed);
    assert!(refused.detail.as_deref().unwrap().contains("SFJ-8002"));
    let dlq = stack.records("jira-sink.dlq", 1, WAIT).await;
    assert_eq!(dlq.len(), 1);
    assert_eq!(
        header(&dlq[0], "sfjira.error.code").as_deref(),
        Some("SFJ-8002")
    );
    let skipped = of(&audit, &never.command_id).expect("audited");
    assert_eq!(
        (skipped.operation.as_str(), skipped.result),
        ("delete_worklog", AuditResult::Skipped)
    );
    assert_eq!(skipped.detail.as_deref(), Some("no linked worklog"));
    sink.stop().await;
}
