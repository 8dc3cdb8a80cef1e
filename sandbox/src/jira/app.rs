//! The running site: shared state ([`AppState`]) and the HTTP surface assembled from the REST,
//! OAuth, admin and webhook routers, with the middleware order Jira's edge implies: rate limits
//! first (they apply to every caller), then authentication (401 before anything else), then
//! injected faults, then the handler.
//!
//! Two URI rewrites happen before routing, so the same REST handlers serve all three ways in:
//! - `/ex/jira/{cloudId}/rest/api/3/…` (OAuth apps and scoped tokens, reference §2) →
//!   `/rest/api/3/…` when the cloud id is the site's;
//! - `/__admin/jira/as/{user}/rest/api/3/…` (a person using Jira) → `/rest/api/3/…` with
//!   [`ActAs`] set, so events carry a human actor.

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use axum::Router;
use axum::extract::Request;
use axum::middleware::from_fn_with_state;
use chrono::{DateTime, Utc};

use super::auth::{ActAs, ApiTokens};
use super::error::ApiResult;
use super::events::EventHub;
use super::faults::SharedFaults;
use super::oauth::OAuthStore;
use super::ratelimit::{self, RateLimiter};
use super::site::{Site, SiteEvent};
use super::webhooks::{self, WebhookDispatcher};
use super::{admin, auth, faults, rest};
use crate::clock::SandboxClock;

/// Everything handlers share; cheap to clone.
#[derive(Clone)]
pub struct AppState {
    pub site: Arc<Mutex<Site>>,
    pub clock: SandboxClock,
    pub api_tokens: Arc<ApiTokens>,
    pub oauth: Arc<Mutex<OAuthStore>>,
    pub faults: SharedFaults,
    pub events: Arc<EventHub>,
    pub limiter: RateLimiter,
    pub webhooks: WebhookDispatcher,
    pub cloud_id: String,
    /// `/search/jql` eventual consistency (sandbox time).
    pub search_lag: Duration,
}

impl AppState {
    pub fn lock_site(&self) -> MutexGuard<'_, Site> {
        // A handler that panicked mid-change leaves a consistent-enough map; keep serving.
        self.site.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Runs one write on the site and publishes the events it returns, under one lock, so
    /// webhook sinks see the site exactly as the change left it.
    pub fn write<T>(
        &self,
        actor: &str,
        op: impl FnOnce(&mut Site, DateTime<Utc>) -> ApiResult<(T, Vec<SiteEvent>)>,
    ) -> ApiResult<T> {
        let now = self.clock.now();
        let mut site = self.lock_site();
        let (out, events) = op(&mut site, now)?;
        self.events.publish(&site, actor, &events, now);
        Ok(out)
    }
}

/// The whole HTTP surface (before the URI rewrites of [`rewrite`]).
pub fn router(state: AppState) -> Router {
    let api = rest::routes()
        .layer(from_fn_with_state(state.faults.clone(), faults::inject))
        .layer(from_fn_with_state(state.clone(), auth::require));
    // Admin webhooks need *Administer Jira*: behind the same authentication as REST.
    let hooks = webhooks::router(state.webhooks.registry().clone())
        .layer(from_fn_with_state(state.clone(), auth::require));
    Router::new()
        .nest("/rest/api/3", api)
        .merge(hooks)
        .merge(rest::oauth_routes())
        .nest("/__admin/jira", admin::routes())
        .layer(from_fn_with_state(
            state.limiter.clone(),
            ratelimit::enforce,
        ))
        .with_state(state)
}

/// The URI rewrites (see the module comment). Unknown cloud ids are left alone and so 404.
pub fn rewrite(cloud_id: &str, mut req: Request) -> Request {
    let path = req.uri().path().to_string();
    let rest_path = if let Some(tail) = path.strip_prefix("/ex/jira/") {
        match tail.split_once('/') {
            Some((id, rest)) if id == cloud_id => Some(format!("/{rest}")),
            _ => None,
        }
    } else if let Some(tail) = path.strip_prefix("/__admin/jira/as/") {
        tail.split_once('/').and_then(|(user, rest)| {
            let user = percent_decode(user);
            req.extensions_mut().insert(ActAs(user));
            rest.starts_with("rest/").then(|| format!("/{rest}"))
        })
    } else {
        None
    };
    if let Some(new_path) = rest_path {
        let pq = match req.uri().query() {
            Some(q) => format!("{new_path}?{q}"),
            None => new_path,
        };
        let mut parts = req.uri().clone().into_parts();
        if let Ok(p) = pq.parse() {
            parts.path_and_query = Some(p);
            if let Ok(uri) = axum::http::Uri::from_parts(parts) {
                *req.uri_mut() = uri;
            }
        }
    }
    req
}

/// `%3A` in account ids (`712020:…`) and `%40` in emails.
fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && i + 2 < bytes.len()
            && let Ok(b) = u8::from_str_radix(&s[i + 1..i + 3], 16)
        {
            out.push(b);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}
