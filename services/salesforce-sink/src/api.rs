//! The calls the sink makes — SOQL reads, Collections upserts, updates and deletes — each
//! retried as a whole while Salesforce is unavailable (503, 5xx, timeouts: backoff with jitter
//! within the configured budget) and held, not failed, while the org's allocation is spent
//! (`REQUEST_LIMIT_EXCEEDED`: the [`Pauser`] stops consumption, then the same call is made
//! again — so nothing is dropped however long the pause).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use futures::future::BoxFuture;
use reqwest::Method;
use serde_json::{Map, Value, json};
use sfjira_core::retry::RetryPolicy;

use crate::client::{ApiError, SalesforceClient, SfError};
use crate::events::{ConsumptionPaused, ConsumptionResumed, RetryingRows};
use crate::rows::{RecordKey, Row, RowKind};

/// Stops consumption for a while (the runtime pauses its Kafka partitions and keeps polling so
/// the group membership survives).
pub trait Pauser: Send + Sync {
    fn pause(&self, for_: Duration) -> BoxFuture<'_, ()>;
}

/// A pauser that only sleeps (tools, benches).
pub struct SleepPauser;

impl Pauser for SleepPauser {
    fn pause(&self, for_: Duration) -> BoxFuture<'_, ()> {
        Box::pin(tokio::time::sleep(for_))
    }
}

/// One call to make: what it is (a fixed operation name for metrics), where, and what it
/// carries.
pub struct Request<'a> {
    pub operation: &'a str,
    pub method: Method,
    pub path: &'a str,
    pub query: &'a [(&'a str, String)],
    pub body: Option<&'a Value>,
    /// Rows in a Collections call (0 for others).
    pub records: usize,
}

