//! `GET /query?q=` and `/queryAll?q=` (reference §4.4): runs the SOQL subset of `soql.rs`
//! over the transaction's records and pages the result. Batches default to 2,000 records;
//! `Sforce-Query-Options: batchSize=N` asks for N (the org clamps to 200–2,000). The rest of a
//! result waits under a cursor id, fetched with `GET /query/<cursor>-<offset>`
//! (`nextRecordsUrl`).
//! https://developer.salesforce.com/docs/atlas.en-us.api_rest.meta/api_rest/dome_query.htm

use std::cmp::Ordering;
use std::collections::HashMap;

use axum::http::Method;
use serde_json::{Value, json};

use super::super::errors::SfError;
use super::super::ids;
use super::super::meta::{FieldType, ObjectMeta};
use super::super::soql::{self, Expr, Lit, Op};
use super::super::store::{Cursor, Org, Record, lock};
use super::super::validate::{parse_date, parse_datetime};
use super::{CallCtx, Reply, TxnState, expect, record};

const DEFAULT_BATCH: usize = 2000;

pub fn route(
    ts: &mut TxnState,
    call: &CallCtx,
    method: &Method,
    segs: &[&str],
    params: &HashMap<String, String>,
    all: bool,
) -> Reply {
    expect(method, &[Method::GET], || match segs {
        [] => match params.get("q") {
            Some(q) => run(ts, call, q, all),
            None => Reply::error(&SfError::malformed_query(
                "A query string has to be specified",
            )),
        },
        [locator] => next_page(ts.txn.org, call, locator),
        _ => Reply::error(&SfError::not_found()),
    })
}

fn malformed(q: &str, at: usize, msg: &str) -> Reply {
    Reply::error(&SfError::malformed_query(&soql::error_message(q, at, msg)))
}

fn run(ts: &TxnState, call: &CallCtx, q: &str, all: bool) -> Reply {
    let query = match soql::parse(q) {
        Ok(query) => query,
        Err(e) => return malformed(q, e.at, &e.message),
    };
    let org = ts.txn.org;
    let Some(meta) = org.object(&query.object.name) else {
        let msg = format!(
            "sObject type '{}' is not supported. If you are attempting to use a custom object, be sure to append the '__c' after the entity name. Please reference your WSDL or the describe call for the appropriate names.",
            query.object.name
        );
        return Reply::error(&SfError::new(
            400,
            "INVALID_TYPE",
            soql::error_message(q, query.object.at, &msg),
        ));
    };
    // Every field named anywhere must exist.
    let mut named = query.fields.clone();
    named.extend(query.order.iter().map(|o| o.field.clone()));
    if let Some(f) = &query.filter {
        collect_fields(f, &mut named);
    }
    for f in &named {
        if meta.field(&f.name).is_none() {
            let msg = format!(
                "No such column '{}' on entity '{}'. If you are attempting to use a custom field, be sure to append the '__c' after the custom field name. Please reference your WSDL or the describe call for the appropriate names.",
                f.name, meta.name
            );
            return Reply::error(&SfError::new(
                400,
                "INVALID_FIELD",
                soql::error_message(q, f.at, &msg),
            ));
        }
    }
    let mut rows: Vec<&Record> = ts.txn.data.tables[&meta.name]
        .values()
        .filter(|r| all || !r.deleted)
        .filter(|r| query.filter.as_ref().is_none_or(|f| eval(meta, r, f)))
        .collect();
    if !query.order.is_empty() {
        rows.sort_by(|a, b| {
            for o in &query.order {
                let name = &meta.field(&o.field.name).expect("checked").name;
                let (va, vb) = (value_of(r_val(a, name)), value_of(r_val(b, name)));
                let nulls_first = o.nulls_first.unwrap_or(!o.descending);
                let ord = match (va.is_none(), vb.is_none()) {
                    (true, true) => Ordering::Equal,
                    (true, false) => {
                        if nulls_first {
                            Ordering::Less
                        } else {
                            Ordering::Greater
                        }
                    }
                    (false, true) => {
                        if nulls_first {
                            Ordering::Greater
                        } else {
                            Ordering::Less
                        }
                    }
                    _ => {
                        let c = compare(meta, name, &va.expect("some"), &vb.expect("some"));
                        if o.descending { c.reverse() } else { c }
                    }
                };
                if ord != Ordering::Equal {
                    return ord;
                }
            }
            Ordering::Equal
        });
    }
    if let Some(limit) = query.limit {
        rows.truncate(limit);
    }
    let fields: Vec<String> = query
        .fields
        .iter()
        .map(|f| meta.field(&f.name).expect("checked").name.clone())
        .collect();
    let records: Vec<Value> = rows
        .iter()
        .map(|r| record::render(&call.version, meta, r, Some(&fields)))
        .collect();
    let batch = call
        .batch_size
        .map_or(DEFAULT_BATCH, |b| b.clamp(200, 2000));
    page(org, call, Cursor { records, batch }, None, 0)
}

