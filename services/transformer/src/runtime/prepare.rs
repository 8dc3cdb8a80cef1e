//! Preparing a chunk of records: everything the transformer does to source records before they
//! go into a transaction — decode, map, encode commands and dead letters, each with its trace
//! context — with no Kafka producer involved. Kept apart from producing so chunks are prepared
//! on every core while the transaction loop produces and commits ([`super::pipeline`]).

use std::collections::BTreeMap;
use std::sync::Arc;

use rdkafka::message::{Message, OwnedMessage};
use sfjira_core::avro::{AvroCodec, WriterSchema};
use sfjira_core::command::{Command, CommandKind, System};
use sfjira_core::dlq::{Attempts, DlqRouter, FailedAt, FailedRecord};
use sfjira_core::errors::StageError;
use sfjira_core::kafka::{OffsetTracker, OutRecord};
use sfjira_core::telemetry::events::ReceivedTally;
use sfjira_core::telemetry::messaging::{process_span_for_message, send_span};
use sfjira_core::telemetry::propagation::{
    HeaderInjector, forwarded_trace_headers, inject_current_context,
};
use tracing::Instrument;

use crate::engine::{Outcome, RecordOutcome, SkipReason};
use crate::events::RecordDiscarded;
use crate::input;
use crate::mapping::Mapping;

/// What a chunk becomes: the records to produce (in order) and the offsets to commit.
pub struct Prepared {
    pub outputs: Vec<OutRecord>,
    pub offsets: OffsetTracker,
    /// Records in per source topic, for metrics after the commit.
    pub received: ReceivedTally,
    /// Commands per (topic, kind), for metrics after the commit.
    pub produced: BTreeMap<(String, CommandKind), u64>,
    pub records: usize,
    /// Each record's Kafka timestamp (epoch ms), for the per-record latency after the commit.
    pub appended_ms: Vec<i64>,
}

/// Turns source records into output records. Shared, read-only state only.
pub struct Preparer {
    pub mapping: Arc<Mapping>,
    pub tracing: Tracing,
    pub codec: AvroCodec,
    pub dlq: DlqRouter,
    pub jira_commands: (String, Arc<WriterSchema>),
    pub salesforce_commands: (String, Arc<WriterSchema>),
    pub group_id: String,
}

/// How a record's trace context reaches the records made from it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tracing {
    /// Spans are exported: each record is processed in a `process` span, each output is sent in
    /// a `send` span under it, and carries that span's context.
    Spans,
    /// Nothing exports this process's spans: each output carries its record's own context
    /// (`telemetry::forwarded_trace_headers`). Two spans per record were an eighth of the
    /// transformer's CPU, and unexported they only left the sink's spans under parents no
    /// backend ever received.
    Forward,
}

impl Tracing {
    /// [`Tracing::Spans`] when `telemetry::init` set up an exporter.
    pub fn for_this_process() -> Self {
        if sfjira_core::telemetry::spans_exported() {
            Tracing::Spans
        } else {
            Tracing::Forward
        }
    }
}

/// Where an output's trace headers come from.
enum TraceLink {
    /// A `send` span under the current `process` span.
    SendSpan,
    /// The consumed record's context, as [`Tracing::Forward`] passes it on.
    Forward(HeaderInjector),
}

impl TraceLink {
    fn apply(&self, mut record: OutRecord) -> OutRecord {
        match self {
            TraceLink::SendSpan => traced(record),
            TraceLink::Forward(headers) => {
                for (name, value) in headers.values() {
                    record.set_header(name, value);
                }
                record
            }
        }
    }
}

/// Something that will succeed if the batch is tried again (the registry unreachable).
#[derive(Debug)]
pub struct Retryable(pub String);

impl Prepared {
    pub fn empty() -> Self {
        Prepared {
            outputs: Vec::new(),
            offsets: OffsetTracker::new(),
            received: ReceivedTally::default(),
            produced: BTreeMap::new(),
            records: 0,
            appended_ms: Vec::new(),
        }
    }

    /// Appends a later chunk of the same transaction.
    pub fn absorb(&mut self, later: Prepared) {
        self.outputs.extend(later.outputs);
        self.offsets.merge(&later.offsets);
        self.received.merge(later.received);
        for (key, n) in later.produced {
            *self.produced.entry(key).or_default() += n;
        }
        self.records += later.records;
        self.appended_ms.extend(later.appended_ms);
    }
}

