//! From a Pub/Sub `ConsumerEvent` to the records the source publishes (reference §2).
//!
//! - [`EventSchema`]: a change-event schema as `GetSchema` returns it, parsed once per schema
//!   id (the runtime caches them), together with the Kafka value schema derived from it: the
//!   same record with a `replay_id` string field after `ChangeEventHeader` — the layout the
//!   transformer reads (`schemas/README.md`).
//! - [`decode_event`]: Avro binary → value; the header's `changedFields`, `nulledFields` and
//!   `diffFields` bitmaps → field names (`BillingAddress.City`, via `sfjira_core::cdc_bitmap`);
//!   an event whose `recordIds` holds several ids (a merged change) → one [`Change`] per id,
//!   each with `recordIds = [id]`.

use apache_avro::Schema;
use apache_avro::reader::datum::GenericDatumReader;
use apache_avro::types::Value;
use sfjira_core::cdc_bitmap;

/// A change-event schema and its Kafka form.
#[derive(Debug)]
pub struct EventSchema {
    /// Salesforce's schema id (fingerprint).
    pub id: String,
    /// The schema the payload is written with.
    pub salesforce: Schema,
    /// The value schema of `salesforce.cdc.<Entity>`: `salesforce` plus `replay_id`.
    pub kafka: Schema,
}

#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    #[error("schema {id} is not a usable change-event schema: {why}")]
    Schema { id: String, why: String },
    #[error("the payload does not decode with schema {id}: {why}")]
    Payload { id: String, why: String },
    #[error("the event is not a change event: {0}")]
    NotAChangeEvent(String),
    #[error("field bitmap {field} does not decode: {why}")]
    Bitmap { field: &'static str, why: String },
}

impl EventSchema {
    /// Parses `SchemaInfo.schema_json` and derives the Kafka value schema.
    pub fn parse(id: &str, json: &str) -> Result<EventSchema, DecodeError> {
        let bad = |why: String| DecodeError::Schema {
            id: id.to_string(),
            why,
        };
        let salesforce = Schema::parse_str(json).map_err(|e| bad(e.to_string()))?;
        let mut doc: serde_json::Value =
            serde_json::from_str(json).map_err(|e| bad(e.to_string()))?;
        let fields = doc
            .get_mut("fields")
            .and_then(serde_json::Value::as_array_mut)
            .ok_or_else(|| bad("not a record".into()))?;
        let header_first = fields
            .first()
            .and_then(|f| f.get("name"))
            .and_then(serde_json::Value::as_str)
            == Some("ChangeEventHeader");
        if !header_first {
            return Err(bad("field 0 is not ChangeEventHeader".into()));
        }
        fields.insert(
            1,
            serde_json::json!({"name": "replay_id", "type": "string",
                "doc": "The Pub/Sub replay id of the event, hex of its bytes"}),
        );
        let kafka = Schema::parse(&doc).map_err(|e| bad(e.to_string()))?;
        Ok(EventSchema {
            id: id.to_string(),
            salesforce,
            kafka,
        })
    }
}

/// One record to publish: a change to one Salesforce record.
#[derive(Debug, Clone, PartialEq)]
pub struct Change {
    pub entity: String,
    /// The Kafka key: the record Id (the entity name for `GAP_OVERFLOW`, which has none).
    pub record_id: String,
    pub change_type: String,
    pub transaction_key: String,
    pub sequence_number: i32,
    /// Epoch ms.
    pub commit_timestamp: i64,
    /// The Kafka value, matching [`EventSchema::kafka`].
    pub value: Value,
    /// For a gap-recovered record, the original gap change type (`GAP_UPDATE` …).
    pub gap: Option<String>,
}

