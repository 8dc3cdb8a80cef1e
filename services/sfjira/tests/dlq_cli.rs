//! `sfjira dlq list|show|replay` against the real broker and registry, through the binary as an
//! operator runs it.

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use rdkafka::message::Message;
use serde_json::Value;
use sfjira_core::dlq::{Attempts, DlqRouter, FailedAt, FailedRecord};
use sfjira_core::errors::{ErrorCode, StageError};
use sfjira_core::kafka::{IdempotentProducer, OutRecord};
use sfjira_tests::*;

struct Cli {
    config: PathBuf,
}

impl Cli {
    fn run(&self, args: &[&str]) -> (bool, String, String) {
        let out = Command::new(env!("CARGO_BIN_EXE_sfjira"))
            .arg("--config")
            .arg(&self.config)
            .args(args)
            .output()
            .expect("sfjira runs");
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }

    fn list(&self) -> Vec<Value> {
        let (ok, out, err) =
            self.run(&["--output", "json", "dlq", "list", "--stage", "transformer"]);
        assert!(ok, "dlq list failed: {err}");
        serde_json::from_str(&out)
            .unwrap_or_else(|e| panic!("dlq list printed no JSON ({e}): {out}"))
    }
}

fn keys(rows: &[Value]) -> Vec<&str> {
    rows.iter().map(|r| r["key"].as_str().unwrap()).collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn list_show_and_replay_each_record_once() {
    let prefix = format!("{}.", unique("dlqcli"));
    let origin = format!("{prefix}jira.issues");
    let dlq_topic = format!("{prefix}transformer.dlq");
    create_topic(&origin, 1).await;
    create_topic(&dlq_topic, 1).await;
    create_topic(&format!("{prefix}sfjira.checkpoints"), 1).await;

    let dir = std::env::temp_dir().join(unique("sfjira-cli"));
    std::fs::create_dir_all(&dir).unwrap();
    let config = dir.join("sfjira.yaml");
    std::fs::write(
        &config,
        format!("kafka:\n  bootstrap_servers: \"{}\"\n  topic_prefix: \"{prefix}\"\nregistry:\n  url: \"{}\"\n", bootstrap(), registry_url()),
    )
    .unwrap();
    let cli = Cli { config };

    // Three records failed in the transformer: two undecodable, one rate-limited.
    let router = DlqRouter::new("transformer", &prefix, "test");
    let producer = IdempotentProducer::new(&client_config()).unwrap();
    for (offset, (key, code)) in [
        ("a", ErrorCode::AvroBodyInvalid),
        ("b", ErrorCode::RateLimited),
        ("c", ErrorCode::AvroBodyInvalid),
    ]
    .into_iter()
    .enumerate()
    {
        let record = OutRecord::new(&origin)
            .key(key)
            .payload(format!("value-{key}"))
            .header(
                "traceparent",
                "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
            );
        let failed = FailedRecord {
            topic: origin.clone(),
            partition: 0,
            offset: offset as i64,
            record,
        };
        let err = StageError::new(code, format!("{key} failed"));
        router
            .send(
                &producer,
                &failed,
                &err,
                FailedAt::Transformation,
                Attempts::once(),
            )
            .await
            .unwrap();
    }

    let rows = cli.list();
    assert_eq!(keys(&rows), ["a", "b", "c"]);
    assert_eq!(rows[1]["code"], "SFJ-4001");
    assert_eq!(rows[1]["origin_topic"], origin.as_str());

    let (ok, out, err) = cli.run(&["dlq", "show", "--stage", "transformer", "--offset", "1"]);
    assert!(ok, "{err}");
    assert!(
        out.contains("sfjira.error.code: SFJ-4001") && out.contains("\"text\": \"value-b\""),
        "{out}"
    );

    // A dry run replays nothing.
    let (ok, out, err) = cli.run(&[
        "dlq",
        "replay",
        "--stage",
        "transformer",
        "--code",
        "SFJ-4001",
        "--dry-run",
    ]);
    assert!(ok && out.contains("would replay 1 record"), "{out}{err}");
    assert!(
        read_all(&origin, 1, Duration::from_secs(3))
            .await
            .is_empty()
    );

    // Replay only the rate-limited one: it goes back, without error headers, counted.
    let (ok, out, err) = cli.run(&[
        "dlq",
        "replay",
        "--stage",
        "transformer",
        "--code",
        "SFJ-4001",
    ]);
    assert!(ok && out.contains("replayed 1 record"), "{out}{err}");
    assert_eq!(
        keys(&cli.list()),
        ["a", "c"],
        "the replayed record left the backlog"
    );

    // Then the rest; a second full replay finds nothing to do.
    let (ok, out, err) = cli.run(&["dlq", "replay", "--stage", "transformer"]);
    assert!(ok && out.contains("replayed 2 record"), "{out}{err}");
    assert!(cli.list().is_empty());
    let (ok, out, _) = cli.run(&["dlq", "replay", "--stage", "transformer"]);
    assert!(ok && out.contains("0 record(s) replayed"), "{out}");

    let back = read_all(&origin, 4, Duration::from_secs(5)).await;
    let got: Vec<&[u8]> = back.iter().map(|m| m.key().unwrap()).collect();
    assert_eq!(
        got,
        [&b"b"[..], b"a", b"c"],
        "each record replayed exactly once"
    );
    let h = |m: &rdkafka::message::OwnedMessage, name: &str| -> Option<String> {
        use rdkafka::message::Headers;
        m.headers()?
            .iter()
            .find(|h| h.key == name)
            .map(|h| String::from_utf8_lossy(h.value.unwrap()).into_owned())
    };
    assert_eq!(back[0].payload(), Some(&b"value-b"[..]));
    assert_eq!(h(&back[0], "sfjira.replay.count").as_deref(), Some("1"));
    assert_eq!(
        h(&back[0], "sfjira.replayed-from"),
        Some(format!("{dlq_topic}/0/1"))
    );
    assert!(h(&back[0], "traceparent").is_some(), "the trace continues");
    assert!(
        h(&back[0], "sfjira.error.code").is_none()
            && h(&back[0], "__connect.errors.topic").is_none()
    );
    assert!(
        h(&back[0], "sfjira.error.first_failed_at").is_some(),
        "kept for a second failure"
    );

    let (ok, _, err) = cli.run(&["dlq", "show", "--stage", "transformer", "--offset", "1"]);
    assert!(!ok && err.contains("no pending record"), "{err}");
    let _ = std::fs::remove_dir_all(dir);
}
