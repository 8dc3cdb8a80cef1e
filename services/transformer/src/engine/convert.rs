//! Value conversion to the target field's type. Sources hand over JSON values (strings,
//! numbers, booleans, lists); targets want specific shapes (ADF documents, `{"value": …}`
//! selects, `a;b` multi-picklists, UTC ISO date-times). A value that cannot be converted is an
//! error naming both, never a silent guess.

use chrono::{DateTime, NaiveDate, SecondsFormat, Utc};
use serde_json::{Value, json};

use crate::mapping::TargetType;

/// Converts `v` (never null: nulls are handled by the caller) to `ty`.
pub fn convert(v: &Value, ty: TargetType) -> Result<Value, String> {
    match ty {
        TargetType::String => Ok(Value::String(text(v)?)),
        TargetType::Adf => match v {
            Value::String(s) => Ok(adf(s)),
            _ => Ok(adf(&text(v)?)),
        },
        TargetType::Number => number(v).map(|n| json!(n)),
        TargetType::Integer => {
            let n = number(v)?;
            if n.fract() != 0.0 {
                return Err(format!("{v} is not a whole number"));
            }
            Ok(json!(n as i64))
        }
        TargetType::Boolean => match v {
            Value::Bool(b) => Ok(json!(b)),
            Value::String(s) if s.eq_ignore_ascii_case("true") => Ok(json!(true)),
            Value::String(s) if s.eq_ignore_ascii_case("false") => Ok(json!(false)),
            _ => Err(format!("{v} is not a boolean")),
        },
        // NaiveDate's Display is ISO 8601's `YYYY-MM-DD`, without a format string to parse.
        TargetType::Date => datetime_or_date(v).map(|d| json!(d.date_naive().to_string())),
        TargetType::DateTime => {
            datetime_or_date(v).map(|d| json!(d.to_rfc3339_opts(SecondsFormat::Millis, true)))
        }
        TargetType::Select => Ok(json!({ "value": text(v)? })),
        TargetType::MultiSelect => Ok(Value::Array(
            list(v)?
                .into_iter()
                .map(|s| json!({ "value": s }))
                .collect(),
        )),
        // Jira labels cannot contain spaces.
        TargetType::Labels => Ok(json!(
            list(v)?
                .into_iter()
                .map(|s| s.replace(char::is_whitespace, "_"))
                .collect::<Vec<_>>()
        )),
        TargetType::User => Ok(json!({ "accountId": text(v)? })),
        TargetType::MultiPicklist => Ok(json!(list(v)?.join(";"))),
    }
}

/// The value as text (numbers and booleans in their JSON form).
pub fn text(v: &Value) -> Result<String, String> {
    match v {
        Value::String(s) => Ok(s.clone()),
        Value::Number(n) => Ok(n.to_string()),
        Value::Bool(b) => Ok(b.to_string()),
        _ => Err(format!("{v} is not a single value")),
    }
}

fn number(v: &Value) -> Result<f64, String> {
    match v {
        Value::Number(n) => n.as_f64().ok_or_else(|| format!("{v} is not a number")),
        Value::String(s) => s
            .trim()
            .parse()
            .map_err(|_| format!("'{s}' is not a number")),
        _ => Err(format!("{v} is not a number")),
    }
}

/// A list from a JSON array, or from `a;b;c` (Salesforce multi-picklists).
fn list(v: &Value) -> Result<Vec<String>, String> {
    match v {
        Value::Array(items) => items.iter().map(text).collect(),
        Value::String(s) => Ok(s
            .split(';')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(String::from)
            .collect()),
        _ => Err(format!("{v} is not a list")),
    }
}

/// Accepts RFC 3339, Jira's `2021-01-17T12:34:00.000+0000`, a plain `YYYY-MM-DD` (midnight
/// UTC), or epoch milliseconds.
fn datetime_or_date(v: &Value) -> Result<DateTime<Utc>, String> {
    match v {
        Value::Number(n) => n
            .as_i64()
            .and_then(DateTime::from_timestamp_millis)
            .ok_or_else(|| format!("{v} is not an epoch-milliseconds time")),
        // A plain date (Salesforce's date fields) is tried first when the text has a date's
        // length: its fixed-format parse costs less than two failed date-time parses.
        Value::String(s)
            if s.len() == 10
                && let Ok(d) = s.parse::<NaiveDate>() =>
        {
            Ok(midnight(d))
        }
        Value::String(s) => date_time(s)
            .or_else(|_| NaiveDate::parse_from_str(s, "%Y-%m-%d").map(midnight))
            .map_err(|_| format!("'{s}' is not a date or date-time (expected ISO 8601)")),
        _ => Err(format!("{v} is not a date or date-time")),
    }
}

fn date_time(s: &str) -> Result<DateTime<Utc>, chrono::ParseError> {
    DateTime::parse_from_rfc3339(s)
        .or_else(|_| DateTime::parse_from_str(s, "%Y-%m-%dT%H:%M:%S%.3f%z"))
        .map(|d| d.with_timezone(&Utc))
}

