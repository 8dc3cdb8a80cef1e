//! `sfjira mapping check|preview` as an operator runs them.

use std::process::Command;

fn sfjira(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_sfjira"))
        .args(args)
        .current_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/../.."))
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn temp(name: &str, content: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("sfjira-mapping-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let p = dir.join(name);
    std::fs::write(&p, content).unwrap();
    p
}

#[test]
fn check_accepts_the_demo_mapping_and_points_at_mistakes() {
    let (code, out, _) = sfjira(&["mapping", "check"]);
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains("config/mapping.yaml: valid, 6 flow(s)"),
        "{out}"
    );

    let bad = temp(
        "bad.yaml",
        "version: 1\nflows:\n  - name: f\n    from: salesforce.Opportunity\n    to: jira.issue\n    when: 'record.Amount >'\n    target: {project: P, issue_type: Story}\n",
    );
    let (code, _, err) = sfjira(&["mapping", "check", "--mapping", bad.to_str().unwrap()]);
    assert_eq!(code, 2);
    assert!(
        err.contains("bad.yaml:6:11: flows[0].when: invalid CEL") && err.contains("fix:"),
        "{err}"
    );
}

#[test]
fn preview_prints_commands_or_the_dead_letter_it_would_be() {
    let won = temp(
        "won.json",
        r#"{"source":"salesforce.Opportunity","id":"006A","event":"update","version":"r1","commit_time":"2026-11-27T10:00:00Z",
            "changed":["StageName"],"fields":{"Id":"006A","Name":"Acme","StageName":"Closed Won","Amount":250000.0,
            "CloseDate":"2026-12-15","AccountId":"001A","Description":null}}"#,
    );
    let (code, out, err) = sfjira(&[
        "--output",
        "json",
        "mapping",
        "preview",
        won.to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{err}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v[0]["outcome"], "command");
    assert_eq!(
        v[0]["command"]["target"]["parent_ref"],
        "salesforce:Account:001A"
    );
    assert_eq!(v[0]["command"]["transition_to"]["value"], "To Do");

    let bad_date = temp(
        "bad.json",
        r#"{"source":"salesforce.Opportunity","id":"006B","event":"create","version":"r1","commit_time":"2026-11-27T10:00:00Z",
            "fields":{"Id":"006B","Name":"Beta","StageName":"Closed Won","Amount":150000.0,"CloseDate":"15/12/2026",
            "AccountId":"001A","Description":"x"}}"#,
    );
    let (code, out, _) = sfjira(&[
        "--output",
        "json",
        "mapping",
        "preview",
        bad_date.to_str().unwrap(),
    ]);
    assert_eq!(code, 2);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v[0]["outcome"], "dead-letter");
    assert_eq!(v[0]["code"], "SFJ-5004");
    assert!(v[0]["error"].as_str().unwrap().contains("duedate"), "{v}");
}
