//! The Pub/Sub API (gRPC) of the org: `eventbus.v1.PubSub` over the [`EventBus`]'s change
//! event channels, following reference §1 to the wire (issue #3).
//!
//! - [`proto`]: generated types, server and client (from `schemas/salesforce/pubsub_api.proto`).
//! - [`auth`]: per-call `accesstoken`/`instanceurl`/`tenantid` checks.
//! - [`status`]: errors with the real `error-code`/`rpc-id` trailers.
//! - [`subscribe`]: one Subscribe stream (flow control, replay, keepalive, idle close).
//! - [`service`]: the RPCs.
//! - [`faults`]: the fault knobs the server reads.
//! - [`tls`]: optional self-signed TLS.
//!
//! Entry points: [`serve`] (the binary) and [`spawn_local`] (tests: binds `127.0.0.1:0`).

pub mod auth;
pub mod faults;
pub mod proto;
pub mod service;
pub mod status;
pub mod subscribe;
pub mod tls;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use tokio::net::TcpListener;
use tokio_stream::wrappers::TcpListenerStream;
use tonic::transport::{Server, ServerTlsConfig};

pub use auth::{AccessTokens, Session, StaticTokens, TokenError};
pub use faults::{PubSubFaults, StreamFaults};

use crate::clock::SandboxClock;
use crate::salesforce::cdc::EventBus;

/// How the Pub/Sub server behaves. Durations are sandbox time.
#[derive(Clone)]
pub struct PubSubSettings {
    /// Empty FetchResponse interval while demand is pending and nothing arrives. The real
    /// service promises "within 270 seconds"; clients see about 60 s in practice.
    pub keepalive: Duration,
    /// With no demand pending, the stream closes unless a FetchRequest arrives within this.
    /// Real: 60 s (docs; the Java sample says 70 s).
    pub idle_timeout: Duration,
    /// Events per FetchResponse at most (besides the pending demand).
    pub max_events_per_response: usize,
    /// Replay retention when no fault overrides it. Real: 72 h.
    pub retention: Duration,
    /// Serve TLS with a generated certificate.
    pub tls: Option<TlsSettings>,
    /// Fault knobs, read by every call.
    pub faults: Arc<dyn StreamFaults>,
}

impl Default for PubSubSettings {
    fn default() -> Self {
        PubSubSettings {
            keepalive: Duration::from_secs(60),
            idle_timeout: Duration::from_secs(60),
            max_events_per_response: 100,
            retention: Duration::from_secs(72 * 3600),
            tls: None,
            faults: Arc::new(PubSubFaults::new()),
        }
    }
}

#[derive(Debug, Clone)]
pub struct TlsSettings {
    /// Names the certificate is valid for (`localhost`, `127.0.0.1`).
    pub hosts: Vec<String>,
    /// Where the CA certificate (PEM) is written for clients to trust.
    pub ca_pem_path: PathBuf,
}

/// Serves the Pub/Sub API on `addr` until the process stops.
pub async fn serve(
    addr: SocketAddr,
    bus: Arc<EventBus>,
    tokens: Arc<dyn AccessTokens>,
    settings: PubSubSettings,
    clock: SandboxClock,
) -> anyhow::Result<()> {
    let listener = TcpListener::bind(addr)
        .await
        .with_context(|| format!("binding the Pub/Sub API to {addr}"))?;
    serve_listener(listener, bus, tokens, settings, clock).await
}

/// Serves on an already bound listener.
pub async fn serve_listener(
    listener: TcpListener,
    bus: Arc<EventBus>,
    tokens: Arc<dyn AccessTokens>,
    settings: PubSubSettings,
    clock: SandboxClock,
) -> anyhow::Result<()> {
    let tls = tls_config(&settings)?;
    run(listener, tls, bus, tokens, settings, clock).await
}

/// Starts a server on `127.0.0.1:0` in the background (tests); returns its address. With TLS,
/// the CA file is written before this returns.
pub async fn spawn_local(
    bus: Arc<EventBus>,
    tokens: Arc<dyn AccessTokens>,
    settings: PubSubSettings,
    clock: SandboxClock,
) -> anyhow::Result<(SocketAddr, tokio::task::JoinHandle<anyhow::Result<()>>)> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let tls = tls_config(&settings)?;
    let handle = tokio::spawn(run(listener, tls, bus, tokens, settings, clock));
    Ok((addr, handle))
}

/// Starts a server on an already bound listener in the background with TLS settings made by
/// the caller (the org's [`wiring`](crate::salesforce::wiring) shares one generated CA between
/// REST and Pub/Sub); `settings.tls` is not used.
pub fn spawn_on(
    listener: TcpListener,
    tls: Option<ServerTlsConfig>,
    bus: Arc<EventBus>,
    tokens: Arc<dyn AccessTokens>,
    settings: PubSubSettings,
    clock: SandboxClock,
) -> tokio::task::JoinHandle<anyhow::Result<()>> {
    tokio::spawn(run(listener, tls, bus, tokens, settings, clock))
}

fn tls_config(settings: &PubSubSettings) -> anyhow::Result<Option<ServerTlsConfig>> {
    settings
        .tls
        .as_ref()
        .map(|t| tls::self_signed(&t.hosts, &t.ca_pem_path))
        .transpose()
}

async fn run(
    listener: TcpListener,
    tls: Option<ServerTlsConfig>,
    bus: Arc<EventBus>,
    tokens: Arc<dyn AccessTokens>,
    settings: PubSubSettings,
    clock: SandboxClock,
) -> anyhow::Result<()> {
    let mut server = Server::builder()
        // Keep HTTP/2 connections alive across long idle subscriptions.
        .http2_keepalive_interval(Some(Duration::from_secs(30)));
    if let Some(tls) = tls {
        server = server.tls_config(tls)?;
    }
    let service = service::PubSubService {
        bus,
        tokens,
        faults: settings.faults.clone(),
        settings,
        clock,
        corrupted: Arc::default(),
    };
    tracing::info!(addr = %listener.local_addr()?, "Salesforce Pub/Sub API listening");
    server
        .add_service(proto::pub_sub_server::PubSubServer::new(service))
        .serve_with_incoming(TcpListenerStream::new(listener))
        .await?;
    Ok(())
}
