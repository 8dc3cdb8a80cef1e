//! Puts the org and S2's Change Data Capture / Pub/Sub server together: the event bus is the
//! org's change sink, the org's sessions and fault settings are handed to the gRPC server
//! through the small adapters below (the Pub/Sub module declares its own `AccessTokens` and
//! `StreamFaults` traits).

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;

use super::Options;
use super::auth::{self, TokenStore};
use super::catalog;
use super::cdc::{BusSettings, EventBus};
use super::changes::{ChangeSink, ChangeType, CommittedTransaction};
use super::config::SalesforceConfig;
use super::faults::SalesforceFaults;
use super::pubsub::{self, PubSubSettings, StreamFaults};
use super::server::spawn_for_tests;
use crate::clock::SandboxClock;

/// The org's sessions as the Pub/Sub server asks for them.
pub struct PubSubTokens(pub Arc<TokenStore>);

impl pubsub::AccessTokens for PubSubTokens {
    fn validate(&self, token: &str) -> Result<pubsub::Session, pubsub::TokenError> {
        use auth::AccessTokens;
        match self.0.validate(token) {
            Ok(s) => Ok(pubsub::Session {
                user_id: s.user_id,
                org_id: s.org_id,
                instance_url: s.instance_url,
            }),
            Err(auth::TokenError::Invalid) => Err(pubsub::TokenError::Invalid),
            Err(auth::TokenError::Expired) => Err(pubsub::TokenError::Expired),
        }
    }
}

impl StreamFaults for SalesforceFaults {
    fn drop_streams_after_events(&self) -> Option<u32> {
        self.snapshot().drop_streams_after_events
    }
    fn suppress_keepalives(&self) -> bool {
        self.snapshot().suppress_keepalives
    }
    fn replay_retention(&self) -> Option<Duration> {
        self.snapshot()
            .replay_retention_secs
            .map(Duration::from_secs)
    }
}

/// The bus as change sink, turning transactions into gap events while the
/// `gapNextTransactions` fault is armed.
pub struct BusSink {
    pub bus: Arc<EventBus>,
    pub faults: Arc<SalesforceFaults>,
}

impl ChangeSink for BusSink {
    fn committed(&self, txn: CommittedTransaction) {
        if !self.faults.take_gap_transaction() {
            self.bus.committed(txn);
            return;
        }
        for c in &txn.changes {
            let gap = match c.change_type {
                ChangeType::Create => ChangeType::GapCreate,
                ChangeType::Update => ChangeType::GapUpdate,
                ChangeType::Delete => ChangeType::GapDelete,
                ChangeType::Undelete => ChangeType::GapUndelete,
                other => other,
            };
            if let Err(e) =
                self.bus
                    .inject_gap(&c.entity, gap, vec![c.record_id.clone()], &txn.commit_user)
            {
                tracing::warn!(error = %e, "could not inject a gap event");
            }
        }
    }
}

/// Fresh fault settings, the event bus, and the sink that feeds it.
fn bus_and_sink(
    clock: &SandboxClock,
) -> anyhow::Result<(Arc<SalesforceFaults>, Arc<EventBus>, Arc<BusSink>)> {
    let faults = Arc::new(SalesforceFaults::new());
    let bus = Arc::new(
        EventBus::new(&catalog::objects(), BusSettings::default(), clock.clone())
            .context("building the change event bus")?,
    );
    let sink = Arc::new(BusSink {
        bus: bus.clone(),
        faults: faults.clone(),
    });
    Ok((faults, bus, sink))
}

/// Serves OAuth/REST/admin and the Pub/Sub API until one of them stops.
pub async fn run(
    opts: Options,
    config: SalesforceConfig,
    clock: SandboxClock,
) -> anyhow::Result<()> {
    let (faults, bus, sink) = bus_and_sink(&clock)?;
    let org = spawn_for_tests(config, opts.listen, clock.clone(), sink, faults.clone()).await?;
    tracing::info!(addr = %org.addr, org_id = %org.org.org_id, "Salesforce org listening (OAuth, REST, admin)");
    let settings = PubSubSettings {
        faults: faults.clone(),
        ..PubSubSettings::default()
    };
    let tokens = Arc::new(PubSubTokens(org.tokens.clone()));
    let pubsub = pubsub::serve(opts.pubsub_listen, bus, tokens, settings, clock);
    tokio::select! {
        r = org.server => {
            r.context("the Salesforce HTTP server crashed")?;
            anyhow::bail!("the Salesforce HTTP server stopped")
        }
        r = pubsub => r.context("the Pub/Sub API server stopped"),
    }
}

/// A whole org in-process: OAuth/REST/admin on `127.0.0.1:0` and the Pub/Sub API on another
/// `127.0.0.1:0` port, sharing sessions, faults and the event bus (end-to-end tests of the
/// connector).
pub struct FullOrg {
    pub http: super::SpawnedOrg,
    pub bus: Arc<EventBus>,
    pub pubsub_addr: std::net::SocketAddr,
    pub pubsub: tokio::task::JoinHandle<anyhow::Result<()>>,
}

pub async fn spawn_full_for_tests(
    config: SalesforceConfig,
    clock: SandboxClock,
) -> anyhow::Result<FullOrg> {
    let (faults, bus, sink) = bus_and_sink(&clock)?;
    let http = spawn_for_tests(
        config,
        "127.0.0.1:0".parse().expect("literal address"),
        clock.clone(),
        sink,
        faults.clone(),
    )
    .await?;
    let settings = PubSubSettings {
        faults,
        ..PubSubSettings::default()
    };
    let tokens = Arc::new(PubSubTokens(http.tokens.clone()));
    let (pubsub_addr, pubsub) = pubsub::spawn_local(bus.clone(), tokens, settings, clock).await?;
    Ok(FullOrg {
        http,
        bus,
        pubsub_addr,
        pubsub,
    })
}
