//! The pure part of `sfjira rollback`: from audit entries to the plan — which inverse command
//! undoes which applied write, and what cannot be undone and why. No I/O, so every rule here is
//! unit-tested.
//!
//! Rules (docs/runbook.md, "Undo a bad change with rollback"):
//! - Only `applied` entries are inverted, newest first; a rollback's own writes (ids starting
//!   `rollback:`) are never inverted, and an entry whose rollback is already in the audit is
//!   reported as done instead of produced again.
//! - An update is undone by an UPSERT writing the `before` value of every field in `after`
//!   (`changed = true`, `update_only`, owner `BOTH` with `source_time` = now, so the sink's
//!   last-writer-wins lets it through); `status` becomes `transition_to`.
//! - A create is undone by a DELETE of the created record; whatever else happened to a record
//!   created within the rollback goes with it.
//! - An added Jira comment / worklog (the jira-sink audits an add with `before.id = null` and
//!   the new id in `after.id`) is undone by a DELETE with `target.entity` `comment` / `worklog`
//!   of its reference, on the issue the audit names (`attach_to` = `jira:KEY`). An edited one
//!   whose earlier body is in the audit is restored by a COMMENT / WORKLOG command. One the
//!   audit does not say was added (entries from before the sink recorded it) is reported, with
//!   where to find it; a deleted one cannot be restored.
//! - When several selected writes touched one field, only the oldest one's inverse writes it
//!   (its `before` is the value to return to); the newer ones are covered by it. Likewise the
//!   edits of a comment / worklog added within the rollback are covered by its DELETE. Writes to
//!   comments / worklogs are told apart by their reference (the audit's target is their issue).
//! - A field changed again later by a write that is *not* being rolled back is a conflict:
//!   restoring it would undo that later write too.
//! - A close (or a delete done as a close) is undone by moving the issue back to the status it
//!   left. A real delete cannot be undone, nor a write whose `before` the sink did not record.
//!   Written fields missing from a recorded `before` are identity fields the write re-sent (an
//!   upsert's external id); they are left alone and listed.
//!
//! - Commands the sink applied as one write (coalesced; one audit entry each, same values and
//!   times) are rolled back together: the first stands for the write, the others go with it.
//!
//! The command id is `rollback:` + the original id, so a second run produces the same ids and
//! the sinks' dedupe applies each inverse once.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde_json::Value;
use sfjira_core::audit::{AuditEntry, AuditResult};
use sfjira_core::command::{
    Command, CommandKind, DeliveryMode, FieldValue, Owner, SourceRef, System, TargetRef,
};

pub const ID_PREFIX: &str = "rollback:";

/// What to roll back.
#[derive(Debug, Clone, Default)]
pub struct Selection {
    /// Entries that finished before this (epoch ms) are left alone.
    pub since_ms: i64,
    pub target: Option<System>,
    /// Only these original command ids (empty: all).
    pub command_ids: Vec<String>,
    /// Restore fields even when a write outside the selection changed them later.
    pub force: bool,
}

/// What becomes of one applied audit entry.
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    /// This inverse command undoes it; `unrestored` fields were written but their earlier value
    /// is not in the audit (identity fields re-sent unchanged, such as an upsert's external id).
    Invert {
        command: Box<Command>,
        unrestored: Vec<String>,
    },
    /// Its rollback is already applied (in the audit).
    AlreadyRolledBack,
    /// The sink made one write of it and the `leader`'s command: undone with the leader.
    SameWrite { leader: String },
    /// Every field it wrote is restored by the inverse of an older write (named).
    Covered { by: String },
    /// It cannot be undone.
    Cannot(String),
}

#[derive(Debug, Clone, PartialEq)]
pub struct PlanItem {
    pub entry: AuditEntry,
    pub action: Action,
}

/// The plan for `entries` (the audit entries read, in audit order), newest first.
pub fn plan(entries: &[AuditEntry], sel: &Selection, now: DateTime<Utc>) -> Vec<PlanItem> {
    let applied: Vec<&AuditEntry> = entries
        .iter()
        .filter(|e| e.result == AuditResult::Applied && !e.command_id.starts_with(ID_PREFIX))
        .collect();
    let leader = |e: &AuditEntry| -> &AuditEntry {
        applied
            .iter()
            .copied()
            .find(|o| same_write(o, e))
            .expect("an applied entry is its own write's member")
    };
    let rolled_back = |id: &str| {
        let rid = format!("{ID_PREFIX}{id}");
        entries.iter().any(|e| {
            e.command_id == rid && matches!(e.result, AuditResult::Applied | AuditResult::Skipped)
        })
    };
    // A write is rolled back whole: selecting one of its commands selects them all.
    let chosen: Vec<&str> = applied
        .iter()
        .filter(|e| is_selected(e, sel))
        .map(|e| leader(e).command_id.as_str())
        .collect();
    let mut selected: Vec<&AuditEntry> = applied
        .iter()
        .copied()
        .filter(|e| chosen.contains(&leader(e).command_id.as_str()))
        .collect();
    selected.sort_by_key(|e| std::cmp::Reverse((e.finished_ms, e.started_ms)));
    selected
        .iter()
        .map(|e| {
            let lead = leader(e);
            let action = if rolled_back(&lead.command_id) {
                Action::AlreadyRolledBack
            } else if lead.command_id != e.command_id {
                Action::SameWrite {
                    leader: lead.command_id.clone(),
                }
            } else {
                invert(e, &applied, &selected, sel, now)
            };
            PlanItem {
                entry: (*e).clone(),
                action,
            }
        })
        .collect()
}

