//! `/rest/api/3/search/jql` without the HTTP: validates the request, runs the JQL over the
//! site's issues, and pages with opaque tokens. J1's handler parses the request, calls
//! [`run_search`], and renders the issues' fields.
//!
//! Rules (jira-api.md §3.7, https://developer.atlassian.com/cloud/jira/platform/rest/v3/api-group-issue-search/#api-rest-api-3-search-jql-get):
//! - `maxResults` defaults to 50 and must be 1..=5000; pages are smaller when many fields are
//!   asked for ("The greatest number of items returned per page is achieved when requesting `id`
//!   or `key` only"): the sandbox caps such pages at [`RICH_PAGE_MAX`].
//! - no `total`; `isLast`; `nextPageToken` absent on the last page, valid 7 days, tied to its
//!   query: a token from another query, expired, or garbage is a 400.
//! - unbounded JQL (empty, or only ORDER BY) is a 400.
//! - `reconcileIssues` takes at most 50 ids.
//! - **eventual consistency** (https://developer.atlassian.com/cloud/jira/platform/search-and-reconcile/):
//!   the index trails writes. The sandbox's simplest faithful version: an issue whose `updated`
//!   is less than `indexing_lag` ago is not yet indexed, so search does not see it at all (it
//!   neither matches nor appears), unless its id is in `reconcileIssues`, which reads it
//!   consistently. Real Jira would still show the previous indexed state of an edited issue;
//!   hiding it is the stricter behaviour, and it is what breaks naive pollers the same way.

use std::time::Duration;

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};

use crate::jira::jql::{self, FieldResolver, JqlError, JqlIssue};

pub const DEFAULT_MAX_RESULTS: u32 = 50;
pub const MAX_RESULTS_LIMIT: u32 = 5000;
/// [U] page cap when fields beyond `id`/`key` are requested (Atlassian does not publish it).
pub const RICH_PAGE_MAX: u32 = 100;
pub const MAX_RECONCILE: usize = 50;
const TOKEN_LIFETIME: chrono::TimeDelta = chrono::TimeDelta::days(7);

#[derive(Debug, Clone, Default)]
pub struct SearchRequest {
    pub jql: String,
    pub next_page_token: Option<String>,
    pub max_results: Option<u32>,
    /// As requested (`fields=summary,status`); empty means the default, `id`.
    pub fields: Vec<String>,
    pub reconcile_issues: Vec<u64>,
}

