//! Applying one batch of commands: the order rules.
//!
//! - Commands are grouped in **lanes** by the issue they touch (an issue's own reference; for
//!   comments and worklogs — adds, edits, deletes — the issue they attach to), each lane in
//!   consumption order. Lanes run concurrently (the client's concurrency cap bounds the calls
//!   in flight); a lane runs its commands one after the other.
//! - **Creates first, in bulk**: a lane whose first commands are `UPSERT`s of a reference with
//!   no link gets one create (those upserts coalesced, the later value of a field winning).
//!   All creates of the batch go through bulk create together, **parents before children**:
//!   a create whose `parent_ref` is created in the same batch waits for the next wave; one
//!   whose parent is elsewhere waits (bounded, `link_wait_ms`) for the parent's link.
//! - Then each lane's remaining commands, runs of consecutive `UPSERT`s **coalesced into one
//!   `PUT`** (Jira limits writes per issue).

use std::collections::{HashMap, HashSet};

use std::time::Duration;

use futures::StreamExt;
use futures::future::join_all;
use sfjira_core::audit::AuditResult;
use sfjira_core::command::{Command, CommandKind, FieldValue};
use tracing::Instrument;

use crate::create::CreateJob;
use crate::sink::{Outcome, Sink, Work, now_ms};

/// Whether a command is about a comment or worklog (adds, edits, deletes) rather than an issue.
pub fn is_attached(cmd: &Command) -> bool {
    match cmd.kind {
        CommandKind::Comment | CommandKind::Worklog => true,
        CommandKind::Delete => matches!(cmd.target.entity.as_str(), "comment" | "worklog"),
        _ => false,
    }
}

/// The lane a command belongs to.
fn lane_key(cmd: &Command) -> &str {
    if is_attached(cmd) {
        cmd.target
            .attach_to
            .as_deref()
            .unwrap_or(&cmd.target.external_ref)
    } else {
        &cmd.target.external_ref
    }
}

/// Groups `works` into lanes, keeping the order of first appearance and, within a lane, the
/// order of consumption.
pub fn lanes(works: Vec<Work>) -> Vec<Vec<Work>> {
    let mut order: Vec<String> = Vec::new();
    let mut by_key: HashMap<String, Vec<Work>> = HashMap::new();
    for w in works {
        let key = lane_key(&w.cmd).to_string();
        by_key
            .entry(key.clone())
            .or_insert_with(|| {
                order.push(key.clone());
                Vec::new()
            })
            .push(w);
    }
    // Within a lane, the issue's own commands go first: a comment from another partition
    // (no order between partitions) must not wait for a create queued behind it.
    order
        .into_iter()
        .filter_map(|k| by_key.remove(&k))
        .map(|mut lane| {
            lane.sort_by_key(|w| is_attached(&w.cmd));
            lane
        })
        .collect()
}

/// The commands of a run merged into one: fields and status of later commands win when they
/// changed (or when the earlier value did not change either).
pub fn merge(works: &[Work]) -> Command {
    let mut merged = works[0].cmd.clone();
    for w in &works[1..] {
        for (name, fv) in &w.cmd.fields {
            let keep_old = merged
                .fields
                .get(name)
                .is_some_and(|old| old.changed && !fv.changed);
            if !keep_old {
                merged.fields.insert(name.clone(), fv.clone());
            }
        }
        merged.transition_to = pick(merged.transition_to.take(), w.cmd.transition_to.clone());
        if w.cmd.target.parent_ref.is_some() {
            merged.target.parent_ref = w.cmd.target.parent_ref.clone();
        }
        if merged.target.project.is_none() {
            merged.target.project = w.cmd.target.project.clone();
        }
        if merged.target.issue_type.is_none() {
            merged.target.issue_type = w.cmd.target.issue_type.clone();
        }
        merged.source = w.cmd.source.clone();
    }
    merged
}

fn pick(old: Option<FieldValue>, new: Option<FieldValue>) -> Option<FieldValue> {
    match (old, new) {
        (Some(o), Some(n)) if o.changed && !n.changed => Some(o),
        (o, None) => o,
        (_, n) => n,
    }
}

/// How many leading commands of a lane are upserts (the run a create or an edit takes).
fn upsert_run(lane: &[Work]) -> usize {
    lane.iter()
        .take_while(|w| w.cmd.kind == CommandKind::Upsert)
        .count()
}

