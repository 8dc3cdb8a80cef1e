//! `sfjira.links`: which target record stands for which source record, once and forever.
//!
//! The sinks own this table. Jira has no idempotency key and Salesforce records created by
//! upsert get an Id we learn only from the answer, so the link is how a retried or replayed
//! command finds the record it already created instead of creating another. The topic is
//! compacted; the key is a reference (`salesforce:Opportunity:006…`, `jira:PROJ-7`) and the
//! value a small JSON [`Link`] (JSON like the checkpoints: operators read it with
//! `kafka-console-consumer`, and its readers are all sfjira's own).
//!
//! Both directions are written: creating `jira:PROJ-7` for `salesforce:Opportunity:006X`
//! records `salesforce:Opportunity:006X → jira:PROJ-7` and `jira:PROJ-7 →
//! salesforce:Opportunity:006X`, so a feedback flow (Jira → Salesforce) finds its target by the
//! Jira reference it carries.
//!
//! A create is a two-step affair: an [`LinkState::Intent`] link is made durable *before* the
//! target is called, and the [`LinkState::Linked`] one after it answered. A sink that finds an
//! intent without a link on restart knows a create may have happened and must search the
//! target (by the stamped reference) before creating again.
//!
//! [`LinkStore`] loads the topic at start and then tails it, so links written by the other
//! sink (or another instance) become visible without a restart: a comment whose issue is being
//! created by another instance waits for that link rather than failing.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::{Offset, TopicPartitionList};
use serde::{Deserialize, Serialize};

use crate::kafka::{OutRecord, latest_by_key};

/// The links topic's base name (before `kafka.topic_prefix`).
pub const TOPIC: &str = "sfjira.links";

/// Where a create stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LinkState {
    /// A create was about to be sent; the target may or may not exist. Search before
    /// creating again.
    Intent,
    /// The target exists and is `counterpart`.
    Linked,
}

/// One row of `sfjira.links`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Link {
    /// The key: the reference this row is about.
    pub reference: String,
    /// The record standing for it on the other side (`jira:PROJ-7`,
    /// `salesforce:Opportunity:006…`); `None` while only an intent exists.
    #[serde(default)]
    pub counterpart: Option<String>,
    /// The counterpart's stable system id where its reference is not (a Jira issue id: keys
    /// change when an issue moves project).
    #[serde(default)]
    pub counterpart_id: Option<String>,
    pub state: LinkState,
    /// The command that created (or meant to create) the counterpart.
    pub command_id: String,
    /// When this row was written, epoch milliseconds.
    pub at_ms: i64,
}

impl Link {
    /// An intent to create the counterpart of `reference` by `command_id`.
    pub fn intent(reference: &str, command_id: &str) -> Self {
        Link {
            reference: reference.to_string(),
            counterpart: None,
            counterpart_id: None,
            state: LinkState::Intent,
            command_id: command_id.to_string(),
            at_ms: now_ms(),
        }
    }

    /// `reference` is linked to `counterpart` (with its system id, if any).
    pub fn linked(
        reference: &str,
        counterpart: &str,
        counterpart_id: Option<&str>,
        command_id: &str,
    ) -> Self {
        Link {
            reference: reference.to_string(),
            counterpart: Some(counterpart.to_string()),
            counterpart_id: counterpart_id.map(str::to_string),
            state: LinkState::Linked,
            command_id: command_id.to_string(),
            at_ms: now_ms(),
        }
    }

    /// The reverse row (`counterpart → reference`), for a linked row.
    pub fn reverse(&self) -> Option<Link> {
        let counterpart = self.counterpart.as_ref()?;
        (self.state == LinkState::Linked).then(|| Link {
            reference: counterpart.clone(),
            counterpart: Some(self.reference.clone()),
            counterpart_id: None,
            state: LinkState::Linked,
            command_id: self.command_id.clone(),
            at_ms: self.at_ms,
        })
    }

    /// The record to produce for this row into `topic`.
    pub fn record(&self, topic: &str) -> OutRecord {
        OutRecord::new(topic)
            .key(self.reference.clone())
            .payload(serde_json::to_vec(self).expect("a link serialises"))
    }

    /// A linked row and its reverse, ready to produce.
    pub fn records_both_ways(&self, topic: &str) -> Vec<OutRecord> {
        let mut out = vec![self.record(topic)];
        out.extend(self.reverse().map(|r| r.record(topic)));
        out
    }
}

/// The links as this process knows them: loaded at start, kept current by a tail of the topic
/// and by [`LinkStore::remember`] for the process's own writes (visible at once, before the
/// tail sees them).
#[derive(Debug, Default)]
pub struct LinkStore {
    links: RwLock<HashMap<String, Link>>,
}

impl LinkStore {
    /// An empty store (tests, dry runs).
    pub fn empty() -> Arc<Self> {
        Arc::new(LinkStore::default())
    }

