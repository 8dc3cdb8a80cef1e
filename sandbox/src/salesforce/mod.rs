//! The Salesforce half of the sandbox (issue #3).
//!
//! - [`meta`]: object and field metadata, shared by the REST API (validation, describe) and
//!   Change Data Capture (change-event schemas, field bitmaps).
//! - [`changes`]: what a committed write hands to Change Data Capture.

pub mod changes;
pub mod meta;

use std::net::SocketAddr;
use std::path::PathBuf;

use crate::clock::SandboxClock;

/// How the Salesforce half is started (from `sfjira-sandbox`'s arguments).
#[derive(Debug, Clone)]
pub struct Options {
    /// OAuth + REST + admin.
    pub listen: SocketAddr,
    /// Pub/Sub API (gRPC).
    pub pubsub_listen: SocketAddr,
    pub config: Option<PathBuf>,
}

/// Serves the org until the process stops.
pub async fn run(opts: Options, _clock: SandboxClock) -> anyhow::Result<()> {
    anyhow::bail!(
        "the Salesforce sandbox is not built yet (issue #3); would listen on {}",
        opts.listen
    )
}
