//! `sfjira backfill jira --project KEY [--since …] [--restart]` (issue #6 item 5): loads a
//! project's issues — everything, or those updated since a time — into the canonical topics,
//! resumably.
//!
//! It pages through `POST /rest/api/3/search/jql` with
//! `project = "KEY" [AND updated >= "<since − 14 h>"] ORDER BY updated ASC, id ASC` by
//! `nextPageToken`. Absolute JQL dates are read in the integration account's time zone and only
//! to the minute, so the JQL bound is 14 hours (the widest UTC offset) early and issues updated
//! before `--since` are skipped here. Each issue becomes the poller's candidates (origin
//! `POLL`, same layout: `poller::issue_candidates`), so the publisher's per-entity state drops
//! whatever was already published — by the service, by an earlier run — and nothing is
//! published twice.
//!
//! Every page is ONE Kafka transaction: its records plus the resume position in
//! `sfjira.checkpoints` (key `jira-source:backfill:<project>`, a [`Position`]: the JQL, the
//! next page's token, the newest `updated` seen, counts, `done`). An interrupted backfill
//! resumes at the page after the last committed one (same JQL, stored token). If Jira refuses
//! the stored token (tokens expire after 7 days) it goes on with a fresh JQL from the newest
//! `updated` committed (14 h early again; repeats are dropped by the state). A finished
//! backfill is not run again unless `--restart`, which starts over from a fresh position.
//!
//! Its Jira calls go through the shared rate limiter (`ratelimit.rs`) of its client. It writes
//! with its own transactional id (`jira-source-backfill-<instance>-<project>`), so it never
//! fences the running service; the service's in-memory state does not see what the backfill
//! published until its next restart, so a change both see may be published twice (the
//! transformer's ordering drops the older-or-equal copy).

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sfjira_core::config::SfjiraConfig;
use sfjira_core::dlq::DlqRouter;
use sfjira_core::errors::{ErrorCode, StageError};
use sfjira_core::kafka::{OutRecord, client_config, topic_name};

use crate::canonical::{self, Topic};
use crate::jira::JiraClient;
use crate::poller::{CycleError, issue_candidates};
use crate::publisher::{Batch, PublishError, Publisher, Settings};
use crate::service::STAGE;
use crate::state::Entity;

/// How far before `--since` the JQL bound is put (the widest time-zone offset).
const TZ_MARGIN_MS: i64 = 14 * 3_600_000;

/// The resume position committed with every page.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Position {
    pub jql: String,
    /// `--since` in epoch ms (`None`: all history).
    pub since: Option<i64>,
    /// The next page's `nextPageToken` (`None`: the first page of `jql`, or done).
    pub token: Option<String>,
    /// The newest `updated` (epoch ms) committed so far.
    pub updated: Option<i64>,
    pub pages: u64,
    pub issues: u64,
    pub done: bool,
}

impl Position {
    fn fresh(project: &str, since: Option<i64>) -> Position {
        Position {
            jql: jql(project, since),
            since,
            token: None,
            updated: None,
            pages: 0,
            issues: 0,
            done: false,
        }
    }
}

/// The backfill's JQL for issues updated at or after `from` (epoch ms; `None`: all).
pub fn jql(project: &str, from: Option<i64>) -> String {
    let bound = from
        .and_then(|ms| chrono::DateTime::from_timestamp_millis(ms - TZ_MARGIN_MS))
        .map(|t| format!(" AND updated >= \"{}\"", t.format("%Y-%m-%d %H:%M")))
        .unwrap_or_default();
    format!("project = \"{project}\"{bound} ORDER BY updated ASC, id ASC")
}

