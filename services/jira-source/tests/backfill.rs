//! `sfjira backfill jira` (issue #6 item 5) against the in-process Jira sandbox and the real
//! Kafka broker and registry: ~120 issues, a small page size, interrupted after the first page,
//! resumed — each issue exactly once (read_committed), the position committed in
//! `sfjira.checkpoints`, a finished backfill not run again, `--restart` publishing nothing new.

mod support;

use std::collections::BTreeMap;
use std::time::Duration;

use rdkafka::message::Message;
use sfjira_jira_source::backfill::{Backfill, Position};
use sfjira_sandbox::clock::SandboxClock;
use sfjira_sandbox::jira::config::JiraConfig;
use sfjira_sandbox::jira::spawn_for_tests;
use support::*;

const ISSUES: usize = 120;

#[tokio::test]
async fn an_interrupted_backfill_resumes_and_publishes_each_issue_once() {
    let stack = Stack::new().await;
    let mut config = JiraConfig::default();
    // Seeding 120 issues quickly is not what this test is about.
    config.rate_limits.enabled = false;
    let site = spawn_for_tests(config, SandboxClock::real_time())
        .await
        .expect("jira site starts");
    let rest = Rest::new(&site);
    let mut ids = Vec::new();
    for i in 0..ISSUES {
        ids.push(rest.create(&format!("backfilled {i}")).await.0);
    }
    let cfg = stack.load(&stack.yaml(
        &sfjira_tests::bootstrap(),
        &site.base_url(),
        "  poll_page_size: 25\n",
    ));
    let connect = || Backfill::connect(&cfg, "PROJ", None, Duration::from_secs(60));

    // The first page, then "interrupted": the process (publisher, client) goes away.
    let first = connect().await.expect("connects");
    let r1 = first.run(false, Some(1)).await.expect("first page");
    assert_eq!(
        (r1.pages, r1.issues, r1.done, r1.resumed),
        (1, 25, false, false)
    );
    assert_eq!(r1.published, 25, "{r1:?}");
    drop(first);

    // A new process resumes at the second page.
    let second = connect().await.expect("connects again");
    let pos: Position = second
        .position()
        .await
        .unwrap()
        .expect("position committed");
    assert_eq!((pos.pages, pos.issues, pos.done), (1, 25, false));
    assert!(pos.token.is_some(), "{pos:?}");
    let r2 = second.run(false, None).await.expect("resumes");
    assert!(r2.resumed && r2.done, "{r2:?}");
    assert_eq!(r2.issues as usize, ISSUES - 25, "{r2:?}");
    assert_eq!(r2.published, ISSUES - 25, "{r2:?}");

    // Done: not run again; --restart re-reads everything and publishes nothing new.
    assert!(second.run(false, None).await.unwrap().already_done);
    let r3 = second.run(true, None).await.expect("restart");
    assert!(r3.done && !r3.resumed, "{r3:?}");
    assert_eq!((r3.issues as usize, r3.published), (ISSUES, 0), "{r3:?}");

    let messages = stack
        .records("jira.issues", ISSUES + 1, Duration::from_secs(20))
        .await;
    let recs = decode(&messages).await;
    assert_eq!(recs.len(), ISSUES);
    let mut per_issue: BTreeMap<String, usize> = BTreeMap::new();
    for r in &recs {
        assert_eq!(r.origin, "POLL", "{r:?}");
        assert_eq!(r.event_type, "jira:issue_created", "{r:?}");
        *per_issue.entry(r.issue_id.clone()).or_default() += 1;
    }
    let mut expected = ids.clone();
    expected.sort();
    assert_eq!(per_issue.keys().cloned().collect::<Vec<_>>(), expected);
    assert!(per_issue.values().all(|n| *n == 1), "{per_issue:?}");

    let positions: Vec<Position> = stack
        .records("sfjira.checkpoints", 100_000, Duration::from_secs(3))
        .await
        .iter()
        .filter(|m| m.key() == Some(b"jira-source:backfill:PROJ"))
        .map(|m| serde_json::from_slice(m.payload().unwrap()).unwrap())
        .collect();
    // 5 pages, then the restart's 5.
    assert_eq!(positions.len(), 10, "{positions:#?}");
    assert!(positions[4].done && positions[9].done);
}
