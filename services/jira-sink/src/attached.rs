//! Comments and worklogs: added to (or, when their own reference is linked, updated on) the
//! issue their command attaches to, once that issue is linked (bounded wait). Comment bodies
//! become ADF; comments carry the echo stamp (`sfjira` = the history marker) and their
//! reference (`sfjira.ref`), which makes adding them idempotent like issue creates.

use std::collections::BTreeMap;

use reqwest::Method;
use serde_json::{Value, json};
use sfjira_core::audit::AuditResult;
use sfjira_core::command::Command;
use sfjira_core::errors::{ErrorCode, StageError};
use sfjira_core::links::LinkState;

use crate::fields::{adf, jira_time};
use crate::jira::CallError;
use crate::metrics;
use crate::sink::{Outcome, Sink, Work, invalid, now_ms};

impl Sink {
    /// The issue a comment or worklog belongs to, waiting (bounded) for its link.
    pub async fn wait_issue(&self, reference: &str) -> Result<(String, String), StageError> {
        if let Some(found) = self.issue_of(reference) {
            return Ok(found);
        }
        let wait = std::time::Duration::from_millis(self.cfg.link_wait_ms);
        self.links
            .wait_for(reference, wait, std::time::Duration::from_millis(100))
            .await;
        self.issue_of(reference).ok_or_else(|| {
            invalid(
                ErrorCode::JiraLinkNotReady,
                format!(
                    "{reference} has no Jira issue after {} ms",
                    self.cfg.link_wait_ms
                ),
            )
        })
    }

    /// `COMMENT`: adds the comment to the issue of `attach_to` (or updates it when linked).
    pub async fn comment(&self, out: &mut Outcome, w: &Work) {
        self.attached(out, w, "comment").await
    }

    /// `WORKLOG`: adds (or updates) a worklog on the issue of `attach_to`.
    pub async fn worklog(&self, out: &mut Outcome, w: &Work) {
        self.attached(out, w, "worklog").await
    }

