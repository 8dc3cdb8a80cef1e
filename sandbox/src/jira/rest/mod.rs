//! REST v3 handlers under `/rest/api/3` (and the OAuth endpoints), thin: parse the request,
//! call the site model through [`AppState::write`], render. One file per resource family:
//! [`issues`] (create, bulk, get, edit, delete), [`workflow`] (transitions, changelog),
//! [`comments`], [`worklogs`], [`links`] (properties, remote links), [`meta`] (fields, projects,
//! myself, createmeta), [`search_http`] (`/search/jql`, the retired `/search`, worklog feeds),
//! [`oauth_http`] (`/oauth/token`).

pub mod comments;
pub mod issues;
pub mod links;
pub mod meta;
pub mod oauth_http;
pub mod search_http;
pub mod workflow;
pub mod worklogs;

use std::collections::HashMap;

use axum::Router;
use axum::body::Bytes;
use axum::routing::{get, post};
use serde_json::Value;

use super::app::AppState;
use super::error::{ApiError, ApiResult};

/// Query parameters as a map (Jira ignores unknown ones).
pub type Params = axum::extract::Query<HashMap<String, String>>;

/// The routes below `/rest/api/3`.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/issue", post(issues::create))
        .route("/issue/bulk", post(issues::create_bulk))
        .route(
            "/issue/{issue}",
            get(issues::get).put(issues::edit).delete(issues::delete),
        )
        .route(
            "/issue/{issue}/transitions",
            get(workflow::list).post(workflow::transition),
        )
        .route("/issue/{issue}/changelog", get(workflow::changelog))
        .route(
            "/issue/{issue}/comment",
            get(comments::list).post(comments::add),
        )
        .route(
            "/issue/{issue}/comment/{id}",
            get(comments::get_one)
                .put(comments::update)
                .delete(comments::remove),
        )
        .route(
            "/issue/{issue}/worklog",
            get(worklogs::list).post(worklogs::add),
        )
        .route(
            "/issue/{issue}/worklog/{id}",
            get(worklogs::get_one)
                .put(worklogs::update)
                .delete(worklogs::remove),
        )
        .route("/issue/{issue}/properties", get(links::property_keys))
        .route(
            "/issue/{issue}/properties/{key}",
            get(links::get_property).put(links::put_property),
        )
        .route(
            "/issue/{issue}/remotelink",
            get(links::list_remote).post(links::upsert_remote),
        )
        .route(
            "/issue/createmeta/{project}/issuetypes",
            get(meta::createmeta_types),
        )
        .route(
            "/issue/createmeta/{project}/issuetypes/{type_id}",
            get(meta::createmeta_fields),
        )
        .route("/field", get(meta::fields))
        .route("/project", get(meta::projects))
        .route("/project/search", get(meta::project_search))
        .route("/project/{project}", get(meta::project))
        .route("/myself", get(meta::myself))
        .route(
            "/search",
            get(search_http::retired).post(search_http::retired),
        )
        .route(
            "/search/jql",
            get(search_http::search_get).post(search_http::search_post),
        )
        .route("/worklog/updated", get(search_http::worklogs_updated))
        .route("/worklog/deleted", get(search_http::worklogs_deleted))
        .route("/worklog/list", post(search_http::worklog_list))
}

/// `POST /oauth/token` and `GET /oauth/token/accessible-resources` (auth.atlassian.com and
/// api.atlassian.com in production; one listener here).
pub fn oauth_routes() -> Router<AppState> {
    Router::new()
        .route("/oauth/token", post(oauth_http::token))
        .route(
            "/oauth/token/accessible-resources",
            get(oauth_http::accessible_resources),
        )
}

/// A JSON request body; malformed JSON gets Jira's generic payload error.
pub fn json_body(bytes: &Bytes) -> ApiResult<Value> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok(Value::Object(Default::default()));
    }
    serde_json::from_slice(bytes).map_err(|_| {
        ApiError::bad_request(
            "Invalid request payload. Refer to the REST API documentation and try again.",
        )
    })
}

/// A boolean query flag (`true`/`false`, anything else = default).
pub fn flag(params: &HashMap<String, String>, name: &str, default: bool) -> bool {
    match params.get(name).map(|v| v.to_ascii_lowercase()) {
        Some(v) if v == "true" => true,
        Some(v) if v == "false" => false,
        _ => default,
    }
}

/// `startAt`/`maxResults` with defaults; negative or garbage values fall back.
pub fn paging(params: &HashMap<String, String>, default_max: usize, cap: usize) -> (usize, usize) {
    let start = params
        .get("startAt")
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let max = params
        .get("maxResults")
        .and_then(|v| v.parse().ok())
        .unwrap_or(default_max)
        .min(cap);
    (start, max)
}

/// Resolves an issue id or key, or the real 404.
pub fn issue_id(state: &AppState, id_or_key: &str) -> ApiResult<u64> {
    state
        .lock_site()
        .find_id(id_or_key)
        .ok_or_else(ApiError::issue_not_found)
}
