//! Commands: what the transformer asks a sink to do — the contract between the transformer and
//! the sinks, so it lives here where both can use it. One source record can yield several (one
//! per matching flow). A command is self-contained: the sink needs no mapping to apply it.
//! On the wire it is the Avro record `schemas/commands/Command.avsc` ([`avro`]).
//!
//! The command id is deterministic — a hash of the flow, the source record and its version — so
//! replaying a source topic produces the same ids and the sinks can recognise what they have
//! already applied.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::Value;

pub mod avro;
pub mod wire;

/// Which side of the connector.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum System {
    Salesforce,
    Jira,
}

impl std::fmt::Display for System {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            System::Salesforce => "salesforce",
            System::Jira => "jira",
        })
    }
}

/// Who owns a field: only flows from the owner write it; `Both` resolves by last edit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Owner {
    Salesforce,
    Jira,
    Both,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Command {
    pub command_id: String,
    /// The flow that produced it.
    pub flow: String,
    pub kind: CommandKind,
    pub target: TargetRef,
    /// Field name → value, already converted to the target's type.
    pub fields: BTreeMap<String, FieldValue>,
    /// Jira issues: the status to move to (the sink finds the transitions), as a string value
    /// with the same ownership and timing rules as a field.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub transition_to: Option<FieldValue>,
    pub source: SourceRef,
    /// `realtime`, or the batching interval in milliseconds.
    pub delivery: DeliveryMode,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum CommandKind {
    /// Create or update the target record, found by its external reference / external id.
    Upsert,
    /// Add or update a comment on the issue `target.attach_to`.
    Comment,
    /// Add or update a worklog on the issue `target.attach_to`.
    Worklog,
    Delete,
    /// Jira: move the issue to a done status instead of deleting it.
    Close,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TargetRef {
    pub system: System,
    /// `issue`, `comment`, `worklog`, or a Salesforce object name.
    pub entity: String,
    /// The source record's reference, `salesforce:Opportunity:006…` / `jira:issue:10001`: the
    /// link table maps it to the target record forever.
    pub external_ref: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub project: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub issue_type: Option<String>,
    /// External reference of the parent (an Epic for a Story).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub parent_ref: Option<String>,
    /// External reference of the record a comment / worklog / activity belongs to.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub attach_to: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub external_id_field: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub external_id: Option<String>,
    /// Never create the target: update a linked (or external-id-matched) record, or skip.
    pub update_only: bool,
}

/// A value with what the sink needs to apply it correctly.
///
/// `changed` says whether this source change touched the field. A sink writes every field
/// when it creates the target record, but on an update only the changed ones: an unchanged
/// value is there so a record created late (say, when an opportunity is won) is complete, and
/// must not overwrite a newer edit made on the other side. For `both`-owned fields the sink
/// compares `source_time` (the source commit time of this change) with the time of the target
/// field's last change: the later edit wins on both sides.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FieldValue {
    pub value: Value,
    pub owner: Owner,
    pub changed: bool,
    pub source_time: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SourceRef {
    pub system: System,
    pub entity: String,
    pub id: String,
    /// Position of this change at the source (replay id, changelog id…): with the flow and
    /// id, what makes the command id unique and stable.
    pub version: String,
    pub commit_time: DateTime<Utc>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum DeliveryMode {
    Realtime,
    Batched { interval_ms: u64 },
}
