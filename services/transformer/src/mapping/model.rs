//! The compiled mapping: what the engine runs. Every value here has been checked; expressions
//! are compiled CEL programs.

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

pub use sfjira_core::command::{Owner, System};

#[derive(Debug)]
pub struct Mapping {
    pub file: String,
    pub echo: EchoRules,
    pub flows: Vec<Flow>,
}

/// How sfjira recognises its own writes coming back (see the engine's echo suppression).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EchoRules {
    pub salesforce_client_id: Option<String>,
    pub jira_integration_account: Option<String>,
    pub jira_history_marker: Option<String>,
}

/// `salesforce.<Object>`, `jira.issue`, `jira.comment`, `jira.worklog`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Endpoint {
    pub system: System,
    pub entity: String,
}

impl Endpoint {
    /// Whether `source` (`salesforce.Opportunity`, `jira.issue`) is this endpoint; no
    /// allocation, as it runs for every flow of every record.
    pub fn names(&self, source: &str) -> bool {
        let system = match self.system {
            System::Salesforce => "salesforce",
            System::Jira => "jira",
        };
        source.split_once('.') == Some((system, self.entity.as_str()))
    }
}

impl fmt::Display for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.system, self.entity)
    }
}

/// A compiled CEL expression and its text (for error messages).
pub struct Expr {
    pub source: String,
    pub program: cel::Program,
    /// The `record.<Field>` names it mentions, read off `source` once at load: the engine asks
    /// per record whether the change touched them.
    pub reads: Vec<String>,
    /// It reads the event (`event.commit_time`) or fields the scan cannot name
    /// (`record["Salesforce ID"]`), so every change it sees may change its value.
    pub opaque: bool,
    /// Where it was written, for runtime errors: `file:line:column`.
    pub at: String,
}

impl fmt::Debug for Expr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Expr({:?} at {})", self.source, self.at)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Delivery {
    Realtime,
    Batched(Duration),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnDelete {
    Ignore,
    Delete,
    /// Jira targets: transition to a done status instead of deleting.
    Close,
}

/// The type a value is converted to before it goes into a command.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TargetType {
    /// Jira: plain string; Salesforce: text, textarea, email, phone, url, picklist, reference.
    String,
    /// Jira rich text: the value becomes an Atlassian Document (ADF).
    Adf,
    Number,
    Integer,
    Boolean,
    /// `YYYY-MM-DD`.
    Date,
    /// ISO 8601 in UTC with milliseconds (`2026-11-27T10:15:00.000Z`).
    DateTime,
    /// Jira single select: `{"value": …}`.
    Select,
    /// Jira multi select: `[{"value": …}, …]`.
    MultiSelect,
    /// Jira labels: a list of strings without spaces.
    Labels,
    /// Jira user: `{"accountId": …}`.
    User,
    /// Salesforce multi-select picklist: `a;b;c`.
    MultiPicklist,
}

impl TargetType {
    pub fn parse(s: &str) -> Option<TargetType> {
        Some(match s {
            "string" | "text" | "textarea" | "picklist" | "reference" | "email" | "phone"
            | "url" => TargetType::String,
            "adf" => TargetType::Adf,
            "number" | "currency" | "percent" | "double" => TargetType::Number,
            "integer" | "int" => TargetType::Integer,
            "boolean" | "checkbox" => TargetType::Boolean,
            "date" => TargetType::Date,
            "datetime" => TargetType::DateTime,
            "select" => TargetType::Select,
            "multiselect" | "multi-select" => TargetType::MultiSelect,
            "labels" => TargetType::Labels,
            "user" => TargetType::User,
            "multipicklist" | "multi-picklist" => TargetType::MultiPicklist,
            _ => return None,
        })
    }

    /// The names accepted in `type:` (for error messages).
    pub const NAMES: &'static str = "string, text, textarea, picklist, multipicklist, reference, email, phone, url, adf, \
        number, currency, percent, integer, boolean, date, datetime, select, multiselect, labels, user";

    /// Whether a value of this type can be written to `system`.
    pub fn fits(self, system: System) -> bool {
        match self {
            TargetType::Adf
            | TargetType::Select
            | TargetType::MultiSelect
            | TargetType::Labels
            | TargetType::User => system == System::Jira,
            TargetType::MultiPicklist => system == System::Salesforce,
            _ => true,
        }
    }
}

#[derive(Debug)]
pub enum ValueSource {
    /// A field of the source record.
    Field(String),
    Expr(Expr),
    Const(String),
}

#[derive(Debug)]
pub struct FieldRule {
    /// The target field (Jira field name or id, Salesforce API name).
    pub target: String,
    pub source: ValueSource,
    pub table: Option<BTreeMap<String, String>>,
    pub default: Option<String>,
    /// None: the value passes as it is (strings, numbers, booleans).
    pub ty: Option<TargetType>,
    pub owner: Owner,
    pub required: bool,
    /// `file:line` of the rule, for error messages.
    pub at: String,
}

#[derive(Debug)]
pub struct Target {
    pub project: Option<String>,
    pub issue_type: Option<String>,
    pub parent: Option<Expr>,
    pub attach_to: Option<Expr>,
    pub external_id_field: Option<String>,
    pub external_id: Option<Expr>,
    pub update_only: bool,
}

#[derive(Debug)]
pub struct Flow {
    pub name: String,
    pub from: Endpoint,
    pub to: Endpoint,
    pub when: Option<Expr>,
    pub on_change: Vec<String>,
    pub on_delete: OnDelete,
    pub delivery: Delivery,
    pub target: Target,
    pub fields: Vec<FieldRule>,
    pub status: Option<FieldRule>,
    /// What its expressions read of a record (the engine builds the CEL scope from it).
    pub scope: super::ScopeNeeds,
}

impl Flow {
    /// Every CEL expression of the flow.
    pub fn exprs(&self) -> impl Iterator<Item = &Expr> {
        let rules = self.fields.iter().chain(&self.status);
        let of_rules = rules.filter_map(|r| match &r.source {
            ValueSource::Expr(e) => Some(e),
            _ => None,
        });
        let t = &self.target;
        self.when
            .iter()
            .chain(of_rules)
            .chain(t.parent.iter())
            .chain(t.attach_to.iter())
            .chain(t.external_id.iter())
    }
}
