//! Worklogs: `POST`/`GET /issue/{k}/worklog`, `GET`/`PUT`/`DELETE /issue/{k}/worklog/{id}`
//! (reference §3.5).
//! `started` is strict and exactly one of `timeSpent`/`timeSpentSeconds` is allowed; both are
//! checked in [`WorklogInput::from_body`].

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
use crate::jira::site::render;
use crate::jira::site::worklogs::{AdjustEstimate, WorklogEdit, WorklogInput};

pub async fn add(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(key): Path<String>,
    params: Params,
    body: Bytes,
) -> ApiResult<Response> {
    let id = issue_id(&state, &key)?;
    let adjust = adjust_of(&params)?;
    let raw = json_body(&body)?;
    let input = WorklogInput::from_body(&raw)?;
    let properties = super::comments::properties_of(&raw)?;
    let worklog = state.write(&caller.account_id, |site, now| {
        let (mut w, events) = site.add_worklog(id, &caller.account_id, input, adjust, now)?;
        if let Some(stored) = site
            .state
            .issues
            .get_mut(&id)
            .and_then(|i| i.worklogs.iter_mut().find(|x| x.id == w.id))
        {
            stored.properties = properties.clone();
        }
        w.properties = properties;
        Ok((w, events))
    })?;
    let site = state.lock_site();
    Ok((
        StatusCode::CREATED,
        axum::Json(render::worklog(&site.catalog, &site.base_url, &worklog)),
    )
        .into_response())
}

/// Oldest first; `startedAfter`/`startedBefore` in epoch milliseconds.
pub async fn list(
    State(state): State<AppState>,
    Path(key): Path<String>,
    params: Params,
) -> ApiResult<Response> {
    let (start, max) = paging(&params, 5000, 5000);
    let after = params
        .get("startedAfter")
        .and_then(|v| v.parse::<i64>().ok());
    let before = params
        .get("startedBefore")
        .and_then(|v| v.parse::<i64>().ok());
    let site = state.lock_site();
    let issue = site.find(&key).ok_or_else(ApiError::issue_not_found)?;
    let matching: Vec<_> = issue
        .worklogs
        .iter()
        .filter(|w| after.is_none_or(|a| w.started.timestamp_millis() >= a))
        .filter(|w| before.is_none_or(|b| w.started.timestamp_millis() <= b))
        .collect();
    let worklogs: Vec<Value> = matching
        .iter()
        .skip(start)
        .take(max)
        .map(|w| {
            let mut v = render::worklog(&site.catalog, &site.base_url, w);
            if super::comments::expands_properties(&params) {
                v["properties"] = Value::Array(w.properties.clone());
            }
            v
        })
        .collect();
    Ok(axum::Json(
        json!({"startAt": start, "maxResults": max, "total": matching.len(), "worklogs": worklogs}),
    )
    .into_response())
}

fn adjust_of(params: &Params) -> ApiResult<AdjustEstimate> {
    AdjustEstimate::from_query(
        params.get("adjustEstimate").map(String::as_str),
        params.get("newEstimate").map(String::as_str),
        params.get("reduceBy").map(String::as_str),
    )
}

fn worklog_id(raw: &str) -> ApiResult<u64> {
    raw.parse().map_err(|_| {
        ApiError::message(
            StatusCode::NOT_FOUND,
            format!("Cannot find worklog with id: '{raw}'."),
        )
    }) // [U]
}

pub async fn get_one(
    State(state): State<AppState>,
    Path((key, wid)): Path<(String, String)>,
) -> ApiResult<Response> {
    let wid = worklog_id(&wid)?;
    let site = state.lock_site();
    let issue = site.find(&key).ok_or_else(ApiError::issue_not_found)?;
    let w = issue.worklogs.iter().find(|w| w.id == wid).ok_or_else(|| {
        ApiError::message(
            StatusCode::NOT_FOUND,
            format!("Cannot find worklog with id: '{wid}'."),
        )
    })?; // [U]
    Ok(axum::Json(render::worklog(&site.catalog, &site.base_url, w)).into_response())
}

/// 200 with the worklog.
pub async fn update(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path((key, wid)): Path<(String, String)>,
    params: Params,
    body: Bytes,
) -> ApiResult<Response> {
    let id = issue_id(&state, &key)?;
    let wid = worklog_id(&wid)?;
    let adjust = adjust_of(&params)?;
    let edit = WorklogEdit::from_body(&json_body(&body)?)?;
    let worklog = state.write(&caller.account_id, |site, now| {
        site.update_worklog(id, wid, &caller.account_id, edit, adjust, now)
    })?;
    let site = state.lock_site();
    Ok(axum::Json(render::worklog(&site.catalog, &site.base_url, &worklog)).into_response())
}

/// Answers 204. `adjustEstimate` (`auto` by default), `newEstimate`, `increaseBy` say what becomes
/// of the remaining estimate; a bad combination is a 400 and deletes nothing.
pub async fn remove(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path((key, wid)): Path<(String, String)>,
    params: Params,
) -> ApiResult<Response> {
    let id = issue_id(&state, &key)?;
    let wid = worklog_id(&wid)?;
    let adjust = AdjustEstimate::from_delete_query(
        params.get("adjustEstimate").map(String::as_str),
        params.get("newEstimate").map(String::as_str),
        params.get("increaseBy").map(String::as_str),
    )?;
    state.write(&caller.account_id, |site, now| {
        Ok(((), site.delete_worklog(id, wid, adjust, now)?))
    })?;
    Ok(StatusCode::NO_CONTENT.into_response())
}
