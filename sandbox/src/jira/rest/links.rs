//! External-id storage (reference §3.6): issue entity properties
//! (`PUT`/`GET /issue/{k}/properties/{key}`, 201 created / 200 replaced, ≤ 32 768 chars) and
//! remote links (`POST /issue/{k}/remotelink`, upsert by `globalId`: 200 replaced / 201 new).

use axum::Extension;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use super::{issue_id, json_body};
use crate::jira::app::AppState;
use crate::jira::auth::Caller;
use crate::jira::error::{ApiError, ApiResult};

pub async fn put_property(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path((key, prop)): Path<(String, String)>,
    body: Bytes,
) -> ApiResult<Response> {
    let id = issue_id(&state, &key)?;
    let value = if body.iter().all(u8::is_ascii_whitespace) {
        Value::Null
    } else {
        json_body(&body)?
    };
    let created = state.write(&caller.account_id, |site, _| {
        site.set_property(id, &prop, value)
    })?;
    let status = if created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok(status.into_response())
}

pub async fn get_property(
    State(state): State<AppState>,
    Path((key, prop)): Path<(String, String)>,
) -> ApiResult<Response> {
    let site = state.lock_site();
    let issue = site.find(&key).ok_or_else(ApiError::issue_not_found)?;
    let value = issue
        .properties
        .get(&prop)
        // [U] wording.
        .ok_or_else(|| {
            ApiError::message(
                StatusCode::NOT_FOUND,
                format!("The property with key '{prop}' does not exist."),
            )
        })?;
    Ok(axum::Json(json!({"key": prop, "value": value})).into_response())
}

pub async fn property_keys(
    State(state): State<AppState>,
    Path(key): Path<String>,
) -> ApiResult<Response> {
    let site = state.lock_site();
    let issue = site.find(&key).ok_or_else(ApiError::issue_not_found)?;
    let keys: Vec<Value> = issue
        .properties
        .keys()
        .map(|k| json!({"self": format!("{}/rest/api/3/issue/{}/properties/{k}", site.base_url, issue.id), "key": k}))
        .collect();
    Ok(axum::Json(json!({"keys": keys})).into_response())
}

pub async fn upsert_remote(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(key): Path<String>,
    body: Bytes,
) -> ApiResult<Response> {
    let id = issue_id(&state, &key)?;
    let body = json_body(&body)?;
    let (link_id, created) = state.write(&caller.account_id, |site, now| {
        Ok((site.upsert_remote_link(id, body, now)?, Vec::new()))
    })?;
    let base = state.lock_site().base_url.clone();
    let status = if created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    let out = json!({"id": link_id, "self": format!("{base}/rest/api/3/issue/{id}/remotelink/{link_id}")});
    Ok((status, axum::Json(out)).into_response())
}

pub async fn list_remote(
    State(state): State<AppState>,
    Path(key): Path<String>,
) -> ApiResult<Response> {
    let site = state.lock_site();
    let issue = site.find(&key).ok_or_else(ApiError::issue_not_found)?;
    let links: Vec<Value> = issue
        .remote_links
        .iter()
        .map(|l| {
            let mut v = json!({"id": l.id, "self": format!("{}/rest/api/3/issue/{}/remotelink/{}", site.base_url, issue.id, l.id)});
            if let Some(obj) = l.body.as_object() {
                for (k, val) in obj {
                    v[k] = val.clone();
                }
            }
            v
        })
        .collect();
    Ok(axum::Json(links).into_response())
}
