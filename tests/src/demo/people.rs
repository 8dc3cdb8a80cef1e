//! The people of the demo scenario, acting in the sandboxes the way humans do: a sales user
//! (Alice) writing to the Salesforce org through the sandbox's "act as" admin routes, so the
//! change events carry a human actor and no `changeOrigin` (as UI edits do), and an engineer
//! (Bob) calling Jira's REST API as himself. Reading state back goes through the sandboxes'
//! admin views, which show every field without paging or search-index lag.

use anyhow::{Context, bail};
use reqwest::{Client, Method};
use serde_json::{Value, json};

/// The Salesforce org, through its admin API (`/__admin/salesforce`).
#[derive(Clone)]
pub struct SalesUser {
    http: Client,
    admin: String,
    /// Who acts: a sandbox user's first name, username or Id.
    user: String,
}

impl SalesUser {
    /// Acting as `user` in the org served at `base` (`http://127.0.0.1:18443`).
    pub fn new(base: &str, user: &str) -> Self {
        SalesUser {
            http: Client::new(),
            admin: format!("{}/__admin/salesforce", base.trim_end_matches('/')),
            user: user.to_string(),
        }
    }

    /// Creates a record; returns its Id.
    pub async fn create(&self, object: &str, fields: Value) -> anyhow::Result<String> {
        let url = format!("{}/as/{}/sobjects/{object}", self.admin, self.user);
        let body = send(&self.http, Method::POST, &url, Some(fields)).await?;
        body["id"]
            .as_str()
            .map(str::to_string)
            .with_context(|| format!("no id in the answer to creating a {object}: {body}"))
    }

    /// Updates fields of a record.
    pub async fn update(&self, object: &str, id: &str, fields: Value) -> anyhow::Result<()> {
        let url = format!("{}/as/{}/sobjects/{object}/{id}", self.admin, self.user);
        send(&self.http, Method::PATCH, &url, Some(fields)).await?;
        Ok(())
    }

    /// Every live (not deleted) record of `object`, as field maps.
    pub async fn records(&self, object: &str) -> anyhow::Result<Vec<Value>> {
        let url = format!("{}/records/{object}", self.admin);
        let rows = send(&self.http, Method::GET, &url, None).await?;
        Ok(rows
            .as_array()
            .into_iter()
            .flatten()
            .filter(|r| r["deleted"] != json!(true))
            .map(|r| r["values"].clone())
            .collect())
    }

    /// The record of `object` with this Id, if it exists.
    pub async fn record(&self, object: &str, id: &str) -> anyhow::Result<Option<Value>> {
        Ok(self
            .records(object)
            .await?
            .into_iter()
            .find(|r| r["Id"] == json!(id)))
    }
}

/// The Jira site: REST v3 as an engineer, and the admin view of every issue.
#[derive(Clone)]
pub struct Engineer {
    http: Client,
    base: String,
    /// The engineer's account e-mail (the sandbox's admin routes act as any user by e-mail).
    email: String,
}

impl Engineer {
    /// Acting as `email` on the site served at `base` (`http://127.0.0.1:18080`).
    pub fn new(base: &str, email: &str) -> Self {
        Engineer {
            http: Client::new(),
            base: base.trim_end_matches('/').to_string(),
            email: email.to_string(),
        }
    }

    /// A REST v3 call as the engineer (`path` after `/rest/api/3`).
    pub async fn call(
        &self,
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> anyhow::Result<Value> {
        let url = format!(
            "{}/__admin/jira/as/{}/rest/api/3{path}",
            self.base, self.email
        );
        send(&self.http, method, &url, body).await
    }

    /// Moves the issue through the workflow transition with this id.
    pub async fn transition(&self, key: &str, transition_id: &str) -> anyhow::Result<()> {
        let body = json!({"transition": {"id": transition_id}});
        self.call(
            Method::POST,
            &format!("/issue/{key}/transitions"),
            Some(body),
        )
        .await?;
        Ok(())
    }

    /// Adds a plain-text comment (as an Atlassian Document); returns the comment id.
    pub async fn comment(&self, key: &str, text: &str) -> anyhow::Result<String> {
        let body = json!({"body": adf(text)});
        let out = self
            .call(Method::POST, &format!("/issue/{key}/comment"), Some(body))
            .await?;
        id_of(&out)
    }

    /// Logs `seconds` of work with a note; returns the worklog id.
    pub async fn log_work(&self, key: &str, seconds: u64, note: &str) -> anyhow::Result<String> {
        let started = chrono::Utc::now()
            .format("%Y-%m-%dT%H:%M:%S%.3f+0000")
            .to_string();
        let body = json!({"timeSpentSeconds": seconds, "started": started, "comment": adf(note)});
        let out = self
            .call(Method::POST, &format!("/issue/{key}/worklog"), Some(body))
            .await?;
        id_of(&out)
    }

    /// Every issue of the site, with all fields (admin view).
    pub async fn issues(&self) -> anyhow::Result<Vec<Value>> {
        let url = format!("{}/__admin/jira/issues", self.base);
        let all = send(&self.http, Method::GET, &url, None).await?;
        Ok(all.as_array().cloned().unwrap_or_default())
    }

    /// The comments of an issue (REST v3, first page).
    pub async fn comments(&self, key: &str) -> anyhow::Result<Vec<Value>> {
        let out = self
            .call(Method::GET, &format!("/issue/{key}/comment"), None)
            .await?;
        Ok(out["comments"].as_array().cloned().unwrap_or_default())
    }
}

/// The concatenated text of an Atlassian Document.
pub fn adf_text(doc: &Value) -> String {
    match doc {
        Value::Object(o) => {
            let own = o.get("text").and_then(Value::as_str).unwrap_or_default();
            let inner: String = o
                .get("content")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .map(adf_text)
                .collect::<Vec<_>>()
                .join(" ");
            format!("{own}{inner}")
        }
        _ => String::new(),
    }
}

fn adf(text: &str) -> Value {
    json!({"type": "doc", "version": 1, "content": [
        {"type": "paragraph", "content": [{"type": "text", "text": text}]}
    ]})
}

fn id_of(v: &Value) -> anyhow::Result<String> {
    v["id"]
        .as_str()
        .map(str::to_string)
        .with_context(|| format!("no id in {v}"))
}

/// Sends a JSON request; a non-2xx answer is an error carrying the API's own body.
async fn send(
    http: &Client,
    method: Method,
    url: &str,
    body: Option<Value>,
) -> anyhow::Result<Value> {
    // A person who sends too much at once is told 429 like anyone else (the sandbox counts
    // them in its rate limits); like a browser or a script, they wait and try again. A 429
    // is answered before anything is applied, so the retry cannot apply twice.
    let mut attempts = 0;
    loop {
        let mut req = http.request(method.clone(), url);
        if let Some(b) = &body {
            req = req.json(b);
        }
        let resp = req.send().await.with_context(|| {
            format!("{method} {url}: the sandbox did not answer (is it running?)")
        })?;
        let status = resp.status();
        let wait = resp
            .headers()
            .get("retry-after")
            .and_then(|v| v.to_str().ok()?.parse::<u64>().ok())
            .unwrap_or(1);
        let text = resp.text().await.unwrap_or_default();
        if status.as_u16() == 429 && attempts < 30 {
            attempts += 1;
            tokio::time::sleep(std::time::Duration::from_secs(wait.min(5))).await;
            continue;
        }
        if !status.is_success() {
            bail!("{method} {url} answered {status}: {text}");
        }
        return Ok(serde_json::from_str(&text).unwrap_or(Value::Null));
    }
}
