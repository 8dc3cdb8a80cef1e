//! The run loop: one task per configured channel, each with its own transactional producer
//! (`transactional.id` = `sfjira-salesforce-source-<instance>-<channel>`, so a restarted
//! instance fences its predecessor), reading one `Subscribe` stream and writing records plus
//! the channel's position in one Kafka transaction.
//!
//! Commit rules (a Salesforce transaction is never split across Kafka transactions):
//! - before the first event of a new Salesforce transaction, when `batch_size` records are in
//!   the open Kafka transaction;
//! - after a response that left demand pending (the server had nothing more to give) and no
//!   further response is already waiting (those join the transaction, up to `batch_size`), or
//!   after `IDLE_COMMIT` without a further response;
//! - on a keepalive: the position alone (keepalives advance the stored position).
//!
//! Any stream failure (watchdog, broken stream, refused token, aborted Kafka transaction)
//! aborts the open Kafka transaction and resubscribes after the last committed position, so
//! what Kafka holds never has a gap or a duplicate.

use std::collections::HashMap;
use std::time::Duration;

use anyhow::Context;
use futures::FutureExt;
use rand::Rng;
use sfjira_core::avro::AvroCodec;
use sfjira_core::config::{OnInvalidReplay, SalesforceSourceConfig, SfjiraConfig, StartFrom};
use sfjira_core::dlq::DlqRouter;
use sfjira_core::errors::ErrorCode;
use sfjira_core::kafka::{TransactionalProducer, TxnError, client_config, topic_name};
use sfjira_core::telemetry::events::{RecordsReceived, RecordsSent};
use tokio::sync::watch;
use tonic::transport::Channel;

use crate::auth::{Session, TokenClient};
use crate::checkpoint::{self, Position};
use crate::events::{AuthRefreshed, ChangesPublished, Reconnected};
use crate::proto::FetchResponse;
use crate::publish::Publisher;
use crate::pubsub::{PubSubError, StartAt, Subscription};
use crate::schemas::Schemas;

/// How long the source waits for a further response, after asking for more, before committing
/// what it has. The server sends available events at once when demand is pending, so silence
/// this long means the last Salesforce transaction is complete (a heuristic: Salesforce does
/// not say how many events a transaction has; a server slower than this could see a
/// transaction split across two Kafka transactions, never lost or duplicated).
const IDLE_COMMIT: Duration = Duration::from_millis(500);
const STAGE: &str = "salesforce-source";

mod handle;

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
        let runner = ChannelRunner::new(cfg, &settings, channel, stop_rx.clone()).await?;
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

/// Consecutive failed subscriptions since the last response (any response, keepalives too, so
/// the backoff starts small again after every stream that worked).
#[derive(Debug, Default)]
struct Failures {
    /// Broken or refused streams (not the session).
    stream: u32,
    /// Refused sessions.
    auth: u32,
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
    schemas: Schemas,
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
        stop: watch::Receiver<bool>,
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
        let tokens = crate::tls::token_client(settings)?;
        let session = tokens.login().await.map_err(|e| {
            anyhow::anyhow!(
                "{}: {e}; {}",
                ErrorCode::SalesforceLoginFailed.as_str(),
                ErrorCode::SalesforceLoginFailed.remediation()
            )
        })?;
        let grpc = crate::tls::pubsub_channel(settings).await?;
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
            schemas: Schemas::new(settings.schema_retry.clone(), stop.clone()),
            http: crate::tls::http_client(settings, Duration::from_secs(60))?,
            start,
            in_txn: 0,
            sent: HashMap::new(),
            published: HashMap::new(),
            last_tx_key: None,
            last_replay: Vec::new(),
        })
    }

    async fn run(mut self, mut stop: watch::Receiver<bool>) -> anyhow::Result<()> {
        let mut failures = Failures::default();
        loop {
            let end = self.stream(&mut stop, &mut failures).await;
            self.abort().await?;
            let err = match end {
                StreamEnd::Stopped => return Ok(()),
                StreamEnd::Failed(e) => e,
            };
            match err {
                PubSubError::Unauthenticated(why) => {
                    failures.auth += 1;
                    // The first refusal after a working stream is an expired session: log in
                    // at once. A fresh session refused again (a wrong tenant_id, a revoked
                    // permission) backs off like any failure, not to hammer the token endpoint.
                    if failures.auth > 1 {
                        let delay = backoff(failures.auth - 1);
                        tracing::warn!(channel = %self.channel, %why, ?delay, "a fresh session was refused too; backing off");
                        tokio::select! {
                            () = tokio::time::sleep(delay) => {}
                            _ = stop.changed() => return Ok(()),
                        }
                    } else {
                        tracing::info!(channel = %self.channel, %why, "session refused; logging in again");
                    }
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
                    failures.stream += 1;
                    let delay = backoff(failures.stream);
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
    async fn stream(
        &mut self,
        stop: &mut watch::Receiver<bool>,
        failures: &mut Failures,
    ) -> StreamEnd {
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
        // A response already received while deciding whether to commit (see below).
        let mut ready: Option<FetchResponse> = None;
        loop {
            let idle_at = idle_commit.unwrap_or_else(|| tokio::time::Instant::now() + watchdog);
            let response = if let Some(r) = ready.take() {
                Ok(Ok(Some(r)))
            } else {
                tokio::select! {
                _ = stop.changed() => return StreamEnd::Stopped,
                () = tokio::time::sleep_until(idle_at), if idle_commit.is_some() => {
                    idle_commit = None;
                    let at = self.last_replay.clone();
                    if let Err(e) = self.commit(&at).await { return StreamEnd::Failed(e) }
                    continue;
                }
                r = tokio::time::timeout(watchdog, sub.next()) => r,
                }
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
            *failures = Failures::default();
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
                // The server already ended the call (its request side is gone) — typically
                // right after this very response, as a server that closes a stream does. The
                // events of the response are whole and are committed below like any others;
                // `next()` then reports how the call ended. Failing here instead aborted them,
                // and the resubscription was handed the same events and ended the same way
                // again: a reconnect loop that made no progress for as long as this race kept
                // going this way (tests/replay.rs token_expiry…).
                tracing::debug!(channel = %self.channel, error = %e, "cannot ask for more: the call has ended");
            }
            let position = if response.latest_replay_id.is_empty() {
                self.last_replay.clone()
            } else {
                response.latest_replay_id
            };
            if handed == 0 || response.pending_num_requested > 0 {
                // A keepalive, or the server gave all it had: a transaction boundary.
                idle_commit = None;
                // Responses the server sent meanwhile (it queues them while a commit runs) join
                // this Kafka transaction, up to batch_size: one commit for all that is ready.
                // Committing after each instead made one commit per event when changes come
                // one by one, and past ~1/commit-time changes per second the source fell
                // behind for good (benches/capture.rs, steady phase).
                if self.in_txn < self.settings.batch_size {
                    match sub.next().now_or_never() {
                        Some(Ok(Some(next))) => {
                            ready = Some(next);
                            continue;
                        }
                        Some(end) => {
                            if let Err(e) = self.commit(&position).await {
                                return StreamEnd::Failed(e);
                            }
                            return StreamEnd::Failed(end.err().unwrap_or_else(|| {
                                PubSubError::Other("the server ended the stream".into())
                            }));
                        }
                        None => {}
                    }
                }
                if let Err(e) = self.commit(&position).await {
                    return StreamEnd::Failed(e);
                }
            } else {
                idle_commit = Some(tokio::time::Instant::now() + IDLE_COMMIT);
            }
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
