//! The sink's Kafka side: consume `salesforce.commands` (`read_committed`, one consumer group),
//! gather a batch (until `max_batch_records` or `linger_ms` after its first command), apply it
//! to Salesforce ([`crate::apply`]), then write every command's audit entry, the links learnt
//! and the dead letters in one Kafka transaction together with the consumed offsets.
//!
//! Salesforce is written before the transaction, so a crash between the two re-applies the
//! batch on restart: harmless, since upserts by external id and updates by Id are idempotent
//! and links are looked up first. Command ids already audited as applied are skipped.
//!
//! Commands of a `batched` flow are held until their window closes (windows aligned to their
//! interval, so one window's commands go together and edits of one record coalesce). Their
//! offsets are not committed while held: per partition the committed offset stops at the first
//! held command, and what a restart reads again past it is skipped by command id. A realtime
//! command for a record with held commands takes them along, so order per record holds.

use std::collections::{BTreeMap, HashSet};
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context;
use rdkafka::consumer::Consumer;
use rdkafka::message::{Message, OwnedMessage};
use rdkafka::{Offset, TopicPartitionList};
use sfjira_core::audit::{self, AuditResult};
use sfjira_core::avro::AvroCodec;
use sfjira_core::command::{Command, DeliveryMode};
use sfjira_core::config::{SalesforceSinkConfig, SfjiraConfig};
use sfjira_core::dlq::{Attempts, DlqRouter, FailedAt, FailedRecord};
use sfjira_core::errors::{ErrorCode, StageError};
use sfjira_core::kafka::{
    KafkaConsumer, OffsetTracker, OutRecord, TransactionalProducer, TxnError, client_config,
    topic_name,
};
use sfjira_core::links::{self, LinkStore};
use sfjira_core::telemetry::events::{ReceivedTally, TransactionAborted};
use sfjira_core::telemetry::messaging::process_span_for_message;
use tokio::time::Instant;

use crate::apply::{Applier, LoginFailed};
use crate::client::SalesforceClient;
use crate::events::{CommandLatency, ReplaysSkipped};
use crate::output::{Outputs, traced};
use crate::pause::ConsumerPauser;

pub const STAGE: &str = "salesforce-sink";
const TXN_TIMEOUT: Duration = Duration::from_secs(30);

/// A consumed command waiting to be applied.
pub struct Pending {
    pub cmd: Command,
    pub failed: FailedRecord,
    pub span: tracing::Span,
    /// The command record's Kafka timestamp (ms), for the command-to-write latency.
    pub produced_ms: Option<i64>,
}

struct Held {
    /// When its window closes, in epoch ms: wall-clock ms, not an `Instant` computed per
    /// command, so every command of one window falls due at the same check (per-command
    /// `Instant`s differed by a fraction of a millisecond and once split a window, writing a
    /// record's older edit after its newer one).
    due_ms: i64,
    pending: Pending,
}

/// What a run did, for tests and logs.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RunSummary {
    pub batches: u64,
    pub commands: u64,
}

pub struct Sink {
    cfg: SalesforceSinkConfig,
    consumer: KafkaConsumer,
    producer: TransactionalProducer,
    codec: AvroCodec,
    outputs: Outputs,
    applier: Applier,
    commands_topic: String,
    applied: HashSet<String>,
    backlog: Mutex<Vec<OwnedMessage>>,
    held: Vec<Held>,
    /// Per partition, one past the last record read.
    read: OffsetTracker,
}

