//! The site's fields and the shapes Jira wants: command fields are named as in the mapping
//! (`summary`, `Story Points`, `customfield_10050`) and resolved once at start against
//! `GET /field` to the site's ids, so a flow does not carry site-specific ids. Rich-text fields
//! (description, environment, textarea custom fields, comment bodies) must be ADF on REST v3: a
//! plain string is wrapped into a document here (a value that is already ADF passes through).
//! Also the stamps that let the transformer and jira-source recognise sfjira's own writes.

use std::collections::HashMap;

use serde_json::{Value, json};
use sha2::{Digest, Sha256};

/// One field of the site.
#[derive(Debug, Clone, PartialEq)]
pub struct FieldInfo {
    pub id: String,
    pub name: String,
    /// Rich text: the value must be an ADF document.
    pub adf: bool,
}

/// Field names and ids of the site (`GET /field`).
#[derive(Debug, Clone, Default)]
pub struct FieldCatalog {
    by_id: HashMap<String, FieldInfo>,
    by_name: HashMap<String, String>,
}

impl FieldCatalog {
    /// From the `GET /field` answer (an array of `{id, name, schema}`).
    pub fn from_fields(v: &Value) -> Self {
        let mut cat = FieldCatalog::default();
        for f in v.as_array().into_iter().flatten() {
            let (Some(id), Some(name)) = (
                f.get("id").and_then(Value::as_str),
                f.get("name").and_then(Value::as_str),
            ) else {
                continue;
            };
            let custom = f.pointer("/schema/custom").and_then(Value::as_str);
            let adf = matches!(id, "description" | "environment")
                || custom.is_some_and(|c| c.ends_with(":textarea"));
            cat.by_name
                .entry(name.to_lowercase())
                .or_insert_with(|| id.to_string());
            cat.by_id.insert(
                id.to_string(),
                FieldInfo {
                    id: id.to_string(),
                    name: name.to_string(),
                    adf,
                },
            );
        }
        cat
    }

    /// The field a command names: an id of the site, else a name (case-insensitive).
    pub fn resolve(&self, name: &str) -> Option<&FieldInfo> {
        self.by_id.get(name).or_else(|| {
            self.by_name
                .get(&name.to_lowercase())
                .and_then(|id| self.by_id.get(id))
        })
    }

    /// `value` in the shape the field takes: strings become ADF for rich-text fields.
    pub fn shape(&self, field: &FieldInfo, value: &Value) -> Value {
        if field.adf { adf(value) } else { value.clone() }
    }
}

/// An ADF document for `v`: a string becomes paragraphs (blank lines split paragraphs, single
/// newlines become hard breaks); a document passes through; `null` stays `null` (clears).
pub fn adf(v: &Value) -> Value {
    match v {
        Value::String(s) => adf_text(s),
        Value::Object(o) if o.get("type").and_then(Value::as_str) == Some("doc") => v.clone(),
        Value::Null => Value::Null,
        other => adf_text(&other.to_string()),
    }
}

