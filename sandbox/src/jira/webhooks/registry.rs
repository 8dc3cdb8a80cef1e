//! Admin webhook registrations: from the sandbox config and through Jira's REST resource
//! `/rest/webhooks/1.0/webhook` (POST, GET, GET/PUT/DELETE `/{id}`), in the shapes jira.js and
//! Atlassian's docs give (jira-api.md §5): request `{name, url, events, filters:
//! {"issue-related-events-section": "<JQL>"}, excludeBody, secret}`; answers carry `self`,
//! `enabled`, `lastUpdated` (epoch ms) and `isSigned` but never the secret, which is write-once.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use chrono::{DateTime, Utc};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::clock::SandboxClock;

const FILTER_KEY: &str = "issue-related-events-section";

/// A webhook as written in the sandbox config (also the REST request body, camelCase there).
#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct WebhookConfig {
    /// Shown in the admin UI.
    #[serde(default)]
    pub name: String,
    /// Where deliveries go.
    pub url: String,
    /// `webhookEvent` names to deliver (`jira:issue_updated`, `comment_created`, …); empty = all.
    #[serde(default)]
    pub events: Vec<String>,
    /// JQL restricting issue-related events (issue, comment, worklog, attachment, property).
    #[serde(default)]
    pub jql: Option<String>,
    /// HMAC secret: deliveries then carry `X-Hub-Signature`.
    #[serde(default)]
    pub secret: Option<String>,
    /// Deliver headers only, no body.
    #[serde(default)]
    pub exclude_body: bool,
}

/// A registered webhook.
#[derive(Debug, Clone)]
pub struct Webhook {
    pub id: u64,
    pub config: WebhookConfig,
    pub enabled: bool,
    pub last_updated: DateTime<Utc>,
}

impl Webhook {
    /// Whether this webhook wants `event` (exact name; an empty list means every event).
    pub fn wants(&self, event: &str) -> bool {
        self.enabled
            && (self.config.events.is_empty() || self.config.events.iter().any(|e| e == event))
    }
}

/// The site's webhooks; cheap to clone (shared state).
#[derive(Debug, Clone)]
pub struct WebhookRegistry {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    base_url: String,
    clock: SandboxClock,
    hooks: Mutex<(u64, BTreeMap<u64, Webhook>)>,
}

impl WebhookRegistry {
    /// `base_url` is the site's (`http://127.0.0.1:8081`), for `self` links.
    pub fn new(base_url: impl Into<String>, clock: SandboxClock) -> Self {
        let inner = Inner {
            base_url: base_url.into(),
            clock,
            hooks: Mutex::new((1, BTreeMap::new())),
        };
        WebhookRegistry {
            inner: Arc::new(inner),
        }
    }

    fn hooks(&self) -> std::sync::MutexGuard<'_, (u64, BTreeMap<u64, Webhook>)> {
        self.inner.hooks.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn add(&self, config: WebhookConfig) -> Webhook {
        let now = self.inner.clock.now();
        let mut g = self.hooks();
        let id = g.0;
        g.0 += 1;
        let hook = Webhook {
            id,
            config,
            enabled: true,
            last_updated: now,
        };
        g.1.insert(id, hook.clone());
        hook
    }

    /// Replaces a webhook's settings; a missing secret keeps the old one (write-once).
    pub fn update(&self, id: u64, mut config: WebhookConfig) -> Option<Webhook> {
        let now = self.inner.clock.now();
        let mut g = self.hooks();
        let hook = g.1.get_mut(&id)?;
        if config.secret.is_none() {
            config.secret = hook.config.secret.take();
        }
        hook.config = config;
        hook.last_updated = now;
        Some(hook.clone())
    }

    pub fn get(&self, id: u64) -> Option<Webhook> {
        self.hooks().1.get(&id).cloned()
    }

    pub fn list(&self) -> Vec<Webhook> {
        self.hooks().1.values().cloned().collect()
    }

    pub fn remove(&self, id: u64) -> bool {
        self.hooks().1.remove(&id).is_some()
    }

