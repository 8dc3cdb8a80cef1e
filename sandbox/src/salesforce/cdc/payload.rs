//! Builds a change event's Avro datum (raw binary, no container header) from a
//! [`RecordChange`] and the header values the bus assigned.
//!
//! Body rule (reference §2.3; https://developer.salesforce.com/docs/atlas.en-us.api_streaming.meta/api_streaming/cdc_event_diff_pubsub_cometd.htm):
//! every field is present; in an update, changed fields carry their value, unchanged and
//! unpopulated ones are null, fields set to null are null and listed in `nulledFields`; creates
//! and undeletes carry every populated field. A compound field carries a nested record when one
//! of its parts has a value to send (the others null). Delete and gap events carry no values.

use apache_avro::types::Value;
use chrono::{DateTime, NaiveDate, Utc};
use serde_json::Value as Json;

use super::bitmap;
use super::schema::{CHANGE_TYPE_SYMBOLS, ChangeEventSchema, ValueKind};
use crate::salesforce::changes::{ChangeType, RecordChange};

/// The header values of one event.
#[derive(Debug, Clone)]
pub struct Header {
    pub entity: String,
    pub record_ids: Vec<String>,
    pub change_type: ChangeType,
    pub change_origin: String,
    pub transaction_key: String,
    pub sequence_number: i32,
    pub commit_timestamp: i64,
    pub commit_number: i64,
    pub commit_user: String,
}

/// Field names in change-event form: compound parts become `Parent.Child`.
pub fn event_names(schema: &ChangeEventSchema, rest_fields: &[String]) -> Vec<String> {
    let mut out = Vec::new();
    for rest in rest_fields {
        let name = schema
            .fields
            .iter()
            .find_map(|f| {
                f.components
                    .iter()
                    .find(|c| c.rest_field.eq_ignore_ascii_case(rest))
                    .map(|c| format!("{}.{}", f.name, c.name))
            })
            .or_else(|| {
                schema
                    .fields
                    .iter()
                    .find(|f| f.name.eq_ignore_ascii_case(rest))
                    .map(|f| f.name.clone())
            });
        match name {
            Some(n) if !out.contains(&n) => out.push(n),
            Some(_) => {}
            None => {
                tracing::debug!(field = %rest, entity = %schema.entity, "field not in the change event; left out")
            }
        }
    }
    out
}

/// Encodes one event. `change` is `None` for header-only (gap, overflow) events.
///
/// `changedFields`/`nulledFields` are filled for updates only: "empty for other operations,
/// including record creation" (https://developer.salesforce.com/docs/platform/apex-ref/references/apex-ref/apex-class-eventbus-changeeventheader.html);
/// fields set to null count as changed too. Creates and undeletes carry every populated field
/// (https://developer.salesforce.com/docs/atlas.en-us.change_data_capture.meta/change_data_capture/cdc_event_fields_body.htm).
pub fn encode(
    schema: &ChangeEventSchema,
    header: &Header,
    change: Option<&RecordChange>,
) -> anyhow::Result<Vec<u8>> {
    let (changed, nulled) = match change {
        Some(c) if header.change_type == ChangeType::Update => {
            let nulled = event_names(schema, &c.nulled_fields);
            let mut changed = event_names(schema, &c.changed_fields);
            for n in &nulled {
                if !changed.contains(n) {
                    changed.push(n.clone());
                }
            }
            (changed, nulled)
        }
        _ => (Vec::new(), Vec::new()),
    };
    // Whether the field (`Name` or `BillingAddress.City`) carries its value.
    let carries = |name: &str| match header.change_type {
        ChangeType::Update => {
            changed.iter().any(|n| n == name) && !nulled.iter().any(|n| n == name)
        }
        ChangeType::Create | ChangeType::Undelete => true,
        _ => false,
    };
    let mut record = vec![(
        "ChangeEventHeader".to_string(),
        header_value(schema, header, &changed, &nulled)?,
    )];
    for f in &schema.fields {
        let value = change.and_then(|c| {
            if f.components.is_empty() {
                carries(&f.name)
                    .then(|| c.values.get(&f.name).and_then(|v| convert(f.kind, v)))
                    .flatten()
            } else {
                let parts: Vec<(String, Option<Value>)> = f
                    .components
                    .iter()
                    .map(|p| {
                        let full = format!("{}.{}", f.name, p.name);
                        let v = carries(&full)
                            .then(|| c.values.get(&p.rest_field).and_then(|v| convert(p.kind, v)));
                        (p.name.clone(), v.flatten())
                    })
                    .collect();
                parts.iter().any(|(_, v)| v.is_some()).then(|| {
                    Value::Record(parts.into_iter().map(|(n, v)| (n, nullable(v))).collect())
                })
            }
        });
        record.push((f.name.clone(), nullable(value)));
    }
    let writer = apache_avro::writer::datum::GenericDatumWriter::builder(&schema.schema).build()?;
    Ok(writer.write_value_to_vec(Value::Record(record))?)
}

