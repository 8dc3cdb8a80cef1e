//! The transformer: turns source records (Salesforce change events, Jira events) into
//! commands for the other side, driven entirely by a mapping file.
//!
//! # Layout
//! - [`mapping`]: the mapping language — YAML with CEL expressions — loaded and validated up
//!   front, with every error naming its file, line and the fix; compiled once into flows.
//! - [`engine`]: applies the compiled flows to one [`engine::SourceRecord`]: echo suppression,
//!   triggers, field maps, value tables, type conversion, ownership. Pure: no I/O, so the same
//!   code serves the service, `sfjira mapping preview` and the golden tests.
//! - [`command`]: what the engine produces for the sinks.
//!
//! The Kafka runtime (consume → map → produce in transactions) is not built yet (issue #7).

pub mod command;
pub mod engine;
pub mod mapping;

pub use command::Command;
pub use engine::{Outcome, SourceRecord};
pub use mapping::{Mapping, MappingErrors};
