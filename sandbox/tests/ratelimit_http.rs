//! The rate-limit middleware on a tiny axum router, driven over HTTP with reqwest: burst 429s,
//! per-issue write 429s, and the injectable 429 storm and 503.

use axum::Router;
use axum::routing::{get, put};
use sfjira_sandbox::clock::SandboxClock;
use sfjira_sandbox::jira::ratelimit::{Fault, RateLimitConfig, RateLimiter, enforce};

/// Serves a router behind the limiter; returns its base URL.
async fn serve(limiter: RateLimiter) -> String {
    let app = Router::new()
        .route("/rest/api/3/myself", get(|| async { "{}" }))
        .route(
            "/rest/api/3/issue/{key}",
            put(|| async { axum::http::StatusCode::NO_CONTENT }),
        )
        .layer(axum::middleware::from_fn_with_state(limiter, enforce));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    format!("http://{addr}")
}

/// A clock 1000× slower than wall time: buckets do not refill during a test.
fn frozen() -> SandboxClock {
    SandboxClock::new(0.001)
}

fn header<'a>(r: &'a reqwest::Response, name: &str) -> Option<&'a str> {
    r.headers().get(name).and_then(|v| v.to_str().ok())
}

#[tokio::test]
async fn a_burst_beyond_the_bucket_gets_429_with_all_headers() {
    let config = RateLimitConfig {
        get_per_second: 10.0,
        ..Default::default()
    };
    let base = serve(RateLimiter::new(config, frozen())).await;
    let client = reqwest::Client::new();
    for i in 0..10 {
        let r = client
            .get(format!("{base}/rest/api/3/myself"))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "request {i}");
        assert_eq!(header(&r, "x-ratelimit-limit"), Some("10"));
        assert_eq!(
            header(&r, "x-ratelimit-remaining"),
            Some((9 - i).to_string().as_str())
        );
    }
    let r = client
        .get(format!("{base}/rest/api/3/myself"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 429);
    assert_eq!(header(&r, "retry-after"), Some("1"));
    assert_eq!(header(&r, "x-ratelimit-limit"), Some("10"));
    assert_eq!(header(&r, "x-ratelimit-remaining"), Some("0"));
    assert_eq!(header(&r, "ratelimit-reason"), Some("jira-burst-based"));
    let reset = header(&r, "x-ratelimit-reset").unwrap();
    assert!(
        chrono::NaiveDateTime::parse_from_str(reset, "%Y-%m-%dT%H:%M:%SZ").is_ok(),
        "{reset}"
    );
    // Other endpoints have their own bucket.
    let r = client
        .put(format!("{base}/rest/api/3/issue/SF-1"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
}

#[tokio::test]
async fn the_21st_write_to_one_issue_in_2s_gets_the_per_issue_429() {
    let base = serve(RateLimiter::new(RateLimitConfig::default(), frozen())).await;
    let client = reqwest::Client::new();
    for i in 0..20 {
        let r = client
            .put(format!("{base}/rest/api/3/issue/SF-1"))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 204, "write {i}");
    }
    let r = client
        .put(format!("{base}/rest/api/3/issue/SF-1"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 429);
    assert_eq!(
        header(&r, "ratelimit-reason"),
        Some("jira-per-issue-on-write")
    );
    assert_eq!(header(&r, "x-ratelimit-limit"), Some("20"));
    assert_eq!(header(&r, "x-ratelimit-remaining"), Some("0"));
    assert_eq!(header(&r, "retry-after"), Some("2"));
    assert!(header(&r, "x-ratelimit-reset").is_some());
    let body: serde_json::Value = r.json().await.unwrap();
    assert!(body["errorMessages"].is_array());
    // Another issue is not affected.
    let r = client
        .put(format!("{base}/rest/api/3/issue/SF-2"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
}

#[tokio::test]
async fn per_issue_window_frees_up_as_time_passes() {
    // Fast clock: 2 sandbox seconds pass in 20 ms of wall time.
    let limiter = RateLimiter::new(RateLimitConfig::default(), SandboxClock::new(100.0));
    let base = serve(limiter).await;
    let client = reqwest::Client::new();
    let mut limited = false;
    for _ in 0..25 {
        let r = client
            .put(format!("{base}/rest/api/3/issue/10001"))
            .send()
            .await
            .unwrap();
        limited |= r.status() == 429;
    }
    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    let r = client
        .put(format!("{base}/rest/api/3/issue/10001"))
        .send()
        .await
        .unwrap();
    assert_eq!(
        r.status(),
        204,
        "the window has moved on (limited before: {limited})"
    );
}

#[tokio::test]
async fn injected_storm_without_retry_after_and_503_with_it() {
    let limiter = RateLimiter::new(RateLimitConfig::default(), frozen());
    let base = serve(limiter.clone()).await;
    let client = reqwest::Client::new();
    limiter.inject(Fault::Storm429 { requests: 2 });
    limiter.inject(Fault::Unavailable503 {
        requests: 1,
        retry_after_secs: 7,
    });
    for _ in 0..2 {
        let r = client
            .get(format!("{base}/rest/api/3/myself"))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 429);
        assert!(header(&r, "retry-after").is_none());
        assert!(header(&r, "ratelimit-reason").is_none());
        assert_eq!(
            header(&r, "x-failure-category"),
            Some("FAILURE CLIENT RATE LIMITED")
        );
    }
    let r = client
        .get(format!("{base}/rest/api/3/myself"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 503);
    assert_eq!(header(&r, "retry-after"), Some("7"));
    let r = client
        .get(format!("{base}/rest/api/3/myself"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    // Faults deserialize from the admin API's JSON.
    let f: Fault = serde_json::from_str(r#"{"kind":"storm429","requests":3}"#).unwrap();
    assert_eq!(f, Fault::Storm429 { requests: 3 });
}

#[tokio::test]
async fn a_timed_storm_rejects_every_request_until_its_time_is_up() {
    // A clock 100× faster than wall time: the 100 s storm lasts 1 s of the test's time.
    let limiter = RateLimiter::new(RateLimitConfig::default(), SandboxClock::new(100.0));
    let base = serve(limiter.clone()).await;
    let client = reqwest::Client::new();
    let get = || client.get(format!("{base}/rest/api/3/myself")).send();
    let f: Fault = serde_json::from_str(r#"{"kind":"storm429_for","seconds":100}"#).unwrap();
    assert_eq!(f, Fault::Storm429For { seconds: 100.0 });
    limiter.inject(f);
    // However many requests arrive, all are rejected while the storm lasts…
    for _ in 0..10 {
        let r = get().await.unwrap();
        assert_eq!(r.status(), 429);
        assert!(header(&r, "retry-after").is_none());
    }
    // …and none once it is over.
    tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
    assert_eq!(get().await.unwrap().status(), 200);
    // Clearing the faults ends a storm early.
    limiter.inject(Fault::Storm429For { seconds: 1000.0 });
    assert_eq!(get().await.unwrap().status(), 429);
    limiter.clear_faults();
    assert_eq!(get().await.unwrap().status(), 200);
}
