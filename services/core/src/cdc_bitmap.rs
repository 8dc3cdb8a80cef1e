//! The field bitmaps of `ChangeEventHeader` (`changedFields`, `nulledFields`, `diffFields`).
//!
//! Format (reference §2.4; https://developer.salesforce.com/docs/platform/pub-sub-api/guide/event-deserialization-considerations.html):
//! element 0 is `"0x<HEX>"`, a big-endian bitmap over the top-level positions of the event's
//! Avro record (bit i, LSB = 0, is `fields[i]`; `ChangeEventHeader` is 0). Each compound field
//! with changed parts adds `"<pos>-0x<HEX>"`, a bitmap over its nested record's fields.
//! Decoding yields `Parent.Child` for nested bits (`BillingAddress.City`).
//!
//! Encoding writes hex as whole bytes in upper case (`0x650004E0`, `0x06`, as in the
//! documented example) and, when only nested parts are set, still writes element 0 as `0x00`
//! so clients that read element 0 unconditionally work (the real behaviour there is
//! unverified). An empty set is an empty array.
//!
//! Only depends on the Avro schema: the sandbox encodes with it (its `cdc::bitmap` delegates
//! here) and salesforce-source decodes with it, so both sides read the format the same way.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use apache_avro::Schema;
use apache_avro::schema::{RecordField, RecordSchema};

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum BitmapError {
    #[error("the schema is not a record")]
    NotARecord,
    #[error("no field {0:?} in the change event schema")]
    UnknownField(String),
    #[error("field {0:?} is not a compound (nested record) field")]
    NotCompound(String),
    #[error("malformed bitmap element {0:?}")]
    Malformed(String),
    #[error("bit {bit} is beyond the {len} fields of {record}")]
    OutOfRange {
        record: String,
        bit: usize,
        len: usize,
    },
}

/// The records of a change-event schema, with named references resolved.
struct Records<'a> {
    top: &'a RecordSchema,
    by_name: HashMap<String, &'a RecordSchema>,
}

impl<'a> Records<'a> {
    fn new(schema: &'a Schema) -> Result<Self, BitmapError> {
        let Schema::Record(top) = schema else {
            return Err(BitmapError::NotARecord);
        };
        let mut by_name = HashMap::new();
        collect(schema, &mut by_name);
        Ok(Records { top, by_name })
    }

    /// The nested record of a compound field: unwraps `[null, T]`, `[string, T]`,
    /// `[null, string, T]` and named references.
    fn nested(&self, field: &'a RecordField) -> Option<&'a RecordSchema> {
        let resolve = |s: &'a Schema| -> Option<&'a RecordSchema> {
            match s {
                Schema::Record(r) => Some(r),
                Schema::Ref { name } => self.by_name.get(&name.fullname(None)).copied(),
                _ => None,
            }
        };
        match &field.schema {
            Schema::Union(u) => u.variants().iter().find_map(resolve),
            other => resolve(other),
        }
    }
}

fn collect<'a>(schema: &'a Schema, out: &mut HashMap<String, &'a RecordSchema>) {
    match schema {
        Schema::Record(r) => {
            out.insert(r.name.fullname(None), r);
            for f in &r.fields {
                collect(&f.schema, out);
            }
        }
        Schema::Union(u) => u.variants().iter().for_each(|v| collect(v, out)),
        Schema::Array(a) => collect(&a.items, out),
        Schema::Map(m) => collect(&m.types, out),
        _ => {}
    }
}

/// Encodes field names (`Name`, `BillingAddress.City`) as a bitmap array over `schema`.
pub fn encode<S: AsRef<str>>(schema: &Schema, names: &[S]) -> Result<Vec<String>, BitmapError> {
    if names.is_empty() {
        return Ok(Vec::new());
    }
    let records = Records::new(schema)?;
    let mut top = BTreeSet::new();
    let mut nested: BTreeMap<usize, BTreeSet<usize>> = BTreeMap::new();
    for name in names {
        let name = name.as_ref();
        let (parent, child) = match name.split_once('.') {
            Some((p, c)) => (p, Some(c)),
            None => (name, None),
        };
        let pos = *records
            .top
            .lookup
            .get(parent)
            .ok_or_else(|| BitmapError::UnknownField(name.into()))?;
        match child {
            None => {
                top.insert(pos);
            }
            Some(child) => {
                let record = records
                    .nested(&records.top.fields[pos])
                    .ok_or_else(|| BitmapError::NotCompound(parent.into()))?;
                let i = *record
                    .lookup
                    .get(child)
                    .ok_or_else(|| BitmapError::UnknownField(name.into()))?;
                nested.entry(pos).or_default().insert(i);
            }
        }
    }
    let mut out = vec![format!("0x{}", hex(&top))];
    out.extend(
        nested
            .iter()
            .map(|(pos, bits)| format!("{pos}-0x{}", hex(bits))),
    );
    Ok(out)
}

