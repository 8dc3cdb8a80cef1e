//! Applies a compiled [`Mapping`] to one [`SourceRecord`].
//!
//! In order: echo suppression (sfjira's own writes coming back are dropped, once, for the whole
//! record); then for each flow whose `from` matches: the delete rule, the change condition
//! (`on_change`), the CEL trigger (`when`), and the field rules, each giving a command or an
//! error with a catalogued code. A record no flow reads is [`RecordOutcome::Unmapped`].
//!
//! Every mapped field with a value goes into the command, marked `changed` when this source
//! change touched its input (`from: X`: X changed; an expression: a `record.<Field>` it mentions
//! changed). Sinks write unchanged values only when they create the target (see
//! [`crate::command::FieldValue`]). A null is "no value here" unless the field is in the
//! record's changed or nulled list, in which case the target field is cleared.

mod convert;
mod record;
mod scope;

pub use convert::adf;
pub use record::{EventType, SourceRecord};
pub(crate) use scope::CHANGED_VAR;
use scope::{ROOT_CONTEXT, record_scope};

use std::borrow::Cow;
use std::collections::BTreeMap;

use serde_json::Value;
use sfjira_core::errors::{ErrorCode, StageError};
use sha2::{Digest, Sha256};

use crate::command::{Command, CommandKind, DeliveryMode, FieldValue, SourceRef, TargetRef};
use crate::mapping::{
    Delivery, EchoRules, Expr, FieldRule, Flow, Mapping, OnDelete, System, ValueSource,
};

/// What became of one record.
#[derive(Debug)]
pub enum RecordOutcome {
    /// sfjira's own write coming back: no commands (counted as an intentional discard).
    Echo,
    /// No flow reads this source (skipped and counted, not an error).
    Unmapped,
    /// One outcome per flow reading this source, in mapping order.
    Flows(Vec<Outcome>),
}