impl<'a> Request<'a> {
    /// A SOQL read (`query`, or a `query/<locator>` page).
    fn get(path: &'a str, query: &'a [(&'a str, String)]) -> Self {
        Request {
            operation: "query",
            method: Method::GET,
            path,
            query,
            body: None,
            records: 0,
        }
    }
}

/// Why a call gave up.
#[derive(Debug)]
pub enum CallFailure {
    /// Salesforce refused the request itself (4xx): the rows in it fail with these errors.
    Rejected(Vec<SfError>),
    /// Still unavailable when the retry budget ran out.
    Exhausted { error: ApiError, attempts: u32 },
    /// The login does not work: stop the batch (nothing committed) rather than fail rows.
    Login(String),
}

/// One row's answer in a Collections response.
#[derive(Debug, Clone)]
pub enum RowResult {
    Ok { id: String, created: bool },
    Err(SfError),
}

pub struct Api {
    pub client: Arc<SalesforceClient>,
    pub retry: RetryPolicy,
    pub limit_pause: Duration,
    /// Calls of one batch in flight at once.
    pub concurrency: usize,
}

impl Api {
    /// A call, retried while transient and held while the allocation is spent.
    pub async fn call(&self, pauser: &dyn Pauser, req: Request<'_>) -> Result<Value, CallFailure> {
        let Request {
            operation,
            method,
            path,
            query,
            body,
            records,
        } = req;
        let mut backoff = self.retry.backoff();
        let mut paused = false;
        loop {
            let result = self
                .client
                .call(operation, method.clone(), path, query, body, records)
                .await;
            if paused && !matches!(result, Err(ApiError::LimitExceeded { .. })) {
                paused = false;
                ConsumptionResumed.emit();
            }
            match result {
                Ok((_, v)) => return Ok(v),
                Err(ApiError::LimitExceeded { .. }) => {
                    if !paused {
                        ConsumptionPaused {
                            pause: self.limit_pause,
                        }
                        .emit();
                        paused = true;
                    }
                    pauser.pause(self.limit_pause).await;
                }
                Err(e @ ApiError::Unavailable { .. }) => match backoff.next_delay(None) {
                    Some(delay) => {
                        RetryingRows {
                            reason: "unavailable",
                            rows: records.max(1),
                            delay,
                        }
                        .emit();
                        tokio::time::sleep(delay).await;
                    }
                    None => {
                        return Err(CallFailure::Exhausted {
                            error: e,
                            attempts: backoff.attempts(),
                        });
                    }
                },
                Err(ApiError::Login(m)) => return Err(CallFailure::Login(m)),
                Err(ApiError::Rejected { errors, .. }) => {
                    return Err(CallFailure::Rejected(errors));
                }
            }
        }
    }

    /// One Collections call for `rows` (all of one object and kind): one result per row, in
    /// order.
    pub async fn write(
        &self,
        pauser: &dyn Pauser,
        object: &str,
        kind: &RowKind,
        rows: &[&Row],
    ) -> Result<Vec<RowResult>, CallFailure> {
        let n = rows.len();
        let body = match kind {
            RowKind::Delete => None,
            _ => Some(json!({
                "allOrNone": false,
                "records": rows.iter().map(|r| r.body()).collect::<Vec<_>>(),
            })),
        };
        let (method, path, query) = match kind {
            RowKind::Upsert { field } => (
                Method::PATCH,
                format!("composite/sobjects/{object}/{field}"),
                vec![],
            ),
            RowKind::Update => (Method::PATCH, "composite/sobjects".to_string(), vec![]),
            RowKind::Delete => {
                let ids: Vec<&str> = rows
                    .iter()
                    .filter_map(|r| match &r.key {
                        RecordKey::Id(id) => Some(id.as_str()),
                        RecordKey::Ext { .. } => None,
                    })
                    .collect();
                (
                    Method::DELETE,
                    "composite/sobjects".to_string(),
                    vec![("ids", ids.join(",")), ("allOrNone", "false".to_string())],
                )
            }
        };
        let req = Request {
            operation: kind.operation(),
            method,
            path: &path,
            query: &query,
            body: body.as_ref(),
            records: n,
        };
        let v = self.call(pauser, req).await?;
        let results = v.as_array().cloned().unwrap_or_default();
        Ok((0..n)
            .map(|i| match results.get(i) {
                Some(r) if r.get("success").and_then(Value::as_bool) == Some(true) => {
                    RowResult::Ok {
                        id: r
                            .get("id")
                            .and_then(Value::as_str)
                            .map(str::to_string)
                            .or_else(|| match &rows[i].key {
                                RecordKey::Id(id) => Some(id.clone()),
                                RecordKey::Ext { .. } => None,
                            })
                            .unwrap_or_default(),
                        created: r.get("created").and_then(Value::as_bool) == Some(true),
                    }
                }
                Some(r) => RowResult::Err(
                    r.get("errors")
                        .and_then(|e| serde_json::from_value::<Vec<SfError>>(e.clone()).ok())
                        .and_then(|e| e.into_iter().next())
                        .unwrap_or(SfError {
                            status_code: "UNKNOWN_EXCEPTION".into(),
                            message: "the row failed without an error".into(),
                            fields: vec![],
                        }),
                ),
                None => RowResult::Err(SfError {
                    status_code: "UNKNOWN_EXCEPTION".into(),
                    message: "no result for this row in the response".into(),
                    fields: vec![],
                }),
            })
            .collect())
    }

    /// `SELECT <columns> FROM <object> WHERE <field> IN (<values>)`, every page, keyed by the
    /// value of `field`. Long lists are split into several queries, in flight together.
    pub async fn read(
        &self,
        pauser: &dyn Pauser,
        object: &str,
        columns: &[String],
        field: &str,
        values: &[String],
    ) -> Result<HashMap<String, Map<String, Value>>, CallFailure> {
        let reads: Vec<_> = literal_chunks(values)
            .into_iter()
            .map(|list| self.read_list(pauser, object, columns, field, list))
            .collect();
        let reads: Vec<_> = futures::stream::iter(reads)
            .buffered(self.concurrency.max(1))
            .collect()
            .await;
        let mut out = HashMap::new();
        for r in reads {
            out.extend(r?);
        }
        Ok(out)
    }

    async fn read_list(
        &self,
        pauser: &dyn Pauser,
        object: &str,
        columns: &[String],
        field: &str,
        list: Vec<String>,
    ) -> Result<HashMap<String, Map<String, Value>>, CallFailure> {
        let mut out = HashMap::new();
        let q = format!(
            "SELECT {} FROM {object} WHERE {field} IN ({})",
            columns.join(", "),
            list.join(", ")
        );
        let query = [("q", q)];
        let mut v = self.call(pauser, Request::get("query", &query)).await?;
        loop {
            for rec in v
                .get("records")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                if let Some(m) = rec.as_object()
                    && let Some(k) = m.get(field).and_then(value_text)
                {
                    out.insert(k, m.clone());
                }
            }
            let next = match v.get("nextRecordsUrl").and_then(Value::as_str) {
                Some(n) if v.get("done") != Some(&Value::Bool(true)) => n.to_string(),
                _ => break,
            };
            // `/services/data/vNN.0/query/<locator>` → `query/<locator>`.
            let rel = next
                .split_once("/query/")
                .map(|(_, l)| format!("query/{l}"))
                .unwrap_or(next);
            v = self.call(pauser, Request::get(&rel, &[])).await?;
        }
        Ok(out)
    }
}

/// The values as SOQL literals, in lists of at most 200 and about 8 000 characters, so one
/// query's URL stays well under Salesforce's 16 KB limit (reference §4.5: 414).
fn literal_chunks(values: &[String]) -> Vec<Vec<String>> {
    let mut out: Vec<Vec<String>> = Vec::new();
    let mut len = 0;
    for v in values {
        let lit = soql_literal(v);
        match out.last_mut() {
            Some(cur) if cur.len() < 200 && len + lit.len() < 8_000 => {
                len += lit.len() + 2;
                cur.push(lit);
            }
            _ => {
                len = lit.len();
                out.push(vec![lit]);
            }
        }
    }
    out
}

/// A SOQL string literal: quotes and backslashes escaped.
pub fn soql_literal(v: &str) -> String {
    format!("'{}'", v.replace('\\', "\\\\").replace('\'', "\\'"))
}

/// A JSON scalar as text (external ids may be numbers).
pub fn value_text(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn literals_are_chunked_by_count_and_length() {
        let short: Vec<String> = (0..450).map(|i| format!("K-{i}")).collect();
        let sizes: Vec<usize> = literal_chunks(&short).iter().map(Vec::len).collect();
        assert_eq!(sizes, vec![200, 200, 50]);
        let long: Vec<String> = (0..10)
            .map(|i| format!("{i}{}", "x".repeat(2000)))
            .collect();
        assert_eq!(literal_chunks(&long).len(), 4);
    }

    #[test]
    fn soql_literals_are_escaped() {
        assert_eq!(soql_literal("O'Brien\\x"), "'O\\'Brien\\\\x'");
    }
}