/// Decodes a bitmap array into field names, in schema order (`Parent.Child` for nested bits).
pub fn decode<S: AsRef<str>>(schema: &Schema, bitmap: &[S]) -> Result<Vec<String>, BitmapError> {
    let records = Records::new(schema)?;
    // (top position, nested position or None) → name, sorted by position.
    let mut found: BTreeMap<(usize, Option<usize>), String> = BTreeMap::new();
    for element in bitmap {
        let element = element.as_ref().trim();
        match element.split_once('-') {
            None => {
                for bit in bits(element)? {
                    let field = field_at(records.top, bit)?;
                    found.insert((bit, None), field.name.clone());
                }
            }
            Some((pos, hex)) => {
                let pos: usize = pos
                    .parse()
                    .map_err(|_| BitmapError::Malformed(element.into()))?;
                let parent = field_at(records.top, pos)?;
                let record = records
                    .nested(parent)
                    .ok_or_else(|| BitmapError::NotCompound(parent.name.clone()))?;
                for bit in bits(hex)? {
                    let child = field_at(record, bit)?;
                    found.insert((pos, Some(bit)), format!("{}.{}", parent.name, child.name));
                }
            }
        }
    }
    Ok(found.into_values().collect())
}

fn field_at(record: &RecordSchema, bit: usize) -> Result<&RecordField, BitmapError> {
    record
        .fields
        .get(bit)
        .ok_or_else(|| BitmapError::OutOfRange {
            record: record.name.name().to_string(),
            bit,
            len: record.fields.len(),
        })
}

/// Upper-case hex of the big-endian bitmap with `bits` set, whole bytes, at least one byte.
fn hex(bits: &BTreeSet<usize>) -> String {
    let len = bits.last().map_or(1, |b| b / 8 + 1);
    let mut le = vec![0u8; len];
    for b in bits {
        le[b / 8] |= 1 << (b % 8);
    }
    le.iter().rev().map(|byte| format!("{byte:02X}")).collect()
}

/// The set bits of `0x<HEX>` (any case, any number of digits).
fn bits(element: &str) -> Result<Vec<usize>, BitmapError> {
    let malformed = || BitmapError::Malformed(element.into());
    let digits = element
        .strip_prefix("0x")
        .or_else(|| element.strip_prefix("0X"))
        .ok_or_else(malformed)?;
    let mut out = Vec::new();
    for (i, c) in digits.chars().rev().enumerate() {
        let nibble = c.to_digit(16).ok_or_else(malformed)? as usize;
        out.extend((0..4).filter(|b| nibble >> b & 1 == 1).map(|b| i * 4 + b));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A schema shaped like the documented example: 31 top-level fields, compound fields at
    /// positions 4 and 7.
    fn example_schema() -> Schema {
        let address = r#"{"type":"record","name":"Address","fields":[
            {"name":"Street","type":["null","string"]},{"name":"City","type":["null","string"]},
            {"name":"State","type":["null","string"]},{"name":"PostalCode","type":["null","string"]},
            {"name":"Country","type":["null","string"]}]}"#;
        let mut fields = vec![r#"{"name":"ChangeEventHeader","type":"string"}"#.to_string()];
        for i in 1..31 {
            let ty = match i {
                4 => format!(r#"["null",{address}]"#),
                7 => r#"["null","Address"]"#.to_string(),
                _ => r#"["null","string"]"#.to_string(),
            };
            let name = match i {
                4 => "BillingAddress".to_string(),
                7 => "ShippingAddress".to_string(),
                _ => format!("F{i}"),
            };
            fields.push(format!(r#"{{"name":"{name}","type":{ty}}}"#));
        }
        let json = format!(
            r#"{{"type":"record","name":"AccountChangeEvent","namespace":"com.sforce.eventbus","fields":[{}]}}"#,
            fields.join(",")
        );
        Schema::parse_str(&json).unwrap()
    }

    #[test]
    fn decodes_the_documented_example() {
        let schema = example_schema();
        let names = decode(&schema, &["0x650004E0", "4-0x10", "7-0x06"]).unwrap();
        assert_eq!(
            names,
            [
                "BillingAddress.Country", // nested bit 4
                "F5",
                "F6",
                "ShippingAddress", // top-level bit 7 is set in the example
                "ShippingAddress.City",
                "ShippingAddress.State",
                "F10",
                "F24",
                "F26",
                "F29",
                "F30",
            ]
        );
        let top: Vec<&str> = [
            "F5",
            "F6",
            "ShippingAddress",
            "F10",
            "F24",
            "F26",
            "F29",
            "F30",
        ]
        .to_vec();
        let mut all = top.clone();
        all.extend([
            "BillingAddress.Country",
            "ShippingAddress.City",
            "ShippingAddress.State",
        ]);
        assert_eq!(
            encode(&schema, &all).unwrap(),
            ["0x650004E0", "4-0x10", "7-0x06"]
        );
    }

    #[test]
    fn empty_and_nested_only_sets() {
        let schema = example_schema();
        assert!(encode::<&str>(&schema, &[]).unwrap().is_empty());
        assert_eq!(
            encode(&schema, &["BillingAddress.Street"]).unwrap(),
            ["0x00", "4-0x01"]
        );
        assert_eq!(
            decode(&schema, &["0x00", "4-0x01"]).unwrap(),
            ["BillingAddress.Street"]
        );
    }

    #[test]
    fn rejects_bad_input() {
        let schema = example_schema();
        assert_eq!(
            encode(&schema, &["Nope"]),
            Err(BitmapError::UnknownField("Nope".into()))
        );
        assert_eq!(
            encode(&schema, &["F5.X"]),
            Err(BitmapError::NotCompound("F5".into()))
        );
        assert!(matches!(
            decode(&schema, &["0x80000000"]),
            Err(BitmapError::OutOfRange { .. })
        ));
        assert!(matches!(
            decode(&schema, &["zz"]),
            Err(BitmapError::Malformed(_))
        ));
    }
}
