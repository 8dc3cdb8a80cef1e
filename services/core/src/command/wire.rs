//! A [`Command`] written as its Avro body straight through serde, with apache-avro's
//! schema-aware serializer ([`crate::avro::encode_framed_ser`]), instead of building an
//! [`apache_avro::types::Value`] tree ([`Command::to_avro`]) and validating it before encoding.
//!
//! Why: the transformer writes one command per source record, and building the tree (a `String`
//! per field name, a map of records) then validating it was over a third of its CPU per record.
//! The bytes are the same — `the_same_bytes_as_the_value_tree` checks it — and the schema
//! stays the one in `schemas/commands/Command.avsc`: the serializer walks it, so a field the
//! views below do not match fails to encode rather than writing something else.

use serde::ser::{Error as _, SerializeMap, SerializeStruct};
use serde::{Serialize, Serializer};

use super::{Command, CommandKind, DeliveryMode, FieldValue, Owner, SourceRef, System, TargetRef};

impl Command {
    /// This command in the Confluent wire format with `writer` (the registered command schema).
    pub fn encode(
        &self,
        writer: &crate::avro::WriterSchema,
    ) -> Result<Vec<u8>, crate::errors::StageError> {
        crate::avro::encode_framed_ser(writer, &CommandWire(self))
    }
}

/// The serde view of a [`Command`], field for field in the schema's order.
pub struct CommandWire<'a>(pub &'a Command);

impl Serialize for CommandWire<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let c = self.0;
        let mut r = s.serialize_struct("Command", 8)?;
        r.serialize_field("command_id", &c.command_id)?;
        r.serialize_field("flow", &c.flow)?;
        r.serialize_field("kind", &KindWire(c.kind))?;
        r.serialize_field("target", &TargetWire(&c.target))?;
        r.serialize_field("fields", &FieldsWire(&c.fields))?;
        let mut json = Vec::new();
        let transition_to = match &c.transition_to {
            Some(f) => Some(FieldWire::new(f, &mut json).map_err(S::Error::custom)?),
            None => None,
        };
        r.serialize_field("transition_to", &transition_to)?;
        r.serialize_field("source", &SourceWire(&c.source))?;
        let interval = match c.delivery {
            DeliveryMode::Realtime => None,
            DeliveryMode::Batched { interval_ms } => Some(interval_ms as i64),
        };
        r.serialize_field("batch_interval_ms", &interval)?;
        r.end()
    }
}

struct KindWire(CommandKind);

impl Serialize for KindWire {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let (i, name) = match self.0 {
            CommandKind::Upsert => (0, "UPSERT"),
            CommandKind::Comment => (1, "COMMENT"),
            CommandKind::Worklog => (2, "WORKLOG"),
            CommandKind::Delete => (3, "DELETE"),
            CommandKind::Close => (4, "CLOSE"),
        };
        s.serialize_unit_variant("CommandKind", i, name)
    }
}

struct SystemWire(System);

impl Serialize for SystemWire {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self.0 {
            System::Salesforce => s.serialize_unit_variant("System", 0, "SALESFORCE"),
            System::Jira => s.serialize_unit_variant("System", 1, "JIRA"),
        }
    }
}

struct OwnerWire(Owner);

impl Serialize for OwnerWire {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self.0 {
            Owner::Salesforce => s.serialize_unit_variant("Owner", 0, "SALESFORCE"),
            Owner::Jira => s.serialize_unit_variant("Owner", 1, "JIRA"),
            Owner::Both => s.serialize_unit_variant("Owner", 2, "BOTH"),
        }
    }
}

struct TargetWire<'a>(&'a TargetRef);

impl Serialize for TargetWire<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let t = self.0;
        let mut r = s.serialize_struct("TargetRef", 10)?;
        r.serialize_field("system", &SystemWire(t.system))?;
        r.serialize_field("entity", &t.entity)?;
        r.serialize_field("external_ref", &t.external_ref)?;
        r.serialize_field("project", &t.project)?;
        r.serialize_field("issue_type", &t.issue_type)?;
        r.serialize_field("parent_ref", &t.parent_ref)?;
        r.serialize_field("attach_to", &t.attach_to)?;
        r.serialize_field("external_id_field", &t.external_id_field)?;
        r.serialize_field("external_id", &t.external_id)?;
        r.serialize_field("update_only", &t.update_only)?;
        r.end()
    }
}

struct FieldsWire<'a>(&'a std::collections::BTreeMap<String, FieldValue>);

impl Serialize for FieldsWire<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut m = s.serialize_map(Some(self.0.len()))?;
        // One buffer for every field's JSON text, not a string each: writing the text was most
        // of the command's encoding cost.
        let mut json = Vec::with_capacity(256);
        for (name, value) in self.0 {
            m.serialize_entry(
                name,
                &FieldWire::new(value, &mut json).map_err(S::Error::custom)?,
            )?;
        }
        m.end()
    }
}

/// A field value with its JSON text (written into a buffer its caller reuses).
struct FieldWire<'a> {
    field: &'a FieldValue,
    json: &'a str,
}

