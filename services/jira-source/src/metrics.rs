//! jira-source's counters, in one place so names and labels stay consistent (issue item 8, in
//! part): webhook deliveries by outcome, records published and dropped, poll cycles, lag.

use metrics::{counter, histogram};

/// A webhook delivery reached a stage: `received`, `verified`, `rejected` or `duplicate`.
pub fn delivery(outcome: &'static str) {
    counter!("sfjira_jira_source_deliveries_total", "outcome" => outcome).increment(1);
}

/// Records committed to the canonical topics, and candidates dropped as not newer than what
/// was published (duplicates, late deliveries, poll overlap).
pub fn published(published: usize, dropped: usize) {
    counter!("sfjira_jira_source_records_total", "result" => "published")
        .increment(published as u64);
    counter!("sfjira_jira_source_records_total", "result" => "dropped").increment(dropped as u64);
}

/// One poll cycle of `project`; `found` counts the records it published, i.e. changes the
/// webhooks had not delivered.
pub fn poll_cycle(project: &str, ok: bool, found: usize) {
    counter!("sfjira_jira_source_poll_cycles_total", "project" => project.to_owned(), "ok" => ok.to_string()).increment(1);
    counter!("sfjira_jira_source_poll_found_total", "project" => project.to_owned())
        .increment(found as u64);
}

/// From the change in Jira (`updated`) to its commit in Kafka, per published record.
pub fn lag(millis: i64) {
    histogram!("sfjira_jira_source_lag_seconds").record(millis.max(0) as f64 / 1000.0);
}
