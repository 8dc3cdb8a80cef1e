//! Per-field rules: how a request value is validated and stored, how a stored value is
//! rendered in REST v3, and what a change looks like in the changelog (`from`/`fromString`
//! raw id vs display text, as Jira records them: users by account id and display name,
//! options by id and value, parent by id and key).
//!
//! Error texts marked [U] are plausible, not recorded from a real site.

use serde_json::{Value, json};

use super::SiteState;
use super::catalog::{Catalog, FieldDef, FieldKind};
use super::render;
use crate::jira::adf;
use crate::jira::error::NOT_ADF;

/// Validates a request value for `def` and returns its stored form (`None` = clear the field).
/// `Err` is the message for `errors.<field id>`.
pub fn parse_value(
    catalog: &Catalog,
    state: &SiteState,
    def: &FieldDef,
    v: &Value,
) -> Result<Option<Value>, String> {
    if v.is_null() {
        return if def.id == "summary" {
            Err("You must specify a summary of the issue.".into())
        } else {
            Ok(None)
        };
    }
    match def.kind {
        FieldKind::Text => match v.as_str() {
            Some("") if def.id == "summary" => {
                Err("You must specify a summary of the issue.".into())
            }
            // Jira's single-line text limit (https://support.atlassian.com/jira-cloud-administration/docs/custom-fields-types-in-company-managed-projects/).
            Some(s) if s.chars().count() > 255 => {
                Err(format!("{} must be less than 255 characters.", def.name))
            }
            Some(s) => Ok(Some(json!(s))),
            None => Err("Operation value must be a string".to_string()), // [U]
        },
        FieldKind::RichText => {
            if !adf::is_document(v) {
                Err(NOT_ADF.into())
            } else if adf::too_long(v) {
                Err(adf::TEXT_TOO_LONG.into())
            } else {
                Ok(Some(v.clone()))
            }
        }
        FieldKind::Number => match v.as_f64() {
            Some(_) => Ok(Some(v.clone())),
            None => Err("Operation value must be a number".into()), // [U]
        },
        FieldKind::Labels => {
            let Some(items) = v.as_array() else {
                return Err("data was not an array".into()); // [U]
            };
            let mut labels = Vec::new();
            for item in items {
                let label = item.as_str().ok_or("data was not an array of strings")?; // [U]
                if label.contains(' ') {
                    return Err(format!(
                        "The label '{label}' contains spaces which is invalid."
                    )); // [U]
                }
                if !labels.contains(&label) {
                    labels.push(label);
                }
            }
            Ok((!labels.is_empty()).then(|| json!(labels)))
        }
        FieldKind::User => {
            let id = v
                .get("accountId")
                .or_else(|| v.get("id"))
                .and_then(Value::as_str)
                .ok_or("expected Object containing an 'accountId'")?; // [U]
            match catalog.user(id) {
                Some(u) => Ok(Some(json!(u.account_id))),
                None => Err(format!("User '{id}' does not exist.")), // [U]
            }
        }
        FieldKind::Priority => {
            let wanted = v
                .get("id")
                .or_else(|| v.get("name"))
                .and_then(Value::as_str);
            match wanted.and_then(|w| catalog.priority(w)) {
                Some(p) => Ok(Some(json!(p.id))),
                None => Err("Specify a valid 'id' or 'name' for Priority".into()),
            }
        }
        FieldKind::Select => {
            let by_id = v.get("id").and_then(Value::as_str);
            let by_value = v.get("value").and_then(Value::as_str);
            let found = def.options.iter().find(|o| {
                by_id.is_some_and(|id| id == o.id) || by_value.is_some_and(|val| val == o.value)
            });
            match found {
                Some(o) => Ok(Some(json!(o.id))),
                None => Err(format!(
                    "Option value '{}' is not valid", // [U]
                    by_value.or(by_id).unwrap_or_default()
                )),
            }
        }
        FieldKind::Date => match v.as_str() {
            Some(s) if chrono::NaiveDate::parse_from_str(s, "%Y-%m-%d").is_ok() => {
                Ok(Some(json!(s)))
            }
            _ => Err("Error parsing date string: ".to_string() + &v.to_string()), // [U]
        },
        FieldKind::Parent => {
            if v.get("set").is_some() || v.get("none").is_some() {
                return Ok(None);
            }
            let wanted = v.get("key").or_else(|| v.get("id")).and_then(Value::as_str);
            match wanted.and_then(|w| state.id_by_key_or_id(w)) {
                Some(p) => Ok(Some(json!(p))),
                None => Err("Could not find issue by id or key.".into()), // [U]
            }
        }
        FieldKind::TimeTracking | FieldKind::ReadOnly => Err(cannot_be_set(&def.id)),
    }
}

