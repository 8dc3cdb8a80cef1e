//! Search and incremental feeds over HTTP: `GET`/`POST /search/jql` on J2's
//! [`crate::jira::search::SearchPlan`], the retired `GET`/`POST /search` (410, reference §3.7),
//! and `GET /worklog/updated|deleted?since=` plus `POST /worklog/list` (reference §3.5).
//!
//! The site model reaches the JQL engine through [`SearchView`] (one issue, with the names JQL
//! compares) and [`SiteResolver`] (field names → ids, value existence, `currentUser()`).

use std::cell::OnceCell;
use std::collections::BTreeSet;

use axum::Extension;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, TimeDelta, Utc};
use serde_json::{Value, json};

use super::{Params, json_body};
use crate::jira::adf;
use crate::jira::app::AppState;
use crate::jira::auth::Caller;
use crate::jira::error::{ApiError, ApiResult};
use crate::jira::jql::{CustomFieldKind, FieldResolver, JqlIssue, Query};
use crate::jira::search::{SearchPlan, SearchRequest};
use crate::jira::site::Site;
use crate::jira::site::catalog::FieldKind;
use crate::jira::site::issue::Issue;
use crate::jira::site::render::{Expand, FieldSelection};

/// The recorded body of the removed search API (reference §3.7). Note: no `errors` key.
pub const SEARCH_REMOVED: &str = "The requested API has been removed. Please migrate to the /rest/api/3/search/jql API. A full migration guideline is available at https://developer.atlassian.com/changelog/#CHANGE-2046";

pub async fn retired() -> Response {
    (
        StatusCode::GONE,
        axum::Json(json!({"errorMessages": [SEARCH_REMOVED]})),
    )
        .into_response()
}

/// An issue as JQL sees it. Cheap to make, since search makes one for every issue of the
/// site: names are borrowed from the catalog and looked up, like labels, only when a clause
/// or the ORDER BY asks for them.
pub struct SearchView<'a> {
    pub issue: &'a Issue,
    site: &'a Site,
    issue_type: OnceCell<&'a str>,
    status: OnceCell<&'a str>,
    labels: OnceCell<Vec<String>>,
}

impl<'a> SearchView<'a> {
    pub fn new(site: &'a Site, issue: &'a Issue) -> Self {
        SearchView {
            issue,
            site,
            issue_type: OnceCell::new(),
            status: OnceCell::new(),
            labels: OnceCell::new(),
        }
    }
}

impl JqlIssue for SearchView<'_> {
    fn id(&self) -> u64 {
        self.issue.id
    }
    fn key(&self) -> &str {
        &self.issue.key
    }
    fn project_key(&self) -> &str {
        &self.issue.project_key
    }
    fn issue_type(&self) -> &str {
        self.issue_type.get_or_init(|| {
            self.site
                .catalog
                .issue_type(&self.issue.issue_type_id)
                .map(|t| t.name.as_str())
                .unwrap_or_default()
        })
    }
    fn status(&self) -> &str {
        self.status.get_or_init(|| {
            self.site
                .catalog
                .status(&self.issue.status_id)
                .map(|s| s.name.as_str())
                .unwrap_or_default()
        })
    }
    fn labels(&self) -> &[String] {
        self.labels.get_or_init(|| self.issue.labels())
    }
    fn assignee(&self) -> Option<&str> {
        self.issue.text_field("assignee")
    }
    fn reporter(&self) -> Option<&str> {
        self.issue.text_field("reporter")
    }
    fn custom_field_text(&self, field_id: &str) -> Option<String> {
        let def = self.site.catalog.field(field_id)?;
        let v = self.issue.fields.get(field_id)?;
        match def.kind {
            FieldKind::Select => def
                .options
                .iter()
                .find(|o| Some(o.id.as_str()) == v.as_str())
                .map(|o| o.value.clone()),
            FieldKind::RichText => Some(adf::plain_text(v)),
            _ => v
                .as_str()
                .map(str::to_string)
                .or_else(|| Some(v.to_string())),
        }
    }
    fn created(&self) -> DateTime<Utc> {
        self.issue.created
    }
    fn updated(&self) -> DateTime<Utc> {
        self.issue.updated
    }
}

/// The site's vocabulary for JQL, for one caller.
pub struct SiteResolver<'a> {
    pub site: &'a Site,
    pub caller: Option<String>,
}

