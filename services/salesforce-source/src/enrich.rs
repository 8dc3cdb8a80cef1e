//! Full-state enrichment (`salesforce_source.enrich_full_state`): an `UPDATE` event carries
//! only the fields that changed; with enrichment on, the source re-reads the record over REST
//! (one SOQL query per event, for all its record ids) and fills every field the event left
//! empty with the record's current value, so the transformer sees the whole record. Fields the
//! event changed or nulled keep the event's values (a later change must not overwrite them).
//! Costs one API call per update event: watch `sfjira_salesforce_source_api_requests_used`.

use apache_avro::Schema;
use apache_avro::types::Value;
use serde_json::Value as Json;

use crate::auth::Session;
use crate::decode::{Change, EventSchema};
use crate::gap::{avro_value, query, soql};
use crate::pubsub::PubSubError;

/// Fills the unchanged fields of `UPDATE` changes from REST. Other change types pass through.
pub async fn enrich(
    http: &reqwest::Client,
    session: &Session,
    schema: &EventSchema,
    mut changes: Vec<Change>,
) -> Result<Vec<Change>, PubSubError> {
    let Schema::Record(top) = &schema.salesforce else {
        return Ok(changes);
    };
    let Some(first) = changes.first() else {
        return Ok(changes);
    };
    if first.change_type != "UPDATE" {
        return Ok(changes);
    }
    let ids: Vec<&str> = changes.iter().map(|c| c.record_id.as_str()).collect();
    let rows = query(http, session, &soql(top, &first.entity, &ids)).await?;
    for change in &mut changes {
        let Some(row) = rows
            .iter()
            .find(|r| r.get("Id").and_then(Json::as_str) == Some(change.record_id.as_str()))
        else {
            continue; // deleted since: its delete event follows
        };
        let Value::Record(fields) = &mut change.value else {
            continue;
        };
        let touched: Vec<String> = match fields.first() {
            Some((_, Value::Record(h))) => h
                .iter()
                .filter(|(n, _)| n == "changedFields" || n == "nulledFields")
                .flat_map(|(_, v)| match v {
                    Value::Array(a) => a
                        .iter()
                        .filter_map(|x| match x {
                            Value::String(s) => Some(s.split('.').next().unwrap_or(s).to_string()),
                            _ => None,
                        })
                        .collect(),
                    _ => Vec::new(),
                })
                .collect(),
            _ => Vec::new(),
        };
        for (name, value) in fields.iter_mut().skip(1) {
            if name == "replay_id" || touched.contains(name) {
                continue;
            }
            let Some(field) = top.fields.iter().find(|f| &f.name == name) else {
                continue;
            };
            if let Some(v) = avro_value(&field.schema, name, row) {
                *value = v;
            }
        }
    }
    Ok(changes)
}
