//! The SOQL subset the sandbox understands, parsed into a small AST:
//!
//! `SELECT f1, f2 FROM Obj [WHERE cond] [ORDER BY f [ASC|DESC] [NULLS FIRST|LAST], …] [LIMIT n]`
//! where `cond` combines `field op literal` (`=`, `!=`, `<>`, `<`, `<=`, `>`, `>=`) and
//! `field [NOT] IN (lit, …)` with `AND`, `OR`, `NOT` and parentheses. Literals: 'strings' (with
//! backslash escapes), numbers, `true`/`false`, `null`, dates `2024-05-01` and date-times
//! `2024-05-01T10:00:00Z`. As in real SOQL, mixing `AND` and `OR` without parentheses is an
//! error. Anything else is `MALFORMED_QUERY` with the real message layout: the query, a caret
//! under the offending token, `ERROR at Row:1:Column:N`, `unexpected token: 'X'`.

use chrono::{DateTime, NaiveDate, Utc};

use super::validate::{parse_date, parse_datetime};

#[derive(Debug, Clone, PartialEq)]
pub enum Lit {
    Str(String),
    Num(f64),
    Bool(bool),
    Null,
    Date(NaiveDate),
    DateTime(DateTime<Utc>),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
}

/// A field name as written, with its 0-based offset in the query (for error carets).
#[derive(Debug, Clone, PartialEq)]
pub struct FieldRef {
    pub name: String,
    pub at: usize,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Expr {
    And(Vec<Expr>),
    Or(Vec<Expr>),
    Not(Box<Expr>),
    Cmp(FieldRef, Op, Lit),
    In(FieldRef, Vec<Lit>, bool),
}

#[derive(Debug, Clone, PartialEq)]
pub struct OrderBy {
    pub field: FieldRef,
    pub descending: bool,
    /// `None` = SOQL default (nulls first ascending, last descending).
    pub nulls_first: Option<bool>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Query {
    pub fields: Vec<FieldRef>,
    pub object: FieldRef,
    pub filter: Option<Expr>,
    pub order: Vec<OrderBy>,
    pub limit: Option<usize>,
}

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Word(String),
    Str(String),
    Num(String),
    Sym(&'static str),
    Eof,
}

impl Tok {
    fn text(&self) -> String {
        match self {
            Tok::Word(w) | Tok::Num(w) => w.clone(),
            Tok::Str(s) => format!("'{s}'"),
            Tok::Sym(s) => s.to_string(),
            Tok::Eof => "<EOF>".into(),
        }
    }
    fn is_kw(&self, kw: &str) -> bool {
        matches!(self, Tok::Word(w) if w.eq_ignore_ascii_case(kw))
    }
}

/// A parse error: byte offset and message, rendered by [`error_message`].
#[derive(Debug, Clone, PartialEq)]
pub struct SoqlError {
    pub at: usize,
    pub message: String,
}

/// The real org's layout of a query error.
pub fn error_message(query: &str, at: usize, message: &str) -> String {
    let col = query[..at.min(query.len())].chars().count() + 1;
    format!(
        "\n{query}\n{}^\nERROR at Row:1:Column:{col}\n{message}",
        " ".repeat(col - 1)
    )
}

fn lex(q: &str) -> Result<Vec<(Tok, usize)>, SoqlError> {
    let b = q.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        let c = b[i] as char;
        if c.is_whitespace() {
            i += 1;
            continue;
        }
        let start = i;
        if c == '\'' {
            let mut s = String::new();
            i += 1;
            loop {
                match q[i..].chars().next() {
                    None => {
                        return Err(SoqlError {
                            at: start,
                            message: "line 1:0 mismatched character '<EOF>' expecting '''".into(),
                        });
                    }
                    Some('\\') => {
                        let esc = q[i + 1..].chars().next().unwrap_or('\\');
                        s.push(match esc {
                            'n' => '\n',
                            't' => '\t',
                            other => other,
                        });
                        i += 1 + esc.len_utf8();
                    }
                    Some('\'') => {
                        i += 1;
                        break;
                    }
                    Some(ch) => {
                        s.push(ch);
                        i += ch.len_utf8();
                    }
                }
            }
            out.push((Tok::Str(s), start));
        } else if c.is_ascii_digit() || (c == '-' && b.get(i + 1).is_some_and(u8::is_ascii_digit)) {
            i += 1;
            while i < b.len() && (b[i].is_ascii_alphanumeric() || b"-:.+".contains(&b[i])) {
                i += 1;
            }
            out.push((Tok::Num(q[start..i].to_string()), start));
        } else if c.is_ascii_alphabetic() || c == '_' {
            while i < b.len() && (b[i].is_ascii_alphanumeric() || b[i] == b'_' || b[i] == b'.') {
                i += 1;
            }
            out.push((Tok::Word(q[start..i].to_string()), start));
        } else {
            let two = q.get(i..i + 2).unwrap_or("");
            let sym = match two {
                "!=" => Some("!="),
                "<>" => Some("<>"),
                "<=" => Some("<="),
                ">=" => Some(">="),
                _ => None,
            };
            let sym = sym.or(match c {
                '(' => Some("("),
                ')' => Some(")"),
                ',' => Some(","),
                '=' => Some("="),
                '<' => Some("<"),
                '>' => Some(">"),
                _ => None,
            });
            let Some(sym) = sym else {
                return Err(SoqlError {
                    at: start,
                    message: format!("unexpected token: '{c}'"),
                });
            };
            i += sym.len();
            out.push((Tok::Sym(sym), start));
        }
    }
    out.push((Tok::Eof, q.len()));
    Ok(out)
}

struct Parser {
    toks: Vec<(Tok, usize)>,
    pos: usize,
}

impl Parser {
    fn peek(&self) -> &Tok {
        &self.toks[self.pos].0
    }
    fn at(&self) -> usize {
        self.toks[self.pos].1
    }
    fn next(&mut self) -> (Tok, usize) {
        let t = self.toks[self.pos].clone();
        if self.pos + 1 < self.toks.len() {
            self.pos += 1;
        }
        t
    }
    fn unexpected(&self) -> SoqlError {
        SoqlError {
            at: self.at(),
            message: format!("unexpected token: '{}'", self.peek().text()),
        }
    }
    fn keyword(&mut self, kw: &str) -> Result<(), SoqlError> {
        if self.peek().is_kw(kw) {
            self.next();
            Ok(())
        } else {
            Err(self.unexpected())
        }
    }
    fn sym(&mut self, s: &str) -> Result<(), SoqlError> {
        if self.peek()
            == &Tok::Sym(match s {
                "(" => "(",
                ")" => ")",
                _ => ",",
            })
        {
            self.next();
            Ok(())
        } else {
            Err(self.unexpected())
        }
    }
    fn field(&mut self) -> Result<FieldRef, SoqlError> {
        const RESERVED: [&str; 13] = [
            "SELECT", "FROM", "WHERE", "AND", "OR", "NOT", "IN", "ORDER", "BY", "LIMIT", "NULL",
            "TRUE", "FALSE",
        ];
        match self.peek().clone() {
            Tok::Word(w) if !RESERVED.iter().any(|r| w.eq_ignore_ascii_case(r)) => {
                let at = self.at();
                self.next();
                Ok(FieldRef { name: w, at })
            }
            _ => Err(self.unexpected()),
        }
    }
    fn literal(&mut self) -> Result<Lit, SoqlError> {
        let bad = self.unexpected();
        let lit = match self.peek().clone() {
            Tok::Str(s) => Lit::Str(s),
            Tok::Word(w) if w.eq_ignore_ascii_case("null") => Lit::Null,
            Tok::Word(w) if w.eq_ignore_ascii_case("true") => Lit::Bool(true),
            Tok::Word(w) if w.eq_ignore_ascii_case("false") => Lit::Bool(false),
            Tok::Num(n) => {
                if let Ok(x) = n.parse::<f64>() {
                    Lit::Num(x)
                } else if let Some(d) = parse_date(&n) {
                    Lit::Date(d)
                } else if let Some(t) = parse_datetime(&n) {
                    Lit::DateTime(t)
                } else {
                    return Err(bad);
                }
            }
            _ => return Err(bad),
        };
        self.next();
        Ok(lit)
    }