/// `--since`: an RFC 3339 time, or an age (`30m`, `12h`, `2d`, `1w`) before `now` (epoch ms).
pub fn parse_since(text: &str, now: i64) -> anyhow::Result<i64> {
    if let Ok(t) = chrono::DateTime::parse_from_rfc3339(text) {
        return Ok(t.timestamp_millis());
    }
    let t = text.trim();
    let (n, unit) = t.split_at(t.len().saturating_sub(1));
    let unit_ms = match unit {
        "m" => 60_000,
        "h" => 3_600_000,
        "d" => 86_400_000,
        "w" => 7 * 86_400_000,
        _ => {
            anyhow::bail!("--since {text:?}: give an RFC 3339 time or an age like 2d, 12h, 30m, 1w")
        }
    };
    let n: i64 = n.parse().with_context(|| {
        format!("--since {text:?}: give an RFC 3339 time or an age like 2d, 12h, 30m, 1w")
    })?;
    Ok(now - n * unit_ms)
}

/// What a run did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Report {
    /// It continued a committed position rather than starting.
    pub resumed: bool,
    /// The position was already `done` (nothing was read; use `--restart`).
    pub already_done: bool,
    /// Pages and issues read by this run.
    pub pages: u64,
    pub issues: u64,
    /// Records published by this run (repeats dropped by the state are not counted).
    pub published: usize,
    pub done: bool,
}

pub struct Backfill {
    pub jira: Arc<JiraClient>,
    pub publisher: Arc<Publisher>,
    pub project: String,
    pub since: Option<i64>,
    pub page_size: u32,
    pub custom_fields: Vec<String>,
    pub dlq: DlqRouter,
}

