//! `sfjira mapping check --salesforce-url … --jira-url …` against the sandbox's org and site.

use std::process::Command;

use sfjira_sandbox::clock::SandboxClock;
use sfjira_sandbox::{jira, salesforce};

async fn check(mapping: &str, salesforce_url: &str, jira_url: &str) -> (i32, String, String) {
    let args = vec![
        "mapping".to_string(),
        "check".into(),
        "--mapping".into(),
        mapping.to_string(),
        "--salesforce-url".into(),
        salesforce_url.to_string(),
        "--jira-url".into(),
        jira_url.to_string(),
    ];
    tokio::task::spawn_blocking(move || {
        let out = Command::new(env!("CARGO_BIN_EXE_sfjira"))
            .args(&args)
            .current_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/../.."))
            .env(
                "SFJIRA_CHECK_SALESFORCE_CLIENT_ID",
                "sfjira-sandbox-consumer-key",
            )
            .env(
                "SFJIRA_CHECK_SALESFORCE_CLIENT_SECRET",
                "sfjira-sandbox-consumer-secret",
            )
            .env("SFJIRA_CHECK_JIRA_USER", "sfjira@example.com")
            .env("SFJIRA_CHECK_JIRA_TOKEN", "sandbox-token")
            .output()
            .unwrap();
        (
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    })
    .await
    .unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn mappings_are_checked_against_the_live_org_and_site() {
    let clock = SandboxClock::real_time();
    let org = salesforce::wiring::spawn_full_for_tests(Default::default(), clock.clone())
        .await
        .unwrap();
    let site = jira::spawn_for_tests(Default::default(), clock)
        .await
        .unwrap();
    let (sf, jira_url) = (org.http.base_url.clone(), site.base_url());

    let (code, out, err) = check("config/mapping.yaml", &sf, &jira_url).await;
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("consistent with"), "{out}");

    let dir = std::env::temp_dir().join(format!("sfjira-mapping-live-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let bad = dir.join("bad.yaml");
    std::fs::write(
        &bad,
        r#"version: 1
flows:
  - name: to-jira
    from: salesforce.Opportunity
    to: jira.issue
    target: { project: NOPE, issue_type: Story }
    fields:
      summary: { from: Nmae }
      "Deal Size": { from: Amount }
  - name: back
    from: jira.issue
    to: salesforce.Opportunity
    target: { external_id_field: Name }
    fields:
      Delivery_Status__c: { from: status, table: { Done: Shipped } }
      NoSuchField__c: { from: summary }
  - name: gone
    from: salesforce.Widget__c
    to: jira.comment
    target: { attach_to: '"x"' }
"#,
    )
    .unwrap();
    let (code, _, err) = check(bad.to_str().unwrap(), &sf, &jira_url).await;
    assert_eq!(code, 2, "{err}");
    for expected in [
        "flow to-jira: source field Nmae: Opportunity has no field Nmae",
        "flow to-jira: field Deal Size: the site has no such field",
        "flow to-jira: target.project NOPE: the site has no such project",
        "flow back: target.external_id_field Name: not an external-id field",
        "flow back: field Delivery_Status__c: 'Shipped' is not a value of the restricted picklist",
        "flow back: field NoSuchField__c: Opportunity has no field NoSuchField__c",
        "flow gone: from salesforce.Widget__c: the org has no such object",
    ] {
        assert!(err.contains(expected), "missing `{expected}` in:\n{err}");
    }
    let _ = std::fs::remove_dir_all(dir);
}
