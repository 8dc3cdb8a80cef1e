//! `sfjira rollback` through the binary as an operator runs it, against the real broker and
//! registry: audit entries written as the sinks write them, inverse commands read back from
//! `jira.commands` / `salesforce.commands` and decoded with the registry.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::Command as Process;
use std::time::Duration;

use rdkafka::message::{Headers, Message, OwnedMessage};
use serde_json::{Value, json};
use sfjira_core::audit::{AuditEntry, AuditResult};
use sfjira_core::avro::AvroCodec;
use sfjira_core::command::{Command, CommandKind, Owner, System};
use sfjira_core::kafka::IdempotentProducer;
use sfjira_tests::*;

struct Deployment {
    prefix: String,
    config: PathBuf,
}

impl Deployment {
    async fn new() -> Deployment {
        let prefix = format!("{}.", unique("rbcli"));
        for t in ["sfjira.audit", "jira.commands", "salesforce.commands"] {
            create_topic(&format!("{prefix}{t}"), 1).await;
        }
        let dir = std::env::temp_dir().join(unique("sfjira-rollback"));
        std::fs::create_dir_all(&dir).unwrap();
        let config = dir.join("sfjira.yaml");
        std::fs::write(
            &config,
            format!(
                "kafka: {{bootstrap_servers: \"{}\", topic_prefix: \"{prefix}\"}}\nregistry: {{url: \"{}\"}}\n",
                bootstrap(),
                registry_url()
            ),
        )
        .unwrap();
        Deployment { prefix, config }
    }

    fn topic(&self, base: &str) -> String {
        format!("{}{base}", self.prefix)
    }

    /// Runs `sfjira --config … <args>`: (exit code, stdout, stderr).
    async fn sfjira(&self, args: &[&str]) -> (i32, String, String) {
        let config = self.config.clone();
        let args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
        tokio::task::spawn_blocking(move || {
            let out = Process::new(env!("CARGO_BIN_EXE_sfjira"))
                .arg("--config")
                .arg(&config)
                .args(&args)
                .output()
                .expect("sfjira runs");
            (
                out.status.code().unwrap_or(-1),
                String::from_utf8_lossy(&out.stdout).into_owned(),
                String::from_utf8_lossy(&out.stderr).into_owned(),
            )
        })
        .await
        .unwrap()
    }

    async fn audit(&self, entries: &[AuditEntry]) {
        let producer = IdempotentProducer::new(&client_config()).unwrap();
        for e in entries {
            producer
                .send(&e.record(&self.topic("sfjira.audit")))
                .await
                .unwrap();
        }
        producer.flush(Duration::from_secs(10)).unwrap();
    }

    /// Every command on `base` (decoded), with its headers.
    async fn commands(
        &self,
        base: &str,
        expect: usize,
    ) -> Vec<(Command, BTreeMap<String, String>)> {
        let msgs = read_all(
            &self.topic(base),
            expect,
            // The CLI commits before it exits: everything is readable at once, the wait is the
            // consumer joining (and, when more is asked than was produced, proving there is none).
            Duration::from_secs(if expect == 0 { 3 } else { 10 }),
        )
        .await;
        let codec = AvroCodec::new(&registry_config()).unwrap();
        let mut out = Vec::new();
        for m in msgs {
            let decoded = codec.decode(m.payload().unwrap()).await.unwrap();
            let cmd = Command::from_avro(decoded.value).unwrap();
            assert_eq!(
                m.key(),
                Some(cmd.target.external_ref.as_bytes()),
                "keyed by external_ref"
            );
            out.push((cmd, headers(&m)));
        }
        out
    }
}

