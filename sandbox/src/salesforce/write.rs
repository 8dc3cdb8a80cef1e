//! Record writes inside one transaction: create, update, delete, upsert by external id. Each
//! operation validates first and mutates only when valid, so a failed row leaves the
//! transaction's copy untouched (what `allOrNone=false` needs), and records the
//! [`RecordChange`] that Change Data Capture will see if the transaction commits.

use chrono::{DateTime, Utc};
use serde_json::{Map, Value};

use super::changes::{ChangeType, RecordChange};
use super::errors::SfError;
use super::ids;
use super::meta::{FieldType, ObjectMeta};
use super::store::{Data, Org, RacedCreate, Record, Table, TxnOutcome};
use super::validate::{check_fields, fmt_datetime};

/// Who writes, through what, and when.
#[derive(Debug, Clone)]
pub struct WriteCtx {
    pub user_id: String,
    /// `com/salesforce/api/rest/<ver>;client=<id>`, the API part alone, or empty (UI).
    pub change_origin: String,
    pub now: DateTime<Utc>,
}

/// Why an upsert did not happen.
#[derive(Debug, Clone, PartialEq)]
pub enum UpsertError {
    Failed(SfError),
    /// Several records carry the external id value (their Ids).
    MultipleMatches(Vec<String>),
}

impl From<SfError> for UpsertError {
    fn from(e: SfError) -> Self {
        UpsertError::Failed(e)
    }
}

pub struct Txn<'a> {
    pub org: &'a Org,
    pub data: &'a mut Data,
    ctx: &'a WriteCtx,
    changes: Vec<RecordChange>,
    raced: Vec<RacedCreate>,
}

impl<'a> Txn<'a> {
    pub fn new(org: &'a Org, data: &'a mut Data, ctx: &'a WriteCtx) -> Self {
        Txn {
            org,
            data,
            ctx,
            changes: Vec::new(),
            raced: Vec::new(),
        }
    }

    /// The outcome to hand to [`Org::transact`]: commit or roll back.
    pub fn finish(self, commit: bool) -> TxnOutcome {
        TxnOutcome {
            commit,
            changes: self.changes,
            raced: self.raced,
            timestamp: self.ctx.now,
            user_id: self.ctx.user_id.clone(),
            change_origin: self.ctx.change_origin.clone(),
        }
    }

