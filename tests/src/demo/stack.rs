//! A whole sfjira deployment for one end-to-end test: the sandbox binary and the five service
//! binaries as real processes, on ports and topics of their own (a unique topic prefix and
//! consumer groups), against the shared Kafka and registry. Everything is killed when the
//! [`Deployment`] is dropped, so a failing test leaves nothing running.
//!
//! The binaries come from the same `target/` directory as the test (built by `cargo test
//! --workspace`); a missing one is reported with the command that builds it.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use tokio::process::{Child, Command};

use super::stack_config::{DeploymentPorts, deployment_yaml};

/// The services in start order: sinks first, so no command waits for its consumer.
pub const SERVICES: [&str; 5] = [
    "sfjira-jira-sink",
    "sfjira-salesforce-sink",
    "sfjira-transformer",
    "sfjira-jira-source",
    "sfjira-salesforce-source",
];

const WEBHOOK_SECRET: &str = "e2e-webhook-secret";

/// The variables the deployment's secrets name, set to the sandbox's credentials.
const SECRET_VARS: [(&str, &str); 3] = [
    (
        "SFJIRA_SALESFORCE_CLIENT_SECRET",
        "sfjira-sandbox-consumer-secret",
    ),
    ("SFJIRA_JIRA_API_TOKEN", "sandbox-token"),
    ("SFJIRA_JIRA_WEBHOOK_SECRET", WEBHOOK_SECRET),
];

/// A running deployment.
pub struct Deployment {
    pub salesforce_url: String,
    pub jira_url: String,
    pub topic_prefix: String,
    pub config_path: PathBuf,
    pub bootstrap: String,
    /// The transformer's consumer group.
    pub transformer_group: String,
    bin: PathBuf,
    pub dir: PathBuf,
    children: Vec<(String, Child)>,
    /// How each service was started, so it can be started again after a kill.
    recipes: Vec<(String, PathBuf, u16)>,
    /// Environment of the services started from now on ([`Self::set_service_env`]).
    service_env: Vec<(String, String)>,
    root: PathBuf,
}

impl Deployment {
    /// Starts the sandbox and every service on the demo mapping; returns once each service
    /// answers `/readyz`.
    pub async fn start(bootstrap: &str, registry_url: &str) -> anyhow::Result<Self> {
        let mapping = repo_root().join("config/mapping.yaml");
        Self::start_with_mapping(bootstrap, registry_url, &mapping).await
    }

