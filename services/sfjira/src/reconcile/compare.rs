//! The pure part of `sfjira reconcile`: given one linked pair (a Salesforce record and its Jira
//! issue, both as the engine's [`SourceRecord`]s), what differs and which command repairs it.
//!
//! What a field *should* be is not re-implemented here: the mapping itself is run (the
//! transformer's engine, as a library) on each side's current state as if the record had just
//! been created, and the command it makes is compared, field by field, with what the other side
//! holds ([`values::same`]). So every table, default, CEL expression and type conversion of the
//! mapping applies. Rules that read `event.…` (the time or author of a change) are not a
//! function of the record's state and are not compared; nor is a flow's `status:` rule unless
//! asked (`--include-status`): it moves an issue once, when the source changes, and people move
//! it on from there.
//!
//! Repairs restore the owner's value: a field owned by the flow's source system is written from
//! the source. A `BOTH` field has no owner to ask, and without field history the record-level
//! modification times are the best evidence: the side modified later wins (Salesforce
//! `LastModifiedDate`, Jira `updated`). A repair only ever writes forward along a flow; if the
//! target side is the later one, the flow the other way (if the mapping has one) carries it,
//! otherwise the field is reported and left alone.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::Value;
use sfjira_core::command::{Command, CommandKind, Owner, System};
use sfjira_transformer::engine::{Outcome, RecordOutcome, SourceRecord, command_id};
use sfjira_transformer::mapping::{FieldRule, Flow, Mapping, ValueSource};

use super::values;

pub const ID_PREFIX: &str = "reconcile:";

/// One side of a pair as fetched: its record and when it was last modified.
pub struct Side {
    pub record: SourceRecord,
    pub modified: DateTime<Utc>,
}

/// A linked pair: `salesforce:<Entity>:<Id>` ↔ `jira:<KEY>`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Pair {
    pub entity: String,
    pub id: String,
    pub key: String,
}

impl Pair {
    pub fn salesforce_ref(&self) -> String {
        format!("salesforce:{}:{}", self.entity, self.id)
    }
    pub fn jira_ref(&self) -> String {
        format!("jira:{}", self.key)
    }
}

/// One field that differs.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Drift {
    pub record: String,
    pub jira: String,
    pub flow: String,
    pub field: String,
    /// The Salesforce side's value (for a flow to Jira: converted by the mapping).
    pub salesforce: String,
    /// The Jira side's value (for a flow to Salesforce: converted by the mapping).
    pub jira_value: String,
    pub owner: Owner,
    /// What `--repair` does: `write jira`, `write salesforce`, or `skip: <why>`.
    pub repair: String,
}

#[derive(Debug, Default)]
pub struct PairResult {
    pub drift: Vec<Drift>,
    pub repairs: Vec<Command>,
    /// Flows that could not be evaluated on this pair (the mapping failed on the record).
    pub problems: Vec<String>,
}

