//! The shared rate limiter (issue #6 item 7) against the in-process Jira sandbox, through a
//! counting proxy that logs when each request reaches the site: concurrent calls all respect
//! one `Retry-After` (no request reaches the site during the pause), and the token bucket caps
//! the request rate.

mod support;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use sfjira_jira_source::jira::JiraClient;
use sfjira_sandbox::jira::ratelimit::Fault;
use support::*;

#[derive(Debug, Clone)]
struct Hit {
    arrived: Instant,
    answered: Instant,
    status: u16,
}

struct Proxy {
    upstream: String,
    http: reqwest::Client,
    log: Mutex<Vec<Hit>>,
}

async fn forward(
    axum::extract::State(p): axum::extract::State<Arc<Proxy>>,
    req: axum::extract::Request,
) -> axum::response::Response {
    let arrived = Instant::now();
    let (parts, body) = req.into_parts();
    let bytes = axum::body::to_bytes(body, usize::MAX).await.unwrap();
    let path = parts.uri.path_and_query().map_or("/", |x| x.as_str());
    let mut r = p
        .http
        .request(parts.method.clone(), format!("{}{path}", p.upstream))
        .body(bytes.to_vec());
    for (k, v) in &parts.headers {
        if k != "host" && k != "content-length" {
            r = r.header(k, v);
        }
    }
    let resp = r.send().await.expect("the site answers");
    let status = resp.status();
    let headers = resp.headers().clone();
    let body = resp.bytes().await.unwrap();
    p.log.lock().unwrap().push(Hit {
        arrived,
        answered: Instant::now(),
        status: status.as_u16(),
    });
    let mut out = axum::response::Response::new(axum::body::Body::from(body));
    *out.status_mut() = status;
    for (k, v) in &headers {
        if k != "content-length" && k != "transfer-encoding" {
            out.headers_mut().insert(k.clone(), v.clone());
        }
    }
    out
}

/// A proxy to `upstream` on 127.0.0.1; returns its URL and the log.
async fn proxy(upstream: String) -> (String, Arc<Proxy>) {
    let p = Arc::new(Proxy {
        upstream,
        http: reqwest::Client::new(),
        log: Mutex::new(Vec::new()),
    });
    let app = axum::Router::new().fallback(forward).with_state(p.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    (format!("http://{addr}"), p)
}

fn client(stack: &Stack, url: &str, limits: &str) -> Arc<JiraClient> {
    let cfg = stack.load(&stack.yaml(
        &sfjira_tests::bootstrap(),
        url,
        &format!(
            "{limits}  retry: {{initial_delay_ms: 50, max_delay_ms: 500, max_attempts: 10}}\n"
        ),
    ));
    Arc::new(JiraClient::new(cfg.jira_source.as_ref().unwrap()).unwrap())
}

/// Fires `n` concurrent issue fetches; all must succeed.
async fn concurrent(jira: &Arc<JiraClient>, key: &str, n: usize) {
    let calls: Vec<_> = (0..n)
        .map(|_| {
            let (jira, key) = (jira.clone(), key.to_string());
            tokio::spawn(async move { jira.issue(&key).await })
        })
        .collect();
    for c in calls {
        assert!(c.await.unwrap().expect("the call succeeds").is_some());
    }
}

#[tokio::test]
async fn one_retry_after_pauses_every_concurrent_call() {
    let stack = Stack::new().await;
    let site = jira(0).await;
    let (_, key) = Rest::new(&site).create("limited").await;
    let (url, proxy) = proxy(site.base_url()).await;
    let jira = client(
        &stack,
        &url,
        "  rate_limit_per_second: 5\n  rate_limit_burst: 1\n",
    );
    site.state.limiter.inject(Fault::Unavailable503 {
        requests: 1,
        retry_after_secs: 2,
    });
    concurrent(&jira, &key, 6).await;
    let log = proxy.log.lock().unwrap().clone();
    assert_eq!(log.len(), 7, "one refused, six answered: {log:#?}");
    let refused = log.iter().find(|h| h.status == 503).expect("the 503");
    let after: Vec<&Hit> = log
        .iter()
        .filter(|h| h.arrived >= refused.answered)
        .collect();
    assert_eq!(after.len(), 6, "every call waited for the pause: {log:#?}");
    for h in after {
        let waited = h.arrived - refused.answered;
        assert!(
            waited >= Duration::from_millis(1950),
            "a request reached Jira {waited:?} into a 2 s Retry-After"
        );
    }
}

#[tokio::test]
async fn the_bucket_caps_the_request_rate() {
    let stack = Stack::new().await;
    let site = jira(0).await;
    let (_, key) = Rest::new(&site).create("paced").await;
    let (url, proxy) = proxy(site.base_url()).await;
    let jira = client(
        &stack,
        &url,
        "  rate_limit_per_second: 10\n  rate_limit_burst: 2\n",
    );
    concurrent(&jira, &key, 20).await;
    let mut arrivals: Vec<Instant> = proxy
        .log
        .lock()
        .unwrap()
        .iter()
        .map(|h| h.arrived)
        .collect();
    arrivals.sort();
    assert_eq!(arrivals.len(), 20);
    // At most 2 at once, then one per 100 ms: request i is not before (i − 2) × 100 ms.
    for (i, at) in arrivals.iter().enumerate().skip(2) {
        let since_first = *at - arrivals[0];
        let floor =
            Duration::from_millis(100 * (i as u64 - 1)).saturating_sub(Duration::from_millis(130));
        assert!(since_first >= floor, "request {i} after {since_first:?}");
    }
    assert!(arrivals[19] - arrivals[0] >= Duration::from_millis(1650));
}
