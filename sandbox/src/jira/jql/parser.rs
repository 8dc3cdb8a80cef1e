//! JQL parser: tokens → [`Query`] (a where-expression and an ORDER BY list), with field names
//! resolved and values checked against each field, so that evaluation cannot fail.
//!
//! Grammar (Jira's precedence: comparison > NOT > AND > OR):
//! `query := [or] [ORDER BY sort (, sort)*]`, `or := and (OR and)*`, `and := not (AND not)*`,
//! `not := NOT not | '(' or ')' | clause`, `clause := field op operand`.

use super::ast::{Clause, Expr, Field, Op, Query, Value};
use super::date::{DateSpec, invalid_date_message, parse_date};
use super::fields::{supports, system_field, unknown_field};
use super::lexer::{Tok, Token, lex};
use super::{FieldResolver, JqlError};

const VALID_OPERATORS: &str = "The valid operators are '=', '!=', '<', '>', '<=', '>=', '~', '!~', 'IN', 'NOT IN', 'IS' and 'IS NOT'.";
const KEYWORDS: &[&str] = &[
    "AND", "OR", "NOT", "IN", "IS", "EMPTY", "NULL", "ORDER", "BY",
];

/// A value as written, before it is checked against its field.
enum Raw {
    Word(String),
    Str(String),
    Empty,
    Func(String),
}

pub(crate) fn parse(jql: &str, resolver: &dyn FieldResolver) -> Result<Query, JqlError> {
    let mut p = Parser {
        toks: lex(jql)?,
        pos: 0,
        resolver,
        errors: Vec::new(),
    };
    let filter = if p.peek().is_none() || p.at_order_by() {
        None
    } else {
        Some(p.or(0)?)
    };
    let mut order = Vec::new();
    if p.at_order_by() {
        p.pos += 1;
        match p.next() {
            Some(t) if t.is_kw("BY") => {}
            Some(t) => {
                return Err(JqlError::syntax(
                    format!("Expecting 'BY' but got '{}'.", t.text),
                    Some((t.line, t.col)),
                ));
            }
            None => {
                return Err(JqlError::syntax(
                    "Expecting 'BY' before the end of the query.",
                    None,
                ));
            }
        }
        loop {
            let (name, field) = p.field()?;
            let desc = match p.peek() {
                Some(t) if t.is_kw("DESC") => {
                    p.pos += 1;
                    true
                }
                Some(t) if t.is_kw("ASC") => {
                    p.pos += 1;
                    false
                }
                _ => false,
            };
            match field {
                Some(f) => order.push((f, desc)),
                None => p.errors.push(unknown_field(&name)),
            }
            match p.peek() {
                Some(t) if t.tok == Tok::Comma => p.pos += 1,
                Some(t) => {
                    return Err(JqlError::syntax(
                        format!("Expecting ',' but got '{}'.", t.text),
                        Some((t.line, t.col)),
                    ));
                }
                None => break,
            }
        }
    }
    if let Some(t) = p.peek() {
        return Err(JqlError::syntax(
            format!("Expecting either 'OR' or 'AND' but got '{}'.", t.text),
            Some((t.line, t.col)),
        ));
    }
    if !p.errors.is_empty() {
        return Err(JqlError::validation(p.errors));
    }
    Ok(Query { filter, order })
}

struct Parser<'r> {
    toks: Vec<Token>,
    pos: usize,
    resolver: &'r dyn FieldResolver,
    /// Validation errors (unknown field, value, operator): Jira reports all of them at once.
    errors: Vec<String>,
}

