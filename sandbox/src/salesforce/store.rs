//! The org's state: its schema, users, records, and the one lock that serialises writes.
//!
//! A write runs against a copy of the records ([`Txn`], in `write.rs`; an O(1) copy, the tables
//! being persistent maps, see [`Table`]) and is swapped in only when the whole call succeeds
//! (or, for `allOrNone=false`, with the rows that did), which gives composite and collection
//! requests their all-or-none semantics for free. Each commit
//! is handed to the [`ChangeSink`] while the lock is still held, so Change Data Capture sees
//! transactions in commit order; then the optional JSON snapshot is rewritten so a demo
//! survives a restart.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard};

use anyhow::Context;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::catalog::{self, ORG_PREFIX, USER_PREFIX};
use super::changes::{ChangeSink, CommittedTransaction, RecordChange};
use super::config::{SalesforceConfig, UserConfig};
use super::faults::SalesforceFaults;
use super::ids;
use super::meta::ObjectMeta;
use crate::clock::SandboxClock;

/// One row. `values` holds every non-compound field (null when unset), in schema order.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Record {
    pub values: Map<String, Value>,
    /// In the recycle bin: invisible to `query`, visible to `queryAll`.
    pub deleted: bool,
}

impl Record {
    pub fn id(&self) -> &str {
        self.values.get("Id").and_then(Value::as_str).unwrap_or("")
    }
}

/// One object's records by Id. A persistent map: cloning it shares the records (O(1)), and a
/// write copies only the path to what it changes, so a transaction's copy of the org stays
/// cheap however many records it holds. Ordered like `BTreeMap` (same iteration order, same
/// JSON map in snapshots).
pub type Table = imbl::OrdMap<String, Record>;

/// Everything a transaction may change; cloned per write (cheaply: see [`Table`]).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Data {
    /// Counter behind every new record Id.
    pub next_id: u64,
    /// Counter behind `Case.CaseNumber`.
    pub next_case_number: u64,
    /// Object name → Id → record; Ids grow with creation, so iteration is creation order.
    pub tables: BTreeMap<String, Table>,
}

/// A user of the org.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct User {
    pub id: String,
    pub username: String,
    pub name: String,
    pub integration: bool,
}

/// The built-in users: the connector's integration user and humans to act as.
fn default_users() -> Vec<UserConfig> {
    let u = |username: &str, name: &str, integration| UserConfig {
        username: username.into(),
        name: name.into(),
        integration,
    };
    vec![
        u(
            "sfjira-integration@sfjira.sandbox",
            "sfjira Integration",
            true,
        ),
        u("alice@sfjira.sandbox", "Alice Martin", false),
        u("bob@sfjira.sandbox", "Bob Chen", false),
        u("carol@sfjira.sandbox", "Carol Diaz", false),
    ]
}

/// Rolling 24-hour API request counter (`Sforce-Limit-Info`, `DailyApiRequests`).
#[derive(Debug)]
pub struct ApiUsage {
    pub used: u64,
    pub max: u64,
    window_start: DateTime<Utc>,
}

/// Open cursors kept at most; opening another expires the oldest, whose `nextRecordsUrl`
/// then answers `INVALID_QUERY_LOCATOR` (real orgs also cap open cursors per user).
pub const MAX_CURSORS: usize = 50;

/// The open query cursors.
#[derive(Debug, Default)]
pub struct Cursors {
    next: u64,
    open: BTreeMap<String, Cursor>,
}

impl Cursors {
    /// Stores `cursor`; returns its locator id (`01g…`).
    pub fn open(&mut self, cursor: Cursor) -> String {
        self.next += 1;
        let id = ids::make_id("01g", self.next);
        self.open.insert(id.clone(), cursor);
        while self.open.len() > MAX_CURSORS {
            self.open.pop_first();
        }
        id
    }

    pub fn get(&self, id: &str) -> Option<&Cursor> {
        self.open.get(id)
    }

    pub fn clear(&mut self) {
        self.open.clear();
    }
}

/// A `query` result still being paged through (`nextRecordsUrl`).
#[derive(Debug, Clone)]
pub struct Cursor {
    pub records: Vec<Value>,
    pub batch: usize,
}