/// The real text for a field that is not on the screen (or does not exist).
pub fn cannot_be_set(field_id: &str) -> String {
    format!("Field '{field_id}' cannot be set. It is not on the appropriate screen, or unknown.")
}

/// `(from, fromString)` / `(to, toString)` for one side of a change.
pub fn change_strings(
    catalog: &Catalog,
    state: &SiteState,
    def: &FieldDef,
    stored: Option<&Value>,
) -> (Option<String>, Option<String>) {
    let Some(v) = stored else {
        return (None, None);
    };
    match def.kind {
        FieldKind::Text => (None, v.as_str().map(str::to_string)),
        FieldKind::RichText => (None, Some(adf::plain_text(v))),
        FieldKind::Number => (None, Some(number_string(v))),
        FieldKind::Labels => {
            let labels: Vec<&str> = v
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(Value::as_str)
                .collect();
            (None, Some(labels.join(" ")))
        }
        FieldKind::User => {
            let id = v.as_str().unwrap_or_default();
            let name = catalog.user(id).map(|u| u.display_name.clone());
            (Some(id.to_string()), name)
        }
        FieldKind::Priority => {
            let id = v.as_str().unwrap_or_default();
            (
                Some(id.to_string()),
                catalog.priority(id).map(|p| p.name.clone()),
            )
        }
        FieldKind::Select => {
            let id = v.as_str().unwrap_or_default();
            let value = def
                .options
                .iter()
                .find(|o| o.id == id)
                .map(|o| o.value.clone());
            (Some(id.to_string()), value)
        }
        FieldKind::Date => {
            let d = v.as_str().unwrap_or_default();
            (Some(d.to_string()), Some(format!("{d} 00:00:00.0")))
        }
        FieldKind::Parent => {
            let id = v.as_u64().unwrap_or_default();
            let key = state.issues.get(&id).map(|i| i.key.clone());
            (Some(id.to_string()), key)
        }
        FieldKind::TimeTracking | FieldKind::ReadOnly => (None, None),
    }
}

/// The changelog's `field` name: system fields by id (`IssueParentAssociation` for parent),
/// custom fields by name.
pub fn changelog_field_name(def: &FieldDef) -> String {
    match (def.kind, def.is_custom()) {
        (FieldKind::Parent, _) => "IssueParentAssociation".into(),
        (_, true) => def.name.clone(),
        (_, false) => def.id.clone(),
    }
}

fn number_string(v: &Value) -> String {
    match v.as_f64() {
        Some(f) if f.fract() == 0.0 => format!("{}", f as i64),
        _ => v.to_string(),
    }
}

/// A stored value in its REST v3 shape.
pub fn render_value(
    catalog: &Catalog,
    state: &SiteState,
    base: &str,
    def: &FieldDef,
    stored: Option<&Value>,
) -> Value {
    let Some(v) = stored else {
        return if def.kind == FieldKind::Labels {
            json!([])
        } else {
            Value::Null
        };
    };
    match def.kind {
        FieldKind::User => v
            .as_str()
            .and_then(|id| catalog.user(id))
            .map(|u| render::user(base, u))
            .unwrap_or(Value::Null),
        FieldKind::Priority => v
            .as_str()
            .and_then(|id| catalog.priority(id))
            .map(|p| render::priority(base, p))
            .unwrap_or(Value::Null),
        FieldKind::Select => v
            .as_str()
            .and_then(|id| def.options.iter().find(|o| o.id == id))
            .map(|o| json!({"self": format!("{base}/rest/api/3/customFieldOption/{}", o.id), "value": o.value, "id": o.id}))
            .unwrap_or(Value::Null),
        FieldKind::Parent => v
            .as_u64()
            .and_then(|id| state.issues.get(&id))
            .map(|p| render::parent(catalog, base, p))
            .unwrap_or(Value::Null),
        _ => v.clone(),
    }
}
