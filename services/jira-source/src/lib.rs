//! jira-source: Jira webhooks and JQL polling into Kafka, verified, deduplicated, exactly once
//! (issue #6).
//!
//! # Layout
//! - [`webhook`]: `POST /webhooks/jira` — signature, size limit, durable dedupe, 2xx only
//!   after the commit, 503 when Kafka is unavailable.
//! - [`poller`]: JQL polling by project with a watermark committed with the records;
//!   [`worklogs`]: the `/worklog/updated` and `/worklog/deleted` feeds.
//! - [`canonical`]: Jira JSON → `schemas/jira/*.avsc` records.
//! - [`state`]: what was published (webhook identifiers, per-entity versions, watermarks) in
//!   `sfjira.checkpoints`; the ordering rule (older-than-published is dropped).
//! - [`publisher`]: the single transactional writer; reconnects when Kafka comes back.
//! - [`jira`]: the REST client (API token or [`oauth`] 3LO with rotating refresh tokens; rate
//!   limits through the shared [`ratelimit`] limiter and core `retry`).
//! - [`ratelimit`]: the shared limiter every Jira call goes through (token bucket + a
//!   process-wide pause on `Retry-After` / `X-RateLimit-Reset`).
//! - [`backfill`]: `sfjira backfill jira` — a resumable load of a project's issues.
//! - [`service`]: wiring of the above from the deployment configuration.
//! - [`metrics`](crate::metrics): counters.

pub mod backfill;
pub mod canonical;
pub mod jira;
pub mod metrics;
pub mod oauth;
pub mod poller;
pub mod publisher;
pub mod ratelimit;
pub mod service;
pub mod state;
pub mod webhook;
pub mod worklogs;