impl Sink {
    /// Logs in, loads links and the applied command ids, joins the group.
    pub async fn new(cfg: &SfjiraConfig) -> anyhow::Result<Self> {
        let settings = cfg
            .salesforce_sink
            .clone()
            .ok_or_else(|| anyhow::anyhow!("the configuration has no `salesforce_sink` section"))?;
        let base = client_config(&cfg.kafka);
        let client = Arc::new(SalesforceClient::new(&settings)?);
        client
            .login()
            .await
            .map_err(|e| anyhow::anyhow!("{}: {e}", ErrorCode::SalesforceSinkLoginFailed))?;
        let our_user = client.user_id().await;
        let links_topic = topic_name(&cfg.kafka, links::TOPIC);
        let audit_topic = topic_name(&cfg.kafka, audit::TOPIC);
        let (b, t) = (base.clone(), links_topic.clone());
        let links: Arc<LinkStore> = tokio::task::spawn_blocking(move || LinkStore::load(&b, &t))
            .await?
            .with_context(|| {
                format!("loading {links_topic}: create the topics first (`sfjira topics apply`)")
            })?;
        let (b, t) = (base.clone(), audit_topic.clone());
        let lookback = Duration::from_secs(settings.audit_lookback_hours * 3600);
        let applied = tokio::task::spawn_blocking(move || {
            audit::applied_command_ids(&b, &t, STAGE, lookback)
        })
        .await?
        .with_context(|| {
            format!("reading {audit_topic}: create the topics first (`sfjira topics apply`)")
        })?;
        tracing::info!(
            links = links.len(),
            applied = applied.len(),
            "links and applied command ids loaded"
        );
        let commands_topic = topic_name(&cfg.kafka, "salesforce.commands");
        let consumer = KafkaConsumer::new_static(
            &base,
            &settings.group_id,
            &cfg.service.instance_id,
            &[&commands_topic],
        )?;
        let txn_id = format!(
            "{}-{}-{}",
            settings.group_id, STAGE, cfg.service.instance_id
        );
        let producer = TransactionalProducer::new(&base, &txn_id, TXN_TIMEOUT).await?;
        let secrets = settings
            .auth
            .client_secret
            .iter()
            .map(|s| s.expose().to_string())
            .collect::<Vec<_>>();
        Ok(Sink {
            applier: Applier::new(&settings, client, links, our_user),
            cfg: settings,
            consumer,
            producer,
            codec: AvroCodec::new(&cfg.registry)?,
            outputs: Outputs {
                dlq: DlqRouter::new(STAGE, &cfg.kafka.topic_prefix, &cfg.service.instance_id)
                    .redacting(secrets),
                audit_topic,
                links_topic,
            },
            commands_topic,
            applied,
            backlog: Mutex::new(Vec::new()),
            held: Vec::new(),
            read: OffsetTracker::new(),
        })
    }

    /// The link store (tests look at it).
    pub fn links(&self) -> Arc<LinkStore> {
        self.applier.links.clone()
    }

    /// Runs until `shutdown` resolves; held batched commands are applied before it returns.
    pub async fn run(
        mut self,
        shutdown: impl std::future::Future<Output = ()> + Send,
    ) -> anyhow::Result<RunSummary> {
        let mut shutdown: Pin<Box<dyn std::future::Future<Output = ()> + Send + '_>> =
            Box::pin(shutdown);
        let mut summary = RunSummary::default();
        let mut backoff = self.cfg.retry.backoff();
        let mut stopping = false;
        loop {
            let batch = if stopping {
                Vec::new()
            } else {
                match self.collect(&mut shutdown).await? {
                    Some(b) => b,
                    None => {
                        stopping = true;
                        Vec::new()
                    }
                }
            };
            match self.process(batch, stopping).await {
                Ok(n) => {
                    if n > 0 {
                        summary.batches += 1;
                        summary.commands += n as u64;
                    }
                    backoff = self.cfg.retry.backoff();
                }
                Err(e) => {
                    tracing::warn!(error = %e, "batch not committed; it is read and applied again");
                    self.held.clear();
                    self.read.clear();
                    self.backlog.lock().expect("backlog").clear();
                    self.consumer.rewind_to_committed(TXN_TIMEOUT)?;
                    match backoff.next_delay(None) {
                        Some(d) => tokio::time::sleep(d).await,
                        None => anyhow::bail!(
                            "batches keep failing past the retry budget ({e}); stopping so another instance can take over"
                        ),
                    }
                    continue;
                }
            }
            if stopping && self.held.is_empty() {
                break;
            }
        }
        self.consumer.shutdown(&OffsetTracker::new())?;
        tracing::info!(
            batches = summary.batches,
            commands = summary.commands,
            "salesforce-sink stopped"
        );
        Ok(summary)
    }

