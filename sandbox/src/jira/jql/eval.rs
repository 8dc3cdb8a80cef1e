//! JQL evaluation: whether an issue matches a parsed [`Query`], and the ORDER BY comparison.
//!
//! Jira's semantics kept here: `!=` and `NOT IN` never match an issue whose field is empty
//! (`assignee != bob` leaves out unassigned issues); names (project, status, type) compare
//! case-insensitively; `~` on a text field is an inexact word search (every query word, `*`
//! as a trailing wildcard, must appear as a word of the value), not a substring test.

use std::cmp::Ordering;

use chrono::{DateTime, DurationRound, TimeDelta, Utc};

use super::ast::{Clause, Expr, Field, Op, Query, Value};
use super::{CustomFieldKind, JqlIssue};

impl Query {
    /// False when the query has no search restriction (empty, or only ORDER BY): `/search/jql`
    /// refuses those (jira-api.md §3.7).
    pub fn is_bounded(&self) -> bool {
        self.filter.is_some()
    }

    /// Whether `issue` matches the where-part; relative dates are taken from `now`.
    pub fn matches(&self, issue: &dyn JqlIssue, now: DateTime<Utc>) -> bool {
        self.filter.as_ref().is_none_or(|e| eval(e, issue, now))
    }

    /// The ORDER BY order (ties are `Equal`; callers add their own tie-break).
    pub fn compare(&self, a: &dyn JqlIssue, b: &dyn JqlIssue) -> Ordering {
        for (field, desc) in &self.order {
            let o = sort_key(field, a).cmp(&sort_key(field, b));
            let o = if *desc { o.reverse() } else { o };
            if o != Ordering::Equal {
                return o;
            }
        }
        Ordering::Equal
    }

    /// When every match must have one of a few keys or ids (a `key = X` or `key IN (…)`
    /// clause, alone or a term of an AND at the top), those literals; a search then
    /// only needs to test the issues they name. `None` when the query can match any issue.
    pub fn key_literals(&self) -> Option<Vec<&str>> {
        self.filter.as_ref().and_then(key_literals)
    }

    /// Whether the query has an ORDER BY.
    pub fn has_order(&self) -> bool {
        !self.order.is_empty()
    }
}

fn key_literals(e: &Expr) -> Option<Vec<&str>> {
    match e {
        Expr::And(terms) => terms.iter().find_map(key_literals),
        Expr::Clause(Clause {
            field: Field::Key,
            op: Op::Eq | Op::In,
            operand,
        }) => Some(
            operand
                .iter()
                .filter_map(|v| match v {
                    Value::Text(t) => Some(t.as_str()),
                    _ => None,
                })
                .collect(),
        ),
        _ => None,
    }
}

fn eval(e: &Expr, issue: &dyn JqlIssue, now: DateTime<Utc>) -> bool {
    match e {
        Expr::And(v) => v.iter().all(|e| eval(e, issue, now)),
        Expr::Or(v) => v.iter().any(|e| eval(e, issue, now)),
        Expr::Not(e) => !eval(e, issue, now),
        Expr::Clause(c) => clause(c, issue, now),
    }
}

fn clause(c: &Clause, issue: &dyn JqlIssue, now: DateTime<Utc>) -> bool {
    match &c.field {
        Field::Created => date_clause(c, issue.created(), now),
        Field::Updated => date_clause(c, issue.updated(), now),
        Field::Key => key_clause(c, issue),
        Field::Custom {
            id,
            kind: CustomFieldKind::Text,
        } => {
            let v = issue.custom_field_text(id).filter(|s| !s.trim().is_empty());
            match (c.op, v) {
                (Op::Is, v) => v.is_none(),
                (Op::IsNot, v) => v.is_some(),
                (Op::Like, Some(v)) => c.operand.iter().any(|q| text_match(&v, q)),
                (Op::NotLike, Some(v)) => !c.operand.iter().any(|q| text_match(&v, q)),
                _ => false,
            }
        }
        // Borrowed values, no copies: this runs once per issue per clause on every search.
        Field::Project => set_clause(c.op, &c.operand, &[issue.project_key()], true),
        Field::IssueType => set_clause(c.op, &c.operand, &[issue.issue_type()], true),
        Field::Status => set_clause(c.op, &c.operand, &[issue.status()], true),
        // [U] labels compared case-sensitively, as stored.
        Field::Labels => set_clause(c.op, &c.operand, issue.labels(), false),
        Field::Assignee => set_clause(c.op, &c.operand, issue.assignee().as_slice(), false),
        Field::Reporter => set_clause(c.op, &c.operand, issue.reporter().as_slice(), false),
        Field::Custom { id, .. } => {
            let text = issue.custom_field_text(id);
            set_clause(c.op, &c.operand, text.as_slice(), true)
        }
    }
}