fn adf_text(s: &str) -> Value {
    let paragraphs: Vec<Value> = s
        .split("\n\n")
        .map(|p| {
            let mut content = Vec::new();
            for (i, line) in p.split('\n').enumerate() {
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

/// The searchable marker stamped on every issue the sink creates: a label derived from the
/// reference (labels allow no spaces and at most 255 characters, references may have both, so
/// a hash). JQL `labels = "<marker>"` finds the issue when its create's answer was lost.
pub fn marker_label(reference: &str) -> String {
    let digest = Sha256::digest(reference.as_bytes());
    let hex: String = digest[..10].iter().map(|b| format!("{b:02x}")).collect();
    format!("sfjira-{hex}")
}

/// The issue property (key `sfjira`) naming the reference and the command that created it.
pub fn ref_property(reference: &str, command_id: &str) -> Value {
    json!({"key": "sfjira", "value": {"ref": reference, "command_id": command_id}})
}

/// `historyMetadata` for edits and transitions: `type` is what the transformer's
/// `echo.jira_history_marker` matches; `extraData.source_time` (epoch ms) is the source time of
/// the change written, used by the last-writer-wins rule for `BOTH` fields.
pub fn history_metadata(marker: &str, generator: &str, command_id: &str, source_ms: i64) -> Value {
    json!({
        "type": marker,
        "activityDescription": "sfjira sync",
        "generator": {"id": generator, "type": "sfjira-application"},
        "extraData": {"command_id": command_id, "source_time": source_ms.to_string()},
    })
}

/// Labels to write: the command's (an array or a single string) plus the marker, so an edit of
/// the labels never removes the marker.
pub fn labels_with_marker(value: &Value, marker: &str) -> Value {
    let mut labels: Vec<Value> = match value {
        Value::Array(a) => a.clone(),
        Value::String(s) if !s.is_empty() => s.split_whitespace().map(|l| json!(l)).collect(),
        _ => Vec::new(),
    };
    if !labels.iter().any(|l| l.as_str() == Some(marker)) {
        labels.push(json!(marker));
    }
    Value::Array(labels)
}

/// A worklog's `started` in Jira's strict `yyyy-MM-dd'T'HH:mm:ss.SSSZ` (`+0000`, never `Z`):
/// from RFC 3339 text, Jira's own format, or epoch milliseconds.
pub fn jira_time(v: &Value) -> Option<String> {
    let at = match v {
        Value::Number(n) => chrono::DateTime::from_timestamp_millis(n.as_i64()?)?,
        Value::String(s) => chrono::DateTime::parse_from_rfc3339(s)
            .or_else(|_| chrono::DateTime::parse_from_str(s, "%Y-%m-%dT%H:%M:%S%.3f%z"))
            .ok()?
            .with_timezone(&chrono::Utc),
        _ => return None,
    };
    Some(at.format("%Y-%m-%dT%H:%M:%S%.3f+0000").to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resolves_ids_and_names_and_marks_rich_text() {
        let cat = FieldCatalog::from_fields(&json!([
            {"id": "summary", "name": "Summary", "schema": {"type": "string"}},
            {"id": "description", "name": "Description", "schema": {"type": "string"}},
            {"id": "customfield_10061", "name": "Customer Impact",
             "schema": {"type": "string", "custom": "com.atlassian.jira.plugin.system.customfieldtypes:textarea"}},
        ]));
        assert_eq!(
            cat.resolve("customer impact").unwrap().id,
            "customfield_10061"
        );
        assert!(cat.resolve("Customer Impact").unwrap().adf);
        assert!(!cat.resolve("summary").unwrap().adf);
        assert!(cat.resolve("Nope").is_none());
        let d = cat.resolve("description").unwrap();
        assert_eq!(
            cat.shape(d, &json!("a\nb"))["content"][0]["content"][1]["type"],
            "hardBreak"
        );
    }

    #[test]
    fn adf_passes_documents_through_and_splits_paragraphs() {
        let doc = json!({"type": "doc", "version": 1, "content": []});
        assert_eq!(adf(&doc), doc);
        assert_eq!(
            adf(&json!("x\n\ny"))["content"].as_array().unwrap().len(),
            2
        );
    }

    #[test]
    fn marker_is_a_stable_label_and_survives_label_edits() {
        let m = marker_label("salesforce:Opportunity:006 with space");
        assert_eq!(m, marker_label("salesforce:Opportunity:006 with space"));
        assert!(m.starts_with("sfjira-") && !m.contains(' '));
        assert_eq!(
            labels_with_marker(&json!(["a"]), &m),
            json!(["a", m.clone()])
        );
        assert_eq!(labels_with_marker(&Value::Null, &m), json!([m]));
    }

    #[test]
    fn started_is_in_jiras_strict_format() {
        assert_eq!(
            jira_time(&json!("2024-01-01T09:00:00Z")).unwrap(),
            "2024-01-01T09:00:00.000+0000"
        );
        assert_eq!(
            jira_time(&json!("2024-01-01T10:00:00.000+0100")).unwrap(),
            "2024-01-01T09:00:00.000+0000"
        );
        assert_eq!(
            jira_time(&json!(0)).unwrap(),
            "1970-01-01T00:00:00.000+0000"
        );
    }
}
