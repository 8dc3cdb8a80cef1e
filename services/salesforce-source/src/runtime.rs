//! The run loop: one task per configured channel, each with its own transactional producer
//! (`transactional.id` = `sfjira-salesforce-source-<instance>-<channel>`, so a restarted
//! instance fences its predecessor), reading one `Subscribe` stream and writing records plus
//! the channel's position in one Kafka transaction.
//!
//! Commit rules (a Salesforce transaction is never split across Kafka transactions):
//! - before the first event of a new Salesforce transaction, when `batch_size` records are in
//!   the open Kafka transaction;
//! - after a response that left demand pending (the server had nothing more to give), or after
//!   `IDLE_COMMIT` without a further response;
//! - on a keepalive: the position alone (keepalives advance the stored position).
//!
//! Any stream failure (watchdog, broken stream, refused token, aborted Kafka transaction)
//! aborts the open Kafka transaction and resubscribes after the last committed position, so
//! what Kafka holds never has a gap or a duplicate.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use rand::Rng;
use sfjira_core::avro::AvroCodec;
use sfjira_core::config::{OnInvalidReplay, SalesforceSourceConfig, SfjiraConfig, StartFrom};
use sfjira_core::dlq::DlqRouter;
use sfjira_core::errors::{ErrorCode, StageError};
use sfjira_core::kafka::{OutRecord, TransactionalProducer, TxnError, client_config, topic_name};
use sfjira_core::telemetry::events::{RecordsReceived, RecordsSent};
use tokio::sync::watch;
use tonic::transport::Channel;

use crate::auth::{Session, TokenClient};
use crate::checkpoint::{self, Position};
use crate::decode::{self, EventSchema};
use crate::events::{AuthRefreshed, CaptureLag, ChangesPublished, GapRecovered, Reconnected};
use crate::proto::ConsumerEvent;
use crate::publish::Publisher;
use crate::pubsub::{self, PubSubError, StartAt, Subscription};

/// How long the source waits for a further response, after asking for more, before committing
/// what it has. The server sends available events at once when demand is pending, so silence
/// this long means the last Salesforce transaction is complete (a heuristic: Salesforce does
/// not say how many events a transaction has; a server slower than this could see a
/// transaction split across two Kafka transactions, never lost or duplicated).
const IDLE_COMMIT: Duration = Duration::from_millis(500);
const STAGE: &str = "salesforce-source";

/// Runs every configured channel until `shutdown` resolves or one channel fails.
pub async fn run(
    cfg: &SfjiraConfig,
    shutdown: impl std::future::Future<Output = ()>,
) -> anyhow::Result<()> {
    let settings = cfg
        .salesforce_source
        .clone()
        .context("the configuration has no salesforce_source section")?;
    if settings.backfill_on_start {
        crate::backfill::on_start(cfg, &settings).await?;
    }
    let (stop_tx, stop_rx) = watch::channel(false);
    let mut tasks = tokio::task::JoinSet::new();
    for channel in &settings.channels {
        let runner = ChannelRunner::new(cfg, &settings, channel).await?;
        tasks.spawn(runner.run(stop_rx.clone()));
    }
    tokio::pin!(shutdown);
    let result = tokio::select! {
        () = &mut shutdown => Ok(()),
        Some(r) = tasks.join_next() => r.context("a channel task panicked")?,
    };
    let _ = stop_tx.send(true);
    while let Some(r) = tasks.join_next().await {
        r.context("a channel task panicked")??;
    }
    result
}

enum StreamEnd {
    Stopped,
    Failed(PubSubError),
}

struct ChannelRunner {
    channel: String,
    settings: SalesforceSourceConfig,
    tokens: TokenClient,
    session: Session,
    grpc: Channel,
    producer: TransactionalProducer,
    publisher: Publisher,
    dlq: DlqRouter,
    checkpoint_topic: String,
    schemas: HashMap<String, Arc<EventSchema>>,
    /// REST calls (gap recovery).
    http: reqwest::Client,
    /// Where the next subscription starts (after the last committed position).
    start: StartAt,
    /// Records in the open Kafka transaction.
    in_txn: usize,
    /// Records and bytes per topic in the open Kafka transaction (counted once committed).
    sent: HashMap<String, (u64, u64)>,
    /// Changes per (entity, change type) in the open Kafka transaction.
    published: HashMap<(String, String), u64>,
    /// Salesforce transaction of the last event handed to Kafka.
    last_tx_key: Option<String>,
    last_replay: Vec<u8>,
}

