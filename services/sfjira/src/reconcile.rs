//! `sfjira reconcile`: are linked records still in step? For every link
//! `salesforce:<Entity>:<Id>` ↔ `jira:<KEY>` in `sfjira.links`, fetch both sides (SOQL by Id,
//! JQL by key, batched), run the mapping on each side's current state, and compare what it says
//! the other side should hold with what it holds ([`compare`]). Drift is printed as a table
//! (record, field, Salesforce value, Jira value, owner); `--repair` produces, in one Kafka
//! transaction, the commands that write the owner's value back through the sinks.
//!
//! - `salesforce.rs` / `jira.rs`: reading each side with the connector's own credentials.
//! - `compare.rs`: the comparison and the repair commands (pure).
//! - `values.rs`: when two spellings are the same value.
//! - `http.rs`: one call, retried on 429 / 5xx like every sfjira client.
//!
//! Exit codes: 0 in step; 4 drift found (also with `--repair`: run it again once the sinks
//! have applied the repairs to see 0); 1 an error, or pairs that could not be checked.

mod compare;
mod http;
mod jira;
mod salesforce;
pub(crate) mod values;

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, bail};
use chrono::Utc;
use clap::Args;
use serde_json::{Value, json};
use sfjira_core::command::System;
use sfjira_core::config::SfjiraConfig;
use sfjira_core::kafka::{client_config, latest_by_key, topic_name};
use sfjira_core::links::{self, Link, LinkState};
use sfjira_transformer::mapping::{Flow, Mapping};

use crate::Output;
use crate::commands_out::{self, OutCommand};
use crate::rollback::print_table;
use compare::{Drift, Pair, PairResult};

/// Exit code: drift found.
pub const EXIT_DRIFT: u8 = 4;
/// Header of a repair command: the pair it repairs (`salesforce:… <-> jira:…`).
pub const H_RECONCILE_OF: &str = "sfjira.reconcile-of";

#[derive(Args)]
pub struct ReconcileArgs {
    /// Only pairs of this Salesforce object (e.g. Opportunity). Default: every object the
    /// mapping maps to or from Jira issues.
    #[arg(long)]
    entity: Option<String>,
    /// Produce the commands that restore the owner's value (to jira.commands /
    /// salesforce.commands, in one transaction); the sinks apply them.
    #[arg(long)]
    repair: bool,
    /// Also compare what flows' `status:` rules say an issue's status should be (off by
    /// default: a status rule moves an issue once, and people move it on from there).
    #[arg(long)]
    include_status: bool,
    /// The mapping to compare with. Default: the transformer's (`transformer.mapping`), or
    /// config/mapping.yaml.
    #[arg(long, env = "SFJIRA_MAPPING")]
    mapping: Option<PathBuf>,
}

