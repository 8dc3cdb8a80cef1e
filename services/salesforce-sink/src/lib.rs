//! `sfjira-salesforce-sink`: applies `salesforce.commands` to a Salesforce org in sObject
//! Collections batches — upsert by external id, update by Id through `sfjira.links`, delete —
//! with every write tagged as ours (`Sforce-Call-Options: client=<id>`), audited in
//! `sfjira.audit`, and kept inside the org's API limits.
//!
//! # Layout
//!
//! - [`runtime`]: the Kafka side — consume, gather a batch (size or linger), hold batched
//!   flows until their window, apply, and commit audit + links + dead letters + offsets in
//!   one transaction.
//! - [`apply`]: one batch against Salesforce: rounds, Collections calls, per-row results
//!   matched back to commands, row retries (lock contention, create races).
//! - [`resolve`]: commands → writes: links first, external ids, `update_only`, deletes,
//!   `attach_to`, the `BOTH`-field conflict rule.
//! - [`rows`]: merging commands for one record into one Collections row, in rounds.
//! - [`api`]: the calls (SOQL read, Collections upsert/update/delete) with whole-call retries
//!   and the pause on `REQUEST_LIMIT_EXCEEDED`.
//! - [`client`]: one REST call: session and refresh on 401, the call options header,
//!   `Sforce-Limit-Info`, error sorting.
//! - [`limits`]: the share of the daily allocation used and the budgeted rate above it.
//! - [`outcome`]: what became of each command; Salesforce status codes → catalog codes.
//! - [`output`]: the audit entries, links and dead letters a batch leaves in Kafka.
//! - [`pause`]: pausing consumption (and keeping the group membership) while the org's API
//!   allocation is spent.
//! - [`events`]: typed internal events (log line + metric).

pub mod api;
pub mod apply;
pub mod client;
pub mod events;
pub mod limits;
pub mod outcome;
pub mod output;
pub mod pause;
pub mod resolve;
pub mod rows;
pub mod runtime;
