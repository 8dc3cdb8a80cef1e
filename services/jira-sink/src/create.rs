//! Creating issues without duplicates, in bulk.
//!
//! Jira has no idempotency key, so the sink follows a protocol (docs/jira-sink.md):
//! 1. an `Intent` link for the reference is made durable in `sfjira.links` before any create;
//! 2. the create stamps the issue with the reference: issue property `sfjira` =
//!    `{"ref", "command_id"}` and a marker label ([`marker_label`], searchable by JQL);
//! 3. after the 201 the `Linked` link (both ways) is produced at once, outside the batch's
//!    transaction ([`Sink::publish_links`]): other stages wait for it.
//!
//! Whenever a create may have happened without its link being recorded — an `Intent` found
//! without a link (crash, lost answer), or a call that failed in a way that might have been
//! applied (timeout, 5xx) — the sink searches by the marker (after `reconcile_settle_ms`, JQL
//! being eventually consistent) and links what it finds instead of creating again.
//!
//! Creates go through `POST /issue/bulk` (≤ `bulk_size` per call); per-element failures are
//! handled per element: retryable ones (429/5xx/409) are tried again, the others dead-lettered.

use std::collections::{BTreeMap, HashMap};

use reqwest::Method;
use serde_json::{Map, Value, json};
use sfjira_core::audit::AuditResult;
use sfjira_core::command::{Command, Owner};
use sfjira_core::errors::{ErrorCode, StageError};
use sfjira_core::links::LinkState;
use tracing::Instrument;

use crate::fields::{history_metadata, labels_with_marker, marker_label, ref_property};
use crate::metrics;
use crate::sink::{CrashPoint, Outcome, Sink, Work, invalid, now_ms};

/// One issue to create: the commands coalesced into it (first = the one that creates) and the
/// merged command.
pub struct CreateJob {
    pub works: Vec<Work>,
    pub merged: Command,
}

/// The issue a job created (or found).
#[derive(Debug, Clone)]
pub struct Created {
    pub id: String,
    pub key: String,
}

/// A create ready to send: its body, what it writes, its marker label.
pub(crate) struct Prepared {
    pub(crate) job: CreateJob,
    pub(crate) body: Value,
    pub(crate) fields: BTreeMap<String, Value>,
    pub(crate) marker: String,
    pub(crate) started_ms: i64,
}

impl Sink {
    /// The `IssueUpdateDetails` of a create: every field of the command (a create writes them
    /// all), the stamps, and the parent through its link.
    pub(crate) fn create_body(
        &self,
        cmd: &Command,
    ) -> Result<(Value, BTreeMap<String, Value>), StageError> {
        let t = &cmd.target;
        let (Some(project), Some(issue_type)) = (&t.project, &t.issue_type) else {
            return Err(invalid(
                ErrorCode::JiraCommandInvalid,
                format!(
                    "{}: a create needs target.project and target.issue_type",
                    t.external_ref
                ),
            ));
        };
        let marker = marker_label(&t.external_ref);
        let mut fields = Map::new();
        let mut written = BTreeMap::new();
        for (name, fv) in &cmd.fields {
            let info = self
                .fields
                .resolve(name)
                .ok_or_else(|| unknown_field(name))?;
            let value = if info.id == "labels" {
                labels_with_marker(&fv.value, &marker)
            } else {
                self.fields.shape(info, &fv.value)
            };
            if value.is_null() {
                continue;
            }
            written.insert(info.id.clone(), value.clone());
            fields.insert(info.id.clone(), value);
        }
        if !fields.contains_key("labels") {
            fields.insert("labels".into(), json!([marker]));
        }
        if let Some(parent) = &t.parent_ref {
            let (_, key) = self.issue_of(parent).ok_or_else(|| {
                invalid(
                    ErrorCode::JiraLinkNotReady,
                    format!("parent {parent} has no Jira issue yet"),
                )
            })?;
            written.insert("parent".into(), json!({"key": key}));
            fields.insert("parent".into(), json!({"key": key}));
        }
        fields.insert("project".into(), json!({"key": project}));
        let issue_type = if issue_type.chars().all(|c| c.is_ascii_digit()) {
            json!({"id": issue_type})
        } else {
            json!({"name": issue_type})
        };
        fields.insert("issuetype".into(), issue_type);
        let body = json!({
            "fields": fields,
            "properties": [ref_property(&t.external_ref, &cmd.command_id)],
            "historyMetadata": history_metadata(
                &self.cfg.history_marker,
                &self.cfg.generator_id,
                &cmd.command_id,
                cmd.source.commit_time.timestamp_millis(),
            ),
        });
        Ok((body, written))
    }

