//! The Jira Cloud half of the sandbox (issue #4): a site with REST v3, OAuth 2.0 (3LO), JQL
//! search, rate limits, webhooks, and an admin API, faithful to `shared/reference/jira-api.md`.
//!
//! # Layout
//! - [`site`]: the in-memory site model (catalog, issues, changelog) and its operations.
//! - [`rest`]: REST v3 handlers; [`error`]: Jira's `ErrorCollection`; [`adf`]: ADF checks;
//!   [`time_format`]: Jira timestamps.
//! - [`auth`] (Basic API tokens, bearer tokens) and [`oauth`] (3LO with rotating refresh tokens).
//! - [`faults`]: injected latency/500/409/503; [`ratelimit`]: 429s (J2).
//! - [`jql`], [`search`]: JQL and `/search/jql` paging (J2).
//! - [`events`]: committed changes fanned out to the admin API and, through [`webhook_sink`],
//!   to webhook delivery ([`webhooks`], J2).
//! - [`admin`]: `/__admin/jira/`; [`config`]: the `jira:` YAML section; [`app`]: state and
//!   router assembly.

pub mod adf;
pub mod admin;
pub mod app;
pub mod auth;
pub mod config;
pub mod error;
pub mod events;
pub mod faults;
pub mod jql;
pub mod oauth;
pub mod ratelimit;
pub mod rest;
pub mod search;
pub mod site;
pub mod time_format;
pub mod webhook_sink;
pub mod webhooks;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context;
use axum::extract::Request;

use crate::clock::SandboxClock;
use app::AppState;
use config::JiraConfig;

/// How the Jira half is started (from `sfjira-sandbox`'s arguments).
#[derive(Debug, Clone)]
pub struct Options {
    pub listen: SocketAddr,
    pub config: Option<PathBuf>,
}

/// Serves the Jira site until the process stops.
pub async fn run(opts: Options, clock: SandboxClock) -> anyhow::Result<()> {
    let config = JiraConfig::load(opts.config.as_deref())?;
    let site = spawn(config, opts.listen, clock).await?;
    tracing::info!(url = %site.base_url(), "jira sandbox listening");
    site.wait().await
}

/// A running site.
pub struct JiraSite {
    pub addr: SocketAddr,
    /// Shared state, for in-process tests and other crates (the same objects handlers use).
    pub state: AppState,
    task: tokio::task::JoinHandle<anyhow::Result<()>>,
}

impl JiraSite {
    /// `http://host:port`, the `self` prefix and the REST base.
    pub fn base_url(&self) -> String {
        self.state.lock_site().base_url.clone()
    }

    /// Waits until the server stops (it only stops on error).
    pub async fn wait(mut self) -> anyhow::Result<()> {
        (&mut self.task)
            .await
            .context("the jira server task failed")?
    }
}

impl Drop for JiraSite {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Builds the site from `config` and serves it on `listen`.
pub async fn spawn(
    config: JiraConfig,
    listen: SocketAddr,
    clock: SandboxClock,
) -> anyhow::Result<JiraSite> {
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .with_context(|| format!("binding the Jira listener {listen}"))?;
    let addr = listener
        .local_addr()
        .context("reading the Jira listener's address")?;
    let state = build_state(config, addr, clock)?;
    let cloud_id = state.cloud_id.clone();
    let router = app::router(state.clone());
    let service =
        tower::ServiceExt::map_request(router, move |req: Request| app::rewrite(&cloud_id, req));
    let task = tokio::spawn(async move {
        axum::serve(
            listener,
            axum::ServiceExt::<Request>::into_make_service(service),
        )
        .await
        .context("serving the Jira site")
    });
    Ok(JiraSite { addr, state, task })
}

/// Starts a site on `127.0.0.1:0` (tests and other crates' in-process runs).
pub async fn spawn_for_tests(config: JiraConfig, clock: SandboxClock) -> anyhow::Result<JiraSite> {
    spawn(config, SocketAddr::from(([127, 0, 0, 1], 0)), clock).await
}

fn build_state(
    config: JiraConfig,
    addr: SocketAddr,
    clock: SandboxClock,
) -> anyhow::Result<AppState> {
    let mut catalog = site::seed::catalog();
    catalog
        .users
        .extend(config.users.iter().cloned().map(Into::into));
    let tokens = config
        .api_tokens
        .clone()
        .unwrap_or_else(config::default_api_tokens);
    let mut entries = Vec::new();
    for (email, list) in tokens {
        let user = catalog
            .users
            .iter()
            .find(|u| u.email.eq_ignore_ascii_case(&email))
            .with_context(|| format!("jira.api_tokens: no user with email {email}"))?;
        entries.extend(
            list.into_iter()
                .map(|t| (email.clone(), t, user.account_id.clone())),
        );
    }
    let base_url = config
        .base_url
        .clone()
        .unwrap_or_else(|| format!("http://{addr}"));
    let site = site::Site::new(
        catalog,
        base_url.clone(),
        config.limits.clone(),
        config.snapshot.clone(),
    )?;
    let registry = webhooks::WebhookRegistry::new(base_url, clock.clone());
    for hook in config.webhooks.iter().cloned() {
        registry.add(hook);
    }
    let dispatcher =
        webhooks::WebhookDispatcher::new(registry, clock.clone(), config.webhook_delivery.clone())
            .context("starting webhook delivery")?;
    let events = Arc::new(events::EventHub::default());
    events.add_sink(Arc::new(webhook_sink::WebhookSink {
        dispatcher: dispatcher.clone(),
    }));
    Ok(AppState {
        site: Arc::new(Mutex::new(site)),
        api_tokens: Arc::new(auth::ApiTokens::new(entries)),
        oauth: Arc::new(Mutex::new(oauth::OAuthStore::new(
            config.oauth_clients.clone(),
        ))),
        faults: Arc::new(Mutex::new(config.faults.clone())),
        events,
        webhooks: dispatcher,
        limiter: ratelimit::RateLimiter::new(config.rate_limits.clone(), clock.clone()),
        cloud_id: config.cloud_id.clone(),
        search_lag: Duration::from_millis(config.search_indexing_lag_ms),
        clock,
    })
}
