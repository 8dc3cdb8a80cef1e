//! Change-event Avro schemas, built from the org's [`ObjectMeta`] so REST and CDC never disagree
//! about which fields exist or in which order (the bitmaps count positions in this schema).
//!
//! Shape (reference §2.2–2.3; https://developer.salesforce.com/docs/atlas.en-us.change_data_capture.meta/change_data_capture/cdc_message_structure.htm):
//! record `<Object>ChangeEvent` (custom objects `<Name>__ChangeEvent`), namespace
//! `com.sforce.eventbus`; field 0 is `ChangeEventHeader`, then every top-level field of the
//! object as `["null", T]` with default null. Dates and date-times are epoch milliseconds
//! (`long`); compound fields are nested records (`Address`) whose parts are unions with null.
//!
//! The schema id is a stable fingerprint of the schema's Parsing Canonical Form: 16 bytes
//! (two 64-bit Rabin fingerprints) as unpadded base64url, 22 characters like Salesforce's ids.

use std::collections::HashSet;

use apache_avro::Schema;
use serde_json::{Value as Json, json};

use crate::salesforce::meta::{FieldMeta, FieldType, ObjectMeta};

pub const NAMESPACE: &str = "com.sforce.eventbus";

/// The symbols of the `ChangeType` enum, in order.
pub const CHANGE_TYPE_SYMBOLS: [&str; 9] = [
    "CREATE",
    "UPDATE",
    "DELETE",
    "UNDELETE",
    "GAP_CREATE",
    "GAP_UPDATE",
    "GAP_DELETE",
    "GAP_UNDELETE",
    "GAP_OVERFLOW",
];

/// How a value is carried in the change event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ValueKind {
    String,
    Boolean,
    Double,
    Int,
    /// `YYYY-MM-DD`, as epoch milliseconds at midnight UTC.
    Date,
    /// ISO-8601 date-time, as epoch milliseconds.
    DateTime,
}

impl ValueKind {
    fn of(ty: &FieldType) -> ValueKind {
        match ty {
            FieldType::Boolean => ValueKind::Boolean,
            FieldType::Currency | FieldType::Double | FieldType::Percent => ValueKind::Double,
            FieldType::Int => ValueKind::Int,
            FieldType::Date => ValueKind::Date,
            FieldType::DateTime => ValueKind::DateTime,
            _ => ValueKind::String,
        }
    }

    fn avro_type(self) -> &'static str {
        match self {
            ValueKind::String => "string",
            ValueKind::Boolean => "boolean",
            ValueKind::Double => "double",
            ValueKind::Int => "int",
            ValueKind::Date | ValueKind::DateTime => "long",
        }
    }
}

/// One part of a compound field inside the change event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventComponent {
    /// Name in the nested record (`City`).
    pub name: String,
    /// The REST field holding it (`BillingCity`).
    pub rest_field: String,
    pub kind: ValueKind,
}

/// A top-level field of the change event (position = index in `fields` + 1).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventField {
    pub name: String,
    pub kind: ValueKind,
    /// Non-empty for compound fields (nested record).
    pub components: Vec<EventComponent>,
}

/// An object's change-event schema.
#[derive(Debug, Clone)]
pub struct ChangeEventSchema {
    /// Object API name (`Account`).
    pub entity: String,
    /// `AccountChangeEvent`.
    pub record_name: String,
    /// `/data/AccountChangeEvent`.
    pub channel: String,
    pub json: String,
    pub schema: Schema,
    pub id: String,
    /// Top-level fields after `ChangeEventHeader`.
    pub fields: Vec<EventField>,
}

impl ChangeEventSchema {
    /// Builds the schema of `meta`'s change events.
    pub fn build(meta: &ObjectMeta) -> anyhow::Result<ChangeEventSchema> {
        let fields = event_fields(meta);
        let mut defined = HashSet::new();
        let mut avro_fields = vec![json!({"name": "ChangeEventHeader", "type": header_json()})];
        for f in &fields {
            let ty = if f.components.is_empty() {
                json!(f.kind.avro_type())
            } else if defined.insert("Address") {
                address_json(&f.components)
            } else {
                // A named type is defined once per schema; later uses refer to it by name.
                json!("Address")
            };
            avro_fields.push(json!({"name": f.name, "type": ["null", ty], "default": null}));
        }
        let record_name = meta.change_event_name();
        let doc = json!({
            "type": "record",
            "name": record_name,
            "namespace": NAMESPACE,
            "fields": avro_fields,
        });
        let json = doc.to_string();
        let schema = Schema::parse_str(&json)?;
        let id = schema_id(&schema);
        Ok(ChangeEventSchema {
            entity: meta.name.clone(),
            record_name,
            channel: meta.change_event_channel(),
            json,
            schema,
            id,
            fields,
        })
    }

    /// Position (in the Avro record) of the top-level field `name`.
    pub fn position(&self, name: &str) -> Option<usize> {
        self.fields
            .iter()
            .position(|f| f.name == name)
            .map(|i| i + 1)
    }
}

fn event_fields(meta: &ObjectMeta) -> Vec<EventField> {
    meta.change_event_fields()
        .map(|f: &FieldMeta| EventField {
            name: f.name.clone(),
            kind: ValueKind::of(&f.ty),
            components: f
                .components
                .iter()
                .map(|c| EventComponent {
                    name: c.name.clone(),
                    rest_field: c.field.clone(),
                    kind: match meta.field(&c.field) {
                        Some(part) => ValueKind::of(&part.ty),
                        None if c.name == "Latitude" || c.name == "Longitude" => ValueKind::Double,
                        None => ValueKind::String,
                    },
                })
                .collect(),
        })
        .collect()
}