    /// [`Self::start`] with another mapping file.
    pub async fn start_with_mapping(
        bootstrap: &str,
        registry_url: &str,
        mapping: &Path,
    ) -> anyhow::Result<Self> {
        let bin = bin_dir()?;
        let root = repo_root();
        let id = uuid::Uuid::new_v4().simple().to_string();
        let dir = std::env::temp_dir().join(format!("sfjira-e2e-{id}"));
        std::fs::create_dir_all(&dir)?;
        let [sf, pubsub, jira, webhook] = [
            crate::free_port()?,
            crate::free_port()?,
            crate::free_port()?,
            crate::free_port()?,
        ];
        let topic_prefix = format!("e2e-{}.", &id[..12]);

        std::fs::write(
            dir.join("sandbox.yaml"),
            format!(
                "jira:\n  webhooks:\n    - {{ name: sfjira, url: \"http://127.0.0.1:{webhook}/webhooks/jira\", events: [], jql: project = PROJ, secret: {WEBHOOK_SECRET} }}\n  webhook_delivery: {{ max_retries: 5, retry_min_secs: 1, retry_max_secs: 3 }}\n"
            ),
        )?;
        let config_path = dir.join("sfjira.yaml");
        std::fs::write(
            &config_path,
            deployment_yaml(
                &DeploymentPorts {
                    sf,
                    pubsub,
                    jira,
                    webhook,
                },
                bootstrap,
                registry_url,
                &topic_prefix,
                &id,
                mapping,
            ),
        )?;

        let mut d = Deployment {
            salesforce_url: format!("http://127.0.0.1:{sf}"),
            jira_url: format!("http://127.0.0.1:{jira}"),
            topic_prefix,
            config_path,
            bootstrap: bootstrap.to_string(),
            transformer_group: format!("e2e-{id}-transformer"),
            bin: bin.clone(),
            dir: dir.clone(),
            children: Vec::new(),
            recipes: Vec::new(),
            service_env: Vec::new(),
            root: root.clone(),
        };
        let mut sandbox = Command::new(bin.join("sfjira-sandbox"));
        sandbox
            .arg("--config")
            .arg(dir.join("sandbox.yaml"))
            .arg("--salesforce-listen")
            .arg(format!("127.0.0.1:{sf}"))
            .arg("--pubsub-listen")
            .arg(format!("127.0.0.1:{pubsub}"))
            .arg("--jira-listen")
            .arg(format!("127.0.0.1:{jira}"));
        d.spawn("sfjira-sandbox", sandbox)?;
        d.wait_http(
            "sfjira-sandbox",
            &format!("{}/__admin/jira/users", d.jira_url),
        )
        .await?;
        d.wait_http(
            "sfjira-sandbox",
            &format!("{}/services/data/", d.salesforce_url),
        )
        .await?;

        let out = Command::new(bin.join("sfjira"))
            .current_dir(&root)
            .arg("--config")
            .arg(&d.config_path)
            .args(["topics", "apply"])
            .envs(SECRET_VARS)
            .output()
            .await?;
        if !out.status.success() {
            bail!(
                "sfjira topics apply failed ({}): {}",
                out.status,
                String::from_utf8_lossy(&out.stderr)
            );
        }

        for name in SERVICES {
            d.recipes
                .push((name.to_string(), bin.join(name), crate::free_port()?));
            d.start_service(name)?;
        }
        for name in SERVICES {
            d.wait_ready(name).await?;
        }
        Ok(d)
    }

    /// Starts (or starts again) one of [`SERVICES`], with its health endpoint on its own port.
    pub fn start_service(&mut self, name: &str) -> anyhow::Result<()> {
        let (_, bin, port) = self
            .recipes
            .iter()
            .find(|(n, _, _)| n == name)
            .cloned()
            .with_context(|| format!("{name} is not a service of this deployment"))?;
        let mut cmd = Command::new(bin);
        cmd.current_dir(&self.root)
            .arg("--config")
            .arg(&self.config_path)
            .env("SFJIRA_HTTP__LISTEN", format!("127.0.0.1:{port}"))
            .envs(self.service_env.iter().map(|(k, v)| (k, v)));
        self.children.retain(|(n, _)| n != name);
        self.spawn(name, cmd)
    }

    /// Each service's health endpoint base URL (`/readyz`, `/metrics` below it).
    pub fn health_urls(&self) -> Vec<(String, String)> {
        self.recipes
            .iter()
            .map(|(name, _, port)| (name.clone(), format!("http://127.0.0.1:{port}")))
            .collect()
    }

    /// Waits for a service's `/readyz`.
    pub async fn wait_ready(&mut self, name: &str) -> anyhow::Result<()> {
        let port = self
            .recipes
            .iter()
            .find(|(n, _, _)| n == name)
            .map(|(_, _, p)| *p)
            .with_context(|| format!("{name} is not a service of this deployment"))?;
        self.wait_http(name, &format!("http://127.0.0.1:{port}/readyz"))
            .await
    }

    /// The operator's tools for this deployment (`sfjira`, its config, Kafka).
    pub fn operator(&self) -> super::scenario::Operator {
        let mut kafka = rdkafka::ClientConfig::new();
        kafka.set("bootstrap.servers", &self.bootstrap);
        super::scenario::Operator {
            sfjira: self.bin.join("sfjira"),
            config: self.config_path.clone(),
            env: SECRET_VARS
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            kafka,
            topic_prefix: self.topic_prefix.clone(),
        }
    }