/// One page of `cursor` from `offset`; stores the cursor when more remain.
fn page(org: &Org, call: &CallCtx, cursor: Cursor, id: Option<String>, offset: usize) -> Reply {
    let total = cursor.records.len();
    let end = (offset + cursor.batch).min(total);
    let records = cursor.records[offset.min(total)..end].to_vec();
    let mut body = serde_json::Map::new();
    body.insert("totalSize".into(), json!(total));
    body.insert("done".into(), json!(end >= total));
    if end < total {
        let id = id.unwrap_or_else(|| lock(&org.cursors).open(cursor.clone()));
        body.insert(
            "nextRecordsUrl".into(),
            json!(format!("/services/data/v{}/query/{id}-{end}", call.version)),
        );
    }
    body.insert("records".into(), Value::Array(records));
    Reply::json(200, Value::Object(body))
}

fn next_page(org: &Org, call: &CallCtx, locator: &str) -> Reply {
    let parsed = locator
        .rsplit_once('-')
        .and_then(|(id, off)| Some((id.to_string(), off.parse::<usize>().ok()?)));
    let cursor = parsed
        .as_ref()
        .and_then(|(id, _)| lock(&org.cursors).get(id).cloned());
    match (parsed, cursor) {
        (Some((id, offset)), Some(cursor)) => page(org, call, cursor, Some(id), offset),
        _ => Reply::error(&SfError::new(
            400,
            "INVALID_QUERY_LOCATOR",
            "invalid query locator",
        )),
    }
}

fn collect_fields(e: &Expr, out: &mut Vec<soql::FieldRef>) {
    match e {
        Expr::And(v) | Expr::Or(v) => v.iter().for_each(|x| collect_fields(x, out)),
        Expr::Not(x) => collect_fields(x, out),
        Expr::Cmp(f, _, _) | Expr::In(f, _, _) => out.push(f.clone()),
    }
}

fn r_val<'r>(r: &'r Record, name: &str) -> &'r Value {
    r.values.get(name).unwrap_or(&Value::Null)
}

fn value_of(v: &Value) -> Option<Value> {
    (!v.is_null()).then(|| v.clone())
}

/// Orders two non-null values of field `name` by its type.
fn compare(meta: &ObjectMeta, name: &str, a: &Value, b: &Value) -> Ordering {
    let ty = meta.field(name).map(|f| f.ty.clone());
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => x
            .as_f64()
            .partial_cmp(&y.as_f64())
            .unwrap_or(Ordering::Equal),
        (Value::Bool(x), Value::Bool(y)) => x.cmp(y),
        (Value::String(x), Value::String(y)) if ty == Some(FieldType::DateTime) => {
            parse_datetime(x).cmp(&parse_datetime(y))
        }
        (Value::String(x), Value::String(y)) => x.to_lowercase().cmp(&y.to_lowercase()),
        _ => Ordering::Equal,
    }
}

/// Compares a record value with a literal; `None` when they cannot be compared.
fn compare_lit(v: &Value, lit: &Lit) -> Option<Ordering> {
    match (v, lit) {
        (Value::String(s), Lit::Str(l)) => Some(s.to_lowercase().cmp(&l.to_lowercase())),
        (Value::Number(n), Lit::Num(l)) => n.as_f64()?.partial_cmp(l),
        (Value::Bool(b), Lit::Bool(l)) => Some(b.cmp(l)),
        (Value::String(s), Lit::Date(d)) => Some(parse_date(s)?.cmp(d)),
        (Value::String(s), Lit::DateTime(t)) => Some(parse_datetime(s)?.cmp(t)),
        _ => None,
    }
}

fn eval(meta: &ObjectMeta, r: &Record, e: &Expr) -> bool {
    match e {
        Expr::And(v) => v.iter().all(|x| eval(meta, r, x)),
        Expr::Or(v) => v.iter().any(|x| eval(meta, r, x)),
        Expr::Not(x) => !eval(meta, r, x),
        Expr::Cmp(f, op, lit) => {
            let v = r_val(r, &meta.field(&f.name).expect("checked").name);
            if *lit == Lit::Null {
                return match op {
                    Op::Eq => v.is_null(),
                    Op::Ne => !v.is_null(),
                    _ => false,
                };
            }
            if v.is_null() {
                return *op == Op::Ne;
            }
            let id_like = matches!(
                meta.field(&f.name).map(|f| &f.ty),
                Some(FieldType::Id | FieldType::Reference { .. })
            );
            let ord = match (id_like, v, lit) {
                // Id comparisons accept the 15-character form.
                (true, Value::String(s), Lit::Str(l)) => {
                    Some(s.as_str().cmp(ids::normalize(l).as_deref().unwrap_or(l)))
                }
                _ => compare_lit(v, lit),
            };
            match (op, ord) {
                (Op::Ne, None) => true,
                (_, None) => false,
                (Op::Eq, Some(o)) => o == Ordering::Equal,
                (Op::Ne, Some(o)) => o != Ordering::Equal,
                (Op::Lt, Some(o)) => o == Ordering::Less,
                (Op::Le, Some(o)) => o != Ordering::Greater,
                (Op::Gt, Some(o)) => o == Ordering::Greater,
                (Op::Ge, Some(o)) => o != Ordering::Less,
            }
        }
        Expr::In(f, lits, negated) => {
            let hit = lits
                .iter()
                .any(|l| eval(meta, r, &Expr::Cmp(f.clone(), Op::Eq, l.clone())));
            hit != *negated
        }
    }
}
