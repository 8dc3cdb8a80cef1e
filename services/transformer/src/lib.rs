//! The transformer: turns source records (Salesforce change events, Jira events) into
//! commands for the other side, driven entirely by a mapping file.
//!
//! # Layout
//! - [`mapping`]: the mapping language — YAML with CEL expressions — loaded and validated up
//!   front, with every error naming its file, line and the fix; compiled once into flows.
//! - [`input`]: decoded source records (Salesforce change records, Jira events) as
//!   [`engine::SourceRecord`]s.
//! - [`engine`]: applies the compiled flows to one [`engine::SourceRecord`]: echo suppression,
//!   triggers, field maps, value tables, type conversion, ownership. Pure: no I/O, so the same
//!   code serves the service, `sfjira mapping preview` and the golden tests.
//! - commands (what the engine produces for the sinks) are defined in `sfjira_core::command`,
//!   the contract the sinks share.
//!
//! - [`runtime`]: the Kafka side — consume, map, produce commands and dead letters in
//!   transactions with the consumed offsets.

pub use sfjira_core::command;
pub mod engine;
mod events;
pub mod input;
pub mod mapping;
pub mod runtime;

pub use command::Command;
pub use engine::{Outcome, SourceRecord};
pub use mapping::{Mapping, MappingErrors};
