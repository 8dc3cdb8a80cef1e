//! From commands to writes: which record each command reaches and which fields it writes,
//! following docs/commands.md — the link first (update by Id, changed fields only), else the
//! external id (upsert, every field), `update_only` never creating, deletes only of records
//! that exist, `attach_to` waiting (bounded) for its link, and the `BOTH`-field rule: a field
//! whose Salesforce record changed after the command's source change is not written
//! (`superseded`).
//!
//! What the rule compares with is the record's `LastModifiedDate`, an upper bound of the
//! field's last change (the sandbox, like many orgs, has no field history for these objects).
//! A record last modified by the integration user itself was last written by sfjira, from an
//! earlier command of the same record (commands of one record arrive in order), so its
//! `LastModifiedDate` says nothing about the other side and does not supersede.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde_json::{Map, Value};
use sfjira_core::command::{Command, CommandKind, FieldValue, Owner};
use sfjira_core::errors::{ErrorCode, StageError};
use sfjira_core::links::LinkStore;

use crate::api::{Api, CallFailure, Pauser, value_text};
use crate::outcome::{Failure, Outcome};
use crate::rows::{RecordKey, RowKind, Write};

/// What the resolver needs beyond the API.
pub struct ResolveSettings {
    pub read_before_write: bool,
    pub attach_wait: Duration,
    /// The integration user's Id, when known.
    pub our_user: Option<String>,
}

/// One command, resolved: its write (with what the outcome needs), or its outcome already.
#[derive(Debug)]
pub enum Plan {
    Write(Write, Context),
    Done(Outcome),
}

/// What a write's outcome is made of besides the row result.
#[derive(Debug, Clone, Default)]
pub struct Context {
    /// Values of the written fields before the write, as read.
    pub before: BTreeMap<String, Value>,
    /// `BOTH` fields not written because Salesforce's change is newer.
    pub superseded: Vec<String>,
    /// Whether the command's reference was already linked.
    pub linked: bool,
    /// Whether the row creates a record if none matches (an upsert by external id).
    pub may_create: bool,
}

/// `salesforce:<Object>:<Id>` → (object, Id).
pub fn parse_ref(r: &str) -> Option<(&str, &str)> {
    let rest = r.strip_prefix("salesforce:")?;
    let (object, id) = rest.split_once(':')?;
    (!object.is_empty() && !id.is_empty()).then_some((object, id))
}

struct Pre {
    object: String,
    id: Option<String>,
    ext: Option<(String, String)>,
    fields: BTreeMap<String, FieldValue>,
    needs_read: bool,
}

