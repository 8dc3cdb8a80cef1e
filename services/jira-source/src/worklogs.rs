//! Worklog polling (`/worklog/updated` and `/worklog/deleted`): worklogs are not reachable
//! through the issue search (the `worklog` field holds only the first 20), so the poller reads
//! Jira's two worklog feeds each cycle, after the projects.
//!
//! - `GET /worklog/updated?since=<ms>` pages (≤ 1000 ids, `until`, `lastPage`) give the ids;
//!   `POST /worklog/list` the worklogs; each issue's key and project come from
//!   `GET /issue/{id}?fields=project` (once per issue per cycle). Worklogs of issues outside
//!   `jira_source.projects` are skipped. Candidates are `worklog_created` (first sight) and
//!   `worklog_updated`; the publisher keeps only what is newer than what was published.
//! - `GET /worklog/deleted?since=<ms>` names deleted worklogs only. A deletion is published
//!   (`worklog_deleted`, `created` = `updated` = the deletion time, since the worklog is gone)
//!   for worklogs jira-source published before: their issue id and key were kept with their
//!   version in `sfjira.checkpoints` (`state.rs`). Others were never seen, so there is nothing
//!   downstream to delete.
//! - Positions: `jira-source:poll:worklog-updated` and `…:worklog-deleted` (`until` of the last
//!   page), committed in the same transaction as the records. Jira leaves the last minute out
//!   of both feeds, so worklogs arrive at least a minute after the change.

use std::collections::HashMap;

use serde_json::{Value, json};

use crate::canonical::{self, Event, Origin};
use crate::poller::{CycleError, Poller};
use crate::publisher::{Batch, Outcome, PublishError, now_ms};
use crate::state::Entity;

pub const UPDATED: &str = "worklog-updated";
pub const DELETED: &str = "worklog-deleted";

impl Poller {
    /// One cycle of both worklog feeds.
    pub async fn worklog_cycle(&self) -> Result<Outcome, CycleError> {
        let overlap = i64::try_from(self.overlap.as_millis()).unwrap_or(i64::MAX);
        let start = now_ms() - overlap;
        let (updated_since, deleted_since) = self
            .publisher
            .with_state(|s| (s.watermark(UPDATED), s.watermark(DELETED)))
            .await
            .ok_or(PublishError::NotReady)?;
        let (changed, updated_until) = self.feed("updated", updated_since.unwrap_or(start)).await?;
        let (deleted, deleted_until) = self.feed("deleted", deleted_since.unwrap_or(start)).await?;

        let mut events = Vec::new();
        let mut dead_letters = Vec::new();
        let mut issues: HashMap<String, Option<(String, String)>> = HashMap::new();
        let ids: Vec<u64> = changed.iter().map(|(id, _)| *id).collect();
        for chunk in ids.chunks(1000) {
            for w in self.jira.worklog_list(chunk).await? {
                let Some(issue_id) = w.get("issueId").and_then(Value::as_str).map(String::from)
                else {
                    continue;
                };
                if !issues.contains_key(&issue_id) {
                    let found = self.jira.issue_key(&issue_id).await?;
                    issues.insert(issue_id.clone(), found);
                }
                let Some((key, project)) = issues[&issue_id].clone() else {
                    continue;
                };
                if !self.projects.contains(&project) {
                    continue;
                }
                let ts = w
                    .get("updated")
                    .and_then(Value::as_str)
                    .and_then(canonical::parse_time)
                    .unwrap_or_else(now_ms);
                let built: Result<Vec<Event>, _> = ["worklog_created", "worklog_updated"]
                    .iter()
                    .map(|kind| canonical::worklog_event(kind, Origin::Poll, None, ts, &key, &w))
                    .collect();
                match built {
                    Ok(e) => events.extend(e),
                    Err(why) => dead_letters.push(self.dead_letter(&issue_id, &w, why)),
                }
            }
        }
        for (id, at) in deleted {
            if let Some(e) = self.deletion(id, at).await? {
                events.push(e);
            }
        }
        let batch = Batch {
            events,
            watermarks: vec![
                (UPDATED.to_string(), updated_until),
                (DELETED.to_string(), deleted_until),
            ],
            dead_letters,
            ..Batch::default()
        };
        Ok(self.publisher.publish(batch).await?)
    }

    /// Every page of one feed from `since`: the items and the `until` reached.
    async fn feed(&self, feed: &str, since: i64) -> Result<(Vec<(u64, i64)>, i64), CycleError> {
        let (mut items, mut until) = (Vec::new(), since);
        loop {
            let (page, page_until, last) = self.jira.worklog_feed(feed, until).await?;
            let progressed = page_until > until;
            items.extend(page);
            until = until.max(page_until);
            if last || !progressed {
                return Ok((items, until));
            }
        }
    }

    async fn deletion(&self, id: u64, at: i64) -> Result<Option<Event>, CycleError> {
        let entity = Entity::Worklog(id.to_string());
        let published = self
            .publisher
            .with_state(|s| s.published(&entity))
            .await
            .ok_or(PublishError::NotReady)?;
        let Some((issue_id, key)) = published.and_then(|p| p.parent).and_then(|p| {
            p.split_once('/')
                .map(|(i, k)| (i.to_string(), k.to_string()))
        }) else {
            return Ok(None);
        };
        let at_text = chrono::DateTime::from_timestamp_millis(at)
            .unwrap_or_default()
            .format("%Y-%m-%dT%H:%M:%S%.3f%z")
            .to_string();
        let gone = json!({"id": id.to_string(), "issueId": issue_id, "created": at_text, "updated": at_text});
        canonical::worklog_event("worklog_deleted", Origin::Poll, None, at, &key, &gone)
            .map(Some)
            .map_err(|e| CycleError::Unusable(issue_id, e))
    }
}
