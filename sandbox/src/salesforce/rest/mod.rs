//! The REST API under `/services/data/vNN.0/` (reference §4).
//!
//! [`entry`] does what every call shares, in the real org's order: version check, injected
//! faults, session check (401 `INVALID_SESSION_ID`), the daily allocation (403
//! `REQUEST_LIMIT_EXCEEDED`), then [`dispatch`] inside one transaction, and finally the
//! `Sforce-Limit-Info` header. [`dispatch`] is also what `/composite` calls for each
//! subrequest, so a subrequest behaves exactly like the same call made alone.

mod collections;
mod composite;
mod describe;
mod query;
mod record;
mod sobjects;

use std::collections::HashMap;

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use serde_json::Value;

use super::auth::{AccessTokens, TokenError};
use super::errors::{SfError, error_array};
use super::server::SfState;
use super::write::{Txn, WriteCtx};

pub use describe::versions;

/// What one call (or composite subrequest) answers.
#[derive(Debug, Clone)]
pub struct Reply {
    pub status: u16,
    pub body: Option<Value>,
    pub headers: Vec<(String, String)>,
}

impl Reply {
    pub fn json(status: u16, body: Value) -> Self {
        Reply {
            status,
            body: Some(body),
            headers: Vec::new(),
        }
    }

    pub fn no_content() -> Self {
        Reply {
            status: 204,
            body: None,
            headers: Vec::new(),
        }
    }

    pub fn error(e: &SfError) -> Self {
        Reply::json(e.status, error_array(std::slice::from_ref(e)))
    }

    pub fn is_success(&self) -> bool {
        self.status < 300
    }
}

/// What a call knows about itself beyond its path and body.
#[derive(Debug, Clone)]
pub struct CallCtx {
    /// `62.0`.
    pub version: String,
    /// `batchSize` from `Sforce-Query-Options`.
    pub batch_size: Option<usize>,
}

/// Whether `reply` fails the whole transaction (set by all-or-none handlers).
pub struct TxnState<'t, 'a> {
    pub txn: &'t mut Txn<'a>,
    pub rollback: bool,
}

/// A REST error response with the usage header when known.
pub fn error_response(e: &SfError, usage: Option<(u64, u64)>) -> Response {
    to_response(Reply::error(e), usage)
}

fn to_response(reply: Reply, usage: Option<(u64, u64)>) -> Response {
    let status = StatusCode::from_u16(reply.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let has_body = reply.body.is_some();
    let mut resp = match reply.body {
        Some(body) => (status, body.to_string()).into_response(),
        None => status.into_response(),
    };
    let headers = resp.headers_mut();
    if has_body {
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json;charset=UTF-8"),
        );
    }
    for (k, v) in reply.headers {
        if let (Ok(k), Ok(v)) = (HeaderName::try_from(k), HeaderValue::try_from(v)) {
            headers.insert(k, v);
        }
    }
    if let Some((used, max)) = usage
        && let Ok(v) = HeaderValue::try_from(format!("api-usage={used}/{max}"))
    {
        headers.insert("sforce-limit-info", v);
    }
    resp
}

/// `vNN.N` within the configured range → `NN.N`.
fn parse_version(seg: &str, state: &SfState) -> Option<String> {
    let n: f64 = seg.strip_prefix('v')?.parse().ok()?;
    let ok = n >= state.config.min_api_version
        && n <= state.config.max_api_version
        && seg.ends_with(".0");
    ok.then(|| seg[1..].to_string())
}

/// The fault class of a path (for per-endpoint latency and error rates).
fn endpoint_class(segs: &[&str]) -> &'static str {
    match segs.first().copied() {
        Some("sobjects") if segs.last() == Some(&"describe") || segs.len() == 1 => "describe",
        Some("sobjects") => "sobjects",
        Some("composite") => "composite",
        Some("query") | Some("queryAll") => "query",
        Some("limits") => "limits",
        _ => "other",
    }
}

fn header_option(headers: &HeaderMap, name: &str, key: &str) -> Option<String> {
    let raw = headers.get(name)?.to_str().ok()?;
    raw.split(',').find_map(|kv| {
        let (k, v) = kv.split_once('=')?;
        k.trim()
            .eq_ignore_ascii_case(key)
            .then(|| v.trim().to_string())
    })
}

