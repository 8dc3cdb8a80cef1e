//! The services' own view, for `sfjira status --service name=url`: each one's `/readyz` (ready
//! or not, and why) and, from its `/metrics`, the gauges an operator checks first — API
//! allocation used, limiter state, pauses. Read over HTTP from the endpoints every service
//! serves; the deployment config names one `http.listen` per process, so where each service
//! runs is given on the command line (or `SFJIRA_STATUS_SERVICES`).

use std::time::Duration;

use serde::Serialize;

/// One service's answer.
#[derive(Debug, Serialize)]
pub struct ServiceHealth {
    pub name: String,
    pub url: String,
    /// `ready`, `not ready`, or `unreachable`.
    pub state: String,
    /// The readiness body (which check failed), or the connection error.
    pub detail: String,
    /// Headline gauges: `name{labels}` → value.
    pub gauges: Vec<(String, f64)>,
}

/// Metric names that carry an operator's first questions: allocation use, limits, pauses.
const HEADLINE: [&str; 6] = ["api_requests", "limit", "paused", "pause", "rate", "share"];

/// Parses `name=url` (the URL of the service's health endpoint, e.g. `http://10.0.0.5:9400`).
pub fn parse_service(arg: &str) -> Result<(String, String), String> {
    let (name, url) = arg.split_once('=').ok_or_else(|| {
        format!("{arg:?}: expected name=url, e.g. jira-sink=http://127.0.0.1:9401")
    })?;
    reqwest::Url::parse(url).map_err(|e| format!("{arg:?}: {url} is not a URL ({e})"))?;
    Ok((name.to_string(), url.trim_end_matches('/').to_string()))
}

/// Asks every service; an unreachable one is reported, never an error.
pub async fn probe(services: &[(String, String)]) -> Vec<ServiceHealth> {
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()
        .expect("an HTTP client builds");
    let mut out = Vec::new();
    for (name, url) in services {
        out.push(probe_one(&http, name, url).await);
    }
    out
}

async fn probe_one(http: &reqwest::Client, name: &str, url: &str) -> ServiceHealth {
    let mut health = ServiceHealth {
        name: name.to_string(),
        url: url.to_string(),
        state: "unreachable".into(),
        detail: String::new(),
        gauges: Vec::new(),
    };
    match http.get(format!("{url}/readyz")).send().await {
        Ok(r) => {
            health.state = if r.status().is_success() {
                "ready"
            } else {
                "not ready"
            }
            .into();
            health.detail = r.text().await.unwrap_or_default().trim().to_string();
        }
        Err(e) => {
            health.detail = e.to_string();
            return health;
        }
    }
    if let Ok(r) = http.get(format!("{url}/metrics")).send().await {
        health.gauges = headline_gauges(&r.text().await.unwrap_or_default());
    }
    health
}

/// The headline samples of a Prometheus text exposition (histogram and summary series left
/// out: a gauge answers "how much now", a distribution does not fit one line).
pub fn headline_gauges(text: &str) -> Vec<(String, f64)> {
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .filter_map(|l| {
            let (series, value) = l.rsplit_once(' ')?;
            let name = series.split('{').next()?;
            let wanted = HEADLINE.iter().any(|h| name.contains(h))
                && !name.ends_with("_bucket")
                && !name.ends_with("_sum")
                && !name.ends_with("_count")
                && !series.contains("quantile=");
            wanted.then(|| Some((series.to_string(), value.parse().ok()?)))?
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn picks_the_headline_gauges_and_skips_histograms() {
        let text = "# TYPE x gauge\nsfjira_salesforce_sink_api_requests_used 812\n\
                    sfjira_salesforce_sink_paused{reason=\"limit\"} 1\n\
                    sfjira_jira_sink_rate_limit_wait_seconds_bucket{le=\"1\"} 3\n\
                    sfjira_jira_sink_limit_wait_seconds{quantile=\"0.5\"} 0.1\n\
                    sfjira_transformer_commands_total{kind=\"upsert\"} 9\n";
        assert_eq!(
            headline_gauges(text),
            vec![
                (
                    "sfjira_salesforce_sink_api_requests_used".to_string(),
                    812.0
                ),
                (
                    "sfjira_salesforce_sink_paused{reason=\"limit\"}".to_string(),
                    1.0
                ),
            ]
        );
    }

    #[test]
    fn service_arguments_name_their_mistake() {
        assert_eq!(
            parse_service("jira-sink=http://127.0.0.1:9401/").unwrap(),
            ("jira-sink".into(), "http://127.0.0.1:9401".into())
        );
        assert!(parse_service("jira-sink").unwrap_err().contains("name=url"));
        assert!(
            parse_service("x=not a url")
                .unwrap_err()
                .contains("not a URL")
        );
    }
}
