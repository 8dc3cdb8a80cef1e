//! A [`Command`] as the Avro record of `schemas/commands/Command.avsc`, and back. Field values
//! vary in shape (ADF documents, selects, numbers), so each travels as JSON text inside the
//! record (`value_json`); everything else is typed.

use std::collections::{BTreeMap, HashMap};
use std::sync::OnceLock;

use apache_avro::Schema;
use apache_avro::types::Value;
use chrono::{DateTime, Utc};

use super::*;

const SCHEMA_JSON: &str = include_str!("../../../../schemas/commands/Command.avsc");

/// The command schema, parsed once.
pub fn schema() -> &'static Schema {
    static SCHEMA: OnceLock<Schema> = OnceLock::new();
    SCHEMA.get_or_init(|| {
        Schema::parse_str(SCHEMA_JSON).expect("schemas/commands/Command.avsc is valid")
    })
}

/// Why an Avro value is not a command (a record written with another schema).
#[derive(Debug, thiserror::Error)]
#[error("not a command: {0}")]
pub struct NotACommand(String);

impl Command {
    pub fn to_avro(&self) -> Value {
        let fields: HashMap<String, Value> = self
            .fields
            .iter()
            .map(|(k, v)| (k.clone(), field_value(v)))
            .collect();
        let t = &self.target;
        Value::Record(vec![
            ("command_id".into(), Value::String(self.command_id.clone())),
            ("flow".into(), Value::String(self.flow.clone())),
            ("kind".into(), kind_enum(self.kind)),
            (
                "target".into(),
                Value::Record(vec![
                    ("system".into(), system_enum(t.system)),
                    ("entity".into(), Value::String(t.entity.clone())),
                    ("external_ref".into(), Value::String(t.external_ref.clone())),
                    ("project".into(), opt(&t.project)),
                    ("issue_type".into(), opt(&t.issue_type)),
                    ("parent_ref".into(), opt(&t.parent_ref)),
                    ("attach_to".into(), opt(&t.attach_to)),
                    ("external_id_field".into(), opt(&t.external_id_field)),
                    ("external_id".into(), opt(&t.external_id)),
                    ("update_only".into(), Value::Boolean(t.update_only)),
                ]),
            ),
            ("fields".into(), Value::Map(fields)),
            (
                "transition_to".into(),
                match &self.transition_to {
                    Some(v) => Value::Union(1, Box::new(field_value(v))),
                    None => Value::Union(0, Box::new(Value::Null)),
                },
            ),
            (
                "source".into(),
                Value::Record(vec![
                    ("system".into(), system_enum(self.source.system)),
                    ("entity".into(), Value::String(self.source.entity.clone())),
                    ("id".into(), Value::String(self.source.id.clone())),
                    ("version".into(), Value::String(self.source.version.clone())),
                    (
                        "commit_time".into(),
                        Value::TimestampMillis(self.source.commit_time.timestamp_millis()),
                    ),
                ]),
            ),
            (
                "batch_interval_ms".into(),
                match self.delivery {
                    DeliveryMode::Realtime => Value::Union(0, Box::new(Value::Null)),
                    DeliveryMode::Batched { interval_ms } => {
                        Value::Union(1, Box::new(Value::Long(interval_ms as i64)))
                    }
                },
            ),
        ])
    }

