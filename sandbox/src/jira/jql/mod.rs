//! JQL, the subset the connector and its peers use (issue #4): parse a query once, then test
//! issues against it and sort them. The site model stays J1's: it is reached only through the
//! [`JqlIssue`] and [`FieldResolver`] traits, so this module knows nothing of how issues are
//! stored.
//!
//! Supported: fields `project`, `key`/`issuekey`/`id`, `issuetype`/`type`, `status`, `labels`,
//! `assignee`, `reporter`, custom fields by quoted or bare name (through [`FieldResolver`]) or
//! `cf[10050]`, `created`/`createdDate`, `updated`/`updatedDate`; operators `= != < <= > >= ~ !~
//! IN, NOT IN, IS [NOT] EMPTY`; `AND`/`OR`/`NOT` (and `&& || !`) with Jira's precedence (NOT
//! binds tighter than AND, AND tighter than OR:
//! https://support.atlassian.com/jira/kb/jira-cloud-jql-order-of-operations/); parentheses;
//! `ORDER BY f [ASC|DESC], …`; dates `"yyyy/MM/dd HH:mm"`, `"yyyy-MM-dd HH:mm"`, `"yyyy/MM/dd"`,
//! `"yyyy-MM-dd"`, relative periods (`-5m`, `-1h`, `-2d`, `-1w`, `"4w 2d"`) and `now()`;
//! `currentUser()`; `EMPTY`/`NULL`.
//!
//! Error texts are the sentences a signed-in caller gets from a Jira Cloud site (Atlassian's own
//! JQL editor messages, `atlassian jql-editor error-messages`, and recorded `/search/jql`
//! answers); a signed-in caller naming an unknown field or value gets a 400, not the empty 200
//! an anonymous caller gets (jira-api.md §3.7).

mod ast;
mod date;
mod eval;
mod fields;
mod lexer;
mod parser;

use chrono::{DateTime, Utc};

pub use ast::Query;

/// What the evaluator needs to know about an issue. J1 implements it for the site model (and for
/// webhook snapshots).
pub trait JqlIssue {
    fn id(&self) -> u64;
    fn key(&self) -> &str;
    fn project_key(&self) -> &str;
    fn issue_type(&self) -> &str;
    fn status(&self) -> &str;
    fn labels(&self) -> &[String];
    /// The assignee's accountId.
    fn assignee(&self) -> Option<&str>;
    /// The reporter's accountId.
    fn reporter(&self) -> Option<&str>;
    /// A custom field's value as text (`field_id` is `customfield_10050`); `None` when empty.
    fn custom_field_text(&self, field_id: &str) -> Option<String>;
    fn created(&self) -> DateTime<Utc>;
    fn updated(&self) -> DateTime<Utc>;
}

/// A borrowed issue is searched like the issue (search pages hold references).
impl<T: JqlIssue + ?Sized> JqlIssue for &T {
    fn id(&self) -> u64 {
        (**self).id()
    }
    fn key(&self) -> &str {
        (**self).key()
    }
    fn project_key(&self) -> &str {
        (**self).project_key()
    }
    fn issue_type(&self) -> &str {
        (**self).issue_type()
    }
    fn status(&self) -> &str {
        (**self).status()
    }
    fn labels(&self) -> &[String] {
        (**self).labels()
    }
    fn assignee(&self) -> Option<&str> {
        (**self).assignee()
    }
    fn reporter(&self) -> Option<&str> {
        (**self).reporter()
    }
    fn custom_field_text(&self, field_id: &str) -> Option<String> {
        (**self).custom_field_text(field_id)
    }
    fn created(&self) -> DateTime<Utc> {
        (**self).created()
    }
    fn updated(&self) -> DateTime<Utc> {
        (**self).updated()
    }
}

/// How a custom field is searched. A Jira text field (`textfield`, `textarea`) only supports
/// `~`, `!~`, `IS`, `IS NOT` (the "inexact" text search, jira-api.md §3.6); select-like fields
/// are matched exactly with `=`, `!=`, `IN`, `NOT IN`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CustomFieldKind {
    Text,
    Exact,
}

/// The site's vocabulary, supplied per request by J1.
pub trait FieldResolver {
    /// `"Salesforce ID"` → `Some("customfield_10050")`; case-insensitive like Jira.
    fn custom_field_id(&self, name: &str) -> Option<String>;
    /// The kind of a custom field by id, or `None` if the site has no such field (then
    /// `cf[10050]` is refused like an unknown field). Default: every id exists and is text.
    fn custom_field_kind(&self, _field_id: &str) -> Option<CustomFieldKind> {
        Some(CustomFieldKind::Text)
    }
    /// Whether `value` names something that exists for `field` (`"project"`, `"status"`,
    /// `"issuetype"`, `"assignee"`, `"reporter"`). A signed-in caller naming a missing value
    /// gets "The value 'X' does not exist for the field 'project'." Default: everything exists.
    fn value_exists(&self, _field: &str, _value: &str) -> bool {
        true
    }
    /// The caller's accountId, for `currentUser()`; `None` = anonymous (matches nothing).
    fn current_user(&self) -> Option<String> {
        None
    }
}

/// Parses `jql`. Field names are resolved now, so a query is bound to one site's vocabulary.
pub fn parse(jql: &str, resolver: &dyn FieldResolver) -> Result<Query, JqlError> {
    parser::parse(jql, resolver)
}

/// A refused query: one or more of Jira's sentences, each one entry of `errorMessages` in the
/// 400 body.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}", messages.join(" "))]
pub struct JqlError {
    pub messages: Vec<String>,
}

impl JqlError {
    /// A syntax error: "Error in the JQL Query: …" with the position when there is a token.
    pub(crate) fn syntax(msg: impl Into<String>, at: Option<(usize, usize)>) -> Self {
        Self::with_prefix("Error in the JQL Query: ", msg.into(), at)
    }

    /// Jira words the "Expecting either a value, list or function" errors without "the"
    /// (recorded answers); kept as observed.
    pub(crate) fn operand(msg: impl Into<String>, at: Option<(usize, usize)>) -> Self {
        Self::with_prefix("Error in JQL Query: ", msg.into(), at)
    }

    fn with_prefix(prefix: &str, msg: String, at: Option<(usize, usize)>) -> Self {
        let pos = at
            .map(|(l, c)| format!(" (line {l}, character {c})"))
            .unwrap_or_default();
        JqlError {
            messages: vec![format!("{prefix}{msg}{pos}")],
        }
    }

    pub(crate) fn validation(messages: Vec<String>) -> Self {
        JqlError { messages }
    }
}
