//! Atlassian Document Format checks and helpers. REST v3 requires ADF for `description`,
//! `environment`, textarea custom fields, comment bodies and worklog comments (reference §3.1);
//! the sandbox checks the document envelope (`type: doc`, `version: 1`, `content` array), the
//! part the real site rejects a plain string on, and does not validate every node.

use serde_json::{Value, json};

/// Rich-text size limit: "The entered text is too long. It exceeds the allowed limit of 32,767
/// characters." (Jira Cloud, https://github.com/mozilla/jira-bugzilla-integration/issues/1030;
/// the same 32 767 on comments, https://github.com/jenkinsci/jira-plugin/issues/667) [S]. The
/// sandbox counts the document's text, not its JSON: real Jira measures its own storage form,
/// which is unpublished, so the sandbox errs on the lenient side of a limit a sink must honour.
pub const TEXT_LIMIT: usize = 32767;
pub const TEXT_TOO_LONG: &str =
    "The entered text is too long. It exceeds the allowed limit of 32,767 characters.";

/// Whether `v`'s text is over [`TEXT_LIMIT`].
pub fn too_long(v: &Value) -> bool {
    plain_text(v).chars().count() > TEXT_LIMIT
}

/// Whether `v` is an ADF document envelope.
pub fn is_document(v: &Value) -> bool {
    v.get("type").and_then(Value::as_str) == Some("doc")
        && v.get("version").and_then(Value::as_u64) == Some(1)
        && v.get("content").is_some_and(Value::is_array)
}

/// A one-paragraph document holding `text` (seed data and admin helpers).
pub fn paragraph(text: &str) -> Value {
    json!({
        "type": "doc",
        "version": 1,
        "content": [{"type": "paragraph", "content": [{"type": "text", "text": text}]}]
    })
}

/// The document's text, paragraphs separated by newlines: what changelog `fromString`/`toString`
/// show for rich-text fields.
pub fn plain_text(v: &Value) -> String {
    fn walk(v: &Value, out: &mut String) {
        if let Some(t) = v.get("text").and_then(Value::as_str) {
            out.push_str(t);
        }
        if let Some(children) = v.get("content").and_then(Value::as_array) {
            for c in children {
                walk(c, out);
            }
            if v.get("type").and_then(Value::as_str) == Some("paragraph") {
                out.push('\n');
            }
        }
    }
    let mut out = String::new();
    walk(v, &mut out);
    out.trim_end().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recognises_documents_and_extracts_text() {
        let d = paragraph("hello");
        assert!(is_document(&d));
        assert!(!is_document(&json!("hello")));
        assert!(!is_document(&json!({"type": "doc", "content": []})));
        assert_eq!(plain_text(&d), "hello");
        assert!(!too_long(&d));
        assert!(too_long(&paragraph(&"x".repeat(TEXT_LIMIT + 1))));
    }
}
