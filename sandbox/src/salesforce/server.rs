//! Wiring: the shared state of the HTTP side, the router (OAuth, REST, admin), and the two
//! ways to start the org: [`run`](super::run) for the binary and [`spawn_for_tests`] for
//! in-process tests.

use std::net::SocketAddr;
use std::ops::Deref;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use axum::Router;
use axum::response::Response;
use axum::routing::{any, get, post};
use rand::Rng;
use rsa::pkcs1v15::VerifyingKey;
use sha2::Sha256;

use super::auth::{Session, TokenStore};
use super::changes::ChangeSink;
use super::config::SalesforceConfig;
use super::errors::SfError;
use super::faults::SalesforceFaults;
use super::store::{Org, User};
use super::tls::{GeneratedTls, TlsListener};
use super::{admin, oauth, rest};
use crate::clock::SandboxClock;

/// What every handler shares.
pub struct SfShared {
    pub org: Arc<Org>,
    pub tokens: Arc<TokenStore>,
    pub faults: Arc<SalesforceFaults>,
    pub config: SalesforceConfig,
    /// Base URL handed out as `instance_url` (no trailing slash).
    pub instance_url: String,
    /// The connected app's certificate key; `None` refuses JWT bearer.
    pub jwt_key: Option<VerifyingKey<Sha256>>,
}

#[derive(Clone)]
pub struct SfState(Arc<SfShared>);

impl Deref for SfState {
    type Target = SfShared;
    fn deref(&self) -> &SfShared {
        &self.0
    }
}

impl SfShared {
    /// JWT `aud` values accepted: the configured login URL, the production and sandbox login
    /// hosts, and the org's own URL (what a client pointed at the sandbox sends).
    pub fn accepted_audiences(&self) -> Vec<String> {
        vec![
            self.config.login_url.trim_end_matches('/').to_string(),
            "https://login.salesforce.com".into(),
            "https://test.salesforce.com".into(),
            self.instance_url.clone(),
        ]
    }

    /// `https://login.salesforce.com/id/<orgId>/<userId>`.
    pub fn identity_url(&self, user_id: &str) -> String {
        format!(
            "{}/id/{}/{}",
            self.config.login_url.trim_end_matches('/'),
            self.org.org_id,
            user_id
        )
    }

    pub fn client_credentials_user(&self) -> &User {
        self.config
            .client_credentials_user
            .as_deref()
            .and_then(|u| self.org.user(u))
            .unwrap_or_else(|| self.org.integration_user())
    }

    pub fn issue(&self, user: &User) -> (String, Session) {
        let session = Session {
            user_id: user.id.clone(),
            username: user.username.clone(),
            org_id: self.org.org_id.clone(),
            instance_url: self.instance_url.clone(),
            issued_at: self.org.clock.now(),
        };
        (self.tokens.issue(session.clone()), session)
    }

    /// Applies the injected latency for `class`, then answers 503 if the org is down or the
    /// class's error rate says so.
    pub async fn fault_response(&self, class: &str) -> Option<Response> {
        let fault = self.faults.endpoint(class);
        if fault.latency_ms > 0 {
            tokio::time::sleep(Duration::from_millis(fault.latency_ms)).await;
        }
        let fail = self.faults.unavailable()
            || (fault.error_rate > 0.0 && rand::rng().random_bool(fault.error_rate.min(1.0)));
        fail.then(|| {
            rest::error_response(&SfError::server_unavailable(), Some(self.org.api_usage()))
        })
    }
}

fn router(state: SfState) -> Router {
    Router::new()
        .route("/services/oauth2/token", post(oauth::token))
        .route("/services/oauth2/userinfo", get(oauth::userinfo))
        .route("/services/data", get(rest::versions))
        .route("/services/data/", get(rest::versions))
        .route("/services/data/{*rest}", any(rest::entry))
        .nest("/__admin/salesforce", admin::router())
        .with_state(state)
}

/// A running org started by [`spawn_for_tests`].
pub struct SpawnedOrg {
    /// Where OAuth, REST and admin listen.
    pub addr: SocketAddr,
    /// `http://<addr>`, or `https://<addr>` when serving TLS.
    pub base_url: String,
    pub org: Arc<Org>,
    pub tokens: Arc<TokenStore>,
    pub faults: Arc<SalesforceFaults>,
    pub server: tokio::task::JoinHandle<()>,
}

