//! `/rest/api/3/search/jql` without the HTTP: validates the request, runs the JQL over the
//! site's issues, and pages with opaque tokens. J1's handler parses the request, makes a
//! [`SearchPlan`], lets it pick the page out of the site's issues, and renders only that page.
//! No issue is copied or rendered to be searched, and a query without ORDER BY stops at the
//! end of its page, so a search costs about the same at 50 000 issues as at 1 000 (for
//! ORDER BY queries: one cheap test per issue and a partial sort).
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
    let plan = SearchPlan::new(resolver, req, now, indexing_lag)?;
    let (issues, next_page_token, is_last) = plan.page(issues.iter(), false);
    Ok(SearchPage {
        issues,
        next_page_token,
        is_last,
    })
}

/// A validated request: the parsed query and where its page starts. Made once per request,
/// then [`SearchPlan::page`] picks the page out of the site's issues.
pub struct SearchPlan {
    query: jql::Query,
    fingerprint: u64,
    start: usize,
    page_size: usize,
    indexed_before: DateTime<Utc>,
    reconcile: Vec<u64>,
    now: DateTime<Utc>,
}

impl SearchPlan {
    /// Checks `maxResults`, `reconcileIssues`, the JQL and the page token (every 400 of the
    /// endpoint), without looking at any issue.
    pub fn new(
        resolver: &dyn FieldResolver,
        req: &SearchRequest,
        now: DateTime<Utc>,
        indexing_lag: Duration,
    ) -> Result<Self, SearchError> {
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
        Ok(SearchPlan {
            query,
            fingerprint,
            start,
            page_size: page_size as usize,
            indexed_before,
            reconcile: req.reconcile_issues.clone(),
            now,
        })
    }

    /// The parsed JQL.
    pub fn query(&self) -> &jql::Query {
        &self.query
    }

    /// The page of `issues` this request asked for, with the next token and `isLast`.
    ///
    /// `newest_first` says the caller yields issues by descending id, the order of a query
    /// without ORDER BY: then only the issues up to the end of the page (plus one, to know
    /// whether it is the last) are tested. Otherwise every issue is tested and only the first
    /// `start + maxResults` hits are put in order (a partial selection, not a full sort).
    /// Either way the page is exactly the slice a full sort would give.
    pub fn page<I: JqlIssue>(
        &self,
        issues: impl Iterator<Item = I>,
        newest_first: bool,
    ) -> (Vec<I>, Option<String>, bool) {
        let visible = |i: &I| {
            (i.updated() <= self.indexed_before || self.reconcile.contains(&i.id()))
                && self.query.matches(i, self.now)
        };
        let end = self.start.saturating_add(self.page_size);
        let (page, is_last, end) = if newest_first && !self.query.has_order() {
            let mut page: Vec<I> = issues
                .filter(visible)
                .skip(self.start)
                .take(self.page_size + 1)
                .collect();
            let is_last = page.len() <= self.page_size;
            page.truncate(self.page_size);
            (page, is_last, end)
        } else {
            // [U] without ORDER BY, newest issue first; the id breaks ties so pages never
            // overlap (and the order is total, so a partial selection equals a full sort).
            let order = |a: &I, b: &I| self.query.compare(a, b).then_with(|| b.id().cmp(&a.id()));
            let mut hits: Vec<I> = issues.filter(visible).collect();
            let total = hits.len();
            let end = end.min(total);
            if end < total {
                if end > 0 {
                    hits.select_nth_unstable_by(end - 1, order);
                }
                hits.truncate(end);
            }
            hits.sort_by(order);
            let page = hits.split_off(self.start.min(end));
            (page, end >= total, end)
        };
        let token = (!is_last).then(|| encode_token(self.fingerprint, end, self.now));
        (page, token, is_last)
    }
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

#[cfg(test)]
mod tests {
    //! The page a [`SearchPlan`] picks (early stop for newest-first, partial selection for
    //! ORDER BY) must be exactly the slice of the old full filter-and-sort, page after page.

    use super::*;

    struct Issue {
        id: u64,
        key: String,
        project: &'static str,
        labels: Vec<String>,
        updated: DateTime<Utc>,
    }

