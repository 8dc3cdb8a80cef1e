//! A record as REST shows it: `attributes` (`type`, `url`) first, then fields in schema order,
//! compound fields (`BillingAddress`) as nested objects built from their parts.

use serde_json::{Map, Value, json};

use super::super::meta::{FieldType, ObjectMeta};
use super::super::store::Record;

pub fn url(version: &str, object: &str, id: &str) -> String {
    format!("/services/data/v{version}/sobjects/{object}/{id}")
}

/// The nested value of a compound field (`null` when every part is null). Keys are the
/// lower-camel part names, as the real API renders addresses.
fn compound_value(meta: &ObjectMeta, field: &str, r: &Record) -> Value {
    let Some(f) = meta.field(field) else {
        return Value::Null;
    };
    let mut out = Map::new();
    let mut any = false;
    for c in &f.components {
        let v = r.values.get(&c.field).cloned().unwrap_or(Value::Null);
        any |= !v.is_null();
        let mut key = c.name.clone();
        if let Some(first) = key.get(0..1) {
            key.replace_range(0..1, &first.to_ascii_lowercase());
        }
        out.insert(key, v);
    }
    if any { Value::Object(out) } else { Value::Null }
}

/// The record with `fields` (canonical names, in the caller's order) or every field.
pub fn render(version: &str, meta: &ObjectMeta, r: &Record, fields: Option<&[String]>) -> Value {
    let mut out = Map::new();
    out.insert(
        "attributes".into(),
        json!({"type": meta.name, "url": url(version, &meta.name, r.id())}),
    );
    let names: Vec<String> = match fields {
        Some(f) => f.to_vec(),
        None => meta.fields.iter().map(|f| f.name.clone()).collect(),
    };
    for name in names {
        let is_compound = meta
            .field(&name)
            .is_some_and(|f| f.ty == FieldType::Address);
        let v = if is_compound {
            compound_value(meta, &name, r)
        } else {
            r.values.get(&name).cloned().unwrap_or(Value::Null)
        };
        out.insert(name, v);
    }
    Value::Object(out)
}
