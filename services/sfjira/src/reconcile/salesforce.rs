//! Reading the Salesforce side of linked pairs: log in as the connector does (the
//! `salesforce_sink` section's grant, or else `salesforce_source`'s, through
//! salesforce-source's [`TokenClient`]) and fetch records by Id with SOQL, batched
//! `WHERE Id IN (…)` and followed through `nextRecordsUrl`, one call per hundred records.

use std::collections::BTreeMap;

use anyhow::{Context, bail};
use chrono::{DateTime, Utc};
use serde_json::{Map, Value};
use sfjira_core::config::SfjiraConfig;
use sfjira_salesforce_source::auth::{Session, TokenClient};
use sfjira_transformer::engine::{EventType, SourceRecord};

use super::compare::Side;
use super::http;

/// The REST API version of the queries (as salesforce-source's).
const API_VERSION: &str = "v62.0";
/// Ids per query: keeps the URL far below the 16 000-character SOQL and URL limits.
const IDS_PER_QUERY: usize = 100;

pub struct Salesforce {
    http: reqwest::Client,
    session: Session,
}

impl Salesforce {
    pub async fn login(cfg: &SfjiraConfig) -> anyhow::Result<Salesforce> {
        let (login_url, auth, tenant) = match (&cfg.salesforce_sink, &cfg.salesforce_source) {
            (Some(s), _) => (s.login_url.clone(), s.auth.clone(), None),
            (None, Some(s)) => (s.login_url.clone(), s.auth.clone(), s.tenant_id.clone()),
            (None, None) => bail!(
                "the configuration has neither a salesforce_sink nor a salesforce_source section: \
                 reconcile reads Salesforce with the connector's own login (see docs/configuration.md)"
            ),
        };
        let session = TokenClient::new(&login_url, auth, tenant)
            .login()
            .await
            .with_context(|| format!("logging in to Salesforce at {login_url}"))?;
        Ok(Salesforce {
            http: reqwest::Client::builder()
                .timeout(std::time::Duration::from_secs(120))
                .build()?,
            session,
        })
    }

    /// The records of `entity` with these `ids` (those that still exist), with `fields`
    /// (plus `Id` and `LastModifiedDate`), as the engine's source records.
    pub async fn records(
        &self,
        entity: &str,
        fields: &[String],
        ids: &[String],
    ) -> anyhow::Result<BTreeMap<String, Side>> {
        let mut select: Vec<String> = vec!["Id".into(), "LastModifiedDate".into()];
        for f in fields {
            if !select.iter().any(|s| s.eq_ignore_ascii_case(f)) {
                select.push(f.clone());
            }
        }
        let mut out = BTreeMap::new();
        for chunk in ids.chunks(IDS_PER_QUERY) {
            let list = chunk
                .iter()
                .map(|id| format!("'{}'", id.replace('\\', "\\\\").replace('\'', "\\'")))
                .collect::<Vec<_>>()
                .join(", ");
            let q = format!(
                "SELECT {} FROM {entity} WHERE Id IN ({list})",
                select.join(", ")
            );
            for row in self.query(&q).await? {
                let side = side(entity, row)?;
                out.insert(side.record.id.clone(), side);
            }
        }
        Ok(out)
    }

    async fn query(&self, soql: &str) -> anyhow::Result<Vec<Map<String, Value>>> {
        let api = self.session.instance_url.trim_end_matches('/').to_string();
        let mut url = reqwest::Url::parse_with_params(
            &format!("{api}/services/data/{API_VERSION}/query"),
            [("q", soql)],
        )?;
        let mut rows = Vec::new();
        loop {
            let (status, body) = http::send("Salesforce query", || {
                self.http
                    .get(url.clone())
                    .bearer_auth(&self.session.access_token)
            })
            .await?;
            if !status.is_success() {
                bail!("Salesforce query failed with {status}: {body}");
            }
            rows.extend(
                body["records"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(|r| r.as_object().cloned()),
            );
            match body["nextRecordsUrl"].as_str() {
                Some(next) if body["done"] != Value::Bool(true) => {
                    url = reqwest::Url::parse(&format!("{api}{next}"))?;
                }
                _ => return Ok(rows),
            }
        }
    }
}

/// A queried row as the engine sees a freshly created record: every field present, all of
/// them "changed", so every rule of a flow yields its value.
fn side(entity: &str, mut row: Map<String, Value>) -> anyhow::Result<Side> {
    row.remove("attributes");
    let id = row
        .get("Id")
        .and_then(Value::as_str)
        .context("a queried row has no Id")?
        .to_string();
    let modified = row
        .get("LastModifiedDate")
        .and_then(Value::as_str)
        .and_then(sfjira_jira_source::canonical::parse_time)
        .and_then(DateTime::<Utc>::from_timestamp_millis)
        .with_context(|| format!("{entity} {id} has no LastModifiedDate"))?;
    Ok(Side {
        record: SourceRecord {
            source: format!("salesforce.{entity}"),
            id,
            key: None,
            event: EventType::Create,
            version: format!("reconcile-{}", modified.timestamp_millis()),
            commit_time: modified,
            changed: Vec::new(),
            nulled: Vec::new(),
            actor: None,
            change_origin: None,
            history_marker: None,
            fields: row,
        },
        modified,
    })
}
