//! Applying a batch of commands: resolve them ([`crate::resolve`]), merge them into rows
//! ([`crate::rows`]), send each round's rows per object and kind in Collections calls of up to
//! `batch_size`, and match every row's result back to its commands. Rows Salesforce could not
//! lock are sent again after a backoff; rows that lost a create race to a concurrent upsert of
//! the same key (`DUPLICATE_VALUE`) are sent again alone, which updates the record the other
//! upsert created; every other row error fails only its own commands while the rest of the
//! call succeeds (`allOrNone=false`).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use sfjira_core::audit::AuditResult;
use sfjira_core::command::Command;
use sfjira_core::config::SalesforceSinkConfig;
use sfjira_core::errors::{ErrorCode, StageError};
use sfjira_core::links::{Link, LinkStore};

use crate::api::{Api, CallFailure, Pauser, RowResult};
use crate::client::{SalesforceClient, SfError};
use crate::events::{RecordWritten, RetryingRows};
use crate::outcome::{Failure, Outcome, RowAction, failure_of, now_ms, row_action};
use crate::resolve::{Context, Plan, ResolveSettings, resolve};
use crate::rows::{RecordKey, Row, RowKind, groups, rounds};

/// The login stopped working: nothing of the batch may be committed.
#[derive(Debug, thiserror::Error)]
#[error("Salesforce login failed: {0}")]
pub struct LoginFailed(pub String);

pub struct Applier {
    pub api: Api,
    pub links: Arc<LinkStore>,
    batch_size: usize,
    concurrency: usize,
    settings: ResolveSettings,
}

/// How a row ended.
enum RowEnd {
    Ok { id: String, created: bool },
    Err(Failure),
}

impl Applier {
    pub fn new(
        cfg: &SalesforceSinkConfig,
        client: Arc<SalesforceClient>,
        links: Arc<LinkStore>,
        our_user: Option<String>,
    ) -> Self {
        Applier {
            api: Api {
                client,
                retry: cfg.retry.clone(),
                limit_pause: Duration::from_secs(cfg.limit_pause_secs),
                concurrency: cfg.max_concurrent_calls,
            },
            links,
            batch_size: cfg.batch_size,
            concurrency: cfg.max_concurrent_calls,
            settings: ResolveSettings {
                read_before_write: cfg.read_before_write,
                attach_wait: Duration::from_millis(cfg.attach_wait_ms),
                our_user,
            },
        }
    }

    /// Applies `commands` in order; one outcome per command, same index. A command attached
    /// to a record that an earlier command of the batch creates goes in a second pass, once
    /// that record's link exists.
    pub async fn apply(
        &self,
        pauser: &dyn Pauser,
        commands: &[&Command],
    ) -> Result<Vec<Outcome>, LoginFailed> {
        let mut earlier = std::collections::HashSet::new();
        let mut later = Vec::new();
        for (i, c) in commands.iter().enumerate() {
            let waits_on_batch = c.target.attach_to.as_ref().is_some_and(|parent| {
                earlier.contains(parent.as_str()) && self.links.counterpart(parent).is_none()
            });
            if waits_on_batch {
                later.push(i);
            }
            earlier.insert(c.target.external_ref.as_str());
        }
        if later.is_empty() {
            return self.apply_pass(pauser, commands).await;
        }
        let first: Vec<usize> = (0..commands.len()).filter(|i| !later.contains(i)).collect();
        let pick = |idx: &[usize]| idx.iter().map(|&i| commands[i]).collect::<Vec<_>>();
        let mut out: Vec<Option<Outcome>> = (0..commands.len()).map(|_| None).collect();
        for pass in [first, later] {
            let outcomes = self.apply_pass(pauser, &pick(&pass)).await?;
            for (i, o) in pass.into_iter().zip(outcomes) {
                out[i] = Some(o);
            }
        }
        Ok(out
            .into_iter()
            .map(|o| o.expect("every command passed"))
            .collect())
    }

