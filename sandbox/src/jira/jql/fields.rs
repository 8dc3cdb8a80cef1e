//! The fields this JQL subset knows: their names (with Jira's aliases), which operators each
//! takes, and how an unknown name is refused.

use super::CustomFieldKind;
use super::ast::{Field, Op};

/// A system field by any of its JQL names (case-insensitive).
pub(crate) fn system_field(name: &str) -> Option<Field> {
    Some(match name.to_ascii_lowercase().as_str() {
        "project" => Field::Project,
        "key" | "issuekey" | "issue" | "id" => Field::Key,
        "issuetype" | "type" => Field::IssueType,
        "status" => Field::Status,
        "labels" | "label" => Field::Labels,
        "assignee" => Field::Assignee,
        "reporter" => Field::Reporter,
        "created" | "createddate" => Field::Created,
        "updated" | "updateddate" => Field::Updated,
        _ => return None,
    })
}

/// Jira Cloud system fields this subset does not search. Naming one is refused with a sentence
/// of the sandbox's own rather than Jira's "does not exist", which would mislead: the query is
/// fine for a real site, the sandbox is what falls short.
const UNSUPPORTED_SYSTEM_FIELDS: &[&str] = &[
    "summary",
    "description",
    "text",
    "comment",
    "priority",
    "resolution",
    "resolved",
    "resolutiondate",
    "due",
    "duedate",
    "creator",
    "parent",
    "sprint",
    "fixversion",
    "affectedversion",
    "component",
    "statuscategory",
    "watcher",
    "watchers",
    "worklogdate",
    "issue.property",
    "attachments",
    "environment",
    "epic link",
    "lastviewed",
    "level",
];

pub(crate) fn unknown_field(name: &str) -> String {
    if UNSUPPORTED_SYSTEM_FIELDS
        .iter()
        .any(|f| f.eq_ignore_ascii_case(name))
    {
        return format!(
            "Field '{name}' exists in Jira Cloud but the sfjira sandbox does not search it (issue #4 subset)."
        );
    }
    format!("Field '{name}' does not exist or you do not have permission to view it.")
}

/// Which operators each field takes (the "Supported operators" lists of
/// https://support.atlassian.com/jira-software-cloud/docs/jql-fields/, minus history operators).
pub(crate) fn supports(field: &Field, op: Op) -> bool {
    use Op::*;
    match field {
        Field::Project
        | Field::IssueType
        | Field::Status
        | Field::Labels
        | Field::Assignee
        | Field::Reporter => {
            matches!(op, Eq | Ne | In | NotIn | Is | IsNot)
        }
        Field::Key => matches!(op, Eq | Ne | Lt | Le | Gt | Ge | In | NotIn),
        Field::Created | Field::Updated => {
            matches!(op, Eq | Ne | Lt | Le | Gt | Ge | In | NotIn | Is | IsNot)
        }
        Field::Custom {
            kind: CustomFieldKind::Text,
            ..
        } => matches!(op, Like | NotLike | Is | IsNot),
        Field::Custom {
            kind: CustomFieldKind::Exact,
            ..
        } => matches!(op, Eq | Ne | In | NotIn | Is | IsNot),
    }
}
