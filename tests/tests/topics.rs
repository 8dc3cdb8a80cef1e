//! Topics as code against the real broker: `apply` creates what is missing, is idempotent,
//! puts configs back in line, and reports partition drift without "fixing" it.

use std::time::Duration;

use rdkafka::admin::{AdminOptions, AlterConfig, NewPartitions, ResourceSpecifier};
use sfjira_core::topics::{self, TopicAction};
use sfjira_tests::*;

const FILE: &str = "
defaults: {partitions: 2, replication_factor: -1, cleanup_policy: delete, retention_ms: 86400000}
topics:
  - name: events
  - name: links
    partitions: 1
    cleanup_policy: compact
    retention_ms: -1
    configs:
      min.compaction.lag.ms: '60000'
";

fn names(actions: &[TopicAction]) -> Vec<String> {
    actions
        .iter()
        .map(|a| a.to_string().split_whitespace().next().unwrap().to_string())
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn apply_creates_is_idempotent_fixes_configs_and_reports_partition_drift() {
    let prefix = format!("{}.", unique("topics"));
    let specs = topics::parse(FILE, &prefix).unwrap();
    let base = client_config();

    // A dry run changes nothing.
    let dry = topics::apply(&base, &specs, true).await.unwrap();
    assert_eq!(names(&dry), ["created", "created"]);
    let again = topics::apply(&base, &specs, true).await.unwrap();
    assert_eq!(
        names(&again),
        ["created", "created"],
        "the dry run created nothing"
    );

    let created = topics::apply(&base, &specs, false).await.unwrap();
    assert_eq!(names(&created), ["created", "created"]);
    let second = topics::apply(&base, &specs, false).await.unwrap();
    assert_eq!(names(&second), ["ok", "ok"], "{second:?}");

    // Someone changes the links topic's cleanup policy and grows the events topic.
    let admin = admin();
    let opts = AdminOptions::new().operation_timeout(Some(Duration::from_secs(10)));
    let links = format!("{prefix}links");
    let events = format!("{prefix}events");
    let alter = AlterConfig::new(ResourceSpecifier::Topic(&links)).set("cleanup.policy", "delete");
    admin
        .alter_configs([&alter], &opts)
        .await
        .unwrap()
        .into_iter()
        .for_each(|r| {
            r.unwrap();
        });
    admin
        .create_partitions([&NewPartitions::new(&events, 3)], &opts)
        .await
        .unwrap()
        .into_iter()
        .for_each(|r| {
            r.unwrap();
        });

    let after = topics::apply(&base, &specs, false).await.unwrap();
    match &after[0] {
        TopicAction::Drift { name, problem } => {
            assert_eq!(name, &events);
            assert!(problem.contains("3 partitions, declared 2"), "{problem}");
        }
        other => panic!("expected drift on {events}, got {other:?}"),
    }
    match &after[1] {
        TopicAction::ConfigUpdated { name, changes } => {
            assert_eq!(name, &links);
            assert!(
                changes.contains(&(
                    "cleanup.policy".into(),
                    Some("delete".into()),
                    "compact".into()
                )),
                "{changes:?}"
            );
        }
        other => panic!("expected the config of {links} to be fixed, got {other:?}"),
    }
    // Fixed for good: the next run finds the links topic in line, the drift still reported.
    let last = topics::apply(&base, &specs, false).await.unwrap();
    assert_eq!(names(&last), ["DRIFT", "ok"], "{last:?}");
}