impl FieldResolver for SiteResolver<'_> {
    fn custom_field_id(&self, name: &str) -> Option<String> {
        let f = self
            .site
            .catalog
            .fields
            .iter()
            .find(|f| f.is_custom() && f.name.eq_ignore_ascii_case(name))?;
        Some(f.id.clone())
    }
    fn custom_field_kind(&self, field_id: &str) -> Option<CustomFieldKind> {
        let f = self
            .site
            .catalog
            .field(field_id)
            .filter(|f| f.is_custom())?;
        Some(match f.kind {
            FieldKind::Text | FieldKind::RichText => CustomFieldKind::Text,
            _ => CustomFieldKind::Exact,
        })
    }
    fn value_exists(&self, field: &str, value: &str) -> bool {
        let c = &self.site.catalog;
        match field {
            "project" => c.project(value).is_some(),
            "status" => c
                .statuses
                .iter()
                .any(|s| s.name.eq_ignore_ascii_case(value) || s.id == value),
            "issuetype" => c
                .issue_types
                .iter()
                .any(|t| t.name.eq_ignore_ascii_case(value) || t.id == value),
            "assignee" | "reporter" => c.find_user(value).is_some(),
            _ => true,
        }
    }
    fn current_user(&self) -> Option<String> {
        self.caller.clone()
    }
}

fn comma_list(s: &str) -> Vec<String> {
    s.split(',')
        .map(str::trim)
        .filter(|x| !x.is_empty())
        .map(str::to_string)
        .collect()
}

fn run(
    state: &AppState,
    caller: &Caller,
    req: SearchRequest,
    expand: Option<String>,
) -> ApiResult<Response> {
    let now = state.clock.now();
    let sel = FieldSelection::parse(req.fields.iter().map(String::as_str));
    let expand = Expand::parse(expand.as_deref());
    let body = {
        let site = state.lock_site();
        let resolver = SiteResolver {
            site: &site,
            caller: Some(caller.account_id.clone()),
        };
        let plan = match SearchPlan::new(&resolver, &req, now, state.search_lag) {
            Ok(plan) => plan,
            Err(e) => return Ok(e.into_response()),
        };
        // Newest first (by descending id), so a query without ORDER BY stops testing issues
        // once its page is full. A query that names its keys (`key = X`, `key IN (…)`, alone
        // or ANDed) only tests those issues. Only the page's issues are rendered.
        let (page, next_page_token, is_last) = match key_candidates(&site, plan.query()) {
            Some(ids) => {
                let views = ids
                    .iter()
                    .rev()
                    .filter_map(|id| site.state.issues.get(id))
                    .map(|i| SearchView::new(&site, i));
                plan.page(views, true)
            }
            None => {
                let views = site
                    .state
                    .issues
                    .values()
                    .rev()
                    .map(|i| SearchView::new(&site, i));
                plan.page(views, true)
            }
        };
        let issues: Vec<Value> = page
            .iter()
            .map(|v| {
                if sel.is_empty() && !expand.changelog {
                    json!({"id": v.issue.id.to_string()})
                } else {
                    site.render_issue(v.issue, &sel, expand)
                }
            })
            .collect();
        let mut body = json!({"issues": issues});
        if let Some(t) = next_page_token {
            body["nextPageToken"] = json!(t);
        }
        body["isLast"] = json!(is_last);
        body
    };
    // Serialised after the site lock is released.
    Ok(axum::Json(body).into_response())
}

/// The only issues a query naming its keys (`key = X`, `key IN (…)`, alone or ANDed) can
/// match: those keys (case-insensitive) and ids, as the key clause compares them. `None` when
/// any issue may match.
fn key_candidates(site: &Site, query: &Query) -> Option<BTreeSet<u64>> {
    let literals = query.key_literals()?;
    Some(
        literals
            .iter()
            .flat_map(|t| [site.state.id_of_key(t), t.parse::<u64>().ok()])
            .flatten()
            .collect(),
    )
}

fn max_results(v: Option<&Value>) -> ApiResult<Option<u32>> {
    match v {
        None | Some(Value::Null) => Ok(None),
        Some(v) => {
            let n = v
                .as_i64()
                .or_else(|| v.as_str().and_then(|s| s.parse().ok()));
            // Out-of-range values (0, negative, > 5000) are the search module's 400.
            n.map(|n| Some(n.clamp(0, u32::MAX as i64) as u32))
                .ok_or_else(|| ApiError::bad_request("Invalid request payload. Refer to the REST API documentation and try again."))
        }
    }
}

pub async fn search_get(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    params: Params,
) -> ApiResult<Response> {
    let req = SearchRequest {
        jql: params.get("jql").cloned().unwrap_or_default(),
        next_page_token: params.get("nextPageToken").cloned(),
        max_results: max_results(params.get("maxResults").map(|s| json!(s)).as_ref())?,
        fields: params
            .get("fields")
            .map(|f| comma_list(f))
            .unwrap_or_default(),
        reconcile_issues: params
            .get("reconcileIssues")
            .map(|r| {
                comma_list(r)
                    .iter()
                    .filter_map(|x| x.parse().ok())
                    .collect()
            })
            .unwrap_or_default(),
    };
    run(&state, &caller, req, params.get("expand").cloned())
}

