//! Reading the Jira side of linked pairs: the site and integration account of the `jira_sink`
//! section (or else `jira_source`'s API-token login), issues fetched in bulk with
//! `POST /rest/api/3/search/jql` (`key in (…)`, every field, paged by `nextPageToken`), and
//! each issue turned into the engine's source record the same way the connector does it —
//! jira-source's canonical event, then the transformer's input reader — so the mapping sees
//! exactly the fields it sees in production (custom fields by id and by name).
//!
//! Jira answers a JQL naming a key that no longer exists with 400 ("An issue with key … does
//! not exist"), failing the whole batch; such a batch is fetched again issue by issue, and a 404
//! there means the linked issue is gone.

use std::collections::{BTreeMap, HashMap};

use anyhow::{Context, bail};
use chrono::{DateTime, Utc};
use reqwest::StatusCode;
use serde_json::{Value, json};
use sfjira_core::config::{Secret, SfjiraConfig};
use sfjira_jira_source::canonical::{ChangeContext, Origin, issue_event};
use sfjira_transformer::input::source_record;

use super::compare::Side;
use super::http;

/// Keys per search: well inside JQL's length limits, and one page at `maxResults` 100.
const KEYS_PER_SEARCH: usize = 100;

pub struct Jira {
    http: reqwest::Client,
    base: String,
    email: String,
    token: Secret,
    /// Custom field id → name on the site.
    names: HashMap<String, String>,
}

impl Jira {
    pub async fn connect(cfg: &SfjiraConfig) -> anyhow::Result<Jira> {
        let (base, email, token) = match (&cfg.jira_sink, &cfg.jira_source) {
            (Some(s), _) => (s.site_url.clone(), s.email.clone(), s.api_token.clone()),
            (None, Some(s)) => match (&s.email, &s.api_token) {
                (Some(e), Some(t)) => (s.site_url.clone(), e.clone(), t.clone()),
                _ => bail!(
                    "jira_source logs in with OAuth, which reconcile does not use: add a jira_sink \
                     section (site_url, email, api_token)"
                ),
            },
            (None, None) => bail!(
                "the configuration has neither a jira_sink nor a jira_source section: reconcile \
                 reads Jira with the connector's integration account (see docs/configuration.md)"
            ),
        };
        let mut jira = Jira {
            http: reqwest::Client::builder()
                .timeout(std::time::Duration::from_secs(60))
                .build()?,
            base: base.trim_end_matches('/').to_string(),
            email,
            token,
            names: HashMap::new(),
        };
        let fields = jira.call("GET", "/rest/api/3/field", None).await?.1;
        jira.names = fields
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|f| {
                Some((
                    f["id"].as_str()?.to_string(),
                    f["name"].as_str()?.to_string(),
                ))
            })
            .collect();
        Ok(jira)
    }

    /// One call; 400 and 404 are answers the caller reads, other failures are errors.
    async fn call(
        &self,
        method: &str,
        path: &str,
        body: Option<&Value>,
    ) -> anyhow::Result<(StatusCode, Value)> {
        let url = format!("{}{path}", self.base);
        let what = format!("{method} {url}");
        let (status, answer) = http::send(&what, || {
            let req = match method {
                "POST" => self.http.post(&url),
                _ => self.http.get(&url),
            }
            .basic_auth(&self.email, Some(self.token.expose()))
            .header("Accept", "application/json");
            match body {
                Some(b) => req.json(b),
                None => req,
            }
        })
        .await?;
        if !status.is_success()
            && status != StatusCode::BAD_REQUEST
            && status != StatusCode::NOT_FOUND
        {
            bail!("{what} answered {status}: {answer}");
        }
        Ok((status, answer))
    }

    /// The issues with these keys that still exist, by the key asked for.
    pub async fn issues(&self, keys: &[String]) -> anyhow::Result<BTreeMap<String, Side>> {
        let mut out = BTreeMap::new();
        for chunk in keys.chunks(KEYS_PER_SEARCH) {
            match self.search(chunk).await? {
                Some(issues) => {
                    for issue in issues {
                        let side = self.side(&issue)?;
                        if let Some(k) = issue["key"].as_str() {
                            out.insert(k.to_string(), side);
                        }
                    }
                }
                None => {
                    for key in chunk {
                        let (status, issue) = self
                            .call("GET", &format!("/rest/api/3/issue/{key}?fields=*all"), None)
                            .await?;
                        match status {
                            s if s.is_success() => {
                                out.insert(key.clone(), self.side(&issue)?);
                            }
                            StatusCode::NOT_FOUND => {}
                            s => bail!("GET issue {key} answered {s}: {issue}"),
                        }
                    }
                }
            }
        }
        Ok(out)
    }

    /// Every issue of `keys`, or `None` when Jira refused the query (a key that is gone).
    async fn search(&self, keys: &[String]) -> anyhow::Result<Option<Vec<Value>>> {
        let jql = format!("key in ({})", keys.join(", "));
        let mut issues = Vec::new();
        let mut token: Option<String> = None;
        loop {
            let mut body = json!({"jql": jql, "fields": ["*all"], "maxResults": KEYS_PER_SEARCH});
            if let Some(t) = &token {
                body["nextPageToken"] = json!(t);
            }
            let (status, page) = self
                .call("POST", "/rest/api/3/search/jql", Some(&body))
                .await?;
            if !status.is_success() {
                return Ok(None);
            }
            issues.extend(page["issues"].as_array().cloned().unwrap_or_default());
            match page["nextPageToken"].as_str() {
                Some(t) if page["isLast"] != Value::Bool(true) => token = Some(t.to_string()),
                _ => return Ok(Some(issues)),
            }
        }
    }

    /// An issue as the engine sees a freshly created one.
    fn side(&self, issue: &Value) -> anyhow::Result<Side> {
        let updated = issue
            .pointer("/fields/updated")
            .and_then(Value::as_str)
            .and_then(sfjira_jira_source::canonical::parse_time)
            .context("an issue without fields.updated")?;
        let change = ChangeContext {
            event_type: "jira:issue_created",
            origin: Origin::Poll,
            webhook_id: None,
            timestamp: updated,
            actor: None,
            changelog: None,
        };
        let event = issue_event(issue, &change, &self.names).map_err(|e| anyhow::anyhow!("{e}"))?;
        let record = source_record(
            "jira.issues",
            Some(&event.issue_id),
            sfjira_core::avro::json::to_json(event.value),
        )
        .map_err(|e| anyhow::anyhow!("{e}"))?;
        Ok(Side {
            record,
            modified: DateTime::<Utc>::from_timestamp_millis(updated).unwrap_or_default(),
        })
    }
}
