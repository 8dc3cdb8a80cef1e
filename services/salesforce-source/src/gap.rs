//! Gap recovery (reference §2.5): a `GAP_CREATE`, `GAP_UPDATE` or `GAP_UNDELETE` event says
//! "this record changed, but the change is not in the stream". The source re-reads the records
//! by Id over REST — one SOQL query per event, for all its `recordIds` — and publishes their
//! current state in the change-event layout, with `changedFields` listing every field that has
//! a value, the change type without its `GAP_` prefix, and the Kafka header
//! `sfjira.gap-recovered: <original change type>`. `GAP_DELETE` needs no read: it is published
//! as a `DELETE`, marked the same way. A record that no longer exists is skipped (its delete
//! comes as an event of its own). `GAP_OVERFLOW` (no record ids) re-syncs the entity: every
//! record with `SystemModstamp >= commitTimestamp − 60 s` (paged), each as a marked `UPDATE`.

use apache_avro::Schema;
use apache_avro::schema::RecordSchema;
use apache_avro::types::Value;
use chrono::{DateTime, NaiveDate};
use serde_json::{Map, Value as Json};

use crate::auth::Session;
use crate::decode::{Change, EventSchema};
use crate::pubsub::PubSubError;

/// The REST API version the source queries with.
pub const API_VERSION: &str = "v62.0";
/// The Kafka header that marks a gap-recovered record.
pub const HEADER: &str = "sfjira.gap-recovered";

/// Whether a change type is a gap the source recovers by reading the record.
pub fn needs_read(change_type: &str) -> bool {
    matches!(change_type, "GAP_CREATE" | "GAP_UPDATE" | "GAP_UNDELETE")
}

/// Rewrites gap `changes` (all from one event) with the records' current state. Returns the
/// changes to publish; `GAP_DELETE` becomes `DELETE`.
pub async fn recover(
    http: &reqwest::Client,
    session: &Session,
    schema: &EventSchema,
    changes: Vec<Change>,
) -> Result<Vec<Change>, PubSubError> {
    let Some(first) = changes.first() else {
        return Ok(changes);
    };
    let gap = first.change_type.clone();
    if !gap.starts_with("GAP_") {
        return Ok(changes);
    }
    let Schema::Record(top) = &schema.salesforce else {
        return Ok(changes);
    };
    if gap == "GAP_OVERFLOW" {
        return overflow(http, session, top, first).await;
    }
    let plain = gap.trim_start_matches("GAP_").to_string();
    let rows = if needs_read(&gap) {
        let ids: Vec<&str> = changes.iter().map(|c| c.record_id.as_str()).collect();
        query(http, session, &soql(top, &first.entity, &ids)).await?
    } else {
        Vec::new()
    };
    let mut out = Vec::new();
    for mut change in changes {
        let row = rows
            .iter()
            .find(|r| r.get("Id").and_then(Json::as_str) == Some(change.record_id.as_str()));
        if needs_read(&gap) && row.is_none() {
            tracing::info!(entity = %change.entity, id = %change.record_id, %gap, "gap record no longer exists; skipped");
            continue;
        }
        fill(&mut change, row, top, &plain, &gap);
        out.push(change);
    }
    Ok(out)
}

/// How far before an overflow's commit time the re-sync starts (clock skew, in-flight writes).
const OVERFLOW_BUFFER_MS: i64 = 60_000;