pub async fn run(
    cfg: &SfjiraConfig,
    args: ReconcileArgs,
    output: Output,
) -> anyhow::Result<ExitCode> {
    let path = args
        .mapping
        .clone()
        .or_else(|| cfg.transformer.as_ref().map(|t| t.mapping.clone()))
        .unwrap_or_else(|| PathBuf::from("config/mapping.yaml"));
    let mapping = Mapping::load(&path).map_err(|e| anyhow::anyhow!("{e}"))?;
    let mapped = mapped_entities(&mapping);
    if let Some(e) = args.entity.as_ref().filter(|e| !mapped.contains(*e)) {
        bail!(
            "{}: no flow maps salesforce.{e} to or from jira.issue (mapped: {})",
            path.display(),
            mapped.iter().cloned().collect::<Vec<_>>().join(", ")
        );
    }
    let pairs: Vec<Pair> = read_pairs(cfg)
        .await?
        .into_iter()
        .filter(|p| args.entity.as_ref().is_none_or(|e| *e == p.entity))
        .filter(|p| mapped.contains(&p.entity))
        .collect();
    let now = Utc::now();
    let mut results: Vec<PairResult> = Vec::new();
    if !pairs.is_empty() {
        let sf = salesforce::Salesforce::login(cfg).await?;
        let jira = jira::Jira::connect(cfg).await?;
        let keys: Vec<String> = pairs.iter().map(|p| p.key.clone()).collect();
        let issues = jira.issues(&keys).await.context("reading the Jira side")?;
        let mut by_entity: BTreeMap<&str, Vec<&Pair>> = BTreeMap::new();
        for p in &pairs {
            by_entity.entry(&p.entity).or_default().push(p);
        }
        for (entity, group) in by_entity {
            let ids: Vec<String> = group.iter().map(|p| p.id.clone()).collect();
            let fields = salesforce_fields(&mapping, entity);
            let records = sf
                .records(entity, &fields, &ids)
                .await
                .with_context(|| format!("reading {entity} from Salesforce"))?;
            for p in group {
                results.push(compare::compare(
                    &mapping,
                    p,
                    // A 15-character Id in a link is the case-sensitive form of the 18.
                    records.get(&p.id).or_else(|| {
                        records
                            .values()
                            .find(|r| r.record.id.get(..15) == Some(&p.id))
                    }),
                    issues.get(&p.key),
                    args.include_status,
                    now,
                ));
            }
        }
    }
    let drift: Vec<&Drift> = results.iter().flat_map(|r| &r.drift).collect();
    let problems: Vec<&String> = results.iter().flat_map(|r| &r.problems).collect();
    let repairs: Vec<OutCommand> = results
        .iter()
        .flat_map(|r| {
            r.repairs.iter().map(|c| OutCommand {
                command: c.clone(),
                headers: vec![(H_RECONCILE_OF.into(), pair_of(c, r))],
            })
        })
        .collect();
    let topics = if args.repair {
        commands_out::produce(cfg, "reconcile", &repairs).await?
    } else {
        Vec::new()
    };
    render(
        pairs.len(),
        &drift,
        &problems,
        &repairs,
        &topics,
        args.repair,
        output,
    );
    for p in &problems {
        eprintln!("sfjira: not checked: {p}");
    }
    Ok(if !drift.is_empty() {
        ExitCode::from(EXIT_DRIFT)
    } else if !problems.is_empty() {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}

fn pair_of(c: &sfjira_core::command::Command, r: &PairResult) -> String {
    r.drift
        .iter()
        .find(|d| d.flow == c.flow)
        .map(|d| format!("{} <-> {}", d.record, d.jira))
        .unwrap_or_default()
}

fn field_values(c: &sfjira_core::command::Command) -> serde_json::Map<String, Value> {
    c.fields
        .iter()
        .map(|(k, v)| (k.clone(), v.value.clone()))
        .collect()
}

/// Salesforce objects some flow maps to or from Jira issues.
fn mapped_entities(mapping: &Mapping) -> BTreeSet<String> {
    mapping
        .flows
        .iter()
        .filter_map(|f| match (f.from.system, f.to.system) {
            (System::Salesforce, System::Jira) if f.to.entity == "issue" => {
                Some(f.from.entity.clone())
            }
            (System::Jira, System::Salesforce) if f.from.entity == "issue" => {
                Some(f.to.entity.clone())
            }
            _ => None,
        })
        .collect()
}

/// What to ask Salesforce for: what the flows from `entity` read, and what the flows to it
/// write.
fn salesforce_fields(mapping: &Mapping, entity: &str) -> Vec<String> {
    let mut out = BTreeSet::new();
    let is = |f: &&Flow, from: System| match from {
        System::Salesforce => {
            f.from.system == from && f.from.entity == entity && f.to.entity == "issue"
        }
        System::Jira => {
            f.to.system == System::Salesforce && f.to.entity == entity && f.from.entity == "issue"
        }
    };
    for f in mapping.flows.iter().filter(|f| is(f, System::Salesforce)) {
        out.extend(compare::fields_read(f));
    }
    for f in mapping.flows.iter().filter(|f| is(f, System::Jira)) {
        out.extend(f.fields.iter().map(|r| r.target.clone()));
    }
    out.into_iter().collect()
}

/// Linked pairs from `sfjira.links`: rows `salesforce:<Entity>:<Id>` → `jira:<KEY>`.
async fn read_pairs(cfg: &SfjiraConfig) -> anyhow::Result<Vec<Pair>> {
    let base = client_config(&cfg.kafka);
    let topic = topic_name(&cfg.kafka, links::TOPIC);
    let t = topic.clone();
    let latest = tokio::task::spawn_blocking(move || latest_by_key(&base, &t))
        .await?
        .with_context(|| format!("reading {topic}"))?;
    let mut pairs = BTreeSet::new();
    for m in latest.values() {
        use rdkafka::message::Message;
        let Some(link) = m
            .payload()
            .and_then(|p| serde_json::from_slice::<Link>(p).ok())
        else {
            continue;
        };
        pairs.extend(pair_of_link(&link));
    }
    Ok(pairs.into_iter().collect())
}

/// The pair a link row stands for: `salesforce:<Entity>:<Id>` ↔ `jira:<KEY>`, either way
/// round. Intents, comments, worklogs and anything else are not pairs of records to compare.
fn pair_of_link(link: &Link) -> Option<Pair> {
    if link.state != LinkState::Linked {
        return None;
    }
    let other = link.counterpart.as_deref()?;
    let (sf, jira) = if link.reference.starts_with("salesforce:") {
        (link.reference.as_str(), other)
    } else {
        (other, link.reference.as_str())
    };
    let sf_parts: Vec<&str> = sf.splitn(3, ':').collect();
    let jira_parts: Vec<&str> = jira.split(':').collect();
    match (sf_parts.as_slice(), jira_parts.as_slice()) {
        (["salesforce", entity, id], ["jira", key]) if !id.is_empty() && !key.is_empty() => {
            Some(Pair {
                entity: entity.to_string(),
                id: id.to_string(),
                key: key.to_string(),
            })
        }
        _ => None,
    }
}

fn render(
    pairs: usize,
    drift: &[&Drift],
    problems: &[&String],
    repairs: &[OutCommand],
    topics: &[String],
    repair: bool,
    output: Output,
) {
    match output {
        Output::Json => {
            let repairs: Vec<Value> = repairs
                .iter()
                .enumerate()
                .map(|(i, r)| {
                    let c = &r.command;
                    json!({
                        "command_id": c.command_id,
                        "flow": c.flow,
                        "system": c.target.system,
                        "external_ref": c.target.external_ref,
                        "fields": field_values(c),
                        "transition_to": c.transition_to.as_ref().map(|t| &t.value),
                        "produced": repair,
                        "topic": topics.get(i),
                    })
                })
                .collect();
            let doc = json!({
                "pairs_checked": pairs,
                "drift": drift,
                "problems": problems,
                "repairs": repairs,
            });
            println!("{}", serde_json::to_string_pretty(&doc).expect("json"));
        }
        Output::Table => {
            let rows: Vec<Vec<String>> = drift
                .iter()
                .map(|d| {
                    vec![
                        format!("{} <-> {}", d.record, d.jira),
                        d.field.clone(),
                        d.salesforce.clone(),
                        d.jira_value.clone(),
                        serde_json::to_value(d.owner)
                            .ok()
                            .and_then(|v| v.as_str().map(String::from))
                            .unwrap_or_default(),
                        d.repair.clone(),
                    ]
                })
                .collect();
            print_table(
                &["RECORD", "FIELD", "SALESFORCE", "JIRA", "OWNER", "REPAIR"],
                &rows,
            );
            println!(
                "{pairs} linked pair(s) checked, {} field(s) drifted, {} repair command(s) {}",
                drift.len(),
                repairs.len(),
                if repair {
                    "produced"
                } else {
                    "needed (--repair produces them)"
                }
            );
            let _ = problems;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn links_become_pairs_either_way_round() {
        let pair = Pair {
            entity: "Opportunity".into(),
            id: "006A".into(),
            key: "PROJ-7".into(),
        };
        let link = Link::linked("salesforce:Opportunity:006A", "jira:PROJ-7", None, "c");
        assert_eq!(pair_of_link(&link), Some(pair.clone()));
        assert_eq!(pair_of_link(&link.reverse().unwrap()), Some(pair));
        for (a, b) in [
            ("salesforce:Task:00T1", "jira:comment:10042"),
            ("jira:worklog:7", "salesforce:Task:00T2"),
        ] {
            assert_eq!(pair_of_link(&Link::linked(a, b, None, "c")), None);
        }
        assert_eq!(
            pair_of_link(&Link::intent("salesforce:Opportunity:006A", "c")),
            None
        );
    }
}
