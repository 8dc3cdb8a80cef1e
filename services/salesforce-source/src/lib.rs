//! `sfjira-salesforce-source`: Salesforce Change Data Capture, read over the Pub/Sub API
//! (gRPC), published to `salesforce.cdc.<Entity>` as typed Avro, exactly once into Kafka.
//!
//! # Layout
//!
//! - [`auth`]: OAuth client credentials and JWT bearer; the session the gRPC calls carry.
//! - [`pubsub`]: the gRPC channel, `GetSchema`, and one `Subscribe` call with flow control.
//! - [`decode`]: change-event schemas and payloads, bitmaps to field names, merged events
//!   split per record.
//! - [`enrich`]: optional full-state enrichment of updates (REST re-read).
//! - [`events`]: typed internal events (log line + metric together).
//! - [`gap`]: gap events re-read over REST (SOQL by Id; `GAP_OVERFLOW` by `SystemModstamp`)
//!   and published with the records' current state, marked `sfjira.gap-recovered`.
//! - [`backfill`]: initial load / re-sync: paged SOQL by `SystemModstamp`, published as
//!   snapshot records (`sfjira.snapshot: true`), each page committed with its resume position.
//! - [`schemas`]: `GetSchema` once per schema id, retried within a budget, then the DLQ.
//! - [`publish`]: Kafka records (key = record Id, value registered under `<topic>-value`).
//! - [`checkpoint`]: the channel's position in `sfjira.checkpoints`.
//! - [`runtime`]: one task per channel: subscribe, decode, produce and commit records with
//!   their position in one Kafka transaction; reconnect, re-login, watchdog.
//! - [`proto`]: the generated Pub/Sub API client.
//! - [`tls`]: the clients (OAuth, REST, gRPC), trusting `salesforce_source.tls_ca_file` too.
//!
//! `benches/capture.rs` (`make bench`): capture throughput, latency and peak memory.

pub mod auth;
pub mod backfill;
pub mod checkpoint;
pub mod decode;
pub mod enrich;
pub mod events;
pub mod gap;
pub mod proto;
pub mod publish;
pub mod pubsub;
pub mod runtime;
pub mod schemas;
pub mod tls;
