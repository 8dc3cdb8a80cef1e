//! Comparing a value the mapping computes with the value a system holds: both are brought to a
//! plain form first, because the same value is spelled differently on each side — a Jira select
//! comes back as `{"self", "id", "value"}` but is written as `{"value"}`, rich text is an ADF
//! document, numbers may be `2` or `2.0`, timestamps carry different offsets and precisions,
//! and an empty string, an empty list and `null` all mean "no value".

use serde_json::Value;
use sfjira_jira_source::canonical::{adf_text, parse_time};

/// The plain form of `v`, for comparing.
pub fn plain(v: &Value) -> Value {
    match v {
        Value::Null => Value::Null,
        Value::String(s) => {
            let t = s.trim_end();
            if t.is_empty() {
                Value::Null
            } else if looks_like_timestamp(t)
                && let Some(ms) = parse_time(t)
            {
                Value::from(ms)
            } else {
                Value::String(t.to_string())
            }
        }
        Value::Number(n) => n.as_f64().map_or(Value::Number(n.clone()), Value::from),
        Value::Bool(_) => v.clone(),
        Value::Array(items) => {
            let mut out: Vec<Value> = items.iter().map(plain).filter(|i| !i.is_null()).collect();
            if out.is_empty() {
                return Value::Null;
            }
            out.sort_by_key(|a| a.to_string());
            Value::Array(out)
        }
        Value::Object(o) => {
            if o.get("type").and_then(Value::as_str) == Some("doc") {
                return adf_text(v).map_or(Value::Null, |t| plain(&Value::String(t)));
            }
            for k in ["value", "accountId", "name", "key"] {
                if let Some(inner) = o.get(k) {
                    return plain(inner);
                }
            }
            v.clone()
        }
    }
}

/// Jira labels without the jira-sink's reference stamp (`sfjira-` and 20 hex digits, added to
/// every issue it creates or edits so a retried create finds its issue): it is not data.
pub fn without_marker_labels(labels: &Value) -> Value {
    let is_marker = |l: &Value| {
        l.as_str()
            .and_then(|s| s.strip_prefix("sfjira-"))
            .is_some_and(|hex| hex.len() == 20 && hex.bytes().all(|b| b.is_ascii_hexdigit()))
    };
    match labels {
        Value::Array(items) => {
            Value::Array(items.iter().filter(|l| !is_marker(l)).cloned().collect())
        }
        other => other.clone(),
    }
}

/// Whether two values are the same value.
pub fn same(a: &Value, b: &Value) -> bool {
    let (a, b) = (plain(a), plain(b));
    match (a.as_f64(), b.as_f64()) {
        (Some(x), Some(y)) => (x - y).abs() <= 1e-9 * x.abs().max(y.abs()).max(1.0),
        _ => a == b,
    }
}

/// How a value is shown in the drift table.
pub fn display(v: &Value) -> String {
    match plain(v) {
        Value::Null => "(empty)".into(),
        Value::String(s) => s,
        Value::Array(items) => items.iter().map(display).collect::<Vec<_>>().join(", "),
        // A timestamp that became milliseconds is shown as it was written.
        p @ Value::Number(_) if looks_like_timestamp(v.as_str().unwrap_or("")) => v
            .as_str()
            .map(String::from)
            .unwrap_or_else(|| p.to_string()),
        other => other.to_string(),
    }
}

fn looks_like_timestamp(s: &str) -> bool {
    s.len() >= 19
        && s.as_bytes().get(10) == Some(&b'T')
        && s[..4].bytes().all(|b| b.is_ascii_digit())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_same_value_spelled_two_ways_is_the_same() {
        assert!(same(
            &json!({"value": "Gold"}),
            &json!({"self": "x", "id": "1", "value": "Gold"})
        ));
        assert!(same(&json!(2), &json!(2.0)));
        assert!(same(&json!(""), &Value::Null));
        assert!(same(&json!([]), &Value::Null));
        assert!(same(&json!(["b", "a"]), &json!(["a", "b"])));
        assert!(same(
            &json!("2026-11-27T10:00:00.000Z"),
            &json!("2026-11-27T11:00:00.000+0100")
        ));
        let text = json!({"type": "text", "text": "Hello"});
        let doc = json!({"type": "doc", "version": 1,
                         "content": [{"type": "paragraph", "content": [text]}]});
        assert!(same(&doc, &json!("Hello")));
        assert!(!same(&json!("Gold"), &json!({"value": "Silver"})));
        assert!(!same(&json!(2.5), &json!(3)));
    }

    #[test]
    fn the_sinks_marker_label_is_not_data() {
        let labels = json!(["salesforce", "sfjira-0123456789abcdef0123", "sfjira-team"]);
        assert_eq!(
            without_marker_labels(&labels),
            json!(["salesforce", "sfjira-team"])
        );
    }

    #[test]
    fn display_is_plain() {
        assert_eq!(display(&json!({"value": "Gold"})), "Gold");
        assert_eq!(display(&Value::Null), "(empty)");
        assert_eq!(display(&json!(2.5)), "2.5");
        assert_eq!(display(&json!(["x", "y"])), "x, y");
        assert_eq!(
            display(&json!("2026-11-27T10:00:00.000Z")),
            "2026-11-27T10:00:00.000Z"
        );
    }
}
