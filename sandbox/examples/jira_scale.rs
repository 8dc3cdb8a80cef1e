//! How the Jira sandbox's per-request cost grows with the size of the site: a timing report,
//! not a test (speed is never asserted; `helper-rules.md`). It fills one in-process site with
//! issues through the real router (`POST /rest/api/3/issue/bulk`, 50 per call, every tenth
//! issue a sub-task so the `subtasks` field has something to list) and times, at a small and at
//! a large site, bulk creates and a few `/search/jql` pages. A large/small ratio near 1 means
//! the cost does not grow with the number of issues.
//!
//! ```text
//! cargo run --release -p sfjira-sandbox --example jira_scale            # 1 000 vs 30 000
//! cargo run --release -p sfjira-sandbox --example jira_scale -- 500 5000
//! ```

use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Body;
use axum::http::{Request, StatusCode};
use base64::Engine;
use serde_json::{Value, json};
use sfjira_sandbox::clock::SandboxClock;
use sfjira_sandbox::jira::config::JiraConfig;
use sfjira_sandbox::jira::{app, spawn_for_tests};
use tower::ServiceExt;

const BULK: usize = 50;
/// Bulk calls timed at each checkpoint (the creates/s figure).
const TIMED_BULKS: usize = 10;
/// Calls per search query at each checkpoint; the median is reported.
const SEARCH_RUNS: usize = 15;

struct Client {
    router: Router,
    auth: String,
}

impl Client {
    async fn call(&self, method: &str, path: &str, body: Option<Value>) -> (StatusCode, Value) {
        let req = Request::builder()
            .method(method)
            .uri(path)
            .header("authorization", &self.auth)
            .header("content-type", "application/json")
            .body(match body {
                Some(b) => Body::from(b.to_string()),
                None => Body::empty(),
            })
            .expect("request builds");
        let resp = self
            .router
            .clone()
            .oneshot(req)
            .await
            .expect("router answers");
        let status = resp.status();
        let bytes = axum::body::to_bytes(resp.into_body(), usize::MAX)
            .await
            .expect("body read");
        (
            status,
            serde_json::from_slice(&bytes).unwrap_or(Value::Null),
        )
    }
}

/// Creates issues up to `target` (numbered from `have`), 50 per bulk call; returns how many exist.
async fn fill(client: &Client, mut have: usize, target: usize, parents: &mut Vec<String>) -> usize {
    while have < target {
        let n = BULK.min(target - have);
        let updates: Vec<Value> = (0..n)
            .map(|i| {
                let number = have + i;
                match parents.last() {
                    Some(parent) if number % 10 == 9 => json!({"fields": {
                        "project": {"key": "PROJ"}, "issuetype": {"name": "Sub-task"},
                        "summary": format!("sub-task {number}"), "parent": {"key": parent}}}),
                    _ => json!({"fields": {
                        "project": {"key": "PROJ"}, "issuetype": {"name": "Task"},
                        "summary": format!("task {number}"), "labels": [format!("l{}", number % 7)]}}),
                }
            })
            .collect();
        let (status, body) = client
            .call(
                "POST",
                "/rest/api/3/issue/bulk",
                Some(json!({"issueUpdates": updates})),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        let created = body["issues"].as_array().expect("issues").len();
        assert_eq!(created, n, "{body}");
        if let Some(key) = body["issues"][0]["key"].as_str() {
            parents.push(key.to_string());
        }
        have += n;
    }
    have
}

/// Fills up to `target`, timing the last `TIMED_BULKS` bulk calls; returns creates/s.
async fn timed_fill(
    client: &Client,
    have: usize,
    target: usize,
    parents: &mut Vec<String>,
) -> (usize, f64) {
    let have = fill(client, have, target - TIMED_BULKS * BULK, parents).await;
    let started = Instant::now();
    let have = fill(client, have, target, parents).await;
    let rate = (TIMED_BULKS * BULK) as f64 / started.elapsed().as_secs_f64();
    (have, rate)
}

const QUERIES: [(&str, &str); 4] = [
    (
        "project page (default order, 50, summary+status)",
        "jql=project%20%3D%20PROJ&maxResults=50&fields=summary,status",
    ),
    (
        "poller page (ORDER BY updated ASC, 50, *all)",
        "jql=project%20%3D%20%22PROJ%22%20AND%20updated%20%3E%3D%20%22-60m%22%20ORDER%20BY%20updated%20ASC&maxResults=50&fields=*all",
    ),
    (
        "one key (key = PROJ-500, *all)",
        "jql=key%20%3D%20PROJ-500&fields=*all",
    ),
    (
        "labels = l3 (100, id only)",
        "jql=project%20%3D%20PROJ%20AND%20labels%20%3D%20l3&maxResults=100",
    ),
];

/// Median latency of each query.
async fn time_searches(client: &Client) -> Vec<Duration> {
    let mut out = Vec::new();
    for (_, query) in QUERIES {
        let mut runs = Vec::new();
        for _ in 0..SEARCH_RUNS {
            let started = Instant::now();
            let (status, body) = client
                .call("GET", &format!("/rest/api/3/search/jql?{query}"), None)
                .await;
            runs.push(started.elapsed());
            assert_eq!(status, StatusCode::OK, "{body}");
            assert!(
                !body["issues"].as_array().expect("issues").is_empty(),
                "{query}: {body}"
            );
        }
        runs.sort();
        out.push(runs[runs.len() / 2]);
    }
    out
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1).map(|a| a.parse::<usize>());
    let small = args.next().transpose()?.unwrap_or(1_000);
    let large = args.next().transpose()?.unwrap_or(30_000);
    anyhow::ensure!(
        TIMED_BULKS * BULK <= small && small < large,
        "sizes: {} <= small < large",
        TIMED_BULKS * BULK
    );

    let mut config = JiraConfig::default();
    config.rate_limits.enabled = false;
    let site = spawn_for_tests(config, SandboxClock::real_time()).await?;
    let token =
        base64::engine::general_purpose::STANDARD.encode("sfjira@example.com:sandbox-token");
    let client = Client {
        router: app::router(site.state.clone()),
        auth: format!("Basic {token}"),
    };
    let mut parents = Vec::new();

    let started = Instant::now();
    let (have, small_rate) = timed_fill(&client, 0, small, &mut parents).await;
    let small_search = time_searches(&client).await;
    let at_small = have;

    let (have, large_rate) = timed_fill(&client, have, large, &mut parents).await;
    let large_search = time_searches(&client).await;
    let total = started.elapsed();

    println!("jira_scale: {have} issues created in {total:.1?}");
    println!(
        "{:<55} {:>12} {:>12} {:>8}",
        "",
        format!("@{at_small}"),
        format!("@{have}"),
        "ratio"
    );
    println!(
        "{:<55} {:>12.0} {:>12.0} {:>8.2}",
        "bulk creates/s (last 10 calls of 50 before the mark)",
        small_rate,
        large_rate,
        small_rate / large_rate
    );
    for (((name, _), s), l) in QUERIES.iter().zip(&small_search).zip(&large_search) {
        println!(
            "{:<55} {:>12} {:>12} {:>8.2}",
            format!("search ms: {name}"),
            format!("{:.2}", s.as_secs_f64() * 1e3),
            format!("{:.2}", l.as_secs_f64() * 1e3),
            l.as_secs_f64() / s.as_secs_f64()
        );
    }
    Ok(())
}
