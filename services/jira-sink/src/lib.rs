//! jira-sink: applies `jira.commands` to a Jira site without duplicates — bulk create, edits,
//! transitions, comments, worklogs — under Jira's rate limits (issue #8). See
//! docs/jira-sink.md for the protocol and the ordering rules.
//!
//! # Layout
//! - [`runtime`]: consume, hold batched commands, apply, commit audit + DLQ + offsets in one
//!   Kafka transaction (links go out as they are made).
//! - [`lanes`]: the order rules of a batch (lanes per issue, creates first in bulk, parents
//!   before children, coalesced edits).
//! - [`create`]: the idempotent create protocol (intent, stamps, search before re-creating);
//!   [`bulk`]: the bulk calls, per-element retries and the marker search.
//! - [`ops`]: edits (coalesced `PUT`s) and the `BOTH` rule; [`workflow`]: transitions,
//!   closes, deletes; [`attached`]: comments and worklogs.
//! - [`jira`]: the REST client (one rate limiter, a concurrency cap, retries).
//! - [`fields`]: field names → site ids, ADF, the stamps.
//! - [`sink`]: what operations share; audit and DLQ bookkeeping; crash injection.
//! - [`service`]: wiring from the configuration; [`metrics`](crate::metrics).

pub mod attached;
pub mod bulk;
pub mod create;
pub mod fields;
pub mod jira;
pub mod lanes;
pub mod metrics;
pub mod ops;
pub mod runtime;
pub mod service;
pub mod sink;
pub mod workflow;