/// Compares one pair. `None` for a side means the linked record no longer exists.
pub fn compare(
    mapping: &Mapping,
    pair: &Pair,
    sf: Option<&Side>,
    jira: Option<&Side>,
    include_status: bool,
    now: DateTime<Utc>,
) -> PairResult {
    let mut out = PairResult::default();
    let (Some(sf), Some(jira)) = (sf, jira) else {
        let (s, j) = match (sf, jira) {
            (None, _) => ("(missing)", "(exists)"),
            _ => ("(exists)", "(missing)"),
        };
        out.drift.push(Drift {
            record: pair.salesforce_ref(),
            jira: pair.jira_ref(),
            flow: "-".into(),
            field: "(record)".into(),
            salesforce: s.into(),
            jira_value: j.into(),
            owner: Owner::Both,
            repair: "skip: a linked record is gone; reconcile does not create or delete".into(),
        });
        return out;
    };
    let entity = &pair.entity;
    for (from, to, source_side, target_side) in [
        (System::Salesforce, System::Jira, sf, jira),
        (System::Jira, System::Salesforce, jira, sf),
    ] {
        let flows: Vec<&Flow> = mapping
            .flows
            .iter()
            .filter(|f| {
                let (src, dst) = (&f.from, &f.to);
                src.system == from
                    && dst.system == to
                    && match from {
                        System::Salesforce => src.entity == *entity && dst.entity == "issue",
                        System::Jira => src.entity == "issue" && dst.entity == *entity,
                    }
            })
            .collect();
        if flows.is_empty() {
            continue;
        }
        let outcomes = match mapping.apply(&source_side.record) {
            RecordOutcome::Flows(o) => o,
            RecordOutcome::Echo | RecordOutcome::Unmapped => continue,
        };
        for flow in flows {
            let cmd = outcomes.iter().find_map(|o| match o {
                Outcome::Command(c) if c.flow == flow.name => Some(Ok(c)),
                Outcome::Failed { flow: f, error } if *f == flow.name => Some(Err(error)),
                _ => None,
            });
            let cmd = match cmd {
                Some(Ok(c)) => c,
                Some(Err(e)) => {
                    out.problems.push(format!(
                        "{} ↔ {}: flow {}: {e}",
                        pair.salesforce_ref(),
                        pair.jira_ref(),
                        flow.name
                    ));
                    continue;
                }
                // The flow's condition is false for this record: it is not synced.
                None => continue,
            };
            let ctx = FlowCtx {
                pair,
                flow,
                from,
                source: source_side,
                target: target_side,
                now,
            };
            ctx.compare(cmd, include_status, &mut out);
        }
    }
    out
}

struct FlowCtx<'a> {
    pair: &'a Pair,
    flow: &'a Flow,
    from: System,
    source: &'a Side,
    target: &'a Side,
    now: DateTime<Utc>,
}

impl FlowCtx<'_> {
    fn compare(&self, cmd: &Command, include_status: bool, out: &mut PairResult) {
        let mut repaired: BTreeMap<String, (Value, Owner, DateTime<Utc>)> = BTreeMap::new();
        let status = self.flow.status.as_ref().filter(|_| include_status);
        let rules = self
            .flow
            .fields
            .iter()
            .map(|r| (r, r.target.as_str()))
            .chain(status.map(|r| (r, "status")));
        for (rule, field) in rules {
            if reads_event(rule) {
                continue;
            }
            let expected = if field == "status" && status.is_some_and(|s| std::ptr::eq(s, rule)) {
                cmd.transition_to.as_ref().map(|v| v.value.clone())
            } else {
                cmd.fields.get(field).map(|v| v.value.clone())
            }
            .unwrap_or(Value::Null);
            let mut actual = self
                .target
                .record
                .fields
                .get(field)
                .cloned()
                .unwrap_or(Value::Null);
            if self.flow.to.system == System::Jira && field == "labels" {
                actual = values::without_marker_labels(&actual);
            }
            if values::same(&expected, &actual) {
                continue;
            }
            let repair = self.decide(rule.owner);
            if let Ok(source_time) = &repair {
                repaired.insert(
                    field.to_string(),
                    (expected.clone(), rule.owner, *source_time),
                );
            }
            let (sf_value, jira_value) = match self.from {
                System::Salesforce => (&expected, &actual),
                System::Jira => (&actual, &expected),
            };
            out.drift.push(Drift {
                record: self.pair.salesforce_ref(),
                jira: self.pair.jira_ref(),
                flow: self.flow.name.clone(),
                field: field.to_string(),
                salesforce: values::display(sf_value),
                jira_value: values::display(jira_value),
                owner: rule.owner,
                repair: match repair {
                    Ok(_) => format!("write {}", self.flow.to.system),
                    Err(why) => format!("skip: {why}"),
                },
            });
        }
        if !repaired.is_empty() {
            out.repairs.push(self.repair_command(cmd, repaired));
        }
    }

    /// Whether the source's value should be written (with this `source_time`), or why not.
    fn decide(&self, owner: Owner) -> Result<DateTime<Utc>, String> {
        let source_owns = matches!(
            (owner, self.from),
            (Owner::Salesforce, System::Salesforce) | (Owner::Jira, System::Jira)
        );
        match owner {
            _ if source_owns => Ok(self.now),
            Owner::Both if self.source.modified > self.target.modified => Ok(self.source.modified),
            Owner::Both => Err(format!(
                "owned by both and {} was modified later ({} > {}); the flow the other way \
                 carries it, if there is one",
                self.flow.to.system,
                self.target.modified.to_rfc3339(),
                self.source.modified.to_rfc3339()
            )),
            _ => Err(format!("owned by {}", self.flow.to.system)),
        }
    }

    /// The engine's command, narrowed to the drifted fields, marked changed, never creating.
    fn repair_command(
        &self,
        cmd: &Command,
        fields: BTreeMap<String, (Value, Owner, DateTime<Utc>)>,
    ) -> Command {
        let mut c = cmd.clone();
        c.kind = CommandKind::Upsert;
        c.target.update_only = true;
        c.fields.clear();
        c.transition_to = None;
        let mut version = format!(
            "{}|{}",
            self.source.modified.timestamp_millis(),
            self.target.modified.timestamp_millis()
        );
        for (name, (value, owner, source_time)) in fields {
            version.push_str(&format!("|{name}={value}"));
            let mut fv = cmd
                .fields
                .get(&name)
                .cloned()
                .or_else(|| cmd.transition_to.clone())
                .expect("a drifted field comes from the command");
            fv.value = value;
            fv.owner = owner;
            fv.changed = true;
            fv.source_time = source_time;
            if name == "status" && !cmd.fields.contains_key("status") {
                c.transition_to = Some(fv);
            } else {
                c.fields.insert(name, fv);
            }
        }
        c.command_id = format!(
            "{ID_PREFIX}{}",
            command_id(&c.flow, "reconcile", &c.target.external_ref, &version)
        );
        c.source.version = format!("{ID_PREFIX}{version}");
        c.delivery = sfjira_core::command::DeliveryMode::Realtime;
        c
    }
}

