//! What one command asks of Salesforce once its record is resolved, and how commands become
//! Collections rows: commands for the same record in one batch are merged in order into one
//! row (Salesforce refuses a record twice in one call), and a change of kind for a record (an
//! update after a delete) starts a new round so order per record is kept.

use std::collections::{BTreeMap, HashMap};

use serde_json::{Map, Value};

/// How a row reaches its record.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum RowKind {
    /// `PATCH /composite/sobjects/{Object}/{field}`: create or update by external id.
    Upsert { field: String },
    /// `PATCH /composite/sobjects`: update by Id.
    Update,
    /// `DELETE /composite/sobjects?ids=`.
    Delete,
}

impl RowKind {
    pub fn operation(&self) -> &'static str {
        match self {
            RowKind::Upsert { .. } => "upsert",
            RowKind::Update => "update",
            RowKind::Delete => "delete",
        }
    }
}

/// The record a row is about: its Id, or its external id value.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum RecordKey {
    Id(String),
    Ext { field: String, value: String },
}

/// One command's write, resolved.
#[derive(Debug, Clone)]
pub struct Write {
    /// Index of the command in its batch.
    pub command: usize,
    pub object: String,
    pub kind: RowKind,
    pub key: RecordKey,
    /// Fields to write (without `Id` and the external id field).
    pub fields: Map<String, Value>,
}

/// One Collections row: one record, one or more commands.
#[derive(Debug, Clone)]
pub struct Row {
    pub object: String,
    pub kind: RowKind,
    pub key: RecordKey,
    pub fields: Map<String, Value>,
    /// The commands merged into it, in order.
    pub commands: Vec<usize>,
}

impl Row {
    /// The row's JSON in a Collections request.
    pub fn body(&self) -> Value {
        let mut m = Map::new();
        m.insert(
            "attributes".into(),
            serde_json::json!({"type": self.object}),
        );
        match &self.key {
            RecordKey::Id(id) => {
                m.insert("Id".into(), Value::String(id.clone()));
            }
            RecordKey::Ext { field, value } => {
                m.insert(field.clone(), Value::String(value.clone()));
            }
        }
        for (k, v) in &self.fields {
            m.entry(k.clone()).or_insert_with(|| v.clone());
        }
        Value::Object(m)
    }
}

/// Merges writes into rows, grouped into rounds: round `n + 1` holds a record's writes that
/// follow one of another kind in round `n`. Rows keep the order of their first command.
pub fn rounds(writes: Vec<Write>) -> Vec<Vec<Row>> {
    let mut out: Vec<Vec<Row>> = Vec::new();
    // Per record: (round, kind, index of its row in that round).
    let mut last: HashMap<(String, RecordKey), (usize, RowKind, usize)> = HashMap::new();
    for w in writes {
        let rec = (w.object.clone(), w.key.clone());
        let round = match last.get(&rec) {
            Some((r, kind, idx)) if *kind == w.kind => {
                let row = &mut out[*r][*idx];
                for (k, v) in w.fields {
                    row.fields.insert(k, v);
                }
                row.commands.push(w.command);
                continue;
            }
            Some((r, _, _)) => r + 1,
            None => 0,
        };
        while out.len() <= round {
            out.push(Vec::new());
        }
        out[round].push(Row {
            object: w.object,
            kind: w.kind.clone(),
            key: w.key,
            fields: w.fields,
            commands: vec![w.command],
        });
        last.insert(rec, (round, w.kind, out[round].len() - 1));
    }
    out
}

/// Rows of one round grouped per call target (object and kind), order kept within a group.
pub fn groups(round: Vec<Row>) -> BTreeMap<(String, RowKind), Vec<Row>> {
    let mut out: BTreeMap<(String, RowKind), Vec<Row>> = BTreeMap::new();
    for r in round {
        out.entry((r.object.clone(), r.kind.clone()))
            .or_default()
            .push(r);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn w(command: usize, key: &str, kind: RowKind, fields: Value) -> Write {
        Write {
            command,
            object: "Account".into(),
            kind,
            key: RecordKey::Ext {
                field: "Jira_Key__c".into(),
                value: key.into(),
            },
            fields: fields.as_object().unwrap().clone(),
        }
    }

    #[test]
    fn two_commands_for_one_record_merge_in_order() {
        let up = || RowKind::Upsert {
            field: "Jira_Key__c".into(),
        };
        let r = rounds(vec![
            w(0, "A", up(), json!({"Name": "a1", "Phone": "1"})),
            w(1, "B", up(), json!({"Name": "b"})),
            w(2, "A", up(), json!({"Name": "a2"})),
        ]);
        assert_eq!(r.len(), 1);
        assert_eq!(r[0].len(), 2);
        assert_eq!(r[0][0].commands, vec![0, 2]);
        assert_eq!(r[0][0].fields["Name"], "a2");
        assert_eq!(r[0][0].fields["Phone"], "1");
        let body = r[0][0].body();
        assert_eq!(body["Jira_Key__c"], "A");
        assert_eq!(body["attributes"]["type"], "Account");
    }

    #[test]
    fn a_change_of_kind_starts_a_new_round() {
        let up = || RowKind::Upsert {
            field: "Jira_Key__c".into(),
        };
        let r = rounds(vec![
            w(0, "A", up(), json!({"Name": "a"})),
            w(1, "A", RowKind::Delete, json!({})),
            w(2, "A", up(), json!({"Name": "again"})),
            w(3, "B", up(), json!({"Name": "b"})),
        ]);
        assert_eq!(r.len(), 3);
        assert_eq!(r[0].len(), 2, "B joins the first round");
        assert_eq!(r[1][0].kind, RowKind::Delete);
        assert_eq!(r[2][0].commands, vec![2]);
        assert_eq!(groups(r[0].clone()).len(), 1);
    }
}
