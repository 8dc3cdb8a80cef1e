//! `kill -9` of the binary in the middle of a burst of webhook deliveries, then a restart with
//! the same instance id: Jira's retries plus the durable identifier dedupe and the
//! transactional commit give no loss and no duplicate in `read_committed` order.
//! The poller is off, so every record here came through the webhook path.

mod support;

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use support::*;

fn spawn(config: &std::path::Path) -> Child {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_sfjira-jira-source"));
    cmd.arg("--config")
        .arg(config)
        .stdout(Stdio::null())
        .stderr(Stdio::inherit());
    for (k, v) in env() {
        cmd.env(k, v);
    }
    cmd.spawn().expect("the binary starts")
}

/// Kills the child on drop, so a failing test leaves no process behind.
struct Guard(Option<Child>);

impl Drop for Guard {
    fn drop(&mut self) {
        if let Some(c) = &mut self.0 {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

#[tokio::test]
async fn kill_dash_9_mid_burst_and_restart_loses_and_duplicates_nothing() {
    let stack = Stack::new().await;
    // Retries 1–2 s apart, enough of them to span the restart.
    let site = jira(15).await;
    let rest = Rest::new(&site);
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let yaml = stack.yaml(
        &sfjira_tests::bootstrap(),
        &site.base_url(),
        &format!("  webhook_secret: {{env: TEST_WEBHOOK_SECRET}}\n  webhook_listen: \"127.0.0.1:{port}\"\n  poll_interval_ms: 0\n"),
    );
    let config = stack.write_config(&yaml);
    let url = format!("http://127.0.0.1:{port}/webhooks/jira");
    let mut child = Guard(Some(spawn(&config)));
    wait_ready(&url, Duration::from_secs(60)).await;
    rest.register_webhook(&url).await;

    let mut keys = Vec::new();
    for i in 0..4 {
        keys.push(rest.create(&format!("burst {i}")).await);
    }
    let renames = 8;
    for round in 0..renames {
        if round == 3 {
            // Mid-burst: SIGKILL, no chance to finish anything in flight.
            let mut c = child.0.take().unwrap();
            c.kill().expect("kill -9");
            c.wait().unwrap();
            child = Guard(Some(spawn(&config)));
        }
        for (_, key) in &keys {
            rest.rename(key, &format!("{key} b{round}")).await;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    wait_ready(&url, Duration::from_secs(60)).await;
    tokio::time::timeout(Duration::from_secs(90), site.state.webhooks.idle())
        .await
        .expect("deliveries settle");
    use sfjira_sandbox::jira::webhooks::deliver::Outcome;
    let log = site.state.webhooks.log();
    assert!(
        log.iter().any(|d| d.outcome == Outcome::WillRetry),
        "the kill made some deliveries fail and be retried"
    );
    assert_eq!(
        log.iter().filter(|d| d.outcome == Outcome::Failed).count(),
        0,
        "a delivery ran out of retries"
    );

    let expected = keys.len() * (1 + renames);
    let started = Instant::now();
    let recs = decode(
        &stack
            .records("jira.issues", expected + 1, Duration::from_secs(10))
            .await,
    )
    .await;
    assert!(
        started.elapsed() >= Duration::from_secs(9),
        "read until the timeout, so extra records would show"
    );
    assert_eq!(recs.len(), expected, "no loss, no duplicate: {recs:#?}");
    assert_one_record_per_change(&rest, &keys, &recs).await;
}
