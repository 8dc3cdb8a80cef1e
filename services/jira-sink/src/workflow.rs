//! Statuses: walking an issue through its workflow to a target status (from
//! `GET transitions`, several steps when needed, back to where it started when the target is
//! unreachable), and the `CLOSE` and `DELETE` commands (of issues; a comment's or worklog's
//! `DELETE` is in `attached.rs`).

use std::collections::{BTreeMap, HashSet};

use reqwest::Method;
use serde_json::{Value, json};
use sfjira_core::audit::AuditResult;
use sfjira_core::command::Command;
use sfjira_core::config::DeleteMode;
use sfjira_core::errors::{ErrorCode, StageError};

use crate::lanes::is_attached;
use crate::sink::{Outcome, Sink, Work, invalid, now_ms};

/// Most transitions taken to reach one status.
const MAX_STEPS: usize = 10;

impl Sink {
    /// Moves the issue to the status named `target`: takes a transition leading there when
    /// one is offered, else one to a status not visited yet, up to [`MAX_STEPS`]. `now` is the
    /// issue's status when known. When the target cannot be reached the issue is walked back
    /// to where it started (best effort) and the error is `SFJ-8008`.
    pub async fn walk(
        &self,
        id: &str,
        target: &str,
        now: Option<String>,
        cmd: &Command,
        source_ms: i64,
    ) -> Result<(), StageError> {
        let start = match now {
            Some(s) => s,
            None => self.status_of(id).await?,
        };
        let result = self
            .walk_to(id, target, start.clone(), cmd, source_ms)
            .await;
        if let Err(e) = &result
            && e.code == ErrorCode::JiraStatusUnreachable
            && let Err(back) = self
                .walk_to(id, &start, String::new(), cmd, source_ms)
                .await
        {
            tracing::warn!(error = %back, "could not walk the issue back to {start:?}");
        }
        result
    }

    async fn walk_to(
        &self,
        id: &str,
        target: &str,
        now: String,
        cmd: &Command,
        source_ms: i64,
    ) -> Result<(), StageError> {
        let mut now = if now.is_empty() {
            self.status_of(id).await?
        } else {
            now
        };
        let mut visited: HashSet<String> = HashSet::new();
        for _ in 0..MAX_STEPS {
            if now.eq_ignore_ascii_case(target) {
                return Ok(());
            }
            visited.insert(now.to_lowercase());
            let v = self
                .jira
                .call(
                    Method::GET,
                    "transitions",
                    &format!("/rest/api/3/issue/{id}/transitions"),
                    None,
                )
                .await
                .map_err(|(e, x)| e.stage_error("listing transitions", x))?;
            let ts: Vec<(String, String)> = v
                .get("transitions")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .filter_map(|t| {
                    Some((
                        t.get("id")?.as_str()?.to_string(),
                        t.pointer("/to/name")?.as_str()?.to_string(),
                    ))
                })
                .collect();
            let pick = ts
                .iter()
                .find(|(_, to)| to.eq_ignore_ascii_case(target))
                .or_else(|| {
                    ts.iter()
                        .find(|(_, to)| !visited.contains(&to.to_lowercase()))
                });
            let Some((tid, to)) = pick else { break };
            let body =
                json!({"transition": {"id": tid}, "historyMetadata": self.hm(cmd, source_ms)});
            self.jira
                .call(
                    Method::POST,
                    "transition",
                    &format!("/rest/api/3/issue/{id}/transitions"),
                    Some(&body),
                )
                .await
                .map_err(|(e, x)| e.stage_error("transitioning the issue", x))?;
            now = to.clone();
        }
        if now.eq_ignore_ascii_case(target) {
            return Ok(());
        }
        Err(invalid(
            ErrorCode::JiraStatusUnreachable,
            format!(
                "no transition path to status {target:?} within {MAX_STEPS} steps (stopped at {now:?})"
            ),
        ))
    }

