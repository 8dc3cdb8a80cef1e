//! Checking and normalising the field values of a write, with the errors the real org gives
//! (reference §4.5): unknown fields, read-only fields, type mismatches, `STRING_TOO_LONG`,
//! restricted picklists, malformed or dangling references. Record-level rules (required
//! fields, uniqueness) need the whole record and live in `write.rs`.

use chrono::{DateTime, NaiveDate, Utc};
use serde_json::{Map, Value};

use super::errors::SfError;
use super::ids;
use super::meta::{FieldMeta, FieldType, ObjectMeta};
use super::store::{Data, Org};

/// The REST representation of a date-time: `2024-05-01T12:34:56.000+0000`.
pub fn fmt_datetime(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%dT%H:%M:%S%.3f+0000").to_string()
}

/// Parses the date-time forms clients send (RFC 3339, or the org's own `+0000` form).
pub fn parse_datetime(s: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(s)
        .or_else(|_| DateTime::parse_from_str(s, "%Y-%m-%dT%H:%M:%S%.f%z"))
        .ok()
        .map(|t| t.with_timezone(&Utc))
}

pub fn parse_date(s: &str) -> Option<NaiveDate> {
    NaiveDate::parse_from_str(s, "%Y-%m-%d").ok()
}

fn token_kind(v: &Value) -> &'static str {
    match v {
        Value::String(_) => "VALUE_STRING",
        Value::Number(n) if n.is_f64() => "VALUE_NUMBER_FLOAT",
        Value::Number(_) => "VALUE_NUMBER_INT",
        Value::Bool(true) => "VALUE_TRUE",
        Value::Bool(false) => "VALUE_FALSE",
        Value::Array(_) => "START_ARRAY",
        Value::Object(_) => "START_OBJECT",
        Value::Null => "VALUE_NULL",
    }
}

