//! What every operation of the sink shares: the Jira client, the field catalog, the links, the
//! producers' topics, and the bookkeeping a batch accumulates (audit entries, link rows, dead
//! letters, the ids applied). Operations add records to an [`Outcome`] that the runtime commits
//! in one transaction with the consumed offsets — except links, produced outside it: an
//! `Intent` must be durable before its create, and a `Linked` row states a fact of Jira's (the
//! issue exists whatever becomes of the batch) that other stages wait for (see
//! [`Sink::publish_links`]).

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};

use serde_json::Value;
use sfjira_core::audit::{AuditEntry, AuditResult};
use sfjira_core::command::Command;
use sfjira_core::config::JiraSinkConfig;
use sfjira_core::dlq::{Attempts, DlqRouter, FailedAt, FailedRecord};
use sfjira_core::errors::{ErrorCode, StageError};
use sfjira_core::kafka::{IdempotentProducer, OutRecord};
use sfjira_core::links::{Link, LinkState, LinkStore};

use crate::fields::FieldCatalog;
use crate::jira::JiraClient;
use crate::metrics;

pub const STAGE: &str = "jira-sink";

/// One consumed command and where it came from (for its dead letter and offsets).
#[derive(Debug, Clone)]
pub struct Work {
    pub cmd: Command,
    pub origin: FailedRecord,
    /// The record's `process` span, continuing the trace from its headers (source →
    /// transformer → this sink): the Jira calls made for the command run inside it.
    pub span: tracing::Span,
}

/// Records a batch produces (committed with its offsets), and the command ids it finished.
#[derive(Debug, Default)]
pub struct Outcome {
    pub records: Vec<OutRecord>,
    /// `Linked` rows not yet published ([`Sink::publish_links`] sends them, or moves them to
    /// `records` when it cannot).
    pub unpublished_links: Vec<OutRecord>,
    /// Whether the batch linked anything (for the `AfterLink` crash point).
    pub linked: bool,
    pub finished: Vec<String>,
    /// (reference, field id) → source time (ms) of what was written, for the stale-write guard.
    pub written: Vec<((String, String), i64)>,
}

impl Outcome {
    pub fn merge(&mut self, other: Outcome) {
        self.records.extend(other.records);
        self.unpublished_links.extend(other.unpublished_links);
        self.linked |= other.linked;
        self.finished.extend(other.finished);
        self.written.extend(other.written);
    }
}

/// Where a test asks the process to die (env `SFJIRA_JIRA_SINK_CRASH_AT`): proves the create
/// protocol leaves exactly one issue per reference whatever step a crash interrupts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CrashPoint {
    /// The intent is durable; the create was not sent.
    BeforeCall,
    /// Jira answered 201; the link is not recorded.
    AfterCreate,
    /// The link (with audit and offsets) is committed.
    AfterLink,
}

impl CrashPoint {
    pub fn from_env() -> Option<CrashPoint> {
        match std::env::var("SFJIRA_JIRA_SINK_CRASH_AT").ok()?.as_str() {
            "before_call" => Some(CrashPoint::BeforeCall),
            "after_create" => Some(CrashPoint::AfterCreate),
            "after_link" => Some(CrashPoint::AfterLink),
            _ => None,
        }
    }
}

pub struct Sink {
    pub cfg: JiraSinkConfig,
    pub jira: Arc<JiraClient>,
    pub fields: FieldCatalog,
    pub links: Arc<LinkStore>,
    pub links_topic: String,
    pub audit_topic: String,
    pub dlq: DlqRouter,
    /// Links are produced outside the batch's transaction: an intent must be durable before
    /// the create is sent, a `Linked` row visible once the create is done (see
    /// [`Sink::publish_links`]), not when the batch commits.
    pub link_producer: Option<IdempotentProducer>,
    pub crash: Option<CrashPoint>,
    /// (reference, field id) → source time (ms) of the last value sfjira wrote there.
    pub written: Mutex<HashMap<(String, String), i64>>,
    /// Reference → (command id, code) of the last command for it that was dead-lettered.
    pub failed: Mutex<HashMap<String, (String, ErrorCode)>>,
}

impl Sink {
    /// Dies here if the test hook asks for it.
    pub fn crash_if(&self, at: CrashPoint) {
        if self.crash == Some(at) {
            eprintln!("sfjira-jira-sink: crash injected at {at:?}");
            std::process::abort();
        }
    }

    /// Makes an intent durable (and known to this process) before a create.
    pub async fn record_intent(&self, reference: &str, command_id: &str) -> Result<(), StageError> {
        let link = Link::intent(reference, command_id);
        if let Some(p) = &self.link_producer {
            p.send(&link.record(&self.links_topic)).await?;
        }
        self.links.remember(&link);
        Ok(())
    }

    /// The linked Jira issue of `reference`: (issue id, key).
    pub fn issue_of(&self, reference: &str) -> Option<(String, String)> {
        let link = self
            .links
            .get(reference)
            .filter(|l| l.state == LinkState::Linked)?;
        let key = link.counterpart?.strip_prefix("jira:")?.to_string();
        Some((link.counterpart_id.unwrap_or_else(|| key.clone()), key))
    }

    /// Records the link of a created record, both ways, for [`Self::publish_links`].
    pub fn link(&self, out: &mut Outcome, reference: &str, counterpart: &str, id: &str, cmd: &str) {
        let link = Link::linked(reference, counterpart, Some(id), cmd);
        self.links.remember(&link);
        out.unpublished_links
            .extend(link.records_both_ways(&self.links_topic));
        out.linked = true;
    }

