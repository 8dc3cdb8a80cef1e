//! The sink's typed internal events (after Vector's `internal_events`): each `emit` writes the
//! log line and moves the metric together, so names and labels stay consistent and no counter
//! moves without a line that explains it. Labels are bounded: object names come from the
//! mapping, operations and results are fixed sets, codes come from the catalog.

use std::time::Duration;

use metrics::{counter, gauge, histogram};

/// Records written to Salesforce, by object, operation and result.
pub const RECORDS_WRITTEN: &str = "sfjira_salesforce_sink_records_total";
/// REST calls made, by operation and HTTP status class.
pub const API_CALLS: &str = "sfjira_salesforce_sink_api_calls_total";
/// Records per sObject Collections call.
pub const RECORDS_PER_CALL: &str = "sfjira_salesforce_sink_records_per_call";
/// Share (0–1) of the daily API allocation used, from `Sforce-Limit-Info`.
pub const API_USAGE_SHARE: &str = "sfjira_salesforce_sink_api_usage_share";
/// 1 while consumption is paused after `REQUEST_LIMIT_EXCEEDED`.
pub const PAUSED: &str = "sfjira_salesforce_sink_paused";
/// Pauses after `REQUEST_LIMIT_EXCEEDED`, and resumptions.
pub const PAUSES: &str = "sfjira_salesforce_sink_pauses_total";
pub const RESUMES: &str = "sfjira_salesforce_sink_resumes_total";
/// 1 while calls are slowed to the budgeted rate.
pub const THROTTLED: &str = "sfjira_salesforce_sink_throttled";
/// Row and call retries, by reason.
pub const RETRIES: &str = "sfjira_salesforce_sink_retries_total";
/// Token refreshes after 401 `INVALID_SESSION_ID`.
pub const AUTH_REFRESHES: &str = "sfjira_salesforce_sink_auth_refreshes_total";
/// From the command's Kafka timestamp to its write being acknowledged by Salesforce.
pub const WRITE_LATENCY: &str = "sfjira_salesforce_sink_command_to_write_seconds";
/// Commands skipped because their id is already in `sfjira.audit`.
pub const REPLAYS_SKIPPED: &str = "sfjira_salesforce_sink_replays_skipped_total";

/// One command's row came back from Salesforce (or was decided without a call).
pub struct RecordWritten<'a> {
    pub object: &'a str,
    /// `create`, `update`, `delete`, `skip`.
    pub operation: &'static str,
    /// `applied`, `skipped`, `superseded`, `failed`.
    pub result: &'static str,
}

impl RecordWritten<'_> {
    pub fn emit(&self) {
        tracing::debug!(
            object = self.object,
            operation = self.operation,
            result = self.result,
            "record written"
        );
        counter!(RECORDS_WRITTEN, "object" => self.object.to_owned(), "operation" => self.operation, "result" => self.result).increment(1);
    }
}

/// One REST call and what it answered.
pub struct ApiCalled<'a> {
    /// `upsert`, `update`, `delete`, `query`, `userinfo`.
    pub operation: &'a str,
    /// HTTP status, 0 when there was no answer.
    pub status: u16,
    /// Records in a Collections call (0 for others).
    pub records: usize,
    pub elapsed: Duration,
}

impl ApiCalled<'_> {
    pub fn emit(&self) {
        tracing::debug!(
            operation = self.operation,
            status = self.status,
            records = self.records,
            elapsed_ms = self.elapsed.as_millis() as u64,
            "Salesforce call"
        );
        let class = match self.status {
            0 => "none",
            200..=299 => "2xx",
            400..=499 => "4xx",
            _ => "5xx",
        };
        counter!(API_CALLS, "operation" => self.operation.to_owned(), "status" => class)
            .increment(1);
        if self.records > 0 {
            histogram!(RECORDS_PER_CALL, "operation" => self.operation.to_owned())
                .record(self.records as f64);
        }
    }
}

/// `Sforce-Limit-Info` seen on a response.
pub struct ApiUsageObserved {
    pub used: u64,
    pub limit: u64,
}

impl ApiUsageObserved {
    pub fn emit(&self) {
        let share = if self.limit == 0 {
            1.0
        } else {
            self.used as f64 / self.limit as f64
        };
        gauge!(API_USAGE_SHARE).set(share);
        gauge!("sfjira_salesforce_sink_api_requests_used").set(self.used as f64);
        gauge!("sfjira_salesforce_sink_api_requests_limit").set(self.limit as f64);
    }
}

/// Calls are slowed (or back to full speed) because of the daily allocation's share.
pub struct ThrottleChanged {
    pub throttled: bool,
    pub share: f64,
    pub calls_per_sec: f64,
}

impl ThrottleChanged {
    pub fn emit(&self) {
        if self.throttled {
            tracing::warn!(
                share = self.share,
                calls_per_sec = self.calls_per_sec,
                "Salesforce API usage above the configured share: slowing to the budgeted rate"
            );
        } else {
            tracing::info!(
                share = self.share,
                "Salesforce API usage back under the threshold"
            );
        }
        gauge!(THROTTLED).set(if self.throttled { 1.0 } else { 0.0 });
    }
}

/// `REQUEST_LIMIT_EXCEEDED`: consumption stops for `pause`. Loud on purpose.
pub struct ConsumptionPaused {
    pub pause: Duration,
}

impl ConsumptionPaused {
    pub fn emit(&self) {
        tracing::error!(
            error.code = "SFJ-9010",
            pause_secs = self.pause.as_secs(),
            "Salesforce answered REQUEST_LIMIT_EXCEEDED: the org's API allocation is used up; consumption paused, nothing is dropped"
        );
        gauge!(PAUSED).set(1.0);
        counter!(PAUSES).increment(1);
    }
}

/// The call that hit the limit went through again: consumption resumes.
pub struct ConsumptionResumed;

impl ConsumptionResumed {
    pub fn emit(&self) {
        tracing::warn!("Salesforce accepts calls again: consumption resumed");
        gauge!(PAUSED).set(0.0);
        counter!(RESUMES).increment(1);
    }
}

/// A call or some rows are tried again.
pub struct RetryingRows<'a> {
    /// `lock`, `duplicate`, `unavailable`, `auth`.
    pub reason: &'a str,
    pub rows: usize,
    pub delay: Duration,
}

impl RetryingRows<'_> {
    pub fn emit(&self) {
        tracing::info!(
            reason = self.reason,
            rows = self.rows,
            delay_ms = self.delay.as_millis() as u64,
            "retrying Salesforce rows"
        );
        counter!(RETRIES, "reason" => self.reason.to_owned()).increment(self.rows as u64);
    }
}

/// A new token after Salesforce refused the old one.
pub struct TokenRefreshed;

impl TokenRefreshed {
    pub fn emit(&self) {
        tracing::info!("Salesforce session refreshed after INVALID_SESSION_ID");
        counter!(AUTH_REFRESHES).increment(1);
    }
}

/// A command's write was acknowledged, `latency` after the command was produced.
pub struct CommandLatency {
    pub latency: Duration,
}

impl CommandLatency {
    pub fn emit(&self) {
        histogram!(WRITE_LATENCY).record(self.latency.as_secs_f64());
    }
}

/// Commands whose id is already audited as applied.
pub struct ReplaysSkipped {
    pub count: u64,
}

impl ReplaysSkipped {
    pub fn emit(&self) {
        if self.count > 0 {
            tracing::info!(
                count = self.count,
                "commands already applied (in sfjira.audit): skipped"
            );
            counter!(REPLAYS_SKIPPED).increment(self.count);
        }
    }
}
