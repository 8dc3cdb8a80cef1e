//! The org's error values and their wire shapes.
//!
//! REST errors are a JSON array `[{"message","errorCode","fields"}]` (reference §4.5); rows of
//! sObject Collections use `statusCode` instead of `errorCode` and always carry `fields`. Key
//! order is fixed by the structs below so bodies are byte-for-byte stable.

use serde::Serialize;
use serde_json::Value;

/// One error as the org reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SfError {
    /// HTTP status when this error is the whole answer of a call.
    pub status: u16,
    pub code: &'static str,
    pub message: String,
    /// `None` for request-level errors whose real bodies have no `fields` (NOT_FOUND,
    /// INVALID_SESSION_ID, MALFORMED_QUERY, INVALID_FIELD while parsing the body …).
    pub fields: Option<Vec<String>>,
}

#[derive(Serialize)]
struct WireError<'a> {
    message: &'a str,
    #[serde(rename = "errorCode")]
    error_code: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    fields: Option<&'a Vec<String>>,
}

#[derive(Serialize)]
struct RowError<'a> {
    #[serde(rename = "statusCode")]
    status_code: &'a str,
    message: &'a str,
    fields: &'a [String],
}

impl SfError {
    pub fn new(status: u16, code: &'static str, message: impl Into<String>) -> Self {
        SfError {
            status,
            code,
            message: message.into(),
            fields: None,
        }
    }

    pub fn with_fields(mut self, fields: &[&str]) -> Self {
        self.fields = Some(fields.iter().map(|f| f.to_string()).collect());
        self
    }

    /// The element of a REST error array.
    pub fn to_json(&self) -> Value {
        serde_json::to_value(WireError {
            message: &self.message,
            error_code: self.code,
            fields: self.fields.as_ref(),
        })
        .expect("error serializes")
    }

    /// The element of an sObject Collections row's `errors`.
    pub fn to_row_json(&self) -> Value {
        serde_json::to_value(RowError {
            status_code: self.code,
            message: &self.message,
            fields: self.fields.as_deref().unwrap_or(&[]),
        })
        .expect("error serializes")
    }

    // ---- the catalogue (messages as the real org words them, reference §4.5) ----

    pub fn invalid_session() -> Self {
        SfError::new(401, "INVALID_SESSION_ID", "Session expired or invalid")
    }

    pub fn not_found() -> Self {
        SfError::new(404, "NOT_FOUND", "The requested resource does not exist")
    }

    /// What `/sobjects/{Obj}/{x}` says when `x` is neither an Id nor an external id field.
    pub fn bad_external_id_field(x: &str) -> Self {
        SfError::new(
            404,
            "NOT_FOUND",
            format!("Provided external ID field does not exist or is not accessible: {x}"),
        )
    }

    pub fn request_limit_exceeded() -> Self {
        SfError::new(
            403,
            "REQUEST_LIMIT_EXCEEDED",
            "TotalRequests Limit exceeded.",
        )
    }

    pub fn server_unavailable() -> Self {
        SfError::new(
            503,
            "SERVER_UNAVAILABLE",
            "Server temporarily unavailable. Try again later.",
        )
    }

    pub fn malformed_query(detail: &str) -> Self {
        SfError::new(400, "MALFORMED_QUERY", detail.to_string())
    }

    pub fn unable_to_lock_row() -> Self {
        SfError::new(
            400,
            "UNABLE_TO_LOCK_ROW",
            "unable to obtain exclusive access to this record or 1 records",
        )
        .with_fields(&[])
    }

    pub fn entity_is_deleted() -> Self {
        SfError::new(400, "ENTITY_IS_DELETED", "entity is deleted").with_fields(&[])
    }

    pub fn json_parser(message: impl Into<String>) -> Self {
        SfError::new(400, "JSON_PARSER_ERROR", message)
    }

    pub fn malformed_id(message: impl Into<String>) -> Self {
        SfError::new(400, "MALFORMED_ID", message)
    }
}

/// A REST error array body.
pub fn error_array(errors: &[SfError]) -> Value {
    Value::Array(errors.iter().map(SfError::to_json).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wire_shapes_are_stable() {
        let e = SfError::unable_to_lock_row();
        assert_eq!(
            error_array(std::slice::from_ref(&e)).to_string(),
            r#"[{"message":"unable to obtain exclusive access to this record or 1 records","errorCode":"UNABLE_TO_LOCK_ROW","fields":[]}]"#
        );
        assert_eq!(
            e.to_row_json().to_string(),
            r#"{"statusCode":"UNABLE_TO_LOCK_ROW","message":"unable to obtain exclusive access to this record or 1 records","fields":[]}"#
        );
        assert_eq!(
            error_array(&[SfError::invalid_session()]).to_string(),
            r#"[{"message":"Session expired or invalid","errorCode":"INVALID_SESSION_ID"}]"#
        );
    }
}
