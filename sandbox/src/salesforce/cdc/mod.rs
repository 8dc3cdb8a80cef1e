//! Change Data Capture: change-event schemas, field bitmaps, and the event bus that turns the
//! org's committed transactions into change events on replayable channels (issue #3).
//!
//! - [`schema`]: an object's change-event Avro schema and its id.
//! - [`bitmap`]: `changedFields`/`nulledFields`/`diffFields` encoding and decoding
//!   (re-exported from `sfjira_core::cdc_bitmap`, shared with salesforce-source).
//! - [`payload`]: one event's Avro datum.
//! - [`log`]: a channel's retained events and replay ids.
//! - [`bus`]: [`EventBus`], the org's [`ChangeSink`](crate::salesforce::changes::ChangeSink).

pub mod bitmap;
pub mod bus;
pub mod log;
pub mod payload;
pub mod schema;

pub use bus::{ALL_CHANGE_EVENTS, BusSettings, EventBus, PositionError};
pub use schema::ChangeEventSchema;
