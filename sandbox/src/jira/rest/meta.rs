//! Site metadata: `GET /field`, `GET /project`, `/project/search`, `/project/{idOrKey}`,
//! `GET /myself`, and the create metadata that replaced the removed `GET /issue/createmeta`:
//! `GET /issue/createmeta/{project}/issuetypes[/{issueTypeId}]` (reference §3.8).

use axum::Extension;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use super::{Params, paging};
use crate::jira::app::AppState;
use crate::jira::auth::Caller;
use crate::jira::error::{ApiError, ApiResult};
use crate::jira::site::catalog::{Catalog, FieldKind, Project};
use crate::jira::site::render;

pub async fn fields(State(state): State<AppState>) -> Response {
    let site = state.lock_site();
    let all: Vec<Value> = site
        .catalog
        .fields
        .iter()
        .map(|f| render::field_details(&site.catalog, f))
        .collect();
    axum::Json(all).into_response()
}

fn project_detail(catalog: &Catalog, base: &str, p: &Project) -> Value {
    let mut v = render::project(base, p);
    let types: Vec<Value> = p
        .issue_type_ids
        .iter()
        .filter_map(|id| catalog.issue_type(id))
        .map(|t| render::issue_type(base, t))
        .collect();
    v["issueTypes"] = json!(types);
    if let Some(lead) = catalog.user(&p.lead_account_id) {
        v["lead"] = render::user(base, lead);
    }
    v
}

pub async fn projects(State(state): State<AppState>) -> Response {
    let site = state.lock_site();
    let all: Vec<Value> = site
        .catalog
        .projects
        .iter()
        .map(|p| render::project(&site.base_url, p))
        .collect();
    axum::Json(all).into_response()
}

pub async fn project_search(State(state): State<AppState>, params: Params) -> Response {
    let (start, max) = paging(&params, 50, 100);
    let site = state.lock_site();
    let all = &site.catalog.projects;
    let values: Vec<Value> = all
        .iter()
        .skip(start)
        .take(max)
        .map(|p| render::project(&site.base_url, p))
        .collect();
    axum::Json(json!({
        "self": format!("{}/rest/api/3/project/search?maxResults={max}&startAt={start}", site.base_url),
        "maxResults": max, "startAt": start, "total": all.len(),
        "isLast": start + values.len() >= all.len(), "values": values,
    }))
    .into_response()
}

fn project_not_found(key: &str) -> ApiError {
    ApiError::message(
        StatusCode::NOT_FOUND,
        format!("No project could be found with key '{key}'."),
    )
}

pub async fn project(
    State(state): State<AppState>,
    Path(key): Path<String>,
) -> ApiResult<Response> {
    let site = state.lock_site();
    let p = site
        .catalog
        .project(&key)
        .ok_or_else(|| project_not_found(&key))?;
    Ok(axum::Json(project_detail(&site.catalog, &site.base_url, p)).into_response())
}

pub async fn myself(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
) -> ApiResult<Response> {
    let site = state.lock_site();
    let user = site
        .catalog
        .user(&caller.account_id)
        .ok_or_else(|| ApiError::message(StatusCode::NOT_FOUND, "User not found"))?; // [U]
    let mut v = render::user(&site.base_url, user);
    v["locale"] = json!("en_US");
    v["groups"] = json!({"size": 1, "items": []});
    v["applicationRoles"] = json!({"size": 1, "items": []});
    v["expand"] = json!("groups,applicationRoles");
    Ok(axum::Json(v).into_response())
}

pub async fn createmeta_types(
    State(state): State<AppState>,
    Path(key): Path<String>,
    params: Params,
) -> ApiResult<Response> {
    let (start, max) = paging(&params, 50, 200);
    let site = state.lock_site();
    let p = site
        .catalog
        .project(&key)
        .ok_or_else(|| project_not_found(&key))?;
    let all: Vec<Value> = p
        .issue_type_ids
        .iter()
        .filter_map(|id| site.catalog.issue_type(id))
        .map(|t| render::issue_type(&site.base_url, t))
        .collect();
    let page: Vec<Value> = all.iter().skip(start).take(max).cloned().collect();
    Ok(axum::Json(
        json!({"issueTypes": page, "maxResults": max, "startAt": start, "total": all.len()}),
    )
    .into_response())
}

pub async fn createmeta_fields(
    State(state): State<AppState>,
    Path((key, type_id)): Path<(String, String)>,
    params: Params,
) -> ApiResult<Response> {
    let (start, max) = paging(&params, 50, 200);
    let site = state.lock_site();
    let p = site
        .catalog
        .project(&key)
        .ok_or_else(|| project_not_found(&key))?;
    let it = site
        .catalog
        .project_issue_type(p, &type_id)
        .filter(|t| t.id == type_id)
        // [U] wording.
        .ok_or_else(|| {
            ApiError::message(
                StatusCode::NOT_FOUND,
                "Issue type with id '".to_string() + &type_id + "' does not exist.",
            )
        })?;
    let mut all = vec![
        json!({"required": true, "schema": {"type": "project", "system": "project"}, "name": "Project", "key": "project", "fieldId": "project", "hasDefaultValue": false, "operations": ["set"]}),
        json!({"required": true, "schema": {"type": "issuetype", "system": "issuetype"}, "name": "Issue Type", "key": "issuetype", "fieldId": "issuetype", "hasDefaultValue": false, "operations": []}),
    ];
    for f in site.catalog.project_fields(&p.key) {
        if matches!(f.kind, FieldKind::ReadOnly) {
            continue;
        }
        let details = render::field_details(&site.catalog, f);
        let mut v = json!({
            "required": f.id == "summary" || (f.id == "parent" && it.subtask),
            "schema": details["schema"],
            "name": f.name,
            "key": f.id,
            "fieldId": f.id,
            "hasDefaultValue": f.id == "priority",
            "operations": if f.kind == FieldKind::Labels { json!(["add", "set", "remove"]) } else { json!(["set"]) },
        });
        if f.kind == FieldKind::Select {
            v["allowedValues"] = json!(f.options.iter().map(|o| json!({
                "self": format!("{}/rest/api/3/customFieldOption/{}", site.base_url, o.id), "value": o.value, "id": o.id,
            })).collect::<Vec<_>>());
        }
        if f.kind == FieldKind::Priority {
            v["allowedValues"] = json!(
                site.catalog
                    .priorities
                    .iter()
                    .map(|pr| render::priority(&site.base_url, pr))
                    .collect::<Vec<_>>()
            );
        }
        all.push(v);
    }
    let page: Vec<Value> = all.iter().skip(start).take(max).cloned().collect();
    Ok(
        axum::Json(
            json!({"fields": page, "maxResults": max, "startAt": start, "total": all.len()}),
        )
        .into_response(),
    )
}