#[derive(Debug)]
pub enum Outcome {
    Command(Box<Command>),
    Skipped { flow: String, reason: SkipReason },
    Failed { flow: String, error: StageError },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SkipReason {
    /// `when` was false.
    ConditionFalse,
    /// None of the `on_change` fields changed.
    Unchanged,
    /// A delete, and the flow's `on_delete` is `ignore`.
    DeleteIgnored,
    /// An update that changed none of the flow's fields.
    NothingToWrite,
}

impl Mapping {
    pub fn apply(&self, record: &SourceRecord) -> RecordOutcome {
        if is_echo(&self.echo, record) {
            return RecordOutcome::Echo;
        }
        let flows: Vec<&Flow> = self
            .flows
            .iter()
            .filter(|f| f.from.names(&record.source))
            .collect();
        if flows.is_empty() {
            return RecordOutcome::Unmapped;
        }
        // Most records match one flow: its needs are used as they are, merged only for several.
        let merged;
        let needs = match flows.as_slice() {
            [only] => &only.scope,
            [first, rest @ ..] => {
                let mut all = first.scope.clone();
                for f in rest {
                    all.merge(&f.scope);
                }
                merged = all;
                &merged
            }
            [] => unreachable!("checked above"),
        };
        ROOT_CONTEXT.with(|root| {
            let scope = record_scope(root, record, needs);
            RecordOutcome::Flows(
                flows
                    .into_iter()
                    .map(|f| apply_flow(f, record, &scope))
                    .collect(),
            )
        })
    }
}

fn is_echo(rules: &EchoRules, r: &SourceRecord) -> bool {
    if r.source.starts_with("salesforce.") {
        let ours = rules.salesforce_client_id.as_deref();
        return ours.is_some_and(|id| {
            r.change_origin
                .as_deref()
                .is_some_and(|o| o.split(';').any(|p| p.trim() == format!("client={id}")))
        });
    }
    let by_integration =
        rules.jira_integration_account.is_some() && r.actor == rules.jira_integration_account;
    let marked =
        rules.jira_history_marker.is_some() && r.history_marker == rules.jira_history_marker;
    by_integration || marked
}

fn apply_flow(flow: &Flow, r: &SourceRecord, scope: &cel::Context<'_, 'static>) -> Outcome {
    let skipped = |reason| Outcome::Skipped {
        flow: flow.name.clone(),
        reason,
    };
    if r.event == EventType::Delete && flow.on_delete == OnDelete::Ignore {
        return skipped(SkipReason::DeleteIgnored);
    }
    if r.event == EventType::Update
        && !flow.on_change.is_empty()
        && !flow.on_change.iter().any(|f| r.changed(f))
    {
        return skipped(SkipReason::Unchanged);
    }
    match (Evaluator {
        flow,
        record: r,
        cel: scope,
    })
    .build()
    {
        Ok(Built::Command(cmd)) => Outcome::Command(cmd),
        Ok(Built::Skip(reason)) => skipped(reason),
        Err(error) => Outcome::Failed {
            flow: flow.name.clone(),
            error,
        },
    }
}

enum Built {
    Command(Box<Command>),
    Skip(SkipReason),
}

/// Evaluates one flow on one record, in the record's CEL scope.
struct Evaluator<'a, 'c> {
    flow: &'a Flow,
    record: &'a SourceRecord,
    cel: &'a cel::Context<'c, 'static>,
}

impl Evaluator<'_, '_> {
    fn build(&self) -> Result<Built, StageError> {
        let flow = self.flow;
        if let Some(when) = &flow.when {
            match self.eval(when, "when")? {
                Value::Bool(true) => {}
                Value::Bool(false) => return Ok(Built::Skip(SkipReason::ConditionFalse)),
                other => {
                    let msg = format!("`{}` gave {other}, not true or false", when.source);
                    return Err(self.error(ErrorCode::MappingExpressionFailed, "when", msg));
                }
            }
        }
        let kind = match (
            self.record.event,
            flow.on_delete,
            flow.to.system,
            flow.to.entity.as_str(),
        ) {
            (EventType::Delete, OnDelete::Close, _, _) => CommandKind::Close,
            (EventType::Delete, _, _, _) => CommandKind::Delete,
            (_, _, System::Jira, "comment") => CommandKind::Comment,
            (_, _, System::Jira, "worklog") => CommandKind::Worklog,
            _ => CommandKind::Upsert,
        };
        let mut fields = BTreeMap::new();
        let mut transition_to = None;
        if !matches!(kind, CommandKind::Delete | CommandKind::Close) {
            for rule in &flow.fields {
                if let Some(v) = self.field(rule)? {
                    fields.insert(rule.target.clone(), v);
                }
            }
            if let Some(status) = &flow.status {
                transition_to = match self.field(status)? {
                    Some(v) if v.value.is_null() => None,
                    Some(mut v) => {
                        v.value = Value::String(convert::text(&v.value).map_err(|e| {
                            self.error(ErrorCode::ValueNotConvertible, "status", e)
                        })?);
                        Some(v)
                    }
                    None => None,
                };
            }
            let anything_changed = fields
                .values()
                .chain(transition_to.as_ref())
                .any(|v| v.changed);
            if self.record.event == EventType::Update
                && !anything_changed
                && !self.may_have_entered()
            {
                return Ok(Built::Skip(SkipReason::NothingToWrite));
            }
        }
        let delivery = match flow.delivery {
            Delivery::Realtime => DeliveryMode::Realtime,
            Delivery::Batched(d) => DeliveryMode::Batched {
                interval_ms: d.as_millis() as u64,
            },
        };
        Ok(Built::Command(Box::new(Command {
            command_id: command_id(
                &flow.name,
                &self.record.source,
                &self.record.id,
                &self.record.version,
            ),
            flow: flow.name.clone(),
            kind,
            target: self.target()?,
            fields,
            transition_to,
            source: SourceRef {
                system: flow.from.system,
                entity: flow.from.entity.clone(),
                id: self.record.id.clone(),
                version: self.record.version.clone(),
                commit_time: self.record.commit_time,
            },
            delivery,
        })))
    }