fn plain(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// The JSON parser's complaint about a value of the wrong type (the real wording, without the
/// line/column suffix the sandbox cannot know).
fn cannot_deserialize(ty: &str, v: &Value) -> SfError {
    SfError::json_parser(format!(
        "Cannot deserialize instance of {ty} from {} value {} or request may be missing a required field",
        token_kind(v),
        plain(v)
    ))
}

/// Validates the request fields of a create (`creating`) or update of `meta` and returns them
/// under their canonical names with normalised values. `attributes` is ignored (collection
/// rows carry it); callers remove `Id` first.
pub fn check_fields(
    org: &Org,
    data: &Data,
    meta: &ObjectMeta,
    input: &Map<String, Value>,
    creating: bool,
) -> Result<Map<String, Value>, SfError> {
    let mut out = Map::new();
    for (name, value) in input {
        if name == "attributes" {
            continue;
        }
        let Some(field) = meta.field(name) else {
            return Err(SfError::new(
                400,
                "INVALID_FIELD",
                format!("No such column '{name}' on sobject of type {}", meta.name),
            ));
        };
        let writable = if creating {
            field.createable
        } else {
            field.updateable
        };
        if !writable {
            let verb = if creating { "create" } else { "update" };
            return Err(SfError::new(
                400,
                "INVALID_FIELD_FOR_INSERT_UPDATE",
                format!(
                    "Unable to {verb} fields: {}. Please check the security settings of this field and verify that it is read/write for your profile or permission set.",
                    field.name
                ),
            )
            .with_fields(&[&field.name]));
        }
        let v = check_value(org, data, field, value)?;
        out.insert(field.name.clone(), v);
    }
    Ok(out)
}

fn check_value(org: &Org, data: &Data, f: &FieldMeta, v: &Value) -> Result<Value, SfError> {
    if v.is_null() {
        return Ok(Value::Null);
    }
    match &f.ty {
        FieldType::Boolean => v
            .as_bool()
            .map(Value::Bool)
            .ok_or_else(|| cannot_deserialize("boolean", v)),
        FieldType::Currency | FieldType::Double | FieldType::Percent => number(v)
            .map(|n| serde_json::json!(n))
            .ok_or_else(|| cannot_deserialize("double", v)),
        FieldType::Int => number(v)
            .filter(|n| n.fract() == 0.0)
            .map(|n| serde_json::json!(n as i64))
            .ok_or_else(|| cannot_deserialize("int", v)),
        FieldType::Date => match v.as_str().and_then(parse_date) {
            Some(d) => Ok(Value::String(d.format("%Y-%m-%d").to_string())),
            None => Err(cannot_deserialize("date", v)),
        },
        FieldType::DateTime => match v.as_str().and_then(parse_datetime) {
            Some(t) => Ok(Value::String(fmt_datetime(t))),
            None => Err(cannot_deserialize("datetime", v)),
        },
        FieldType::Reference { to } => check_reference(org, data, f, to, v),
        FieldType::Id | FieldType::Address => Err(cannot_deserialize("id", v)),
        FieldType::String
        | FieldType::TextArea
        | FieldType::Picklist
        | FieldType::MultiPicklist
        | FieldType::Email
        | FieldType::Phone
        | FieldType::Url => {
            if v.is_array() || v.is_object() {
                return Err(cannot_deserialize("String", v));
            }
            let s = plain(v);
            if let Some(max) = f.length
                && s.chars().count() > max as usize
            {
                return Err(SfError::new(
                    400,
                    "STRING_TOO_LONG",
                    format!("{}: data value too large: {s} (max length={max})", f.label),
                )
                .with_fields(&[&f.name]));
            }
            if f.restricted_picklist && !f.picklist_values.iter().any(|p| p == &s) {
                return Err(SfError::new(
                    400,
                    "INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST",
                    format!("{}: bad value for restricted picklist field: {s}", f.label),
                )
                .with_fields(&[&f.name]));
            }
            if f.ty == FieldType::Email && !s.contains('@') {
                return Err(SfError::new(
                    400,
                    "INVALID_EMAIL_ADDRESS",
                    format!("{}: invalid email address: {s}", f.label),
                )
                .with_fields(&[&f.name]));
            }
            Ok(Value::String(s))
        }
    }
}

fn number(v: &Value) -> Option<f64> {
    match v {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

fn check_reference(
    org: &Org,
    data: &Data,
    f: &FieldMeta,
    to: &[String],
    v: &Value,
) -> Result<Value, SfError> {
    let raw = plain(v);
    let incorrect = || {
        SfError::new(
            400,
            "MALFORMED_ID",
            format!("{}: id value of incorrect type: {raw}", f.label),
        )
        .with_fields(&[&f.name])
    };
    let id = ids::normalize(&raw).ok_or_else(incorrect)?;
    if to.iter().any(|t| t == "User") && id.starts_with(super::catalog::USER_PREFIX) {
        return match org.users.iter().any(|u| u.id == id) {
            true => Ok(Value::String(id)),
            false => Err(cross_reference(f)),
        };
    }
    let target = org
        .object_for_id(&id)
        .filter(|o| to.iter().any(|t| t == &o.name))
        .ok_or_else(incorrect)?;
    let exists = data
        .tables
        .get(&target.name)
        .and_then(|t| t.get(&id))
        .is_some_and(|r| !r.deleted);
    if exists {
        Ok(Value::String(id))
    } else {
        Err(cross_reference(f))
    }
}

fn cross_reference(f: &FieldMeta) -> SfError {
    SfError::new(
        400,
        "INVALID_CROSS_REFERENCE_KEY",
        "invalid cross reference id",
    )
    .with_fields(&[&f.name])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn datetimes_normalise_to_the_org_format() {
        let t = parse_datetime("2024-05-01T12:34:56Z").unwrap();
        assert_eq!(fmt_datetime(t), "2024-05-01T12:34:56.000+0000");
        let t = parse_datetime("2024-05-01T12:34:56.250+0200").unwrap();
        assert_eq!(fmt_datetime(t), "2024-05-01T10:34:56.250+0000");
    }
}
