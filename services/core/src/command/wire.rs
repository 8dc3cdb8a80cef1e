//! A [`Command`] written straight into the Avro binary encoding of
//! `schemas/commands/Command.avsc` (Avro 1.11 spec, "Binary Encoding": zig-zag varint longs,
//! length-prefixed strings, a union as its branch index then the value, a map as one block of
//! entries closed by a zero count), with no [`apache_avro::types::Value`] tree and no
//! schema walk per record.
//!
//! Why: the transformer writes one command per source record. Building the value tree then
//! validating it was over a third of its CPU per record; apache-avro's schema-aware serde
//! serializer still looked every field up in the schema and was the largest single cost left
//! (`make bench`, perf). The layout below is the schema's, field for field; `encode` refuses a
//! writer schema that is not the built-in one, so a changed `.avsc` without a changed writer
//! fails loudly rather than writing something else, and `the_same_bytes_as_apache_avro` checks
//! the bytes against apache-avro's own encoding of [`Command::to_avro`].

use std::sync::OnceLock;

use crate::avro::WriterSchema;
use crate::errors::{ErrorCode, StageError};

use super::{Command, CommandKind, DeliveryMode, FieldValue, Owner, System};

impl Command {
    /// This command in the Confluent wire format with `writer` (the registered command schema).
    pub fn encode(&self, writer: &WriterSchema) -> Result<Vec<u8>, StageError> {
        if writer.fingerprint() != built_in_fingerprint() {
            return Err(StageError::new(
                ErrorCode::RecordDoesNotMatchSchema,
                format!(
                    "encoding a command with schema {} of {}: not the command schema this build \
                     writes (schemas/commands/Command.avsc)",
                    writer.id, writer.subject
                ),
            ));
        }
        let mut out = Vec::with_capacity(512);
        out.push(0);
        out.extend_from_slice(&writer.id.to_be_bytes());
        write_command(&mut out, self);
        Ok(out)
    }
}

fn built_in_fingerprint() -> u64 {
    static FINGERPRINT: OnceLock<u64> = OnceLock::new();
    *FINGERPRINT.get_or_init(|| crate::avro::rabin_fingerprint(super::avro::schema()))
}

fn write_command(out: &mut Vec<u8>, c: &Command) {
    write_str(out, &c.command_id);
    write_str(out, &c.flow);
    write_long(out, kind_index(c.kind));
    let t = &c.target;
    write_long(out, system_index(t.system));
    write_str(out, &t.entity);
    write_str(out, &t.external_ref);
    for opt in [
        &t.project,
        &t.issue_type,
        &t.parent_ref,
        &t.attach_to,
        &t.external_id_field,
        &t.external_id,
    ] {
        write_opt_str(out, opt.as_deref());
    }
    out.push(u8::from(t.update_only));
    // One buffer for every field's JSON text: its length is written before it.
    let mut json = Vec::with_capacity(256);
    if !c.fields.is_empty() {
        write_long(out, c.fields.len() as i64);
        for (name, value) in &c.fields {
            write_str(out, name);
            write_field_value(out, value, &mut json);
        }
    }
    write_long(out, 0);
    match &c.transition_to {
        None => write_long(out, 0),
        Some(f) => {
            write_long(out, 1);
            write_field_value(out, f, &mut json);
        }
    }
    let s = &c.source;
    write_long(out, system_index(s.system));
    write_str(out, &s.entity);
    write_str(out, &s.id);
    write_str(out, &s.version);
    write_long(out, s.commit_time.timestamp_millis());
    match c.delivery {
        DeliveryMode::Realtime => write_long(out, 0),
        DeliveryMode::Batched { interval_ms } => {
            write_long(out, 1);
            write_long(out, interval_ms as i64);
        }
    }
}

fn write_field_value(out: &mut Vec<u8>, f: &FieldValue, json: &mut Vec<u8>) {
    json.clear();
    // Writing a `serde_json::Value` into a Vec cannot fail: its numbers are finite and its
    // map keys are strings.
    serde_json::to_writer(&mut *json, &f.value).expect("a JSON value serialises");
    write_bytes(out, json);
    write_long(out, owner_index(f.owner));
    out.push(u8::from(f.changed));
    write_long(out, f.source_time.timestamp_millis());
}