    fn target(&self) -> Result<TargetRef, StageError> {
        let t = &self.flow.target;
        let text_of = |e: &Expr, what: &str| -> Result<Option<String>, StageError> {
            match self.eval(e, what)? {
                Value::Null => Ok(None),
                v => convert::text(&v)
                    .map(Some)
                    .map_err(|m| self.error(ErrorCode::ValueNotConvertible, what, m)),
            }
        };
        let attach_to = match &t.attach_to {
            Some(e) => match text_of(e, "target.attach_to")? {
                Some(r) => Some(r),
                None => {
                    let msg = format!(
                        "`{}` gave no reference, so there is nothing to attach to",
                        e.source
                    );
                    return Err(self.error(ErrorCode::RequiredFieldEmpty, "target.attach_to", msg));
                }
            },
            None => None,
        };
        let external_id = match (&t.external_id_field, &t.external_id) {
            (Some(_), Some(e)) => text_of(e, "target.external_id")?,
            (Some(_), None) => Some(
                self.record
                    .key
                    .clone()
                    .unwrap_or_else(|| self.record.id.clone()),
            ),
            (None, _) => None,
        };
        Ok(TargetRef {
            system: self.flow.to.system,
            entity: self.flow.to.entity.clone(),
            external_ref: external_ref(self.record),
            project: t.project.clone(),
            issue_type: t.issue_type.clone(),
            parent_ref: t
                .parent
                .as_ref()
                .map(|e| text_of(e, "target.parent"))
                .transpose()?
                .flatten(),
            attach_to,
            external_id_field: t.external_id_field.clone(),
            external_id,
            update_only: t.update_only,
        })
    }

    /// The value of one field rule: None when the record has no value for it (unchanged in a
    /// partial update, or empty on a create).
    fn field(&self, rule: &FieldRule) -> Result<Option<FieldValue>, StageError> {
        // Borrowed from the record where the value is a field of it: a long text is copied
        // once, into the command, not once per step.
        let (raw, changed): (Cow<'_, Value>, bool) = match &rule.source {
            ValueSource::Const(c) => (
                Cow::Owned(Value::String(c.clone())),
                self.record.event != EventType::Update,
            ),
            ValueSource::Field(name) => {
                let Some(v) = self.record.fields.get(name) else {
                    let msg = format!("the record has no field {name} (rule at {})", rule.at);
                    return Err(self.error(ErrorCode::SourceFieldMissing, &rule.target, msg));
                };
                (
                    Cow::Borrowed(v),
                    self.input_changed(std::slice::from_ref(name)),
                )
            }
            ValueSource::Expr(e) => {
                let changed = e.opaque || self.input_changed(&e.reads);
                (Cow::Owned(self.eval(e, &rule.target)?), changed)
            }
        };
        let value = match (&rule.table, raw) {
            (_, v) if v.is_null() => Cow::Owned(Value::Null),
            (Some(table), v) => {
                let key = convert::text(&v)
                    .map_err(|m| self.error(ErrorCode::ValueNotConvertible, &rule.target, m))?;
                match table.get(&key).or(rule.default.as_ref()) {
                    Some(mapped) => Cow::Owned(Value::String(mapped.clone())),
                    None => {
                        let known = table.keys().cloned().collect::<Vec<_>>().join(", ");
                        let msg = format!(
                            "'{key}' is not in the value table (rule at {}); known: {known}",
                            rule.at
                        );
                        return Err(self.error(ErrorCode::ValueNotInTable, &rule.target, msg));
                    }
                }
            }
            (None, v) => v,
        };
        let field_value = |value| FieldValue {
            value,
            owner: rule.owner,
            changed,
            source_time: self.record.commit_time,
        };
        if value.is_null() || value.as_str() == Some("") {
            let cleared = self.record.event == EventType::Update && changed;
            if rule.required && (cleared || self.record.event != EventType::Update) {
                let msg = format!(
                    "required, but this change leaves it empty (rule at {})",
                    rule.at
                );
                return Err(self.error(ErrorCode::RequiredFieldEmpty, &rule.target, msg));
            }
            // Only a field this change really emptied clears the target; a null that only means
            // "not in this event" leaves it alone.
            return Ok(cleared.then(|| field_value(Value::Null)));
        }
        let value = match rule.ty {
            None => value.into_owned(),
            Some(ty) => convert::convert(&value, ty).map_err(|m| {
                self.error(
                    ErrorCode::ValueNotConvertible,
                    &rule.target,
                    format!("{m} (rule at {})", rule.at),
                )
            })?,
        };
        Ok(Some(field_value(value)))
    }

