//! `POST /composite` (reference §4.3): up to 25 subrequests run in order in one transaction,
//! later ones referring to earlier results with `@{referenceId.path}`. The answer is always
//! 200 with `compositeResponse[{body,httpHeaders,httpStatusCode,referenceId}]`. With
//! `allOrNone=true` the first failure rolls everything back and every other subrequest reports
//! `PROCESSING_HALTED`.
//! https://developer.salesforce.com/docs/atlas.en-us.api_rest.meta/api_rest/resources_composite_composite.htm

use std::collections::HashMap;

use axum::extract::Query;
use axum::http::{Method, Uri};
use serde_json::{Map, Value, json};

use super::super::errors::{SfError, error_array};
use super::{CallCtx, Reply, TxnState, dispatch};

const MAX_SUBREQUESTS: usize = 25;

const ROLLED_BACK: &str =
    "The transaction was rolled back since another operation in the same transaction failed.";

pub fn composite(
    ts: &mut TxnState,
    call: &CallCtx,
    _params: &HashMap<String, String>,
    body: Option<&Value>,
) -> Reply {
    let obj = match super::body_object(body) {
        Ok(o) => o,
        Err(e) => return Reply::error(&e),
    };
    let all_or_none = obj
        .get("allOrNone")
        .and_then(Value::as_bool)
        .unwrap_or(false);
    let Some(subs) = obj.get("compositeRequest").and_then(Value::as_array) else {
        return Reply::error(&SfError::json_parser(
            "Missing required field: compositeRequest",
        ));
    };
    if subs.len() > MAX_SUBREQUESTS {
        return Reply::error(&SfError::new(
            400,
            "LIMIT_EXCEEDED",
            format!("Composite request limited to {MAX_SUBREQUESTS} subrequests"),
        ));
    }
    // Results by referenceId, for `@{…}` references.
    let mut results: HashMap<String, Reply> = HashMap::new();
    let mut out: Vec<(String, Reply)> = Vec::new();
    let mut failed_at: Option<usize> = None;
    for (i, sub) in subs.iter().enumerate() {
        let reference = sub
            .get("referenceId")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string();
        if all_or_none && failed_at.is_some() {
            out.push((reference, halted(ROLLED_BACK)));
            continue;
        }
        let reply = run_one(ts, call, sub, &results);
        if !reply.is_success() && failed_at.is_none() {
            failed_at = Some(i);
        }
        results.insert(reference.clone(), reply.clone());
        out.push((reference, reply));
    }
    if let (true, Some(at)) = (all_or_none, failed_at) {
        ts.rollback = true;
        for (i, (_, reply)) in out.iter_mut().enumerate() {
            if i != at {
                *reply = halted(ROLLED_BACK);
            }
        }
    }
    let responses: Vec<Value> = out
        .into_iter()
        .map(|(reference, r)| {
            let headers: Map<String, Value> = r
                .headers
                .into_iter()
                .map(|(k, v)| (k, Value::String(v)))
                .collect();
            json!({
                "body": r.body,
                "httpHeaders": headers,
                "httpStatusCode": r.status,
                "referenceId": reference,
            })
        })
        .collect();
    Reply::json(200, json!({"compositeResponse": responses}))
}

fn halted(message: &str) -> Reply {
    Reply::json(
        400,
        error_array(&[SfError::new(400, "PROCESSING_HALTED", message)]),
    )
}

fn run_one(
    ts: &mut TxnState,
    call: &CallCtx,
    sub: &Value,
    results: &HashMap<String, Reply>,
) -> Reply {
    let method = sub
        .get("method")
        .and_then(Value::as_str)
        .and_then(|m| Method::from_bytes(m.to_ascii_uppercase().as_bytes()).ok());
    let url = sub.get("url").and_then(Value::as_str);
    let (Some(method), Some(url)) = (method, url) else {
        return Reply::error(&SfError::json_parser(
            "Missing required field: method or url",
        ));
    };
    let url = match resolve_str(url, results) {
        Ok(u) => u,
        Err(msg) => return halted(&msg),
    };
    let body = match sub
        .get("body")
        .map(|b| resolve_value(b, results))
        .transpose()
    {
        Ok(b) => b,
        Err(msg) => return halted(&msg),
    };
    let Ok(uri) = url.parse::<Uri>() else {
        return Reply::error(&SfError::not_found());
    };
    let params = Query::<HashMap<String, String>>::try_from_uri(&uri)
        .map(|q| q.0)
        .unwrap_or_default();
    let Some(rest) = uri.path().strip_prefix("/services/data/") else {
        return Reply::error(&SfError::not_found());
    };
    let segs: Vec<&str> = rest.split('/').filter(|s| !s.is_empty()).collect();
    let Some(version) = segs.first().and_then(|v| v.strip_prefix('v')) else {
        return Reply::error(&SfError::not_found());
    };
    let sub_call = CallCtx {
        version: version.to_string(),
        batch_size: call.batch_size,
    };
    dispatch(ts, &sub_call, &method, &segs[1..], &params, body.as_ref())
}

/// Replaces every `@{ref.path}` in `s`.
fn resolve_str(s: &str, results: &HashMap<String, Reply>) -> Result<String, String> {
    let mut out = String::new();
    let mut rest = s;
    while let Some(start) = rest.find("@{") {
        let Some(len) = rest[start..].find('}') else {
            break;
        };
        out.push_str(&rest[..start]);
        let expr = &rest[start + 2..start + len];
        out.push_str(&lookup(expr, results)?);
        rest = &rest[start + len + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

fn resolve_value(v: &Value, results: &HashMap<String, Reply>) -> Result<Value, String> {
    Ok(match v {
        Value::String(s) => Value::String(resolve_str(s, results)?),
        Value::Array(a) => Value::Array(
            a.iter()
                .map(|x| resolve_value(x, results))
                .collect::<Result<_, _>>()?,
        ),
        Value::Object(m) => Value::Object(
            m.iter()
                .map(|(k, x)| Ok((k.clone(), resolve_value(x, results)?)))
                .collect::<Result<_, String>>()?,
        ),
        other => other.clone(),
    })
}

/// `ref.id`, `ref.records[0].Id`: a path into an earlier successful result's body.
fn lookup(expr: &str, results: &HashMap<String, Reply>) -> Result<String, String> {
    let (reference, path) = expr.split_once('.').unwrap_or((expr, ""));
    let missing = || {
        format!(
            "Invalid reference specified. No value for {expr} found in {reference}. Provided referenceId ({reference}) failed or has not been executed yet."
        )
    };
    let reply = results
        .get(reference)
        .filter(|r| r.is_success())
        .ok_or_else(missing)?;
    let mut cur = reply.body.as_ref().ok_or_else(missing)?;
    for part in path.split('.').filter(|p| !p.is_empty()) {
        let (name, index) = match part.split_once('[') {
            Some((n, i)) => (n, i.trim_end_matches(']').parse::<usize>().ok()),
            None => (part, None),
        };
        cur = cur.get(name).ok_or_else(missing)?;
        if let Some(i) = index {
            cur = cur.get(i).ok_or_else(missing)?;
        }
    }
    match cur {
        Value::String(s) => Ok(s.clone()),
        Value::Null => Err(missing()),
        other => Ok(other.to_string()),
    }
}