    pub fn from_avro(value: Value) -> Result<Command, NotACommand> {
        let mut r = Fields::of(value, "Command")?;
        let mut target = Fields::of(r.take("target")?, "TargetRef")?;
        let mut source = Fields::of(r.take("source")?, "SourceRef")?;
        let fields = match r.take("fields")? {
            Value::Map(m) => m
                .into_iter()
                .map(|(k, v)| Ok((k, parse_field_value(v)?)))
                .collect::<Result<BTreeMap<_, _>, NotACommand>>()?,
            other => return Err(NotACommand(format!("fields is {other:?}"))),
        };
        Ok(Command {
            command_id: r.string("command_id")?,
            flow: r.string("flow")?,
            kind: match r.symbol("kind")?.as_str() {
                "UPSERT" => CommandKind::Upsert,
                "COMMENT" => CommandKind::Comment,
                "WORKLOG" => CommandKind::Worklog,
                "DELETE" => CommandKind::Delete,
                "CLOSE" => CommandKind::Close,
                other => return Err(NotACommand(format!("unknown kind {other}"))),
            },
            target: TargetRef {
                system: parse_system(&target.symbol("system")?)?,
                entity: target.string("entity")?,
                external_ref: target.string("external_ref")?,
                project: target.opt_string("project")?,
                issue_type: target.opt_string("issue_type")?,
                parent_ref: target.opt_string("parent_ref")?,
                attach_to: target.opt_string("attach_to")?,
                external_id_field: target.opt_string("external_id_field")?,
                external_id: target.opt_string("external_id")?,
                // Absent in commands written before the field existed: false.
                update_only: matches!(target.take("update_only"), Ok(Value::Boolean(true))),
            },
            fields,
            transition_to: match unwrap_union(r.take("transition_to")?) {
                Value::Null => None,
                v => Some(parse_field_value(v)?),
            },
            source: SourceRef {
                system: parse_system(&source.symbol("system")?)?,
                entity: source.string("entity")?,
                id: source.string("id")?,
                version: source.string("version")?,
                commit_time: source.time("commit_time")?,
            },
            delivery: match unwrap_union(r.take("batch_interval_ms")?) {
                Value::Null => DeliveryMode::Realtime,
                Value::Long(ms) => DeliveryMode::Batched {
                    interval_ms: ms.max(0) as u64,
                },
                other => return Err(NotACommand(format!("batch_interval_ms is {other:?}"))),
            },
        })
    }
}

fn field_value(v: &FieldValue) -> Value {
    Value::Record(vec![
        ("value_json".into(), Value::String(v.value.to_string())),
        ("owner".into(), owner_enum(v.owner)),
        ("changed".into(), Value::Boolean(v.changed)),
        (
            "source_time".into(),
            Value::TimestampMillis(v.source_time.timestamp_millis()),
        ),
    ])
}

fn parse_field_value(v: Value) -> Result<FieldValue, NotACommand> {
    let mut f = Fields::of(v, "FieldValue")?;
    let json = f.string("value_json")?;
    Ok(FieldValue {
        value: serde_json::from_str(&json)
            .map_err(|e| NotACommand(format!("value_json {json:?}: {e}")))?,
        owner: match f.symbol("owner")?.as_str() {
            "SALESFORCE" => Owner::Salesforce,
            "JIRA" => Owner::Jira,
            "BOTH" => Owner::Both,
            other => return Err(NotACommand(format!("unknown owner {other}"))),
        },
        changed: match f.take("changed")? {
            Value::Boolean(b) => b,
            other => return Err(NotACommand(format!("changed is {other:?}"))),
        },
        source_time: f.time("source_time")?,
    })
}

fn opt(s: &Option<String>) -> Value {
    match s {
        Some(s) => Value::Union(1, Box::new(Value::String(s.clone()))),
        None => Value::Union(0, Box::new(Value::Null)),
    }
}

fn kind_enum(k: CommandKind) -> Value {
    let (i, s) = match k {
        CommandKind::Upsert => (0, "UPSERT"),
        CommandKind::Comment => (1, "COMMENT"),
        CommandKind::Worklog => (2, "WORKLOG"),
        CommandKind::Delete => (3, "DELETE"),
        CommandKind::Close => (4, "CLOSE"),
    };
    Value::Enum(i, s.into())
}

fn system_enum(s: System) -> Value {
    match s {
        System::Salesforce => Value::Enum(0, "SALESFORCE".into()),
        System::Jira => Value::Enum(1, "JIRA".into()),
    }
}

fn owner_enum(o: Owner) -> Value {
    match o {
        Owner::Salesforce => Value::Enum(0, "SALESFORCE".into()),
        Owner::Jira => Value::Enum(1, "JIRA".into()),
        Owner::Both => Value::Enum(2, "BOTH".into()),
    }
}

fn parse_system(s: &str) -> Result<System, NotACommand> {
    match s {
        "SALESFORCE" => Ok(System::Salesforce),
        "JIRA" => Ok(System::Jira),
        other => Err(NotACommand(format!("unknown system {other}"))),
    }
}

fn unwrap_union(v: Value) -> Value {
    match v {
        Value::Union(_, inner) => *inner,
        v => v,
    }
}

/// The fields of a decoded Avro record, taken by name.
struct Fields {
    name: &'static str,
    fields: Vec<(String, Value)>,
}

