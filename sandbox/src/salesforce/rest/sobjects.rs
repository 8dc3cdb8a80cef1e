//! `/sobjects/...`: the global list, `describe`, and single-record create, read, update,
//! delete and upsert by external id (reference §4.1,
//! https://developer.salesforce.com/docs/atlas.en-us.api_rest.meta/api_rest/resources_sobject_upsert_patch.htm).

use std::collections::HashMap;

use axum::http::Method;
use serde_json::{Value, json};

use super::super::errors::SfError;
use super::super::ids;
use super::super::meta::ObjectMeta;
use super::super::write::UpsertError;
use super::{CallCtx, Reply, TxnState, body_object, describe, expect, record};

pub fn route(
    ts: &mut TxnState,
    call: &CallCtx,
    method: &Method,
    segs: &[&str],
    params: &HashMap<String, String>,
    body: Option<&Value>,
) -> Reply {
    let org = ts.txn.org;
    let [object, rest @ ..] = segs else {
        return expect(method, &[Method::GET], || describe::global(org));
    };
    let Some(meta) = org.object(object) else {
        return Reply::error(&SfError::not_found());
    };
    match rest {
        [] => expect(method, &[Method::GET, Method::POST], || match *method {
            Method::POST => create(ts, call, meta, body),
            _ => describe::basic(call, meta),
        }),
        ["describe"] => expect(method, &[Method::GET], || describe::describe(call, meta)),
        [id] => expect(
            method,
            &[Method::GET, Method::PATCH, Method::DELETE],
            || match *method {
                Method::GET => get(ts, call, meta, id, params),
                Method::PATCH => update(ts, meta, id, body),
                _ => delete(ts, meta, id),
            },
        ),
        [field, value] => expect(method, &[Method::GET, Method::PATCH], || match *method {
            Method::GET => get_by_external_id(ts, call, meta, field, value),
            _ => upsert(ts, call, meta, field, value, params, body),
        }),
        _ => Reply::error(&SfError::not_found()),
    }
}

fn create(ts: &mut TxnState, call: &CallCtx, meta: &ObjectMeta, body: Option<&Value>) -> Reply {
    let result = body_object(body).and_then(|fields| ts.txn.create(&meta.name, fields));
    match result {
        Ok(id) => {
            let mut reply = Reply::json(201, json!({"id": id, "success": true, "errors": []}));
            reply.headers.push((
                "Location".into(),
                record::url(&call.version, &meta.name, &id),
            ));
            reply
        }
        Err(e) => Reply::error(&e),
    }
}

fn get(
    ts: &TxnState,
    call: &CallCtx,
    meta: &ObjectMeta,
    id: &str,
    params: &HashMap<String, String>,
) -> Reply {
    // A deleted record answers 404 ENTITY_IS_DELETED on read.
    let rec = match ts.txn.live_record(meta, id) {
        Ok(r) => r,
        Err(e) if e.code == "ENTITY_IS_DELETED" => {
            return Reply::error(&SfError::new(404, e.code, e.message));
        }
        Err(e) => return Reply::error(&e),
    };
    let fields = match params.get("fields") {
        None => None,
        Some(list) => {
            let mut names = Vec::new();
            for name in list.split(',').map(str::trim).filter(|s| !s.is_empty()) {
                match meta.field(name) {
                    Some(f) => names.push(f.name.clone()),
                    None => {
                        return Reply::error(&SfError::new(
                            400,
                            "INVALID_FIELD",
                            format!("No such column '{name}' on sobject of type {}", meta.name),
                        ));
                    }
                }
            }
            Some(names)
        }
    };
    Reply::json(
        200,
        record::render(&call.version, meta, &rec, fields.as_deref()),
    )
}

fn get_by_external_id(
    ts: &TxnState,
    call: &CallCtx,
    meta: &ObjectMeta,
    field: &str,
    value: &str,
) -> Reply {
    let Some(ext) = meta.field(field).filter(|f| f.external_id) else {
        return Reply::error(&SfError::bad_external_id_field(field));
    };
    let found: Vec<_> = ts.txn.data.tables[&meta.name]
        .values()
        .filter(|r| !r.deleted)
        .filter(|r| {
            r.values
                .get(&ext.name)
                .and_then(Value::as_str)
                .is_some_and(|v| v.eq_ignore_ascii_case(value))
        })
        .collect();
    match found.as_slice() {
        [] => Reply::error(&SfError::not_found()),
        [one] => Reply::json(200, record::render(&call.version, meta, one, None)),
        many => multiple_choices(
            call,
            meta,
            many.iter().map(|r| r.id().to_string()).collect(),
        ),
    }
}

/// 300 with the URLs of the matching records (reference §4.1).
fn multiple_choices(call: &CallCtx, meta: &ObjectMeta, ids: Vec<String>) -> Reply {
    let urls: Vec<Value> = ids
        .iter()
        .map(|id| Value::String(record::url(&call.version, &meta.name, id)))
        .collect();
    Reply::json(300, Value::Array(urls))
}

/// The Id in a record URL, with the `Id` key of the body dropped (the URL names the record).
fn without_id(body: Option<&Value>) -> Result<serde_json::Map<String, Value>, SfError> {
    let mut fields = body_object(body)?.clone();
    fields.shift_remove("Id");
    Ok(fields)
}

fn update(ts: &mut TxnState, meta: &ObjectMeta, id: &str, body: Option<&Value>) -> Reply {
    if !ids::is_id_shaped(id) {
        return Reply::error(&SfError::bad_external_id_field(id));
    }
    match without_id(body).and_then(|f| ts.txn.update(&meta.name, id, &f)) {
        Ok(()) => Reply::no_content(),
        Err(e) => Reply::error(&e),
    }
}

fn delete(ts: &mut TxnState, meta: &ObjectMeta, id: &str) -> Reply {
    match ts.txn.delete(&meta.name, id) {
        Ok(()) => Reply::no_content(),
        Err(e) => Reply::error(&e),
    }
}

fn upsert(
    ts: &mut TxnState,
    call: &CallCtx,
    meta: &ObjectMeta,
    field: &str,
    value: &str,
    params: &HashMap<String, String>,
    body: Option<&Value>,
) -> Reply {
    let update_only = params
        .get("updateOnly")
        .is_some_and(|v| v.eq_ignore_ascii_case("true"));
    let fields = match body_object(body) {
        Ok(f) => f,
        Err(e) => return Reply::error(&e),
    };
    match ts.txn.upsert(&meta.name, field, value, fields, update_only) {
        Ok((id, created)) => Reply::json(
            if created { 201 } else { 200 },
            json!({"id": id, "success": true, "errors": [], "created": created}),
        ),
        Err(UpsertError::Failed(e)) => Reply::error(&e),
        Err(UpsertError::MultipleMatches(ids)) => multiple_choices(call, meta, ids),
    }
}