/// Whether two entries are one write: the sink coalesced several commands into it (edits to
/// one issue in a batch, or edits queued behind its create) and audited each command with the
/// same operation, values and times. The first of them in the audit stands for the write.
fn same_write(a: &AuditEntry, b: &AuditEntry) -> bool {
    a.sink == b.sink
        && a.target == b.target
        && a.operation == b.operation
        && a.started_ms == b.started_ms
        && a.finished_ms == b.finished_ms
}

fn is_selected(e: &AuditEntry, sel: &Selection) -> bool {
    e.finished_ms >= sel.since_ms
        && sel.target.is_none_or(|t| system_of_sink(e) == Some(t))
        && (sel.command_ids.is_empty() || sel.command_ids.contains(&e.command_id))
}

fn system_of_sink(e: &AuditEntry) -> Option<System> {
    if e.sink.starts_with("jira") || e.target.starts_with("jira:") {
        Some(System::Jira)
    } else if e.sink.starts_with("salesforce") || e.target.starts_with("salesforce:") {
        Some(System::Salesforce)
    } else {
        None
    }
}

/// Whether `a` happened before `b` in the audit.
fn earlier(a: &AuditEntry, b: &AuditEntry) -> bool {
    (a.finished_ms, a.started_ms) < (b.finished_ms, b.started_ms)
}

