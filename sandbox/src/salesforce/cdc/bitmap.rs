//! The field bitmaps of `ChangeEventHeader` (`changedFields`, `nulledFields`, `diffFields`).
//!
//! The format and both directions live in `sfjira_core::cdc_bitmap`, shared with
//! salesforce-source so the sandbox's encoder and the connector's decoder cannot drift apart;
//! this module keeps the sandbox's own path to them.

pub use sfjira_core::cdc_bitmap::{BitmapError, decode, encode};
