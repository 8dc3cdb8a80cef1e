//! The Salesforce half of the sandbox (issue #3).
//!
//! Shared interfaces:
//! - [`meta`]: object and field metadata, shared by the REST API (validation, describe) and
//!   Change Data Capture (change-event schemas, field bitmaps).
//! - [`changes`]: what a committed write hands to Change Data Capture.
//! - [`auth`]: access tokens ([`auth::AccessTokens`]), used by REST and the Pub/Sub server.
//! - [`faults`]: the fault knobs shared by REST and the Pub/Sub server.
//!
//! The org: [`catalog`] (its objects), [`ids`] (18-character Ids), [`store`] (records, users,
//! snapshots), [`validate`] and [`write`] (transactions), [`soql`] (queries), [`config`].
//! The HTTP side: [`oauth`] (`/services/oauth2/token`), [`rest`] (`/services/data/`),
//! [`admin`] (`/__admin/salesforce/`), [`server`] (router, startup), [`wiring`] (adapters to
//! the Pub/Sub server), [`tls`] (one generated CA for both listeners). Change Data Capture and Pub/Sub: [`cdc`], [`pubsub`].

pub mod admin;
pub mod auth;
pub mod catalog;
pub mod cdc;
pub mod changes;
pub mod config;
pub mod errors;
pub mod faults;
pub mod ids;
pub mod meta;
pub mod oauth;
pub mod pubsub;
pub mod rest;
pub mod server;
pub mod soql;
pub mod store;
pub mod tls;
pub mod validate;
pub mod wiring;
pub mod write;

use std::net::SocketAddr;
use std::path::PathBuf;

pub use server::{SpawnedOrg, spawn_for_tests};

use crate::clock::SandboxClock;

/// How the Salesforce half is started (from `sfjira-sandbox`'s arguments).
#[derive(Debug, Clone)]
pub struct Options {
    /// OAuth + REST + admin.
    pub listen: SocketAddr,
    /// Pub/Sub API (gRPC).
    pub pubsub_listen: SocketAddr,
    pub config: Option<PathBuf>,
    /// `--tls-ca-out`: serve both listeners over TLS and write the generated CA here
    /// (overrides `salesforce.tls.ca_pem_path`).
    pub tls_ca_out: Option<PathBuf>,
}

/// Serves the org (OAuth, REST, admin on `opts.listen`; Pub/Sub on `opts.pubsub_listen`)
/// until the process stops or a server fails.
pub async fn run(opts: Options, clock: SandboxClock) -> anyhow::Result<()> {
    let mut config = match &opts.config {
        Some(path) => config::SalesforceConfig::load(path)?,
        None => config::SalesforceConfig::default(),
    };
    if let Some(path) = &opts.tls_ca_out {
        config.tls.get_or_insert_with(Default::default).ca_pem_path = path.clone();
    }
    wiring::run(opts, config, clock).await
}