    /// Produces the links recorded so far at once (idempotent producer, each acknowledged),
    /// not with the batch's transaction. The issue or comment exists in Jira whatever becomes
    /// of the batch, and other stages wait for its link — the salesforce-sink up to
    /// `attach_wait_ms` to attach a comment's Task, this sink up to `link_wait_ms` for a
    /// parent — while a batch at Jira's write limits can take minutes to commit (SFJ-9011 in
    /// the fault test). A batch that then aborts is applied again and finds the links: its
    /// creates become updates, never duplicates. Rows that cannot be produced now go with the
    /// batch's transaction, after what the batch recorded before them.
    pub async fn publish_links(&self, out: &mut Outcome) {
        let rows = std::mem::take(&mut out.unpublished_links);
        let Some(producer) = &self.link_producer else {
            out.records.extend(rows);
            return;
        };
        let sent = futures::future::join_all(rows.iter().map(|r| producer.send(r))).await;
        for (row, result) in rows.into_iter().zip(sent) {
            if let Err(e) = result {
                tracing::warn!(error = %e, "publishing a link failed; it goes with the batch's transaction");
                out.records.push(row);
            }
        }
    }

    /// The audit entry of one command.
    #[allow(clippy::too_many_arguments)]
    pub fn audit(
        &self,
        out: &mut Outcome,
        cmd: &Command,
        target: &str,
        operation: &str,
        before: BTreeMap<String, Value>,
        after: BTreeMap<String, Value>,
        result: AuditResult,
        detail: Option<String>,
        started_ms: i64,
    ) {
        let mut detail = detail;
        if let Some((id, code)) = self
            .failed
            .lock()
            .expect("failed map")
            .get(&cmd.target.external_ref)
            .filter(|(id, _)| *id != cmd.command_id)
            .filter(|_| result == AuditResult::Applied)
        {
            // The ordering rule: say so when a command goes past a dead-lettered one.
            metrics::applied_after_failure();
            let note =
                format!("applied after command {id} ({code}) of this record went to the DLQ");
            detail = Some(match detail {
                Some(d) => format!("{d}; {note}"),
                None => note,
            });
        }
        metrics::command(operation, result_label(result));
        let entry = AuditEntry {
            command_id: cmd.command_id.clone(),
            flow: cmd.flow.clone(),
            sink: STAGE.to_string(),
            target: target.to_string(),
            external_ref: cmd.target.external_ref.clone(),
            operation: operation.to_string(),
            before,
            after,
            result,
            detail,
            started_ms,
            finished_ms: now_ms(),
            source_time_ms: cmd.source.commit_time.timestamp_millis(),
        };
        out.records.push(entry.record(&self.audit_topic));
        // Finished for good (a replay is skipped) when applied or skipped; a command that also
        // failed (a new issue whose status could not be reached) stays replayable.
        if matches!(result, AuditResult::Applied | AuditResult::Skipped) {
            out.finished.push(cmd.command_id.clone());
        } else if result == AuditResult::Failed {
            out.finished.retain(|id| *id != cmd.command_id);
        }
    }

    /// A command that cannot be applied: its record to the DLQ (with Jira's answer in the
    /// message), a `failed` audit entry, and the ordering rule's memory.
    pub fn fail(
        &self,
        out: &mut Outcome,
        w: &Work,
        operation: &str,
        err: &StageError,
        started_ms: i64,
    ) {
        tracing::warn!(command = %w.cmd.command_id, reference = %w.cmd.target.external_ref, error = %err, "command dead-lettered");
        let mut rec = self
            .dlq
            .dead_letter(&w.origin, err, FailedAt::TaskPut, Attempts::once());
        rec.set_header("sfjira.command-id", w.cmd.command_id.clone());
        out.records.push(rec);
        self.failed.lock().expect("failed map").insert(
            w.cmd.target.external_ref.clone(),
            (w.cmd.command_id.clone(), err.code),
        );
        let target = self
            .issue_of(&w.cmd.target.external_ref)
            .map(|(_, k)| format!("jira:{k}"))
            .unwrap_or_else(|| w.cmd.target.external_ref.clone());
        self.audit(
            out,
            &w.cmd,
            &target,
            operation,
            BTreeMap::new(),
            BTreeMap::new(),
            AuditResult::Failed,
            Some(format!("{}: {}", err.code, err.message)),
            started_ms,
        );
    }

    /// Notes that `field` of `reference` was written with a value of source time `at` (ms).
    pub fn wrote(&self, out: &mut Outcome, reference: &str, field: &str, at: i64) {
        out.written
            .push(((reference.to_string(), field.to_string()), at));
    }

    /// The source time (ms) of the last value sfjira wrote to `field` of `reference`.
    pub fn last_written(&self, reference: &str, field: &str) -> Option<i64> {
        self.written
            .lock()
            .expect("written map")
            .get(&(reference.to_string(), field.to_string()))
            .copied()
    }

    /// Remembers what a committed batch wrote.
    pub fn remember_written(&self, written: &[((String, String), i64)]) {
        let mut map = self.written.lock().expect("written map");
        for (k, at) in written {
            let e = map.entry(k.clone()).or_insert(*at);
            *e = (*e).max(*at);
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

pub fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

/// A catalogued error without a cause.
pub fn invalid(code: ErrorCode, message: impl Into<String>) -> StageError {
    StageError::new(code, message)
}
