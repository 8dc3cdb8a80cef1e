//! The mapping file as written: serde types mirroring the YAML, with positions kept
//! ([`Spanned`]) on every value a later check may complain about. Nothing is interpreted here;
//! `compile.rs` turns these into flows.

use indexmap::IndexMap;

use marked_yaml::Spanned;
use serde::Deserialize;

pub type S = Spanned<String>;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawMapping {
    pub version: Spanned<u32>,
    #[serde(default)]
    pub echo: RawEcho,
    pub flows: Vec<RawFlow>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawEcho {
    /// The client id sfjira's Salesforce writes send in `Sforce-Call-Options`.
    pub salesforce_client_id: Option<S>,
    /// The Jira accountId sfjira writes as.
    pub jira_integration_account: Option<S>,
    /// The `historyMetadata.type` sfjira stamps on its Jira writes.
    pub jira_history_marker: Option<S>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawFlow {
    pub name: S,
    pub from: S,
    pub to: S,
    /// CEL: the flow applies only when this is true.
    pub when: Option<S>,
    /// The flow applies to an update only when one of these fields changed.
    #[serde(default)]
    pub on_change: Vec<S>,
    /// What a delete at the source does: `ignore` (default), `delete`, or `close` (Jira only).
    pub on_delete: Option<S>,
    /// `realtime` (default) or `batched <duration>` (e.g. `batched 5m`).
    pub delivery: Option<S>,
    #[serde(default)]
    pub target: RawTarget,
    #[serde(default)]
    pub fields: IndexMap<S, RawField>,
    /// Jira targets: the status to move to (a transition target; the sink finds the path).
    pub status: Option<RawField>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawTarget {
    /// Jira: project key.
    pub project: Option<S>,
    /// Jira: issue type name.
    pub issue_type: Option<S>,
    /// Jira issues: CEL giving the parent's external reference (an Epic for a Story).
    pub parent: Option<S>,
    /// Comments, worklogs, activities: CEL giving the external reference of the record they
    /// belong to.
    pub attach_to: Option<S>,
    /// Salesforce: the external-id field used for upserts (e.g. `Jira_Key__c`).
    pub external_id_field: Option<S>,
    /// CEL giving the external id value (default: the source record's key or id).
    pub external_id: Option<S>,
    /// Never create the target record: update it when it exists (linked, or matched by
    /// external id), otherwise skip. For flows that only feed back into records the other
    /// flow created (Jira status back onto the Opportunity it came from).
    #[serde(default)]
    pub update_only: bool,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawField {
    /// The source field to read.
    pub from: Option<S>,
    /// CEL computing the value.
    pub expr: Option<S>,
    /// A constant.
    pub value: Option<S>,
    /// Value table: source value → target value.
    pub table: Option<IndexMap<S, S>>,
    /// Used when the table has no entry (without it, a missing entry is an error).
    pub default: Option<S>,
    /// Target type to convert to.
    #[serde(rename = "type")]
    pub ty: Option<S>,
    /// `salesforce`, `jira` or `both`.
    pub owner: Option<S>,
    /// An empty value is an error rather than an omitted field.
    #[serde(default)]
    pub required: bool,
}
