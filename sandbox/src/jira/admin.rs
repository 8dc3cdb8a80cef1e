//! The sandbox's own API under `/__admin/jira/` (JSON, no auth): read state, reset to the seed
//! site, inject faults, mint OAuth codes, and see the events writes fired. Not part of Jira.
//!
//! | route | what |
//! |---|---|
//! | `GET issues` | every issue, rendered with all fields and its changelog |
//! | `GET issues/{idOrKey}` | one issue, same shape (404 like Jira when missing) |
//! | `POST reset` | back to the seed site (issues gone, counters reset, events cleared) |
//! | `GET`/`PUT faults` | the whole [`JiraFaults`] |
//! | `POST faults/ratelimit` | a rate-limit fault for the limiter, e.g. `{"kind":"storm429","requests":3}`, `{"kind":"storm429_for","seconds":5}` |
//! | `DELETE faults/ratelimit` | clears those |
//! | `POST oauth/code` | `{"client_id","user","scope","redirect_uri"?}` → `{"code"}` (the consent screen) |
//! | `GET events` | the last 1000 events (`webhookEvent`, `issueId`, `actor`, …), oldest first |
//! | `GET users` | the site's users (account ids, emails, names) |
//! | `GET`/`DELETE webhooks/deliveries` | every webhook delivery attempt (J2's log) / clear it |
//! | `GET`/`PUT webhooks/faults` | webhook delivery faults (duplicates, reordering, drops, outage) |
//! | `… as/{user}/rest/api/3/…` | any REST call made as that person (account id, email or name; no auth header needed) |

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::Deserialize;
use serde_json::{Value, json};

use super::app::AppState;
use super::error::{ApiError, ApiResult};
use super::faults::JiraFaults;
use super::ratelimit::Fault;
use super::site::render::{Expand, FieldSelection};
use super::webhooks::DeliveryFaults;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/issues", get(all_issues))
        .route("/issues/{issue}", get(one_issue))
        .route("/reset", post(reset))
        .route("/faults", get(get_faults).put(put_faults))
        .route(
            "/faults/ratelimit",
            post(inject_rate_limit).delete(clear_rate_limit),
        )
        .route("/oauth/code", post(mint_code))
        .route("/events", get(events))
        .route("/users", get(users))
        .route(
            "/webhooks/deliveries",
            get(deliveries).delete(clear_deliveries),
        )
        .route(
            "/webhooks/faults",
            get(get_delivery_faults).put(put_delivery_faults),
        )
}

fn with_changelog() -> Expand {
    Expand {
        changelog: true,
        ..Default::default()
    }
}

async fn all_issues(State(state): State<AppState>) -> Response {
    let site = state.lock_site();
    let all: Vec<Value> = site
        .state
        .issues
        .values()
        .map(|i| site.render_issue(i, &FieldSelection::all(), with_changelog()))
        .collect();
    axum::Json(all).into_response()
}

async fn one_issue(State(state): State<AppState>, Path(key): Path<String>) -> ApiResult<Response> {
    let site = state.lock_site();
    let issue = site.find(&key).ok_or_else(ApiError::issue_not_found)?;
    let mut v = site.render_issue(issue, &FieldSelection::all(), with_changelog());
    v["properties"] = json!(issue.properties);
    Ok(axum::Json(v).into_response())
}

async fn reset(State(state): State<AppState>) -> StatusCode {
    state.lock_site().reset();
    state.events.clear();
    StatusCode::NO_CONTENT
}

async fn get_faults(State(state): State<AppState>) -> Response {
    let f = state
        .faults
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .clone();
    axum::Json(f).into_response()
}

fn bad(msg: String) -> ApiError {
    ApiError::bad_request(msg)
}

async fn put_faults(State(state): State<AppState>, body: Bytes) -> ApiResult<Response> {
    let f: JiraFaults = serde_json::from_slice(&body).map_err(|e| bad(format!("faults: {e}")))?;
    *state.faults.lock().unwrap_or_else(|p| p.into_inner()) = f.clone();
    Ok(axum::Json(f).into_response())
}

async fn inject_rate_limit(State(state): State<AppState>, body: Bytes) -> ApiResult<StatusCode> {
    let fault: Fault =
        serde_json::from_slice(&body).map_err(|e| bad(format!("rate-limit fault: {e}")))?;
    state.limiter.inject(fault);
    Ok(StatusCode::NO_CONTENT)
}

async fn clear_rate_limit(State(state): State<AppState>) -> StatusCode {
    state.limiter.clear_faults();
    StatusCode::NO_CONTENT
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CodeRequest {
    client_id: String,
    /// Account id, email or display name.
    user: String,
    #[serde(default = "default_scope")]
    scope: String,
    redirect_uri: Option<String>,
}

fn default_scope() -> String {
    "read:jira-work write:jira-work read:jira-user offline_access".into()
}

async fn mint_code(State(state): State<AppState>, body: Bytes) -> ApiResult<Response> {
    let req: CodeRequest =
        serde_json::from_slice(&body).map_err(|e| bad(format!("oauth code: {e}")))?;
    let account = state
        .lock_site()
        .catalog
        .find_user(&req.user)
        .map(|u| u.account_id.clone())
        .ok_or_else(|| bad(format!("no user {:?}", req.user)))?;
    let now = state.clock.now();
    let code = state
        .oauth
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .mint_code(&req.client_id, &account, &req.scope, req.redirect_uri, now)
        .map_err(bad)?;
    Ok(axum::Json(json!({"code": code})).into_response())
}

async fn events(State(state): State<AppState>) -> Response {
    axum::Json(state.events.recent()).into_response()
}

async fn users(State(state): State<AppState>) -> Response {
    let site = state.lock_site();
    let users: Vec<Value> = site
        .catalog
        .users
        .iter()
        .map(|u| json!({"accountId": u.account_id, "emailAddress": u.email, "displayName": u.display_name, "integration": u.account_id == site.catalog.integration_account_id}))
        .collect();
    axum::Json(users).into_response()
}

async fn deliveries(State(state): State<AppState>) -> Response {
    axum::Json(state.webhooks.log()).into_response()
}

async fn clear_deliveries(State(state): State<AppState>) -> StatusCode {
    state.webhooks.clear_log();
    StatusCode::NO_CONTENT
}

async fn get_delivery_faults(State(state): State<AppState>) -> Response {
    axum::Json(state.webhooks.faults()).into_response()
}

async fn put_delivery_faults(State(state): State<AppState>, body: Bytes) -> ApiResult<Response> {
    let f: DeliveryFaults =
        serde_json::from_slice(&body).map_err(|e| bad(format!("delivery faults: {e}")))?;
    state.webhooks.set_faults(f.clone());
    Ok(axum::Json(f).into_response())
}
