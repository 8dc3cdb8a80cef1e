//! The last-writer-wins rule for `BOTH`-owned fields: a command older (by source time) than a
//! person's later edit in Jira does not overwrite it and is audited as `superseded`; a newer
//! one does. A replayed command older than what sfjira has since written is not written either.

mod support;

use std::time::Duration;

use chrono::Utc;
use serde_json::json;
use sfjira_core::audit::AuditResult;
use sfjira_core::command::{FieldValue, Owner};
use support::*;

const WAIT: Duration = Duration::from_secs(30);

fn both(value: &str, offset_s: i64) -> FieldValue {
    FieldValue {
        value: json!(value),
        owner: Owner::Both,
        changed: true,
        source_time: Utc::now() + chrono::Duration::seconds(offset_s),
    }
}

#[tokio::test]
async fn a_later_edit_in_jira_wins_over_an_older_command() {
    let stack = Stack::new().await;
    let site = jira(Default::default()).await;
    let rest = Rest::new(&site);
    let sink = Running::start(&stack.load(&stack.yaml(&site.base_url(), ""))).await;
    let reference = format!("salesforce:Opportunity:{}", sfjira_tests::unique("006"));
    let mut create = upsert(&reference, 1, &[]);
    create
        .fields
        .insert("summary".into(), both("from salesforce", -600));
    stack.send(&[create]).await;
    let key = rest.one_issue(&reference, WAIT).await["key"]
        .as_str()
        .unwrap()
        .to_string();

    // Alice edits the summary in Jira now.
    let resp = rest
        .http
        .put(format!(
            "{}/__admin/jira/as/alice@example.com/rest/api/3/issue/{key}",
            rest.base
        ))
        .json(&json!({"fields": {"summary": "alice's title"}}))
        .send()
        .await
        .unwrap();
    assert!(resp.status().is_success(), "{}", resp.status());

    // A Salesforce edit made before Alice's (delivered late) loses...
    let mut stale = upsert(&reference, 2, &[]);
    stale
        .fields
        .insert("summary".into(), both("older salesforce title", -60));
    stack.send(std::slice::from_ref(&stale)).await;
    let audit = stack.audit(2, WAIT).await;
    let e = audit
        .iter()
        .find(|e| e.command_id == stale.command_id)
        .expect("audited");
    assert_eq!(e.result, AuditResult::Superseded, "{e:?}");
    assert_eq!(
        rest.get(&format!("/rest/api/3/issue/{key}")).await["fields"]["summary"],
        "alice's title"
    );

    // ...one made after it wins.
    let mut fresh = upsert(&reference, 3, &[]);
    fresh
        .fields
        .insert("summary".into(), both("newer salesforce title", 60));
    stack.send(std::slice::from_ref(&fresh)).await;
    assert!(
        eventually(WAIT, || async {
            rest.get(&format!("/rest/api/3/issue/{key}")).await["fields"]["summary"]
                == "newer salesforce title"
        })
        .await
    );

    // A replay (say from the DLQ) of a command older than what sfjira wrote since: skipped.
    let mut replay = upsert(&reference, 4, &[]);
    replay
        .fields
        .insert("summary".into(), both("replayed old title", 30));
    stack.send(std::slice::from_ref(&replay)).await;
    let audit = stack.audit(4, WAIT).await;
    let e = audit
        .iter()
        .find(|e| e.command_id == replay.command_id)
        .expect("audited");
    assert_eq!(e.result, AuditResult::Superseded, "{e:?}");
    assert_eq!(
        rest.get(&format!("/rest/api/3/issue/{key}")).await["fields"]["summary"],
        "newer salesforce title"
    );
    sink.stop().await;
}