fn header_json() -> Json {
    let strings = json!({"type": "array", "items": "string"});
    json!({
        "type": "record",
        "name": "ChangeEventHeader",
        "namespace": NAMESPACE,
        "fields": [
            {"name": "entityName", "type": "string"},
            {"name": "recordIds", "type": strings},
            {"name": "changeType", "type": {"type": "enum", "name": "ChangeType", "namespace": NAMESPACE, "symbols": CHANGE_TYPE_SYMBOLS}},
            {"name": "changeOrigin", "type": "string"},
            {"name": "transactionKey", "type": "string"},
            {"name": "sequenceNumber", "type": "int"},
            {"name": "commitTimestamp", "type": "long"},
            {"name": "commitNumber", "type": "long"},
            {"name": "commitUser", "type": "string"},
            {"name": "nulledFields", "type": strings},
            {"name": "diffFields", "type": strings},
            {"name": "changedFields", "type": strings},
        ]
    })
}

fn address_json(parts: &[EventComponent]) -> Json {
    let fields: Vec<Json> = parts
        .iter()
        .map(|c| json!({"name": c.name, "type": ["null", c.kind.avro_type()], "default": null}))
        .collect();
    json!({"type": "record", "name": "Address", "namespace": NAMESPACE, "fields": fields})
}

/// The stable id of `schema`: 16 bytes of fingerprint of its canonical form, base64url.
pub fn schema_id(schema: &Schema) -> String {
    let canonical = schema.canonical_form();
    let a = rabin(canonical.as_bytes());
    let b = rabin(format!("sfjira:{canonical}").as_bytes());
    let mut bytes = [0u8; 16];
    bytes[..8].copy_from_slice(&a.to_be_bytes());
    bytes[8..].copy_from_slice(&b.to_be_bytes());
    base64url(&bytes)
}

/// The CRC-64-AVRO (Rabin) fingerprint of the Avro specification.
fn rabin(data: &[u8]) -> u64 {
    const EMPTY: u64 = 0xc15d_213a_a4d7_a795;
    let mut table = [0u64; 256];
    for (i, slot) in table.iter_mut().enumerate() {
        let mut fp = i as u64;
        for _ in 0..8 {
            fp = (fp >> 1) ^ (EMPTY & (0u64.wrapping_sub(fp & 1)));
        }
        *slot = fp;
    }
    let mut fp = EMPTY;
    for &b in data {
        fp = (fp >> 8) ^ table[((fp ^ b as u64) & 0xff) as usize];
    }
    fp
}

fn base64url(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |n, (i, b)| n | (*b as u32) << (16 - 8 * i));
        for i in 0..=chunk.len() {
            out.push(ALPHABET[(n >> (18 - 6 * i) & 63) as usize] as char);
        }
    }
    out
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::salesforce::meta::CompoundComponent;

    /// An Account-like object with two addresses, for CDC tests until the catalog exists.
    pub(crate) fn account() -> ObjectMeta {
        let mut fields = vec![
            FieldMeta::new("Id", FieldType::Id),
            FieldMeta::new("Name", FieldType::String),
            FieldMeta::new("Type", FieldType::Picklist),
        ];
        for prefix in ["Billing", "Shipping"] {
            let parts = [
                "Street",
                "City",
                "State",
                "PostalCode",
                "Country",
                "Latitude",
                "Longitude",
                "GeocodeAccuracy",
            ];
            let mut compound = FieldMeta::new(&format!("{prefix}Address"), FieldType::Address);
            compound.components = parts
                .iter()
                .map(|p| CompoundComponent {
                    name: p.to_string(),
                    field: format!("{prefix}{p}"),
                })
                .collect();
            fields.push(compound);
            for p in parts {
                let ty = if p.starts_with("L") {
                    FieldType::Double
                } else {
                    FieldType::String
                };
                let mut f = FieldMeta::new(&format!("{prefix}{p}"), ty);
                f.compound_parent = Some(format!("{prefix}Address"));
                fields.push(f);
            }
        }
        fields.push(FieldMeta::new("AnnualRevenue", FieldType::Currency));
        fields.push(FieldMeta::new("NumberOfEmployees", FieldType::Int));
        fields.push(FieldMeta::new("IsActive__c", FieldType::Boolean));
        fields.push(FieldMeta::new("SLAExpirationDate__c", FieldType::Date));
        fields.push(FieldMeta::new("LastModifiedDate", FieldType::DateTime));
        ObjectMeta {
            name: "Account".into(),
            label: "Account".into(),
            key_prefix: "001".into(),
            custom: false,
            fields,
        }
    }

    #[test]
    fn account_schema_has_header_first_and_nested_addresses() {
        let s = ChangeEventSchema::build(&account()).unwrap();
        assert_eq!(s.record_name, "AccountChangeEvent");
        assert_eq!(s.position("BillingAddress"), Some(4));
        assert_eq!(s.position("ShippingAddress"), Some(5));
        let Schema::Record(r) = &s.schema else {
            panic!("not a record")
        };
        assert_eq!(
            r.name.fullname(None),
            "com.sforce.eventbus.AccountChangeEvent"
        );
        assert_eq!(r.fields[0].name, "ChangeEventHeader");
        assert_eq!(s.id.len(), 22);
        assert_eq!(
            s.id,
            ChangeEventSchema::build(&account()).unwrap().id,
            "stable"
        );
    }

    #[test]
    fn rabin_matches_the_avro_spec_for_the_empty_input() {
        assert_eq!(rabin(b""), 0xc15d_213a_a4d7_a795);
        assert_eq!(base64url(b"\xff\xff\xff\x00"), "____AA");
    }
}