/// Resolves every command of a batch. Only a login failure fails the whole batch.
pub async fn resolve(
    api: &Api,
    links: &LinkStore,
    settings: &ResolveSettings,
    pauser: &dyn Pauser,
    commands: &[&Command],
) -> Result<Vec<Plan>, String> {
    let mut plans: Vec<Option<Plan>> = Vec::with_capacity(commands.len());
    let mut pres: Vec<Option<Pre>> = Vec::with_capacity(commands.len());
    for cmd in commands {
        match pre(links, settings, cmd).await {
            Ok(p) => {
                pres.push(Some(p));
                plans.push(None);
            }
            Err(outcome) => {
                pres.push(None);
                plans.push(Some(Plan::Done(outcome)));
            }
        }
    }

    // Reads: per object, by Id and by each external id field.
    let mut by_id: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let mut by_ext: BTreeMap<(String, String), BTreeSet<String>> = BTreeMap::new();
    let mut columns: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for p in pres.iter().flatten().filter(|p| p.needs_read) {
        let cols = columns.entry(p.object.clone()).or_default();
        cols.extend(p.fields.keys().filter(|k| is_plain_name(k)).cloned());
        match (&p.id, &p.ext) {
            (Some(id), _) => {
                by_id
                    .entry(p.object.clone())
                    .or_default()
                    .insert(id.clone());
            }
            (None, Some((f, v))) => {
                cols.insert(f.clone());
                by_ext
                    .entry((p.object.clone(), f.clone()))
                    .or_default()
                    .insert(v.clone());
            }
            (None, None) => {}
        }
    }
    let mut records: HashMap<(String, String, String), Map<String, Value>> = HashMap::new();
    // Per (object, field read by): why the read failed.
    let mut read_failed: HashMap<(String, String), Failure> = HashMap::new();
    let reads = by_id
        .into_iter()
        .map(|(o, v)| (o, "Id".to_string(), v))
        .chain(by_ext.into_iter().map(|((o, f), v)| (o, f, v)));
    for (object, field, values) in reads {
        let values: Vec<String> = values.into_iter().collect();
        let wanted = columns.get(&object).cloned().unwrap_or_default();
        match read(api, pauser, &object, &field, &wanted, &values).await {
            Ok(found) => {
                for (k, rec) in found {
                    records.insert((object.clone(), field.clone(), k), rec);
                }
            }
            Err(CallFailure::Login(m)) => return Err(m),
            Err(f) => {
                read_failed.insert((object.clone(), field.clone()), call_failure(f));
            }
        }
    }

    for (i, cmd) in commands.iter().enumerate() {
        let Some(p) = pres[i].take() else { continue };
        let (record, read_by) = match (&p.id, &p.ext) {
            (Some(id), _) => (
                records.get(&(p.object.clone(), "Id".into(), id.clone())),
                "Id".to_string(),
            ),
            (None, Some((f, v))) => (
                records.get(&(p.object.clone(), f.clone(), v.clone())),
                f.clone(),
            ),
            _ => (None, String::new()),
        };
        let failed_read = read_failed.get(&(p.object.clone(), read_by));
        let unknown = p.needs_read && record.is_none() && failed_read.is_some();
        plans[i] = Some(
            match write_for(cmd, p, record, settings.our_user.as_deref(), i) {
                // A read that failed cannot prove a record absent: fail the commands that
                // depended on its answer rather than skip them.
                Plan::Done(o)
                    if unknown && o.result == sfjira_core::audit::AuditResult::Skipped =>
                {
                    let f = failed_read.expect("checked above");
                    Plan::Done(Outcome::failed(
                        &cmd.target.external_ref,
                        Failure {
                            error: f.error.clone_for(&cmd.target.external_ref),
                            salesforce: f.salesforce.clone(),
                            attempts: f.attempts,
                        },
                    ))
                }
                plan => plan,
            },
        );
    }
    Ok(plans
        .into_iter()
        .map(|p| p.expect("every command planned"))
        .collect())
}

/// Field names a SOQL SELECT can carry.
fn is_plain_name(k: &str) -> bool {
    !k.is_empty() && k.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') && k != "Id"
}

