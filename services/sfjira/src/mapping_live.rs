//! `sfjira mapping check --salesforce-url … --jira-url …`: checks a mapping against the real
//! (or sandbox) org and site, not just against itself: that every object, field, project and
//! issue type it names exists, that Salesforce fields it writes are writable, that upserts go
//! through real external-id fields, and that values it puts into restricted picklists are
//! allowed. Credentials come from the environment only (never the command line, never logged):
//! `SFJIRA_CHECK_SALESFORCE_TOKEN` (an access token) or `SFJIRA_CHECK_SALESFORCE_CLIENT_ID` +
//! `SFJIRA_CHECK_SALESFORCE_CLIENT_SECRET` (client credentials); `SFJIRA_CHECK_JIRA_USER` +
//! `SFJIRA_CHECK_JIRA_TOKEN` (API token).

use std::collections::{BTreeMap, BTreeSet};

use anyhow::{Context, bail};
use serde_json::Value;
use sfjira_transformer::mapping::{FieldRule, Mapping, System, ValueSource};

/// The REST API version used for `describe`.
const SF_API: &str = "v62.0";

/// Jira system fields a mapping may write by id (besides everything `/field` lists).
const JIRA_SYSTEM_FIELDS: &[&str] = &[
    "summary",
    "description",
    "labels",
    "duedate",
    "priority",
    "assignee",
    "reporter",
    "parent",
    "components",
    "environment",
];

pub struct Endpoints {
    pub salesforce_url: Option<String>,
    pub jira_url: Option<String>,
}

/// One problem found, addressed by flow and field.
#[derive(Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Finding {
    pub flow: String,
    pub what: String,
    pub problem: String,
}

pub async fn check(mapping: &Mapping, endpoints: &Endpoints) -> anyhow::Result<Vec<Finding>> {
    let http = reqwest::Client::new();
    let mut findings = Vec::new();
    if let Some(url) = &endpoints.salesforce_url {
        let token = salesforce_token(&http, url).await?;
        findings.extend(check_salesforce(&http, url, &token, mapping).await?);
    }
    if let Some(url) = &endpoints.jira_url {
        findings.extend(check_jira(&http, url, mapping).await?);
    }
    findings.sort();
    Ok(findings)
}

async fn salesforce_token(http: &reqwest::Client, url: &str) -> anyhow::Result<String> {
    if let Ok(t) = std::env::var("SFJIRA_CHECK_SALESFORCE_TOKEN") {
        return Ok(t);
    }
    let (Ok(id), Ok(secret)) = (
        std::env::var("SFJIRA_CHECK_SALESFORCE_CLIENT_ID"),
        std::env::var("SFJIRA_CHECK_SALESFORCE_CLIENT_SECRET"),
    ) else {
        bail!(
            "set SFJIRA_CHECK_SALESFORCE_TOKEN, or SFJIRA_CHECK_SALESFORCE_CLIENT_ID and SFJIRA_CHECK_SALESFORCE_CLIENT_SECRET, to check against {url}"
        );
    };
    let resp = http
        .post(format!("{url}/services/oauth2/token"))
        .form(&[
            ("grant_type", "client_credentials"),
            ("client_id", &id),
            ("client_secret", &secret),
        ])
        .send()
        .await
        .with_context(|| format!("requesting a token from {url}"))?;
    let status = resp.status();
    let body: Value = resp.json().await.unwrap_or_default();
    match body.get("access_token").and_then(Value::as_str) {
        Some(t) => Ok(t.to_string()),
        None => bail!(
            "{url} refused the client credentials ({status}: {})",
            body.get("error_description")
                .and_then(Value::as_str)
                .unwrap_or("no description")
        ),
    }
}

struct Describe {
    fields: BTreeMap<String, Value>,
}

impl Describe {
    fn field(&self, name: &str) -> Option<&Value> {
        self.fields.get(&name.to_ascii_lowercase())
    }
}

