//! `sfjira-sandbox`: offline stand-ins for a Salesforce org and a Jira Cloud site.
//!
//! Code that works against the sandbox must work against the real services, so each half
//! follows the reference notes (`shared/reference/salesforce-api.md`, `jira-api.md`) to the
//! wire: paths, JSON shapes, status codes, error bodies, headers, limits. Where the real
//! behaviour is unverified, the sandbox picks the most plausible one, makes it configurable, and
//! says so where it does it.
//!
//! # Layout
//! - [`clock`]: the sandbox's time, scalable so tests can make an hour-long token expire in
//!   seconds.
//! - [`salesforce`]: the org (objects, OAuth, REST, Pub/Sub gRPC with Change Data Capture).
//! - [`jira`]: the site (REST v3, JQL search, rate limits, signed webhooks).
//!
//! Each half has an admin API (under `/__admin/`) to act as a human user, read state, reset,
//! and inject faults.

pub mod clock;
pub mod jira;
pub mod salesforce;
