//! Comments: `POST`/`GET /issue/{k}/comment`, `GET`/`PUT`/`DELETE /issue/{k}/comment/{id}`
//! (reference §3.4). Bodies must be ADF.

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

/// `orderBy`: `created`, `+created` or `-created`. Real Jira strips one leading sign, ignores
/// case and surrounding spaces, and validates before looking up the issue
/// (https://github.com/brekkylab/backlot/pull/165, measured against a live site). `Some(true)` =
/// newest first.
fn order_desc(raw: Option<&String>) -> ApiResult<bool> {
    let Some(raw) = raw else { return Ok(false) };
    let t = raw.trim();
    let (desc, field) = match t.as_bytes().first() {
        Some(b'-') => (true, &t[1..]),
        Some(b'+') => (false, &t[1..]),
        _ => (false, t),
    };
    if field.trim().eq_ignore_ascii_case("created") {
        Ok(desc)
    } else {
        // [U] wording; the 400 is real.
        Err(ApiError::bad_request(format!(
            "Invalid orderBy value '{raw}'. Valid values are: created, -created, +created."
        )))
    }
}

fn body_of(body: &Bytes) -> ApiResult<(Value, Option<Value>)> {
    let v = json_body(body)?;
    let b = v.get("body").cloned().unwrap_or(Value::Null);
    Ok((b, v.get("visibility").filter(|x| !x.is_null()).cloned()))
}

fn rendered(state: &AppState, issue_id: u64, c: &crate::jira::site::issue::Comment) -> Value {
    let site = state.lock_site();
    render::comment(&site.catalog, &site.base_url, issue_id, c)
}

/// `properties: [{key, value}]` of a comment or worklog body (each needs a string `key`; real
/// Jira takes them on create, reference §3.4 and §3.5).
pub(super) fn properties_of(v: &Value) -> ApiResult<Vec<Value>> {
    let props = v
        .get("properties")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    if props
        .iter()
        .any(|p| p.get("key").and_then(Value::as_str).is_none())
    {
        // [U] wording.
        return Err(ApiError::bad_request("Property key must be a string."));
    }
    Ok(props)
}

/// Whether `expand` asks for entity properties.
pub(super) fn expands_properties(params: &Params) -> bool {
    let expand = params.get("expand").map(String::as_str).unwrap_or("");
    expand.split(',').any(|e| e.trim() == "properties")
}

/// The comment as rendered, with its properties when `expand` asks for them.
fn with_properties(mut v: Value, c: &crate::jira::site::issue::Comment, params: &Params) -> Value {
    if expands_properties(params) {
        v["properties"] = Value::Array(c.properties.clone());
    }
    v
}

pub async fn add(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(key): Path<String>,
    body: Bytes,
) -> ApiResult<Response> {
    let id = issue_id(&state, &key)?;
    let (b, visibility) = body_of(&body)?;
    let properties = properties_of(&json_body(&body)?)?;
    let comment = state.write(&caller.account_id, |site, now| {
        let (mut c, events) = site.push_comment(id, &caller.account_id, b, visibility, now)?;
        if let Some(stored) = site
            .state
            .issues
            .get_mut(&id)
            .and_then(|i| i.comments.iter_mut().find(|x| x.id == c.id))
        {
            stored.properties = properties.clone();
        }
        c.properties = properties;
        Ok((c, events))
    })?;
    Ok((
        StatusCode::CREATED,
        axum::Json(rendered(&state, id, &comment)),
    )
        .into_response())
}

pub async fn list(
    State(state): State<AppState>,
    Path(key): Path<String>,
    params: Params,
) -> ApiResult<Response> {
    let desc = order_desc(params.get("orderBy"))?;
    let (start, max) = paging(&params, 100, 5000);
    let site = state.lock_site();
    let issue = site.find(&key).ok_or_else(ApiError::issue_not_found)?;
    let mut all: Vec<_> = issue.comments.iter().collect();
    all.sort_by_key(|c| (c.created, c.id));
    if desc {
        all.reverse();
    }
    let comments: Vec<Value> = all
        .iter()
        .skip(start)
        .take(max)
        .map(|c| {
            with_properties(
                render::comment(&site.catalog, &site.base_url, issue.id, c),
                c,
                &params,
            )
        })
        .collect();
    Ok(axum::Json(
        json!({"comments": comments, "maxResults": max, "total": all.len(), "startAt": start}),
    )
    .into_response())
}

fn comment_id(raw: &str) -> ApiResult<u64> {
    // [U] wording for a non-numeric id.
    raw.parse().map_err(|_| {
        ApiError::message(
            StatusCode::NOT_FOUND,
            format!("Can not find a comment for the id: {raw}"),
        )
    })
}

pub async fn get_one(
    State(state): State<AppState>,
    Path((key, cid)): Path<(String, String)>,
    params: Params,
) -> ApiResult<Response> {
    let cid = comment_id(&cid)?;
    let site = state.lock_site();
    let issue = site.find(&key).ok_or_else(ApiError::issue_not_found)?;
    let c = issue.comments.iter().find(|c| c.id == cid).ok_or_else(|| {
        ApiError::message(
            StatusCode::NOT_FOUND,
            format!("Can not find a comment for the id: {cid}"),
        )
    })?;
    let v = render::comment(&site.catalog, &site.base_url, issue.id, c);
    Ok(axum::Json(with_properties(v, c, &params)).into_response())
}

pub async fn update(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path((key, cid)): Path<(String, String)>,
    body: Bytes,
) -> ApiResult<Response> {
    let id = issue_id(&state, &key)?;
    let cid = comment_id(&cid)?;
    let (b, _) = body_of(&body)?;
    let comment = state.write(&caller.account_id, |site, now| {
        site.update_comment(id, cid, &caller.account_id, b, now)
    })?;
    Ok(axum::Json(rendered(&state, id, &comment)).into_response())
}

pub async fn remove(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path((key, cid)): Path<(String, String)>,
) -> ApiResult<Response> {
    let id = issue_id(&state, &key)?;
    let cid = comment_id(&cid)?;
    state.write(&caller.account_id, |site, now| {
        Ok(((), site.delete_comment(id, cid, now)?))
    })?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn order_by_grammar() {
        assert_eq!(order_desc(None), Ok(false));
        assert_eq!(order_desc(Some(&"-created".into())), Ok(true));
        assert_eq!(order_desc(Some(&"+Created".into())), Ok(false));
        assert!(order_desc(Some(&"--created".into())).is_err());
        assert!(order_desc(Some(&"updated".into())).is_err());
        assert!(order_desc(Some(&"".into())).is_err());
    }
}