    pub(crate) async fn status_of(&self, id: &str) -> Result<String, StageError> {
        let v = self
            .jira
            .call(
                Method::GET,
                "get",
                &format!("/rest/api/3/issue/{id}?fields=status"),
                None,
            )
            .await
            .map_err(|(e, x)| e.stage_error("reading the status", x))?;
        Ok(v.pointer("/fields/status/name")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string())
    }

    /// `DELETE`: deletes the linked issue, or closes it (`delete_mode: close`); of a comment or
    /// worklog (`target.entity`), deletes that ([`Sink::delete_attached`]).
    pub async fn delete(&self, out: &mut Outcome, w: &Work) {
        if is_attached(&w.cmd) {
            return self.delete_attached(out, w).await;
        }
        if self.cfg.delete_mode == DeleteMode::Close {
            return self.close(out, w, "delete").await;
        }
        let started = now_ms();
        let cmd = &w.cmd;
        let Some((id, key)) = self.issue_of(&cmd.target.external_ref) else {
            return self.audit(
                out,
                cmd,
                &cmd.target.external_ref,
                "delete",
                BTreeMap::new(),
                BTreeMap::new(),
                AuditResult::Skipped,
                Some("no linked issue".into()),
                started,
            );
        };
        if self.cfg.dry_run {
            return self.audit(
                out,
                cmd,
                &format!("jira:{key}"),
                "delete",
                BTreeMap::new(),
                BTreeMap::new(),
                AuditResult::Skipped,
                Some("dry run: nothing written".into()),
                started,
            );
        }
        match self
            .jira
            .call(
                Method::DELETE,
                "delete",
                &format!("/rest/api/3/issue/{id}?deleteSubtasks=true"),
                None,
            )
            .await
        {
            Ok(_) => self.audit(
                out,
                cmd,
                &format!("jira:{key}"),
                "delete",
                BTreeMap::new(),
                BTreeMap::new(),
                AuditResult::Applied,
                None,
                started,
            ),
            // Already gone (a replay after the delete): nothing to do.
            Err((e, _)) if e.status() == Some(404) => self.audit(
                out,
                cmd,
                &format!("jira:{key}"),
                "delete",
                BTreeMap::new(),
                BTreeMap::new(),
                AuditResult::Skipped,
                Some("already deleted".into()),
                started,
            ),
            Err((e, x)) => self.fail(
                out,
                w,
                "delete",
                &e.stage_error("deleting the issue", x),
                started,
            ),
        }
    }

    /// `CLOSE` (and deletes in `close` mode): walks the issue to `closed_status`.
    pub async fn close(&self, out: &mut Outcome, w: &Work, operation: &str) {
        let started = now_ms();
        let cmd = &w.cmd;
        let Some((id, key)) = self.issue_of(&cmd.target.external_ref) else {
            return self.audit(
                out,
                cmd,
                &cmd.target.external_ref,
                operation,
                BTreeMap::new(),
                BTreeMap::new(),
                AuditResult::Skipped,
                Some("no linked issue".into()),
                started,
            );
        };
        let target = self.cfg.closed_status.clone();
        let before = match self.status_of(&id).await {
            Ok(s) => s,
            Err(e) => return self.fail(out, w, operation, &e, started),
        };
        if before.eq_ignore_ascii_case(&target) || self.cfg.dry_run {
            let d = if self.cfg.dry_run {
                "dry run: nothing written"
            } else {
                "already closed"
            };
            return self.audit(
                out,
                cmd,
                &format!("jira:{key}"),
                operation,
                BTreeMap::new(),
                BTreeMap::new(),
                AuditResult::Skipped,
                Some(d.into()),
                started,
            );
        }
        match self
            .walk(
                &id,
                &target,
                Some(before.clone()),
                cmd,
                cmd.source.commit_time.timestamp_millis(),
            )
            .await
        {
            Ok(()) => self.audit(
                out,
                cmd,
                &format!("jira:{key}"),
                operation,
                BTreeMap::from([("status".to_string(), json!(before))]),
                BTreeMap::from([("status".to_string(), json!(target))]),
                AuditResult::Applied,
                None,
                started,
            ),
            Err(e) => self.fail(out, w, operation, &e, started),
        }
    }
}
