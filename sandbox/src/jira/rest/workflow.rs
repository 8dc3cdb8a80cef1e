//! `GET`/`POST /issue/{k}/transitions` (reference §3.3) and `GET /issue/{k}/changelog` (§3.9).

use axum::Extension;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use super::{Params, issue_id, json_body, paging};
use crate::jira::app::AppState;
use crate::jira::auth::Caller;
use crate::jira::error::{ApiError, ApiResult};
use crate::jira::site::ops::IssueWrite;
use crate::jira::site::render;

pub async fn list(
    State(state): State<AppState>,
    Path(key): Path<String>,
    params: Params,
) -> ApiResult<Response> {
    let site = state.lock_site();
    let issue = site.find(&key).ok_or_else(ApiError::issue_not_found)?;
    let only = params.get("transitionId");
    let transitions: Vec<Value> = site
        .catalog
        .transitions_from(&issue.status_id)
        .filter(|t| only.is_none_or(|id| *id == t.id))
        .map(|t| render::transition(&site.catalog, &site.base_url, t))
        .collect();
    Ok(axum::Json(json!({"expand": "transitions", "transitions": transitions})).into_response())
}

/// 204 on success; an id that is not a transition out of the current status → 400.
pub async fn transition(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(key): Path<String>,
    body: Bytes,
) -> ApiResult<Response> {
    let id = issue_id(&state, &key)?;
    let body = json_body(&body)?;
    let tid = body.get("transition").and_then(|t| t.get("id"));
    let tid = tid
        .and_then(|v| {
            v.as_str()
                .map(str::to_string)
                .or_else(|| v.as_u64().map(|n| n.to_string()))
        })
        // [U] wording.
        .ok_or_else(|| ApiError::bad_request("Missing 'transition' identifier"))?;
    let write = IssueWrite::from_body(&body);
    state.write(&caller.account_id, |site, now| {
        Ok((
            (),
            site.transition_issue(&caller.account_id, id, &tid, &write, now)?,
        ))
    })?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// `PageBeanChangelog`, oldest first (reference §3.9).
pub async fn changelog(
    State(state): State<AppState>,
    Path(key): Path<String>,
    params: Params,
) -> ApiResult<Response> {
    let (start, max) = paging(&params, 100, 100);
    let site = state.lock_site();
    let issue = site.find(&key).ok_or_else(ApiError::issue_not_found)?;
    let total = issue.changelog.len();
    let values: Vec<Value> = issue
        .changelog
        .iter()
        .skip(start)
        .take(max)
        .map(|h| render::history(&site.catalog, &site.base_url, h))
        .collect();
    let is_last = start + values.len() >= total;
    Ok(axum::Json(json!({
        "self": format!("{}/rest/api/3/issue/{}/changelog?maxResults={max}&startAt={start}", site.base_url, issue.key),
        "maxResults": max, "startAt": start, "total": total, "isLast": is_last, "values": values,
    }))
    .into_response())
}