/// The symbol's position in the schema's enum (written as an int).
fn kind_index(k: CommandKind) -> i64 {
    match k {
        CommandKind::Upsert => 0,
        CommandKind::Comment => 1,
        CommandKind::Worklog => 2,
        CommandKind::Delete => 3,
        CommandKind::Close => 4,
    }
}

fn system_index(s: System) -> i64 {
    match s {
        System::Salesforce => 0,
        System::Jira => 1,
    }
}

fn owner_index(o: Owner) -> i64 {
    match o {
        Owner::Salesforce => 0,
        Owner::Jira => 1,
        Owner::Both => 2,
    }
}

/// `["null", "string"]`: branch 0 for null, branch 1 then the string.
fn write_opt_str(out: &mut Vec<u8>, s: Option<&str>) {
    match s {
        None => write_long(out, 0),
        Some(s) => {
            write_long(out, 1);
            write_str(out, s);
        }
    }
}

fn write_str(out: &mut Vec<u8>, s: &str) {
    write_bytes(out, s.as_bytes());
}

fn write_bytes(out: &mut Vec<u8>, b: &[u8]) {
    write_long(out, b.len() as i64);
    out.extend_from_slice(b);
}

/// Zig-zag, then base-128 varint, low group first.
fn write_long(out: &mut Vec<u8>, n: i64) {
    let mut z = ((n << 1) ^ (n >> 63)) as u64;
    while z >= 0x80 {
        out.push((z as u8) | 0x80);
        z >>= 7;
    }
    out.push(z as u8);
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use apache_avro::types::Value as Avro;
    use chrono::DateTime;
    use serde_json::json;

    use super::*;
    use crate::avro::{WriterSchema, encode_framed};
    use crate::command::avro::schema;
    use crate::command::{SourceRef, TargetRef};

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
    fn the_same_bytes_as_apache_avro() {
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
                    let wire = c.encode(&writer).unwrap();
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

    /// Varints past one byte (a map of 70 entries, strings over 127 bytes, times before 1970,
    /// a long interval) and every kind of JSON a field carries.
    #[test]
    fn long_counts_strings_and_negative_times_match_apache_avro() {
        let writer = WriterSchema::new("t-value", 300, schema().clone());
        let mut c = command(CommandKind::Upsert, 70, true, true);
        c.delivery = DeliveryMode::Batched {
            interval_ms: 86_400_000 * 400,
        };
        c.source.commit_time = DateTime::from_timestamp_millis(-1_234_567_890_123).unwrap();
        c.flow = "f".repeat(300);
        c.fields.get_mut("field_3").unwrap().value =
            json!({"nested": [1, -2.5, "ü", null, true], "long": "x".repeat(20_000)});
        c.fields.get_mut("field_7").unwrap().source_time =
            DateTime::from_timestamp_millis(0).unwrap();
        let wire = c.encode(&writer).unwrap();
        assert_eq!(
            &wire[..5],
            &[0, 0, 0, 1, 44],
            "magic byte and schema id 300"
        );
        let tree = encode_framed(&writer, c.to_avro()).unwrap();
        assert_eq!(wire.len(), tree.len());
        assert_eq!(decode(&writer, &wire), decode(&writer, &tree));
        assert_eq!(Command::from_avro(decode(&writer, &wire)).unwrap(), c);
    }

    #[test]
    fn another_schema_is_refused_not_written() {
        let other = apache_avro::Schema::parse_str(
            r#"{"type":"record","name":"Command","namespace":"dev.sfjira.commands","fields":[{"name":"command_id","type":"string"}]}"#,
        )
        .unwrap();
        let writer = WriterSchema::new("t-value", 9, other);
        let err = command(CommandKind::Upsert, 1, false, false)
            .encode(&writer)
            .unwrap_err();
        assert_eq!(err.code, crate::errors::ErrorCode::RecordDoesNotMatchSchema);
        assert!(err.to_string().contains("Command.avsc"), "{err}");
    }
}
