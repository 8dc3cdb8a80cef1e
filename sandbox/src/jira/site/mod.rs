//! The Jira site model, in memory: a fixed [`catalog::Catalog`] plus mutable [`SiteState`]
//! (issues and id counters). REST handlers, the admin API and webhooks all go through the
//! operations in [`ops`], which validate like Jira, apply a change, and return the
//! [`SiteEvent`]s it caused so callers can fire webhooks for exactly what was committed.
//!
//! - [`catalog`]: projects, issue types, workflow, users, fields; [`seed`] builds it.
//! - [`issue`]: the records (issues, comments, worklogs, changelog, properties, remote links).
//! - [`fields`]: per-field validation, stored form and changelog strings.
//! - [`plan`]: validation of `fields`/`update`; [`ops`]: create/edit/transition/delete.
//! - [`activity`]: comments, properties, remote links; [`worklogs`]: worklogs.
//! - [`render`]: the REST v3 JSON shapes.
//! - [`index`]: key → id and parent → children lookups, so no request scans every issue.
//! - [`duration`]: `1d 2h` strings.
//!
//! The state can be saved to a JSON snapshot after every change and loaded at start
//! (`jira.snapshot` in the config), so a restarted sandbox keeps its issues.

pub mod activity;
pub mod catalog;
pub mod duration;
pub mod fields;
pub mod index;
pub mod issue;
pub mod ops;
pub mod plan;
pub mod render;
pub mod seed;
pub mod worklogs;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::Context;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use catalog::Catalog;
use index::IssueIndex;
use issue::{Comment, DeletedWorklog, History, Issue, Worklog};

/// Per-issue limits breached → 413 (reference §3.3–3.5). Real values from the issue limit
/// report's thresholds (https://support.atlassian.com/jira/kb/how-to-use-issuesapproachinglimitparams-in-automation-to-get-the-list-of-issues-approaching-the-limit):
/// 5 000 comments, 10 000 worklogs, 2 000 remote links. Configurable so tests reach them.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct IssueLimits {
    pub comments: usize,
    pub worklogs: usize,
    pub remote_links: usize,
}

impl Default for IssueLimits {
    fn default() -> Self {
        IssueLimits {
            comments: 5000,
            worklogs: 10000,
            remote_links: 2000,
        }
    }
}

/// What changes while the site runs; this is what snapshots hold.
///
/// Issues are added, removed and re-parented only through [`SiteState::insert_issue`],
/// [`SiteState::remove_issue`] and [`SiteState::set_parent`], which keep the [`IssueIndex`]
/// in step; everything else about an issue may be changed in `issues` directly.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct SiteState {
    pub issues: BTreeMap<u64, Issue>,
    /// Derived from `issues`: not saved, rebuilt when a snapshot is loaded.
    #[serde(skip)]
    index: IssueIndex,
    pub next_issue_id: u64,
    /// Last issue number per project key (`PROJ-7` → 7).
    pub key_counters: BTreeMap<String, u64>,
    pub next_comment_id: u64,
    pub next_worklog_id: u64,
    pub next_history_id: u64,
    pub next_remote_link_id: u64,
    pub deleted_worklogs: Vec<DeletedWorklog>,
}

impl SiteState {
    pub fn seed() -> Self {
        SiteState {
            next_issue_id: 10000,
            next_comment_id: 10000,
            next_worklog_id: 10000,
            next_history_id: 10000,
            next_remote_link_id: 10000,
            ..Default::default()
        }
    }

    /// Adds a new issue (its key and `parent` go into the index).
    pub fn insert_issue(&mut self, issue: Issue) {
        // Ids are never reused; should one be, the index forgets the replaced issue first.
        if let Some(old) = self.issues.remove(&issue.id) {
            self.index.removed(&old);
        }
        self.index.added(&issue);
        self.issues.insert(issue.id, issue);
    }

    /// Removes an issue. Its children keep their `parent` field; the caller decides what
    /// happens to them (see `delete_issue`).
    pub fn remove_issue(&mut self, id: u64) -> Option<Issue> {
        let issue = self.issues.remove(&id)?;
        self.index.removed(&issue);
        Some(issue)
    }

    /// Sets (or clears) an issue's `parent` field, stored as the parent's id.
    pub fn set_parent(&mut self, id: u64, parent: Option<Value>) {
        let Some(issue) = self.issues.get_mut(&id) else {
            return;
        };
        let from = issue.parent_id();
        match parent {
            Some(v) => issue.fields.insert("parent".into(), v),
            None => issue.fields.remove("parent"),
        };
        let to = issue.parent_id();
        self.index.reparented(id, from, to);
    }

    /// Ids of the issues whose parent is `parent`, ascending (any issue type).
    pub fn children_ids(&self, parent: u64) -> impl Iterator<Item = u64> + '_ {
        self.index.children(parent)
    }

    /// The issue with this key (case-insensitive), or with this id when `id_or_key` is an id
    /// written as Jira writes it (`10001`).
    pub fn id_by_key_or_id(&self, id_or_key: &str) -> Option<u64> {
        match id_or_key.parse::<u64>() {
            Ok(id) if id.to_string() == id_or_key => self.issues.contains_key(&id).then_some(id),
            _ => self.index.id_of_key(id_or_key),
        }
    }

    /// The id of the issue with `key`, compared case-insensitively.
    pub fn id_of_key(&self, key: &str) -> Option<u64> {
        self.index.id_of_key(key)
    }

    /// Whether the index matches `issues` (for tests).
    pub fn index_is_consistent(&self) -> bool {
        self.index == IssueIndex::build(&self.issues)
    }
}