/// Every `/services/data/{*rest}` call.
pub async fn entry(
    State(state): State<SfState>,
    Path(rest): Path<String>,
    Query(params): Query<HashMap<String, String>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let segs: Vec<&str> = rest.split('/').filter(|s| !s.is_empty()).collect();
    let Some(version) = segs.first().and_then(|v| parse_version(v, &state)) else {
        return error_response(&SfError::not_found(), None);
    };
    let segs = &segs[1..];
    if let Some(resp) = state.fault_response(endpoint_class(segs)).await {
        return resp;
    }
    let token = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            v.strip_prefix("Bearer ")
                .or_else(|| v.strip_prefix("OAuth "))
        })
        .map(str::trim);
    let session = match token.map(|t| state.tokens.validate(t)) {
        Some(Ok(s)) => s,
        Some(Err(TokenError::Expired | TokenError::Invalid)) | None => {
            return error_response(&SfError::invalid_session(), Some(state.org.api_usage()));
        }
    };
    let usage = match state.org.count_api_call() {
        Ok(u) => u,
        Err(u) => return error_response(&SfError::request_limit_exceeded(), Some(u)),
    };
    if looks_like_format_suffix(segs, uri.path()) {
        return error_response(&SfError::not_found(), Some(usage));
    }
    let body = if body.is_empty() {
        None
    } else {
        match serde_json::from_slice::<Value>(&body) {
            Ok(v) => Some(v),
            Err(e) => {
                let err = SfError::json_parser(format!("Unexpected character: {e}"));
                return error_response(&err, Some(usage));
            }
        }
    };
    let client = header_option(&headers, "sforce-call-options", "client");
    let api = format!("com/salesforce/api/rest/{version}");
    let wctx = WriteCtx {
        user_id: session.user_id.clone(),
        change_origin: match client {
            Some(c) => format!("{api};client={c}"),
            None => api,
        },
        now: state.org.clock.now(),
    };
    let call = CallCtx {
        version,
        batch_size: header_option(&headers, "sforce-query-options", "batchSize")
            .and_then(|b| b.parse().ok()),
    };
    let org = state.org.clone();
    if method == Method::GET {
        // Reads change nothing: skip the copy a write transaction works on.
        let reply = org.read_in_place(|data| {
            let mut txn = Txn::new(&org, data, &wctx);
            let mut ts = TxnState {
                txn: &mut txn,
                rollback: false,
            };
            dispatch(&mut ts, &call, &method, segs, &params, body.as_ref())
        });
        return to_response(reply, Some(usage));
    }
    let reply = org.transact(|data| {
        let mut txn = Txn::new(&org, data, &wctx);
        let mut ts = TxnState {
            txn: &mut txn,
            rollback: false,
        };
        let reply = dispatch(&mut ts, &call, &method, segs, &params, body.as_ref());
        let commit = !ts.rollback && reply.status < 400;
        (reply, txn.finish(commit))
    });
    to_response(reply, Some(usage))
}

/// The real org reads a trailing `.xyz` of a URL as a response format, so an external id
/// value like `a@b.inc` in `/sobjects/{Obj}/{Field}/{value}` is not found unless the dot is
/// percent-encoded (reference §4.1). Checked on the raw path, before decoding.
fn looks_like_format_suffix(segs: &[&str], raw_path: &str) -> bool {
    if !matches!(segs, ["sobjects", _, _, _]) {
        return false;
    }
    let last = raw_path.rsplit('/').next().unwrap_or("");
    last.rsplit_once('.')
        .is_some_and(|(_, ext)| !ext.is_empty() && ext.bytes().all(|b| b.is_ascii_alphabetic()))
}

/// Routes one call (top-level or composite subrequest) inside the current transaction.
pub fn dispatch(
    ts: &mut TxnState,
    call: &CallCtx,
    method: &Method,
    segs: &[&str],
    params: &HashMap<String, String>,
    body: Option<&Value>,
) -> Reply {
    match segs {
        [] => describe::resources(call),
        ["limits"] => expect(method, &[Method::GET], || describe::limits(ts.txn.org)),
        ["sobjects", rest @ ..] => sobjects::route(ts, call, method, rest, params, body),
        ["query", rest @ ..] => query::route(ts, call, method, rest, params, false),
        ["queryAll", rest @ ..] => query::route(ts, call, method, rest, params, true),
        ["composite"] => expect(method, &[Method::POST], || {
            composite::composite(ts, call, params, body)
        }),
        ["composite", "sobjects", rest @ ..] => {
            collections::route(ts, call, method, rest, params, body)
        }
        _ => Reply::error(&SfError::not_found()),
    }
}

/// Runs `f` if `method` is one of `allowed`, else the real 405 body.
pub fn expect(method: &Method, allowed: &[Method], f: impl FnOnce() -> Reply) -> Reply {
    if allowed.contains(method) {
        return f();
    }
    let names: Vec<&str> = allowed.iter().map(Method::as_str).collect();
    Reply::error(&SfError::new(
        405,
        "METHOD_NOT_ALLOWED",
        format!(
            "HTTP Method '{}' not allowed. Allowed are {}",
            method.as_str(),
            names.join(",")
        ),
    ))
}

/// The request body as a JSON object, or the parser's complaint.
pub fn body_object(body: Option<&Value>) -> Result<&serde_json::Map<String, Value>, SfError> {
    match body {
        Some(Value::Object(m)) => Ok(m),
        Some(other) => Err(SfError::json_parser(format!(
            "Cannot deserialize instance of SObject from {} value",
            match other {
                Value::Array(_) => "START_ARRAY",
                _ => "VALUE_STRING",
            }
        ))),
        None => Err(SfError::json_parser(
            "No content to map due to end-of-input",
        )),
    }
}
