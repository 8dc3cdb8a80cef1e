//! JQL lexer: turns the query text into tokens that carry their position, because Jira's
//! syntax errors name the offending token and its place ("(line 1, character 9)", 1-based).
//!
//! Words (unquoted values, field names, keywords) may contain letters, digits, `.`, `-`, `_`
//! and `:` so that issue keys (`ABC-12`), relative dates (`-5m`) and ISO dates (`2024-01-31`)
//! read as one word; `/` and the other reserved characters must be quoted, as on a real site.

use super::JqlError;

#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Tok {
    /// An unquoted word: field name, keyword or value.
    Word(String),
    /// A `"…"` or `'…'` string (escapes resolved).
    Str(String),
    /// `=`, `!=`, `<`, `<=`, `>`, `>=`, `~`, `!~`.
    Op(&'static str),
    LParen,
    RParen,
    Comma,
    LBracket,
    RBracket,
    /// `&`/`&&` (AND), `|`/`||` (OR), `!` (NOT): JQL's symbolic spellings.
    And,
    Or,
    Not,
}

#[derive(Debug, Clone)]
pub(crate) struct Token {
    pub tok: Tok,
    /// The token as written, for "but got '…'" messages.
    pub text: String,
    pub line: usize,
    /// 1-based character in the line.
    pub col: usize,
}

impl Token {
    /// True if this is the unquoted keyword `kw` (case-insensitive).
    pub fn is_kw(&self, kw: &str) -> bool {
        matches!(&self.tok, Tok::Word(w) if w.eq_ignore_ascii_case(kw))
    }
}

fn is_word_char(c: char) -> bool {
    c.is_alphanumeric() || matches!(c, '.' | '-' | '_' | ':')
}

/// Characters Jira refuses outside quotes (the real lexer's reserved set, minus the ones this
/// lexer gives a meaning to).
fn is_reserved(c: char) -> bool {
    matches!(
        c,
        '{' | '}' | '*' | '/' | '%' | '+' | '^' | '$' | '#' | '@' | '?' | ';' | '`' | '\\'
    )
}

pub(crate) fn lex(src: &str) -> Result<Vec<Token>, JqlError> {
    let chars: Vec<char> = src.chars().collect();
    let mut out = Vec::new();
    let (mut i, mut line, mut line_start) = (0usize, 1usize, 0usize);
    while i < chars.len() {
        let c = chars[i];
        let col = i - line_start + 1;
        let push = |out: &mut Vec<Token>, tok: Tok, text: String| {
            out.push(Token {
                tok,
                text,
                line,
                col,
            })
        };
        match c {
            '\n' => {
                line += 1;
                line_start = i + 1;
                i += 1;
            }
            c if c.is_whitespace() => i += 1,
            '(' => {
                push(&mut out, Tok::LParen, "(".into());
                i += 1;
            }
            ')' => {
                push(&mut out, Tok::RParen, ")".into());
                i += 1;
            }
            ',' => {
                push(&mut out, Tok::Comma, ",".into());
                i += 1;
            }
            '[' => {
                push(&mut out, Tok::LBracket, "[".into());
                i += 1;
            }
            ']' => {
                push(&mut out, Tok::RBracket, "]".into());
                i += 1;
            }
            '=' => {
                push(&mut out, Tok::Op("="), "=".into());
                i += 1;
            }
            '~' => {
                push(&mut out, Tok::Op("~"), "~".into());
                i += 1;
            }
            '!' | '<' | '>' => {
                let eq = chars.get(i + 1) == Some(&'=');
                let (tok, len) = match (c, eq, chars.get(i + 1)) {
                    ('!', true, _) => (Tok::Op("!="), 2),
                    ('!', false, Some('~')) => (Tok::Op("!~"), 2),
                    ('!', false, _) => (Tok::Not, 1),
                    ('<', true, _) => (Tok::Op("<="), 2),
                    ('<', false, _) => (Tok::Op("<"), 1),
                    ('>', true, _) => (Tok::Op(">="), 2),
                    _ => (Tok::Op(">"), 1),
                };
                push(&mut out, tok, chars[i..i + len].iter().collect());
                i += len;
            }
            '&' | '|' => {
                let len = if chars.get(i + 1) == Some(&c) { 2 } else { 1 };
                let tok = if c == '&' { Tok::And } else { Tok::Or };
                push(&mut out, tok, chars[i..i + len].iter().collect());
                i += len;
            }
            '"' | '\'' => {
                let (s, next) = quoted(&chars, i, line, col)?;
                push(&mut out, Tok::Str(s), chars[i..next].iter().collect());
                i = next;
            }
            c if is_word_char(c) => {
                let start = i;
                while i < chars.len() && is_word_char(chars[i]) {
                    i += 1;
                }
                let w: String = chars[start..i].iter().collect();
                push(&mut out, Tok::Word(w.clone()), w);
            }
            c => {
                let what = if is_reserved(c) {
                    "is a reserved JQL character"
                } else {
                    "must be escaped"
                };
                let tail = if is_reserved(c) {
                    "You must enclose it in a string or use the escape"
                } else {
                    "Use the escape"
                };
                return Err(JqlError::syntax(
                    format!(
                        "The character '{c}' {what}. {tail} '\\u{:04x}' instead.",
                        c as u32
                    ),
                    Some((line, col)),
                ));
            }
        }
    }
    Ok(out)
}

/// Reads a quoted string starting at `start` (the quote); returns its value and the index after
/// the closing quote.
fn quoted(
    chars: &[char],
    start: usize,
    line: usize,
    col: usize,
) -> Result<(String, usize), JqlError> {
    let q = chars[start];
    let mut s = String::new();
    let mut i = start + 1;
    while i < chars.len() {
        match chars[i] {
            c if c == q => return Ok((s, i + 1)),
            '\\' => {
                let esc = chars.get(i + 1).copied();
                match esc {
                    Some('"') | Some('\'') | Some('\\') | Some(' ') => s.push(esc.unwrap_or(' ')),
                    Some('t') => s.push('\t'),
                    Some('n') => s.push('\n'),
                    Some('r') => s.push('\r'),
                    Some('u') => {
                        let hex: String = chars.iter().skip(i + 2).take(4).collect();
                        let ch = u32::from_str_radix(&hex, 16).ok().and_then(char::from_u32);
                        match ch {
                            Some(ch) if hex.len() == 4 => {
                                s.push(ch);
                                i += 4;
                            }
                            _ => {
                                return Err(illegal_escape(
                                    &format!("\\u{hex}"),
                                    line,
                                    col + (i - start),
                                ));
                            }
                        }
                    }
                    Some(o) => {
                        return Err(illegal_escape(&format!("\\{o}"), line, col + (i - start)));
                    }
                    None => break,
                }
                i += 2;
            }
            c => {
                s.push(c);
                i += 1;
            }
        }
    }
    // Jira points at the opening quote of a string that never closes.
    Err(JqlError::syntax(
        format!("The quoted string '{s}' has not been completed."),
        Some((line, col)),
    ))
}

fn illegal_escape(seq: &str, line: usize, col: usize) -> JqlError {
    JqlError::syntax(
        format!(
            "'{seq}' is an illegal JQL escape sequence. The valid escape sequences are \\', \\\", \\t, \\n, \\r, \\\\, '\\ ' and \\uXXXX."
        ),
        Some((line, col)),
    )
}