#[derive(Debug)]
pub struct SearchPage<'a, I> {
    pub issues: Vec<&'a I>,
    pub next_page_token: Option<String>,
    pub is_last: bool,
}

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum SearchError {
    #[error("invalid JQL: {0}")]
    Jql(#[from] JqlError),
    #[error("unbounded JQL")]
    Unbounded,
    #[error("invalid nextPageToken")]
    InvalidToken,
    #[error("maxResults {0} outside 1..=5000")]
    MaxResults(u32),
    #[error("{0} reconcileIssues, at most 50 allowed")]
    TooManyReconcile(usize),
}

impl SearchError {
    pub fn status(&self) -> StatusCode {
        StatusCode::BAD_REQUEST
    }

    pub fn messages(&self) -> Vec<String> {
        match self {
            SearchError::Jql(e) => e.messages.clone(),
            SearchError::Unbounded => vec![
                "Unbounded JQL queries are not allowed here. Please add a search restriction to your query.".into(),
            ],
            // [U] the three sentences below: the real texts were not found; the statuses are real.
            SearchError::InvalidToken => vec!["The provided next page token is invalid or expired.".into()],
            SearchError::MaxResults(_) => vec!["The maxResults parameter must be between 1 and 5000.".into()],
            SearchError::TooManyReconcile(_) => {
                vec!["The number of issues to reconcile cannot exceed 50.".into()]
            }
        }
    }

    /// Jira's `ErrorCollection` body.
    pub fn body(&self) -> serde_json::Value {
        serde_json::json!({ "errorMessages": self.messages(), "errors": {} })
    }
}

impl IntoResponse for SearchError {
    fn into_response(self) -> Response {
        (self.status(), axum::Json(self.body())).into_response()
    }
}

/// Runs one page of a search over `issues` (the whole site, any order).
pub fn run_search<'a, I: JqlIssue>(
    issues: &'a [I],
    resolver: &dyn FieldResolver,
    req: &SearchRequest,
    now: DateTime<Utc>,
    indexing_lag: Duration,
) -> Result<SearchPage<'a, I>, SearchError> {
    let mut page_size = req.max_results.unwrap_or(DEFAULT_MAX_RESULTS);
    if !(1..=MAX_RESULTS_LIMIT).contains(&page_size) {
        return Err(SearchError::MaxResults(page_size));
    }
    if req.reconcile_issues.len() > MAX_RECONCILE {
        return Err(SearchError::TooManyReconcile(req.reconcile_issues.len()));
    }
    let rich = req
        .fields
        .iter()
        .any(|f| !matches!(f.trim(), "id" | "key" | ""));
    if rich {
        page_size = page_size.min(RICH_PAGE_MAX);
    }
    let query = jql::parse(&req.jql, resolver)?;
    if !query.is_bounded() {
        return Err(SearchError::Unbounded);
    }
    let fingerprint = fingerprint(&req.jql);
    let start = match &req.next_page_token {
        None => 0,
        Some(t) => decode_token(t, fingerprint, now).ok_or(SearchError::InvalidToken)?,
    };

    let lag = chrono::TimeDelta::from_std(indexing_lag).unwrap_or(chrono::TimeDelta::MAX);
    let indexed_before = now
        .checked_sub_signed(lag)
        .unwrap_or(DateTime::<Utc>::MIN_UTC);
    let mut hits: Vec<&I> = issues
        .iter()
        .filter(|i| i.updated() <= indexed_before || req.reconcile_issues.contains(&i.id()))
        .filter(|i| query.matches(*i, now))
        .collect();
    // [U] without ORDER BY, newest issue first; the id breaks ties so pages never overlap.
    hits.sort_by(|a, b| query.compare(*a, *b).then_with(|| b.id().cmp(&a.id())));

    let start = start.min(hits.len());
    let end = (start + page_size as usize).min(hits.len());
    let is_last = end >= hits.len();
    Ok(SearchPage {
        issues: hits[start..end].to_vec(),
        next_page_token: (!is_last).then(|| encode_token(fingerprint, end, now)),
        is_last,
    })
}

/// FNV-1a: a stable hash (unlike `DefaultHasher`, fixed across Rust versions) so tokens
/// survive a sandbox restart.
fn fingerprint(jql: &str) -> u64 {
    jql.trim().bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ b as u64).wrapping_mul(0x100_0000_01b3)
    })
}

fn encode_token(fingerprint: u64, offset: usize, now: DateTime<Utc>) -> String {
    let plain = format!("v1|{fingerprint:016x}|{offset}|{}", now.timestamp_millis());
    plain.bytes().map(|b| format!("{:02x}", b ^ 0x5a)).collect()
}

/// The offset a token points at, if it is well formed, made for this query and not expired.
fn decode_token(token: &str, fingerprint: u64, now: DateTime<Utc>) -> Option<usize> {
    if !token.len().is_multiple_of(2) || !token.is_ascii() {
        return None;
    }
    let bytes: Option<Vec<u8>> = (0..token.len())
        .step_by(2)
        .map(|i| {
            u8::from_str_radix(&token[i..i + 2], 16)
                .ok()
                .map(|b| b ^ 0x5a)
        })
        .collect();
    let plain = String::from_utf8(bytes?).ok()?;
    let mut parts = plain.split('|');
    let (v, fp, off, issued) = (parts.next()?, parts.next()?, parts.next()?, parts.next()?);
    let issued = DateTime::<Utc>::from_timestamp_millis(issued.parse().ok()?)?;
    (v == "v1"
        && parts.next().is_none()
        && u64::from_str_radix(fp, 16).ok()? == fingerprint
        && now - issued <= TOKEN_LIFETIME)
        .then_some(off.parse().ok()?)
}