impl Backfill {
    /// A backfill of `project` from the deployment's `jira_source` section, connected to Kafka
    /// (waits up to `ready_within` for the producer and the state).
    pub async fn connect(
        cfg: &SfjiraConfig,
        project: &str,
        since: Option<i64>,
        ready_within: Duration,
    ) -> anyhow::Result<Backfill> {
        let js = cfg
            .jira_source
            .clone()
            .context("the configuration has no jira_source section")?;
        if project.is_empty()
            || !project
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_')
        {
            anyhow::bail!("{project:?} is not a project key (letters, digits, '_')");
        }
        let settings = Settings {
            kafka: client_config(&cfg.kafka),
            transactional_id: format!("{STAGE}-backfill-{}-{project}", cfg.service.instance_id),
            topics: Topic::ALL
                .iter()
                .map(|t| (*t, topic_name(&cfg.kafka, t.base())))
                .collect(),
            checkpoints: topic_name(&cfg.kafka, "sfjira.checkpoints"),
            codec: sfjira_core::avro::AvroCodec::new(&cfg.registry)?,
            dedupe_retention: Duration::from_secs(js.dedupe_retention_hours * 3600),
        };
        let mut secrets: Vec<String> = [js.api_token.as_ref(), js.webhook_secret.as_ref()]
            .into_iter()
            .flatten()
            .chain(
                js.oauth
                    .iter()
                    .flat_map(|o| [&o.client_secret, &o.refresh_token]),
            )
            .map(|s| s.expose().to_string())
            .collect();
        secrets.retain(|s| !s.is_empty());
        let publisher = Publisher::start(settings);
        let deadline = tokio::time::Instant::now() + ready_within;
        while !publisher.is_ready().await {
            if tokio::time::Instant::now() >= deadline {
                anyhow::bail!("Kafka not ready within {ready_within:?} (see `sfjira doctor`)");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        Ok(Backfill {
            jira: Arc::new(JiraClient::new(&js)?),
            publisher,
            project: project.to_string(),
            since,
            page_size: js.poll_page_size,
            custom_fields: js.custom_fields.clone(),
            dlq: DlqRouter::new(STAGE, &cfg.kafka.topic_prefix, &cfg.service.instance_id)
                .redacting(secrets),
        })
    }

    /// The committed position, if any.
    pub async fn position(&self) -> Result<Option<Position>, PublishError> {
        let v = self
            .publisher
            .with_state(|s| s.backfill(&self.project).cloned())
            .await
            .ok_or(PublishError::NotReady)?;
        Ok(v.and_then(|v| serde_json::from_value(v).ok()))
    }

    /// Runs to the end (or for at most `max_pages` pages); `restart` ignores the committed
    /// position.
    pub async fn run(&self, restart: bool, max_pages: Option<u64>) -> Result<Report, CycleError> {
        let mut report = Report::default();
        let mut pos = match self.position().await? {
            Some(p) if !restart => {
                if p.done {
                    report.already_done = true;
                    report.done = true;
                    return Ok(report);
                }
                report.resumed = true;
                p
            }
            _ => Position::fresh(&self.project, self.since),
        };
        let fields = crate::poller::search_fields(&self.custom_fields);
        while max_pages.is_none_or(|m| report.pages < m) {
            let page = match self
                .jira
                .search(&pos.jql, &fields, self.page_size, pos.token.as_deref())
                .await
            {
                Ok(p) => p,
                Err(e)
                    if pos.token.is_some()
                        && e.status() == Some(reqwest::StatusCode::BAD_REQUEST) =>
                {
                    tracing::warn!(project = %self.project, error = %e, "the stored page token was refused; going on from the newest committed update");
                    pos.jql = jql(&self.project, pos.updated.or(pos.since));
                    pos.token = None;
                    continue;
                }
                Err(e) => return Err(e.into()),
            };
            let names = crate::poller::custom_field_names(&self.jira, &page.issues).await?;
            let mut events = Vec::new();
            let mut dead_letters = Vec::new();
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
                if let (Some(u), Some(since)) = (updated, pos.since)
                    && u < since
                {
                    continue;
                }
                pos.updated = pos.updated.max(updated);
                let published = self
                    .publisher
                    .with_state(|s| s.published(&Entity::Issue(id.clone())))
                    .await
                    .ok_or(PublishError::NotReady)?;
                let mut candidates = Vec::new();
                match issue_candidates(issue, published.is_none(), &names, &mut candidates) {
                    Ok(()) => events.extend(candidates),
                    Err(e) => dead_letters.push(self.dead_letter(&id, issue, e)),
                }
            }
            pos.pages += 1;
            pos.issues += page.issues.len() as u64;
            pos.done = page.next_page_token.is_none() || page.issues.is_empty();
            pos.token = if pos.done { None } else { page.next_page_token };
            let batch = Batch {
                events,
                dead_letters,
                backfills: vec![(
                    self.project.clone(),
                    serde_json::to_value(&pos).expect("position serialises"),
                )],
                ..Batch::default()
            };
            let outcome = self.publisher.publish(batch).await?;
            report.pages += 1;
            report.issues += page.issues.len() as u64;
            report.published += outcome.published;
            crate::metrics::published(outcome.published, outcome.dropped);
            tracing::info!(project = %self.project, pages = pos.pages, issues = pos.issues, published = outcome.published, "backfill page committed");
            if pos.done {
                report.done = true;
                break;
            }
        }
        Ok(report)
    }

    fn dead_letter(&self, id: &str, issue: &Value, why: canonical::Unusable) -> OutRecord {
        tracing::warn!(issue = id, error = %why, "backfilled issue dead-lettered");
        let record = OutRecord::new("jira:search")
            .key(id.to_string())
            .payload(issue.to_string());
        let failed = sfjira_core::dlq::FailedRecord {
            topic: "jira:search".into(),
            partition: -1,
            offset: -1,
            record,
        };
        let err = StageError::new(ErrorCode::JiraEventUnusable, format!("issue {id}: {why}"));
        self.dlq.dead_letter(
            &failed,
            &err,
            sfjira_core::dlq::FailedAt::TaskPoll,
            sfjira_core::dlq::Attempts::once(),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn since_takes_rfc3339_or_an_age() {
        let now = 10 * 86_400_000;
        assert_eq!(parse_since("2d", now).unwrap(), 8 * 86_400_000);
        assert_eq!(parse_since("30m", now).unwrap(), now - 1_800_000);
        assert_eq!(
            parse_since("1970-01-02T00:00:00Z", now).unwrap(),
            86_400_000
        );
        assert!(parse_since("yesterday", now).is_err());
        assert_eq!(
            jql("PROJ", Some(86_400_000)),
            "project = \"PROJ\" AND updated >= \"1970-01-01 10:00\" ORDER BY updated ASC, id ASC"
        );
        assert_eq!(
            jql("PROJ", None),
            "project = \"PROJ\" ORDER BY updated ASC, id ASC"
        );
    }
}