    /// Reads `topic` to its end and keeps tailing it on a background thread for as long as the
    /// store lives. Blocking: call from `spawn_blocking` in async code.
    ///
    /// # Errors
    ///
    /// Kafka errors of the initial read (the topic missing, the broker unreachable).
    pub fn load(base: &ClientConfig, topic: &str) -> anyhow::Result<Arc<Self>> {
        let store = Arc::new(LinkStore::default());
        let latest = latest_by_key(base, topic)?;
        {
            let mut links = store.links.write().expect("link store lock");
            for m in latest.values() {
                if let Some(link) = m
                    .payload()
                    .and_then(|p| serde_json::from_slice::<Link>(p).ok())
                {
                    links.insert(link.reference.clone(), link);
                }
            }
        }
        spawn_tail(base, topic, Arc::downgrade(&store))?;
        Ok(store)
    }

    /// The row for `reference`, if any.
    pub fn get(&self, reference: &str) -> Option<Link> {
        self.links
            .read()
            .expect("link store lock")
            .get(reference)
            .cloned()
    }

    /// The linked counterpart of `reference` (`None` for no row or only an intent).
    pub fn counterpart(&self, reference: &str) -> Option<String> {
        self.get(reference)
            .filter(|l| l.state == LinkState::Linked)
            .and_then(|l| l.counterpart)
    }

    /// Records a row this process wrote (or is about to write in the same transaction).
    pub fn remember(&self, link: &Link) {
        let mut links = self.links.write().expect("link store lock");
        for row in std::iter::once(link.clone()).chain(link.reverse()) {
            apply(&mut links, row);
        }
    }

    /// How many rows are known.
    pub fn len(&self) -> usize {
        self.links.read().expect("link store lock").len()
    }

    /// Whether no row is known.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Waits up to `max` for `reference` to be linked (a parent or the record a comment belongs
    /// to, usually created just ahead), checking every `every`.
    pub async fn wait_for(
        &self,
        reference: &str,
        max: Duration,
        every: Duration,
    ) -> Option<String> {
        let deadline = tokio::time::Instant::now() + max;
        loop {
            if let Some(c) = self.counterpart(reference) {
                return Some(c);
            }
            if tokio::time::Instant::now() >= deadline {
                return None;
            }
            tokio::time::sleep(every).await;
        }
    }
}

/// A later `Linked` row never falls back to an `Intent` written before it (the tail may deliver
/// our own intent after we remembered the link).
fn apply(links: &mut HashMap<String, Link>, row: Link) {
    match links.get(&row.reference) {
        Some(old) if old.state == LinkState::Linked && row.state == LinkState::Intent => {}
        _ => {
            links.insert(row.reference.clone(), row);
        }
    }
}

/// Tails `topic` from its current end on a plain thread until the store is dropped.
fn spawn_tail(
    base: &ClientConfig,
    topic: &str,
    store: std::sync::Weak<LinkStore>,
) -> anyhow::Result<()> {
    let mut cfg = base.clone();
    cfg.set("group.id", "sfjira-links-tail")
        .set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "false")
        .set("isolation.level", "read_committed");
    let consumer: BaseConsumer = cfg.create()?;
    let metadata = consumer.fetch_metadata(Some(topic), Duration::from_secs(30))?;
    let mut tpl = TopicPartitionList::new();
    for t in metadata.topics().iter().filter(|t| t.name() == topic) {
        for p in t.partitions() {
            tpl.add_partition_offset(topic, p.id(), Offset::End)?;
        }
    }
    consumer.assign(&tpl)?;
    std::thread::Builder::new()
        .name("sfjira-links-tail".into())
        .spawn(move || {
            while store.strong_count() > 0 {
                let Some(Ok(m)) = consumer.poll(Duration::from_millis(200)) else {
                    continue;
                };
                let Some(link) = m
                    .payload()
                    .and_then(|p| serde_json::from_slice::<Link>(p).ok())
                else {
                    continue;
                };
                let Some(store) = store.upgrade() else { break };
                apply(&mut store.links.write().expect("link store lock"), link);
            }
        })?;
    Ok(())
}

fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn linked_row_has_a_reverse_and_intent_has_none() {
        let l = Link::linked(
            "salesforce:Opportunity:006A",
            "jira:PROJ-7",
            Some("10007"),
            "c1",
        );
        let r = l.reverse().unwrap();
        assert_eq!(r.reference, "jira:PROJ-7");
        assert_eq!(
            r.counterpart.as_deref(),
            Some("salesforce:Opportunity:006A")
        );
        assert!(
            Link::intent("salesforce:Opportunity:006A", "c1")
                .reverse()
                .is_none()
        );
    }

    #[test]
    fn a_late_intent_does_not_undo_a_link() {
        let store = LinkStore::default();
        store.remember(&Link::linked(
            "salesforce:Account:001",
            "jira:P-1",
            None,
            "c",
        ));
        apply(
            &mut store.links.write().unwrap(),
            Link::intent("salesforce:Account:001", "c"),
        );
        assert_eq!(
            store.counterpart("salesforce:Account:001").as_deref(),
            Some("jira:P-1")
        );
        assert_eq!(
            store.counterpart("jira:P-1").as_deref(),
            Some("salesforce:Account:001")
        );
    }

    #[tokio::test]
    async fn wait_for_gives_up_after_its_bound() {
        let store = LinkStore::default();
        let got = store
            .wait_for(
                "jira:P-9",
                Duration::from_millis(30),
                Duration::from_millis(5),
            )
            .await;
        assert!(got.is_none());
    }
}