pub async fn search_post(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    body: Bytes,
) -> ApiResult<Response> {
    let b = json_body(&body)?;
    let strings = |k: &str| -> Vec<String> {
        match b.get(k) {
            Some(Value::Array(a)) => a
                .iter()
                .filter_map(|x| x.as_str().map(str::to_string))
                .collect(),
            Some(Value::String(s)) => comma_list(s),
            _ => Vec::new(),
        }
    };
    let req = SearchRequest {
        jql: b
            .get("jql")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string(),
        next_page_token: b
            .get("nextPageToken")
            .and_then(Value::as_str)
            .map(str::to_string),
        max_results: max_results(b.get("maxResults"))?,
        fields: strings("fields"),
        reconcile_issues: b
            .get("reconcileIssues")
            .and_then(Value::as_array)
            .map(|a| a.iter().filter_map(Value::as_u64).collect())
            .unwrap_or_default(),
    };
    let expand = match b.get("expand") {
        Some(Value::String(s)) => Some(s.clone()),
        Some(Value::Array(a)) => Some(
            a.iter()
                .filter_map(Value::as_str)
                .collect::<Vec<_>>()
                .join(","),
        ),
        _ => None,
    };
    run(&state, &caller, req, expand)
}

/// Page size of the worklog feeds (reference §3.5).
const FEED_PAGE: usize = 1000;

/// A `ChangedWorklogs` page. Items changed in the minute before the request are left out, as
/// Jira does, so a client advancing `since` to `until` cannot skip a late commit.
fn feed(
    state: &AppState,
    params: &Params,
    path: &str,
    mut items: Vec<(u64, DateTime<Utc>)>,
) -> Response {
    let since_ms = params
        .get("since")
        .and_then(|s| s.parse::<i64>().ok())
        .unwrap_or(0);
    let cutoff = state.clock.now() - TimeDelta::minutes(1);
    items.retain(|(_, t)| t.timestamp_millis() >= since_ms && *t <= cutoff);
    items.sort_by_key(|(id, t)| (*t, *id));
    let last_page = items.len() <= FEED_PAGE;
    items.truncate(FEED_PAGE);
    let until = items
        .last()
        .map(|(_, t)| t.timestamp_millis())
        .unwrap_or(since_ms);
    let base = state.lock_site().base_url.clone();
    let values: Vec<Value> = items
        .iter()
        .map(|(id, t)| json!({"worklogId": id, "updatedTime": t.timestamp_millis(), "properties": []}))
        .collect();
    let mut body = json!({
        "values": values,
        "since": since_ms,
        "until": until,
        "self": format!("{base}/rest/api/3/{path}?since={since_ms}"),
        "lastPage": last_page,
    });
    if !last_page {
        body["nextPage"] = json!(format!("{base}/rest/api/3/{path}?since={until}"));
    }
    axum::Json(body).into_response()
}

pub async fn worklogs_updated(State(state): State<AppState>, params: Params) -> Response {
    let items = {
        let site = state.lock_site();
        site.state
            .issues
            .values()
            .flat_map(|i| i.worklogs.iter().map(|w| (w.id, w.updated)))
            .collect()
    };
    feed(&state, &params, "worklog/updated", items)
}

pub async fn worklogs_deleted(State(state): State<AppState>, params: Params) -> Response {
    let items = {
        let site = state.lock_site();
        site.state
            .deleted_worklogs
            .iter()
            .map(|d| (d.worklog_id, d.deleted_at))
            .collect()
    };
    feed(&state, &params, "worklog/deleted", items)
}

/// `POST /worklog/list` `{"ids":[…]}` (≤ 1000).
pub async fn worklog_list(State(state): State<AppState>, body: Bytes) -> ApiResult<Response> {
    let b = json_body(&body)?;
    let ids: Vec<u64> = b
        .get("ids")
        .and_then(Value::as_array)
        .map(|a| a.iter().filter_map(Value::as_u64).collect())
        .unwrap_or_default();
    if ids.len() > 1000 {
        // [U] wording.
        return Err(ApiError::bad_request(
            "The number of worklogs is limited to 1000.",
        ));
    }
    let site = state.lock_site();
    let out: Vec<Value> = site
        .state
        .issues
        .values()
        .flat_map(|i| i.worklogs.iter())
        .filter(|w| ids.contains(&w.id))
        .map(|w| crate::jira::site::render::worklog(&site.catalog, &site.base_url, w))
        .collect();
    Ok(axum::Json(out).into_response())
}

#[cfg(test)]
#[path = "search_http_tests.rs"]
mod tests;
