//! The Jira Cloud half of the sandbox (issue #4).

use std::net::SocketAddr;
use std::path::PathBuf;

use crate::clock::SandboxClock;

/// How the Jira half is started (from `sfjira-sandbox`'s arguments).
#[derive(Debug, Clone)]
pub struct Options {
    pub listen: SocketAddr,
    pub config: Option<PathBuf>,
}

/// Serves the Jira site until the process stops.
pub async fn run(opts: Options, _clock: SandboxClock) -> anyhow::Result<()> {
    anyhow::bail!(
        "the Jira sandbox is not built yet (issue #4); would listen on {}",
        opts.listen
    )
}
