//! `sfjira rollback`: undo what the sinks wrote since a time, by producing inverse commands
//! that go through the sinks like any other command (so they are deduplicated, audited and
//! echo-suppressed). Reads `sfjira.audit`; the planning rules live in [`invert`]; producing is
//! [`crate::commands_out`] (one transaction for the whole rollback).
//!
//! Exit codes: 0 done (or nothing to do); 5 something could not be undone and `--force` was
//! not given — then nothing is produced, so a rollback is never half-applied by surprise.

mod invert;

use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, bail};
use chrono::Utc;
use clap::Args;
use serde_json::{Value, json};
use sfjira_core::audit;
use sfjira_core::command::System;
use sfjira_core::config::SfjiraConfig;
use sfjira_core::kafka::{client_config, topic_name};

use crate::Output;
use crate::commands_out::{self, OutCommand};
use invert::{Action, PlanItem, Selection};

/// Header naming the command a rollback command undoes.
pub const H_ROLLBACK_OF: &str = "sfjira.rollback-of";
/// Exit code: something in the selection cannot be undone (and `--force` was not given).
pub const EXIT_NOT_INVERTIBLE: u8 = 5;

#[derive(Args)]
pub struct RollbackArgs {
    /// Undo writes made since this time: RFC 3339 (2026-11-27T10:00:00Z), a date
    /// (2026-11-27), or an age (90s, 30m, 12h, 2d).
    #[arg(long)]
    since: String,
    /// Only writes to this system.
    #[arg(long, value_enum)]
    target: Option<TargetSystem>,
    /// Only the write(s) made by this command id (repeatable).
    #[arg(long = "command-id")]
    command_ids: Vec<String>,
    /// Print the plan; produce nothing.
    #[arg(long)]
    dry_run: bool,
    /// Produce the inverses that can be made even if some writes cannot be undone, and restore
    /// fields that a later write (not rolled back) changed again.
    #[arg(long)]
    force: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum TargetSystem {
    Jira,
    Salesforce,
}

pub async fn run(
    cfg: &SfjiraConfig,
    args: RollbackArgs,
    output: Output,
) -> anyhow::Result<ExitCode> {
    let now = Utc::now();
    let since = sfjira_salesforce_source::backfill::parse_since(&args.since, now)?;
    if since > now {
        bail!("--since {} is in the future", args.since);
    }
    let base = client_config(&cfg.kafka);
    let topic = topic_name(&cfg.kafka, audit::TOPIC);
    // Read a minute more than asked: the audit's record timestamps are the sinks' produce
    // times, a little after `finished_ms`, which is what the selection is made on.
    let lookback = (now - since).to_std().unwrap_or_default() + Duration::from_secs(60);
    let entries =
        tokio::task::spawn_blocking(move || audit::read_since(&base, &topic, Some(lookback)))
            .await?
            .with_context(|| format!("reading {}", topic_name(&cfg.kafka, audit::TOPIC)))?;
    let selection = Selection {
        since_ms: since.timestamp_millis(),
        target: args.target.map(|t| match t {
            TargetSystem::Jira => System::Jira,
            TargetSystem::Salesforce => System::Salesforce,
        }),
        command_ids: args.command_ids.clone(),
        force: args.force,
    };
    let plan = invert::plan(&entries, &selection, now);
    for id in &args.command_ids {
        if !plan.iter().any(|p| &p.entry.command_id == id) {
            eprintln!("sfjira: command {id} has no applied write in the audit since {since}");
        }
    }
    let blocked = plan
        .iter()
        .filter(|p| matches!(p.action, Action::Cannot(_)))
        .count();
    let commands: Vec<OutCommand> = plan
        .iter()
        .filter_map(|p| match &p.action {
            Action::Invert { command: c, .. } => Some(OutCommand {
                command: (**c).clone(),
                headers: vec![(H_ROLLBACK_OF.into(), p.entry.command_id.clone())],
            }),
            _ => None,
        })
        .collect();
    let produce = !args.dry_run && (blocked == 0 || args.force);
    let topics = if produce {
        commands_out::produce(cfg, "rollback", &commands).await?
    } else {
        Vec::new()
    };
    render(&plan, &topics, args.dry_run, output);
    if blocked > 0 && !args.force {
        eprintln!(
            "sfjira: {blocked} write(s) cannot be undone (see above); {}",
            if args.dry_run {
                "a real run would produce nothing without --force"
            } else {
                "nothing was produced: fix the selection, or --force to undo the rest"
            }
        );
        return Ok(ExitCode::from(EXIT_NOT_INVERTIBLE));
    }
    if blocked > 0 {
        eprintln!("sfjira: {blocked} write(s) cannot be undone (see above): forced past them");
    }
    if !args.dry_run {
        eprintln!("sfjira: produced {} rollback command(s)", topics.len());
    }
    Ok(ExitCode::SUCCESS)
}

fn status(item: &PlanItem, produced: bool, dry_run: bool) -> (&'static str, String) {
    match &item.action {
        Action::Invert { unrestored, .. } => {
            let note = if unrestored.is_empty() {
                String::new()
            } else {
                format!(
                    "left as they are (no earlier value in the audit): {}",
                    unrestored.join(", ")
                )
            };
            match (produced, dry_run) {
                (true, _) => ("produced", note),
                (false, true) => ("planned", note),
                (false, false) => ("not produced", "something else cannot be undone".into()),
            }
        }
        Action::AlreadyRolledBack => ("already rolled back", String::new()),
        Action::SameWrite { leader } => (
            "same write",
            format!("the sink applied it in one write with {leader}: undone with it"),
        ),
        Action::Covered { by } => ("covered", format!("undone by the rollback of {by}")),
        Action::Cannot(why) => ("cannot undo", why.clone()),
    }
}

fn render(plan: &[PlanItem], topics: &[String], dry_run: bool, output: Output) {
    let produced = !topics.is_empty();
    let mut topic_of = topics.iter();
    let rows: Vec<Value> = plan
        .iter()
        .map(|p| {
            let (state, reason) = status(p, produced, dry_run);
            let mut row = json!({
                "original_command_id": p.entry.command_id,
                "sink": p.entry.sink,
                "target": p.entry.target,
                "operation": p.entry.operation,
                "finished_ms": p.entry.finished_ms,
                "status": state,
                "reason": reason,
            });
            if let Action::Invert { command: c, .. } = &p.action {
                row["rollback_command_id"] = json!(c.command_id);
                row["kind"] = json!(c.kind);
                row["entity"] = json!(c.target.entity);
                row["fields"] = c
                    .fields
                    .iter()
                    .map(|(k, v)| (k.clone(), v.value.clone()))
                    .collect();
                row["transition_to"] = json!(c.transition_to.as_ref().map(|t| &t.value));
                if produced {
                    row["topic"] = json!(topic_of.next());
                }
            }
            row
        })
        .collect();
    match output {
        Output::Json => println!("{}", serde_json::to_string_pretty(&rows).expect("json")),
        Output::Table => {
            let table: Vec<Vec<String>> = rows
                .iter()
                .map(|r| {
                    let restore = match (r.get("fields"), r.get("transition_to")) {
                        (Some(Value::Object(f)), t) => {
                            let mut parts: Vec<String> =
                                f.iter().map(|(k, v)| format!("{k}={}", shown(v))).collect();
                            if let Some(t) = t.filter(|t| !t.is_null()) {
                                parts.push(format!("status={}", shown(t)));
                            }
                            parts.join(", ")
                        }
                        _ => String::new(),
                    };
                    let s = |k: &str| r[k].as_str().unwrap_or("-").to_string();
                    let what = match r.get("kind") {
                        Some(Value::String(k)) if k == "delete" => match r["entity"].as_str() {
                            Some(e @ ("comment" | "worklog")) => format!("delete the {e}"),
                            _ => "delete".to_string(),
                        },
                        Some(_) => restore,
                        None => s("reason"),
                    };
                    vec![
                        s("original_command_id"),
                        s("target"),
                        s("operation"),
                        s("status"),
                        what,
                    ]
                })
                .collect();
            print_table(
                &[
                    "ORIGINAL COMMAND",
                    "TARGET",
                    "OPERATION",
                    "STATUS",
                    "UNDO / WHY",
                ],
                &table,
            );
        }
    }
}

/// A value as a person reads it (a select's value, not its JSON; strings quoted).
fn shown(v: &Value) -> String {
    match crate::reconcile::values::plain(v) {
        Value::String(_) => format!("{:?}", crate::reconcile::values::display(v)),
        _ => crate::reconcile::values::display(v),
    }
}

/// An aligned table; the last column is not padded.
pub(crate) fn print_table(headers: &[&str], rows: &[Vec<String>]) {
    let mut widths: Vec<usize> = headers.iter().map(|h| h.len()).collect();
    for r in rows {
        for (i, c) in r.iter().enumerate() {
            widths[i] = widths[i].max(c.chars().count());
        }
    }
    let line = |cells: Vec<String>| {
        let last = cells.len() - 1;
        let mut out = String::new();
        for (i, c) in cells.iter().enumerate() {
            if i == last {
                out.push_str(c);
            } else {
                out.push_str(&format!("{c:<w$}  ", w = widths[i]));
            }
        }
        println!("{}", out.trim_end());
    };
    line(headers.iter().map(|h| h.to_string()).collect());
    for r in rows {
        line(r.clone());
    }
    if rows.is_empty() {
        println!("(nothing)");
    }
}
