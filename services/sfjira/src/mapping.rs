//! `sfjira mapping check|preview`: try a mapping before deploying it. `check` validates the
//! file and lists its flows; `preview` runs it on one source record (JSON) and prints the
//! commands it would produce — or the error, with the code it would carry into the DLQ.

use std::io::Read;
use std::path::Path;
use std::process::ExitCode;

use anyhow::Context;
use sfjira_transformer::engine::{Outcome, RecordOutcome, SourceRecord};
use sfjira_transformer::mapping::{Delivery, Mapping};

use crate::Output;

/// Exit code for an invalid mapping or a record that would be dead-lettered.
const INVALID: u8 = 2;

pub fn check(path: &Path, live: &crate::mapping_live::Endpoints) -> ExitCode {
    match Mapping::load(path) {
        Ok(m) if live.salesforce_url.is_some() || live.jira_url.is_some() => {
            check_live(path, &m, live)
        }
        Ok(m) => {
            println!("{}: valid, {} flow(s)", path.display(), m.flows.len());
            for f in &m.flows {
                let delivery = match f.delivery {
                    Delivery::Realtime => "realtime".to_string(),
                    Delivery::Batched(d) => format!("batched every {}s", d.as_secs()),
                };
                println!(
                    "  {:<32} {} -> {}  ({} field(s), {delivery})",
                    f.name,
                    f.from,
                    f.to,
                    f.fields.len() + f.status.is_some() as usize
                );
            }
            ExitCode::SUCCESS
        }
        Err(errors) => {
            eprint!("{errors}");
            ExitCode::from(INVALID)
        }
    }
}

fn check_live(path: &Path, mapping: &Mapping, live: &crate::mapping_live::Endpoints) -> ExitCode {
    let runtime = tokio::runtime::Runtime::new().expect("tokio runtime");
    match runtime.block_on(crate::mapping_live::check(mapping, live)) {
        Ok(findings) if findings.is_empty() => {
            let against: Vec<&str> = [live.salesforce_url.as_deref(), live.jira_url.as_deref()]
                .into_iter()
                .flatten()
                .collect();
            println!(
                "{}: valid, {} flow(s), and consistent with {}",
                path.display(),
                mapping.flows.len(),
                against.join(" and ")
            );
            ExitCode::SUCCESS
        }
        Ok(findings) => {
            eprintln!(
                "{}: {} problem(s) against the live metadata:",
                path.display(),
                findings.len()
            );
            for f in findings {
                eprintln!("  flow {}: {}: {}", f.flow, f.what, f.problem);
            }
            ExitCode::from(INVALID)
        }
        Err(e) => {
            eprintln!("sfjira: {e:#}");
            ExitCode::FAILURE
        }
    }
}

pub fn preview(path: &Path, record: &Path, output: Output) -> anyhow::Result<ExitCode> {
    let mapping = match Mapping::load(path) {
        Ok(m) => m,
        Err(errors) => {
            eprint!("{errors}");
            return Ok(ExitCode::from(INVALID));
        }
    };
    let text = if record == Path::new("-") {
        let mut s = String::new();
        std::io::stdin().read_to_string(&mut s)?;
        s
    } else {
        std::fs::read_to_string(record).with_context(|| format!("reading {}", record.display()))?
    };
    let record: SourceRecord = serde_json::from_str(&text).with_context(|| {
        "the record is not a source record: expected JSON with source, id, event, version, commit_time, fields \
         (and optionally key, changed, nulled, actor, change_origin, history_marker)"
    })?;
    let mut failed = false;
    let report = match mapping.apply(&record) {
        RecordOutcome::Echo => serde_json::json!({"outcome": "echo", "why": "sfjira's own write coming back: no commands"}),
        RecordOutcome::Unmapped => serde_json::json!({"outcome": "unmapped", "why": format!("no flow reads {}", record.source)}),
        RecordOutcome::Flows(outcomes) => serde_json::Value::Array(
            outcomes
                .into_iter()
                .map(|o| match o {
                    Outcome::Command(c) => serde_json::json!({"outcome": "command", "command": c}),
                    Outcome::Skipped { flow, reason } => serde_json::json!({"outcome": "skipped", "flow": flow, "why": format!("{reason:?}")}),
                    Outcome::Failed { flow, error } => {
                        failed = true;
                        serde_json::json!({"outcome": "dead-letter", "flow": flow, "code": error.code.as_str(), "error": error.message, "fix": error.code.remediation()})
                    }
                })
                .collect(),
        ),
    };
    match output {
        Output::Json => println!("{}", serde_json::to_string(&report)?),
        Output::Table => println!("{}", serde_json::to_string_pretty(&report)?),
    }
    Ok(if failed {
        ExitCode::from(INVALID)
    } else {
        ExitCode::SUCCESS
    })
}
