//! The JQL poller: catches what webhooks miss (Jira delivers at least once, unordered, and can
//! drop) and runs alone when no webhook is configured.
//!
//! Each cycle, per project: `project = "KEY" AND updated >= "-Nm" ORDER BY updated ASC`, where
//! N covers from `watermark − poll_overlap_ms` to now (a relative date, because absolute JQL
//! dates are read in the integration account's time zone and only to the minute), paged by
//! `nextPageToken`, asking only for the fields the canonical record needs plus the configured
//! custom fields, with the changelog expanded. Every issue yields candidates in Jira's order:
//! `jira:issue_created` if nothing was ever published for it, one `jira:issue_updated` per
//! history entry (carrying that entry's changelog items and the issue's current fields), a
//! trailing `jira:issue_updated` for changes without a changelog (comments), and one
//! comment event per comment. The publisher drops every candidate not newer than what was
//! published (issue id + `updated` + changelog id, `state.rs`), so the overlap and the webhook
//! path never cause duplicates. The whole cycle of a project — records and the new watermark
//! (`sfjira.checkpoints`, key `jira-source:poll:<project>`) — is one Kafka transaction.
//!
//! The first cycle without a watermark starts `poll_overlap_ms` before now: history before the
//! source first ran is backfill's job (`backfill.rs`, `sfjira backfill jira`). Not seen by
//! polling: deleted issues and comments (JQL does not return them). Worklogs come from their own feeds (`worklogs.rs`),
//! polled after the projects in every cycle.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;
use sfjira_core::dlq::{Attempts, DlqRouter, FailedAt, FailedRecord};
use sfjira_core::errors::{ErrorCode, StageError};
use sfjira_core::kafka::OutRecord;

use crate::canonical::{self, ChangeContext, Event, Origin, Unusable};
use crate::jira::{JiraClient, JiraError};
use crate::metrics as m;
use crate::publisher::{Batch, Outcome, PublishError, Publisher, now_ms};
use crate::state::Entity;

/// The system fields the canonical record reads.
pub(crate) const FIELDS: &[&str] = &[
    "summary",
    "status",
    "priority",
    "assignee",
    "reporter",
    "labels",
    "parent",
    "duedate",
    "created",
    "updated",
    "resolution",
    "issuetype",
    "project",
    "description",
    "comment",
];

/// The `fields` parameter of a search: the system fields the canonical record reads and the
/// configured `custom_fields`; with none configured, every field (`*all`). Webhook payloads
/// carry every custom field, so a polled record must too: a mapping that reads one (`"Salesforce
/// ID" in record`) would otherwise skip every change the poller catches and not the webhooks.
pub(crate) fn search_fields(custom_fields: &[String]) -> Vec<String> {
    if custom_fields.is_empty() {
        return vec!["*all".to_string()];
    }
    FIELDS
        .iter()
        .map(|f| f.to_string())
        .chain(custom_fields.iter().cloned())
        .collect()
}

/// The names of the custom fields `issues` carry (cached by the client after the first call),
/// as the webhook path resolves them.
pub(crate) async fn custom_field_names(
    jira: &JiraClient,
    issues: &[Value],
) -> Result<HashMap<String, String>, JiraError> {
    let mut ids: Vec<&str> = issues
        .iter()
        .filter_map(|i| i.get("fields").and_then(Value::as_object))
        .flat_map(|f| f.keys())
        .filter(|k| k.starts_with("customfield_"))
        .map(String::as_str)
        .collect();
    ids.sort_unstable();
    ids.dedup();
    if ids.is_empty() {
        return Ok(HashMap::new());
    }
    jira.field_names(&ids).await
}