fn headers(m: &OwnedMessage) -> BTreeMap<String, String> {
    m.headers()
        .map(|hs| {
            hs.iter()
                .map(|h| {
                    (
                        h.key.to_string(),
                        String::from_utf8_lossy(h.value.unwrap_or_default()).into_owned(),
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

/// An applied audit entry, as a sink writes it, finished `ago_ms` ago.
#[allow(clippy::too_many_arguments)]
fn entry(
    id: &str,
    sink: &str,
    target: &str,
    external_ref: &str,
    op: &str,
    before: Value,
    after: Value,
    ago_ms: i64,
) -> AuditEntry {
    let map = |v: Value| v.as_object().unwrap().clone().into_iter().collect();
    let at = now_ms() - ago_ms;
    AuditEntry {
        command_id: id.into(),
        flow: "won-opportunity-to-story".into(),
        sink: sink.into(),
        target: target.into(),
        external_ref: external_ref.into(),
        operation: op.into(),
        before: map(before),
        after: map(after),
        result: AuditResult::Applied,
        detail: None,
        started_ms: at - 20,
        finished_ms: at,
        source_time_ms: at - 500,
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn rollback_inverts_applied_writes_once() {
    let d = Deployment::new().await;
    let update = entry(
        "c-update",
        "jira-sink",
        "jira:PROJ-7",
        "salesforce:Opportunity:006A",
        "update",
        json!({"summary": "Big deal", "Story Points": 2.0, "status": "To Do"}),
        json!({"summary": "WRONG", "Story Points": 99.0, "status": "Done"}),
        3_000,
    );
    let create = entry(
        "c-create",
        "jira-sink",
        "jira:PROJ-8",
        "salesforce:Opportunity:006B",
        "create",
        json!({}),
        json!({"summary": "Created by mistake"}),
        2_000,
    );
    let sf_update = entry(
        "c-sf",
        "salesforce-sink",
        "salesforce:Opportunity:006A",
        "jira:PROJ-7",
        "update",
        json!({"Delivery_Status__c": "Not Started"}),
        json!({"Delivery_Status__c": "Delivered"}),
        1_000,
    );
    let delete = entry(
        "c-delete",
        "salesforce-sink",
        "salesforce:Task:00T1",
        "jira:comment:10001",
        "delete",
        json!({}),
        json!({}),
        500,
    );
    let mut failed = entry(
        "c-failed",
        "jira-sink",
        "jira:PROJ-9",
        "salesforce:Opportunity:006C",
        "update",
        json!({"summary": "a"}),
        json!({"summary": "b"}),
        800,
    );
    failed.result = AuditResult::Failed;
    let old = entry(
        "c-old",
        "jira-sink",
        "jira:PROJ-7",
        "salesforce:Opportunity:006A",
        "update",
        json!({"summary": "Older"}),
        json!({"summary": "Big deal"}),
        3_000_000,
    );
    d.audit(&[old, update, create, sf_update, delete, failed])
        .await;

    // The delete cannot be undone: the plan says so, exit 5, and nothing is produced.
    let (code, out, err) = d
        .sfjira(&["rollback", "--since", "10m", "--output", "json"])
        .await;
    assert_eq!(code, 5, "{out}{err}");
    assert!(err.contains("1 write(s) cannot be undone"), "{err}");
    let rows: Vec<Value> = serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}"));
    let ids: Vec<&str> = rows
        .iter()
        .map(|r| r["original_command_id"].as_str().unwrap())
        .collect();
    assert_eq!(
        ids,
        ["c-delete", "c-sf", "c-create", "c-update"],
        "newest first, applied only, since 10m"
    );
    assert_eq!(rows[0]["status"], "cannot undo");
    assert_eq!(rows[1]["rollback_command_id"], "rollback:c-sf");
    assert_eq!(
        rows[1]["fields"],
        json!({"Delivery_Status__c": "Not Started"})
    );
    assert_eq!(rows[1]["status"], "not produced");

    // The same plan as a table, as the runbook's first step shows it.
    let (code, out, _) = d.sfjira(&["rollback", "--since", "10m", "--dry-run"]).await;
    assert_eq!(code, 5);
    let header = out.lines().next().unwrap_or_default();
    assert!(
        header.starts_with("ORIGINAL COMMAND") && header.contains("UNDO / WHY"),
        "{out}"
    );
    assert!(
        out.contains("cannot undo") && out.contains("Recycle Bin"),
        "{out}"
    );

    // A dry run (even forced) produces nothing.
    let (code, out, err) = d
        .sfjira(&["rollback", "--since", "10m", "--force", "--dry-run"])
        .await;
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("planned"), "{out}");
    assert!(out.contains("summary=\"Big deal\""), "{out}");
    assert!(d.commands("jira.commands", 0).await.is_empty());
    assert!(d.commands("salesforce.commands", 0).await.is_empty());

    // Forced: the rest is undone.
    let (code, out, err) = d
        .sfjira(&["rollback", "--since", "10m", "--force", "--output", "json"])
        .await;
    assert_eq!(code, 0, "{out}{err}");
    let jira = d.commands("jira.commands", 2).await;
    let sf = d.commands("salesforce.commands", 1).await;
    assert_eq!(jira.len(), 2);
    assert_eq!(sf.len(), 1);

    let (del, del_h) = &jira[0];
    assert_eq!(del.command_id, "rollback:c-create");
    assert_eq!(del.kind, CommandKind::Delete);
    assert_eq!(del.target.external_ref, "salesforce:Opportunity:006B");
    assert_eq!(del_h["sfjira.rollback-of"], "c-create");
    assert_eq!(del_h["sfjira.command-id"], "rollback:c-create");
    assert!(del_h["traceparent"].starts_with("00-"));

    let (upd, upd_h) = &jira[1];
    assert_eq!(upd.command_id, "rollback:c-update");
    assert_eq!(upd.kind, CommandKind::Upsert);
    assert_eq!(upd.target.system, System::Jira);
    assert!(upd.target.update_only);
    assert_eq!(upd_h["sfjira.rollback-of"], "c-update");
    assert_eq!(upd.fields["summary"].value, json!("Big deal"));
    assert_eq!(upd.fields["Story Points"].value, json!(2.0));
    assert!(
        upd.fields
            .values()
            .all(|f| f.changed && f.owner == Owner::Both)
    );
    let t = upd.transition_to.as_ref().unwrap();
    assert_eq!(t.value, json!("To Do"));
    // source_time = now: the inverse wins over the write it undoes.
    assert!(t.source_time.timestamp_millis() > now_ms() - 60_000);

    let (back, back_h) = &sf[0];
    assert_eq!(back.command_id, "rollback:c-sf");
    assert_eq!(
        (back.target.system, back.target.entity.as_str()),
        (System::Salesforce, "Opportunity")
    );
    assert_eq!(back.target.external_ref, "jira:PROJ-7");
    assert_eq!(
        back.fields["Delivery_Status__c"].value,
        json!("Not Started")
    );
    assert_eq!(back_h["sfjira.rollback-of"], "c-sf");

    // Run again before the sinks applied anything: the same ids, which the sinks apply once.
    let (code, _, err) = d
        .sfjira(&["rollback", "--since", "10m", "--target", "jira"])
        .await;
    assert_eq!(code, 0, "{err}");
    let again = d.commands("jira.commands", 4).await;
    let ids = |cs: &[(Command, BTreeMap<String, String>)]| {
        cs.iter()
            .map(|(c, _)| c.command_id.clone())
            .collect::<Vec<_>>()
    };
    assert_eq!(
        ids(&again[2..]),
        ids(&jira),
        "a second run makes the same command ids"
    );
    assert_eq!(
        d.commands("salesforce.commands", 2).await.len(),
        1,
        "--target jira"
    );

    // Once the sinks have applied the inverses (audited), a rollback makes nothing new.
    let mut applied: Vec<AuditEntry> = Vec::new();
    for (c, _) in jira.iter().chain(&sf) {
        let mut e = entry(
            &c.command_id,
            "jira-sink",
            "jira:PROJ-7",
            &c.target.external_ref,
            "update",
            json!({}),
            json!({}),
            0,
        );
        e.sink = if c.target.system == System::Jira {
            "jira-sink".into()
        } else {
            "salesforce-sink".into()
        };
        applied.push(e);
    }
    d.audit(&applied).await;
    let (code, out, err) = d
        .sfjira(&["rollback", "--since", "10m", "--force", "--output", "json"])
        .await;
    assert_eq!(code, 0, "{err}");
    let rows: Vec<Value> = serde_json::from_str(&out).unwrap();
    let done: Vec<&str> = rows
        .iter()
        .filter(|r| r["status"] == "already rolled back")
        .map(|r| r["original_command_id"].as_str().unwrap())
        .collect();
    assert_eq!(done, ["c-sf", "c-create", "c-update"], "{out}");
    assert_eq!(
        d.commands("jira.commands", 5).await.len(),
        4,
        "nothing new produced"
    );

    // One command by id.
    let (code, out, err) = d
        .sfjira(&[
            "rollback",
            "--since",
            "1h",
            "--command-id",
            "c-old",
            "--dry-run",
        ])
        .await;
    assert_eq!(
        code, 5,
        "a later write to the same field, not rolled back: {out}{err}"
    );
    assert!(out.contains("changed again later by c-update"), "{out}");
}