    /// Waits for a first record (or the next held window's end, or shutdown: `None`), then
    /// takes what arrives within `linger_ms`, up to `max_batch_records`.
    async fn collect(
        &self,
        shutdown: &mut Pin<Box<dyn std::future::Future<Output = ()> + Send + '_>>,
    ) -> anyhow::Result<Option<Vec<OwnedMessage>>> {
        let mut batch: Vec<OwnedMessage> =
            std::mem::take(&mut *self.backlog.lock().expect("backlog"));
        if batch.is_empty() {
            let until = self.held.iter().map(|h| h.due_ms).min().map(|due| {
                // One ms past it, so the check after the wait finds the window closed.
                let wait = (due - crate::outcome::now_ms()).max(0) as u64 + 1;
                Instant::now() + Duration::from_millis(wait)
            });
            let first = async {
                match until {
                    Some(t) => tokio::time::timeout_at(t, self.consumer.recv()).await.ok(),
                    None => Some(self.consumer.recv().await),
                }
            };
            tokio::select! {
                _ = shutdown.as_mut() => return Ok(None),
                m = first => match m {
                    Some(m) => batch.push(m?.detach()),
                    None => return Ok(Some(batch)),
                },
            }
        }
        let deadline = Instant::now() + Duration::from_millis(self.cfg.linger_ms);
        while batch.len() < self.cfg.max_batch_records {
            match tokio::time::timeout_at(deadline, self.consumer.recv()).await {
                Ok(m) => batch.push(m?.detach()),
                Err(_) => break,
            }
        }
        Ok(Some(batch))
    }

    /// Decodes, holds or applies, and commits one batch. Returns the commands applied.
    async fn process(
        &mut self,
        batch: Vec<OwnedMessage>,
        flush_all: bool,
    ) -> anyhow::Result<usize> {
        let mut outputs: Vec<OutRecord> = Vec::new();
        let mut ready: Vec<Pending> = Vec::new();
        let mut replays = 0u64;
        let mut received = ReceivedTally::default();
        for msg in &batch {
            self.read.record(msg);
            received.add(msg.topic(), msg.payload().map_or(0, <[u8]>::len) as u64);
            match self.decode(msg).await? {
                Err(dead) => outputs.push(dead),
                Ok(p) if self.applied.contains(&p.cmd.command_id) => replays += 1,
                Ok(p) => self.route(p, &mut ready),
            }
        }
        ReplaysSkipped { count: replays }.emit();
        // Windows that closed, in arrival order, ahead of this batch's realtime commands.
        let now = crate::outcome::now_ms();
        let (due, keep): (Vec<Held>, Vec<Held>) = std::mem::take(&mut self.held)
            .into_iter()
            .partition(|h| flush_all || h.due_ms <= now);
        self.held = keep;
        let mut due: Vec<Pending> = due.into_iter().map(|h| h.pending).collect();
        due.append(&mut ready);
        let ready = due;

        let started_ms = crate::outcome::now_ms();
        let outcomes = if ready.is_empty() {
            Vec::new()
        } else {
            let commands: Vec<&Command> = ready.iter().map(|p| &p.cmd).collect();
            let pauser = ConsumerPauser {
                consumer: &self.consumer,
                backlog: &self.backlog,
            };
            self.applier
                .apply(&pauser, &commands)
                .await
                .map_err(|LoginFailed(m)| {
                    anyhow::anyhow!("{}: {m}", ErrorCode::SalesforceSinkLoginFailed)
                })?
        };
        for (p, o) in ready.iter().zip(&outcomes) {
            outputs.extend(self.outputs.records_for(p, o, started_ms));
            if o.result == AuditResult::Applied
                && let Some(t) = p.produced_ms
            {
                CommandLatency {
                    latency: Duration::from_millis((o.finished_ms - t).max(0) as u64),
                }
                .emit();
            }
        }
        let offsets = self.committable();
        if outputs.is_empty() && offsets.count() == 0 {
            return Ok(0);
        }
        self.commit(&outputs, &offsets).await?;
        received.emit(STAGE);
        for (p, o) in ready.iter().zip(&outcomes) {
            if matches!(o.result, AuditResult::Applied | AuditResult::Skipped) {
                self.applied.insert(p.cmd.command_id.clone());
            }
        }
        Ok(ready.len())
    }

    /// A realtime command goes now, taking along held commands of its record; a batched one
    /// waits for its window.
    fn route(&mut self, p: Pending, ready: &mut Vec<Pending>) {
        match p.cmd.delivery {
            DeliveryMode::Batched { interval_ms } if interval_ms > 0 => {
                let key = &p.cmd.target.external_ref;
                // Behind a held command of the same record: the same window, so their order
                // holds.
                let due_ms = match self
                    .held
                    .iter()
                    .find(|h| &h.pending.cmd.target.external_ref == key)
                {
                    Some(h) => h.due_ms,
                    None => {
                        let i = interval_ms.min(i64::MAX as u64) as i64;
                        (crate::outcome::now_ms() / i + 1) * i
                    }
                };
                self.held.push(Held { due_ms, pending: p });
            }
            _ => {
                let key = p.cmd.target.external_ref.clone();
                let (mine, rest): (Vec<Held>, Vec<Held>) = std::mem::take(&mut self.held)
                    .into_iter()
                    .partition(|h| h.pending.cmd.target.external_ref == key);
                self.held = rest;
                ready.extend(mine.into_iter().map(|h| h.pending));
                ready.push(p);
            }
        }
    }

