//! kill -9 of the `sfjira-salesforce-source` binary in the middle of a burst: after a restart,
//! the topic (read_committed) holds every change exactly once, in order per record.

mod common;

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use common::*;
use serde_json::json;

/// The binary, killed when dropped, so a failing test leaves no process behind.
struct Source(Child);

impl Drop for Source {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn start_binary(dep: &Deployment) -> Source {
    Command::new(env!("CARGO_BIN_EXE_sfjira-salesforce-source"))
        .arg("--config")
        .arg(&dep.config_path)
        .env(SECRET_VAR, SECRET)
        .env_remove("SFJIRA_CONFIG")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map(Source)
        .expect("the source binary starts")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_mid_burst_then_restart_is_exactly_once_in_order() {
    const RECORDS: usize = 200;
    let org = Org::start().await;
    let dep = Deployment::new("sfsrc-kill", &org, "  batch_size: 20\n  fetch_size: 25\n").await;
    let topic = dep.topic("salesforce.cdc.Account");
    let mut child = start_binary(&dep);

    // The burst: a create and an update per record, written while the source runs.
    let (go, go_rx) = tokio::sync::oneshot::channel::<()>();
    let writer = {
        let base = org.base().to_string();
        tokio::spawn(async move {
            let http = reqwest::Client::new();
            let mut ids = Vec::new();
            for i in 0..RECORDS {
                let r: serde_json::Value = http
                    .post(format!(
                        "{base}/__admin/salesforce/as/Alice/sobjects/Account"
                    ))
                    .json(&json!({"Name": format!("Burst {i}")}))
                    .send()
                    .await
                    .unwrap()
                    .json()
                    .await
                    .unwrap();
                ids.push(r["id"].as_str().unwrap().to_string());
            }
            // The second half of the burst waits for the test to be ready to kill.
            let _ = go_rx.await;
            for id in &ids {
                let r = http
                    .patch(format!(
                        "{base}/__admin/salesforce/as/Alice/sobjects/Account/{id}"
                    ))
                    .json(&json!({"Phone": "42"}))
                    .send()
                    .await
                    .unwrap();
                assert!(r.status().is_success());
                // Paced, so the burst outlasts the moment of the kill: the sandbox alone
                // writes thousands per second.
                tokio::time::sleep(Duration::from_millis(3)).await;
            }
            ids
        })
    };
    // Kill once some, but not all, of the burst is committed.
    let partial = read_changes(&topic, 20, Duration::from_secs(60)).await;
    assert!(partial.len() >= 20, "the source published before the kill");
    go.send(()).unwrap();
    tokio::time::sleep(Duration::from_millis(150)).await;
    assert!(
        !writer.is_finished(),
        "the kill lands in the middle of the burst"
    );
    child.0.kill().expect("SIGKILL");
    let _ = child.0.wait();
    let ids = writer.await.expect("the burst was written");

    let child = start_binary(&dep);
    let recs = read_changes(&topic, 2 * RECORDS, Duration::from_secs(90)).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let recs_final = read_changes(&topic, 2 * RECORDS + 1, Duration::from_secs(5)).await;
    // SIGTERM: a graceful stop.
    let _ = Command::new("kill").arg(child.0.id().to_string()).status();
    let status = tokio::task::spawn_blocking(move || {
        let mut child = child;
        let status = child.0.wait();
        drop(child);
        status
    })
    .await
    .unwrap()
    .unwrap();
    assert!(
        status.success(),
        "SIGTERM ends the source cleanly: {status:?}"
    );

    assert_eq!(recs.len(), 2 * RECORDS, "every change arrived");
    assert_eq!(recs_final.len(), 2 * RECORDS, "and none twice");
    let by_key = assert_exactly_once(&recs_final);
    for id in &ids {
        let types: Vec<&str> = by_key[id].iter().map(Rec::change_type).collect();
        assert_eq!(types, ["CREATE", "UPDATE"], "in order for {id}");
    }
}
