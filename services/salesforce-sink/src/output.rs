//! What one batch leaves in Kafka besides its offsets: per command an `sfjira.audit` entry
//! (before, after, result), the links learnt (both directions) and, for a failure, the dead
//! letter with the catalogued code and Salesforce's own error of the row in
//! `sfjira.salesforce.*` headers. Each record's `send` span continues the trace of the command
//! that caused it.

use sfjira_core::audit::AuditEntry;
use sfjira_core::dlq::{Attempts, DlqRouter, FailedAt};
use sfjira_core::kafka::OutRecord;
use sfjira_core::telemetry::messaging::send_span;
use sfjira_core::telemetry::propagation::inject_current_context;

use crate::outcome::Outcome;
use crate::runtime::{Pending, STAGE};

/// DLQ headers with Salesforce's own error of the row.
pub const H_SF_STATUS_CODE: &str = "sfjira.salesforce.statusCode";
pub const H_SF_MESSAGE: &str = "sfjira.salesforce.message";
pub const H_SF_FIELDS: &str = "sfjira.salesforce.fields";

/// Builds a batch's output records.
pub struct Outputs {
    pub dlq: DlqRouter,
    pub audit_topic: String,
    pub links_topic: String,
}

impl Outputs {
    /// The audit entry, links and dead letter of one command.
    pub fn records_for(&self, p: &Pending, o: &Outcome, started_ms: i64) -> Vec<OutRecord> {
        let cmd = &p.cmd;
        let entry = AuditEntry {
            command_id: cmd.command_id.clone(),
            flow: cmd.flow.clone(),
            sink: STAGE.to_string(),
            target: o.target.clone(),
            external_ref: cmd.target.external_ref.clone(),
            operation: o.operation.to_string(),
            before: o.before.clone(),
            after: o.after.clone(),
            result: o.result,
            detail: o.detail.clone(),
            started_ms: started_ms.min(o.finished_ms),
            finished_ms: o.finished_ms,
            source_time_ms: cmd.source.commit_time.timestamp_millis(),
        };
        let mut out = vec![entry.record(&self.audit_topic)];
        if let Some(link) = &o.link {
            out.extend(link.records_both_ways(&self.links_topic));
        }
        if let Some(f) = &o.failure {
            let mut dead = self.dlq.dead_letter(
                &p.failed,
                &f.error,
                FailedAt::TaskPut,
                Attempts {
                    count: f.attempts.max(1),
                    first_failed_at: std::time::SystemTime::now(),
                },
            );
            if let Some(sf) = &f.salesforce {
                dead.set_header(H_SF_STATUS_CODE, sf.status_code.clone());
                dead.set_header(H_SF_MESSAGE, sf.message.clone());
                dead.set_header(H_SF_FIELDS, sf.fields.join(","));
            }
            out.push(dead);
        }
        p.span.in_scope(|| out.into_iter().map(traced).collect())
    }
}

/// Opens the record's `send` span inside the current span and writes its context into the
/// headers, so the trace runs transformer → sink → audit.
pub fn traced(mut record: OutRecord) -> OutRecord {
    let key = record
        .key
        .as_deref()
        .map(|k| String::from_utf8_lossy(k).into_owned());
    let span = send_span(&record.topic, key.as_deref());
    let headers = span.in_scope(|| inject_current_context(record.owned_headers()));
    record.headers = OutRecord::header_list(&headers);
    record
}
