//! HTTP side of [`crate::jira::oauth`]: `POST /oauth/token` (JSON body) and
//! `GET /oauth/token/accessible-resources` (reference §2).

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;

use crate::jira::app::AppState;
use crate::jira::auth::unauthenticated;
use crate::jira::oauth::TokenRequest;

pub async fn token(State(state): State<AppState>, body: Bytes) -> Response {
    let Ok(req) = serde_json::from_slice::<TokenRequest>(&body) else {
        // [U] wording.
        let body = json!({"error": "invalid_request", "error_description": "The request body must be a JSON object."});
        return (StatusCode::BAD_REQUEST, axum::Json(body)).into_response();
    };
    let now = state.clock.now();
    let result = state
        .oauth
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .token(&req, now);
    match result {
        Ok(tokens) => axum::Json(tokens).into_response(),
        Err(e) => (e.status, axum::Json(e.body())).into_response(),
    }
}

pub async fn accessible_resources(State(state): State<AppState>, headers: HeaderMap) -> Response {
    let bearer = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    let now = state.clock.now();
    let auth = bearer.and_then(|t| {
        state
            .oauth
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .authenticate(t, now)
    });
    let Some((_, scope)) = auth else {
        return unauthenticated();
    };
    let base = state.lock_site().base_url.clone();
    let scopes: Vec<&str> = scope
        .split_whitespace()
        .filter(|s| *s != "offline_access")
        .collect();
    axum::Json(json!([{
        "id": state.cloud_id,
        "url": base,
        "name": "sfjira-sandbox",
        "scopes": scopes,
        "avatarUrl": "https://site-admin-avatar-cdn.prod.public.atl-paas.net/avatars/240/rocket.png",
    }]))
    .into_response()
}