/// `=`, `!=`, `IN`, `NOT IN`, `IS [NOT]` over a multi-valued field (empty = EMPTY).
fn set_clause<S: AsRef<str>>(op: Op, operand: &[Value], vals: &[S], fold: bool) -> bool {
    let hit = |v: &Value| match v {
        Value::Empty => vals.is_empty(),
        Value::Text(t) => vals.iter().any(|x| {
            if fold {
                x.as_ref().eq_ignore_ascii_case(t)
            } else {
                x.as_ref() == t
            }
        }),
        Value::User(Some(u)) => vals.iter().any(|x| x.as_ref() == u),
        Value::User(None) | Value::Date(_) => false,
    };
    let any = operand.iter().any(hit);
    match op {
        Op::Eq | Op::In | Op::Is => any,
        // Negations never match an empty field unless EMPTY itself is what is negated.
        Op::Ne | Op::NotIn | Op::IsNot => !any && !vals.is_empty(),
        _ => false,
    }
}

fn date_clause(c: &Clause, t: DateTime<Utc>, now: DateTime<Utc>) -> bool {
    // Literals have minute precision, so equality is at the minute.
    let minute = |d: DateTime<Utc>| d.duration_trunc(TimeDelta::minutes(1)).unwrap_or(d);
    let at = |v: &Value| match v {
        Value::Date(d) => Some(d.resolve(now)),
        _ => None,
    };
    match c.op {
        // Created and updated are never empty.
        Op::Is => false,
        Op::IsNot => true,
        Op::Eq | Op::In => c
            .operand
            .iter()
            .filter_map(at)
            .any(|d| minute(d) == minute(t)),
        Op::Ne | Op::NotIn => !c
            .operand
            .iter()
            .filter_map(at)
            .any(|d| minute(d) == minute(t)),
        op => c.operand.iter().filter_map(at).any(|d| match op {
            Op::Lt => t < d,
            Op::Le => t <= d,
            Op::Gt => t > d,
            Op::Ge => t >= d,
            _ => false,
        }),
    }
}

/// Splits `ABC-12` into (`ABC`, 12).
fn split_key(k: &str) -> Option<(String, u64)> {
    let (p, n) = k.rsplit_once('-')?;
    Some((p.to_ascii_uppercase(), n.parse().ok()?))
}

fn key_clause(c: &Clause, issue: &dyn JqlIssue) -> bool {
    let is = |v: &Value| match v {
        Value::Text(t) => {
            t.eq_ignore_ascii_case(issue.key()) || t.parse::<u64>().ok() == Some(issue.id())
        }
        _ => false,
    };
    match c.op {
        Op::Eq | Op::In => c.operand.iter().any(is),
        Op::Ne | Op::NotIn => !c.operand.iter().any(is),
        op => {
            // Key order is within a project, by issue number.
            let Some((proj, num)) = split_key(issue.key()) else {
                return false;
            };
            c.operand.iter().any(|v| {
                let Value::Text(t) = v else { return false };
                let Some((p2, n2)) = split_key(t) else {
                    return false;
                };
                p2 == proj
                    && match op {
                        Op::Lt => num < n2,
                        Op::Le => num <= n2,
                        Op::Gt => num > n2,
                        Op::Ge => num >= n2,
                        _ => false,
                    }
            })
        }
    }
}

fn words(s: &str) -> Vec<String> {
    s.split(|c: char| !c.is_alphanumeric() && c != '*')
        .filter(|w| !w.is_empty())
        .map(str::to_lowercase)
        .collect()
}

/// Jira's `~`: every word of the query appears as a word of the text (`abc*` matches words
/// starting with `abc`). Stemming and phrase search are left out.
fn text_match(text: &str, q: &Value) -> bool {
    let Value::Text(q) = q else { return false };
    let have = words(text);
    let want = words(q);
    !want.is_empty()
        && want.iter().all(|w| match w.strip_suffix('*') {
            Some(prefix) => have.iter().any(|h| h.starts_with(prefix)),
            None => have.iter().any(|h| h == w),
        })
}

#[derive(PartialEq, Eq, PartialOrd, Ord)]
enum SortKey {
    Text(Option<String>),
    Key(String, u64),
    Time(DateTime<Utc>),
}

fn sort_key(field: &Field, i: &dyn JqlIssue) -> SortKey {
    let lower = |s: &str| Some(s.to_lowercase());
    match field {
        Field::Key => {
            split_key(i.key()).map_or(SortKey::Text(lower(i.key())), |(p, n)| SortKey::Key(p, n))
        }
        Field::Project => SortKey::Text(lower(i.project_key())),
        Field::IssueType => SortKey::Text(lower(i.issue_type())),
        Field::Status => SortKey::Text(lower(i.status())),
        Field::Labels => SortKey::Text(Some(i.labels().join(","))),
        Field::Assignee => SortKey::Text(i.assignee().map(str::to_string)),
        Field::Reporter => SortKey::Text(i.reporter().map(str::to_string)),
        Field::Custom { id, .. } => SortKey::Text(i.custom_field_text(id)),
        Field::Created => SortKey::Time(i.created()),
        Field::Updated => SortKey::Time(i.updated()),
    }
}
