//! Comments and worklogs: added to (or, when their own reference is linked, updated on) the
//! issue their command attaches to, once that issue is linked (bounded wait). Comment bodies
//! become ADF; comments carry the echo stamp (`sfjira` = the history marker) and their
//! reference (`sfjira.ref`), which makes adding them idempotent like issue creates.
//!
//! The audit says which it was, for `sfjira rollback`: an add records `before.id = null` and
//! `after.id` = the new comment's (worklog's) id; an edit records the id on both sides. A
//! `DELETE` whose `target.entity` is `comment` or `worklog` removes the one linked to its
//! reference ([`Sink::delete_attached`]).

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
    /// The Jira issue `attach_to` names, (id or key, key): the issue linked to that reference,
    /// or, for a Jira issue's own reference (`jira:PROJ-7`, what `sfjira rollback` writes from
    /// the audit), that issue (Jira takes a key wherever it takes an id, and finds a moved
    /// issue by its old key, reference §3.2).
    pub fn attached_issue(&self, reference: &str) -> Option<(String, String)> {
        self.issue_of(reference).or_else(|| {
            let key = reference.strip_prefix("jira:")?;
            is_issue_key(key).then(|| (key.to_string(), key.to_string()))
        })
    }

    /// The issue of `cmd.target.attach_to` (`what` names the command in the error when it has
    /// none), waiting (bounded) for its link.
    async fn issue_attached_to(
        &self,
        cmd: &Command,
        what: &str,
    ) -> Result<(String, String), StageError> {
        let Some(reference) = cmd.target.attach_to.as_deref() else {
            return Err(invalid(
                ErrorCode::JiraCommandInvalid,
                format!("{what} needs target.attach_to (the issue it is on)"),
            ));
        };
        if let Some(found) = self.attached_issue(reference) {
            return Ok(found);
        }
        let wait = std::time::Duration::from_millis(self.cfg.link_wait_ms);
        self.links
            .wait_for(reference, wait, std::time::Duration::from_millis(100))
            .await;
        self.attached_issue(reference).ok_or_else(|| {
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
        let (id, key) = match self
            .issue_attached_to(cmd, &format!("a {kind} command"))
            .await
        {
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
        let mut after: BTreeMap<String, Value> = body
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
        // Add or edit, for the audit (and rollback): an add had no id before.
        let mut before = BTreeMap::from([("id".to_string(), json!(existing))]);
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
                    self.publish_links(out).await;
                }
                let written = existing
                    .clone()
                    .or_else(|| v.get("id").and_then(Value::as_str).map(str::to_string));
                match written {
                    Some(cid) => {
                        after.insert("id".into(), json!(cid));
                    }
                    // No id in Jira's answer: the audit cannot say which comment it was.
                    None => before.clear(),
                }
                self.audit(
                    out,
                    cmd,
                    &format!("jira:{key}"),
                    kind,
                    before,
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

    /// `DELETE` of a comment or worklog (`target.entity`): removes the one linked to
    /// `target.external_ref` from the issue of `target.attach_to` — `DELETE
    /// /rest/api/3/issue/{issue}/comment/{id}` (`…/worklog/{id}?adjustEstimate=auto`: Jira's
    /// default, explicit; the add adjusted the remaining estimate the same way). 204 is done;
    /// 404 means it is gone already (a replay, or removed by hand): done too, audited
    /// `skipped`; 429/5xx are retried by the client; other refusals go to the DLQ (Jira's
    /// OpenAPI spec answers 400, not 403, when the account may not delete it: SFJ-8004).
    pub async fn delete_attached(&self, out: &mut Outcome, w: &Work) {
        let started = now_ms();
        let cmd = &w.cmd;
        // `lanes::is_attached` sends only comments and worklogs here. The operation names the
        // audit entry and the API-call metric's endpoint alike.
        let (kind, operation, query) = match cmd.target.entity.as_str() {
            "comment" => ("comment", "delete_comment", ""),
            _ => ("worklog", "delete_worklog", "?adjustEstimate=auto"),
        };
        let reference = &cmd.target.external_ref;
        let (issue, key) = match self
            .issue_attached_to(cmd, &format!("a DELETE of a {kind}"))
            .await
        {
            Ok(found) => found,
            Err(e) => return self.fail(out, w, operation, &e, started),
        };
        let target = format!("jira:{key}");
        let skip = |out: &mut Outcome, before: BTreeMap<String, Value>, why: String| {
            self.audit(
                out,
                cmd,
                &target,
                operation,
                before,
                BTreeMap::new(),
                AuditResult::Skipped,
                Some(why),
                started,
            )
        };
        let id = match self.links.get(reference) {
            Some(l) if l.state == LinkState::Linked => l
                .counterpart
                .as_deref()
                .and_then(|c| c.strip_prefix(&format!("jira:{kind}:")))
                .map(str::to_string),
            // An add was interrupted: it may have happened; its stamp says.
            Some(_) => match self.find_stamped(&issue, kind, reference).await {
                Ok(found) => found
                    .as_ref()
                    .and_then(|v| v.get("id"))
                    .and_then(Value::as_str)
                    .map(str::to_string),
                Err((e, x)) => {
                    let e = e.stage_error(&format!("looking for the {kind}"), x);
                    return self.fail(out, w, operation, &e, started);
                }
            },
            None => None,
        };
        let Some(id) = id else {
            return skip(out, BTreeMap::new(), format!("no linked {kind}"));
        };
        let before = BTreeMap::from([("id".to_string(), json!(id))]);
        if self.cfg.dry_run {
            return skip(out, before, "dry run: nothing written".into());
        }
        let path = format!("/rest/api/3/issue/{issue}/{kind}/{id}{query}");
        match self.jira.call(Method::DELETE, operation, &path, None).await {
            Ok(_) => self.audit(
                out,
                cmd,
                &target,
                operation,
                before,
                BTreeMap::from([("id".to_string(), Value::Null)]),
                AuditResult::Applied,
                None,
                started,
            ),
            Err((e, _)) if e.status() == Some(404) => {
                skip(out, before, format!("already deleted (Jira: {e})"))
            }
            Err((e, x)) => self.fail(
                out,
                w,
                operation,
                &e.stage_error(&format!("deleting the {kind}"), x),
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

/// Whether `s` is a Jira issue key (`PROJ-7`): a project key (a letter, then letters, digits or
/// `_`) and a number.
fn is_issue_key(s: &str) -> bool {
    let Some((project, number)) = s.rsplit_once('-') else {
        return false;
    };
    project
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic())
        && project
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_')
        && !number.is_empty()
        && number.chars().all(|c| c.is_ascii_digit())
}

#[cfg(test)]
mod tests {
    use super::is_issue_key;

    #[test]
    fn issue_keys_are_told_from_other_references() {
        assert!(is_issue_key("PROJ-7"));
        assert!(is_issue_key("AB_2-10042"));
        for not in [
            "comment:10042",
            "PROJ",
            "-7",
            "PROJ-",
            "PROJ-7a",
            "7-7",
            "Opportunity:006",
        ] {
            assert!(!is_issue_key(not), "{not}");
        }
    }
}