    async fn apply_pass(
        &self,
        pauser: &dyn Pauser,
        commands: &[&Command],
    ) -> Result<Vec<Outcome>, LoginFailed> {
        let plans = resolve(&self.api, &self.links, &self.settings, pauser, commands)
            .await
            .map_err(LoginFailed)?;
        let mut outcomes: Vec<Option<Outcome>> = Vec::with_capacity(plans.len());
        let mut writes = Vec::new();
        let mut contexts: BTreeMap<usize, Context> = BTreeMap::new();
        for (i, plan) in plans.into_iter().enumerate() {
            match plan {
                Plan::Done(o) => outcomes.push(Some(o)),
                Plan::Write(w, ctx) => {
                    outcomes.push(None);
                    contexts.insert(i, ctx);
                    writes.push(w);
                }
            }
        }
        let written: BTreeMap<usize, serde_json::Map<String, serde_json::Value>> = writes
            .iter()
            .map(|w| (w.command, w.fields.clone()))
            .collect();
        for round in rounds(writes) {
            for ((object, kind), rows) in groups(round) {
                let ends = self.send_group(pauser, &object, &kind, rows).await?;
                for (row, end) in ends {
                    for (n, &c) in row.commands.iter().enumerate() {
                        let ctx = contexts.remove(&c).unwrap_or_default();
                        let cmd = commands[c];
                        let o = outcome(cmd, &row, &end, ctx, &written[&c], n == 0);
                        if let Some(link) = &o.link {
                            self.links.remember(link);
                        }
                        outcomes[c] = Some(o);
                    }
                }
            }
        }
        let outcomes: Vec<Outcome> = outcomes
            .into_iter()
            .map(|o| o.expect("every command has an outcome"))
            .collect();
        for (cmd, o) in commands.iter().zip(&outcomes) {
            RecordWritten {
                object: &cmd.target.entity,
                operation: o.operation,
                result: result_label(o.result),
            }
            .emit();
        }
        Ok(outcomes)
    }

    async fn write_chunk<'a>(
        &'a self,
        pauser: &'a dyn Pauser,
        object: &'a str,
        kind: &'a RowKind,
        chunk: &'a [Row],
    ) -> (&'a [Row], Result<Vec<RowResult>, CallFailure>) {
        let refs: Vec<&Row> = chunk.iter().collect();
        (chunk, self.api.write(pauser, object, kind, &refs).await)
    }

    /// Sends one object's rows of one kind until each has an end.
    async fn send_group(
        &self,
        pauser: &dyn Pauser,
        object: &str,
        kind: &RowKind,
        rows: Vec<Row>,
    ) -> Result<Vec<(Row, RowEnd)>, LoginFailed> {
        let mut done: Vec<(Row, RowEnd)> = Vec::with_capacity(rows.len());
        let mut pending = rows;
        let mut backoff = self.api.retry.backoff();
        loop {
            let mut again: Vec<(Row, SfError)> = Vec::new();
            let mut serial: Vec<(Row, SfError)> = Vec::new();
            let attempts = backoff.attempts() + 1;
            // Chunks hold distinct records, so they may be in flight together; results come
            // back in chunk order.
            let calls: Vec<_> = pending
                .chunks(self.batch_size)
                .map(|chunk| self.write_chunk(pauser, object, kind, chunk))
                .collect();
            let calls: Vec<_> = futures::stream::iter(calls)
                .buffered(self.concurrency)
                .collect()
                .await;
            for (chunk, result) in calls {
                match result {
                    Ok(results) => {
                        for (row, r) in chunk.iter().zip(results) {
                            match r {
                                RowResult::Ok { id, created } => {
                                    done.push((row.clone(), RowEnd::Ok { id, created }));
                                }
                                RowResult::Err(e) => match row_action(&e.status_code) {
                                    RowAction::RetryLater => again.push((row.clone(), e)),
                                    RowAction::RetrySerially => serial.push((row.clone(), e)),
                                    RowAction::Fail(_) => done
                                        .push((row.clone(), RowEnd::Err(failure_of(&e, attempts)))),
                                },
                            }
                        }
                    }
                    Err(CallFailure::Login(m)) => return Err(LoginFailed(m)),
                    Err(f) => {
                        for row in chunk {
                            done.push((row.clone(), RowEnd::Err(call_failure(&f, attempts))));
                        }
                    }
                }
            }
            if !serial.is_empty() {
                RetryingRows {
                    reason: "duplicate",
                    rows: serial.len(),
                    delay: Duration::ZERO,
                }
                .emit();
            }
            // A lost create race: the key exists now, so the same upsert alone updates it.
            for (row, first) in serial {
                match self.api.write(pauser, object, kind, &[&row]).await {
                    Ok(mut r) => match r.pop() {
                        Some(RowResult::Ok { id, created }) => {
                            done.push((row, RowEnd::Ok { id, created }));
                        }
                        Some(RowResult::Err(e))
                            if row_action(&e.status_code) == RowAction::RetryLater =>
                        {
                            again.push((row, e));
                        }
                        Some(RowResult::Err(e)) => {
                            done.push((row, RowEnd::Err(failure_of(&e, attempts + 1))));
                        }
                        None => done.push((row, RowEnd::Err(failure_of(&first, attempts)))),
                    },
                    Err(CallFailure::Login(m)) => return Err(LoginFailed(m)),
                    Err(f) => done.push((row, RowEnd::Err(call_failure(&f, attempts + 1)))),
                }
            }
            if again.is_empty() {
                return Ok(done);
            }
            match backoff.next_delay(None) {
                Some(delay) => {
                    RetryingRows {
                        reason: "lock",
                        rows: again.len(),
                        delay,
                    }
                    .emit();
                    tokio::time::sleep(delay).await;
                    pending = again.into_iter().map(|(r, _)| r).collect();
                }
                None => {
                    let attempts = backoff.attempts();
                    for (row, e) in again {
                        done.push((row, RowEnd::Err(failure_of(&e, attempts))));
                    }
                    return Ok(done);
                }
            }
        }
    }
}

