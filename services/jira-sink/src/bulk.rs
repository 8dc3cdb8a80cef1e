//! The calls behind creates: one bulk call's worth of issues retried per element
//! ([`Sink::create_chunk`]), the call itself (`POST /issue` for one, `POST /issue/bulk` for
//! more, per-element results), and the marker search that finds issues whose create may have
//! happened without an answer (`labels in (…)`, after `reconcile_settle_ms`).

use std::collections::HashMap;
use std::time::Duration;

use reqwest::Method;
use serde_json::{Value, json};
use sfjira_core::errors::StageError;

use crate::create::{Created, Prepared};
use crate::jira::CallError;
use crate::metrics;
use crate::sink::{CrashPoint, Sink, now_ms};

impl Sink {
    /// Waits until `reconcile_settle_ms` after `since_ms`, so a search sees issues created then.
    pub(crate) async fn settle(&self, since_ms: i64) {
        let until = since_ms + self.cfg.reconcile_settle_ms as i64;
        let wait = until - now_ms();
        if wait > 0 {
            tokio::time::sleep(Duration::from_millis(wait as u64)).await;
        }
    }

    /// Issues carrying these markers: marker → issue (the oldest when several).
    pub(crate) async fn search_markers(
        &self,
        markers: &[String],
    ) -> Result<HashMap<String, Created>, StageError> {
        let mut found = HashMap::new();
        for chunk in markers.chunks(50) {
            let list: Vec<String> = chunk.iter().map(|m| format!("\"{m}\"")).collect();
            let body = json!({
                "jql": format!("labels in ({}) ORDER BY created ASC", list.join(", ")),
                "fields": ["labels"],
                "maxResults": 100,
            });
            let v = self
                .jira
                .call(
                    Method::POST,
                    "search",
                    "/rest/api/3/search/jql",
                    Some(&body),
                )
                .await
                .map_err(|(e, x)| e.stage_error("searching for interrupted creates", x))?;
            for issue in v
                .get("issues")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                let (Some(id), Some(key)) = (
                    issue.get("id").and_then(Value::as_str),
                    issue.get("key").and_then(Value::as_str),
                ) else {
                    continue;
                };
                for l in issue
                    .pointer("/fields/labels")
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
                {
                    if let Some(m) = l.as_str().filter(|m| chunk.iter().any(|c| c == m)) {
                        found.entry(m.to_string()).or_insert(Created {
                            id: id.to_string(),
                            key: key.to_string(),
                        });
                    }
                }
            }
        }
        Ok(found)
    }

    /// One bulk call's worth of creates, retried per element until each is created, fails
    /// for good, or the retry budget runs out.
    pub(crate) async fn create_chunk(
        &self,
        mut chunk: Vec<Prepared>,
    ) -> Vec<(Prepared, Result<Created, StageError>)> {
        let mut results = Vec::new();
        let mut backoff = self.jira.retry_policy().backoff();
        loop {
            if chunk.is_empty() {
                return results;
            }
            metrics::bulk_size(chunk.len());
            let answer = self.create_call(&chunk).await;
            let (outcomes, whole): (Vec<Option<Result<Created, CallError>>>, Option<CallError>) =
                match answer {
                    Ok(per) => (per.into_iter().map(Some).collect(), None),
                    Err(e) => (chunk.iter().map(|_| None).collect(), Some(e)),
                };
            let mut retry = Vec::new();
            let mut hint = None;
            let mut uncertain = whole.as_ref().is_some_and(CallError::maybe_applied);
            for (p, o) in chunk.into_iter().zip(outcomes) {
                match o {
                    Some(Ok(c)) => {
                        self.crash_if(CrashPoint::AfterCreate);
                        results.push((p, Ok(c)));
                    }
                    Some(Err(e)) if e.retryable() => {
                        uncertain |= e.maybe_applied();
                        hint = hint.max(e.hint());
                        retry.push(p);
                    }
                    Some(Err(e)) => {
                        results.push((p, Err(e.stage_error("creating the issue", false))))
                    }
                    None => {
                        let e = whole.as_ref().expect("a whole-call error");
                        if e.retryable() {
                            hint = hint.max(e.hint());
                            retry.push(p);
                        } else {
                            results.push((p, Err(e.stage_error("creating the issue", false))));
                        }
                    }
                }
            }
            if retry.is_empty() {
                return results;
            }
            let last = whole.clone();
            metrics::retry("create");
            let Some(delay) = backoff.next_delay(hint) else {
                let e = last.unwrap_or_else(|| CallError::Transport {
                    method: Method::POST,
                    path: "/rest/api/3/issue/bulk".into(),
                    message: "elements kept failing".into(),
                });
                for p in retry {
                    results.push((p, Err(e.stage_error("creating the issue", true))));
                }
                return results;
            };
            tokio::time::sleep(delay).await;
            chunk = retry;
            if uncertain {
                // The failed call may have created some: link those instead of creating twice.
                let oldest = now_ms() - delay.as_millis() as i64;
                self.settle(oldest).await;
                let markers: Vec<String> = chunk.iter().map(|p| p.marker.clone()).collect();
                if let Ok(found) = self.search_markers(&markers).await {
                    let (hit, miss): (Vec<_>, Vec<_>) = chunk
                        .into_iter()
                        .partition(|p| found.contains_key(&p.marker));
                    for p in hit {
                        let c = found[&p.marker].clone();
                        results.push((p, Ok(c)));
                    }
                    chunk = miss;
                } else {
                    // Cannot tell: try again later rather than risk a duplicate.
                    continue;
                }
            }
        }
    }

    /// One create call: `POST /issue` for one, `POST /issue/bulk` for more. Per-element
    /// results in `chunk` order.
    // `CallError` carries Jira's answer body; per-element results are few and short-lived.
    #[allow(clippy::result_large_err)]
    pub(crate) async fn create_call(
        &self,
        chunk: &[Prepared],
    ) -> Result<Vec<Result<Created, CallError>>, CallError> {
        if let [one] = chunk {
            let v = self
                .jira
                .call_once(Method::POST, "create", "/rest/api/3/issue", Some(&one.body))
                .await?;
            return Ok(vec![created(&v).ok_or_else(|| bad_answer(&v))]);
        }
        let body =
            json!({"issueUpdates": chunk.iter().map(|p| p.body.clone()).collect::<Vec<_>>()});
        let v = match self
            .jira
            .call_once(
                Method::POST,
                "bulk_create",
                "/rest/api/3/issue/bulk",
                Some(&body),
            )
            .await
        {
            Ok(v) => v,
            // All elements failed: the errors are per element.
            Err(CallError::Status {
                status: 400, body, ..
            }) if body.get("errors").is_some() => body,
            Err(e) => return Err(e),
        };
        let mut errors: HashMap<usize, CallError> = HashMap::new();
        for e in v
            .get("errors")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            let n = e
                .get("failedElementNumber")
                .and_then(Value::as_u64)
                .unwrap_or(0) as usize;
            let status = e.get("status").and_then(Value::as_u64).unwrap_or(400) as u16;
            errors.insert(
                n,
                CallError::Status {
                    method: Method::POST,
                    path: format!("/rest/api/3/issue/bulk (element {n})"),
                    status,
                    body: e.get("elementErrors").cloned().unwrap_or(Value::Null),
                    hint: None,
                },
            );
        }
        let mut issues = v
            .get("issues")
            .and_then(Value::as_array)
            .into_iter()
            .flatten();
        Ok((0..chunk.len())
            .map(|n| match errors.remove(&n) {
                Some(e) => Err(e),
                None => issues
                    .next()
                    .and_then(created)
                    .ok_or_else(|| bad_answer(&v)),
            })
            .collect())
    }
}

fn created(v: &Value) -> Option<Created> {
    Some(Created {
        id: v.get("id")?.as_str()?.to_string(),
        key: v.get("key")?.as_str()?.to_string(),
    })
}

fn bad_answer(v: &Value) -> CallError {
    CallError::Status {
        method: Method::POST,
        path: "/rest/api/3/issue".into(),
        status: 502,
        body: json!({"errorMessages": [format!("unexpected create answer: {v}")]}),
        hint: None,
    }
}
