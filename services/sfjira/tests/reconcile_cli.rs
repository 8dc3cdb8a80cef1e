//! `sfjira reconcile` through the binary as an operator runs it: linked records in the
//! Salesforce and Jira sandboxes (in-process), links in a real `sfjira.links` topic, repair
//! commands read back from the real broker and decoded with the real registry.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command as Process;
use std::time::Duration;

use rdkafka::message::{Headers, Message};
use serde_json::{Value, json};
use sfjira_core::avro::AvroCodec;
use sfjira_core::command::{Command, CommandKind, Owner, System};
use sfjira_core::kafka::IdempotentProducer;
use sfjira_core::links::Link;
use sfjira_sandbox::clock::SandboxClock;
use sfjira_sandbox::jira::config::JiraConfig;
use sfjira_sandbox::{jira, salesforce};
use sfjira_tests::*;

const REPO: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../..");

async fn sfjira(config: &Path, args: &[&str]) -> (i32, String, String) {
    let config = config.to_path_buf();
    let args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
    tokio::task::spawn_blocking(move || {
        let out = Process::new(env!("CARGO_BIN_EXE_sfjira"))
            .arg("--config")
            .arg(&config)
            .args(&args)
            .current_dir(REPO)
            .env("TEST_RECONCILE_SF_SECRET", "sfjira-sandbox-consumer-secret")
            .env("TEST_RECONCILE_JIRA_TOKEN", "sandbox-token")
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

struct Salesforce {
    http: reqwest::Client,
    url: String,
    token: String,
}

impl Salesforce {
    async fn login(url: &str) -> Salesforce {
        let http = reqwest::Client::new();
        let body: Value = http
            .post(format!("{url}/services/oauth2/token"))
            .form(&[
                ("grant_type", "client_credentials"),
                ("client_id", "sfjira-sandbox-consumer-key"),
                ("client_secret", "sfjira-sandbox-consumer-secret"),
            ])
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        Salesforce {
            http,
            url: url.to_string(),
            token: body["access_token"].as_str().unwrap().to_string(),
        }
    }

    async fn create(&self, object: &str, fields: Value) -> String {
        let resp = self
            .http
            .post(format!(
                "{}/services/data/v62.0/sobjects/{object}",
                self.url
            ))
            .bearer_auth(&self.token)
            .json(&fields)
            .send()
            .await
            .unwrap();
        let status = resp.status();
        let body: Value = resp.json().await.unwrap();
        assert!(status.is_success(), "creating {object}: {body}");
        body["id"].as_str().unwrap().to_string()
    }
}

async fn jira_create(http: &reqwest::Client, site: &str, fields: Value) -> String {
    let resp = http
        .post(format!("{site}/rest/api/3/issue"))
        .basic_auth("sfjira@example.com", Some("sandbox-token"))
        .json(&json!({ "fields": fields }))
        .send()
        .await
        .unwrap();
    let status = resp.status();
    let body: Value = resp.json().await.unwrap();
    assert!(status.is_success(), "creating an issue: {body}");
    body["key"].as_str().unwrap().to_string()
}

fn adf(text: &str) -> Value {
    json!({"type": "doc", "version": 1, "content": [{"type": "paragraph", "content": [{"type": "text", "text": text}]}]})
}

async fn commands(topic: &str, expect: usize) -> Vec<(Command, BTreeMap<String, String>)> {
    let wait = Duration::from_secs(if expect == 0 { 3 } else { 20 });
    let codec = AvroCodec::new(&registry_config()).unwrap();
    let mut out = Vec::new();
    for m in read_all(topic, expect, wait).await {
        let cmd =
            Command::from_avro(codec.decode(m.payload().unwrap()).await.unwrap().value).unwrap();
        let headers = m
            .headers()
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
            .unwrap_or_default();
        out.push((cmd, headers));
    }
    out
}

#[tokio::test(flavor = "multi_thread")]
async fn reconcile_finds_drift_and_repairs_it_from_the_owner() {
    let prefix = format!("{}.", unique("reccli"));
    for t in ["sfjira.links", "jira.commands", "salesforce.commands"] {
        create_topic(&format!("{prefix}{t}"), 1).await;
    }
    let clock = SandboxClock::real_time();
    let org = salesforce::wiring::spawn_full_for_tests(Default::default(), clock.clone())
        .await
        .unwrap();
    let mut site_config = JiraConfig::default();
    site_config.rate_limits.enabled = false;
    let site = jira::spawn_for_tests(site_config, clock).await.unwrap();
    let (sf_url, jira_url) = (org.http.base_url.clone(), site.base_url());

    // A customer account and its won opportunity, and the epic and story sfjira made of them —
    // in step, except the story's points, edited by hand in Jira (150 000 / 50 000 = 3, not 5).
    let sf = Salesforce::login(&sf_url).await;
    let account = sf
        .create("Account", json!({"Name": "Acme", "Type": "Customer"}))
        .await;
    let opp = sf
        .create(
            "Opportunity",
            json!({"Name": "Acme platform", "StageName": "Closed Won", "Amount": 150000.0,
                   "CloseDate": "2026-12-15", "AccountId": account, "Description": "Needs SSO",
                   "Delivery_Status__c": "Not Started"}),
        )
        .await;
    let http = reqwest::Client::new();
    let epic = jira_create(
        &http,
        &jira_url,
        json!({"project": {"key": "PROJ"}, "issuetype": {"name": "Epic"}, "summary": "Acme",
               "customfield_10011": "Acme", "customfield_10050": account, "labels": ["salesforce", "sfjira-0123456789abcdef0123"]}),
    )
    .await;
    let story = jira_create(
        &http,
        &jira_url,
        json!({"project": {"key": "PROJ"}, "issuetype": {"name": "Story"}, "summary": "Acme platform",
               "description": adf("Needs SSO"), "duedate": "2026-12-15", "customfield_10050": opp,
               "customfield_10016": 5.0, "customfield_10060": {"value": "Silver"},
               "parent": {"key": epic}}),
    )
    .await;

    let links_topic = format!("{prefix}sfjira.links");
    let producer = IdempotentProducer::new(&client_config()).unwrap();
    for (sf_ref, jira_ref) in [
        (
            format!("salesforce:Account:{account}"),
            format!("jira:{epic}"),
        ),
        (
            format!("salesforce:Opportunity:{opp}"),
            format!("jira:{story}"),
        ),
    ] {
        for r in Link::linked(&sf_ref, &jira_ref, None, "c0").records_both_ways(&links_topic) {
            producer.send(&r).await.unwrap();
        }
    }
    producer.flush(Duration::from_secs(10)).unwrap();

    let dir = std::env::temp_dir().join(unique("sfjira-reconcile"));
    std::fs::create_dir_all(&dir).unwrap();
    let config = dir.join("sfjira.yaml");
    std::fs::write(
        &config,
        format!(
            "kafka: {{bootstrap_servers: \"{}\", topic_prefix: \"{prefix}\"}}\nregistry: {{url: \"{}\"}}\n\
             transformer: {{mapping: config/mapping.yaml}}\n\
             salesforce_sink:\n  login_url: \"{sf_url}\"\n  auth: {{type: client_credentials, client_id: sfjira-sandbox-consumer-key, client_secret: {{env: TEST_RECONCILE_SF_SECRET}}}}\n\
             jira_sink:\n  site_url: \"{jira_url}\"\n  email: sfjira@example.com\n  api_token: {{env: TEST_RECONCILE_JIRA_TOKEN}}\n",
            bootstrap(),
            registry_url(),
        ),
    )
    .unwrap();

    // Drift: one field, owned by Salesforce; exit 4.
    let (code, out, err) = sfjira(&config, &["reconcile", "--output", "json"]).await;
    assert_eq!(code, 4, "{out}{err}");
    let doc: Value = serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}"));
    assert_eq!(doc["pairs_checked"], 2);
    assert_eq!(doc["problems"], json!([]));
    assert_eq!(
        doc["drift"],
        json!([{
            "record": format!("salesforce:Opportunity:{opp}"),
            "jira": format!("jira:{story}"),
            "flow": "won-opportunity-to-story",
            "field": "Story Points",
            "salesforce": "3.0",
            "jira_value": "5.0",
            "owner": "salesforce",
            "repair": "write jira",
        }])
    );
    assert_eq!(doc["repairs"][0]["produced"], false);

    // The same as a table.
    let (code, out, _) = sfjira(&config, &["reconcile", "--entity", "Opportunity"]).await;
    assert_eq!(code, 4);
    let lines: Vec<&str> = out.lines().collect();
    assert!(
        lines[0].starts_with("RECORD")
            && lines[0].contains("SALESFORCE")
            && lines[0].contains("OWNER"),
        "{out}"
    );
    let row: Vec<&str> = lines[1]
        .split("  ")
        .map(str::trim)
        .filter(|c| !c.is_empty())
        .collect();
    assert_eq!(
        row,
        [
            format!("salesforce:Opportunity:{opp} <-> jira:{story}").as_str(),
            "Story Points",
            "3.0",
            "5.0",
            "salesforce",
            "write jira"
        ],
        "{out}"
    );
    assert!(
        out.contains("1 linked pair(s) checked, 1 field(s) drifted"),
        "{out}"
    );
    // The account and its epic are in step.
    let (code, out, err) = sfjira(&config, &["reconcile", "--entity", "Account"]).await;
    assert_eq!(code, 0, "{out}{err}");
    assert!(
        out.contains("1 linked pair(s) checked, 0 field(s) drifted"),
        "{out}"
    );
    // Nothing was produced without --repair.
    assert!(
        commands(&format!("{prefix}jira.commands"), 0)
            .await
            .is_empty()
    );

    // --repair: one command restoring Salesforce's value in Jira.
    let (code, out, err) = sfjira(&config, &["reconcile", "--repair", "--output", "json"]).await;
    assert_eq!(code, 4, "{out}{err}");
    let doc: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(doc["repairs"][0]["produced"], true);
    let produced = commands(&format!("{prefix}jira.commands"), 1).await;
    assert_eq!(produced.len(), 1);
    let (cmd, headers) = &produced[0];
    assert!(
        cmd.command_id.starts_with("reconcile:"),
        "{}",
        cmd.command_id
    );
    assert_eq!(doc["repairs"][0]["command_id"], cmd.command_id.as_str());
    assert_eq!(headers["sfjira.command-id"], cmd.command_id);
    assert_eq!(
        headers["sfjira.reconcile-of"],
        format!("salesforce:Opportunity:{opp} <-> jira:{story}")
    );
    assert!(headers["traceparent"].starts_with("00-"));
    assert_eq!(cmd.kind, CommandKind::Upsert);
    assert_eq!(cmd.flow, "won-opportunity-to-story");
    assert_eq!(cmd.target.system, System::Jira);
    assert_eq!(
        cmd.target.external_ref,
        format!("salesforce:Opportunity:{opp}")
    );
    assert!(cmd.target.update_only);
    assert_eq!(cmd.fields.keys().collect::<Vec<_>>(), ["Story Points"]);
    let f = &cmd.fields["Story Points"];
    assert_eq!(
        (f.value.clone(), f.owner, f.changed),
        (json!(3.0), Owner::Salesforce, true)
    );
    assert!(cmd.transition_to.is_none());
    assert!(
        commands(&format!("{prefix}salesforce.commands"), 0)
            .await
            .is_empty()
    );

    // Run again before the sink applied it: the same command id, which the sink applies once.
    let (code, out, _) = sfjira(&config, &["reconcile", "--repair"]).await;
    assert_eq!(code, 4);
    assert!(out.contains("1 repair command(s) produced"), "{out}");
    let again = commands(&format!("{prefix}jira.commands"), 2).await;
    assert_eq!(again.len(), 2);
    assert_eq!(again[1].0.command_id, cmd.command_id);

    // What the jira-sink would do with it; then everything is in step.
    let resp = http
        .put(format!("{jira_url}/rest/api/3/issue/{story}"))
        .basic_auth("sfjira@example.com", Some("sandbox-token"))
        .json(&json!({"fields": {"customfield_10016": 3.0}}))
        .send()
        .await
        .unwrap();
    assert!(resp.status().is_success());
    let (code, out, err) = sfjira(&config, &["reconcile"]).await;
    assert_eq!(code, 0, "{out}{err}");
    assert!(
        out.contains("2 linked pair(s) checked, 0 field(s) drifted"),
        "{out}"
    );

    // An object the mapping does not map is a mistake, not "in step".
    let (code, _, err) = sfjira(&config, &["reconcile", "--entity", "Case"]).await;
    assert_eq!(code, 1);
    assert!(err.contains("no flow maps salesforce.Case"), "{err}");

    // Every option is documented.
    let (code, help, _) = sfjira(&config, &["reconcile", "--help"]).await;
    assert_eq!(code, 0);
    for opt in [
        "--entity",
        "--repair",
        "--include-status",
        "--mapping",
        "--output",
    ] {
        assert!(help.contains(opt), "{opt} missing from:\n{help}");
    }
    let (_, help, _) = sfjira(&config, &["rollback", "--help"]).await;
    for opt in [
        "--since",
        "--target",
        "--command-id",
        "--dry-run",
        "--force",
        "--output",
    ] {
        assert!(help.contains(opt), "{opt} missing from:\n{help}");
    }
    let _ = std::fs::remove_dir_all(dir);
}