/// Decodes one event's payload into its changes.
pub fn decode_event(
    schema: &EventSchema,
    payload: &[u8],
    replay_id: &[u8],
) -> Result<Vec<Change>, DecodeError> {
    let payload_err = |why: String| DecodeError::Payload {
        id: schema.id.clone(),
        why,
    };
    // apache-avro reads a union index, string or boolean cut off by the end of the input as
    // `null` rather than failing, so a short payload can "decode": watch for a read past the
    // end, check that nothing is left over, and check the value against the schema.
    let mut input = EndGuard {
        rest: payload,
        read_past_end: false,
    };
    let value = GenericDatumReader::builder(&schema.salesforce)
        .build()
        .map_err(|e| payload_err(e.to_string()))?
        .read_value(&mut input)
        .map_err(|e| payload_err(e.to_string()))?;
    if input.read_past_end {
        return Err(payload_err(format!(
            "the payload ends early ({} bytes)",
            payload.len()
        )));
    }
    if !input.rest.is_empty() {
        return Err(payload_err(format!(
            "{} bytes left over after the record",
            input.rest.len()
        )));
    }
    if !value.validate(&schema.salesforce) {
        return Err(payload_err(
            "the payload does not match the schema (cut short, or written with another schema)"
                .into(),
        ));
    }
    let Value::Record(mut fields) = value else {
        return Err(DecodeError::NotAChangeEvent("not a record".into()));
    };
    let Some((_, Value::Record(header))) = fields.first_mut() else {
        return Err(DecodeError::NotAChangeEvent(
            "no ChangeEventHeader record".into(),
        ));
    };
    let mut entity = String::new();
    let mut change_type = String::new();
    let mut transaction_key = String::new();
    let mut sequence_number = 0;
    let mut commit_timestamp = 0;
    let mut record_ids = Vec::new();
    for (name, v) in header.iter_mut() {
        match (name.as_str(), &*v) {
            ("entityName", Value::String(s)) => entity = s.clone(),
            ("changeType", Value::Enum(_, s) | Value::String(s)) => change_type = s.clone(),
            ("transactionKey", Value::String(s)) => transaction_key = s.clone(),
            ("sequenceNumber", Value::Int(n)) => sequence_number = *n,
            ("commitTimestamp", Value::Long(n)) => commit_timestamp = *n,
            ("recordIds", Value::Array(ids)) => record_ids = strings(ids),
            _ => {}
        }
        let field: &'static str = match name.as_str() {
            "changedFields" => "changedFields",
            "nulledFields" => "nulledFields",
            "diffFields" => "diffFields",
            _ => continue,
        };
        if let Value::Array(items) = v {
            let names = cdc_bitmap::decode(&schema.salesforce, &strings(items)).map_err(|e| {
                DecodeError::Bitmap {
                    field,
                    why: e.to_string(),
                }
            })?;
            *v = Value::Array(names.into_iter().map(Value::String).collect());
        }
    }
    if entity.is_empty() {
        return Err(DecodeError::NotAChangeEvent(
            "ChangeEventHeader.entityName is empty".into(),
        ));
    }
    let replay_hex: String = replay_id.iter().map(|b| format!("{b:02x}")).collect();
    fields.insert(1, ("replay_id".into(), Value::String(replay_hex)));
    // GAP_OVERFLOW names no record: one record keyed by the entity.
    if record_ids.is_empty() {
        record_ids.push(entity.clone());
    }
    Ok(record_ids
        .into_iter()
        .map(|id| {
            let mut value = fields.clone();
            if let Some((_, Value::Record(h))) = value.first_mut() {
                for (name, v) in h.iter_mut() {
                    if name == "recordIds" {
                        *v = Value::Array(vec![Value::String(id.clone())]);
                    }
                }
            }
            Change {
                entity: entity.clone(),
                record_id: id,
                change_type: change_type.clone(),
                transaction_key: transaction_key.clone(),
                sequence_number,
                commit_timestamp,
                value: Value::Record(value),
                gap: None,
            }
        })
        .collect())
}

fn strings(items: &[Value]) -> Vec<String> {
    items
        .iter()
        .filter_map(|v| match v {
            Value::String(s) => Some(s.clone()),
            _ => None,
        })
        .collect()
}

/// The payload as apache-avro reads it, noting any attempt to read past its end.
struct EndGuard<'a> {
    rest: &'a [u8],
    read_past_end: bool,
}

impl std::io::Read for EndGuard<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if !buf.is_empty() && self.rest.is_empty() {
            self.read_past_end = true;
        }
        self.rest.read(buf)
    }
}

#[cfg(test)]
mod tests {
    use apache_avro::writer::datum::GenericDatumWriter;

    use super::*;