    async fn attached(&self, out: &mut Outcome, w: &Work, kind: &'static str) {
        let started = now_ms();
        let cmd = &w.cmd;
        let Some(attach_to) = cmd.target.attach_to.as_deref() else {
            let e = invalid(
                ErrorCode::JiraCommandInvalid,
                format!("a {kind} command needs target.attach_to"),
            );
            return self.fail(out, w, kind, &e, started);
        };
        let (id, key) = match self.wait_issue(attach_to).await {
            Ok(found) => found,
            Err(e) => return self.fail(out, w, kind, &e, started),
        };
        let body = match kind {
            "comment" => self.comment_body(cmd),
            _ => self.worklog_body(cmd),
        };
        let body = match body {
            Ok(b) => b,
            Err(e) => return self.fail(out, w, kind, &e, started),
        };
        let linked = self.links.counterpart(&cmd.target.external_ref);
        let existing = linked
            .as_deref()
            .and_then(|c| c.rsplit(':').next())
            .map(str::to_string);
        let after: BTreeMap<String, Value> = body
            .as_object()
            .map(|o| o.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
            .unwrap_or_default();
        if self.cfg.dry_run {
            return self.audit(
                out,
                cmd,
                &format!("jira:{key}"),
                kind,
                BTreeMap::new(),
                after,
                AuditResult::Skipped,
                Some("dry run: nothing written".into()),
                started,
            );
        }
        let answer = match &existing {
            Some(cid) => {
                self.jira
                    .call(
                        Method::PUT,
                        kind,
                        &format!("/rest/api/3/issue/{id}/{kind}/{cid}"),
                        Some(&body),
                    )
                    .await
            }
            None => self.add_stamped(&id, kind, cmd, &body).await,
        };
        match answer {
            Ok(v) => {
                if existing.is_none()
                    && let Some(cid) = v.get("id").and_then(Value::as_str)
                {
                    self.link(
                        out,
                        &cmd.target.external_ref,
                        &format!("jira:{kind}:{cid}"),
                        cid,
                        &cmd.command_id,
                    );
                }
                self.audit(
                    out,
                    cmd,
                    &format!("jira:{key}"),
                    kind,
                    BTreeMap::new(),
                    after,
                    AuditResult::Applied,
                    None,
                    started,
                );
            }
            Err((e, x)) => self.fail(
                out,
                w,
                kind,
                &e.stage_error(&format!("writing the {kind}"), x),
                started,
            ),
        }
    }

    /// Adds a comment or worklog without duplicates, like issue creates: an intent first; one
    /// found by its `sfjira.ref` property (after an intent without a link, or a failure that
    /// may have been applied) is linked instead of added again.
    async fn add_stamped(
        &self,
        issue: &str,
        kind: &'static str,
        cmd: &Command,
        body: &Value,
    ) -> Result<Value, (CallError, bool)> {
        let reference = &cmd.target.external_ref;
        let interrupted = self
            .links
            .get(reference)
            .is_some_and(|l| l.state == LinkState::Intent);
        if interrupted && let Some(found) = self.find_stamped(issue, kind, reference).await? {
            return Ok(found);
        }
        let path = format!("/rest/api/3/issue/{issue}/{kind}");
        if let Err(e) = self.record_intent(reference, &cmd.command_id).await {
            tracing::warn!(error = %e, "cannot record the {kind}'s intent");
            let e = CallError::Transport {
                method: Method::POST,
                path,
                message: "the intent could not be recorded in Kafka".into(),
            };
            return Err((e, true));
        }
        let mut backoff = self.jira.retry_policy().backoff();
        loop {
            match self
                .jira
                .call_once(Method::POST, kind, &path, Some(body))
                .await
            {
                Ok(v) => return Ok(v),
                Err(e) if e.retryable() => {
                    metrics::retry(kind);
                    let Some(delay) = backoff.next_delay(e.hint()) else {
                        return Err((e, true));
                    };
                    tokio::time::sleep(delay).await;
                    if e.maybe_applied()
                        && let Some(found) = self.find_stamped(issue, kind, reference).await?
                    {
                        return Ok(found);
                    }
                }
                Err(e) => return Err((e, false)),
            }
        }
    }

    /// The comment or worklog of `issue` stamped with `reference`, if any.
    async fn find_stamped(
        &self,
        issue: &str,
        kind: &'static str,
        reference: &str,
    ) -> Result<Option<Value>, (CallError, bool)> {
        let path = format!("/rest/api/3/issue/{issue}/{kind}?expand=properties&maxResults=5000");
        let v = self.jira.call(Method::GET, "list", &path, None).await?;
        let stamped = |c: &&Value| {
            c.get("properties")
                .and_then(Value::as_array)
                .is_some_and(|ps| {
                    ps.iter().any(|p| {
                        p.get("key").and_then(Value::as_str) == Some("sfjira.ref")
                            && p.pointer("/value/ref").and_then(Value::as_str) == Some(reference)
                    })
                })
        };
        let list = if kind == "comment" {
            "comments"
        } else {
            "worklogs"
        };
        Ok(v.get(list)
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .find(stamped)
            .cloned())
    }

    fn comment_body(&self, cmd: &Command) -> Result<Value, StageError> {
        let body = cmd
            .fields
            .get("body")
            .map(|f| adf(&f.value))
            .filter(|b| !b.is_null())
            .ok_or_else(|| {
                invalid(
                    ErrorCode::JiraCommandInvalid,
                    "a comment command needs a `body` field",
                )
            })?;
        Ok(json!({
            "body": body,
            // What jira-source reads as the comment's history marker (the echo stamp).
            // ...and the reference, so a retried add finds the comment instead of adding it twice.
            "properties": [
                {"key": "sfjira", "value": self.cfg.history_marker},
                {"key": "sfjira.ref", "value": {"ref": cmd.target.external_ref, "command_id": cmd.command_id}},
            ],
        }))
    }

    fn worklog_body(&self, cmd: &Command) -> Result<Value, StageError> {
        let get = |n: &str| cmd.fields.get(n).map(|f| &f.value).filter(|v| !v.is_null());
        let started = get("started").and_then(jira_time).ok_or_else(|| {
            invalid(
                ErrorCode::JiraCommandInvalid,
                "a worklog command needs `started` (RFC 3339 or epoch ms)",
            )
        })?;
        let seconds = get("timeSpentSeconds")
            .and_then(|v| {
                v.as_u64()
                    .or_else(|| v.as_f64().map(|f| f as u64))
                    .or_else(|| v.as_str()?.parse().ok())
            })
            .filter(|s| *s > 0)
            .ok_or_else(|| {
                invalid(
                    ErrorCode::JiraCommandInvalid,
                    "a worklog command needs a positive `timeSpentSeconds`",
                )
            })?;
        let mut body = json!({
            "started": started,
            "timeSpentSeconds": seconds,
            "properties": [{"key": "sfjira.ref", "value": {"ref": cmd.target.external_ref, "command_id": cmd.command_id}}],
        });
        if let Some(c) = get("comment") {
            body["comment"] = adf(c);
        }
        Ok(body)
    }
}
