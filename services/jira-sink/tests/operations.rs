//! Each operation against the sandbox, through Kafka and the registry, with the final state
//! asserted through Jira's REST API: create (every field, stamped), update (changed fields
//! only, `historyMetadata`), transitions through several workflow steps, comments (text → ADF,
//! stamped), worklogs, labels, parent, delete and close.

mod support;

use std::time::Duration;

use serde_json::{Value, json};
use sfjira_core::audit::AuditResult;
use sfjira_core::command::CommandKind;
use support::*;

const WAIT: Duration = Duration::from_secs(30);

#[tokio::test]
async fn upsert_creates_with_every_field_then_updates_only_changed_ones() {
    let stack = Stack::new().await;
    let site = jira(Default::default()).await;
    let rest = Rest::new(&site);
    let sink = Running::start(&stack.load(&stack.yaml(&site.base_url(), ""))).await;

    let reference = format!("salesforce:Opportunity:{}", sfjira_tests::unique("006"));
    stack
        .send(&[upsert(
            &reference,
            1,
            &[
                ("summary", json!("Big deal")),
                ("Salesforce ID", json!("006A")),
                ("labels", json!(["salesforce"])),
                ("description", json!("first line\nsecond")),
                ("Customer Tier", json!({"value": "Gold"})),
            ],
        )])
        .await;
    let issue = rest.one_issue(&reference, WAIT).await;
    let key = issue["key"].as_str().unwrap().to_string();
    let f = &issue["fields"];
    assert_eq!(f["summary"], "Big deal");
    assert_eq!(f["customfield_10050"], "006A");
    assert_eq!(f["customfield_10060"]["value"], "Gold");
    assert_eq!(f["description"]["type"], "doc", "plain text became ADF");
    let labels: Vec<&str> = f["labels"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert!(labels.contains(&"salesforce"), "{labels:?}");
    assert!(
        labels.iter().any(|l| l.starts_with("sfjira-")),
        "marker label: {labels:?}"
    );
    let prop = rest
        .get(&format!("/rest/api/3/issue/{key}/properties/sfjira"))
        .await;
    assert_eq!(prop["value"]["ref"], reference.as_str());
    // Written as the integration account.
    let me = rest.get("/rest/api/3/myself").await;
    assert_eq!(f["reporter"]["accountId"], me["accountId"]);

    // An update writes only the changed fields: the unchanged (stale) Salesforce ID is not.
    let mut update = upsert(
        &reference,
        2,
        &[
            ("summary", json!("Bigger deal")),
            ("Salesforce ID", json!("STALE")),
        ],
    );
    update.fields.get_mut("Salesforce ID").unwrap().changed = false;
    stack.send(&[update]).await;
    assert!(
        eventually(WAIT, || async {
            rest.get(&format!("/rest/api/3/issue/{key}")).await["fields"]["summary"]
                == "Bigger deal"
        })
        .await
    );
    let issue = rest
        .get(&format!("/rest/api/3/issue/{key}?expand=changelog"))
        .await;
    assert_eq!(issue["fields"]["customfield_10050"], "006A");
    let histories = issue["changelog"]["histories"].as_array().unwrap();
    let summary_change = histories
        .iter()
        .find(|h| {
            h["items"]
                .as_array()
                .unwrap()
                .iter()
                .any(|i| i["field"] == "summary")
        })
        .expect("summary change in the changelog");
    assert_eq!(summary_change["historyMetadata"]["type"], "sfjira");
    assert_eq!(
        summary_change["historyMetadata"]["generator"]["id"],
        "sfjira-jira-sink"
    );

    let audit = stack.audit(2, WAIT).await;
    assert_eq!(audit.len(), 2, "{audit:?}");
    assert_eq!(audit[0].operation, "create");
    assert_eq!(audit[1].operation, "update");
    assert!(audit.iter().all(|e| e.result == AuditResult::Applied));
    assert_eq!(audit[1].before["summary"], "Big deal");
    assert_eq!(audit[1].after["summary"], "Bigger deal");
    assert_eq!(audit[1].target, format!("jira:{key}"));
    let links = stack.records("sfjira.links", 3, WAIT).await;
    assert!(links.len() >= 3, "intent + link both ways");
    sink.stop().await;
}

#[tokio::test]
async fn transitions_walk_the_workflow_and_comments_worklogs_attach() {
    let stack = Stack::new().await;
    let site = jira(Default::default()).await;
    let rest = Rest::new(&site);
    let sink = Running::start(&stack.load(&stack.yaml(&site.base_url(), ""))).await;

    let reference = format!("salesforce:Opportunity:{}", sfjira_tests::unique("006"));
    let mut create = upsert(&reference, 1, &[("summary", json!("Walk me"))]);
    // To Do → In Progress → In Review → Done: three steps.
    create.transition_to = Some(fv(json!("Done"), true, 1000));
    let comment = attached(
        CommandKind::Comment,
        &format!("salesforce:Task:{}", sfjira_tests::unique("00T")),
        &reference,
        &[("body", json!("Hello\n\nfrom Salesforce"))],
    );
    let mut worklog = attached(
        CommandKind::Worklog,
        &format!("salesforce:Event:{}", sfjira_tests::unique("00U")),
        &reference,
        &[
            ("started", json!("2026-01-05T09:30:00Z")),
            ("timeSpentSeconds", json!(5400)),
            ("comment", json!("call")),
        ],
    );
    worklog.target.entity = "worklog".into();
    stack.send(&[create, comment, worklog]).await;

    let issue = rest.one_issue(&reference, WAIT).await;
    let key = issue["key"].as_str().unwrap().to_string();
    assert!(
        eventually(WAIT, || async {
            rest.get(&format!("/rest/api/3/issue/{key}")).await["fields"]["status"]["name"]
                == "Done"
        })
        .await,
        "walked to Done"
    );
    assert!(
        eventually(WAIT, || async {
            rest.get(&format!("/rest/api/3/issue/{key}/comment")).await["comments"]
                .as_array()
                .is_some_and(|c| c.len() == 1)
        })
        .await
    );
    let comments = rest.get(&format!("/rest/api/3/issue/{key}/comment")).await;
    let c = &comments["comments"][0];
    assert_eq!(c["body"]["type"], "doc");
    assert_eq!(
        c["body"]["content"].as_array().unwrap().len(),
        2,
        "two paragraphs"
    );
    // The echo stamp jira-source reads (`properties[key = sfjira]`).
    let stamped = rest
        .get(&format!(
            "/rest/api/3/issue/{key}/comment?expand=properties"
        ))
        .await;
    let props = stamped["comments"][0]["properties"]
        .as_array()
        .unwrap()
        .clone();
    assert!(
        props.contains(&json!({"key": "sfjira", "value": "sfjira"})),
        "{props:?}"
    );
    assert!(
        eventually(WAIT, || async {
            rest.get(&format!("/rest/api/3/issue/{key}/worklog")).await["worklogs"]
                .as_array()
                .is_some_and(|w| w.len() == 1)
        })
        .await
    );
    let w = &rest.get(&format!("/rest/api/3/issue/{key}/worklog")).await["worklogs"][0];
    assert_eq!(w["timeSpentSeconds"], 5400);
    assert!(
        w["started"]
            .as_str()
            .unwrap()
            .starts_with("2026-01-05T09:30:00.000"),
        "{w}"
    );

    // The transitions carry our marker.
    let changelog = rest
        .get(&format!("/rest/api/3/issue/{key}/changelog"))
        .await;
    let status_changes: Vec<&Value> = changelog["values"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|h| {
            h["items"]
                .as_array()
                .unwrap()
                .iter()
                .any(|i| i["field"] == "status")
        })
        .collect();
    assert_eq!(status_changes.len(), 3, "three steps");
    assert!(
        status_changes
            .iter()
            .all(|h| h["historyMetadata"]["type"] == "sfjira")
    );

    // Close of a done issue is a no-op; reopen happens only through a transition_to.
    let mut reopen = upsert(&reference, 2, &[]);
    reopen.transition_to = Some(fv(json!("In Progress"), true, 2000));
    stack.send(&[reopen]).await;
    assert!(
        eventually(WAIT, || async {
            rest.get(&format!("/rest/api/3/issue/{key}")).await["fields"]["status"]["name"]
                == "In Progress"
        })
        .await,
        "Done → Reopened → In Progress"
    );
    sink.stop().await;
}

#[tokio::test]
async fn parents_link_children_and_delete_and_close_follow_the_config() {
    let stack = Stack::new().await;
    let site = jira(Default::default()).await;
    let rest = Rest::new(&site);
    let sink =
        Running::start(&stack.load(&stack.yaml(&site.base_url(), "  delete_mode: close\n"))).await;

    let account = format!("salesforce:Account:{}", sfjira_tests::unique("001"));
    let mut epic = upsert(
        &account,
        1,
        &[("summary", json!("ACME")), ("Epic Name", json!("ACME"))],
    );
    epic.target.issue_type = Some("Epic".into());
    let story_ref = format!("salesforce:Opportunity:{}", sfjira_tests::unique("006"));
    let mut story = upsert(&story_ref, 1, &[("summary", json!("Deal"))]);
    story.target.issue_type = Some("Story".into());
    story.target.parent_ref = Some(account.clone());
    // The child first, in the same batch: parents are still created before children.
    stack.send(&[story, epic]).await;
    let epic_issue = rest.one_issue(&account, WAIT).await;
    let story_issue = rest.one_issue(&story_ref, WAIT).await;
    assert_eq!(story_issue["fields"]["parent"]["key"], epic_issue["key"]);

    // DELETE in close mode transitions to Done; CLOSE does too.
    let key = story_issue["key"].as_str().unwrap().to_string();
    stack
        .send(&[cmd(CommandKind::Delete, &story_ref, 2, &[])])
        .await;
    assert!(
        eventually(WAIT, || async {
            rest.get(&format!("/rest/api/3/issue/{key}")).await["fields"]["status"]["name"]
                == "Done"
        })
        .await
    );
    let audit = stack.audit(3, WAIT).await;
    assert!(
        audit
            .iter()
            .any(|e| e.operation == "delete" && e.after["status"] == "Done"),
        "{audit:?}"
    );
    sink.stop().await;
}

#[tokio::test]
async fn delete_mode_delete_removes_the_issue() {
    let stack = Stack::new().await;
    let site = jira(Default::default()).await;
    let rest = Rest::new(&site);
    let sink = Running::start(&stack.load(&stack.yaml(&site.base_url(), ""))).await;
    let reference = format!("salesforce:Case:{}", sfjira_tests::unique("500"));
    stack
        .send(&[upsert(&reference, 1, &[("summary", json!("Bye"))])])
        .await;
    let key = rest.one_issue(&reference, WAIT).await["key"]
        .as_str()
        .unwrap()
        .to_string();
    stack
        .send(&[cmd(CommandKind::Delete, &reference, 2, &[])])
        .await;
    assert!(
        eventually(WAIT, || async {
            rest.call(
                reqwest::Method::GET,
                &format!("/rest/api/3/issue/{key}"),
                None,
            )
            .await
            .0 == 404
        })
        .await
    );
    // update_only never creates.
    let other = format!("salesforce:Case:{}", sfjira_tests::unique("500"));
    let mut only = upsert(&other, 1, &[("summary", json!("never"))]);
    only.target.update_only = true;
    stack.send(&[only]).await;
    let audit = stack.audit(3, WAIT).await;
    let skip = audit
        .iter()
        .find(|e| e.external_ref == other)
        .expect("audited");
    assert_eq!(skip.result, AuditResult::Skipped);
    assert!(rest.issues_for(&other).await.is_empty());
    sink.stop().await;
}

#[tokio::test]
async fn dry_run_writes_nothing_and_audits_what_it_would_write() {
    let stack = Stack::new().await;
    let site = jira(Default::default()).await;
    let rest = Rest::new(&site);
    let sink =
        Running::start(&stack.load(&stack.yaml(&site.base_url(), "  dry_run: true\n"))).await;
    let reference = format!("salesforce:Opportunity:{}", sfjira_tests::unique("006"));
    stack
        .send(&[upsert(&reference, 1, &[("summary", json!("not really"))])])
        .await;
    let audit = stack.audit(1, WAIT).await;
    assert_eq!(audit.len(), 1);
    assert_eq!(audit[0].result, AuditResult::Skipped);
    assert_eq!(audit[0].after["summary"], "not really");
    assert!(rest.search("project = PROJ").await.is_empty());
    sink.stop().await;
}