    /// Whether this update may have just made the flow's `when` true (it changed a field the
    /// condition reads): the record may be entering the flow — an account becoming a customer
    /// — so its target may not exist yet and the command must go out even with no mapped field
    /// changed (a sink with a link writes nothing; without one it creates).
    fn may_have_entered(&self) -> bool {
        self.flow.when.as_ref().is_some_and(|w| {
            w.source.contains("record[") || w.reads.iter().any(|f| self.record.changed(f))
        })
    }

    /// Whether this change touched one of `fields`: on creates and undeletes everything is new;
    /// on updates, one of them must be in the changed or nulled list.
    fn input_changed(&self, fields: &[String]) -> bool {
        self.record.event != EventType::Update || fields.iter().any(|f| self.record.changed(f))
    }

    fn eval(&self, e: &Expr, what: &str) -> Result<Value, StageError> {
        let result = e.program.execute(self.cel).map_err(|err| {
            let code = match &err {
                cel::ExecutionError::NoSuchKey(_) => ErrorCode::SourceFieldMissing,
                _ => ErrorCode::MappingExpressionFailed,
            };
            self.error(
                code,
                what,
                format!("`{}` (at {}) failed: {err}", e.source, e.at),
            )
        })?;
        result.json().map_err(|err| {
            self.error(
                ErrorCode::MappingExpressionFailed,
                what,
                format!("`{}` gave a value with no JSON form: {err}", e.source),
            )
        })
    }

    fn error(&self, code: ErrorCode, field: &str, message: String) -> StageError {
        StageError::new(code, format!("flow {}, {field}: {message}", self.flow.name))
    }
}

/// The source record's reference: `salesforce:<Object>:<Id>`, `jira:<issueKey>` for issues,
/// `jira:<entity>:<id>` for comments and worklogs.
pub fn external_ref(r: &SourceRecord) -> String {
    match (r.source.split_once('.'), &r.key) {
        (Some(("jira", "issue")), Some(key)) => format!("jira:{key}"),
        (Some((system, entity)), _) => format!("{system}:{entity}:{}", r.id),
        (None, _) => format!("{}:{}", r.source, r.id),
    }
}

/// Deterministic: the same flow, record and version always give the same id.
pub fn command_id(flow: &str, source: &str, id: &str, version: &str) -> String {
    let mut h = Sha256::new();
    for part in [flow, source, id, version] {
        h.update(part.as_bytes());
        h.update([0]);
    }
    // Lower-case hex by table: `write!(id, "{b:02x}")` per byte went through the formatting
    // machinery 16 times per command (~1 % of the transformer's CPU in perf).
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut id = String::with_capacity(32);
    for b in &h.finalize()[..16] {
        id.push(char::from(HEX[usize::from(b >> 4)]));
        id.push(char::from(HEX[usize::from(b & 0xf)]));
    }
    id
}

#[cfg(test)]
mod tests;
