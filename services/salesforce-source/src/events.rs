//! salesforce-source's typed internal events: each logs and counts in one place, so metric
//! names and labels stay consistent (after Vector's `internal_events`). Labels are bounded:
//! entity, change type, channel, a fixed reason set; never record ids.

use metrics::{counter, gauge, histogram};

/// Changes of one entity and change type committed to Kafka.
pub struct ChangesPublished<'a> {
    pub entity: &'a str,
    pub change_type: &'a str,
    pub count: u64,
}

impl ChangesPublished<'_> {
    pub fn emit(&self) {
        tracing::debug!(
            entity = self.entity,
            change_type = self.change_type,
            count = self.count,
            "changes published"
        );
        counter!("sfjira_salesforce_source_changes_total", "entity" => self.entity.to_owned(), "change_type" => self.change_type.to_owned())
            .increment(self.count);
    }
}

/// Capture lag of one change: now − its `commitTimestamp`, when it is handed to Kafka.
pub struct CaptureLag<'a> {
    pub entity: &'a str,
    pub seconds: f64,
}

impl CaptureLag<'_> {
    pub fn emit(&self) {
        histogram!("sfjira_salesforce_source_capture_lag_seconds", "entity" => self.entity.to_owned())
            .record(self.seconds.max(0.0));
    }
}

/// The subscription was re-opened; `reason` is `watchdog`, `stream`, `auth` or `replay`.
pub struct Reconnected<'a> {
    pub channel: &'a str,
    pub reason: &'static str,
}

impl Reconnected<'_> {
    pub fn emit(&self) {
        tracing::info!(
            channel = self.channel,
            reason = self.reason,
            "resubscribing"
        );
        counter!("sfjira_salesforce_source_reconnects_total", "channel" => self.channel.to_owned(), "reason" => self.reason)
            .increment(1);
    }
}

/// A new access token after Salesforce refused the old one.
pub struct AuthRefreshed;

impl AuthRefreshed {
    pub fn emit(&self) {
        tracing::info!("Salesforce session refreshed");
        counter!("sfjira_salesforce_source_auth_refreshes_total").increment(1);
    }
}

/// A gap or overflow event recovered over REST into `records` records.
pub struct GapRecovered<'a> {
    pub entity: &'a str,
    pub gap: &'a str,
    pub records: u64,
}

impl GapRecovered<'_> {
    pub fn emit(&self) {
        tracing::info!(
            entity = self.entity,
            gap = self.gap,
            records = self.records,
            "gap recovered"
        );
        counter!("sfjira_salesforce_source_gap_recoveries_total", "entity" => self.entity.to_owned(), "gap" => self.gap.to_owned())
            .increment(1);
    }
}

/// `Sforce-Limit-Info: api-usage=USED/LIMIT` from a REST response.
pub struct ApiUsage {
    pub used: u64,
    pub limit: u64,
}

impl ApiUsage {
    /// Parses the header value; `None` when it is not `api-usage=N/M`.
    pub fn parse(header: &str) -> Option<ApiUsage> {
        let usage = header
            .split(',')
            .find_map(|p| p.trim().strip_prefix("api-usage="))?;
        let (used, limit) = usage.split_once('/')?;
        Some(ApiUsage {
            used: used.trim().parse().ok()?,
            limit: limit.trim().parse().ok()?,
        })
    }

    pub fn emit(&self) {
        gauge!("sfjira_salesforce_source_api_requests_used").set(self.used as f64);
        gauge!("sfjira_salesforce_source_api_requests_limit").set(self.limit as f64);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_limit_info() {
        let u = ApiUsage::parse("api-usage=18/15000").unwrap();
        assert_eq!((u.used, u.limit), (18, 15000));
        assert!(ApiUsage::parse("per-app-api-usage=1/2").is_none());
    }
}
