//! Watching the pipeline from Kafka itself: a `read_committed` consumer tailing, from the
//! beginning, the three topics a change crosses on its way to Jira — the source topic
//! (`salesforce.cdc.Account`), `jira.commands` and `sfjira.audit` (the jira-sink's entries) —
//! so the bench knows, per change, when each stage made it visible (each record's Kafka
//! timestamp, the producer's clock at produce time) and, per stage, how many records were
//! visible when (the stage rates of the backlog run).
//!
//! Runs on its own thread with librdkafka's blocking consumer, so the bench's async writers
//! are not slowed by it. Changes are identified by the Salesforce record Id: the source topic's
//! key, and the last part of the `salesforce:Account:<Id>` references of the other two.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::{ClientConfig, Offset, TopicPartitionList};
use sfjira_core::audit::AuditEntry;

/// The stages a change is seen at, in pipeline order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Stage {
    /// salesforce-source produced the change event.
    Source,
    /// The transformer produced the command.
    Command,
    /// jira-sink committed the audit entry of its write.
    Audited,
}

impl Stage {
    pub const ALL: [Stage; 3] = [Stage::Source, Stage::Command, Stage::Audited];

    pub fn topic(self) -> &'static str {
        match self {
            Stage::Source => "salesforce.cdc.Account",
            Stage::Command => "jira.commands",
            Stage::Audited => sfjira_core::audit::TOPIC,
        }
    }

    fn index(self) -> usize {
        self as usize
    }
}

/// What the collector has seen so far.
#[derive(Default)]
pub struct Seen {
    /// Per stage: record Id → Kafka timestamp (epoch ms) of its first record there.
    pub at: [HashMap<String, i64>; 3],
    /// Per stage: when (epoch ms, this process's clock) each distinct change became visible,
    /// in the order seen.
    pub visible_ms: [Vec<i64>; 3],
    /// The jira-sink's audit entry per record Id (the first one).
    pub audit: HashMap<String, AuditEntry>,
}

impl Seen {
    pub fn count(&self, stage: Stage) -> usize {
        self.at[stage.index()].len()
    }

    pub fn time(&self, stage: Stage, id: &str) -> Option<i64> {
        self.at[stage.index()].get(id).copied()
    }

    pub fn visible(&self, stage: Stage) -> &[i64] {
        &self.visible_ms[stage.index()]
    }
}

/// The tailing consumer; stopped when dropped.
pub struct Collector {
    pub seen: Arc<Mutex<Seen>>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Collector {
    /// Starts tailing the deployment's topics (`prefix` + base name) from their beginning.
    pub fn start(bootstrap: &str, prefix: &str) -> anyhow::Result<Collector> {
        let consumer: BaseConsumer = ClientConfig::new()
            .set("bootstrap.servers", bootstrap)
            .set("group.id", sfjira_tests::unique("bench-e2e-collector"))
            .set("enable.auto.commit", "false")
            .set("isolation.level", "read_committed")
            .set("fetch.wait.max.ms", "20")
            .create()?;
        let mut tpl = TopicPartitionList::new();
        for stage in Stage::ALL {
            let topic = format!("{prefix}{}", stage.topic());
            let md = consumer.fetch_metadata(Some(&topic), Duration::from_secs(10))?;
            for t in md.topics() {
                if t.partitions().is_empty() {
                    anyhow::bail!("topic {topic} has no partitions (not created?)");
                }
                for p in t.partitions() {
                    tpl.add_partition_offset(&topic, p.id(), Offset::Beginning)?;
                }
            }
        }
        consumer.assign(&tpl)?;
        let seen = Arc::new(Mutex::new(Seen::default()));
        let stop = Arc::new(AtomicBool::new(false));
        let topics: Vec<(String, Stage)> = Stage::ALL
            .iter()
            .map(|s| (format!("{prefix}{}", s.topic()), *s))
            .collect();
        let thread = {
            let (seen, stop) = (seen.clone(), stop.clone());
            std::thread::spawn(move || tail(consumer, &topics, &seen, &stop))
        };
        Ok(Collector {
            seen,
            stop,
            thread: Some(thread),
        })
    }

    /// Runs `f` on what has been seen so far.
    pub fn with<T>(&self, f: impl FnOnce(&Seen) -> T) -> T {
        f(&self.seen.lock().unwrap_or_else(|p| p.into_inner()))
    }
}

impl Drop for Collector {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn tail(consumer: BaseConsumer, topics: &[(String, Stage)], seen: &Mutex<Seen>, stop: &AtomicBool) {
    while !stop.load(Ordering::Relaxed) {
        let Some(Ok(m)) = consumer.poll(Duration::from_millis(100)) else {
            continue;
        };
        let Some(stage) = topics.iter().find(|(t, _)| t == m.topic()).map(|(_, s)| *s) else {
            continue;
        };
        let ts = m.timestamp().to_millis().unwrap_or_default();
        let (id, entry) = match stage {
            Stage::Source => (
                m.key().map(|k| String::from_utf8_lossy(k).into_owned()),
                None,
            ),
            Stage::Command => (
                m.key()
                    .map(|k| record_id(&String::from_utf8_lossy(k)).to_string()),
                None,
            ),
            Stage::Audited => match m.payload().and_then(AuditEntry::parse) {
                Some(e) if e.sink == "jira-sink" => {
                    (Some(record_id(&e.external_ref).to_string()), Some(e))
                }
                _ => (None, None),
            },
        };
        let Some(id) = id else { continue };
        let mut s = seen.lock().unwrap_or_else(|p| p.into_inner());
        if s.at[stage.index()].contains_key(&id) {
            continue;
        }
        s.at[stage.index()].insert(id.clone(), ts);
        s.visible_ms[stage.index()].push(crate::now_ms());
        if let Some(e) = entry {
            s.audit.insert(id, e);
        }
    }
}

/// `salesforce:Account:001…` → `001…`.
fn record_id(reference: &str) -> &str {
    reference.rsplit(':').next().unwrap_or(reference)
}