async fn describe(
    http: &reqwest::Client,
    url: &str,
    token: &str,
    object: &str,
) -> anyhow::Result<Option<Describe>> {
    let resp = http
        .get(format!(
            "{url}/services/data/{SF_API}/sobjects/{object}/describe"
        ))
        .bearer_auth(token)
        .send()
        .await?;
    if resp.status() == reqwest::StatusCode::NOT_FOUND {
        return Ok(None);
    }
    if !resp.status().is_success() {
        bail!(
            "describe {object} answered {}: {}",
            resp.status(),
            resp.text().await.unwrap_or_default()
        );
    }
    let body: Value = resp.json().await?;
    let mut fields = BTreeMap::new();
    for f in body["fields"].as_array().into_iter().flatten() {
        if let Some(name) = f["name"].as_str() {
            fields.insert(name.to_ascii_lowercase(), f.clone());
        }
    }
    Ok(Some(Describe { fields }))
}

async fn check_salesforce(
    http: &reqwest::Client,
    url: &str,
    token: &str,
    mapping: &Mapping,
) -> anyhow::Result<Vec<Finding>> {
    let mut objects = BTreeSet::new();
    for f in &mapping.flows {
        for e in [&f.from, &f.to] {
            if e.system == System::Salesforce {
                objects.insert(e.entity.clone());
            }
        }
    }
    let mut described = BTreeMap::new();
    for o in objects {
        described.insert(o.clone(), describe(http, url, token, &o).await?);
    }
    let mut out = Vec::new();
    for flow in &mapping.flows {
        let finding = |what: String, problem: String| Finding {
            flow: flow.name.clone(),
            what,
            problem,
        };
        if flow.from.system == System::Salesforce {
            let Some(d) = &described[&flow.from.entity] else {
                out.push(finding(
                    format!("from {}", flow.from),
                    "the org has no such object".into(),
                ));
                continue;
            };
            for name in read_fields(flow.fields.iter().chain(&flow.status))
                .into_iter()
                .chain(flow.on_change.iter().cloned())
            {
                let top = name.split('.').next().unwrap_or(&name);
                if d.field(top).is_none() {
                    out.push(finding(
                        format!("source field {name}"),
                        format!("{} has no field {top}", flow.from.entity),
                    ));
                }
            }
        }
        if flow.to.system == System::Salesforce {
            let Some(d) = &described[&flow.to.entity] else {
                out.push(finding(
                    format!("to {}", flow.to),
                    "the org has no such object".into(),
                ));
                continue;
            };
            if let Some(ext) = &flow.target.external_id_field {
                match d.field(ext) {
                    None => out.push(finding(
                        format!("target.external_id_field {ext}"),
                        format!("{} has no field {ext}", flow.to.entity),
                    )),
                    Some(f) if f["externalId"] != Value::Bool(true) => out.push(finding(
                        format!("target.external_id_field {ext}"),
                        "not an external-id field: upserts cannot go through it".into(),
                    )),
                    _ => {}
                }
            }
            for rule in &flow.fields {
                let Some(f) = d.field(&rule.target) else {
                    out.push(finding(
                        format!("field {}", rule.target),
                        format!("{} has no field {}", flow.to.entity, rule.target),
                    ));
                    continue;
                };
                if f["createable"] == Value::Bool(false) && f["updateable"] == Value::Bool(false) {
                    out.push(finding(
                        format!("field {}", rule.target),
                        "read-only in the org (neither createable nor updateable)".into(),
                    ));
                }
                if f["restrictedPicklist"] == Value::Bool(true) {
                    let allowed: BTreeSet<&str> = f["picklistValues"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .filter_map(|v| v["value"].as_str())
                        .collect();
                    for value in rule_outputs(rule) {
                        if !allowed.contains(value.as_str()) {
                            out.push(finding(
                                format!("field {}", rule.target),
                                format!("'{value}' is not a value of the restricted picklist"),
                            ));
                        }
                    }
                }
            }
        }
    }
    Ok(out)
}

async fn check_jira(
    http: &reqwest::Client,
    url: &str,
    mapping: &Mapping,
) -> anyhow::Result<Vec<Finding>> {
    let (Ok(user), Ok(token)) = (
        std::env::var("SFJIRA_CHECK_JIRA_USER"),
        std::env::var("SFJIRA_CHECK_JIRA_TOKEN"),
    ) else {
        bail!("set SFJIRA_CHECK_JIRA_USER and SFJIRA_CHECK_JIRA_TOKEN to check against {url}");
    };
    let get = |path: String| {
        http.get(format!("{url}{path}"))
            .basic_auth(&user, Some(&token))
            .send()
    };
    let resp = get("/rest/api/3/field".into())
        .await
        .with_context(|| format!("reading {url}/rest/api/3/field"))?;
    if !resp.status().is_success() {
        bail!("{url}/rest/api/3/field answered {}", resp.status());
    }
    let fields: Vec<Value> = resp.json().await?;
    let known: BTreeSet<String> = fields
        .iter()
        .flat_map(|f| [f["id"].as_str(), f["name"].as_str()])
        .flatten()
        .map(str::to_ascii_lowercase)
        .chain(JIRA_SYSTEM_FIELDS.iter().map(|s| s.to_string()))
        .collect();
    let mut projects: BTreeMap<String, Option<Value>> = BTreeMap::new();
    let mut out = Vec::new();
    for flow in &mapping.flows {
        let finding = |what: String, problem: String| Finding {
            flow: flow.name.clone(),
            what,
            problem,
        };
        if flow.to.system == System::Jira && flow.to.entity == "issue" {
            for rule in &flow.fields {
                if !known.contains(&rule.target.to_ascii_lowercase()) {
                    out.push(finding(
                        format!("field {}", rule.target),
                        "the site has no such field (neither an id nor a name in /field)".into(),
                    ));
                }
            }
            if let Some(key) = &flow.target.project {
                if !projects.contains_key(key) {
                    let resp = get(format!("/rest/api/3/project/{key}")).await?;
                    let value = if resp.status().is_success() {
                        Some(resp.json().await?)
                    } else {
                        None
                    };
                    projects.insert(key.clone(), value);
                }
                match &projects[key] {
                    None => out.push(finding(
                        format!("target.project {key}"),
                        "the site has no such project (or the user cannot see it)".into(),
                    )),
                    Some(p) => {
                        if let Some(t) = &flow.target.issue_type {
                            let types: BTreeSet<&str> = p["issueTypes"]
                                .as_array()
                                .into_iter()
                                .flatten()
                                .filter_map(|i| i["name"].as_str())
                                .collect();
                            if !types.contains(t.as_str()) {
                                out.push(finding(
                                    format!("target.issue_type {t}"),
                                    format!(
                                        "project {key} has no issue type {t} (it has: {})",
                                        types.into_iter().collect::<Vec<_>>().join(", ")
                                    ),
                                ));
                            }
                        }
                    }
                }
            }
        }
        if flow.from.system == System::Jira && flow.from.entity == "issue" {
            for name in read_fields(flow.fields.iter().chain(&flow.status)) {
                let canonical = [
                    "id",
                    "key",
                    "project",
                    "issue_type",
                    "status",
                    "status_category",
                    "created",
                    "updated",
                ];
                if !canonical.contains(&name.as_str())
                    && !known.contains(&name.to_ascii_lowercase())
                {
                    out.push(finding(
                        format!("source field {name}"),
                        "the site has no such field".into(),
                    ));
                }
            }
        }
    }
    Ok(out)
}

/// The source fields `from:` rules read.
fn read_fields<'a>(rules: impl Iterator<Item = &'a FieldRule>) -> Vec<String> {
    rules
        .filter_map(|r| match &r.source {
            ValueSource::Field(f) => Some(f.clone()),
            _ => None,
        })
        .collect()
}

/// The values a rule can write when it is a constant or a table (others are unknown until run).
fn rule_outputs(rule: &FieldRule) -> Vec<String> {
    match (&rule.source, &rule.table) {
        (ValueSource::Const(c), _) => vec![c.clone()],
        (_, Some(t)) => t.values().cloned().chain(rule.default.clone()).collect(),
        _ => Vec::new(),
    }
}
