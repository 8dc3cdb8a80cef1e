//! The bench's hands in the Salesforce sandbox: the changes it makes, timed.
//!
//! A change is a new `Account` of `Type = "Customer"`, which the demo mapping
//! (`config/mapping.yaml`, flow `account-to-epic`) turns into exactly one Jira write: an Epic
//! created in `PROJ`. Creates are used rather than edits of linked stories because every edit
//! is a `PUT` on the issue, which Jira (and the sandbox) limit to 50/s per endpoint and 20 per
//! issue in 2 s: 100 edits/s could never be carried whatever the pipeline does, while creates
//! go through `POST /issue/bulk` (≤ 50 issues per call).
//!
//! Two write paths, both producing real change events through the org's Change Data Capture:
//! - [`Org::create_as_user`]: one record, one transaction, as a human user (the admin "act as"
//!   route: no `changeOrigin`, as for a UI edit) — the paced latency run;
//! - [`Org::create_collection`]: ≤ 200 records in one transaction through sObject Collections
//!   (`POST /composite/sobjects`) as the integration user without an sfjira client id — how a
//!   data load makes a backlog fast. Each record has its own name, so CDC does not merge them
//!   into one event (identical changes in one transaction would share one event).

use std::time::Instant;

use anyhow::{Context, bail};
use serde_json::{Value, json};

const CLIENT_ID: &str = "sfjira-sandbox-consumer-key";
const CLIENT_SECRET: &str = "sfjira-sandbox-consumer-secret";

/// A REST session with the sandbox org.
#[derive(Clone)]
pub struct Org {
    http: reqwest::Client,
    base: String,
    token: String,
}

/// One committed change as the writer saw it.
#[derive(Debug, Clone)]
pub struct Written {
    pub id: String,
    /// Epoch ms when the request was sent.
    pub sent_ms: i64,
    /// Round trip of the write call, in ms (the sandbox's own commit latency + HTTP).
    pub rtt_ms: f64,
}

impl Org {
    /// Logs in with client credentials (the integration user; only [`Self::create_collection`]
    /// uses the token).
    pub async fn connect(base: &str) -> anyhow::Result<Org> {
        let http = reqwest::Client::builder()
            .pool_max_idle_per_host(256)
            .build()?;
        let token: Value = http
            .post(format!("{base}/services/oauth2/token"))
            // Form-encoded by hand (reqwest's `form` feature is off); the values are URL-safe.
            .header("content-type", "application/x-www-form-urlencoded")
            .body(format!(
                "grant_type=client_credentials&client_id={CLIENT_ID}&client_secret={CLIENT_SECRET}"
            ))
            .send()
            .await
            .context("the Salesforce sandbox's token endpoint did not answer")?
            .json()
            .await?;
        let token = token["access_token"]
            .as_str()
            .with_context(|| format!("no access token in {token}"))?
            .to_string();
        Ok(Org {
            http,
            base: base.trim_end_matches('/').to_string(),
            token,
        })
    }

    /// The fields of the `n`th bench account of run `tag`.
    pub fn account(tag: &str, n: usize) -> Value {
        json!({"Name": format!("bench {tag} account {n}"), "Type": "Customer"})
    }

    /// Creates one record as Alice (one transaction), timed.
    pub async fn create_as_user(&self, fields: &Value) -> anyhow::Result<Written> {
        let sent_ms = crate::now_ms();
        let t = Instant::now();
        let url = format!("{}/__admin/salesforce/as/Alice/sobjects/Account", self.base);
        let resp = self.http.post(&url).json(fields).send().await?;
        let status = resp.status();
        let body: Value = resp.json().await.unwrap_or(Value::Null);
        let rtt_ms = t.elapsed().as_secs_f64() * 1000.0;
        if !status.is_success() {
            bail!("POST {url} answered {status}: {body}");
        }
        let id = body["id"]
            .as_str()
            .with_context(|| format!("no id in {body}"))?;
        Ok(Written {
            id: id.to_string(),
            sent_ms,
            rtt_ms,
        })
    }

    /// Creates up to 200 records in one transaction (sObject Collections, `allOrNone`).
    pub async fn create_collection(&self, records: &[Value]) -> anyhow::Result<Vec<String>> {
        let records: Vec<Value> = records
            .iter()
            .map(|r| {
                let mut r = r.clone();
                r["attributes"] = json!({"type": "Account"});
                r
            })
            .collect();
        let url = format!("{}/services/data/v62.0/composite/sobjects", self.base);
        let resp = self
            .http
            .post(&url)
            .bearer_auth(&self.token)
            .json(&json!({"allOrNone": true, "records": records}))
            .send()
            .await?;
        let status = resp.status();
        let body: Value = resp.json().await.unwrap_or(Value::Null);
        if !status.is_success() {
            bail!("POST {url} answered {status}: {body}");
        }
        body.as_array()
            .with_context(|| format!("not a collections result: {body}"))?
            .iter()
            .map(|r| {
                r["id"]
                    .as_str()
                    .map(str::to_string)
                    .with_context(|| format!("a record was not created: {r}"))
            })
            .collect()
    }

    /// [`Self::create_collection`], each record reported with the call's send time and round
    /// trip.
    pub async fn create_collection_timed(&self, records: &[Value]) -> anyhow::Result<Vec<Written>> {
        let sent_ms = crate::now_ms();
        let t = Instant::now();
        let ids = self.create_collection(records).await?;
        let rtt_ms = t.elapsed().as_secs_f64() * 1000.0;
        Ok(ids
            .into_iter()
            .map(|id| Written {
                id,
                sent_ms,
                rtt_ms,
            })
            .collect())
    }

    /// Every issue of the Jira site (admin view): key → `created`, epoch ms (Jira's own clock).
    pub async fn jira_created(
        &self,
        jira_base: &str,
    ) -> anyhow::Result<std::collections::HashMap<String, i64>> {
        let url = format!("{}/__admin/jira/issues", jira_base.trim_end_matches('/'));
        let all: Value = self.http.get(&url).send().await?.json().await?;
        let mut out = std::collections::HashMap::new();
        for issue in all.as_array().into_iter().flatten() {
            let (Some(key), Some(created)) =
                (issue["key"].as_str(), issue["fields"]["created"].as_str())
            else {
                continue;
            };
            // Jira's format: 2021-01-17T12:34:00.000+0000.
            if let Ok(t) = chrono::DateTime::parse_from_str(created, "%Y-%m-%dT%H:%M:%S%.3f%z") {
                out.insert(key.to_string(), t.timestamp_millis());
            }
        }
        Ok(out)
    }
}