/// `GAP_OVERFLOW`: every record of the entity modified since the overflowing transaction
/// (`SystemModstamp >= commitTimestamp − 60 s`, paged), each as an `UPDATE` with its current
/// state, marked `GAP_OVERFLOW`.
async fn overflow(
    http: &reqwest::Client,
    session: &Session,
    top: &RecordSchema,
    template: &Change,
) -> Result<Vec<Change>, PubSubError> {
    let since = DateTime::from_timestamp_millis(template.commit_timestamp - OVERFLOW_BUFFER_MS)
        .unwrap_or_default()
        .format("%Y-%m-%dT%H:%M:%SZ");
    let select = soql(top, &template.entity, &[]);
    let select = select
        .split(" WHERE ")
        .next()
        .unwrap_or(&select)
        .to_string();
    let q = format!("{select} WHERE SystemModstamp >= {since} ORDER BY SystemModstamp, Id");
    let rows = query(http, session, &q).await?;
    tracing::info!(entity = %template.entity, records = rows.len(), %since, "GAP_OVERFLOW: entity re-synced");
    let mut out = Vec::new();
    for row in &rows {
        let Some(id) = row.get("Id").and_then(Json::as_str) else {
            continue;
        };
        let mut change = template.clone();
        change.record_id = id.to_string();
        if let Value::Record(fields) = &mut change.value
            && let Some((_, Value::Record(header))) = fields.first_mut()
        {
            for (name, v) in header.iter_mut() {
                if name == "recordIds" {
                    *v = Value::Array(vec![Value::String(id.to_string())]);
                }
            }
        }
        fill(&mut change, Some(row), top, "UPDATE", "GAP_OVERFLOW");
        out.push(change);
    }
    Ok(out)
}

/// Puts `row`'s values into `change`, sets its change type to `plain` and marks it `gap`.
pub(crate) fn fill(
    change: &mut Change,
    row: Option<&Map<String, Json>>,
    top: &RecordSchema,
    plain: &str,
    gap: &str,
) {
    let Value::Record(fields) = &mut change.value else {
        return;
    };
    let mut changed = Vec::new();
    if let Some(row) = row {
        for (name, value) in fields.iter_mut().skip(1) {
            if name == "replay_id" {
                continue;
            }
            let Some(field) = top.fields.iter().find(|f| &f.name == name) else {
                continue;
            };
            if let Some(v) = avro_value(&field.schema, name, row) {
                if !matches!(v, Value::Union(_, ref b) if **b == Value::Null) {
                    changed.push(Value::String(name.clone()));
                }
                *value = v;
            }
        }
    }
    if let Some((_, Value::Record(header))) = fields.first_mut() {
        for (name, v) in header.iter_mut() {
            match name.as_str() {
                "changeType" if matches!(v, Value::Enum(..)) => {
                    *v = Value::Enum(enum_index(top, plain).unwrap_or(0), plain.to_string());
                }
                "changedFields" if row.is_some() => *v = Value::Array(changed.clone()),
                _ => {}
            }
        }
    }
    change.change_type = plain.to_string();
    change.gap = Some(gap.to_string());
}

fn enum_index(top: &RecordSchema, symbol: &str) -> Option<u32> {
    let Schema::Record(h) = &top.fields.first()?.schema else {
        return None;
    };
    let f = h.fields.iter().find(|f| f.name == "changeType")?;
    match &f.schema {
        Schema::Enum(e) => e.symbols.iter().position(|s| s == symbol).map(|i| i as u32),
        _ => None,
    }
}

/// `SELECT <every field of the event, compound fields as their parts> FROM <entity> WHERE Id IN (…)`.
pub(crate) fn soql(top: &RecordSchema, entity: &str, ids: &[&str]) -> String {
    let mut fields = vec!["Id".to_string()];
    for f in top.fields.iter().skip(1) {
        match nested(&f.schema) {
            Some(r) => fields.extend(r.fields.iter().map(|c| part_name(&f.name, &c.name))),
            None if f.name != "Id" => fields.push(f.name.clone()),
            None => {}
        }
    }
    let ids: Vec<String> = ids
        .iter()
        .map(|i| format!("'{}'", i.replace('\'', "")))
        .collect();
    format!(
        "SELECT {} FROM {entity} WHERE Id IN ({})",
        fields.join(", "),
        ids.join(", ")
    )
}

/// `BillingAddress` + `City` → `BillingCity` (Salesforce's naming of compound parts).
fn part_name(parent: &str, child: &str) -> String {
    format!(
        "{}{child}",
        parent.strip_suffix("Address").unwrap_or(parent)
    )
}

fn nested(schema: &Schema) -> Option<&RecordSchema> {
    match schema {
        Schema::Record(r) => Some(r),
        Schema::Union(u) => u.variants().iter().find_map(|v| match v {
            Schema::Record(r) => Some(r),
            _ => None,
        }),
        _ => None,
    }
}

