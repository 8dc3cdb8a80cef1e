//! What a committed write hands to Change Data Capture.
//!
//! The org (REST, admin API) describes each committed transaction as a
//! [`CommittedTransaction`]: which records changed how, who committed it, through which client.
//! Change Data Capture turns that into change events: it assigns the transaction key, sequence
//! numbers, commit number and replay ids, builds the field bitmaps, merges and overflows. The
//! org never builds an event itself, and CDC never reads the org's tables.

use chrono::{DateTime, Utc};
use serde_json::{Map, Value};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChangeType {
    Create,
    Update,
    Delete,
    Undelete,
    GapCreate,
    GapUpdate,
    GapDelete,
    GapUndelete,
    GapOverflow,
}

impl ChangeType {
    /// The symbol in the `ChangeType` Avro enum.
    pub fn as_str(self) -> &'static str {
        match self {
            ChangeType::Create => "CREATE",
            ChangeType::Update => "UPDATE",
            ChangeType::Delete => "DELETE",
            ChangeType::Undelete => "UNDELETE",
            ChangeType::GapCreate => "GAP_CREATE",
            ChangeType::GapUpdate => "GAP_UPDATE",
            ChangeType::GapDelete => "GAP_DELETE",
            ChangeType::GapUndelete => "GAP_UNDELETE",
            ChangeType::GapOverflow => "GAP_OVERFLOW",
        }
    }
}

/// One record's change within a transaction.
#[derive(Debug, Clone, PartialEq)]
pub struct RecordChange {
    /// Object API name (`Opportunity`).
    pub entity: String,
    /// 18-character record Id.
    pub record_id: String,
    pub change_type: ChangeType,
    /// REST names of the fields whose value changed (for CREATE: every field set), including
    /// compound parts such as `BillingCity` (CDC reports them as `BillingAddress.City`).
    pub changed_fields: Vec<String>,
    /// REST names of the fields set to null by this change.
    pub nulled_fields: Vec<String>,
    /// The record's values after the change, by REST field name, in the REST JSON
    /// representation (strings, numbers, booleans, `YYYY-MM-DD` dates, ISO date-times).
    pub values: Map<String, Value>,
}

/// Everything committed together (one REST call, one composite or collection request).
#[derive(Debug, Clone, PartialEq)]
pub struct CommittedTransaction {
    /// In commit order.
    pub changes: Vec<RecordChange>,
    pub commit_timestamp: DateTime<Utc>,
    /// User Id of the committing user.
    pub commit_user: String,
    /// `com/salesforce/api/rest/<ver>;client=<id>` when the writer sent
    /// `Sforce-Call-Options: client=<id>`; the API part alone otherwise; empty for UI changes.
    pub change_origin: String,
}

/// Where the org delivers its committed transactions (Change Data Capture).
pub trait ChangeSink: Send + Sync {
    fn committed(&self, txn: CommittedTransaction);
}