fn midnight(d: NaiveDate) -> DateTime<Utc> {
    d.and_hms_opt(0, 0, 0).expect("midnight").and_utc()
}

/// Plain text as an Atlassian Document: one paragraph per blank-line-separated block, line
/// breaks inside a block kept as `hardBreak`s.
pub fn adf(text: &str) -> Value {
    // Most values are a single line: one paragraph, without searching for breaks.
    if !text.bytes().any(|b| b == b'\n' || b == b'\r') {
        let content = if text.trim().is_empty() {
            vec![]
        } else {
            vec![json!({"type": "paragraph", "content": [{"type": "text", "text": text}]})]
        };
        return json!({"type": "doc", "version": 1, "content": content});
    }
    let paragraphs: Vec<Value> = text
        .split("\n\n")
        .filter(|p| !p.trim().is_empty())
        .map(|p| {
            let mut content = Vec::new();
            for (i, line) in p.lines().enumerate() {
                if i > 0 {
                    content.push(json!({"type": "hardBreak"}));
                }
                if !line.is_empty() {
                    content.push(json!({"type": "text", "text": line}));
                }
            }
            json!({"type": "paragraph", "content": content})
        })
        .collect();
    json!({"type": "doc", "version": 1, "content": paragraphs})
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conversions() {
        assert_eq!(
            convert(&json!(250000), TargetType::String).unwrap(),
            json!("250000")
        );
        assert_eq!(
            convert(&json!("12.5"), TargetType::Number).unwrap(),
            json!(12.5)
        );
        assert!(
            convert(&json!("lots"), TargetType::Number)
                .unwrap_err()
                .contains("not a number")
        );
        assert!(convert(&json!(2.5), TargetType::Integer).is_err());
        assert_eq!(
            convert(&json!("2026-11-27"), TargetType::Date).unwrap(),
            json!("2026-11-27")
        );
        assert_eq!(
            convert(&json!("2026-11-27T10:15:00.000+0100"), TargetType::DateTime).unwrap(),
            json!("2026-11-27T09:15:00.000Z")
        );
        assert_eq!(
            convert(&json!(1795780800000_i64), TargetType::Date).unwrap(),
            json!("2026-11-27")
        );
        assert!(convert(&json!("27/11/2026"), TargetType::Date).is_err());
        assert!(convert(&json!("2026-13-01"), TargetType::Date).is_err());
        assert_eq!(
            convert(&json!("2026-11-27"), TargetType::DateTime).unwrap(),
            json!("2026-11-27T00:00:00.000Z")
        );
        assert_eq!(
            convert(&json!("2026-11-27T23:30:00-02:00"), TargetType::Date).unwrap(),
            json!("2026-11-28")
        );
        assert_eq!(
            convert(&json!("Gold"), TargetType::Select).unwrap(),
            json!({"value": "Gold"})
        );
        assert_eq!(
            convert(&json!("a;b"), TargetType::MultiSelect).unwrap(),
            json!([{"value": "a"}, {"value": "b"}])
        );
        assert_eq!(
            convert(&json!(["key account", "emea"]), TargetType::Labels).unwrap(),
            json!(["key_account", "emea"])
        );
        assert_eq!(
            convert(&json!(["a", "b"]), TargetType::MultiPicklist).unwrap(),
            json!("a;b")
        );
        assert_eq!(
            convert(&json!("5b10"), TargetType::User).unwrap(),
            json!({"accountId": "5b10"})
        );
        assert_eq!(
            convert(&json!("TRUE"), TargetType::Boolean).unwrap(),
            json!(true)
        );
    }

    #[test]
    fn adf_keeps_paragraphs_and_line_breaks() {
        assert_eq!(
            adf("Hello\nworld\n\nBye"),
            json!({"type": "doc", "version": 1, "content": [
                {"type": "paragraph", "content": [{"type": "text", "text": "Hello"}, {"type": "hardBreak"}, {"type": "text", "text": "world"}]},
                {"type": "paragraph", "content": [{"type": "text", "text": "Bye"}]}
            ]})
        );
        // One line (no break to look for) and blank text give what the general rule gives.
        assert_eq!(
            adf("  one line  "),
            json!({"type": "doc", "version": 1, "content": [
                {"type": "paragraph", "content": [{"type": "text", "text": "  one line  "}]}
            ]})
        );
        assert_eq!(
            adf(" \t "),
            json!({"type": "doc", "version": 1, "content": []})
        );
        assert_eq!(adf("\n\n"), adf(" "));
        assert_eq!(
            adf("a\r\nb"),
            json!({"type": "doc", "version": 1, "content": [
                {"type": "paragraph", "content": [{"type": "text", "text": "a"}, {"type": "hardBreak"}, {"type": "text", "text": "b"}]}
            ]})
        );
    }
}
