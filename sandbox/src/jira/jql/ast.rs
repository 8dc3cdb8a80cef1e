//! The parsed form of a JQL query: what the parser builds and the evaluator walks. Field names
//! are already resolved (custom fields to their `customfield_N` ids) and values already checked
//! and converted (dates parsed, `currentUser()` replaced by the caller's accountId), so
//! evaluation cannot fail.

use super::CustomFieldKind;
use super::date::DateSpec;

/// A parsed query, bound to the site whose [`FieldResolver`](super::FieldResolver) resolved it.
#[derive(Debug, Clone)]
pub struct Query {
    pub(crate) filter: Option<Expr>,
    pub(crate) order: Vec<(Field, bool)>, // (field, descending)
}

#[derive(Debug, Clone)]
pub(crate) enum Expr {
    And(Vec<Expr>),
    Or(Vec<Expr>),
    Not(Box<Expr>),
    Clause(Clause),
}

#[derive(Debug, Clone)]
pub(crate) struct Clause {
    pub field: Field,
    pub op: Op,
    pub operand: Vec<Value>, // one value, or the list of IN / NOT IN
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Field {
    Project,
    Key,
    IssueType,
    Status,
    Labels,
    Assignee,
    Reporter,
    Custom { id: String, kind: CustomFieldKind },
    Created,
    Updated,
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Op {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
    Like,
    NotLike,
    In,
    NotIn,
    Is,
    IsNot,
}

impl Op {
    pub(crate) fn text(self) -> &'static str {
        match self {
            Op::Eq => "=",
            Op::Ne => "!=",
            Op::Lt => "<",
            Op::Le => "<=",
            Op::Gt => ">",
            Op::Ge => ">=",
            Op::Like => "~",
            Op::NotLike => "!~",
            Op::In => "in",
            Op::NotIn => "not in",
            Op::Is => "is",
            Op::IsNot => "is not",
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Value {
    Text(String),
    Empty,
    /// `currentUser()`, resolved at parse time (`None` = anonymous).
    User(Option<String>),
    Date(DateSpec),
}
