//! sObject Collections (reference §4.2): create (`POST /composite/sobjects`), update
//! (`PATCH`), delete (`DELETE ?ids=`), and upsert by external id
//! (`PATCH /composite/sobjects/{Obj}/{ExtField}`). At most 200 records; one row result per
//! record, in request order. With `allOrNone=true` one bad row rolls back the call and every
//! other row reports `ALL_OR_NONE_OPERATION_ROLLED_BACK`.
//! https://developer.salesforce.com/docs/atlas.en-us.api_rest.meta/api_rest/resources_composite_sobjects_collections_upsert.htm

use std::collections::HashMap;

use axum::http::Method;
use serde_json::{Map, Value, json};

use super::super::errors::SfError;
use super::super::write::UpsertError;
use super::{CallCtx, Reply, TxnState, expect};

const MAX_RECORDS: usize = 200;

/// One row's outcome.
struct Row {
    id: Option<String>,
    created: Option<bool>,
    error: Option<SfError>,
    /// A create (or upsert) that fails or is rolled back reports no Id.
    creates: bool,
}

pub fn route(
    ts: &mut TxnState,
    _call: &CallCtx,
    method: &Method,
    segs: &[&str],
    params: &HashMap<String, String>,
    body: Option<&Value>,
) -> Reply {
    match segs {
        [] => expect(
            method,
            &[Method::POST, Method::PATCH, Method::DELETE],
            || match *method {
                Method::DELETE => delete(ts, params),
                _ => write(ts, method == Method::POST, body),
            },
        ),
        [object, field] => expect(method, &[Method::PATCH], || upsert(ts, object, field, body)),
        _ => Reply::error(&SfError::not_found()),
    }
}

/// `{"allOrNone":…,"records":[…]}` → (allOrNone, records), or the whole-call error.
fn parse(body: Option<&Value>) -> Result<(bool, Vec<Map<String, Value>>), SfError> {
    let obj = super::body_object(body)?;
    let all_or_none = obj
        .get("allOrNone")
        .and_then(Value::as_bool)
        .unwrap_or(false);
    let records = obj
        .get("records")
        .and_then(Value::as_array)
        .ok_or_else(|| SfError::json_parser("Missing required field: records"))?;
    if records.len() > MAX_RECORDS {
        return Err(SfError::new(
            400,
            "EXCEEDED_ID_LIMIT",
            "record limit reached. cannot submit more than 200 records into this call",
        ));
    }
    let rows = records
        .iter()
        .map(|r| match r {
            Value::Object(m) => Ok(m.clone()),
            _ => Err(SfError::json_parser(
                "Cannot deserialize instance of SObject from VALUE_STRING value",
            )),
        })
        .collect::<Result<_, _>>()?;
    Ok((all_or_none, rows))
}

fn record_type(r: &Map<String, Value>) -> Option<&str> {
    r.get("attributes")?.get("type")?.as_str()
}

fn write(ts: &mut TxnState, creating: bool, body: Option<&Value>) -> Reply {
    let (all_or_none, records) = match parse(body) {
        Ok(p) => p,
        Err(e) => return Reply::error(&e),
    };
    let rows = records
        .iter()
        .map(|r| {
            let Some(ty) = record_type(r) else {
                return fail(
                    None,
                    None,
                    SfError::new(400, "INVALID_TYPE", "Must send a concrete entity type.")
                        .with_fields(&[]),
                );
            };
            let mut fields = r.clone();
            fields.shift_remove("attributes");
            if creating {
                match ts.txn.create(ty, &fields) {
                    Ok(id) => ok(id, None),
                    Err(e) => fail(None, None, e),
                }
            } else {
                let Some(id) = fields
                    .shift_remove("Id")
                    .and_then(|v| v.as_str().map(str::to_string))
                else {
                    return fail(
                        None,
                        None,
                        SfError::new(
                            400,
                            "MISSING_ARGUMENT",
                            "Id not specified in an update call",
                        )
                        .with_fields(&[]),
                    );
                };
                match ts.txn.update(ty, &id, &fields) {
                    Ok(()) => ok(id, None),
                    Err(e) => fail(Some(id), None, row_error(e)),
                }
            }
        })
        .collect();
    finish(ts, all_or_none, creating, rows)
}