impl Preparer {
    pub async fn prepare(&self, batch: Vec<OwnedMessage>) -> Result<Prepared, Retryable> {
        let mut out = Prepared {
            outputs: Vec::with_capacity(batch.len()),
            offsets: OffsetTracker::new(),
            received: ReceivedTally::default(),
            produced: BTreeMap::new(),
            records: batch.len(),
            appended_ms: Vec::with_capacity(batch.len()),
        };
        for msg in &batch {
            match self.tracing {
                Tracing::Spans => {
                    let span = process_span_for_message(msg, &self.group_id);
                    self.record(msg, &TraceLink::SendSpan, &mut out)
                        .instrument(span)
                        .await?;
                }
                Tracing::Forward => {
                    let link = TraceLink::Forward(forwarded_trace_headers(msg.headers()));
                    self.record(msg, &link, &mut out).await?;
                }
            }
            out.offsets.record(msg);
            if let Some(ms) = msg.timestamp().to_millis() {
                out.appended_ms.push(ms);
            }
            let bytes = msg.payload().map_or(0, <[u8]>::len) as u64;
            out.received.add(msg.topic(), bytes);
        }
        Ok(out)
    }

    /// One record: its commands, or its dead letter.
    async fn record(
        &self,
        msg: &OwnedMessage,
        trace: &TraceLink,
        out: &mut Prepared,
    ) -> Result<(), Retryable> {
        let payload = msg.payload().unwrap_or_default();
        let decoded = match self.codec.decode_json(payload).await {
            Ok(d) => d,
            Err(err) if err.retryable() => return Err(Retryable(err.to_string())),
            Err(err) => {
                self.dead_letter(msg, &err, FailedAt::ValueConverter, trace, out);
                return Ok(());
            }
        };
        let key = msg.key().map(|k| String::from_utf8_lossy(k).into_owned());
        let record = match input::source_record(msg.topic(), key.as_deref(), decoded.value) {
            Ok(r) => r,
            Err(err) => {
                self.dead_letter(msg, &err, FailedAt::Transformation, trace, out);
                return Ok(());
            }
        };
        match self.mapping.apply(&record) {
            RecordOutcome::Echo => RecordDiscarded { reason: "echo" }.emit(),
            RecordOutcome::Unmapped => RecordDiscarded { reason: "unmapped" }.emit(),
            RecordOutcome::Flows(outcomes) => {
                let mut first_error = None;
                for o in outcomes {
                    match o {
                        Outcome::Command(cmd) => {
                            if let Err(e) = self.command(&cmd, &record.source, trace, out) {
                                first_error.get_or_insert(e);
                            }
                        }
                        Outcome::Skipped { reason, .. } => RecordDiscarded {
                            reason: skip_label(reason),
                        }
                        .emit(),
                        Outcome::Failed { error, .. } => {
                            first_error.get_or_insert(error);
                        }
                    }
                }
                // The record goes to the DLQ once, with its first failing flow's error; its other
                // flows' commands are produced (a replay re-produces them with the same command
                // ids, which the sinks recognise).
                if let Some(err) = first_error {
                    self.dead_letter(msg, &err, FailedAt::Transformation, trace, out);
                }
            }
        }
        Ok(())
    }

    /// A command that cannot be encoded is a defect (`SFJ-1005`), not something a retry fixes:
    /// its record is dead-lettered like any other failure.
    fn command(
        &self,
        cmd: &Command,
        source: &str,
        trace: &TraceLink,
        out: &mut Prepared,
    ) -> Result<(), StageError> {
        let (topic, writer) = match cmd.target.system {
            System::Jira => &self.jira_commands,
            System::Salesforce => &self.salesforce_commands,
        };
        let payload = cmd.encode(writer)?;
        let record = OutRecord::new(topic.clone())
            .key(cmd.target.external_ref.clone())
            .payload(payload)
            .header("sfjira.command-id", cmd.command_id.clone())
            .header("sfjira.source", format!("{source},{}", cmd.source.id));
        out.outputs.push(trace.apply(record));
        *out.produced.entry((topic.clone(), cmd.kind)).or_default() += 1;
        Ok(())
    }

    fn dead_letter(
        &self,
        msg: &OwnedMessage,
        err: &StageError,
        at: FailedAt,
        trace: &TraceLink,
        out: &mut Prepared,
    ) {
        let failed = FailedRecord::from_message(msg);
        let letter = self.dlq.dead_letter(&failed, err, at, Attempts::once());
        out.outputs.push(trace.apply(letter));
    }
}

/// Opens the record's `send` span inside the current `process` span and writes its context
/// into the headers, so the trace runs source → transformer → sink even though the record is
/// produced later, at commit time.
fn traced(mut record: OutRecord) -> OutRecord {
    let key = record
        .key
        .as_deref()
        .map(String::from_utf8_lossy)
        .map(|k| k.into_owned());
    let span = send_span(&record.topic, key.as_deref());
    let headers = span.in_scope(|| inject_current_context(record.owned_headers()));
    record.headers = OutRecord::header_list(&headers);
    record
}

fn skip_label(reason: SkipReason) -> &'static str {
    match reason {
        SkipReason::ConditionFalse => "condition_false",
        SkipReason::Unchanged => "unchanged",
        SkipReason::DeleteIgnored => "delete_ignored",
        SkipReason::NothingToWrite => "nothing_to_write",
    }
}