    /// A chain of conditions joined by one connective (mixing needs parentheses).
    fn condition(&mut self) -> Result<Expr, SoqlError> {
        let first = self.atom()?;
        let mut items = vec![first];
        let mut connective: Option<bool> = None; // true = AND
        loop {
            let is_and = if self.peek().is_kw("AND") {
                true
            } else if self.peek().is_kw("OR") {
                false
            } else {
                break;
            };
            if connective.is_some_and(|c| c != is_and) {
                return Err(self.unexpected());
            }
            connective = Some(is_and);
            self.next();
            items.push(self.atom()?);
        }
        Ok(match (connective, items.len()) {
            (_, 1) => items.pop().expect("one item"),
            (Some(true), _) => Expr::And(items),
            _ => Expr::Or(items),
        })
    }

    fn atom(&mut self) -> Result<Expr, SoqlError> {
        if self.peek() == &Tok::Sym("(") {
            self.next();
            let e = self.condition()?;
            self.sym(")")?;
            return Ok(e);
        }
        if self.peek().is_kw("NOT") {
            self.next();
            return Ok(Expr::Not(Box::new(self.atom()?)));
        }
        let field = self.field()?;
        let negated_in = self.peek().is_kw("NOT");
        if negated_in {
            self.next();
            if !self.peek().is_kw("IN") {
                return Err(self.unexpected());
            }
        }
        if self.peek().is_kw("IN") {
            self.next();
            self.sym("(")?;
            let mut lits = vec![self.literal()?];
            while self.peek() == &Tok::Sym(",") {
                self.next();
                lits.push(self.literal()?);
            }
            self.sym(")")?;
            return Ok(Expr::In(field, lits, negated_in));
        }
        let op = match self.peek() {
            Tok::Sym("=") => Op::Eq,
            Tok::Sym("!=") | Tok::Sym("<>") => Op::Ne,
            Tok::Sym("<") => Op::Lt,
            Tok::Sym("<=") => Op::Le,
            Tok::Sym(">") => Op::Gt,
            Tok::Sym(">=") => Op::Ge,
            _ => return Err(self.unexpected()),
        };
        self.next();
        Ok(Expr::Cmp(field, op, self.literal()?))
    }
}

pub fn parse(q: &str) -> Result<Query, SoqlError> {
    let mut p = Parser {
        toks: lex(q)?,
        pos: 0,
    };
    p.keyword("SELECT")?;
    let mut fields = vec![p.field()?];
    while p.peek() == &Tok::Sym(",") {
        p.next();
        fields.push(p.field()?);
    }
    p.keyword("FROM")?;
    let object = p.field()?;
    let mut filter = None;
    if p.peek().is_kw("WHERE") {
        p.next();
        filter = Some(p.condition()?);
    }
    let mut order = Vec::new();
    if p.peek().is_kw("ORDER") {
        p.next();
        p.keyword("BY")?;
        loop {
            let field = p.field()?;
            let mut descending = false;
            if p.peek().is_kw("ASC") {
                p.next();
            } else if p.peek().is_kw("DESC") {
                p.next();
                descending = true;
            }
            let mut nulls_first = None;
            if p.peek().is_kw("NULLS") {
                p.next();
                nulls_first = Some(if p.peek().is_kw("FIRST") {
                    true
                } else if p.peek().is_kw("LAST") {
                    false
                } else {
                    return Err(p.unexpected());
                });
                p.next();
            }
            order.push(OrderBy {
                field,
                descending,
                nulls_first,
            });
            if p.peek() != &Tok::Sym(",") {
                break;
            }
            p.next();
        }
    }
    let mut limit = None;
    if p.peek().is_kw("LIMIT") {
        p.next();
        match p.peek().clone() {
            Tok::Num(n) if n.parse::<usize>().is_ok() => {
                limit = n.parse().ok();
                p.next();
            }
            _ => return Err(p.unexpected()),
        }
    }
    if p.peek() != &Tok::Eof {
        return Err(p.unexpected());
    }
    Ok(Query {
        fields,
        object,
        filter,
        order,
        limit,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_subset() {
        let q = parse(
            "SELECT Id, Name FROM Account WHERE (Name = 'A\\'s' OR Amount >= 10.5) AND CloseDate < 2024-01-31 AND Id NOT IN ('x') ORDER BY Name DESC NULLS LAST, Id LIMIT 5",
        )
        .unwrap();
        assert_eq!(q.fields.len(), 2);
        assert_eq!(q.object.name, "Account");
        assert_eq!(q.limit, Some(5));
        assert_eq!(q.order.len(), 2);
        let Some(Expr::And(items)) = q.filter else {
            panic!("and")
        };
        assert_eq!(items.len(), 3);
        assert!(matches!(&items[0], Expr::Or(v) if v.len() == 2));
    }

    #[test]
    fn rejects_mixed_connectives_and_garbage() {
        let q = "SELECT Id FROM Account WHERE A = 1 AND B = 2 OR C = 3";
        let e = parse(q).unwrap_err();
        assert_eq!(e.message, "unexpected token: 'OR'");
        assert_eq!(
            error_message(q, e.at, &e.message),
            format!(
                "\n{q}\n{}^\nERROR at Row:1:Column:46\nunexpected token: 'OR'",
                " ".repeat(45)
            )
        );
        assert!(parse("SELECT FROM Account").is_err());
        assert!(parse("SELECT COUNT() FROM Account").is_err());
    }
}
