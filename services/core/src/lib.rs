//! `sfjira-core`: what every sfjira service shares, so each service is only its own logic.
//!
//! # Layout
//!
//! - [`cdc_bitmap`]: Salesforce CDC field bitmaps (`changedFields` …) ↔ field names, from the
//!   change-event Avro schema alone.
//! - [`command`]: the commands the transformer sends the sinks, and their Avro form.
//! - [`config`]: the deployment YAML plus `SFJIRA_…` environment overrides, validated at start;
//!   secrets come from the environment or files and are redacted everywhere.
//! - [`errors`]: the error catalog (stable codes, retryable or not, remediation) and
//!   [`errors::StageError`], the error a stage hands to the DLQ router.
//! - [`retry`]: exponential backoff with full jitter, bounded in attempts and total time, with
//!   server hints (Retry-After) as a floor.
//! - [`kafka`]: librdkafka clients built from config (any property passes through), the
//!   idempotent producer, the transactional producer, the `read_committed` consumer with manual
//!   commits.
//! - [`avro`]: the Avro codec through the schema registry (Confluent wire format), with every
//!   schema cached so the hot path makes no registry call.
//! - [`dlq`]: routes a record a stage cannot handle to `<stage>.dlq` with the Kafka Connect
//!   error headers and sfjira's own.
//! - [`topics`]: topics as code (`infra/topics.yaml`): provision and report drift.
//! - [`telemetry`]: `tracing` logs, OpenTelemetry spans over OTLP, W3C trace context in Kafka
//!   headers, typed internal events for metrics.
//! - [`links`]: `sfjira.links`, which target record stands for which source record (the
//!   sinks' memory against creating twice), loaded at start and tailed.
//! - [`audit`]: `sfjira.audit`, every write a sink makes with before and after values (for
//!   rollback and command-id dedupe).
//! - [`service`]: a service binary's frame — config, telemetry, health endpoint, run until
//!   SIGINT/SIGTERM — so each `main` is one call.
//! - [`health`]: `/healthz`, `/readyz`, `/metrics` on one port, the same for every service.

pub mod audit;
pub mod avro;
pub mod cdc_bitmap;
pub mod command;
pub mod config;
pub mod dlq;
pub mod errors;
pub mod health;
pub mod kafka;
pub mod links;
pub mod retry;
pub mod service;
pub mod telemetry;
pub mod topics;

pub use errors::{ErrorCode, StageError};