impl ChannelRunner {
    async fn new(
        cfg: &SfjiraConfig,
        settings: &SalesforceSourceConfig,
        channel: &str,
    ) -> anyhow::Result<Self> {
        let base = client_config(&cfg.kafka);
        let txn_id = format!(
            "sfjira-{STAGE}-{}-{}",
            cfg.service.instance_id,
            channel.trim_start_matches('/').replace('/', ".")
        );
        // The producer first: init_transactions fences a predecessor and aborts its open
        // transaction, so the checkpoint read next is final.
        let producer = TransactionalProducer::new(&base, &txn_id, Duration::from_secs(30))
            .await
            .with_context(|| format!("starting the transactional producer {txn_id}"))?;
        let checkpoint_topic = topic_name(&cfg.kafka, checkpoint::TOPIC);
        let position = {
            let (base, t, c) = (base.clone(), checkpoint_topic.clone(), channel.to_string());
            tokio::task::spawn_blocking(move || checkpoint::load(&base, &t, &c)).await??
        };
        let start = match position.as_ref().and_then(Position::replay_bytes) {
            Some(id) => StartAt::After(id),
            None => match settings.start_from {
                StartFrom::Latest => StartAt::Latest,
                StartFrom::Earliest => StartAt::Earliest,
            },
        };
        tracing::info!(%channel, ?position, "resuming");
        let tokens = TokenClient::new(
            &settings.login_url,
            settings.auth.clone(),
            settings.tenant_id.clone(),
        );
        let session = tokens.login().await.map_err(|e| {
            anyhow::anyhow!(
                "{}: {e}; {}",
                ErrorCode::SalesforceLoginFailed.as_str(),
                ErrorCode::SalesforceLoginFailed.remediation()
            )
        })?;
        let grpc = pubsub::connect(&settings.pubsub_url).await?;
        let publisher = Publisher::new(AvroCodec::new(&cfg.registry)?, &cfg.kafka.topic_prefix);
        let dlq = DlqRouter::new(STAGE, &cfg.kafka.topic_prefix, &cfg.service.instance_id);
        Ok(ChannelRunner {
            channel: channel.to_string(),
            settings: settings.clone(),
            tokens,
            session,
            grpc,
            producer,
            publisher,
            dlq,
            checkpoint_topic,
            schemas: HashMap::new(),
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(60))
                .build()?,
            start,
            in_txn: 0,
            sent: HashMap::new(),
            published: HashMap::new(),
            last_tx_key: None,
            last_replay: Vec::new(),
        })
    }

    async fn run(mut self, mut stop: watch::Receiver<bool>) -> anyhow::Result<()> {
        let mut failures: u32 = 0;
        loop {
            let end = self.stream(&mut stop, &mut failures).await;
            self.abort().await?;
            let err = match end {
                StreamEnd::Stopped => return Ok(()),
                StreamEnd::Failed(e) => e,
            };
            match err {
                PubSubError::Unauthenticated(why) => {
                    tracing::info!(channel = %self.channel, %why, "session refused; logging in again");
                    self.relogin(&mut stop).await?;
                    Reconnected {
                        channel: &self.channel,
                        reason: "auth",
                    }
                    .emit();
                    continue;
                }
                PubSubError::InvalidReplay(why) => match self.settings.on_invalid_replay {
                    OnInvalidReplay::Fail => anyhow::bail!(
                        "{}: channel {}: Salesforce rejected the stored replay id {:?} ({why}). \
                         Nothing was skipped. To recover: {}",
                        ErrorCode::SalesforceReplayInvalid.as_str(),
                        self.channel,
                        self.start,
                        ErrorCode::SalesforceReplayInvalid.remediation()
                    ),
                    policy => {
                        self.start = if policy == OnInvalidReplay::Earliest {
                            StartAt::Earliest
                        } else {
                            StartAt::Latest
                        };
                        tracing::warn!(channel = %self.channel, %why, start = ?self.start,
                            "stored replay id rejected; resubscribing as on_invalid_replay says (changes in between may be missing: run a backfill)");
                        Reconnected {
                            channel: &self.channel,
                            reason: "replay",
                        }
                        .emit();
                        continue;
                    }
                },
                PubSubError::Other(why) => {
                    failures += 1;
                    let delay = backoff(failures);
                    tracing::warn!(channel = %self.channel, %why, ?delay, "stream failed; reconnecting");
                    let reason = if why.starts_with("watchdog") {
                        "watchdog"
                    } else {
                        "stream"
                    };
                    Reconnected {
                        channel: &self.channel,
                        reason,
                    }
                    .emit();
                    tokio::select! {
                        () = tokio::time::sleep(delay) => {}
                        _ = stop.changed() => return Ok(()),
                    }
                }
            }
        }
    }

    async fn relogin(&mut self, stop: &mut watch::Receiver<bool>) -> anyhow::Result<()> {
        let mut attempt = 0;
        loop {
            match self.tokens.login().await {
                Ok(s) => {
                    self.session = s;
                    AuthRefreshed.emit();
                    return Ok(());
                }
                Err(e) if e.is_transient() && attempt < 10 => {
                    attempt += 1;
                    tracing::warn!(error = %e, "login failed; retrying");
                    tokio::select! {
                        () = tokio::time::sleep(backoff(attempt)) => {}
                        _ = stop.changed() => return Ok(()),
                    }
                }
                Err(e) => anyhow::bail!(
                    "{}: {e}; {}",
                    ErrorCode::SalesforceLoginFailed.as_str(),
                    ErrorCode::SalesforceLoginFailed.remediation()
                ),
            }
        }
    }

    /// One subscription, until it fails or the source stops.
    async fn stream(&mut self, stop: &mut watch::Receiver<bool>, failures: &mut u32) -> StreamEnd {
        let fetch = self.settings.fetch_size;
        let mut sub =
            match Subscription::open(&self.grpc, &self.session, &self.channel, &self.start, fetch)
                .await
            {
                Ok(s) => s,
                Err(e) => return StreamEnd::Failed(e),
            };
        let watchdog = Duration::from_secs(self.settings.watchdog_secs);
        let mut idle_commit: Option<tokio::time::Instant> = None;
        loop {
            let idle_at = idle_commit.unwrap_or_else(|| tokio::time::Instant::now() + watchdog);
            let response = tokio::select! {
                _ = stop.changed() => return StreamEnd::Stopped,
                () = tokio::time::sleep_until(idle_at), if idle_commit.is_some() => {
                    idle_commit = None;
                    let at = self.last_replay.clone();
                    if let Err(e) = self.commit(&at).await { return StreamEnd::Failed(e) }
                    continue;
                }
                r = tokio::time::timeout(watchdog, sub.next()) => r,
            };
            let response = match response {
                Err(_) => {
                    return StreamEnd::Failed(PubSubError::Other(format!(
                        "watchdog: nothing received for {watchdog:?}"
                    )));
                }
                Ok(Err(e)) => return StreamEnd::Failed(e),
                Ok(Ok(None)) => {
                    return StreamEnd::Failed(PubSubError::Other(
                        "the server ended the stream".into(),
                    ));
                }
                Ok(Ok(Some(r))) => r,
            };
            *failures = 0;
            let handed = response.events.len();
            if handed > 0 {
                RecordsReceived {
                    stage: STAGE,
                    topic: &self.channel,
                    count: handed as u64,
                    bytes: response
                        .events
                        .iter()
                        .filter_map(|e| e.event.as_ref())
                        .map(|e| e.payload.len() as u64)
                        .sum(),
                }
                .emit();
            }
            for event in response.events {
                if let Err(e) = self.handle(event).await {
                    return StreamEnd::Failed(e);
                }
            }
            if let Err(e) = sub.request(handed as i32).await {
                return StreamEnd::Failed(e);
            }
            let position = if response.latest_replay_id.is_empty() {
                self.last_replay.clone()
            } else {
                response.latest_replay_id
            };
            if handed == 0 || response.pending_num_requested > 0 {
                // A keepalive, or the server gave all it had: a transaction boundary.
                idle_commit = None;
                if let Err(e) = self.commit(&position).await {
                    return StreamEnd::Failed(e);
                }
            } else {
                idle_commit = Some(tokio::time::Instant::now() + IDLE_COMMIT);
            }
        }
    }

    /// Decodes one event and hands its records to the open Kafka transaction.
    async fn handle(&mut self, event: ConsumerEvent) -> Result<(), PubSubError> {
        let Some(pe) = event.event else {
            return Ok(());
        };
        let schema = self.schema(&pe.schema_id).await?;
        let changes = match &schema {
            Ok(s) => decode::decode_event(s, &pe.payload, &event.replay_id).map_err(|e| {
                StageError::new(ErrorCode::SalesforcePayloadUndecodable, e.to_string())
            }),
            Err(e) => Err(e.clone_for(&pe.schema_id)),
        };
        let changes = match changes {
            Ok(c) if c.first().is_some_and(|c| c.change_type.starts_with("GAP_")) => {
                let schema = schema.as_ref().expect("decoded with it");
                let (entity, gap) = (c[0].entity.clone(), c[0].change_type.clone());
                let recovered = crate::gap::recover(&self.http, &self.session, schema, c).await?;
                GapRecovered {
                    entity: &entity,
                    gap: &gap,
                    records: recovered.len() as u64,
                }
                .emit();
                Ok(recovered)
            }
            Ok(c) if self.settings.enrich_full_state => {
                let schema = schema.as_ref().expect("decoded with it");
                Ok(crate::enrich::enrich(&self.http, &self.session, schema, c).await?)
            }
            other => other,
        };
        let mut records = Vec::new();
        match changes {
            Ok(changes) => {
                let tx_key = changes.first().map(|c| c.transaction_key.clone());
                if self.in_txn >= self.settings.batch_size
                    && tx_key.is_some()
                    && tx_key != self.last_tx_key
                {
                    let at = self.last_replay.clone();
                    self.commit(&at).await?;
                }
                self.last_tx_key = tx_key;
                let schema = schema.as_ref().expect("decoded with it");
                let now_ms = chrono::Utc::now().timestamp_millis();
                for c in &changes {
                    match self.publisher.record(schema, c).await {
                        Ok(r) => {
                            records.push(r);
                            *self
                                .published
                                .entry((c.entity.clone(), c.change_type.clone()))
                                .or_default() += 1;
                            CaptureLag {
                                entity: &c.entity,
                                seconds: (now_ms - c.commit_timestamp) as f64 / 1000.0,
                            }
                            .emit();
                        }
                        Err(e) if e.retryable() => {
                            return Err(PubSubError::Other(format!("registering a schema: {e}")));
                        }
                        Err(e) => {
                            records = vec![self.dead_letter(&pe, &event.replay_id, &e)];
                            break;
                        }
                    }
                }
            }
            Err(e) => records.push(self.dead_letter(&pe, &event.replay_id, &e)),
        }
        if !self.producer.is_open() {
            self.producer.begin().map_err(txn)?;
        }
        for r in &records {
            self.producer.send(r).await.map_err(txn)?;
            let e = self.sent.entry(r.topic.clone()).or_default();
            e.0 += 1;
            e.1 += r.payload.as_ref().map_or(0, |p| p.len() as u64);
        }
        self.in_txn += records.len();
        self.last_replay = event.replay_id;
        Ok(())
    }

    fn dead_letter(
        &self,
        pe: &crate::proto::ProducerEvent,
        replay_id: &[u8],
        err: &StageError,
    ) -> OutRecord {
        crate::publish::dead_letter(&self.dlq, &self.channel, pe, replay_id, err)
    }

    /// The schema of `id`: fetched once, then cached. `Ok(Err)` when it cannot be used (the
    /// event goes to the DLQ); `Err` when the call failed (reconnect).
    async fn schema(
        &mut self,
        id: &str,
    ) -> Result<Result<Arc<EventSchema>, StageError>, PubSubError> {
        if let Some(s) = self.schemas.get(id) {
            return Ok(Ok(s.clone()));
        }
        let json = pubsub::get_schema(&self.grpc, &self.session, id).await?;
        match EventSchema::parse(id, &json) {
            Ok(s) => {
                let s = Arc::new(s);
                self.schemas.insert(id.to_string(), s.clone());
                Ok(Ok(s))
            }
            Err(e) => Ok(Err(StageError::new(
                ErrorCode::SalesforceSchemaUnusable,
                e.to_string(),
            ))),
        }
    }

    /// Commits the open transaction (or a position-only one) with the channel at `position`.
    async fn commit(&mut self, position: &[u8]) -> Result<(), PubSubError> {
        if position.is_empty() {
            return Ok(());
        }
        if !self.producer.is_open() {
            self.producer.begin().map_err(txn)?;
        }
        let record = Position::new(&self.channel, position).record(&self.checkpoint_topic);
        self.producer.send(&record).await.map_err(txn)?;
        self.producer.commit().await.map_err(txn)?;
        self.start = StartAt::After(position.to_vec());
        self.in_txn = 0;
        for (topic, (count, bytes)) in self.sent.drain() {
            RecordsSent {
                stage: STAGE,
                topic: &topic,
                count,
                bytes,
            }
            .emit();
        }
        for ((entity, change_type), count) in self.published.drain() {
            ChangesPublished {
                entity: &entity,
                change_type: &change_type,
                count,
            }
            .emit();
        }
        Ok(())
    }

    async fn abort(&mut self) -> anyhow::Result<()> {
        self.in_txn = 0;
        self.sent.clear();
        self.published.clear();
        self.last_tx_key = None;
        if let Err(e) = self.producer.abort().await {
            tracing::warn!(error = %e, "abort failed; recreating the producer");
            self.producer
                .recover()
                .await
                .context("recovering the producer")?;
        }
        Ok(())
    }
}

fn txn(e: TxnError) -> PubSubError {
    PubSubError::Other(format!("Kafka transaction: {e}"))
}

/// Exponential backoff with full jitter: up to 0.5 s · 2^n, capped at 30 s.
fn backoff(attempt: u32) -> Duration {
    let cap = Duration::from_millis(500)
        .saturating_mul(1 << attempt.min(6))
        .min(Duration::from_secs(30));
    cap.mul_f64(rand::rng().random_range(0.1..=1.0))
}