    const SCHEMA: &str = r#"{"type":"record","name":"AccountChangeEvent","namespace":"com.sforce.eventbus","fields":[
      {"name":"ChangeEventHeader","type":{"type":"record","name":"ChangeEventHeader","fields":[
        {"name":"entityName","type":"string"},{"name":"recordIds","type":{"type":"array","items":"string"}},
        {"name":"changeType","type":{"type":"enum","name":"ChangeType","symbols":["CREATE","UPDATE","DELETE"]}},
        {"name":"transactionKey","type":"string"},{"name":"sequenceNumber","type":"int"},
        {"name":"commitTimestamp","type":"long"},
        {"name":"nulledFields","type":{"type":"array","items":"string"}},
        {"name":"diffFields","type":{"type":"array","items":"string"}},
        {"name":"changedFields","type":{"type":"array","items":"string"}}]}},
      {"name":"Name","type":["null","string"],"default":null},
      {"name":"BillingAddress","type":["null",{"type":"record","name":"Address","fields":[
        {"name":"Street","type":["null","string"],"default":null},{"name":"City","type":["null","string"],"default":null}]}],"default":null}]}"#;

    fn arr(items: &[&str]) -> Value {
        Value::Array(items.iter().map(|s| Value::String((*s).into())).collect())
    }

    fn payload(schema: &Schema, ids: &[&str]) -> Vec<u8> {
        let header = Value::Record(vec![
            ("entityName".into(), Value::String("Account".into())),
            ("recordIds".into(), arr(ids)),
            ("changeType".into(), Value::Enum(1, "UPDATE".into())),
            ("transactionKey".into(), Value::String("tx1".into())),
            ("sequenceNumber".into(), Value::Int(1)),
            ("commitTimestamp".into(), Value::Long(1_700_000_000_000)),
            ("nulledFields".into(), arr(&["0x00", "2-0x01"])),
            ("diffFields".into(), arr(&[])),
            ("changedFields".into(), arr(&["0x02", "2-0x03"])),
        ]);
        let v = Value::Record(vec![
            ("ChangeEventHeader".into(), header),
            (
                "Name".into(),
                Value::Union(1, Box::new(Value::String("Acme".into()))),
            ),
            (
                "BillingAddress".into(),
                Value::Union(0, Box::new(Value::Null)),
            ),
        ]);
        GenericDatumWriter::builder(schema)
            .build()
            .unwrap()
            .write_value_to_vec(v)
            .unwrap()
    }

    #[test]
    fn decodes_bitmaps_and_splits_merged_events() {
        let schema = EventSchema::parse("s1", SCHEMA).unwrap();
        let bytes = payload(&schema.salesforce, &["001A", "001B"]);
        let changes = decode_event(&schema, &bytes, &[0, 0, 0, 0, 0, 0, 1, 0xff]).unwrap();
        assert_eq!(changes.len(), 2);
        assert_eq!(changes[0].record_id, "001A");
        assert_eq!(changes[1].record_id, "001B");
        let c = &changes[1];
        assert!(c.value.validate(&schema.kafka), "matches the Kafka schema");
        let Value::Record(fields) = &c.value else {
            panic!()
        };
        assert_eq!(
            fields[1],
            ("replay_id".into(), Value::String("00000000000001ff".into()))
        );
        let Value::Record(h) = &fields[0].1 else {
            panic!()
        };
        let get = |k: &str| h.iter().find(|(n, _)| n == k).unwrap().1.clone();
        assert_eq!(
            get("changedFields"),
            arr(&["Name", "BillingAddress.Street", "BillingAddress.City"])
        );
        assert_eq!(get("nulledFields"), arr(&["BillingAddress.Street"]));
        assert_eq!(get("recordIds"), arr(&["001B"]));
    }

    #[test]
    fn bad_payload_is_an_error() {
        let schema = EventSchema::parse("s1", SCHEMA).unwrap();
        assert!(matches!(
            decode_event(&schema, &[0xff, 0xff, 0xff], &[1]),
            Err(DecodeError::Payload { .. })
        ));
        assert!(EventSchema::parse("s2", r#"{"type":"string"}"#).is_err());
    }

    #[test]
    fn a_payload_cut_short_or_too_long_is_an_error() {
        let schema = EventSchema::parse("s1", SCHEMA).unwrap();
        let bytes = payload(&schema.salesforce, &["001A"]);
        // Every cut, including those that end inside a string (apache-avro would read it as
        // null and carry on).
        for len in 0..bytes.len() {
            assert!(
                matches!(
                    decode_event(&schema, &bytes[..len], &[1]),
                    Err(DecodeError::Payload { .. })
                ),
                "cut to {len} of {} bytes",
                bytes.len()
            );
        }
        let mut longer = bytes.clone();
        longer.push(0);
        assert!(matches!(
            decode_event(&schema, &longer, &[1]),
            Err(DecodeError::Payload { .. })
        ));
    }
}