impl Sink {
    /// Applies one batch; everything it produces is in the returned [`Outcome`].
    pub async fn apply_batch(&self, works: Vec<Work>) -> Outcome {
        let mut out = Outcome::default();
        let mut lanes = lanes(works);
        // Creates: the leading upsert run of each lane whose reference has no link.
        let mut jobs: Vec<CreateJob> = Vec::new();
        for lane in &mut lanes {
            let w = &lane[0].cmd;
            let creates = w.kind == CommandKind::Upsert
                && !w.target.update_only
                && self.issue_of(&w.target.external_ref).is_none();
            if creates {
                let run: Vec<Work> = lane.drain(..upsert_run(lane)).collect();
                jobs.push(CreateJob {
                    merged: merge(&run),
                    works: run,
                });
            }
        }
        while !jobs.is_empty() {
            let pending: HashSet<String> = jobs
                .iter()
                .map(|j| j.merged.target.external_ref.clone())
                .collect();
            let (mut wave, mut later): (Vec<CreateJob>, Vec<CreateJob>) =
                jobs.into_iter().partition(|j| {
                    j.merged
                        .target
                        .parent_ref
                        .as_ref()
                        .is_none_or(|p| !pending.contains(p))
                });
            if wave.is_empty() {
                // A cycle of parents: none can go first; each fails on its missing parent.
                std::mem::swap(&mut wave, &mut later);
            }
            // A parent created elsewhere (another batch, instance or partition): wait for it.
            let waits = wave
                .iter()
                .filter_map(|j| j.merged.target.parent_ref.clone());
            join_all(waits.map(|p| async move {
                if self.issue_of(&p).is_none() {
                    self.links
                        .wait_for(
                            &p,
                            Duration::from_millis(self.cfg.link_wait_ms),
                            Duration::from_millis(100),
                        )
                        .await;
                }
            }))
            .await;
            if self.cfg.dry_run {
                for j in &wave {
                    for w in &j.works {
                        let would = self
                            .create_body(&j.merged)
                            .map(|(_, f)| f)
                            .unwrap_or_default();
                        self.audit(
                            &mut out,
                            &w.cmd,
                            &w.cmd.target.external_ref,
                            "create",
                            Default::default(),
                            would,
                            AuditResult::Skipped,
                            Some("dry run: nothing written".into()),
                            now_ms(),
                        );
                    }
                }
            } else {
                self.create_issues(wave, &mut out).await;
            }
            jobs = later;
        }
        // Comments and worklogs whose issue is not linked yet wait for it here, all at once,
        // rather than each holding one of the lanes' slots while it waits.
        let attach: HashSet<String> = lanes
            .iter()
            .flatten()
            .filter_map(|w| w.cmd.target.attach_to.clone())
            .filter(|r| self.attached_issue(r).is_none())
            .collect();
        join_all(attach.iter().map(|r| {
            self.links.wait_for(
                r,
                Duration::from_millis(self.cfg.link_wait_ms),
                Duration::from_millis(100),
            )
        }))
        .await;
        // The rest of each lane, `concurrency` lanes at a time: a lane started is finished
        // promptly (its read and its write close together) rather than every lane's first call
        // going before any lane's second.
        let runs = futures::stream::iter(lanes.into_iter().filter(|l| !l.is_empty()))
            .map(|lane| {
                let span = lane[0].span.clone();
                self.run_lane(lane).instrument(span)
            })
            .buffer_unordered(self.cfg.concurrency.max(1));
        let outcomes: Vec<Outcome> = runs.collect().await;
        for o in outcomes {
            out.merge(o);
        }
        out
    }

    async fn run_lane(&self, mut lane: Vec<Work>) -> Outcome {
        let mut out = Outcome::default();
        while !lane.is_empty() {
            let run = upsert_run(&lane);
            if run > 0 {
                let works: Vec<Work> = lane.drain(..run).collect();
                let reference = works[0].cmd.target.external_ref.clone();
                match self.issue_of(&reference) {
                    Some((id, key)) => self.update(&mut out, &id, &key, &works).await,
                    None if works[0].cmd.target.update_only => {
                        for w in &works {
                            self.audit(
                                &mut out,
                                &w.cmd,
                                &reference,
                                "skip",
                                Default::default(),
                                Default::default(),
                                AuditResult::Skipped,
                                Some("update_only and no linked issue".into()),
                                now_ms(),
                            );
                        }
                    }
                    None => {
                        let job = CreateJob {
                            merged: merge(&works),
                            works,
                        };
                        self.create_issues(vec![job], &mut out).await;
                    }
                }
                continue;
            }
            let w = lane.remove(0);
            match w.cmd.kind {
                CommandKind::Comment => self.comment(&mut out, &w).await,
                CommandKind::Worklog => self.worklog(&mut out, &w).await,
                CommandKind::Delete => self.delete(&mut out, &w).await,
                CommandKind::Close => self.close(&mut out, &w, "close").await,
                CommandKind::Upsert => unreachable!("upserts are taken as runs"),
            }
        }
        out
    }
}