fn header_value(
    schema: &ChangeEventSchema,
    h: &Header,
    changed: &[String],
    nulled: &[String],
) -> anyhow::Result<Value> {
    let strings = |v: &[String]| Value::Array(v.iter().cloned().map(Value::String).collect());
    let symbol = h.change_type.as_str();
    let index = CHANGE_TYPE_SYMBOLS
        .iter()
        .position(|s| *s == symbol)
        .unwrap_or(0) as u32;
    Ok(Value::Record(vec![
        ("entityName".into(), Value::String(h.entity.clone())),
        ("recordIds".into(), strings(&h.record_ids)),
        ("changeType".into(), Value::Enum(index, symbol.to_string())),
        (
            "changeOrigin".into(),
            Value::String(h.change_origin.clone()),
        ),
        (
            "transactionKey".into(),
            Value::String(h.transaction_key.clone()),
        ),
        ("sequenceNumber".into(), Value::Int(h.sequence_number)),
        ("commitTimestamp".into(), Value::Long(h.commit_timestamp)),
        ("commitNumber".into(), Value::Long(h.commit_number)),
        ("commitUser".into(), Value::String(h.commit_user.clone())),
        (
            "nulledFields".into(),
            strings(&bitmap::encode(&schema.schema, nulled)?),
        ),
        // The sandbox never sends text diffs: every changed value is sent whole.
        ("diffFields".into(), strings(&[])),
        (
            "changedFields".into(),
            strings(&bitmap::encode(&schema.schema, changed)?),
        ),
    ]))
}

fn nullable(v: Option<Value>) -> Value {
    match v {
        Some(v) => Value::Union(1, Box::new(v)),
        None => Value::Union(0, Box::new(Value::Null)),
    }
}

/// REST JSON value → change-event value; `None` (null) when absent or not convertible.
fn convert(kind: ValueKind, v: &Json) -> Option<Value> {
    match (kind, v) {
        (_, Json::Null) => None,
        (ValueKind::String, Json::String(s)) => Some(Value::String(s.clone())),
        (ValueKind::String, other) => Some(Value::String(other.to_string())),
        (ValueKind::Boolean, Json::Bool(b)) => Some(Value::Boolean(*b)),
        (ValueKind::Double, Json::Number(n)) => n.as_f64().map(Value::Double),
        (ValueKind::Int, Json::Number(n)) => n.as_i64().map(|i| Value::Int(i as i32)),
        (ValueKind::Date, Json::String(s)) => {
            let d = NaiveDate::parse_from_str(s, "%Y-%m-%d").ok()?;
            Some(Value::Long(
                d.and_hms_opt(0, 0, 0)?.and_utc().timestamp_millis(),
            ))
        }
        (ValueKind::DateTime, Json::String(s)) => {
            parse_datetime(s).map(|t| Value::Long(t.timestamp_millis()))
        }
        _ => None,
    }
}

/// Salesforce writes `2024-01-02T03:04:05.000+0000`; RFC 3339 is accepted too.
fn parse_datetime(s: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(s)
        .or_else(|_| DateTime::parse_from_str(s, "%Y-%m-%dT%H:%M:%S%.f%z"))
        .ok()
        .map(|t| t.with_timezone(&Utc))
}
