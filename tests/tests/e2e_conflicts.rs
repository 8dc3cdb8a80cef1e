//! Conflicts on a field both systems own converge to the later edit, on both sides.
//!
//! The opportunity's Name and its story's summary are owned by `both`
//! (tests/fixtures/both_owned_mapping.yaml). With both sinks stopped, the field is edited on
//! each side — Jira first and Salesforce later for one record, the other way round for the
//! other — so each sink then holds a command older than the target's own last edit. When the
//! sinks come back, the older command must be skipped (superseded) and the newer one applied:
//! both sides end with the later edit, whichever order the commands arrive in.

use std::path::Path;
use std::time::Duration;

use reqwest::Method;
use serde_json::{Value, json};
use sfjira_tests::demo::scenario::SALESFORCE_ID_FIELD;
use sfjira_tests::demo::{Deployment, Engineer, SalesUser, wait_for};
use sfjira_tests::{bootstrap, registry_url};

#[tokio::test(flavor = "multi_thread")]
async fn concurrent_edits_of_a_both_owned_field_converge_to_the_later_one() {
    let mapping = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/both_owned_mapping.yaml");
    let mut d = Deployment::start_with_mapping(&bootstrap(), &registry_url(), &mapping)
        .await
        .expect("deployment starts");
    let sales = SalesUser::new(&d.salesforce_url, "Alice");
    let engineer = Engineer::new(&d.jira_url, "bob@example.com");

    let mut pairs = Vec::new();
    for name in ["Jira then Salesforce", "Salesforce then Jira"] {
        let opp = sales
            .create(
                "Opportunity",
                json!({"Name": name, "StageName": "Prospecting", "CloseDate": "2026-12-31"}),
            )
            .await
            .unwrap();
        let story = wait_for(Duration::from_secs(90), || async {
            engineer.issues().await.ok()?.into_iter().find(|i| {
                i["fields"][SALESFORCE_ID_FIELD] == json!(opp)
                    && i["fields"]["summary"] == json!(name)
            })
        })
        .await
        .unwrap_or_else(|| panic!("no story for {opp}\n{}", d.all_logs()));
        pairs.push((opp, story["key"].as_str().unwrap().to_string()));
    }
    // The create's link must be known before the edits: the Jira → Salesforce flow finds the
    // opportunity through it. A no-op round trip through the sinks proves it: give them time.
    tokio::time::sleep(Duration::from_secs(3)).await;

    for sink in ["sfjira-jira-sink", "sfjira-salesforce-sink"] {
        d.kill(sink).await.unwrap();
    }
    let edit_jira = |key: String, summary: &'static str| {
        let engineer = engineer.clone();
        async move {
            engineer
                .call(
                    Method::PUT,
                    &format!("/issue/{key}"),
                    Some(json!({"fields": {"summary": summary}})),
                )
                .await
                .unwrap();
        }
    };
    let (first, second) = (&pairs[0], &pairs[1]);
    // Record 1: Jira first, Salesforce 1.5 s later (source times far enough apart).
    edit_jira(first.1.clone(), "edited in Jira (earlier)").await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    sales
        .update(
            "Opportunity",
            &first.0,
            json!({"Name": "edited in Salesforce (later)"}),
        )
        .await
        .unwrap();
    // Record 2: Salesforce first, Jira later.
    sales
        .update(
            "Opportunity",
            &second.0,
            json!({"Name": "edited in Salesforce (earlier)"}),
        )
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    edit_jira(second.1.clone(), "edited in Jira (later)").await;
    // Let both commands reach the sinks' topics before the sinks come back.
    tokio::time::sleep(Duration::from_secs(8)).await;
    for sink in ["sfjira-jira-sink", "sfjira-salesforce-sink"] {
        d.start_service(sink).unwrap();
        d.wait_ready(sink).await.unwrap();
    }

    let expect = [
        (first, "edited in Salesforce (later)"),
        (second, "edited in Jira (later)"),
    ];
    let converged = wait_for(Duration::from_secs(90), || async {
        for ((opp, key), want) in &expect {
            let o = sales.record("Opportunity", opp).await.ok()??;
            let issue = issue(&engineer, key).await?;
            if o["Name"] != json!(want) || issue["fields"]["summary"] != json!(want) {
                return None;
            }
        }
        Some(())
    })
    .await;
    if converged.is_none() {
        let mut state = String::new();
        for ((opp, key), _) in &expect {
            let o = sales.record("Opportunity", opp).await.unwrap().unwrap();
            let i = issue(&engineer, key).await.unwrap();
            state += &format!(
                "{opp}: {:?} / {key}: {:?}\n",
                o["Name"], i["fields"]["summary"]
            );
        }
        panic!(
            "did not converge to the later edits:\n{state}\n{}",
            d.all_logs()
        );
    }
    // And stays there: the superseded commands are not applied late, nothing echoes back.
    tokio::time::sleep(Duration::from_secs(8)).await;
    for ((opp, key), want) in &expect {
        let o = sales.record("Opportunity", opp).await.unwrap().unwrap();
        assert_eq!(o["Name"], json!(want), "{opp}");
        let i = issue(&engineer, key).await.unwrap();
        assert_eq!(i["fields"]["summary"], json!(want), "{key}");
    }
}

async fn issue(engineer: &Engineer, key: &str) -> Option<Value> {
    engineer
        .issues()
        .await
        .ok()?
        .into_iter()
        .find(|i| i["key"] == json!(key))
}
