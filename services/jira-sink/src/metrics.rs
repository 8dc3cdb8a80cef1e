//! jira-sink's metrics, in one place so names and labels stay consistent (issue #8 item 8):
//! writes by operation and result, Jira API calls (per command through the ratio of
//! `api_calls_total` to `commands_total`), batch sizes, 429s by reason, retries, time spent
//! waiting on the limiter, and call latency.

use std::time::Duration;

use metrics::{counter, histogram};

/// A command finished: `operation` (`create`, `update`, `transition`, `comment`, `worklog`,
/// `delete`, `delete_comment`, `delete_worklog`, `close`, `skip`) and `result` (`applied`, `skipped`, `superseded`, `failed`).
pub fn command(operation: &str, result: &'static str) {
    counter!("sfjira_jira_sink_commands_total", "operation" => operation.to_owned(), "result" => result)
        .increment(1);
}

/// One Jira HTTP call of `endpoint` (`create`, `bulk_create`, `edit`, `search`…) answered
/// `status` (0 = no answer), after `latency`.
pub fn api_call(endpoint: &'static str, status: u16, latency: Duration) {
    counter!("sfjira_jira_sink_api_calls_total", "endpoint" => endpoint, "status" => status.to_string())
        .increment(1);
    histogram!("sfjira_jira_sink_api_latency_seconds", "endpoint" => endpoint)
        .record(latency.as_secs_f64());
}

/// A 429 (or 503) from Jira: `reason` is its `RateLimit-Reason` header, `no-retry-after` for a
/// bare 429 (gateway storm), or `unavailable` for a 503.
pub fn throttled(reason: String) {
    counter!("sfjira_jira_sink_throttled_total", "reason" => reason).increment(1);
}

/// A retried call (`endpoint`).
pub fn retry(endpoint: &'static str) {
    counter!("sfjira_jira_sink_retries_total", "endpoint" => endpoint).increment(1);
}

/// Time a call waited for the shared limiter (token bucket or a Retry-After pause).
pub fn limiter_wait(waited: Duration) {
    counter!("sfjira_jira_sink_limit_wait_ms_total").increment(waited.as_millis() as u64);
    histogram!("sfjira_jira_sink_limit_wait_seconds").record(waited.as_secs_f64());
}

/// Issues per bulk-create call.
pub fn bulk_size(n: usize) {
    histogram!("sfjira_jira_sink_bulk_create_size").record(n as f64);
}

/// Commands per committed batch, and how long the batch took from read to commit.
pub fn batch(commands: usize, took: Duration) {
    histogram!("sfjira_jira_sink_batch_size").record(commands as f64);
    histogram!("sfjira_jira_sink_batch_seconds").record(took.as_secs_f64());
}

/// Commands coalesced into a write of an earlier command for the same issue.
pub fn coalesced(n: usize) {
    counter!("sfjira_jira_sink_coalesced_total").increment(n as u64);
}

/// A command applied although an earlier command for the same record is in the DLQ (the
/// ordering rule, docs/jira-sink.md).
pub fn applied_after_failure() {
    counter!("sfjira_jira_sink_applied_after_failure_total").increment(1);
}