    /// A consumed record as a command, or its dead letter. Errors only when worth retrying
    /// the batch (the registry unreachable).
    async fn decode(&self, msg: &OwnedMessage) -> anyhow::Result<Result<Pending, OutRecord>> {
        let span = process_span_for_message(msg, &self.cfg.group_id);
        let failed = FailedRecord::from_message(msg);
        let dead = |err: StageError, at: FailedAt| {
            span.in_scope(|| {
                traced(
                    self.outputs
                        .dlq
                        .dead_letter(&failed, &err, at, Attempts::once()),
                )
            })
        };
        let decoded = match self.codec.decode(msg.payload().unwrap_or_default()).await {
            Ok(d) => d,
            Err(e) if e.retryable() => anyhow::bail!(e),
            Err(e) => return Ok(Err(dead(e, FailedAt::ValueConverter))),
        };
        match Command::from_avro(decoded.value) {
            Ok(cmd) => Ok(Ok(Pending {
                cmd,
                produced_ms: msg.timestamp().to_millis(),
                failed: failed.clone(),
                span: span.clone(),
            })),
            Err(e) => Ok(Err(dead(
                StageError::caused_by(
                    ErrorCode::SalesforceCommandUndecodable,
                    "the value is not a command",
                    e,
                ),
                FailedAt::ValueConverter,
            ))),
        }
    }

    /// Per partition: the first held command's offset, else one past the last record read.
    fn committable(&self) -> TopicPartitionList {
        let mut next: BTreeMap<(String, i32), i64> = BTreeMap::new();
        let list = self.read.to_list();
        for e in list.elements() {
            if let Offset::Offset(o) = e.offset() {
                next.insert((e.topic().to_string(), e.partition()), o);
            }
        }
        for h in &self.held {
            let f = &h.pending.failed;
            let k = (f.topic.clone(), f.partition);
            let v = next.entry(k).or_insert(f.offset);
            *v = (*v).min(f.offset);
        }
        // Only partitions still assigned: after a rebalance another member owns the others.
        let assigned: HashSet<(String, i32)> = self
            .consumer
            .inner()
            .assignment()
            .map(|a| {
                a.elements()
                    .iter()
                    .map(|e| (e.topic().to_string(), e.partition()))
                    .collect()
            })
            .unwrap_or_default();
        let mut tpl = TopicPartitionList::new();
        for ((t, p), o) in next {
            if assigned.contains(&(t.clone(), p)) {
                let _ = tpl.add_partition_offset(&t, p, Offset::Offset(o));
            }
        }
        tpl
    }

    async fn commit(
        &mut self,
        outputs: &[OutRecord],
        offsets: &TopicPartitionList,
    ) -> anyhow::Result<()> {
        let result = async {
            self.producer.begin()?;
            for r in outputs {
                self.producer.send_prepared(r).await?;
            }
            if offsets.count() > 0 {
                let group = self
                    .consumer
                    .group_metadata()
                    .ok_or_else(|| TxnError::Aborted {
                        reason: "the consumer has no group metadata yet".into(),
                    })?;
                self.producer.send_offsets(offsets, group).await?;
            }
            self.producer.commit().await
        }
        .await;
        match result {
            Ok(()) => Ok(()),
            Err(TxnError::Fatal(e)) => {
                tracing::error!(error = %e, "fatal producer error; re-creating the producer");
                self.producer.recover().await?;
                anyhow::bail!("fatal producer error: {e}")
            }
            Err(TxnError::Aborted { reason }) => {
                TransactionAborted { stage: STAGE }.emit();
                let _ = self.producer.abort().await;
                anyhow::bail!("transaction aborted: {reason}")
            }
        }
    }

    /// The topic consumed.
    pub fn commands_topic(&self) -> &str {
        &self.commands_topic
    }
}

/// Starts the sink and runs it until `shutdown`.
pub async fn run(
    cfg: &SfjiraConfig,
    shutdown: impl std::future::Future<Output = ()> + Send,
) -> anyhow::Result<RunSummary> {
    let sink = Sink::new(cfg).await?;
    tracing::info!(topic = sink.commands_topic(), "salesforce-sink running");
    sink.run(shutdown).await
}
