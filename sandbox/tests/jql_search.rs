//! `/search/jql` semantics without HTTP: token paging, the unbounded rule, request limits, and
//! the indexing lag that hides fresh writes unless reconciled.

use std::time::Duration;

use chrono::{DateTime, TimeDelta, TimeZone, Utc};
use sfjira_sandbox::jira::jql::{FieldResolver, JqlIssue};
use sfjira_sandbox::jira::search::{SearchError, SearchRequest, run_search};

#[derive(Debug)]
struct Issue {
    id: u64,
    key: String,
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
        "SF"
    }
    fn issue_type(&self) -> &str {
        "Task"
    }
    fn status(&self) -> &str {
        "To Do"
    }
    fn labels(&self) -> &[String] {
        &[]
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

struct Site;
impl FieldResolver for Site {
    fn custom_field_id(&self, _: &str) -> Option<String> {
        None
    }
}

fn now() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 3, 10, 12, 0, 0).unwrap()
}

fn site(n: u64) -> Vec<Issue> {
    (1..=n)
        .map(|i| Issue {
            id: 10000 + i,
            key: format!("SF-{i}"),
            updated: now() - TimeDelta::hours(1) - TimeDelta::seconds(i as i64),
        })
        .collect()
}

fn req(jql: &str) -> SearchRequest {
    SearchRequest {
        jql: jql.into(),
        ..Default::default()
    }
}

const LAG: Duration = Duration::from_secs(30);

#[test]
fn pages_through_120_issues_50_at_a_time() {
    let issues = site(120);
    let mut r = req("project = SF ORDER BY key ASC");
    r.max_results = Some(50);
    let mut sizes = Vec::new();
    let mut seen = Vec::new();
    loop {
        let page = run_search(&issues, &Site, &r, now(), LAG).unwrap();
        sizes.push(page.issues.len());
        seen.extend(page.issues.iter().map(|i| i.id));
        assert_eq!(page.is_last, page.next_page_token.is_none());
        if page.is_last {
            break;
        }
        r.next_page_token = page.next_page_token;
    }
    assert_eq!(sizes, [50, 50, 20]);
    assert_eq!(seen, (10001..=10120).collect::<Vec<_>>());
}

#[test]
fn default_page_is_50_and_rich_fields_page_is_smaller() {
    let issues = site(120);
    let page = run_search(&issues, &Site, &req("project = SF"), now(), LAG).unwrap();
    assert_eq!(page.issues.len(), 50);
    assert!(!page.is_last);
    let mut r = req("project = SF");
    r.max_results = Some(5000);
    r.fields = vec!["*all".into()];
    assert_eq!(
        run_search(&issues, &Site, &r, now(), LAG)
            .unwrap()
            .issues
            .len(),
        100
    );
}

#[test]
fn foreign_expired_or_garbage_tokens_are_400() {
    let issues = site(120);
    let first = run_search(&issues, &Site, &req("project = SF"), now(), LAG).unwrap();
    let token = first.next_page_token.unwrap();

    let mut other = req("project = SF AND status = \"To Do\"");
    other.next_page_token = Some(token.clone());
    let e = run_search(&issues, &Site, &other, now(), LAG).unwrap_err();
    assert_eq!(e, SearchError::InvalidToken);
    assert_eq!(e.status().as_u16(), 400);
    assert!(e.body()["errorMessages"][0].is_string());
    assert_eq!(e.body()["errors"], serde_json::json!({}));

    let mut garbage = req("project = SF");
    garbage.next_page_token = Some("not-a-token".into());
    assert_eq!(
        run_search(&issues, &Site, &garbage, now(), LAG).unwrap_err(),
        SearchError::InvalidToken
    );

    // Tokens "will expire in 7 days".
    let mut late = req("project = SF");
    late.next_page_token = Some(token);
    let later = now() + TimeDelta::days(8);
    assert_eq!(
        run_search(&issues, &Site, &late, later, LAG).unwrap_err(),
        SearchError::InvalidToken
    );
}

#[test]
fn unbounded_and_invalid_requests_are_400() {
    let issues = site(3);
    for jql in ["", "ORDER BY key DESC"] {
        let e = run_search(&issues, &Site, &req(jql), now(), LAG).unwrap_err();
        assert_eq!(e.status().as_u16(), 400);
        assert_eq!(
            e.body(),
            serde_json::json!({"errorMessages": ["Unbounded JQL queries are not allowed here. Please add a search restriction to your query."], "errors": {}})
        );
    }
    let mut r = req("project = SF");
    r.max_results = Some(0);
    assert_eq!(
        run_search(&issues, &Site, &r, now(), LAG).unwrap_err(),
        SearchError::MaxResults(0)
    );
    r.max_results = Some(5001);
    assert!(run_search(&issues, &Site, &r, now(), LAG).is_err());
    let mut r = req("project = SF");
    r.reconcile_issues = (0..51).collect();
    assert_eq!(
        run_search(&issues, &Site, &r, now(), LAG).unwrap_err(),
        SearchError::TooManyReconcile(51)
    );
    let e = run_search(&issues, &Site, &req("project = "), now(), LAG).unwrap_err();
    assert_eq!(
        e.body()["errorMessages"][0],
        "Error in JQL Query: Expecting either a value, list or function before the end of the query."
    );
}

#[test]
fn indexing_lag_hides_a_fresh_update_unless_reconciled() {
    let mut issues = site(3);
    issues[1].updated = now() - TimeDelta::seconds(5); // SF-2 was just edited
    let found = |r: &SearchRequest| -> Vec<u64> {
        run_search(&issues, &Site, r, now(), LAG)
            .unwrap()
            .issues
            .iter()
            .map(|i| i.id)
            .collect()
    };
    let mut r = req("updated >= -10m");
    assert_eq!(found(&r), Vec::<u64>::new());
    assert_eq!(found(&req("project = SF ORDER BY key")), [10001, 10003]);
    r.reconcile_issues = vec![10002];
    assert_eq!(found(&r), [10002]);
    // Once the lag has passed, search sees it without help.
    let page = run_search(
        &issues,
        &Site,
        &req("updated >= -10m"),
        now() + TimeDelta::seconds(31),
        LAG,
    )
    .unwrap();
    assert_eq!(
        page.issues.iter().map(|i| i.id).collect::<Vec<_>>(),
        [10002]
    );
}