/// One committed change, for webhooks (and the admin API's answer).
#[derive(Debug, Clone)]
pub enum SiteEvent {
    IssueCreated {
        issue_id: u64,
    },
    /// A field change (`changelog`), or a comment added through `update.comment`.
    IssueUpdated {
        issue_id: u64,
        changelog: Option<History>,
        comment: Option<Comment>,
    },
    /// The issue as it was before deletion; `cascade` when it went with its parent (a
    /// sub-task deleted by `deleteSubtasks=true`), which Jira delivers on the Secondary flow.
    IssueDeleted {
        issue: Box<Issue>,
        cascade: bool,
    },
    CommentCreated {
        issue_id: u64,
        comment: Comment,
    },
    CommentUpdated {
        issue_id: u64,
        comment: Comment,
    },
    CommentDeleted {
        issue_id: u64,
        comment: Comment,
    },
    WorklogCreated {
        issue_id: u64,
        worklog: Worklog,
    },
    WorklogUpdated {
        issue_id: u64,
        worklog: Worklog,
    },
    WorklogDeleted {
        issue_id: u64,
        worklog: Worklog,
    },
    PropertySet {
        issue_id: u64,
        key: String,
    },
}

impl SiteEvent {
    /// The webhook event name (reference §5).
    pub fn webhook_name(&self) -> &'static str {
        match self {
            SiteEvent::IssueCreated { .. } => "jira:issue_created",
            SiteEvent::IssueUpdated { .. } => "jira:issue_updated",
            SiteEvent::IssueDeleted { .. } => "jira:issue_deleted",
            SiteEvent::CommentCreated { .. } => "comment_created",
            SiteEvent::CommentUpdated { .. } => "comment_updated",
            SiteEvent::CommentDeleted { .. } => "comment_deleted",
            SiteEvent::WorklogCreated { .. } => "worklog_created",
            SiteEvent::WorklogUpdated { .. } => "worklog_updated",
            SiteEvent::WorklogDeleted { .. } => "worklog_deleted",
            SiteEvent::PropertySet { .. } => "issue_property_set",
        }
    }
}

/// The whole site: configuration, state, and where to save it.
#[derive(Debug)]
pub struct Site {
    pub catalog: Catalog,
    pub state: SiteState,
    pub limits: IssueLimits,
    /// `http://host:port`, the prefix of every `self` link.
    pub base_url: String,
    pub snapshot: Option<PathBuf>,
}

impl Site {
    /// The seed site; loads `snapshot` when the file exists.
    pub fn new(
        catalog: Catalog,
        base_url: String,
        limits: IssueLimits,
        snapshot: Option<PathBuf>,
    ) -> anyhow::Result<Self> {
        let state = match &snapshot {
            Some(path) if path.exists() => load_snapshot(path)?,
            _ => SiteState::seed(),
        };
        Ok(Site {
            catalog,
            state,
            limits,
            base_url,
            snapshot,
        })
    }

    /// Back to the seed state (the catalog stays).
    pub fn reset(&mut self) {
        self.state = SiteState::seed();
        self.save();
    }

    /// Finds an issue by numeric id or key; keys match case-insensitively, as Jira's fallback
    /// search does (reference §3.2).
    pub fn find(&self, id_or_key: &str) -> Option<&Issue> {
        self.find_id(id_or_key)
            .and_then(|id| self.state.issues.get(&id))
    }

    pub fn find_id(&self, id_or_key: &str) -> Option<u64> {
        if let Ok(id) = id_or_key.parse::<u64>() {
            return self.state.issues.contains_key(&id).then_some(id);
        }
        self.state.id_of_key(id_or_key)
    }

    /// Saves the state when a snapshot path is configured. A failed save is logged, not
    /// returned: the change is already committed in memory and the API answer stands.
    pub fn save(&self) {
        if let Some(path) = &self.snapshot
            && let Err(e) = save_snapshot(path, &self.state)
        {
            tracing::warn!(error = %format!("{e:#}"), "jira sandbox: snapshot not saved");
        }
    }
}

fn load_snapshot(path: &Path) -> anyhow::Result<SiteState> {
    let bytes = std::fs::read(path)
        .with_context(|| format!("reading the Jira snapshot {}", path.display()))?;
    let mut state: SiteState = serde_json::from_slice(&bytes)
        .with_context(|| format!("parsing the Jira snapshot {}", path.display()))?;
    state.index = IssueIndex::build(&state.issues);
    Ok(state)
}

fn save_snapshot(path: &Path, state: &SiteState) -> anyhow::Result<()> {
    // Write then rename, so a crash mid-write never leaves a truncated snapshot.
    let tmp = path.with_extension("json.tmp");
    let bytes = serde_json::to_vec_pretty(state).context("serialising the Jira site")?;
    std::fs::write(&tmp, bytes).with_context(|| format!("writing {}", tmp.display()))?;
    std::fs::rename(&tmp, path).with_context(|| format!("renaming to {}", path.display()))
}