    fn meta(&self, object: &str) -> Result<&'a ObjectMeta, SfError> {
        self.org.object(object).ok_or_else(SfError::not_found)
    }

    fn lock_fault(&self) -> Result<(), SfError> {
        match self.org.faults.take_lock_failure() {
            true => Err(SfError::unable_to_lock_row()),
            false => Ok(()),
        }
    }

    /// Creates a record; returns its Id.
    pub fn create(&mut self, object: &str, input: &Map<String, Value>) -> Result<String, SfError> {
        let meta = self.meta(object)?;
        self.lock_fault()?;
        let fields = check_fields(self.org, self.data, meta, input, true)?;
        let mut values = Map::new();
        for f in meta.fields.iter().filter(|f| f.ty != FieldType::Address) {
            values.insert(f.name.clone(), Value::Null);
        }
        for (k, v) in &fields {
            values.insert(k.clone(), v.clone());
        }
        let id = ids::make_id(&meta.key_prefix, self.data.next_id);
        let now = Value::String(fmt_datetime(self.ctx.now));
        let user = Value::String(self.ctx.user_id.clone());
        values.insert("Id".into(), Value::String(id.clone()));
        if values.get("OwnerId").is_none_or(Value::is_null) {
            values.insert("OwnerId".into(), user.clone());
        }
        for k in ["CreatedDate", "LastModifiedDate", "SystemModstamp"] {
            values.insert(k.into(), now.clone());
        }
        values.insert("CreatedById".into(), user.clone());
        values.insert("LastModifiedById".into(), user);
        values.insert("IsDeleted".into(), Value::Bool(false));
        if meta.name == "Case" {
            values.insert(
                "CaseNumber".into(),
                Value::String(format!("{:08}", self.data.next_case_number)),
            );
        }
        derive_fields(meta, &mut values);
        self.check_record(meta, &values, &id)?;
        self.data.next_id += 1;
        if meta.name == "Case" {
            self.data.next_case_number += 1;
        }
        let changed = values
            .iter()
            .filter(|(k, v)| {
                !v.is_null() && !matches!(k.as_str(), "Id" | "IsDeleted" | "SystemModstamp")
            })
            .map(|(k, _)| k.clone())
            .collect();
        self.changes.push(RecordChange {
            entity: meta.name.clone(),
            record_id: id.clone(),
            change_type: ChangeType::Create,
            changed_fields: changed,
            nulled_fields: Vec::new(),
            values: values.clone(),
        });
        self.table(&meta.name).insert(
            id.clone(),
            Record {
                values,
                deleted: false,
            },
        );
        Ok(id)
    }

    /// Updates the live record `id` of `object`.
    pub fn update(
        &mut self,
        object: &str,
        id: &str,
        input: &Map<String, Value>,
    ) -> Result<(), SfError> {
        let meta = self.meta(object)?;
        let current = self.live_record(meta, id)?;
        self.lock_fault()?;
        let fields = check_fields(self.org, self.data, meta, input, false)?;
        let mut values = current.values.clone();
        let mut changed = Vec::new();
        let mut nulled = Vec::new();
        for (k, v) in &fields {
            if values.get(k) != Some(v) {
                changed.push(k.clone());
                if v.is_null() {
                    nulled.push(k.clone());
                }
            }
            values.insert(k.clone(), v.clone());
        }
        let before = values.clone();
        derive_fields(meta, &mut values);
        for (k, v) in &values {
            if before.get(k) != Some(v) && !changed.contains(k) {
                changed.push(k.clone());
            }
        }
        self.check_record(meta, &values, current.id())?;
        let now = Value::String(fmt_datetime(self.ctx.now));
        values.insert("LastModifiedDate".into(), now.clone());
        values.insert("SystemModstamp".into(), now);
        values.insert(
            "LastModifiedById".into(),
            Value::String(self.ctx.user_id.clone()),
        );
        // Every update stamps LastModifiedDate, and real update events list it as changed.
        changed.push("LastModifiedDate".into());
        // Keep schema order in the change, as the change event's bitmap does.
        let order = |name: &String| meta.fields.iter().position(|f| &f.name == name);
        changed.sort_by_key(order);
        nulled.sort_by_key(order);
        let record_id = current.id().to_string();
        self.changes.push(RecordChange {
            entity: meta.name.clone(),
            record_id: record_id.clone(),
            change_type: ChangeType::Update,
            changed_fields: changed,
            nulled_fields: nulled,
            values: values.clone(),
        });
        self.table(&meta.name).insert(
            record_id,
            Record {
                values,
                deleted: false,
            },
        );
        Ok(())
    }

    /// Moves the live record `id` to the recycle bin.
    pub fn delete(&mut self, object: &str, id: &str) -> Result<(), SfError> {
        let meta = self.meta(object)?;
        let current = self.live_record(meta, id)?;
        self.lock_fault()?;
        let mut values = current.values.clone();
        values.insert("IsDeleted".into(), Value::Bool(true));
        let now = Value::String(fmt_datetime(self.ctx.now));
        values.insert("LastModifiedDate".into(), now.clone());
        values.insert("SystemModstamp".into(), now);
        values.insert(
            "LastModifiedById".into(),
            Value::String(self.ctx.user_id.clone()),
        );
        let record_id = current.id().to_string();
        self.changes.push(RecordChange {
            entity: meta.name.clone(),
            record_id: record_id.clone(),
            change_type: ChangeType::Delete,
            changed_fields: Vec::new(),
            nulled_fields: Vec::new(),
            values: values.clone(),
        });
        self.table(&meta.name).insert(
            record_id,
            Record {
                values,
                deleted: true,
            },
        );
        Ok(())
    }

    /// Upsert by external id: update the one live record whose `field` equals `value`, or
    /// create one (with `field` set) unless `update_only`. Returns `(id, created)`.
    pub fn upsert(
        &mut self,
        object: &str,
        field: &str,
        value: &str,
        input: &Map<String, Value>,
        update_only: bool,
    ) -> Result<(String, bool), UpsertError> {
        let meta = self.meta(object)?;
        let ext = meta
            .field(field)
            .filter(|f| f.external_id || f.name == "Id")
            .ok_or_else(SfError::not_found)?;
        let matches: Vec<String> = if ext.name == "Id" {
            ids::normalize(value)
                .filter(|id| {
                    self.data.tables[&meta.name]
                        .get(id)
                        .is_some_and(|r| !r.deleted)
                })
                .into_iter()
                .collect()
        } else {
            self.data.tables[&meta.name]
                .values()
                .filter(|r| !r.deleted)
                .filter(|r| {
                    r.values
                        .get(&ext.name)
                        .and_then(Value::as_str)
                        .is_some_and(|v| v.eq_ignore_ascii_case(value))
                })
                .map(|r| r.id().to_string())
                .collect()
        };
        match matches.as_slice() {
            [] if update_only || ext.name == "Id" => Err(SfError::not_found().into()),
            [] => {
                let mut fields = input.clone();
                fields.insert(ext.name.clone(), Value::String(value.to_string()));
                let id = self.create(&meta.name, &fields)?;
                if self.org.faults.take_upsert_race() {
                    return Err(self.lose_race(&meta.name, &ext.name, id).into());
                }
                Ok((id, true))
            }
            [one] => {
                let id = one.clone();
                self.update(&meta.name, &id, input)?;
                Ok((id, false))
            }
            _ => Err(UpsertError::MultipleMatches(matches)),
        }
    }

    /// Turns the record this transaction just created into one a concurrent request with the
    /// same external id committed first, and answers what the loser of that race gets
    /// (reference §4.1: `DUPLICATE_VALUE`, fixed by retrying, i.e. upserting again).
    fn lose_race(&mut self, object: &str, field: &str, id: String) -> SfError {
        let change = self.changes.pop().expect("create recorded its change");
        let record = self
            .table(object)
            .remove(&id)
            .expect("create inserted the record");
        self.raced.push(RacedCreate {
            object: object.to_string(),
            record,
            change,
        });
        SfError::new(
            400,
            "DUPLICATE_VALUE",
            format!("duplicate value found: {field} duplicates value on record with id: {id}"),
        )
        .with_fields(&[])
    }

    /// The record `id` of `meta` if it exists and is not deleted.
    pub fn live_record(&self, meta: &ObjectMeta, id: &str) -> Result<Record, SfError> {
        let id18 = ids::normalize(id).ok_or_else(|| SfError::bad_external_id_field(id))?;
        match self.data.tables[&meta.name].get(&id18) {
            None => Err(SfError::not_found()),
            Some(r) if r.deleted => Err(SfError::entity_is_deleted()),
            Some(r) => Ok(r.clone()),
        }
    }

    fn table(&mut self, object: &str) -> &mut Table {
        self.data.tables.entry(object.to_string()).or_default()
    }

    /// Rules over the whole record: required fields, unique fields.
    fn check_record(
        &self,
        meta: &ObjectMeta,
        values: &Map<String, Value>,
        id: &str,
    ) -> Result<(), SfError> {
        let missing: Vec<&str> = meta
            .fields
            .iter()
            .filter(|f| f.required && values.get(&f.name).is_none_or(Value::is_null))
            .map(|f| f.name.as_str())
            .collect();
        if !missing.is_empty() {
            return Err(SfError::new(
                400,
                "REQUIRED_FIELD_MISSING",
                format!("Required fields are missing: [{}]", missing.join(", ")),
            )
            .with_fields(&missing));
        }
        for f in meta.fields.iter().filter(|f| f.unique) {
            let Some(v) = values.get(&f.name).and_then(Value::as_str) else {
                continue;
            };
            let dup = self.data.tables[&meta.name].values().find(|r| {
                !r.deleted
                    && r.id() != id
                    && r.values
                        .get(&f.name)
                        .and_then(Value::as_str)
                        .is_some_and(|o| o.eq_ignore_ascii_case(v))
            });
            if let Some(dup) = dup {
                return Err(SfError::new(
                    400,
                    "DUPLICATE_VALUE",
                    format!(
                        "duplicate value found: {} duplicates value on record with id: {}",
                        f.name,
                        dup.id()
                    ),
                )
                .with_fields(&[]));
            }
        }
        Ok(())
    }
}

/// Fields the org computes from others (`Contact.Name`).
fn derive_fields(meta: &ObjectMeta, values: &mut Map<String, Value>) {
    if meta.name == "Contact" {
        let part = |k: &str| {
            values
                .get(k)
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_string()
        };
        let full = format!("{} {}", part("FirstName"), part("LastName"))
            .trim()
            .to_string();
        values.insert("Name".into(), Value::String(full));
    }
}
