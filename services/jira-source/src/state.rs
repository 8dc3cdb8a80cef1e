//! What jira-source has already published, kept durably in `sfjira.checkpoints` (compacted) and
//! written in the SAME Kafka transaction as the records it describes. So after a crash or a
//! restart (loaded at start with `read_to_end`, `read_committed`) the state is exactly what the
//! committed records say: a record and its bookkeeping are both visible or both absent.
//!
//! Keys (values are small JSON documents; a tombstone forgets the key):
//! - `jira-source:webhook:<X-Atlassian-Webhook-Identifier>` → `{"at": ms}`: deliveries already
//!   published. A retry of one (same identifier) is answered 200 and publishes nothing. Expired
//!   after `dedupe_retention_hours` with a tombstone written in a later transaction.
//! - `jira-source:issue:<id>`, `jira-source:comment:<id>`, `jira-source:worklog:<id>` →
//!   `{"updated": ms, "changelog": id, "deleted": bool}`: the newest version published of each
//!   entity. This is both the poller's deduplication (issue id + `updated` + changelog id) and
//!   the per-issue ordering rule.
//! - `jira-source:poll:<project>` → `{"watermark": ms}`: the poller's position.
//! - `jira-source:backfill:<project>` → the backfill's resume position (`backfill.rs`), kept
//!   as the JSON document backfill wrote.
//!
//! # Ordering (issue item 4): older-than-published is dropped here
//!
//! Jira's order is `(updated, changelog id)`. An event is published only if it is newer than
//! what was published for its entity ([`Txn::admit`]); a late, older delivery is dropped (and
//! acknowledged, so Jira stops retrying) and never reaches the transformer. Changelog ids are
//! compared first, so a change already published (by webhook or by poll) is never published
//! again even when the two paths saw slightly different `updated` values. Gaps are filled
//! before they can be overtaken: the webhook path fetches the issue's changelog and publishes
//! any missing history entries before the one delivered (see `webhook.rs`), so a reordered
//! delivery loses no change. Deletions win over everything and are published once.

use std::collections::{BTreeMap, HashMap};

use rdkafka::message::{Message, OwnedMessage};
use serde::{Deserialize, Serialize};
use sfjira_core::kafka::OutRecord;

const PREFIX: &str = "jira-source:";

/// A thing with its own version: an issue, a comment or a worklog (by id).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Entity {
    Issue(String),
    Comment(String),
    Worklog(String),
}

impl Entity {
    fn key(&self) -> String {
        match self {
            Entity::Issue(id) => format!("{PREFIX}issue:{id}"),
            Entity::Comment(id) => format!("{PREFIX}comment:{id}"),
            Entity::Worklog(id) => format!("{PREFIX}worklog:{id}"),
        }
    }
}

/// What happened to the entity (from the `_created` / `_updated` / `_deleted` suffix).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Created,
    Updated,
    Deleted,
}

impl Kind {
    pub fn of(event_type: &str) -> Kind {
        if event_type.ends_with("_created") {
            Kind::Created
        } else if event_type.ends_with("_deleted") {
            Kind::Deleted
        } else {
            Kind::Updated
        }
    }
}

/// An event's place in Jira's order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Version {
    /// The entity's `updated` (epoch ms).
    pub updated: i64,
    /// The changelog (history) id of the change, for issue updates that have one.
    pub changelog: Option<u64>,
}

/// The newest version published of one entity.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Published {
    pub updated: i64,
    pub changelog: u64,
    #[serde(default)]
    pub deleted: bool,
    /// For worklogs: `<issue id>/<issue key>`, so a deletion seen in `/worklog/deleted`
    /// (which names only the worklog) can be published with its issue.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parent: Option<String>,
}

#[derive(Serialize, Deserialize)]
struct Seen {
    at: i64,
}

#[derive(Serialize, Deserialize)]
struct Watermark {
    watermark: i64,
}

/// The loaded state. Changed only through [`State::apply`] after a commit.
#[derive(Debug, Default)]
pub struct State {
    entities: HashMap<String, Published>,
    webhooks: HashMap<String, i64>,
    watermarks: HashMap<String, i64>,
    backfills: HashMap<String, serde_json::Value>,
}