/// The Avro value of field `name` (schema `schema`) from a REST row.
pub(crate) fn avro_value(schema: &Schema, name: &str, row: &Map<String, Json>) -> Option<Value> {
    let Schema::Union(u) = schema else {
        return scalar(schema, row.get(name)?);
    };
    let null = u
        .variants()
        .iter()
        .position(|v| matches!(v, Schema::Null))? as u32;
    for (i, v) in u.variants().iter().enumerate() {
        if let Schema::Record(r) = v {
            let parts: Vec<(String, Value)> = r
                .fields
                .iter()
                .map(|c| {
                    let json = row.get(&part_name(name, &c.name)).unwrap_or(&Json::Null);
                    let value = match &c.schema {
                        Schema::Union(cu) => union_of(cu, json),
                        s => scalar(s, json).unwrap_or(Value::Null),
                    };
                    (c.name.clone(), value)
                })
                .collect();
            let empty = parts
                .iter()
                .all(|(_, v)| matches!(v, Value::Union(_, b) if **b == Value::Null));
            return Some(if empty {
                Value::Union(null, Box::new(Value::Null))
            } else {
                Value::Union(i as u32, Box::new(Value::Record(parts)))
            });
        }
    }
    Some(union_of(u, row.get(name).unwrap_or(&Json::Null)))
}

fn union_of(u: &apache_avro::schema::UnionSchema, json: &Json) -> Value {
    let null = u
        .variants()
        .iter()
        .position(|v| matches!(v, Schema::Null))
        .unwrap_or(0) as u32;
    if json.is_null() {
        return Value::Union(null, Box::new(Value::Null));
    }
    for (i, v) in u.variants().iter().enumerate() {
        if let Some(x) = scalar(v, json) {
            return Value::Union(i as u32, Box::new(x));
        }
    }
    Value::Union(null, Box::new(Value::Null))
}

/// A REST JSON value as the Avro type of the change event (dates as epoch ms).
fn scalar(schema: &Schema, json: &Json) -> Option<Value> {
    Some(match (schema, json) {
        (Schema::String, Json::String(s)) => Value::String(s.clone()),
        (Schema::String, Json::Number(n)) => Value::String(n.to_string()),
        (Schema::String, Json::Bool(b)) => Value::String(b.to_string()),
        (Schema::Boolean, Json::Bool(b)) => Value::Boolean(*b),
        (Schema::Double, Json::Number(n)) => Value::Double(n.as_f64()?),
        (Schema::Float, Json::Number(n)) => Value::Float(n.as_f64()? as f32),
        (Schema::Int, Json::Number(n)) => Value::Int(i32::try_from(n.as_i64()?).ok()?),
        (Schema::Long, Json::Number(n)) => Value::Long(n.as_i64()?),
        (Schema::Long, Json::String(s)) => Value::Long(epoch_ms(s)?),
        _ => return None,
    })
}

/// `2024-05-01T12:34:56.000+0000`, RFC 3339, or `2024-05-01` → epoch ms.
pub(crate) fn epoch_ms(s: &str) -> Option<i64> {
    if let Ok(t) = DateTime::parse_from_str(s, "%Y-%m-%dT%H:%M:%S%.f%z") {
        return Some(t.timestamp_millis());
    }
    if let Ok(t) = DateTime::parse_from_rfc3339(s) {
        return Some(t.timestamp_millis());
    }
    let d = NaiveDate::parse_from_str(s, "%Y-%m-%d").ok()?;
    Some(d.and_hms_opt(0, 0, 0)?.and_utc().timestamp_millis())
}