    /// Runs one of Kafka's own tools (`infra/kafka/tool`) against this deployment's broker.
    pub async fn kafka_tool(&self, name: &str, args: &[&str]) -> anyhow::Result<String> {
        crate::kafka_tool::KafkaTool::new(&self.bootstrap)
            .run(name, args)
            .await
    }

    /// How far `group` is behind on the partition where it is furthest behind. Under
    /// transactions a caught-up group can sit one behind the end (the last commit marker is
    /// not consumed until a record follows it), so ≤ 1 means caught up.
    pub fn group_lag(&self, group: &str) -> anyhow::Result<i64> {
        use rdkafka::consumer::{BaseConsumer, Consumer};
        let mut cfg = rdkafka::ClientConfig::new();
        cfg.set("bootstrap.servers", &self.bootstrap)
            .set("group.id", group);
        let consumer: BaseConsumer = cfg.create()?;
        let timeout = Duration::from_secs(10);
        let md = consumer.fetch_metadata(None, timeout)?;
        let mut tpl = rdkafka::TopicPartitionList::new();
        for t in md
            .topics()
            .iter()
            .filter(|t| t.name().starts_with(&self.topic_prefix))
        {
            for p in t.partitions() {
                tpl.add_partition(t.name(), p.id());
            }
        }
        let committed = consumer.committed_offsets(tpl, timeout)?;
        let mut lag = 0;
        for e in committed.elements() {
            if let rdkafka::Offset::Offset(c) = e.offset() {
                let (_, high) = consumer.fetch_watermarks(e.topic(), e.partition(), timeout)?;
                lag = lag.max(high - c);
            }
        }
        Ok(lag)
    }

    /// Sets an environment variable (a configuration override) for services started later.
    pub fn set_service_env(&mut self, key: &str, value: &str) {
        self.service_env.push((key.to_string(), value.to_string()));
    }

    /// Asks a service to stop (SIGTERM, by its PID) and waits up to `limit` for it to exit:
    /// its exit status and how long it took, or `None` (and a SIGKILL) if it did not exit.
    pub async fn terminate(
        &mut self,
        name: &str,
        limit: Duration,
    ) -> anyhow::Result<Option<(std::process::ExitStatus, Duration)>> {
        let (_, child) = self
            .children
            .iter_mut()
            .find(|(n, _)| n == name)
            .with_context(|| format!("{name} is not running"))?;
        let pid = child.id().with_context(|| format!("{name} has exited"))?;
        let started = Instant::now();
        std::process::Command::new("kill")
            .args(["-TERM", &pid.to_string()])
            .status()?;
        match tokio::time::timeout(limit, child.wait()).await {
            Ok(status) => Ok(Some((status?, started.elapsed()))),
            Err(_) => {
                child.start_kill()?;
                child.wait().await?;
                Ok(None)
            }
        }
    }

    /// SIGKILLs a service (no shutdown hook runs: the crash the guarantees are about).
    pub async fn kill(&mut self, name: &str) -> anyhow::Result<()> {
        if let Some((_, child)) = self.children.iter_mut().find(|(n, _)| n == name) {
            child.start_kill()?;
            child.wait().await?;
        }
        Ok(())
    }

