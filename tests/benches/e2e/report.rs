//! Turning what was measured into figures: latency distributions (nearest-rank quantiles, as
//! the demo summary computes them), stage rates from visibility times, and the jira-sink's own
//! counters read from its Prometheus endpoint.

use std::path::Path;

/// A latency distribution, in ms.
pub struct Dist {
    pub n: usize,
    pub p50: f64,
    pub p95: f64,
    pub p99: f64,
    pub max: f64,
}

impl Dist {
    pub fn of(mut v: Vec<f64>) -> Option<Dist> {
        if v.is_empty() {
            return None;
        }
        v.sort_by(f64::total_cmp);
        let q = |q: f64| v[((q * v.len() as f64).ceil() as usize).clamp(1, v.len()) - 1];
        Some(Dist {
            n: v.len(),
            p50: q(0.50),
            p95: q(0.95),
            p99: q(0.99),
            max: v[v.len() - 1],
        })
    }

    /// One table row: `label  p50  p95  p99  max  (n)`.
    pub fn row(label: &str, v: Vec<f64>) -> String {
        match Dist::of(v) {
            Some(d) => format!(
                "  {label:<44} {:>8.1} {:>8.1} {:>8.1} {:>8.1}   ({})",
                d.p50, d.p95, d.p99, d.max, d.n
            ),
            None => format!("  {label:<44} (no samples)"),
        }
    }

    pub fn header() -> String {
        format!(
            "  {:<44} {:>8} {:>8} {:>8} {:>8}",
            "ms", "p50", "p95", "p99", "max"
        )
    }
}

/// The highest number of items per second over any `window_ms` window of sorted times.
pub fn peak_rate(sorted_ms: &[i64], window_ms: i64) -> f64 {
    let mut best = 0usize;
    let mut lo = 0;
    for hi in 0..sorted_ms.len() {
        while sorted_ms[hi] - sorted_ms[lo] >= window_ms {
            lo += 1;
        }
        best = best.max(hi - lo + 1);
    }
    best as f64 * 1000.0 / window_ms as f64
}

/// Where a service's health/metrics endpoint listens, from its start-up log line
/// (`health and metrics endpoint up`, `listen=…`).
pub fn metrics_addr(log: &Path) -> Option<String> {
    let text = std::fs::read_to_string(log).ok()?;
    let line = text
        .lines()
        .rev()
        .find(|l| l.contains("health and metrics endpoint up"))?;
    let rest = &line[line.find("\"listen\":\"")? + 10..];
    Some(rest[..rest.find('"')?].to_string())
}

/// The jira-sink's Prometheus text (empty when it cannot be read).
pub async fn scrape(addr: &str) -> String {
    let url = format!("http://{addr}/metrics");
    match reqwest::get(&url).await {
        Ok(r) => r.text().await.unwrap_or_default(),
        Err(_) => String::new(),
    }
}

/// The sum of every sample of `name` (any labels) whose label set contains all of `labels`.
pub fn metric_sum(text: &str, name: &str, labels: &[&str]) -> f64 {
    let sum: f64 = text
        .lines()
        .filter(|l| !l.starts_with('#'))
        .filter(|l| {
            l.strip_prefix(name)
                .is_some_and(|rest| rest.starts_with('{') || rest.starts_with(' '))
        })
        .filter(|l| labels.iter().all(|want| l.contains(want)))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum();
    // An empty f64 sum is -0.0, which prints as "-0".
    sum + 0.0
}

/// Every distinct label set of `name` with its value, for a small breakdown table.
pub fn metric_rows(text: &str, name: &str) -> Vec<(String, f64)> {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| {
            let rest = l.strip_prefix(name)?;
            let labels = rest.strip_prefix('{')?.split('}').next()?.to_string();
            let value = l.rsplit(' ').next()?.parse::<f64>().ok()?;
            Some((labels, value))
        })
        .collect()
}