/// Starts the org's HTTP side on `listen` (port 0 for any) and returns once it is bound.
/// The Pub/Sub server is not started here; callers that need it start it with
/// [`SpawnedOrg::tokens`] and [`SpawnedOrg::faults`]. With `config.tls` set, it serves HTTPS
/// with its own generated CA, written to `tls.ca_pem_path` before this returns
/// ([`wiring`](super::wiring) shares one CA with the Pub/Sub server instead).
pub async fn spawn_for_tests(
    config: SalesforceConfig,
    listen: SocketAddr,
    clock: SandboxClock,
    sink: Arc<dyn ChangeSink>,
    faults: Arc<SalesforceFaults>,
) -> anyhow::Result<SpawnedOrg> {
    let listener = bind(listen).await?;
    let Some(tls_config) = config.tls.clone() else {
        return spawn_on(config, listener, clock, sink, faults, None);
    };
    let hosts = super::tls::certificate_hosts(
        &tls_config.hosts,
        &[listener.local_addr()?],
        config.instance_url.as_deref(),
    );
    let tls = GeneratedTls::generate(&hosts)?;
    let org = spawn_on(config, listener, clock, sink, faults, Some(&tls))?;
    if let Err(e) = tls.write_ca(&tls_config.ca_pem_path) {
        org.server.abort();
        return Err(e);
    }
    Ok(org)
}

/// Binds the OAuth/REST/admin listener.
pub async fn bind(listen: SocketAddr) -> anyhow::Result<tokio::net::TcpListener> {
    tokio::net::TcpListener::bind(listen)
        .await
        .with_context(|| format!("binding the Salesforce listener on {listen}"))
}

/// Serves OAuth/REST/admin on a bound listener, over TLS with `tls`'s certificate if given
/// (the caller writes its CA file).
pub fn spawn_on(
    config: SalesforceConfig,
    listener: tokio::net::TcpListener,
    clock: SandboxClock,
    sink: Arc<dyn ChangeSink>,
    faults: Arc<SalesforceFaults>,
    tls: Option<&GeneratedTls>,
) -> anyhow::Result<SpawnedOrg> {
    let addr = listener.local_addr().context("reading the bound address")?;
    let scheme = if tls.is_some() { "https" } else { "http" };
    let state = build_state(config, addr, scheme, clock, sink, faults)?;
    let shared = state.clone();
    let app = router(state);
    let server = match tls {
        None => tokio::spawn(async move {
            if let Err(e) = axum::serve(listener, app).await {
                tracing::error!(error = %e, "the Salesforce HTTP server stopped");
            }
        }),
        Some(tls) => {
            let listener = TlsListener::new(listener, tls.rustls_config()?)?;
            tokio::spawn(async move {
                if let Err(e) = axum::serve(listener, app).await {
                    tracing::error!(error = %e, "the Salesforce HTTPS server stopped");
                }
            })
        }
    };
    Ok(SpawnedOrg {
        addr,
        base_url: format!("{scheme}://{addr}"),
        org: shared.org.clone(),
        tokens: shared.tokens.clone(),
        faults: shared.faults.clone(),
        server,
    })
}

fn build_state(
    config: SalesforceConfig,
    addr: SocketAddr,
    scheme: &str,
    clock: SandboxClock,
    sink: Arc<dyn ChangeSink>,
    faults: Arc<SalesforceFaults>,
) -> anyhow::Result<SfState> {
    let jwt_key = config
        .certificate_pem()?
        .map(|pem| oauth::verifying_key(&pem))
        .transpose()
        .context("loading the connected app certificate")?;
    let org = Arc::new(Org::new(&config, clock.clone(), faults.clone(), sink)?);
    let tokens = Arc::new(TokenStore::new(
        clock,
        Duration::from_secs(config.token_idle_timeout_secs),
    ));
    let instance_url = config
        .instance_url
        .clone()
        .unwrap_or_else(|| format!("{scheme}://{addr}"))
        .trim_end_matches('/')
        .to_string();
    Ok(SfState(Arc::new(SfShared {
        org,
        tokens,
        faults,
        config,
        instance_url,
        jwt_key,
    })))
}
