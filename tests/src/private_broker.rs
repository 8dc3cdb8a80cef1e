//! A Kafka broker of one test's own, for a test that restarts the broker: the shared broker
//! serves every other test running in parallel, so it must never be stopped by one of them.
//!
//! Started and stopped with the project's own scripts (`infra/kafka/start`, `stop`) on free
//! ports and in a run directory of its own, so it is the same broker `make infra-up` runs,
//! only private. Its data survives [`PrivateBroker::restart`]; everything goes on drop.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, bail};

pub struct PrivateBroker {
    pub bootstrap: String,
    port: u16,
    controller_port: u16,
    run_dir: PathBuf,
}

impl PrivateBroker {
    /// Starts a broker (blocking: call it from `spawn_blocking` or before the runtime is busy).
    pub fn start() -> anyhow::Result<Self> {
        let port = crate::free_port()?;
        let controller_port = crate::free_port()?;
        let run_dir =
            std::env::temp_dir().join(format!("sfjira-broker-{}", uuid::Uuid::new_v4().simple()));
        let broker = PrivateBroker {
            bootstrap: format!("127.0.0.1:{port}"),
            port,
            controller_port,
            run_dir,
        };
        broker.script("start")?;
        Ok(broker)
    }

    /// Stops the broker (controlled shutdown) and starts it again on the same data.
    pub fn restart(&self) -> anyhow::Result<()> {
        self.script("stop")?;
        self.script("start")
    }

    /// Stops the broker (controlled shutdown); [`Self::restart`] starts it again.
    pub fn stop(&self) -> anyhow::Result<()> {
        self.script("stop")
    }

    fn script(&self, name: &str) -> anyhow::Result<()> {
        let script = repo_root().join("infra/kafka").join(name);
        let out = Command::new(&script)
            .env("SFJIRA_KAFKA_PORT", self.port.to_string())
            .env(
                "SFJIRA_KAFKA_CONTROLLER_PORT",
                self.controller_port.to_string(),
            )
            .env("SFJIRA_RUN_DIR", &self.run_dir)
            .env("SFJIRA_KAFKA_HEAP", "384m")
            .output()
            .with_context(|| format!("running {}", script.display()))?;
        if !out.status.success() {
            bail!(
                "{} failed ({}):\n{}",
                script.display(),
                out.status,
                String::from_utf8_lossy(&out.stderr)
            );
        }
        Ok(())
    }
}

impl Drop for PrivateBroker {
    fn drop(&mut self) {
        let _ = self.script("stop");
        let _ = std::fs::remove_dir_all(&self.run_dir);
    }
}

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ is inside the repository")
        .to_path_buf()
}