    fn spawn(&mut self, name: &str, mut cmd: Command) -> anyhow::Result<()> {
        // Appended: a restarted service's log follows its earlier life.
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.join(format!("{name}.log")))?;
        cmd.env(
            "SFJIRA_SALESFORCE_CLIENT_SECRET",
            "sfjira-sandbox-consumer-secret",
        )
        .env("SFJIRA_JIRA_API_TOKEN", "sandbox-token")
        .env("SFJIRA_JIRA_WEBHOOK_SECRET", WEBHOOK_SECRET)
        .env("SFJIRA_TELEMETRY__LOG_FORMAT", "json")
        .stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log)
        .kill_on_drop(true);
        let child = cmd.spawn().with_context(|| format!("starting {name}"))?;
        self.children.push((name.to_string(), child));
        Ok(())
    }

    async fn wait_http(&mut self, name: &str, url: &str) -> anyhow::Result<()> {
        let http = reqwest::Client::new();
        let start = Instant::now();
        while start.elapsed() < Duration::from_secs(90) {
            if let Some((_, child)) = self.children.iter_mut().find(|(n, _)| n == name)
                && let Some(status) = child.try_wait()?
            {
                bail!(
                    "{name} exited during start-up ({status}):\n{}",
                    self.log_tail(name)
                );
            }
            if http
                .get(url)
                .send()
                .await
                .is_ok_and(|r| r.status().is_success())
            {
                return Ok(());
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
        bail!(
            "{name} not ready at {url} after 90 s:\n{}",
            self.log_tail(name)
        )
    }

    /// The last lines of a process's log, for failure messages.
    pub fn log_tail(&self, name: &str) -> String {
        let text =
            std::fs::read_to_string(self.dir.join(format!("{name}.log"))).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(30)..].join("\n")
    }

    /// Every process's log tail, for a failing test's output.
    pub fn all_logs(&self) -> String {
        self.children
            .iter()
            .map(|(n, _)| format!("----- {n} -----\n{}", self.log_tail(n)))
            .collect::<Vec<_>>()
            .join("\n")
    }
}

impl Drop for Deployment {
    /// Stops every service; its folder (config and one log per service) and its topics are
    /// removed unless the test is failing, in which case both are kept for the post-mortem and
    /// their places printed.
    fn drop(&mut self) {
        for (_, child) in &mut self.children {
            let _ = child.start_kill();
        }
        if std::thread::panicking() {
            eprintln!(
                "the deployment's logs are kept in {}, its topics under {}",
                self.dir.display(),
                self.topic_prefix
            );
        } else {
            let _ = std::fs::remove_dir_all(&self.dir);
            delete_deployment_topics(&self.bootstrap, &self.topic_prefix);
        }
    }
}

/// Deletes the topics under `prefix` (every topic the deployment made). Drop cannot await, and
/// it may run inside a runtime, so the admin calls run on a thread of their own; failures are
/// reported, not fatal.
fn delete_deployment_topics(bootstrap: &str, prefix: &str) {
    let (bootstrap, prefix) = (bootstrap.to_string(), prefix.to_string());
    let deleting = std::thread::spawn(move || {
        let admin: rdkafka::admin::AdminClient<_> = match rdkafka::ClientConfig::new()
            .set("bootstrap.servers", &bootstrap)
            .create()
        {
            Ok(a) => a,
            Err(e) => {
                eprintln!("deleting the deployment's topics: {e}");
                return;
            }
        };
        let topics: Vec<String> = match admin.inner().fetch_metadata(None, Duration::from_secs(10))
        {
            Ok(md) => md
                .topics()
                .iter()
                .map(|t| t.name().to_string())
                .filter(|t| t.starts_with(&prefix))
                .collect(),
            Err(e) => {
                eprintln!("listing the deployment's topics: {e}");
                return;
            }
        };
        if topics.is_empty() {
            return;
        }
        match tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
        {
            Ok(rt) => rt.block_on(crate::delete_topics_on(&admin, &topics)),
            Err(e) => eprintln!("deleting the deployment's topics: {e}"),
        }
    });
    let _ = deleting.join();
}

/// `target/debug` (or wherever this test binary was built).
fn bin_dir() -> anyhow::Result<PathBuf> {
    let exe = std::env::current_exe()?;
    // target/debug/deps/<test> → target/debug
    let dir = exe
        .parent()
        .and_then(Path::parent)
        .context("test binary has no target directory")?
        .to_path_buf();
    for name in SERVICES.iter().chain(&["sfjira-sandbox", "sfjira"]) {
        if !dir.join(name).exists() {
            bail!(
                "{} is missing: build the workspace first (cargo build --workspace)",
                dir.join(name).display()
            );
        }
    }
    Ok(dir)
}

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ is inside the repository")
        .to_path_buf()
}