    impl JqlIssue for Issue {
        fn id(&self) -> u64 {
            self.id
        }
        fn key(&self) -> &str {
            &self.key
        }
        fn project_key(&self) -> &str {
            self.project
        }
        fn issue_type(&self) -> &str {
            "Task"
        }
        fn status(&self) -> &str {
            "To Do"
        }
        fn labels(&self) -> &[String] {
            &self.labels
        }
        fn assignee(&self) -> Option<&str> {
            None
        }
        fn reporter(&self) -> Option<&str> {
            None
        }
        fn custom_field_text(&self, _: &str) -> Option<String> {
            None
        }
        fn created(&self) -> DateTime<Utc> {
            self.updated
        }
        fn updated(&self) -> DateTime<Utc> {
            self.updated
        }
    }

    struct Names;
    impl FieldResolver for Names {
        fn custom_field_id(&self, _: &str) -> Option<String> {
            None
        }
    }

    fn issues(now: DateTime<Utc>) -> Vec<Issue> {
        (0..240u64)
            .map(|n| Issue {
                id: 10_000 + n,
                key: format!("{}-{}", if n % 3 == 0 { "SF" } else { "OPS" }, n + 1),
                project: if n % 3 == 0 { "SF" } else { "OPS" },
                labels: vec![format!("l{}", n % 5)],
                // Many equal timestamps, so the id tie-break decides.
                updated: now - chrono::TimeDelta::minutes(((n * 7) % 40) as i64 + 1),
            })
            .collect()
    }

    /// The pages of the old algorithm: every match, fully sorted, sliced.
    fn full_sort_ids(issues: &[Issue], jql: &str, now: DateTime<Utc>) -> Vec<u64> {
        let query = jql::parse(jql, &Names).unwrap();
        let mut hits: Vec<&Issue> = issues.iter().filter(|i| query.matches(*i, now)).collect();
        hits.sort_by(|a, b| query.compare(*a, *b).then_with(|| b.id.cmp(&a.id)));
        hits.iter().map(|i| i.id).collect()
    }

    fn walk(issues: &[Issue], jql: &str, page_size: u32, now: DateTime<Utc>) -> Vec<u64> {
        let mut req = SearchRequest {
            jql: jql.into(),
            max_results: Some(page_size),
            ..Default::default()
        };
        let mut out = Vec::new();
        loop {
            let plan = SearchPlan::new(&Names, &req, now, Duration::ZERO).unwrap();
            // The site's way: newest first.
            let (page, token, is_last) = plan.page(issues.iter().rev(), true);
            assert!(page.len() <= page_size as usize);
            out.extend(page.iter().map(|i| i.id));
            // The same request over issues in any order gives the same page.
            let shuffled = issues
                .iter()
                .filter(|i| i.id % 2 == 0)
                .chain(issues.iter().filter(|i| i.id % 2 == 1));
            let (again, token2, is_last2) = plan.page(shuffled, false);
            assert_eq!(
                page.iter().map(|i| i.id).collect::<Vec<_>>(),
                again.iter().map(|i| i.id).collect::<Vec<_>>(),
                "{jql}"
            );
            assert_eq!((token.is_some(), is_last), (token2.is_some(), is_last2));
            if is_last {
                assert!(token.is_none());
                return out;
            }
            req.next_page_token = token;
        }
    }

    #[test]
    fn pages_equal_a_full_sort() {
        let now = Utc::now();
        let issues = issues(now);
        for jql in [
            "project = SF",
            "project = OPS AND labels = l2",
            "labels in (l1, l3) ORDER BY updated ASC",
            "project = OPS ORDER BY updated DESC, key ASC",
            "updated >= -20m ORDER BY key DESC",
            "key in (SF-1, OPS-2, ops-3, 10007) ORDER BY updated ASC",
            "labels = nothing",
        ] {
            let expected = full_sort_ids(&issues, jql, now);
            for page_size in [1, 7, 50, 5000] {
                assert_eq!(
                    walk(&issues, jql, page_size, now),
                    expected,
                    "{jql} / {page_size}"
                );
            }
        }
    }
}
