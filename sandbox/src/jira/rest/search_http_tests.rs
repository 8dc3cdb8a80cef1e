//! The key shortcut of `/search/jql` (only the named issues are tested) finds exactly what a
//! test of every issue finds, for keys in any case, ids, unknown keys, and ANDed clauses.

use chrono::Utc;
use serde_json::json;

use super::{SearchView, SiteResolver, key_candidates};
use crate::jira::search::{SearchPlan, SearchRequest};
use crate::jira::site::ops::IssueWrite;
use crate::jira::site::seed::{self, INTEGRATION_ACCOUNT};
use crate::jira::site::{IssueLimits, Site};

#[test]
fn key_shortcut_matches_a_full_scan() {
    let mut site = Site::new(
        seed::catalog(),
        "http://sandbox".into(),
        IssueLimits::default(),
        None,
    )
    .unwrap();
    let now = Utc::now();
    for n in 0..12 {
        let project = if n % 3 == 0 { "TEAM" } else { "PROJ" };
        let write = IssueWrite::from_body(&json!({"fields": {
            "project": {"key": project}, "issuetype": {"name": "Task"}, "summary": format!("t{n}")}}));
        site.create_issue(INTEGRATION_ACCOUNT, &write, None, now)
            .unwrap();
    }
    let later = now + chrono::TimeDelta::minutes(1);
    let resolver = SiteResolver {
        site: &site,
        caller: None,
    };
    let ids = |page: Vec<SearchView>| page.iter().map(|v| v.issue.id).collect::<Vec<_>>();
    let mut found = 0;
    for (jql, narrowed) in [
        ("key = PROJ-2", true),
        ("key = proj-2", true),
        ("issuekey in (PROJ-1, TEAM-2, 10003, NOPE-9)", true),
        ("key = PROJ-3 AND project = PROJ", true),
        (
            "project = TEAM AND key in (TEAM-1, PROJ-1) ORDER BY key DESC",
            true,
        ),
        ("key = PROJ-3 AND project = TEAM", true),
        ("key = PROJ-1 OR key = PROJ-2", false),
        ("key != PROJ-1", false),
    ] {
        let req = SearchRequest {
            jql: jql.into(),
            max_results: Some(2),
            ..Default::default()
        };
        let plan = SearchPlan::new(&resolver, &req, later, std::time::Duration::ZERO).unwrap();
        let every = site
            .state
            .issues
            .values()
            .rev()
            .map(|i| SearchView::new(&site, i));
        let (full, full_token, full_last) = plan.page(every, true);
        found += full.len();
        let candidates = key_candidates(&site, plan.query());
        assert_eq!(candidates.is_some(), narrowed, "{jql}");
        let Some(candidates) = candidates else {
            continue;
        };
        let named = candidates
            .iter()
            .rev()
            .filter_map(|id| site.state.issues.get(id))
            .map(|i| SearchView::new(&site, i));
        let (page, token, is_last) = plan.page(named, true);
        assert_eq!(ids(page), ids(full), "{jql}");
        assert_eq!((token, is_last), (full_token, full_last), "{jql}");
    }
    assert!(found >= 8, "the queries hit issues ({found})");
}