fn invert(
    e: &AuditEntry,
    applied: &[&AuditEntry],
    selected: &[&AuditEntry],
    sel: &Selection,
    now: DateTime<Utc>,
) -> Action {
    let Some(system) = system_of_sink(e) else {
        return Action::Cannot(format!("unknown sink {:?}", e.sink));
    };
    let op = e.operation.as_str();
    let child = is_child(op);
    let same_target = |o: &&&AuditEntry| o.target == e.target && !same_write(o, e);
    // The same record: the issue's own writes, or for a comment or worklog (whose target is
    // its issue) the writes of the same reference.
    let same_record = |o: &&&AuditEntry| {
        same_target(o)
            && is_child(&o.operation) == child
            && (!child || o.external_ref == e.external_ref)
    };
    // A later write outside the selection to one of our fields: restoring would undo it.
    if !sel.force
        && let Some(later) = applied
            .iter()
            .filter(same_record)
            .filter(|o| earlier(e, o) && !selected.iter().any(|s| s.command_id == o.command_id))
            .find(|o| o.after.keys().any(|f| e.after.contains_key(f)) || o.operation == "delete")
    {
        return Action::Cannot(format!(
            "changed again later by {} (not rolled back): roll that back too, \
             or --force to restore anyway",
            later.command_id
        ));
    }
    let older_selected = |field: &str| {
        selected
            .iter()
            .filter(same_record)
            .filter(|o| earlier(o, e))
            .find(|o| o.operation == "create" || o.after.contains_key(field))
            .map(|o| o.command_id.clone())
    };
    // Whatever happened to a record created (a comment: added) within the rollback goes away
    // with it.
    let edit = child && added(e).is_none();
    if op != "create"
        && let Some(by) = selected
            .iter()
            .filter(same_target)
            .filter(|o| earlier(o, e))
            .find(|o| o.operation == "create" || (edit && same_record(o) && added(o).is_some()))
    {
        return Action::Covered {
            by: by.command_id.clone(),
        };
    }
    // A comment's audit target is the issue it is on (`jira:KEY`), when the sink says so.
    let attach_to = (child && e.target.starts_with("jira:") && e.target.matches(':').count() == 1)
        .then(|| e.target.clone());
    let mut unrestored = Vec::new();
    let (kind, values) = match op {
        "create" => (CommandKind::Delete, BTreeMap::new()),
        "comment" | "worklog" if added(e).is_some() => {
            if attach_to.is_none() {
                return Action::Cannot(format!(
                    "the audit does not name the issue the {op} is on ({}): remove it by hand \
                     (its id is in sfjira.links under {})",
                    e.target, e.external_ref
                ));
            }
            (CommandKind::Delete, BTreeMap::new())
        }
        "comment" | "worklog" if e.before.is_empty() => {
            return Action::Cannot(format!(
                "the audit does not say whether this {op} was added or edited (written before \
                 the sink recorded it): remove or restore it by hand on {} (its id is in \
                 sfjira.links under {})",
                e.target, e.external_ref
            ));
        }
        "delete_comment" | "delete_worklog" => {
            return Action::Cannot(format!(
                "a deleted Jira {} cannot be restored by sfjira (Jira deletes are permanent)",
                op.trim_start_matches("delete_")
            ));
        }
        "delete" if !e.before.contains_key("status") => {
            return Action::Cannot(
                "a delete cannot be undone by sfjira (Jira deletes are permanent; restore a \
                 Salesforce record from its Recycle Bin)"
                    .into(),
            );
        }
        "update" | "transition" | "close" | "delete" | "comment" | "worklog" => {
            if e.before.is_empty() {
                return Action::Cannot(
                    "the sink recorded no values from before the write (for salesforce-sink: \
                     salesforce_sink.read_before_write)"
                        .into(),
                );
            }
            let mut values = BTreeMap::new();
            let mut covered_by = None;
            // A comment's id says which one was written; it is not a field to restore.
            for field in e.after.keys().filter(|f| !(child && *f == "id")) {
                if let Some(by) = older_selected(field) {
                    covered_by = Some(by);
                } else if let Some(v) = e.before.get(field) {
                    values.insert(field.clone(), v.clone());
                } else {
                    // Written but not read before: an identity field the write re-sent (the
                    // external id of an upsert), whose value did not change.
                    unrestored.push(field.clone());
                }
            }
            // A close (or a delete done as a close) records only the status it left.
            if matches!(op, "close" | "delete")
                && covered_by.is_none()
                && !values.contains_key("status")
                && let Some(v) = e.before.get("status")
            {
                values.insert("status".into(), v.clone());
            }
            if values.is_empty() {
                return match covered_by {
                    Some(by) => Action::Covered { by },
                    None => Action::Cannot(
                        "no field it wrote has a recorded value from before the write".into(),
                    ),
                };
            }
            let kind = match op {
                "comment" => CommandKind::Comment,
                "worklog" => CommandKind::Worklog,
                _ => CommandKind::Upsert,
            };
            (kind, values)
        }
        other => return Action::Cannot(format!("operation {other:?} has no inverse")),
    };
    let field = |value: Value| FieldValue {
        value,
        owner: Owner::Both,
        changed: true,
        source_time: now,
    };
    let mut fields: BTreeMap<String, FieldValue> = BTreeMap::new();
    let mut transition_to = None;
    for (name, value) in values {
        if system == System::Jira && name == "status" && !child {
            transition_to = Some(field(value));
        } else {
            fields.insert(name, field(value));
        }
    }
    let entity = match (system, op) {
        (_, "comment") => "comment".to_string(),
        (_, "worklog") => "worklog".to_string(),
        (System::Jira, _) => "issue".to_string(),
        (System::Salesforce, _) => e.target.split(':').nth(1).unwrap_or("").to_string(),
    };
    let (src_system, src_entity, src_id) = parse_ref(&e.external_ref);
    Action::Invert {
        command: Box::new(Command {
            command_id: format!("{ID_PREFIX}{}", e.command_id),
            flow: e.flow.clone(),
            kind,
            target: TargetRef {
                system,
                entity,
                external_ref: e.external_ref.clone(),
                project: None,
                issue_type: None,
                parent_ref: None,
                attach_to,
                external_id_field: None,
                external_id: None,
                // An inverse restores; it never creates.
                update_only: true,
            },
            fields,
            transition_to,
            source: SourceRef {
                system: src_system.unwrap_or(system),
                entity: src_entity,
                id: src_id,
                version: format!("{ID_PREFIX}{}", e.command_id),
                commit_time: now,
            },
            delivery: DeliveryMode::Realtime,
        }),
        unrestored,
    }
}

/// Whether an audited operation wrote a Jira comment or worklog (not the issue).
fn is_child(operation: &str) -> bool {
    matches!(
        operation,
        "comment" | "worklog" | "delete_comment" | "delete_worklog"
    )
}

/// The id of the comment / worklog an entry added: the jira-sink audits an add with
/// `before.id = null` and the new id in `after.id` (an edit has the id on both sides).
fn added(e: &AuditEntry) -> Option<&str> {
    if !matches!(e.operation.as_str(), "comment" | "worklog") {
        return None;
    }
    e.before
        .get("id")
        .is_some_and(Value::is_null)
        .then(|| e.after.get("id").and_then(Value::as_str))
        .flatten()
}

/// `salesforce:Opportunity:006…` → (Salesforce, Opportunity, 006…); `jira:PROJ-7` → (Jira,
/// issue, PROJ-7); `jira:comment:10042` → (Jira, comment, 10042).
pub fn parse_ref(reference: &str) -> (Option<System>, String, String) {
    let parts: Vec<&str> = reference.splitn(3, ':').collect();
    let system = match parts.first() {
        Some(&"salesforce") => Some(System::Salesforce),
        Some(&"jira") => Some(System::Jira),
        _ => None,
    };
    match parts.as_slice() {
        [_, entity, id] => (system, entity.to_string(), id.to_string()),
        [_, key] => (system, "issue".into(), key.to_string()),
        _ => (system, String::new(), reference.to_string()),
    }
}

#[cfg(test)]
#[path = "invert_tests.rs"]
mod tests;