    pub fn set_enabled(&self, id: u64, enabled: bool) -> bool {
        self.hooks()
            .1
            .get_mut(&id)
            .map(|h| h.enabled = enabled)
            .is_some()
    }

    /// The REST representation of a webhook.
    pub fn to_json(&self, h: &Webhook) -> Value {
        json!({
            "self": format!("{}/rest/webhooks/1.0/webhook/{}", self.inner.base_url, h.id),
            "name": h.config.name,
            "url": h.config.url,
            "excludeBody": h.config.exclude_body,
            "filters": { FILTER_KEY: h.config.jql.clone().unwrap_or_default() },
            "events": h.config.events,
            "enabled": h.enabled,
            "lastUpdated": h.last_updated.timestamp_millis(),
            "isSigned": h.config.secret.is_some(),
        })
    }
}

/// The REST body of POST/PUT.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct RestBody {
    #[serde(default)]
    name: String,
    url: Option<String>,
    #[serde(default)]
    events: Vec<String>,
    #[serde(default)]
    filters: BTreeMap<String, String>,
    #[serde(default)]
    exclude_body: bool,
    #[serde(default)]
    secret: Option<String>,
}

impl RestBody {
    fn into_config(self) -> Result<WebhookConfig, Box<Response>> {
        let url = self.url.filter(|u| !u.trim().is_empty()).ok_or_else(|| {
            // [U] sentence; Jira refuses a webhook without a URL with 400.
            Box::new(error(StatusCode::BAD_REQUEST, "Webhook URL is required."))
        })?;
        let jql = self
            .filters
            .get(FILTER_KEY)
            .filter(|j| !j.trim().is_empty())
            .cloned();
        Ok(WebhookConfig {
            name: self.name,
            url,
            events: self.events,
            jql,
            secret: self.secret.filter(|s| !s.is_empty()),
            exclude_body: self.exclude_body,
        })
    }
}

fn error(status: StatusCode, msg: &str) -> Response {
    (status, Json(json!({"errorMessages": [msg], "errors": {}}))).into_response()
}

fn not_found() -> Response {
    // [U] sentence.
    error(StatusCode::NOT_FOUND, "Webhook not found.")
}

/// Routes of `/rest/webhooks/1.0/webhook`, already given their state, so they merge into a
/// router of any state type (put them behind the site's auth: they need *Administer Jira*).
pub fn router<S: Clone + Send + Sync + 'static>(registry: WebhookRegistry) -> Router<S> {
    Router::new()
        .route("/rest/webhooks/1.0/webhook", get(list).post(create))
        .route(
            "/rest/webhooks/1.0/webhook/{id}",
            get(get_one).put(update).delete(delete),
        )
        .with_state(registry)
}

async fn list(State(r): State<WebhookRegistry>) -> Response {
    let all: Vec<Value> = r.list().iter().map(|h| r.to_json(h)).collect();
    Json(all).into_response()
}

async fn create(State(r): State<WebhookRegistry>, Json(body): Json<RestBody>) -> Response {
    match body.into_config() {
        Ok(cfg) => {
            let h = r.add(cfg);
            (StatusCode::CREATED, Json(r.to_json(&h))).into_response()
        }
        Err(resp) => *resp,
    }
}

async fn get_one(State(r): State<WebhookRegistry>, Path(id): Path<u64>) -> Response {
    r.get(id)
        .map_or_else(not_found, |h| Json(r.to_json(&h)).into_response())
}

async fn update(
    State(r): State<WebhookRegistry>,
    Path(id): Path<u64>,
    Json(body): Json<RestBody>,
) -> Response {
    match body.into_config() {
        Ok(cfg) => r
            .update(id, cfg)
            .map_or_else(not_found, |h| Json(r.to_json(&h)).into_response()),
        Err(resp) => *resp,
    }
}

async fn delete(State(r): State<WebhookRegistry>, Path(id): Path<u64>) -> Response {
    if r.remove(id) {
        StatusCode::NO_CONTENT.into_response()
    } else {
        not_found()
    }
}