/// Runs a SOQL query, following `nextRecordsUrl`. 401 → [`PubSubError::Unauthenticated`].
/// Each page is retried on 429, 5xx and transport errors (with backoff and jitter, within
/// [`query_retry`]): a transient REST failure must not fail the stream, which would only
/// reconnect and meet the next one — under a steady 5xx rate it never got through a batch.
pub(crate) async fn query(
    http: &reqwest::Client,
    session: &Session,
    soql: &str,
) -> Result<Vec<Map<String, Json>>, PubSubError> {
    let base = session.instance_url.trim_end_matches('/');
    let mut url = reqwest::Url::parse_with_params(
        &format!("{base}/services/data/{API_VERSION}/query"),
        [("q", soql)],
    )
    .map_err(|e| PubSubError::Other(format!("query URL: {e}")))?;
    let mut out = Vec::new();
    loop {
        let body = sfjira_core::retry::retry(
            &query_retry(),
            || query_page(http, session, url.clone()),
            |e: &PageError| match e {
                PageError::Transient(_) => sfjira_core::retry::RetryDecision::Retry { hint: None },
                _ => sfjira_core::retry::RetryDecision::Fail,
            },
        )
        .await
        .map_err(|e| match e.error {
            PageError::Unauthenticated => {
                PubSubError::Unauthenticated("REST 401 INVALID_SESSION_ID".into())
            }
            PageError::Transient(m) | PageError::Failed(m) => {
                PubSubError::Other(format!("{m} (after {} attempt(s))", e.attempts))
            }
        })?;
        if let Some(records) = body.get("records").and_then(Json::as_array) {
            out.extend(records.iter().filter_map(|r| r.as_object().cloned()));
        }
        match body.get("nextRecordsUrl").and_then(Json::as_str) {
            Some(next) if body.get("done") != Some(&Json::Bool(true)) => {
                url = reqwest::Url::parse(&format!("{base}{next}"))
                    .map_err(|e| PubSubError::Other(format!("nextRecordsUrl: {e}")))?;
            }
            _ => return Ok(out),
        }
    }
}

/// How a REST query page is retried: up to 6 tries within 60 s.
fn query_retry() -> sfjira_core::retry::RetryPolicy {
    sfjira_core::retry::RetryPolicy {
        initial_delay_ms: 200,
        max_delay_ms: 5_000,
        max_attempts: 6,
        max_elapsed_ms: 60_000,
    }
}

/// Why one page of a query failed.
#[derive(Debug)]
enum PageError {
    /// 429, 5xx, or no answer: worth another try.
    Transient(String),
    Unauthenticated,
    Failed(String),
}

impl std::fmt::Display for PageError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PageError::Transient(m) | PageError::Failed(m) => f.write_str(m),
            PageError::Unauthenticated => f.write_str("REST 401 INVALID_SESSION_ID"),
        }
    }
}

async fn query_page(
    http: &reqwest::Client,
    session: &Session,
    url: reqwest::Url,
) -> Result<Json, PageError> {
    let resp = http
        .get(url)
        .bearer_auth(&session.access_token)
        .send()
        .await
        .map_err(|e| PageError::Transient(format!("gap recovery query: {e}")))?;
    let status = resp.status();
    if let Some(usage) = resp
        .headers()
        .get("sforce-limit-info")
        .and_then(|v| v.to_str().ok())
        .and_then(crate::events::ApiUsage::parse)
    {
        usage.emit();
    }
    if status == reqwest::StatusCode::UNAUTHORIZED {
        return Err(PageError::Unauthenticated);
    }
    let transient = status == reqwest::StatusCode::TOO_MANY_REQUESTS || status.is_server_error();
    let body: Json = match resp.json().await {
        Ok(b) => b,
        Err(e) if transient => {
            return Err(PageError::Transient(format!(
                "gap recovery query {status}: {e}"
            )));
        }
        Err(e) => return Err(PageError::Failed(format!("gap recovery query body: {e}"))),
    };
    if transient {
        return Err(PageError::Transient(format!(
            "gap recovery query {status}: {body}"
        )));
    }
    if !status.is_success() {
        return Err(PageError::Failed(format!(
            "gap recovery query {status}: {body}"
        )));
    }
    Ok(body)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_and_compound_names() {
        assert_eq!(epoch_ms("1970-01-02"), Some(86_400_000));
        assert_eq!(epoch_ms("1970-01-01T00:00:01.000+0000"), Some(1000));
        assert_eq!(epoch_ms("1970-01-01T00:00:01Z"), Some(1000));
        assert_eq!(part_name("BillingAddress", "City"), "BillingCity");
        assert!(
            needs_read("GAP_UPDATE") && !needs_read("GAP_DELETE") && !needs_read("GAP_OVERFLOW")
        );
    }
}
