//! What became of each command: the audit result, the record it reached, the link learnt, and
//! for failures the catalogued code and Salesforce's own `statusCode`/`message`/`fields` (which
//! go into the dead letter's headers). Also the mapping from Salesforce's row status codes to
//! the catalog and to "retry this row".

use std::collections::BTreeMap;

use serde_json::Value;
use sfjira_core::audit::AuditResult;
use sfjira_core::errors::{ErrorCode, StageError};
use sfjira_core::links::Link;

use crate::client::SfError;

/// The outcome of one command.
#[derive(Debug)]
pub struct Outcome {
    pub result: AuditResult,
    /// `create`, `update`, `delete`, `skip`.
    pub operation: &'static str,
    /// `salesforce:<Object>:<Id>` once known, else the command's external reference.
    pub target: String,
    /// A link to write (a record created, or found without a link).
    pub link: Option<Link>,
    pub before: BTreeMap<String, Value>,
    pub after: BTreeMap<String, Value>,
    pub detail: Option<String>,
    pub failure: Option<Failure>,
    pub finished_ms: i64,
}

/// Why a command was not applied.
#[derive(Debug)]
pub struct Failure {
    pub error: StageError,
    /// Salesforce's error for the row, when it gave one.
    pub salesforce: Option<SfError>,
    pub attempts: u32,
}

impl Outcome {
    pub fn skipped(target: &str, detail: impl Into<String>) -> Self {
        Outcome {
            result: AuditResult::Skipped,
            operation: "skip",
            target: target.to_string(),
            link: None,
            before: BTreeMap::new(),
            after: BTreeMap::new(),
            detail: Some(detail.into()),
            failure: None,
            finished_ms: now_ms(),
        }
    }

    pub fn failed(target: &str, failure: Failure) -> Self {
        Outcome {
            result: AuditResult::Failed,
            operation: "skip",
            target: target.to_string(),
            link: None,
            before: BTreeMap::new(),
            after: BTreeMap::new(),
            detail: Some(failure.error.to_string()),
            failure: Some(failure),
            finished_ms: now_ms(),
        }
    }
}

pub fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

/// What to do with a row Salesforce refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RowAction {
    /// Try again after a backoff (lock contention).
    RetryLater,
    /// Try again alone (a concurrent upsert created the key first).
    RetrySerially,
    /// Dead-letter with this code.
    Fail(ErrorCode),
}

/// Salesforce's row `statusCode` → what to do (reference §4.5).
pub fn row_action(status_code: &str) -> RowAction {
    match status_code {
        "UNABLE_TO_LOCK_ROW" => RowAction::RetryLater,
        "DUPLICATE_VALUE" => RowAction::RetrySerially,
        "SERVER_UNAVAILABLE" | "REQUEST_RUNNING_TOO_LONG" => RowAction::RetryLater,
        _ => RowAction::Fail(code_for(status_code)),
    }
}

/// The catalogued code for a row (or call) error Salesforce named.
pub fn code_for(status_code: &str) -> ErrorCode {
    match status_code {
        "INVALID_FIELD"
        | "INVALID_FIELD_FOR_INSERT_UPDATE"
        | "NO_SUCH_COLUMN"
        | "INVALID_TYPE"
        | "INSUFFICIENT_ACCESS_ON_CROSS_REFERENCE_ENTITY" => ErrorCode::SalesforceFieldInvalid,
        "STRING_TOO_LONG"
        | "INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST"
        | "FIELD_INTEGRITY_EXCEPTION"
        | "INVALID_TYPE_ON_FIELD_IN_RECORD"
        | "NUMBER_OUTSIDE_VALID_RANGE"
        | "MALFORMED_ID"
        | "INVALID_EMAIL_ADDRESS"
        | "INVALID_ID_FIELD"
        | "JSON_PARSER_ERROR"
        | "FIELD_CUSTOM_VALIDATION_EXCEPTION"
        | "INVALID_CROSS_REFERENCE_KEY_FOR_FIELD" => ErrorCode::SalesforceValueInvalid,
        "REQUIRED_FIELD_MISSING" => ErrorCode::SalesforceRequiredFieldMissing,
        // A row's NOT_FOUND: the record is not there (a whole call's 404 is handled apart).
        "ENTITY_IS_DELETED" | "INVALID_CROSS_REFERENCE_KEY" | "NOT_FOUND" => {
            ErrorCode::SalesforceRecordGone
        }
        "UNABLE_TO_LOCK_ROW" => ErrorCode::SalesforceRowLocked,
        "DUPLICATE_VALUE" | "DUPLICATE_EXTERNAL_ID" => ErrorCode::SalesforceDuplicate,
        "REQUEST_LIMIT_EXCEEDED" => ErrorCode::SalesforceApiLimitExceeded,
        _ => ErrorCode::SalesforceRowRejected,
    }
}

/// A failure made of a Salesforce error.
pub fn failure_of(e: &SfError, attempts: u32) -> Failure {
    let code = code_for(&e.status_code);
    let fields = if e.fields.is_empty() {
        String::new()
    } else {
        format!(" (fields: {})", e.fields.join(", "))
    };
    Failure {
        error: StageError::new(code, format!("{}: {}{fields}", e.status_code, e.message)),
        salesforce: Some(e.clone()),
        attempts,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn row_codes_map_to_the_catalog() {
        assert_eq!(row_action("UNABLE_TO_LOCK_ROW"), RowAction::RetryLater);
        assert_eq!(row_action("DUPLICATE_VALUE"), RowAction::RetrySerially);
        assert_eq!(
            row_action("STRING_TOO_LONG"),
            RowAction::Fail(ErrorCode::SalesforceValueInvalid)
        );
        assert_eq!(
            row_action("INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST"),
            RowAction::Fail(ErrorCode::SalesforceValueInvalid)
        );
        assert_eq!(
            row_action("INVALID_FIELD"),
            RowAction::Fail(ErrorCode::SalesforceFieldInvalid)
        );
        assert_eq!(
            row_action("REQUIRED_FIELD_MISSING"),
            RowAction::Fail(ErrorCode::SalesforceRequiredFieldMissing)
        );
        assert_eq!(
            row_action("ENTITY_IS_DELETED"),
            RowAction::Fail(ErrorCode::SalesforceRecordGone)
        );
        assert_eq!(
            row_action("NOT_FOUND"),
            RowAction::Fail(ErrorCode::SalesforceRecordGone)
        );
        assert_eq!(
            row_action("SOMETHING_NEW"),
            RowAction::Fail(ErrorCode::SalesforceRowRejected)
        );
    }
}