fn call_failure(f: &CallFailure, attempts: u32) -> Failure {
    match f {
        CallFailure::Rejected(errors) => {
            let e = errors.first().cloned().unwrap_or(SfError {
                status_code: String::new(),
                message: "the call was rejected".into(),
                fields: vec![],
            });
            let mut f = failure_of(&e, attempts);
            // A whole call answered 404: the object or its external id field does not exist.
            if e.status_code == "NOT_FOUND" {
                f.error = StageError::new(
                    ErrorCode::SalesforceFieldInvalid,
                    format!(
                        "NOT_FOUND: the object or its external id field does not exist ({})",
                        e.message
                    ),
                );
            }
            f
        }
        CallFailure::Exhausted { error, attempts } => Failure {
            error: StageError::new(ErrorCode::TargetUnavailable, error.to_string()),
            salesforce: None,
            attempts: *attempts,
        },
        CallFailure::Login(m) => Failure {
            error: StageError::new(ErrorCode::SalesforceSinkLoginFailed, m.clone()),
            salesforce: None,
            attempts,
        },
    }
}

fn outcome(
    cmd: &Command,
    row: &Row,
    end: &RowEnd,
    ctx: Context,
    written: &serde_json::Map<String, serde_json::Value>,
    first: bool,
) -> Outcome {
    match end {
        RowEnd::Err(f) => {
            let mut o = Outcome::failed(
                &cmd.target.external_ref,
                Failure {
                    error: f.error.clone_for(&cmd.target.external_ref),
                    salesforce: f.salesforce.clone(),
                    attempts: f.attempts,
                },
            );
            if let RecordKey::Id(id) = &row.key {
                o.target = format!("salesforce:{}:{id}", row.object);
            }
            o.before = ctx.before;
            o
        }
        RowEnd::Ok { id, created } => {
            let target = format!("salesforce:{}:{id}", row.object);
            let operation = match (&row.kind, created) {
                (RowKind::Delete, _) => "delete",
                (_, true) => "create",
                _ => "update",
            };
            let link = (!ctx.linked && first && !id.is_empty() && row.kind != RowKind::Delete)
                .then(|| {
                    Link::linked(&cmd.target.external_ref, &target, Some(id), &cmd.command_id)
                });
            let mut after: BTreeMap<String, serde_json::Value> = written
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect();
            if let RecordKey::Ext { field, value } = &row.key {
                after.insert(field.clone(), serde_json::Value::String(value.clone()));
            }
            Outcome {
                result: AuditResult::Applied,
                operation,
                target,
                link,
                // A record created here had no values before.
                before: if *created {
                    BTreeMap::new()
                } else {
                    ctx.before
                },
                after,
                detail: (!ctx.superseded.is_empty()).then(|| {
                    format!(
                        "superseded (Salesforce changed them later): {}",
                        ctx.superseded.join(", ")
                    )
                }),
                failure: None,
                finished_ms: now_ms(),
            }
        }
    }
}

pub fn result_label(r: AuditResult) -> &'static str {
    match r {
        AuditResult::Applied => "applied",
        AuditResult::Skipped => "skipped",
        AuditResult::Superseded => "superseded",
        AuditResult::Failed => "failed",
    }
}