#[derive(Debug, thiserror::Error)]
pub enum CycleError {
    #[error(transparent)]
    Jira(#[from] JiraError),
    #[error(transparent)]
    Publish(#[from] PublishError),
    #[error("issue {0}: {1}")]
    Unusable(String, Unusable),
}

pub struct Poller {
    pub jira: Arc<JiraClient>,
    pub publisher: Arc<Publisher>,
    pub projects: Vec<String>,
    pub interval: Duration,
    pub overlap: Duration,
    pub page_size: u32,
    pub custom_fields: Vec<String>,
    /// Where an issue that cannot become a canonical record goes (`jira-source.dlq`), so one
    /// bad issue never stops the poller.
    pub dlq: DlqRouter,
}

impl Poller {
    /// Polls every `interval` until `shutdown` resolves.
    pub async fn run(self, shutdown: impl std::future::Future<Output = ()>) {
        tokio::pin!(shutdown);
        loop {
            for project in &self.projects {
                match self.cycle(project).await {
                    Ok(o) => {
                        m::poll_cycle(project, true, o.published);
                        m::published(o.published, o.dropped);
                    }
                    Err(e) => {
                        m::poll_cycle(project, false, 0);
                        tracing::warn!(%project, error = %e, code = %sfjira_core::errors::ErrorCode::JiraPollFailed, "poll cycle failed; the next one resumes from the committed watermark");
                    }
                }
            }
            match self.worklog_cycle().await {
                Ok(o) => m::published(o.published, o.dropped),
                Err(e) => {
                    tracing::warn!(error = %e, code = %sfjira_core::errors::ErrorCode::JiraPollFailed, "worklog poll failed; the next cycle resumes from the committed position")
                }
            }
            tokio::select! {
                _ = &mut shutdown => return,
                _ = tokio::time::sleep(self.interval) => {}
            }
        }
    }

    /// One cycle for `project`: search, build candidates, publish them with the watermark.
    pub async fn cycle(&self, project: &str) -> Result<Outcome, CycleError> {
        let started = now_ms();
        let overlap = i64::try_from(self.overlap.as_millis()).unwrap_or(i64::MAX);
        let watermark = self
            .publisher
            .with_state(|s| s.watermark(project))
            .await
            .ok_or(PublishError::NotReady)?
            .unwrap_or(started - overlap);
        let minutes = ((started - (watermark - overlap)) / 60_000 + 1).max(1);
        let jql =
            format!("project = \"{project}\" AND updated >= \"-{minutes}m\" ORDER BY updated ASC");
        let fields = search_fields(&self.custom_fields);

        let mut events = Vec::new();
        let mut dead_letters = Vec::new();
        let mut newest = watermark;
        let mut token: Option<String> = None;
        loop {
            let page = self
                .jira
                .search(&jql, &fields, self.page_size, token.as_deref())
                .await?;
            let names = custom_field_names(&self.jira, &page.issues).await?;
            for issue in &page.issues {
                let id = issue
                    .get("id")
                    .and_then(Value::as_str)
                    .unwrap_or("?")
                    .to_string();
                let updated = issue
                    .pointer("/fields/updated")
                    .and_then(Value::as_str)
                    .and_then(canonical::parse_time);
                newest = newest.max(updated.unwrap_or(newest));
                let published = self
                    .publisher
                    .with_state(|s| s.published(&Entity::Issue(id.clone())))
                    .await
                    .ok_or(PublishError::NotReady)?;
                // All of an issue's candidates or none, so a bad one cannot leave a gap.
                let mut candidates = Vec::new();
                match issue_candidates(issue, published.is_none(), &names, &mut candidates) {
                    Ok(()) => events.extend(candidates),
                    Err(e) => dead_letters.push(self.dead_letter(&id, issue, e)),
                }
            }
            match page.next_page_token {
                Some(t) if !page.issues.is_empty() => token = Some(t),
                _ => break,
            }
        }
        let batch = Batch {
            events,
            watermarks: vec![(project.to_string(), newest)],
            dead_letters,
            ..Batch::default()
        };
        Ok(self.publisher.publish(batch).await?)
    }
}

impl Poller {
    /// The DLQ record of an issue (or worklog) that cannot be mapped (its JSON, SFJ-7002). While the issue
    /// stays in the overlap window each cycle records it again; fixing it in Jira (or its
    /// next change) publishes it.
    pub(crate) fn dead_letter(&self, id: &str, issue: &Value, why: Unusable) -> OutRecord {
        tracing::warn!(issue = id, error = %why, "polled issue dead-lettered");
        let record = OutRecord::new("jira:search")
            .key(id.to_string())
            .payload(issue.to_string());
        let failed = FailedRecord {
            topic: "jira:search".into(),
            partition: -1,
            offset: -1,
            record,
        };
        let err = StageError::new(ErrorCode::JiraEventUnusable, format!("issue {id}: {why}"));
        self.dlq
            .dead_letter(&failed, &err, FailedAt::TaskPoll, Attempts::once())
    }
}

/// Candidates for one polled issue, in Jira's order.
pub(crate) fn issue_candidates(
    issue: &Value,
    first_sight: bool,
    names: &HashMap<String, String>,
    out: &mut Vec<Event>,
) -> Result<(), Unusable> {
    if first_sight {
        out.push(created_event(issue, names)?);
    }
    for h in histories(issue) {
        out.push(history_event(issue, h, names)?);
    }
    let updated = issue
        .pointer("/fields/updated")
        .and_then(Value::as_str)
        .and_then(canonical::parse_time);
    let change = ChangeContext {
        event_type: "jira:issue_updated",
        origin: Origin::Poll,
        webhook_id: None,
        timestamp: updated.unwrap_or_else(now_ms),
        actor: None,
        changelog: None,
    };
    out.push(canonical::issue_event(issue, &change, names)?);
    let id = issue.get("id").and_then(Value::as_str).unwrap_or_default();
    let key = issue.get("key").and_then(Value::as_str).unwrap_or_default();
    let comments = issue
        .pointer("/fields/comment/comments")
        .and_then(Value::as_array);
    for c in comments.into_iter().flatten() {
        // Created if never published (the publisher drops it otherwise), then updated if newer.
        let ts = c
            .get("updated")
            .and_then(Value::as_str)
            .and_then(canonical::parse_time)
            .unwrap_or_else(now_ms);
        for kind in ["comment_created", "comment_updated"] {
            out.push(canonical::comment_event(
                kind,
                Origin::Poll,
                None,
                ts,
                id,
                key,
                c,
            )?);
        }
    }
    Ok(())
}

/// The issue's changelog histories, oldest first.
pub fn histories(issue: &Value) -> Vec<&Value> {
    let mut hs: Vec<&Value> = issue
        .pointer("/changelog/histories")
        .and_then(Value::as_array)
        .map(|a| a.iter().collect())
        .unwrap_or_default();
    hs.sort_by_key(|h| history_id(h));
    hs
}

fn history_id(h: &Value) -> u64 {
    h.get("id")
        .and_then(|v| v.as_str().and_then(|s| s.parse().ok()).or(v.as_u64()))
        .unwrap_or(0)
}

/// `jira:issue_created` for an issue read over REST.
pub fn created_event(issue: &Value, names: &HashMap<String, String>) -> Result<Event, Unusable> {
    let created = issue
        .pointer("/fields/created")
        .and_then(Value::as_str)
        .and_then(canonical::parse_time);
    let change = ChangeContext {
        event_type: "jira:issue_created",
        origin: Origin::Poll,
        webhook_id: None,
        timestamp: created.unwrap_or_else(now_ms),
        actor: issue
            .pointer("/fields/reporter/accountId")
            .and_then(Value::as_str)
            .map(String::from),
        changelog: None,
    };
    // In Jira's order a creation sits at `created`, not at the issue's current `updated`.
    let mut e = canonical::issue_event(issue, &change, names)?;
    e.version.updated = change.timestamp;
    Ok(e)
}

/// `jira:issue_updated` for one history entry of an issue read over REST.
pub fn history_event(
    issue: &Value,
    history: &Value,
    names: &HashMap<String, String>,
) -> Result<Event, Unusable> {
    let at = history
        .get("created")
        .and_then(Value::as_str)
        .and_then(canonical::parse_time);
    let change = ChangeContext {
        event_type: "jira:issue_updated",
        origin: Origin::Poll,
        webhook_id: None,
        timestamp: at.unwrap_or_else(now_ms),
        actor: history
            .pointer("/author/accountId")
            .and_then(Value::as_str)
            .map(String::from),
        changelog: Some(history),
    };
    // The entry's place in Jira's order is its own time, not the issue's current `updated`.
    let mut e = canonical::issue_event(issue, &change, names)?;
    e.version.updated = change.timestamp;
    Ok(e)
}