/// Reads the records; when the wide read is refused (a field that does not exist, which the
/// write will report per row), reads the columns every object has.
async fn read(
    api: &Api,
    pauser: &dyn Pauser,
    object: &str,
    field: &str,
    wanted: &BTreeSet<String>,
    values: &[String],
) -> Result<HashMap<String, Map<String, Value>>, CallFailure> {
    let mut base: Vec<String> = ["Id", "LastModifiedDate", "LastModifiedById"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    if field != "Id" {
        base.push(field.to_string());
    }
    let mut wide = base.clone();
    wide.extend(wanted.iter().filter(|c| !base.contains(c)).cloned());
    match api.read(pauser, object, &wide, field, values).await {
        Err(CallFailure::Rejected(_)) if wide.len() > base.len() => {
            api.read(pauser, object, &base, field, values).await
        }
        other => other,
    }
}

fn call_failure(f: CallFailure) -> Failure {
    match f {
        CallFailure::Rejected(errors) => {
            let e = errors.into_iter().next().unwrap_or(crate::client::SfError {
                status_code: String::new(),
                message: "rejected".into(),
                fields: vec![],
            });
            crate::outcome::failure_of(&e, 1)
        }
        CallFailure::Exhausted { error, attempts } => Failure {
            error: StageError::new(ErrorCode::TargetUnavailable, error.to_string()),
            salesforce: None,
            attempts,
        },
        CallFailure::Login(m) => Failure {
            error: StageError::new(ErrorCode::SalesforceSinkLoginFailed, m),
            salesforce: None,
            attempts: 1,
        },
    }
}

fn unsupported(cmd: &Command, why: String) -> Outcome {
    Outcome::failed(
        &cmd.target.external_ref,
        Failure {
            error: StageError::new(ErrorCode::SalesforceCommandUnsupported, why),
            salesforce: None,
            attempts: 1,
        },
    )
}

/// Checks and link look-ups that need no Salesforce call.
async fn pre(links: &LinkStore, s: &ResolveSettings, cmd: &Command) -> Result<Pre, Outcome> {
    let t = &cmd.target;
    if !matches!(cmd.kind, CommandKind::Upsert | CommandKind::Delete) {
        return Err(unsupported(
            cmd,
            format!(
                "{:?} commands have no Salesforce meaning (flow {})",
                cmd.kind, cmd.flow
            ),
        ));
    }
    let mut fields = cmd.fields.clone();
    if let Some(parent) = &t.attach_to
        && cmd.kind == CommandKind::Upsert
        && !fields.contains_key("WhatId")
    {
        let every = Duration::from_millis(100).min(s.attach_wait.max(Duration::from_millis(1)));
        let linked = links.wait_for(parent, s.attach_wait, every).await;
        match linked.as_deref().and_then(parse_ref) {
            Some((_, id)) => {
                fields.insert(
                    "WhatId".into(),
                    FieldValue {
                        value: Value::String(id.to_string()),
                        owner: Owner::Both,
                        changed: true,
                        source_time: DateTime::<Utc>::UNIX_EPOCH,
                    },
                );
            }
            None => {
                return Err(Outcome::failed(
                    &t.external_ref,
                    Failure {
                        error: StageError::new(
                            ErrorCode::SalesforceAttachTargetMissing,
                            format!(
                                "{parent} has no Salesforce link after {} ms",
                                s.attach_wait.as_millis()
                            ),
                        ),
                        salesforce: None,
                        attempts: 1,
                    },
                ));
            }
        }
    }
    let id = links
        .counterpart(&t.external_ref)
        .as_deref()
        .and_then(parse_ref)
        .map(|(_, id)| id.to_string());
    let ext = match (&t.external_id_field, &t.external_id) {
        (Some(f), Some(v)) if !f.is_empty() && !v.is_empty() => Some((f.clone(), v.clone())),
        _ => None,
    };
    let has_both = fields.values().any(|f| f.owner == Owner::Both);
    let needs_read = s.read_before_write
        || has_both
        || (id.is_none() && (t.update_only || cmd.kind == CommandKind::Delete));
    Ok(Pre {
        object: t.entity.clone(),
        id,
        ext,
        fields,
        needs_read,
    })
}

/// The write (or the decision not to write) for one command.
fn write_for(
    cmd: &Command,
    p: Pre,
    record: Option<&Map<String, Value>>,
    our_user: Option<&str>,
    index: usize,
) -> Plan {
    let t = &cmd.target;
    let linked = p.id.is_some();
    let found_id = record.and_then(|r| r.get("Id")).and_then(value_text);
    let id = p.id.clone().or(found_id);
    let mut ctx = Context {
        linked,
        ..Context::default()
    };
    if cmd.kind == CommandKind::Delete {
        return match id {
            Some(id) => Plan::Write(
                Write {
                    command: index,
                    object: p.object,
                    kind: RowKind::Delete,
                    key: RecordKey::Id(id),
                    fields: Map::new(),
                },
                ctx,
            ),
            None => Plan::Done(Outcome::skipped(
                &t.external_ref,
                "delete: no linked record and none with the external id",
            )),
        };
    }
    // Linked: only what this change touched; otherwise the whole record (docs/commands.md).
    let changed_only = linked;
    let target_time = record.and_then(|r| last_change(r, our_user));
    let mut fields = Map::new();
    for (name, f) in &p.fields {
        if changed_only && !f.changed {
            continue;
        }
        if f.owner == Owner::Both
            && let Some(at) = target_time
            && at > f.source_time
        {
            ctx.superseded.push(name.clone());
            continue;
        }
        if name == "Id" || p.ext.as_ref().is_some_and(|(ef, _)| ef == name) {
            continue;
        }
        fields.insert(name.clone(), f.value.clone());
    }
    if let Some(r) = record {
        ctx.before = fields
            .keys()
            .chain(ctx.superseded.iter())
            .map(|k| (k.clone(), r.get(k).cloned().unwrap_or(Value::Null)))
            .collect();
    }
    let (kind, key) = match (id, &p.ext) {
        (Some(id), _) => (RowKind::Update, RecordKey::Id(id)),
        (None, _) if t.update_only => {
            return Plan::Done(Outcome::skipped(
                &t.external_ref,
                "update_only: no linked record and none with the external id",
            ));
        }
        (None, Some((f, v))) => {
            ctx.may_create = true;
            (
                RowKind::Upsert { field: f.clone() },
                RecordKey::Ext {
                    field: f.clone(),
                    value: v.clone(),
                },
            )
        }
        (None, None) => {
            return Plan::Done(unsupported(
                cmd,
                format!(
                    "{} is not linked and the command has no external id to upsert {} by (flow {})",
                    t.external_ref, t.entity, cmd.flow
                ),
            ));
        }
    };
    if fields.is_empty() && kind == RowKind::Update {
        let mut o = if ctx.superseded.is_empty() {
            Outcome::skipped(&t.external_ref, "nothing changed to write")
        } else {
            let mut o = Outcome::skipped(
                &t.external_ref,
                format!(
                    "superseded: Salesforce changed {} after this change",
                    ctx.superseded.join(", ")
                ),
            );
            o.result = sfjira_core::audit::AuditResult::Superseded;
            o
        };
        if let RecordKey::Id(id) = &key {
            o.target = format!("salesforce:{}:{id}", p.object);
        }
        o.before = ctx.before;
        return Plan::Done(o);
    }
    Plan::Write(
        Write {
            command: index,
            object: p.object,
            kind,
            key,
            fields,
        },
        ctx,
    )
}

/// When the record last changed by someone other than sfjira, as far as it tells.
fn last_change(r: &Map<String, Value>, our_user: Option<&str>) -> Option<DateTime<Utc>> {
    let by = r.get("LastModifiedById").and_then(Value::as_str);
    if our_user.is_some() && by == our_user {
        return None;
    }
    let at = r.get("LastModifiedDate")?.as_str()?;
    // Salesforce writes `2024-05-01T10:00:00.000+0000`.
    DateTime::parse_from_rfc3339(at)
        .or_else(|_| DateTime::parse_from_str(at, "%Y-%m-%dT%H:%M:%S%.f%z"))
        .ok()
        .map(|d| d.with_timezone(&Utc))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn refs_parse() {
        assert_eq!(
            parse_ref("salesforce:Opportunity:006A"),
            Some(("Opportunity", "006A"))
        );
        assert_eq!(parse_ref("jira:PROJ-7"), None);
    }

    #[test]
    fn last_change_ignores_our_own_writes() {
        let r =
            json!({"LastModifiedDate": "2026-01-02T03:04:05.000+0000", "LastModifiedById": "005A"});
        let r = r.as_object().unwrap();
        assert_eq!(
            last_change(r, None).unwrap().to_rfc3339(),
            "2026-01-02T03:04:05+00:00"
        );
        assert!(last_change(r, Some("005A")).is_none());
        assert!(last_change(r, Some("005B")).is_some());
    }
}