fn delete(ts: &mut TxnState, params: &HashMap<String, String>) -> Reply {
    let all_or_none = params
        .get("allOrNone")
        .is_some_and(|v| v.eq_ignore_ascii_case("true"));
    let ids: Vec<&str> = params
        .get("ids")
        .map(|s| s.split(',').filter(|s| !s.is_empty()).collect())
        .unwrap_or_default();
    if ids.len() > MAX_RECORDS {
        return Reply::error(&SfError::new(
            400,
            "EXCEEDED_ID_LIMIT",
            "record limit reached. cannot submit more than 200 records into this call",
        ));
    }
    let org = ts.txn.org;
    let rows = ids
        .iter()
        .map(|id| {
            let Some(meta) = super::super::ids::normalize(id).and_then(|id| org.object_for_id(&id))
            else {
                return fail(
                    Some(id.to_string()),
                    None,
                    SfError::malformed_id(format!("malformed id {id}")).with_fields(&[]),
                );
            };
            match ts.txn.delete(&meta.name, id) {
                Ok(()) => ok(id.to_string(), None),
                Err(e) => fail(Some(id.to_string()), None, row_error(e)),
            }
        })
        .collect();
    finish(ts, all_or_none, false, rows)
}

fn upsert(ts: &mut TxnState, object: &str, field: &str, body: Option<&Value>) -> Reply {
    let Some(meta) = ts.txn.org.object(object) else {
        return Reply::error(&SfError::not_found());
    };
    let Some(ext) = meta.field(field).filter(|f| f.external_id) else {
        return Reply::error(&SfError::not_found());
    };
    let (all_or_none, records) = match parse(body) {
        Ok(p) => p,
        Err(e) => return Reply::error(&e),
    };
    let rows = records
        .iter()
        .map(|r| {
            let mut fields = r.clone();
            fields.shift_remove("attributes");
            let key = match fields.shift_remove(&ext.name) {
                Some(Value::String(s)) if !s.is_empty() => s,
                Some(Value::Number(n)) => n.to_string(),
                _ => {
                    return fail(
                        None,
                        Some(false),
                        SfError::new(
                            400,
                            "MISSING_ARGUMENT",
                            format!("{} not specified", ext.name),
                        )
                        .with_fields(&[]),
                    );
                }
            };
            match ts.txn.upsert(&meta.name, &ext.name, &key, &fields, false) {
                Ok((id, created)) => ok(id, Some(created)),
                Err(UpsertError::Failed(e)) => fail(None, Some(false), row_error(e)),
                Err(UpsertError::MultipleMatches(ids)) => fail(
                    None,
                    Some(false),
                    SfError::new(
                        300,
                        "DUPLICATE_EXTERNAL_ID",
                        format!(
                            "{}: more than one record found for external id field: [{}]",
                            ext.name,
                            ids.join(", ")
                        ),
                    )
                    .with_fields(&[&ext.name]),
                ),
            }
        })
        .collect();
    finish(ts, all_or_none, true, rows)
}

fn ok(id: String, created: Option<bool>) -> Row {
    Row {
        id: Some(id),
        created,
        error: None,
        creates: false,
    }
}

fn fail(id: Option<String>, created: Option<bool>, e: SfError) -> Row {
    Row {
        id,
        created,
        error: Some(e),
        creates: false,
    }
}

/// Row errors always carry `fields`.
fn row_error(mut e: SfError) -> SfError {
    e.fields.get_or_insert_with(Vec::new);
    e
}

fn finish(ts: &mut TxnState, all_or_none: bool, creates: bool, mut rows: Vec<Row>) -> Reply {
    for r in &mut rows {
        r.creates = creates;
    }
    let rolled_back = all_or_none && rows.iter().any(|r| r.error.is_some());
    if rolled_back {
        ts.rollback = true;
    }
    let out: Vec<Value> = rows
        .into_iter()
        .map(|r| {
            let error = match (r.error, rolled_back) {
                (Some(e), _) => Some(e),
                (None, true) => Some(SfError::new(
                    400,
                    "ALL_OR_NONE_OPERATION_ROLLED_BACK",
                    "Record rolled back because not all records were valid and the request was using AllOrNone header",
                )),
                (None, false) => None,
            };
            let mut m = Map::new();
            match &error {
                // A rolled-back or failed create has no Id to report.
                Some(_) if r.creates || r.id.is_none() => {}
                _ => {
                    if let Some(id) = &r.id {
                        m.insert("id".into(), json!(id));
                    }
                }
            }
            m.insert("success".into(), json!(error.is_none()));
            m.insert(
                "errors".into(),
                Value::Array(error.iter().map(SfError::to_row_json).collect()),
            );
            if let Some(c) = r.created {
                m.insert("created".into(), json!(c && error.is_none()));
            }
            Value::Object(m)
        })
        .collect();
    Reply::json(200, Value::Array(out))
}