pub struct Org {
    pub catalog: Vec<ObjectMeta>,
    pub org_id: String,
    pub users: Vec<User>,
    pub clock: SandboxClock,
    pub faults: Arc<SalesforceFaults>,
    data: Mutex<Data>,
    sink: Arc<dyn ChangeSink>,
    snapshot_path: Option<PathBuf>,
    usage: Mutex<ApiUsage>,
    /// Open query cursors by locator id, oldest first (ids grow), at most [`MAX_CURSORS`].
    pub(crate) cursors: Mutex<Cursors>,
}

/// Locks a mutex whose data stays consistent even if a holder panicked (every mutation is
/// completed before the guard is released, or made on a copy).
pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Org {
    pub fn new(
        config: &SalesforceConfig,
        clock: SandboxClock,
        faults: Arc<SalesforceFaults>,
        sink: Arc<dyn ChangeSink>,
    ) -> anyhow::Result<Self> {
        let org_id = match &config.org_id {
            Some(id) => ids::normalize(id)
                .filter(|id| id.starts_with(ORG_PREFIX))
                .with_context(|| format!("org_id {id:?} is not a 15/18-character 00D… Id"))?,
            None => ids::make_id(ORG_PREFIX, 1),
        };
        let mut all_users = default_users();
        for u in &config.users {
            if !all_users.iter().any(|d| d.username == u.username) {
                all_users.push(u.clone());
            }
        }
        let users = all_users
            .into_iter()
            .enumerate()
            .map(|(i, u)| User {
                id: ids::make_id(USER_PREFIX, i as u64 + 1),
                username: u.username,
                name: u.name,
                integration: u.integration,
            })
            .collect();
        let mut data = Data {
            next_id: 1,
            next_case_number: 1001,
            tables: BTreeMap::new(),
        };
        let catalog = catalog::objects();
        for o in &catalog {
            data.tables.insert(o.name.clone(), Table::new());
        }
        if let Some(path) = &config.snapshot_path
            && path.exists()
        {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("reading snapshot {}", path.display()))?;
            data = serde_json::from_str(&text).with_context(|| {
                format!("snapshot {} is not a sandbox snapshot", path.display())
            })?;
        }
        let now = clock.now();
        Ok(Org {
            catalog,
            org_id,
            users,
            clock,
            faults,
            data: Mutex::new(data),
            sink,
            snapshot_path: config.snapshot_path.clone(),
            usage: Mutex::new(ApiUsage {
                used: 0,
                max: config.daily_api_limit,
                window_start: now,
            }),
            cursors: Mutex::new(Cursors::default()),
        })
    }

    pub fn object(&self, name: &str) -> Option<&ObjectMeta> {
        self.catalog
            .iter()
            .find(|o| o.name.eq_ignore_ascii_case(name))
    }

    /// The object an Id belongs to, by key prefix.
    pub fn object_for_id(&self, id: &str) -> Option<&ObjectMeta> {
        self.catalog.iter().find(|o| id.starts_with(&o.key_prefix))
    }

    /// A user by Id, username or display name (case-insensitive), or first name ("Alice").
    pub fn user(&self, key: &str) -> Option<&User> {
        self.users.iter().find(|u| {
            u.id.eq_ignore_ascii_case(key)
                || u.username.eq_ignore_ascii_case(key)
                || u.name.eq_ignore_ascii_case(key)
                || u.name
                    .split_whitespace()
                    .next()
                    .is_some_and(|first| first.eq_ignore_ascii_case(key))
        })
    }

    pub fn integration_user(&self) -> &User {
        self.users
            .iter()
            .find(|u| u.integration)
            .unwrap_or(&self.users[0])
    }

    /// Runs `f` on the current records (read-only).
    pub fn read<R>(&self, f: impl FnOnce(&Data) -> R) -> R {
        f(&lock(&self.data))
    }

    /// Runs `f` on the records themselves, for calls that only read but go through the
    /// transaction machinery (GET requests): no copy, nothing committed.
    pub fn read_in_place<R>(&self, f: impl FnOnce(&mut Data) -> R) -> R {
        f(&mut lock(&self.data))
    }

    /// Runs `f` on a copy of the records. If `f`'s outcome says commit, the copy replaces the
    /// records and its changes (if any) go to the change sink as one transaction. Records a
    /// simulated concurrent request created (the upsert-race fault) are committed first, as
    /// their own transaction, whether or not this one commits.
    pub fn transact<R>(&self, f: impl FnOnce(&mut Data) -> (R, TxnOutcome)) -> R {
        let mut guard = lock(&self.data);
        let mut work = guard.clone();
        let (out, outcome) = f(&mut work);
        if !outcome.raced.is_empty() {
            let mut changes = Vec::new();
            for raced in outcome.raced.iter().cloned() {
                for data in [&mut *guard, &mut work] {
                    data.tables
                        .entry(raced.object.clone())
                        .or_default()
                        .insert(raced.change.record_id.clone(), raced.record.clone());
                }
                changes.push(raced.change);
            }
            // Ids handed out in the copy stay used even if the copy is dropped.
            guard.next_id = guard.next_id.max(work.next_id);
            guard.next_case_number = guard.next_case_number.max(work.next_case_number);
            self.deliver(changes, &outcome);
            self.save_snapshot(&guard);
        }
        // A commit without changes (a read, an upsert that matched several records) leaves
        // the records as they were: nothing to swap, deliver or save.
        if outcome.commit && !outcome.changes.is_empty() {
            *guard = work;
            self.deliver(outcome.changes.clone(), &outcome);
            self.save_snapshot(&guard);
        }
        out
    }

    fn deliver(&self, changes: Vec<RecordChange>, outcome: &TxnOutcome) {
        self.sink.committed(CommittedTransaction {
            changes,
            commit_timestamp: outcome.timestamp,
            commit_user: outcome.user_id.clone(),
            change_origin: outcome.change_origin.clone(),
        });
    }

    /// Back to the seed: no records (users and settings stay).
    pub fn reset(&self) {
        let mut guard = lock(&self.data);
        let mut fresh = Data {
            next_id: guard.next_id,
            next_case_number: 1001,
            tables: BTreeMap::new(),
        };
        for o in &self.catalog {
            fresh.tables.insert(o.name.clone(), Table::new());
        }
        *guard = fresh;
        self.save_snapshot(&guard);
        lock(&self.cursors).clear();
        lock(&self.usage).used = 0;
    }

    fn save_snapshot(&self, data: &Data) {
        let Some(path) = &self.snapshot_path else {
            return;
        };
        let result = serde_json::to_vec_pretty(data)
            .map_err(anyhow::Error::from)
            .and_then(|bytes| {
                let tmp = path.with_extension("tmp");
                std::fs::write(&tmp, bytes)?;
                std::fs::rename(&tmp, path)?;
                Ok(())
            });
        if let Err(e) = result {
            tracing::warn!(path = %path.display(), error = %e, "could not save the org snapshot");
        }
    }

    /// Counts one API request; `Err` with the usage when the allocation is spent.
    pub fn count_api_call(&self) -> Result<(u64, u64), (u64, u64)> {
        let mut u = lock(&self.usage);
        let now = self.clock.now();
        if now - u.window_start >= chrono::Duration::hours(24) {
            u.used = 0;
            u.window_start = now;
        }
        if u.used >= u.max {
            return Err((u.used, u.max));
        }
        u.used += 1;
        Ok((u.used, u.max))
    }

    pub fn api_usage(&self) -> (u64, u64) {
        let u = lock(&self.usage);
        (u.used, u.max)
    }

    /// Changes the daily allocation (admin API).
    pub fn set_api_limit(&self, max: u64, used: Option<u64>) {
        let mut u = lock(&self.usage);
        u.max = max;
        if let Some(used) = used {
            u.used = used;
        }
    }
}

/// What a transaction hands back to [`Org::transact`].
#[derive(Debug)]
pub struct TxnOutcome {
    /// Keep the transaction's copy (false: roll back).
    pub commit: bool,
    pub changes: Vec<RecordChange>,
    /// Records a simulated concurrent request committed meanwhile.
    pub raced: Vec<RacedCreate>,
    pub timestamp: DateTime<Utc>,
    pub user_id: String,
    pub change_origin: String,
}

/// A record created by a simulated concurrent upsert of the same external id.
#[derive(Debug, Clone)]
pub struct RacedCreate {
    pub object: String,
    pub record: Record,
    pub change: RecordChange,
}