impl<'a> FieldWire<'a> {
    fn new(field: &'a FieldValue, buffer: &'a mut Vec<u8>) -> Result<Self, String> {
        buffer.clear();
        serde_json::to_writer(&mut *buffer, &field.value).map_err(|e| e.to_string())?;
        let json = std::str::from_utf8(buffer).map_err(|e| e.to_string())?;
        Ok(FieldWire { field, json })
    }
}

impl Serialize for FieldWire<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let f = self.field;
        let mut r = s.serialize_struct("FieldValue", 4)?;
        r.serialize_field("value_json", self.json)?;
        r.serialize_field("owner", &OwnerWire(f.owner))?;
        r.serialize_field("changed", &f.changed)?;
        r.serialize_field("source_time", &f.source_time.timestamp_millis())?;
        r.end()
    }
}

struct SourceWire<'a>(&'a SourceRef);

impl Serialize for SourceWire<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let src = self.0;
        let mut r = s.serialize_struct("SourceRef", 5)?;
        r.serialize_field("system", &SystemWire(src.system))?;
        r.serialize_field("entity", &src.entity)?;
        r.serialize_field("id", &src.id)?;
        r.serialize_field("version", &src.version)?;
        r.serialize_field("commit_time", &src.commit_time.timestamp_millis())?;
        r.end()
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use apache_avro::types::Value as Avro;
    use chrono::DateTime;
    use serde_json::json;

    use super::*;
    use crate::avro::{WriterSchema, encode_framed, encode_framed_ser};
    use crate::command::avro::schema;

    fn command(kind: CommandKind, fields: usize, options: bool, batched: bool) -> Command {
        let t = DateTime::from_timestamp_millis(1_795_780_800_123).unwrap();
        let some = |s: &str| options.then(|| s.to_string());
        let owners = [Owner::Salesforce, Owner::Jira, Owner::Both];
        Command {
            command_id: "aa01777666b9f136f106ff5937877ffa".into(),
            flow: "won-opportunity-to-story".into(),
            kind,
            target: TargetRef {
                system: if options {
                    System::Jira
                } else {
                    System::Salesforce
                },
                entity: "issue".into(),
                external_ref: "salesforce:Opportunity:006A".into(),
                project: some("PROJ"),
                issue_type: some("Story"),
                parent_ref: some("salesforce:Account:001A"),
                attach_to: some("jira:PROJ-1"),
                external_id_field: some("Jira_Key__c"),
                external_id: some("PROJ-1"),
                update_only: !options,
            },
            fields: (0..fields)
                .map(|i| {
                    let value = match i % 4 {
                        0 => json!(format!("text \"{i}\" é")),
                        1 => json!({"type": "doc", "version": 1, "content": []}),
                        2 => json!(i as f64 * 1.5),
                        _ => json!(null),
                    };
                    let fv = FieldValue {
                        value,
                        owner: owners[i % 3],
                        changed: i % 2 == 0,
                        source_time: t,
                    };
                    (format!("field_{i}"), fv)
                })
                .collect::<BTreeMap<_, _>>(),
            transition_to: options.then(|| FieldValue {
                value: json!("In Progress"),
                owner: Owner::Jira,
                changed: true,
                source_time: t,
            }),
            source: SourceRef {
                system: System::Salesforce,
                entity: "Opportunity".into(),
                id: "006A".into(),
                version: "replay:42".into(),
                commit_time: t,
            },
            delivery: if batched {
                DeliveryMode::Batched {
                    interval_ms: 60_000,
                }
            } else {
                DeliveryMode::Realtime
            },
        }
    }

    fn decode(writer: &WriterSchema, bytes: &[u8]) -> Avro {
        apache_avro::reader::datum::GenericDatumReader::builder(&writer.schema)
            .build()
            .expect("reader")
            .read_value(&mut &bytes[5..])
            .expect("decodes")
    }

    #[test]
    fn the_same_bytes_as_the_value_tree() {
        let writer = WriterSchema::new("t-value", 7, schema().clone());
        let kinds = [
            CommandKind::Upsert,
            CommandKind::Comment,
            CommandKind::Worklog,
            CommandKind::Delete,
            CommandKind::Close,
        ];
        for (i, kind) in kinds.into_iter().enumerate() {
            for fields in [0, 1, 5] {
                for options in [false, true] {
                    let c = command(kind, fields, options, i % 2 == 0);
                    let tree = encode_framed(&writer, c.to_avro()).unwrap();
                    let wire = encode_framed_ser(&writer, &CommandWire(&c)).unwrap();
                    // A map's entries may come in another order from the tree (a HashMap), so
                    // bytes are compared where there is at most one entry, values everywhere.
                    if fields <= 1 {
                        assert_eq!(wire, tree, "{kind:?} fields={fields} options={options}");
                    }
                    assert_eq!(wire.len(), tree.len());
                    assert_eq!(decode(&writer, &wire), decode(&writer, &tree));
                    let back = Command::from_avro(decode(&writer, &wire)).unwrap();
                    assert_eq!(back, c);
                }
            }
        }
    }
}