    /// Creates (or finds) the issue of every job; records links and audit entries in `out`;
    /// failures go to the DLQ. Returns the created issues by reference.
    pub async fn create_issues(
        &self,
        jobs: Vec<CreateJob>,
        out: &mut Outcome,
    ) -> HashMap<String, Created> {
        let mut done = HashMap::new();
        let mut ready = Vec::new();
        for job in jobs {
            let started_ms = now_ms();
            match self.create_body(&job.merged) {
                Ok((body, fields)) => ready.push(Prepared {
                    marker: marker_label(&job.merged.target.external_ref),
                    job,
                    body,
                    fields,
                    started_ms,
                }),
                Err(e) => self.fail_job(out, &job, &e, started_ms),
            }
        }
        // An intent without a link: a create may have happened. Search before creating.
        let pending: Vec<&Prepared> = ready
            .iter()
            .filter(|p| {
                self.links
                    .get(&p.job.merged.target.external_ref)
                    .is_some_and(|l| l.state == LinkState::Intent)
            })
            .collect();
        let mut found = HashMap::new();
        if !pending.is_empty() {
            let oldest = pending
                .iter()
                .filter_map(|p| self.links.get(&p.job.merged.target.external_ref))
                .map(|l| l.at_ms)
                .max()
                .unwrap_or(0);
            self.settle(oldest).await;
            let markers: Vec<String> = pending.iter().map(|p| p.marker.clone()).collect();
            match self.search_markers(&markers).await {
                Ok(f) => found = f,
                Err(e) => {
                    for p in ready {
                        self.fail_job(out, &p.job, &e, p.started_ms);
                    }
                    return done;
                }
            }
        }
        let mut to_create = Vec::new();
        for p in ready {
            if let Some(c) = found.get(&p.marker) {
                self.finish(out, &p, c, true).await;
                done.insert(p.job.merged.target.external_ref.clone(), c.clone());
            } else {
                to_create.push(p);
            }
        }
        // Intents first, all at once (the producer batches them), each acknowledged.
        let intents = to_create.iter().map(|p| {
            self.record_intent(&p.job.merged.target.external_ref, &p.job.merged.command_id)
        });
        let failed: Vec<bool> = futures::future::join_all(intents)
            .await
            .into_iter()
            .map(|r| r.is_err())
            .collect();
        if failed.iter().any(|f| *f) {
            // Kafka is unreachable: nothing is created without a durable intent. The batch
            // fails to commit too, and is read and applied again.
            let e = invalid(
                ErrorCode::JiraRetriesExhausted,
                "recording the create intent in Kafka failed",
            );
            let mut kept = Vec::new();
            for (p, f) in to_create.into_iter().zip(failed) {
                if f {
                    self.fail_job(out, &p.job, &e, p.started_ms);
                } else {
                    kept.push(p);
                }
            }
            to_create = kept;
        }
        self.crash_if(CrashPoint::BeforeCall);
        let size = self.cfg.bulk_size.max(1);
        let mut chunks: Vec<Vec<Prepared>> = Vec::new();
        for p in to_create {
            match chunks.last_mut() {
                Some(c) if c.len() < size => c.push(p),
                _ => chunks.push(vec![p]),
            }
        }
        let results = futures::future::join_all(chunks.into_iter().map(|c| {
            // A bulk call serves many traces: it runs in its first command's.
            let span = c[0].job.works[0].span.clone();
            self.create_chunk(c).instrument(span)
        }))
        .await;
        let mut moves = Vec::new();
        for chunk in results {
            for (p, result) in chunk {
                match result {
                    Ok(c) => {
                        self.finish(out, &p, &c, false).await;
                        done.insert(p.job.merged.target.external_ref.clone(), c.clone());
                        moves.push((p, c));
                    }
                    Err(e) => self.fail_job(out, &p.job, &e, p.started_ms),
                }
            }
        }
        // The issues exist: their links go out now, not after the transitions below and the
        // rest of the batch.
        self.publish_links(out).await;
        // A new issue starts in the workflow's initial status: move it where it belongs.
        let moved = moves
            .iter()
            .filter(|(p, _)| p.job.merged.transition_to.is_some())
            .map(|(p, c)| async move {
                let cmd = &p.job.merged;
                let t = cmd.transition_to.as_ref().expect("filtered");
                let target = t.value.as_str().unwrap_or_default();
                if target.is_empty() {
                    return None;
                }
                let src = t.source_time.timestamp_millis();
                // Where is the new issue now? Already at the target (a workflow's initial
                // status, usually): nothing to walk, and no walk to race a person who starts
                // work on it right away. Moved by someone since the change, for a status both
                // sides own: their later move wins, exactly as on an update.
                let (now, changed_at) = self.status_now(&c.id).await;
                if now.as_deref().is_some_and(|n| n.eq_ignore_ascii_case(target)) {
                    return None;
                }
                if t.owner == Owner::Both && changed_at.is_some_and(|at| at > src) {
                    tracing::info!(key = %c.key, "status moved in Jira after the change; not moving it back");
                    return None;
                }
                self.walk(&c.id, target, now, cmd, src)
                    .await
                    .err()
                    .map(|e| (p, e))
            });
        for (p, e) in futures::future::join_all(moved).await.into_iter().flatten() {
            // The issue exists and is linked; only its status failed.
            self.fail(out, &p.job.works[0], "transition", &e, now_ms());
        }
        done
    }