/// Whether a rule reads the change event (`event.commit_time`, `event.actor`): such a value is
/// not a function of the record's state, so there is nothing to compare it with.
fn reads_event(rule: &FieldRule) -> bool {
    matches!(&rule.source, ValueSource::Expr(e) if e.source.contains("event."))
}

/// The source fields a flow reads (`from:` and `record.X` / `record["X"]` in its expressions),
/// so a query can ask for exactly those.
pub fn fields_read(flow: &Flow) -> Vec<String> {
    let mut out = Vec::new();
    let mut exprs: Vec<&str> = Vec::new();
    for rule in flow.fields.iter().chain(&flow.status) {
        match &rule.source {
            ValueSource::Field(f) => out.push(f.split('.').next().unwrap_or(f).to_string()),
            ValueSource::Expr(e) => exprs.push(&e.source),
            ValueSource::Const(_) => {}
        }
    }
    let t = &flow.target;
    exprs.extend(flow.when.iter().map(|e| e.source.as_str()));
    for e in [&t.parent, &t.attach_to, &t.external_id]
        .into_iter()
        .flatten()
    {
        exprs.push(&e.source);
    }
    for e in exprs {
        out.extend(record_refs(e));
    }
    out.sort();
    out.dedup();
    out
}

fn record_refs(expr: &str) -> Vec<String> {
    let ident = |s: &str| -> String {
        s.chars()
            .take_while(|c| c.is_alphanumeric() || *c == '_')
            .collect()
    };
    let mut out = Vec::new();
    for (i, _) in expr.match_indices("record") {
        let before_ok =
            i == 0 || !expr[..i].ends_with(|c: char| c.is_alphanumeric() || c == '_' || c == '.');
        if !before_ok {
            continue;
        }
        let rest = &expr[i + "record".len()..];
        if let Some(r) = rest.strip_prefix('.') {
            out.push(ident(r));
        } else if let Some(r) = rest.strip_prefix("[\"").or_else(|| rest.strip_prefix("['")) {
            out.push(r.chars().take_while(|c| *c != '"' && *c != '\'').collect());
        }
    }
    out.retain(|f| !f.is_empty());
    out
}

#[cfg(test)]
#[path = "compare_tests.rs"]
mod tests;