impl State {
    /// Rebuilds the state from the checkpoint topic's records (oldest first); other sources'
    /// keys are ignored.
    pub fn load(messages: &[OwnedMessage]) -> State {
        let mut s = State::default();
        for m in messages {
            let Some(key) = m.key().and_then(|k| std::str::from_utf8(k).ok()) else {
                continue;
            };
            let Some(rest) = key.strip_prefix(PREFIX) else {
                continue;
            };
            let Some((kind, id)) = rest.split_once(':') else {
                continue;
            };
            let payload = m.payload();
            match (kind, payload) {
                ("webhook", None) => {
                    s.webhooks.remove(id);
                }
                ("webhook", Some(p)) => {
                    if let Ok(v) = serde_json::from_slice::<Seen>(p) {
                        s.webhooks.insert(id.to_string(), v.at);
                    }
                }
                ("backfill", Some(p)) => {
                    if let Ok(v) = serde_json::from_slice(p) {
                        s.backfills.insert(id.to_string(), v);
                    }
                }
                ("backfill", None) => {
                    s.backfills.remove(id);
                }
                ("poll", Some(p)) => {
                    if let Ok(v) = serde_json::from_slice::<Watermark>(p) {
                        s.watermarks.insert(id.to_string(), v.watermark);
                    }
                }
                ("issue" | "comment" | "worklog", None) => {
                    s.entities.remove(key);
                }
                ("issue" | "comment" | "worklog", Some(p)) => {
                    if let Ok(v) = serde_json::from_slice::<Published>(p) {
                        s.entities.insert(key.to_string(), v);
                    }
                }
                _ => {}
            }
        }
        s
    }

    pub fn seen_webhook(&self, identifier: &str) -> bool {
        self.webhooks.contains_key(identifier)
    }

    pub fn watermark(&self, project: &str) -> Option<i64> {
        self.watermarks.get(project).copied()
    }

    /// The backfill position of `project`, as written.
    pub fn backfill(&self, project: &str) -> Option<&serde_json::Value> {
        self.backfills.get(project)
    }

    pub fn published(&self, e: &Entity) -> Option<Published> {
        self.entities.get(&e.key()).cloned()
    }

    /// Forgets identifiers first seen before `cutoff` (epoch ms); returns them so tombstones can
    /// be written with the next transaction.
    pub fn expire_webhooks(&mut self, cutoff: i64) -> Vec<String> {
        let old: Vec<String> = self
            .webhooks
            .iter()
            .filter(|(_, at)| **at < cutoff)
            .map(|(k, _)| k.clone())
            .collect();
        for k in &old {
            self.webhooks.remove(k);
        }
        old
    }

    /// Makes a committed transaction's changes part of the state.
    pub fn apply(&mut self, txn: Txn) {
        self.entities.extend(txn.entities);
        self.webhooks.extend(txn.webhooks);
        self.watermarks.extend(txn.watermarks);
        self.backfills.extend(txn.backfills);
    }
}

/// The state changes of one transaction in the making.
#[derive(Debug, Default)]
pub struct Txn {
    entities: BTreeMap<String, Published>,
    webhooks: BTreeMap<String, i64>,
    watermarks: BTreeMap<String, i64>,
    backfills: BTreeMap<String, serde_json::Value>,
    tombstones: Vec<String>,
}

impl Txn {
    /// Whether an event of `kind` at `v` for `e` is newer than everything published (by the
    /// state or earlier in this transaction); if so, records it as published.
    pub fn admit(
        &mut self,
        base: &State,
        e: &Entity,
        kind: Kind,
        v: Version,
        parent: Option<String>,
    ) -> bool {
        let key = e.key();
        let current = self
            .entities
            .get(&key)
            .cloned()
            .or_else(|| base.entities.get(&key).cloned());
        let c = v.changelog.unwrap_or(0);
        let admitted = match (kind, current.as_ref()) {
            (_, None) => true,
            (Kind::Created, Some(_)) => false,
            (Kind::Deleted, Some(p)) => !p.deleted,
            (Kind::Updated, Some(p)) => {
                !p.deleted
                    && v.changelog.is_none_or(|c| c > p.changelog)
                    && (v.updated, c) > (p.updated, p.changelog)
            }
        };
        if admitted {
            let p = current.unwrap_or_default();
            self.entities.insert(
                key,
                Published {
                    updated: p.updated.max(v.updated),
                    changelog: p.changelog.max(c),
                    deleted: p.deleted || kind == Kind::Deleted,
                    parent: parent.or(p.parent),
                },
            );
        }
        admitted
    }

    pub fn webhook(&mut self, identifier: &str, at: i64) {
        self.webhooks.insert(identifier.to_string(), at);
    }

    pub fn watermark(&mut self, project: &str, watermark: i64) {
        self.watermarks.insert(project.to_string(), watermark);
    }

    pub fn backfill(&mut self, project: &str, position: serde_json::Value) {
        self.backfills.insert(project.to_string(), position);
    }