    /// The issue's status and when it last changed in Jira (read with its changelog); both
    /// `None` when the issue cannot be read (the walk then reads the status itself).
    async fn status_now(&self, id: &str) -> (Option<String>, Option<i64>) {
        match self
            .jira
            .call(
                Method::GET,
                "read",
                &format!("/rest/api/3/issue/{id}?fields=status&expand=changelog"),
                None,
            )
            .await
        {
            Ok(v) => (
                v.pointer("/fields/status/name")
                    .and_then(Value::as_str)
                    .map(str::to_string),
                crate::ops::last_changed(&v, "status", &self.cfg.history_marker),
            ),
            Err(_) => (None, None),
        }
    }

    /// Links a created (or found) issue and audits every command of the job.
    async fn finish(&self, out: &mut Outcome, p: &Prepared, c: &Created, reconciled: bool) {
        let cmd = &p.job.merged;
        if reconciled {
            // Found by its marker: make its fields this command's (a create writes them all).
            let mut body = p.body.clone();
            if let Some(f) = body.get_mut("fields").and_then(Value::as_object_mut) {
                f.remove("project");
                f.remove("issuetype");
            }
            if let Some(o) = body.as_object_mut() {
                o.remove("properties");
            }
            if let Err((e, exhausted)) = self
                .jira
                .call(
                    Method::PUT,
                    "edit",
                    &format!("/rest/api/3/issue/{}", c.id),
                    Some(&body),
                )
                .await
            {
                tracing::warn!(error = %e, exhausted, key = %c.key, "re-applying fields to a reconciled issue failed");
            }
        }
        self.link(
            out,
            &cmd.target.external_ref,
            &format!("jira:{}", c.key),
            &c.id,
            &cmd.command_id,
        );
        for (name, fv) in &cmd.fields {
            if let Some(info) = self.fields.resolve(name) {
                self.wrote(
                    out,
                    &cmd.target.external_ref,
                    &info.id,
                    fv.source_time.timestamp_millis(),
                );
            }
        }
        let target = format!("jira:{}", c.key);
        let detail =
            reconciled.then(|| "found by its marker after an interrupted create".to_string());
        for (i, w) in p.job.works.iter().enumerate() {
            let detail = if i == 0 {
                detail.clone()
            } else {
                Some(format!("coalesced into the create by {}", cmd.command_id))
            };
            self.audit(
                out,
                &w.cmd,
                &target,
                "create",
                BTreeMap::new(),
                p.fields.clone(),
                AuditResult::Applied,
                detail,
                p.started_ms,
            );
        }
        if p.job.works.len() > 1 {
            metrics::coalesced(p.job.works.len() - 1);
        }
    }

    fn fail_job(&self, out: &mut Outcome, job: &CreateJob, err: &StageError, started_ms: i64) {
        for w in &job.works {
            self.fail(out, w, "create", err, started_ms);
        }
    }
}

pub fn unknown_field(name: &str) -> StageError {
    invalid(
        ErrorCode::JiraFieldUnknown,
        format!("field {name:?} is neither a field id nor a field name of the site (GET /field)"),
    )
}
