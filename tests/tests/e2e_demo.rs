//! End to end, both directions: the demo scenario played against the sandbox and all five
//! services as real processes (their own topics and groups on the shared Kafka and registry),
//! then the final state of both sandboxes checked field by field — the fields the demo mapping
//! (config/mapping.yaml) writes, with the values it must have written.

use std::time::Duration;

use serde_json::{Value, json};
use sfjira_tests::demo::people::adf_text;
use sfjira_tests::demo::scenario::SALESFORCE_ID_FIELD;
use sfjira_tests::demo::{Deployment, Engineer, Progress, SalesUser, Scenario};
use sfjira_tests::{bootstrap, registry_url};

struct Log;

impl Progress for Log {
    fn step(&mut self, n: usize, total: usize, what: &str) {
        eprintln!("[{n}/{total}] {what}");
    }
    fn waiting(&mut self, _: &str, _: Duration) {}
    fn done(&mut self, what: &str, took: Duration) {
        eprintln!("      done: {what} ({:.1} s)", took.as_secs_f64());
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn demo_scenario_flows_both_ways_and_lands_field_by_field() {
    let d = Deployment::start(&bootstrap(), &registry_url())
        .await
        .expect("deployment starts");
    let sales = SalesUser::new(&d.salesforce_url, "Alice");
    let engineer = Engineer::new(&d.jira_url, "bob@example.com");
    let scenario = Scenario {
        sales: sales.clone(),
        engineer: engineer.clone(),
        step_timeout: Duration::from_secs(90),
        tag: "e2e".into(),
        settle: Duration::from_secs(5),
        operator: d.operator(),
    };
    let out = match scenario.play(&mut Log).await {
        Ok(out) => out,
        Err(e) => panic!("{e:#}\n{}", d.all_logs()),
    };

    // Jira: one epic, one story, with the mapped fields.
    let issues = engineer.issues().await.unwrap();
    let for_id = |id: &str| -> Vec<Value> {
        issues
            .iter()
            .filter(|i| i["fields"][SALESFORCE_ID_FIELD] == json!(id))
            .cloned()
            .collect()
    };
    let epics = for_id(&out.account_id);
    assert_eq!(epics.len(), 1, "one epic per account: {epics:#?}");
    let epic = &epics[0]["fields"];
    assert_eq!(epic["summary"], json!("Acme e2e"));
    assert_eq!(epic["customfield_10011"], json!("Acme e2e"), "Epic Name");
    assert_eq!(epic["issuetype"]["name"], json!("Epic"));
    assert!(
        epic["labels"]
            .as_array()
            .unwrap()
            .contains(&json!("salesforce")),
        "labels: {}",
        epic["labels"]
    );

    let stories = for_id(&out.opportunity_id);
    assert_eq!(stories.len(), 1, "one story per opportunity: {stories:#?}");
    let story = &stories[0]["fields"];
    assert_eq!(story["summary"], json!("Acme e2e platform deal"));
    assert_eq!(story["issuetype"]["name"], json!("Story"));
    assert_eq!(story["parent"]["key"], json!(out.epic_key));
    assert_eq!(story["duedate"], json!("2026-12-31"));
    assert_eq!(
        story["customfield_10016"],
        json!(5.0),
        "Story Points = Amount / 50 000"
    );
    assert_eq!(
        story["customfield_10060"]["value"],
        json!("Silver"),
        "Customer Tier"
    );
    assert_eq!(
        adf_text(&story["description"]),
        "Platform roll-out for 2 000 seats."
    );
    assert_eq!(
        story["status"]["name"],
        json!("In Progress"),
        "the engineer's transition"
    );

    // Salesforce: the opportunity shows the story's status; the comment and the worklog are
    // completed tasks on it; the sales note is a Jira comment; nothing echoed.
    let opp = sales
        .record("Opportunity", &out.opportunity_id)
        .await
        .unwrap()
        .expect("the opportunity exists");
    assert_eq!(opp["Delivery_Status__c"], json!("In Progress"));
    assert!(
        opp["Jira_Updated__c"].is_string(),
        "Jira_Updated__c: {}",
        opp["Jira_Updated__c"]
    );
    assert_eq!(
        opp["StageName"],
        json!("Closed Won"),
        "untouched by the feedback flow"
    );

    let tasks = sales.records("Task").await.unwrap();
    let task = |external: String| -> Value {
        tasks
            .iter()
            .find(|t| t["Jira_Comment_Id__c"] == json!(external))
            .cloned()
            .unwrap_or_else(|| panic!("no task {external}: {tasks:#?}"))
    };
    let comment_task = task(format!("comment:{}", out.comment_id));
    assert_eq!(
        comment_task["Subject"],
        json!(format!("Jira comment on {}", out.story_key))
    );
    assert_eq!(
        comment_task["Description"],
        json!("Kick-off done; SSO is the first milestone.")
    );
    assert_eq!(comment_task["Status"], json!("Completed"));
    assert_eq!(comment_task["WhatId"], json!(out.opportunity_id));
    let worklog_task = task(format!("worklog:{}", out.worklog_id));
    assert!(
        worklog_task["Subject"]
            .as_str()
            .unwrap()
            .starts_with(&format!("Work logged on {}: 2", out.story_key)),
        "{}",
        worklog_task["Subject"]
    );
    assert_eq!(
        worklog_task["Description"],
        json!("Pairing on the SSO design.")
    );

    let comments = engineer.comments(&out.story_key).await.unwrap();
    let note = comments
        .iter()
        .map(|c| adf_text(&c["body"]))
        .find(|t| t.contains("Customer call e2e"))
        .expect("the sales note is a comment");
    assert!(note.contains("They need SAML, not OIDC."), "{note}");

    // The dead-lettered story, replayed after its account was fixed, is under the new epic.
    let replayed = for_id(&out.replayed_opportunity_id);
    assert_eq!(
        replayed.len(),
        1,
        "one story for the replayed record: {replayed:#?}"
    );

    // Replay the transformer's whole input with Kafka's own tool: the same commands (same ids)
    // reach the sinks again, and neither sandbox sees a second write.
    let mut d = d;
    d.kill("sfjira-transformer").await.unwrap();
    let group = d.transformer_group.clone();
    // The killed member stays in the group until its session times out (45 s); Kafka refuses
    // a reset before then ("can only be reset if the group … is inactive"): ask again.
    let started = std::time::Instant::now();
    let reset = loop {
        let out = d
            .kafka_tool(
                "kafka-consumer-groups",
                &[
                    "--group",
                    &group,
                    "--reset-offsets",
                    "--to-earliest",
                    "--all-topics",
                    "--execute",
                ],
            )
            .await
            .unwrap();
        if !out.contains("inactive") || started.elapsed() > Duration::from_secs(120) {
            break out;
        }
        tokio::time::sleep(Duration::from_secs(2)).await;
    };
    assert!(
        reset.contains(&d.topic_prefix),
        "the reset names our topics: {reset}"
    );
    d.start_service("sfjira-transformer").unwrap();
    d.wait_ready("sfjira-transformer").await.unwrap();
    let start = std::time::Instant::now();
    while d.group_lag(&group).unwrap() > 1 || start.elapsed() < Duration::from_secs(3) {
        assert!(
            start.elapsed() < Duration::from_secs(120),
            "the transformer did not catch up"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    // Let the sinks work through the replayed commands.
    tokio::time::sleep(Duration::from_secs(10)).await;
    let after = engineer.issues().await.unwrap();
    assert_eq!(after.len(), issues.len(), "no issue created by the replay");
    for id in [
        &out.account_id,
        &out.opportunity_id,
        &out.replayed_opportunity_id,
    ] {
        let n = after
            .iter()
            .filter(|i| i["fields"][SALESFORCE_ID_FIELD] == json!(id))
            .count();
        assert_eq!(n, 1, "{id}: still one issue after the replay");
    }
    assert_eq!(
        engineer.comments(&out.story_key).await.unwrap().len(),
        comments.len(),
        "no comment added by the replay"
    );
    assert_eq!(
        sales.records("Task").await.unwrap().len(),
        tasks.len(),
        "no task added by the replay"
    );
    drop(d);
}