    /// Tombstones for expired webhook identifiers.
    pub fn forget_webhooks(&mut self, identifiers: Vec<String>) {
        self.tombstones.extend(
            identifiers
                .into_iter()
                .map(|i| format!("{PREFIX}webhook:{i}")),
        );
    }

    pub fn is_empty(&self) -> bool {
        self.entities.is_empty()
            && self.webhooks.is_empty()
            && self.watermarks.is_empty()
            && self.backfills.is_empty()
            && self.tombstones.is_empty()
    }

    /// The checkpoint records that make these changes durable, for `topic`.
    pub fn records(&self, topic: &str) -> Vec<OutRecord> {
        let json = |v: &dyn erased::Json| v.to_vec();
        let mut out = Vec::new();
        for (k, p) in &self.entities {
            out.push(OutRecord::new(topic).key(k.as_bytes()).payload(json(p)));
        }
        for (id, at) in &self.webhooks {
            out.push(
                OutRecord::new(topic)
                    .key(format!("{PREFIX}webhook:{id}"))
                    .payload(json(&Seen { at: *at })),
            );
        }
        for (p, w) in &self.watermarks {
            out.push(
                OutRecord::new(topic)
                    .key(format!("{PREFIX}poll:{p}"))
                    .payload(json(&Watermark { watermark: *w })),
            );
        }
        for (p, v) in &self.backfills {
            out.push(
                OutRecord::new(topic)
                    .key(format!("{PREFIX}backfill:{p}"))
                    .payload(v.to_string()),
            );
        }
        for k in &self.tombstones {
            out.push(OutRecord::new(topic).key(k.as_bytes()));
        }
        out
    }
}

mod erased {
    /// Serialising the three value shapes through one closure.
    pub trait Json {
        fn to_vec(&self) -> Vec<u8>;
    }
    impl<T: serde::Serialize> Json for T {
        fn to_vec(&self) -> Vec<u8> {
            serde_json::to_vec(self).expect("checkpoint values serialise")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(updated: i64, changelog: Option<u64>) -> Version {
        Version { updated, changelog }
    }

    #[test]
    fn older_duplicate_and_post_delete_events_are_dropped() {
        let s = State::default();
        let mut t = Txn::default();
        let e = Entity::Issue("1".into());
        assert!(t.admit(&s, &e, Kind::Created, v(10, None), None));
        assert!(
            !t.admit(&s, &e, Kind::Created, v(10, None), None),
            "duplicate create"
        );
        assert!(t.admit(&s, &e, Kind::Updated, v(20, Some(5)), None));
        assert!(
            !t.admit(&s, &e, Kind::Updated, v(20, Some(5)), None),
            "same change twice"
        );
        assert!(
            !t.admit(&s, &e, Kind::Updated, v(25, Some(5)), None),
            "same change, later updated"
        );
        assert!(
            !t.admit(&s, &e, Kind::Updated, v(15, Some(4)), None),
            "older change"
        );
        assert!(
            t.admit(&s, &e, Kind::Updated, v(30, None), None),
            "newer change without changelog"
        );
        assert!(!t.admit(&s, &e, Kind::Updated, v(30, None), None));
        assert!(t.admit(&s, &e, Kind::Deleted, v(30, None), None));
        assert!(
            !t.admit(&s, &e, Kind::Updated, v(40, Some(9)), None),
            "after delete"
        );
        assert!(!t.admit(&s, &e, Kind::Deleted, v(30, None), None));
    }

    #[test]
    fn state_round_trips_through_checkpoint_records() {
        let mut s = State::default();
        let mut t = Txn::default();
        assert!(t.admit(
            &s,
            &Entity::Comment("7".into()),
            Kind::Created,
            v(5, None),
            None
        ));
        t.webhook("abc", 100);
        t.watermark("PROJ", 1234);
        let records = t.records("cp");
        s.apply(t);
        let messages: Vec<OwnedMessage> = records
            .into_iter()
            .enumerate()
            .map(|(i, r)| {
                OwnedMessage::new(
                    r.payload,
                    r.key,
                    "cp".into(),
                    rdkafka::Timestamp::NotAvailable,
                    0,
                    i as i64,
                    None,
                )
            })
            .collect();
        let loaded = State::load(&messages);
        assert!(loaded.seen_webhook("abc"));
        assert_eq!(loaded.watermark("PROJ"), Some(1234));
        assert_eq!(
            loaded.published(&Entity::Comment("7".into())),
            s.published(&Entity::Comment("7".into()))
        );
        let mut loaded = loaded;
        assert_eq!(loaded.expire_webhooks(101), vec!["abc".to_string()]);
        assert!(!loaded.seen_webhook("abc"));
    }
}
