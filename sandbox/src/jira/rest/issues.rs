//! `POST /issue`, `POST /issue/bulk`, `GET`/`PUT`/`DELETE /issue/{idOrKey}` (reference §3.2).

use axum::Extension;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use super::{Params, flag, issue_id, json_body};
use crate::jira::app::AppState;
use crate::jira::auth::Caller;
use crate::jira::error::{ApiError, ApiResult};
use crate::jira::site::ops::IssueWrite;
use crate::jira::site::render::{Expand, FieldSelection};

/// "Creates upto 50 issues" (reference §3.2).
pub const BULK_CREATE_MAX: usize = 50;

fn transition_id(body: &Value) -> Option<String> {
    let id = body.get("transition")?.get("id")?;
    id.as_str()
        .map(str::to_string)
        .or_else(|| id.as_u64().map(|n| n.to_string()))
}

/// Creates one issue; the `CreatedIssue` body on success.
fn create_one(state: &AppState, caller: &Caller, body: &Value) -> ApiResult<Value> {
    let write = IssueWrite::from_body(body);
    let transition = transition_id(body);
    let (id, key) = state.write(&caller.account_id, |site, now| {
        let (id, events) =
            site.create_issue(&caller.account_id, &write, transition.as_deref(), now)?;
        Ok(((id, site.state.issues[&id].key.clone()), events))
    })?;
    let base = state.lock_site().base_url.clone();
    let mut created =
        json!({"id": id.to_string(), "key": key, "self": format!("{base}/rest/api/3/issue/{id}")});
    if transition.is_some() {
        created["transition"] =
            json!({"status": 200, "errorCollection": {"errorMessages": [], "errors": {}}});
    }
    Ok(created)
}

pub async fn create(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    body: Bytes,
) -> ApiResult<Response> {
    let body = json_body(&body)?;
    let created = create_one(&state, &caller, &body)?;
    Ok((StatusCode::CREATED, axum::Json(created)).into_response())
}

/// 201 when any element succeeded (failures listed in `errors`), 400 when all failed.
pub async fn create_bulk(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    body: Bytes,
) -> ApiResult<Response> {
    let body = json_body(&body)?;
    let updates = body
        .get("issueUpdates")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    if updates.len() > BULK_CREATE_MAX {
        // [U] wording.
        return Err(ApiError::bad_request(format!(
            "You can create at most {BULK_CREATE_MAX} issues in one request."
        )));
    }
    let mut issues = Vec::new();
    let mut errors = Vec::new();
    for (n, element) in updates.iter().enumerate() {
        match create_one(&state, &caller, element) {
            Ok(created) => issues.push(created),
            Err(e) => errors.push(json!({
                "elementErrors": e.body(),
                "failedElementNumber": n,
                "status": e.status.as_u16(),
            })),
        }
    }
    let status = if issues.is_empty() {
        StatusCode::BAD_REQUEST
    } else {
        StatusCode::CREATED
    };
    Ok((
        status,
        axum::Json(json!({"issues": issues, "errors": errors})),
    )
        .into_response())
}

pub async fn get(
    State(state): State<AppState>,
    Path(key): Path<String>,
    params: Params,
) -> ApiResult<Response> {
    let site = state.lock_site();
    let issue = site.find(&key).ok_or_else(ApiError::issue_not_found)?;
    let sel = match params.get("fields") {
        Some(f) => FieldSelection::parse([f.as_str()]),
        None => FieldSelection::all(),
    };
    let body = site.render_issue(
        issue,
        &sel,
        Expand::parse(params.get("expand").map(String::as_str)),
    );
    Ok(axum::Json(body).into_response())
}

/// 204, or 200 with the issue when `returnIssue=true`. A `transition` in the body is ignored.
pub async fn edit(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(key): Path<String>,
    params: Params,
    body: Bytes,
) -> ApiResult<Response> {
    let id = issue_id(&state, &key)?;
    let body = json_body(&body)?;
    let write = IssueWrite::from_body(&body);
    state.write(&caller.account_id, |site, now| {
        Ok(((), site.edit_issue(&caller.account_id, id, &write, now)?))
    })?;
    if flag(&params, "returnIssue", false) {
        let site = state.lock_site();
        let issue = site
            .state
            .issues
            .get(&id)
            .ok_or_else(ApiError::issue_not_found)?;
        let expand = Expand::parse(params.get("expand").map(String::as_str));
        return Ok(
            axum::Json(site.render_issue(issue, &FieldSelection::all(), expand)).into_response(),
        );
    }
    Ok(StatusCode::NO_CONTENT.into_response())
}

pub async fn delete(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(key): Path<String>,
    params: Params,
) -> ApiResult<Response> {
    let id = issue_id(&state, &key)?;
    let subtasks = flag(&params, "deleteSubtasks", false);
    state.write(&caller.account_id, |site, now| {
        Ok(((), site.delete_issue(id, subtasks, now)?))
    })?;
    Ok(StatusCode::NO_CONTENT.into_response())
}