impl Fields {
    fn of(v: Value, name: &'static str) -> Result<Fields, NotACommand> {
        match v {
            Value::Record(fields) => Ok(Fields { name, fields }),
            other => Err(NotACommand(format!("{name} is {other:?}, not a record"))),
        }
    }

    fn take(&mut self, key: &str) -> Result<Value, NotACommand> {
        let i = self
            .fields
            .iter()
            .position(|(k, _)| k == key)
            .ok_or_else(|| NotACommand(format!("{} has no field {key}", self.name)))?;
        Ok(self.fields.swap_remove(i).1)
    }

    fn string(&mut self, key: &str) -> Result<String, NotACommand> {
        match unwrap_union(self.take(key)?) {
            Value::String(s) => Ok(s),
            other => Err(NotACommand(format!(
                "{}.{key} is {other:?}, not a string",
                self.name
            ))),
        }
    }

    fn opt_string(&mut self, key: &str) -> Result<Option<String>, NotACommand> {
        match unwrap_union(self.take(key)?) {
            Value::Null => Ok(None),
            Value::String(s) => Ok(Some(s)),
            other => Err(NotACommand(format!("{}.{key} is {other:?}", self.name))),
        }
    }

    fn symbol(&mut self, key: &str) -> Result<String, NotACommand> {
        match self.take(key)? {
            Value::Enum(_, s) => Ok(s),
            other => Err(NotACommand(format!(
                "{}.{key} is {other:?}, not an enum",
                self.name
            ))),
        }
    }

    fn time(&mut self, key: &str) -> Result<DateTime<Utc>, NotACommand> {
        match self.take(key)? {
            Value::TimestampMillis(ms) | Value::Long(ms) => DateTime::from_timestamp_millis(ms)
                .ok_or_else(|| NotACommand(format!("{}.{key} = {ms} is out of range", self.name))),
            other => Err(NotACommand(format!(
                "{}.{key} is {other:?}, not a timestamp",
                self.name
            ))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    pub(crate) fn sample() -> Command {
        let t = DateTime::from_timestamp_millis(1_795_780_800_123).unwrap();
        let fv = |value, owner, changed| FieldValue {
            value,
            owner,
            changed,
            source_time: t,
        };
        Command {
            command_id: "aa01777666b9f136f106ff5937877ffa".into(),
            flow: "won-opportunity-to-story".into(),
            kind: CommandKind::Upsert,
            target: TargetRef {
                system: System::Jira,
                entity: "issue".into(),
                external_ref: "salesforce:Opportunity:006A".into(),
                project: Some("PROJ".into()),
                issue_type: Some("Story".into()),
                parent_ref: Some("salesforce:Account:001A".into()),
                attach_to: None,
                external_id_field: None,
                external_id: None,
                update_only: false,
            },
            fields: BTreeMap::from([
                (
                    "summary".into(),
                    fv(json!("Acme"), Owner::Salesforce, false),
                ),
                (
                    "description".into(),
                    fv(
                        json!({"type": "doc", "version": 1, "content": []}),
                        Owner::Both,
                        true,
                    ),
                ),
                ("duedate".into(), fv(json!(null), Owner::Salesforce, true)),
            ]),
            transition_to: Some(fv(json!("To Do"), Owner::Both, true)),
            source: SourceRef {
                system: System::Salesforce,
                entity: "Opportunity".into(),
                id: "006A".into(),
                version: "r1".into(),
                commit_time: t,
            },
            delivery: DeliveryMode::Batched {
                interval_ms: 60_000,
            },
        }
    }

    #[test]
    fn a_command_survives_avro_encoding() {
        let cmd = sample();
        let value = cmd.to_avro();
        assert!(value.validate(schema()), "the value matches Command.avsc");
        let bytes = apache_avro::writer::datum::GenericDatumWriter::builder(schema())
            .build()
            .unwrap()
            .write_value_to_vec(value)
            .unwrap();
        let back = apache_avro::reader::datum::GenericDatumReader::builder(schema())
            .build()
            .unwrap()
            .read_value(&mut &bytes[..])
            .unwrap();
        assert_eq!(Command::from_avro(back).unwrap(), cmd);
        let realtime = Command {
            delivery: DeliveryMode::Realtime,
            transition_to: None,
            ..sample()
        };
        assert_eq!(Command::from_avro(realtime.to_avro()).unwrap(), realtime);
        assert!(Command::from_avro(Value::Record(vec![])).is_err());
    }
}
