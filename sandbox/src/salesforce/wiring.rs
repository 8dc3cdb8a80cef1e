//! Puts the org and S2's Change Data Capture / Pub/Sub server together: the event bus is the
//! org's change sink, the org's sessions and fault settings are handed to the gRPC server
//! through the small adapters below (the Pub/Sub module declares its own `AccessTokens` and
//! `StreamFaults` traits).

use std::net::SocketAddr;
use std::path::PathBuf;
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
use super::{server, tls};
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
    fn take_call_unavailable(&self) -> bool {
        self.take_pubsub_unavailable()
    }
    fn service_unavailable(&self) -> bool {
        self.snapshot().pubsub_unavailable
    }
    fn take_get_schema_unavailable(&self) -> bool {
        SalesforceFaults::take_get_schema_unavailable(self)
    }
    fn take_corrupt_event(&self) -> bool {
        SalesforceFaults::take_corrupt_event(self)
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
    let full = start(config, opts.listen, opts.pubsub_listen, clock).await?;
    tracing::info!(
        addr = %full.http.addr,
        base_url = %full.http.base_url,
        org_id = %full.http.org.org_id,
        "Salesforce org listening (OAuth, REST, admin)"
    );
    if let Some(ca) = &full.ca_pem_path {
        tracing::info!(path = %ca.display(), "TLS on both listeners; trust this CA certificate");
    }
    tokio::select! {
        r = full.http.server => {
            r.context("the Salesforce HTTP server crashed")?;
            anyhow::bail!("the Salesforce HTTP server stopped")
        }
        r = full.pubsub => r
            .context("the Pub/Sub API server crashed")?
            .context("the Pub/Sub API server stopped"),
    }
}

/// A whole org in-process: OAuth/REST/admin on `127.0.0.1:0` and the Pub/Sub API on another
/// `127.0.0.1:0` port, sharing sessions, faults and the event bus (end-to-end tests of the
/// connector). With `config.tls`, both serve TLS with one generated CA.
pub struct FullOrg {
    pub http: super::SpawnedOrg,
    pub bus: Arc<EventBus>,
    pub pubsub_addr: std::net::SocketAddr,
    pub pubsub: tokio::task::JoinHandle<anyhow::Result<()>>,
    /// With TLS: where the CA certificate was written (before [`spawn_full_for_tests`]
    /// returned).
    pub ca_pem_path: Option<PathBuf>,
}

pub async fn spawn_full_for_tests(
    config: SalesforceConfig,
    clock: SandboxClock,
) -> anyhow::Result<FullOrg> {
    let any: SocketAddr = "127.0.0.1:0".parse().expect("literal address");
    start(config, any, any, clock).await
}

/// Binds both listeners, then (with TLS) generates the certificate for both and writes the CA
/// file once both are accepting, so a client that waits for the file can connect at once.
async fn start(
    config: SalesforceConfig,
    http_listen: SocketAddr,
    pubsub_listen: SocketAddr,
    clock: SandboxClock,
) -> anyhow::Result<FullOrg> {
    let (faults, bus, sink) = bus_and_sink(&clock)?;
    let http_listener = server::bind(http_listen).await?;
    let pubsub_listener = tokio::net::TcpListener::bind(pubsub_listen)
        .await
        .with_context(|| format!("binding the Pub/Sub API to {pubsub_listen}"))?;
    let pubsub_addr = pubsub_listener.local_addr()?;
    let tls = match &config.tls {
        None => None,
        Some(t) => {
            let hosts = tls::certificate_hosts(
                &t.hosts,
                &[http_listener.local_addr()?, pubsub_addr],
                config.instance_url.as_deref(),
            );
            Some((tls::GeneratedTls::generate(&hosts)?, t.ca_pem_path.clone()))
        }
    };
    let http = server::spawn_on(
        config,
        http_listener,
        clock.clone(),
        sink,
        faults.clone(),
        tls.as_ref().map(|(g, _)| g),
    )?;
    let settings = PubSubSettings {
        faults,
        ..PubSubSettings::default()
    };
    let tokens = Arc::new(PubSubTokens(http.tokens.clone()));
    let pubsub = pubsub::spawn_on(
        pubsub_listener,
        tls.as_ref().map(|(g, _)| g.tonic_config()),
        bus.clone(),
        tokens,
        settings,
        clock,
    );
    let ca_pem_path = match tls {
        None => None,
        Some((generated, path)) => {
            if let Err(e) = generated.write_ca(&path) {
                http.server.abort();
                pubsub.abort();
                return Err(e);
            }
            Some(path)
        }
    };
    Ok(FullOrg {
        http,
        bus,
        pubsub_addr,
        pubsub,
        ca_pem_path,
    })
}