impl Parser<'_> {
    fn peek(&self) -> Option<&Token> {
        self.toks.get(self.pos)
    }
    fn next(&mut self) -> Option<Token> {
        let t = self.toks.get(self.pos).cloned();
        self.pos += 1;
        t
    }
    fn at_order_by(&self) -> bool {
        self.peek().is_some_and(|t| t.is_kw("ORDER"))
    }
    fn at(&self, f: impl Fn(&Token) -> bool) -> bool {
        self.peek().is_some_and(f)
    }

    fn or(&mut self, depth: usize) -> Result<Expr, JqlError> {
        let mut parts = vec![self.and(depth)?];
        while self.at(|t| t.tok == Tok::Or || t.is_kw("OR")) {
            self.pos += 1;
            parts.push(self.and(depth)?);
        }
        Ok(if parts.len() == 1 {
            parts.remove(0)
        } else {
            Expr::Or(parts)
        })
    }

    fn and(&mut self, depth: usize) -> Result<Expr, JqlError> {
        let mut parts = vec![self.not(depth)?];
        while self.at(|t| t.tok == Tok::And || t.is_kw("AND")) {
            self.pos += 1;
            parts.push(self.not(depth)?);
        }
        Ok(if parts.len() == 1 {
            parts.remove(0)
        } else {
            Expr::And(parts)
        })
    }

    fn not(&mut self, depth: usize) -> Result<Expr, JqlError> {
        if self.at(|t| t.tok == Tok::Not || t.is_kw("NOT")) {
            self.pos += 1;
            return Ok(Expr::Not(Box::new(self.not(depth)?)));
        }
        if self.at(|t| t.tok == Tok::LParen) {
            self.pos += 1;
            let inner = self.or(depth + 1)?;
            return match self.next() {
                Some(t) if t.tok == Tok::RParen => Ok(inner),
                Some(t) => Err(JqlError::syntax(
                    format!("Expecting ')' but got '{}'.", t.text),
                    Some((t.line, t.col)),
                )),
                None => Err(JqlError::syntax(
                    "Expecting ')' before the end of the query.",
                    None,
                )),
            };
        }
        self.clause()
    }

    /// A field name: a word, a quoted name, or `cf[12345]`. Returns the name as written and the
    /// resolved field (`None` if the site has no such field).
    fn field(&mut self) -> Result<(String, Option<Field>), JqlError> {
        let t = match self.next() {
            Some(t) => t,
            None => {
                return Err(JqlError::syntax(
                    "Expecting a field name at the end of the query.",
                    None,
                ));
            }
        };
        let name = match &t.tok {
            Tok::Word(w) if w.eq_ignore_ascii_case("cf") && self.at(|t| t.tok == Tok::LBracket) => {
                self.pos += 1;
                let id = match self.next() {
                    Some(Token {
                        tok: Tok::Word(n), ..
                    }) if n.chars().all(|c| c.is_ascii_digit()) => n,
                    _ => {
                        return Err(JqlError::syntax(
                            "Expecting a custom field id enclosed by '[ ]' after 'cf'. Example: 'cf[10021]'.",
                            Some((t.line, t.col)),
                        ));
                    }
                };
                if !matches!(
                    self.next(),
                    Some(Token {
                        tok: Tok::RBracket,
                        ..
                    })
                ) {
                    return Err(JqlError::syntax(
                        "Expecting a custom field id enclosed by '[ ]' after 'cf'. Example: 'cf[10021]'.",
                        Some((t.line, t.col)),
                    ));
                }
                let full = format!("customfield_{id}");
                let kind = self.resolver.custom_field_kind(&full);
                return Ok((
                    format!("cf[{id}]"),
                    kind.map(|kind| Field::Custom { id: full, kind }),
                ));
            }
            Tok::Word(w) if !KEYWORDS.iter().any(|k| w.eq_ignore_ascii_case(k)) => w.clone(),
            Tok::Str(s) => s.clone(),
            _ => {
                return Err(JqlError::syntax(
                    format!(
                        "Expecting a field name but got '{0}'. You must surround '{0}' in quotation marks to use it as a field name.",
                        t.text
                    ),
                    Some((t.line, t.col)),
                ));
            }
        };
        let system = system_field(&name);
        let field = system.or_else(|| {
            let id = self.resolver.custom_field_id(&name)?;
            let kind = self.resolver.custom_field_kind(&id)?;
            Some(Field::Custom { id, kind })
        });
        Ok((name, field))
    }

    fn clause(&mut self) -> Result<Expr, JqlError> {
        let (name, field) = self.field()?;
        let op_tok = match self.next() {
            Some(t) => t,
            None => {
                return Err(JqlError::syntax(
                    format!("Expecting operator before the end of the query. {VALID_OPERATORS}"),
                    None,
                ));
            }
        };
        let op = match &op_tok.tok {
            Tok::Op(o) => match *o {
                "=" => Op::Eq,
                "!=" => Op::Ne,
                "<" => Op::Lt,
                "<=" => Op::Le,
                ">" => Op::Gt,
                ">=" => Op::Ge,
                "~" => Op::Like,
                _ => Op::NotLike,
            },
            _ if op_tok.is_kw("IN") => Op::In,
            _ if op_tok.is_kw("IS") => {
                if self.at(|t| t.is_kw("NOT")) {
                    self.pos += 1;
                    Op::IsNot
                } else {
                    Op::Is
                }
            }
            _ if op_tok.is_kw("NOT") && self.at(|t| t.is_kw("IN")) => {
                self.pos += 1;
                Op::NotIn
            }
            _ => {
                return Err(JqlError::syntax(
                    format!(
                        "Expecting operator but got '{}'. {VALID_OPERATORS}",
                        op_tok.text
                    ),
                    Some((op_tok.line, op_tok.col)),
                ));
            }
        };
        let raws = if matches!(op, Op::In | Op::NotIn) && self.at(|t| t.tok == Tok::LParen) {
            self.list()?
        } else {
            vec![self.operand()?]
        };
        let Some(field) = field else {
            self.errors.push(unknown_field(&name));
            // Placeholder: the recorded error makes `parse` fail, so it is never evaluated.
            return Ok(Expr::Or(Vec::new()));
        };
        if !supports(&field, op) {
            self.errors.push(format!(
                "The operator '{}' is not supported by the '{name}' field.",
                op.text()
            ));
        }
        let operand = raws
            .into_iter()
            .map(|r| self.value(&name, &field, op, r))
            .collect();
        Ok(Expr::Clause(Clause { field, op, operand }))
    }

    fn list(&mut self) -> Result<Vec<Raw>, JqlError> {
        self.pos += 1; // '('
        let mut out = vec![self.operand()?];
        loop {
            match self.next() {
                Some(t) if t.tok == Tok::Comma => out.push(self.operand()?),
                Some(t) if t.tok == Tok::RParen => return Ok(out),
                Some(t) => {
                    return Err(JqlError::syntax(
                        format!("Expecting ',' or ')' but got '{}'.", t.text),
                        Some((t.line, t.col)),
                    ));
                }
                None => {
                    return Err(JqlError::syntax(
                        "Expecting ')' before the end of the query.",
                        None,
                    ));
                }
            }
        }
    }

    fn operand(&mut self) -> Result<Raw, JqlError> {
        let t = match self.next() {
            Some(t) => t,
            None => {
                return Err(JqlError::operand(
                    "Expecting either a value, list or function before the end of the query.",
                    None,
                ));
            }
        };
        match &t.tok {
            Tok::Str(s) => Ok(Raw::Str(s.clone())),
            Tok::Word(w) if w.eq_ignore_ascii_case("EMPTY") || w.eq_ignore_ascii_case("NULL") => {
                Ok(Raw::Empty)
            }
            Tok::Word(w) if !KEYWORDS.iter().any(|k| w.eq_ignore_ascii_case(k)) => {
                if self.at(|t| t.tok == Tok::LParen) {
                    // A function call; arguments are read and ignored (none of ours takes any).
                    self.pos += 1;
                    while !self.at(|t| t.tok == Tok::RParen) {
                        if self.next().is_none() {
                            return Err(JqlError::syntax(
                                "Expecting ')' before the end of the query.",
                                None,
                            ));
                        }
                    }
                    self.pos += 1;
                    return Ok(Raw::Func(w.clone()));
                }
                Ok(Raw::Word(w.clone()))
            }
            _ => Err(JqlError::operand(
                format!(
                    "Expecting either a value, list or function but got '{0}'. You must surround '{0}' in quotation marks to use it as a value.",
                    t.text
                ),
                Some((t.line, t.col)),
            )),
        }
    }

    /// Checks a value against its field and turns it into what the evaluator compares.
    fn value(&mut self, name: &str, field: &Field, op: Op, raw: Raw) -> Value {
        let text = match raw {
            Raw::Empty => return Value::Empty,
            Raw::Word(w) | Raw::Str(w) => w,
            Raw::Func(f) => {
                let user_field = matches!(field, Field::Assignee | Field::Reporter);
                let date_field = matches!(field, Field::Created | Field::Updated);
                return match f.to_ascii_lowercase().as_str() {
                    "currentuser" if user_field => Value::User(self.resolver.current_user()),
                    "now" if date_field => {
                        Value::Date(DateSpec::Relative(chrono::Duration::zero()))
                    }
                    "currentuser" | "now" => {
                        self.errors.push(format!("A value provided by the function '{f}' is invalid for the field '{name}'."));
                        Value::Empty
                    }
                    _ => {
                        self.errors
                            .push(format!("Unable to find JQL function '{f}()'."));
                        Value::Empty
                    }
                };
            }
        };
        if matches!(op, Op::Is | Op::IsNot) {
            // [U] exact sentence; Jira accepts only EMPTY/NULL after IS.
            self.errors.push(format!(
                "The operator '{}' only supports searching for EMPTY values.",
                op.text()
            ));
            return Value::Empty;
        }
        match field {
            Field::Created | Field::Updated => match parse_date(&text) {
                Some(d) => Value::Date(d),
                None => {
                    self.errors.push(invalid_date_message(&text, name));
                    Value::Empty
                }
            },
            Field::Project
            | Field::Status
            | Field::IssueType
            | Field::Assignee
            | Field::Reporter => {
                let canonical = match field {
                    Field::Project => "project",
                    Field::Status => "status",
                    Field::IssueType => "issuetype",
                    Field::Assignee => "assignee",
                    _ => "reporter",
                };
                if !self.resolver.value_exists(canonical, &text) {
                    self.errors.push(format!(
                        "The value '{text}' does not exist for the field '{name}'."
                    ));
                }
                Value::Text(text)
            }
            _ => Value::Text(text),
        }
    }
}
