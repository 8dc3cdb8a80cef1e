//! Wiring: config → Jira client, publisher, webhook listener, poller. [`start`] returns a
//! [`Running`] service whose tasks stop when it is dropped or [`Running::stop`]ped; the binary
//! adds the health endpoint and signals around it.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use sfjira_core::avro::AvroCodec;
use sfjira_core::config::SfjiraConfig;
use sfjira_core::dlq::DlqRouter;
use sfjira_core::kafka::{client_config, topic_name};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::canonical::Topic;
use crate::jira::JiraClient;
use crate::poller::Poller;
use crate::publisher::{Publisher, Settings};
use crate::webhook::{self, Receiver};

pub const STAGE: &str = "jira-source";

/// The running service.
pub struct Running {
    /// Where the webhook receiver listens, when it is on.
    pub webhook_addr: Option<SocketAddr>,
    pub publisher: Arc<Publisher>,
    stop: watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
}

impl Running {
    /// Stops the listener and the poller and waits for them.
    pub async fn stop(mut self) {
        let _ = self.stop.send(true);
        for t in self.tasks.drain(..) {
            let _ = t.await;
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.stop.send(true);
        for t in &self.tasks {
            t.abort();
        }
    }
}

/// Starts jira-source from `cfg` (which must have a `jira_source` section).
pub async fn start(cfg: &SfjiraConfig) -> anyhow::Result<Running> {
    let js = cfg
        .jira_source
        .clone()
        .context("the configuration has no jira_source section")?;
    let topics: HashMap<Topic, String> = Topic::ALL
        .iter()
        .map(|t| (*t, topic_name(&cfg.kafka, t.base())))
        .collect();
    let settings = Settings {
        kafka: client_config(&cfg.kafka),
        transactional_id: format!("{STAGE}-{}", cfg.service.instance_id),
        topics,
        checkpoints: topic_name(&cfg.kafka, "sfjira.checkpoints"),
        codec: AvroCodec::new(&cfg.registry)?,
        dedupe_retention: Duration::from_secs(js.dedupe_retention_hours * 3600),
    };
    let publisher = Publisher::start(settings);
    let jira = Arc::new(JiraClient::new(&js)?);
    let (stop, stopped) = watch::channel(false);
    let until_stopped = |mut rx: watch::Receiver<bool>| async move {
        let _ = rx.wait_for(|s| *s).await;
    };
    let mut tasks = Vec::new();
    let mut webhook_addr = None;
    let mut secrets: Vec<String> = [js.api_token.as_ref(), js.webhook_secret.as_ref()]
        .into_iter()
        .flatten()
        .chain(
            js.oauth
                .iter()
                .flat_map(|o| [&o.client_secret, &o.refresh_token]),
        )
        .map(|s| s.expose().to_string())
        .collect();
    secrets.retain(|s| !s.is_empty());
    let dlq =
        DlqRouter::new(STAGE, &cfg.kafka.topic_prefix, &cfg.service.instance_id).redacting(secrets);
    if let Some(secret) = js.webhook_secret.clone() {
        let receiver = Arc::new(Receiver {
            publisher: publisher.clone(),
            jira: jira.clone(),
            secret,
            dlq: dlq.clone(),
        });
        let listener = tokio::net::TcpListener::bind(js.webhook_listen)
            .await
            .with_context(|| format!("binding the webhook listener {}", js.webhook_listen))?;
        webhook_addr = Some(listener.local_addr()?);
        let app = webhook::router(receiver, js.max_body_bytes);
        let shutdown = until_stopped(stopped.clone());
        tasks.push(tokio::spawn(async move {
            if let Err(e) = axum::serve(listener, app)
                .with_graceful_shutdown(shutdown)
                .await
            {
                tracing::error!(error = %e, "the webhook listener stopped");
            }
        }));
        tracing::info!(listen = ?webhook_addr, path = webhook::PATH, "webhook receiver up");
    }
    if js.poll_interval_ms > 0 {
        let poller = Poller {
            jira,
            publisher: publisher.clone(),
            projects: js.projects.clone(),
            interval: Duration::from_millis(js.poll_interval_ms),
            overlap: Duration::from_millis(js.poll_overlap_ms),
            page_size: js.poll_page_size,
            custom_fields: js.custom_fields.clone(),
            dlq,
        };
        let shutdown = until_stopped(stopped.clone());
        tasks.push(tokio::spawn(poller.run(shutdown)));
        tracing::info!(projects = ?js.projects, interval_ms = js.poll_interval_ms, "poller up");
    }
    Ok(Running {
        webhook_addr,
        publisher,
        stop,
        tasks,
    })
}
