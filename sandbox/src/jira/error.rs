//! The one error type of the REST handlers, rendered as Jira's `ErrorCollection`
//! `{"errorMessages":[…],"errors":{…}}` (reference §3.1). Every 4xx/5xx body the site sends
//! goes through here, so the shape cannot drift between endpoints.

use std::collections::BTreeMap;

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;

/// The real 404 for an issue that is missing or hidden (reference §3.1).
pub const ISSUE_NOT_FOUND: &str = "Issue does not exist or you do not have permission to see it.";
/// The real 400 for a plain string where ADF is required (reference §3.1).
pub const NOT_ADF: &str =
    "Operation value must be an Atlassian Document (see the Atlassian Document Format)";

/// An `ErrorCollection` with its status; `retry_after` adds the header (503 faults).
#[derive(Debug, Clone, PartialEq)]
pub struct ApiError {
    pub status: StatusCode,
    pub messages: Vec<String>,
    pub errors: BTreeMap<String, String>,
    pub retry_after: Option<u64>,
}

impl ApiError {
    pub fn new(status: StatusCode) -> Self {
        ApiError {
            status,
            messages: Vec::new(),
            errors: BTreeMap::new(),
            retry_after: None,
        }
    }

    /// A status with one entry in `errorMessages`.
    pub fn message(status: StatusCode, msg: impl Into<String>) -> Self {
        let mut e = Self::new(status);
        e.messages.push(msg.into());
        e
    }

    /// A 400 with one entry in `errors`, keyed by field id.
    pub fn field(field: impl Into<String>, msg: impl Into<String>) -> Self {
        let mut e = Self::new(StatusCode::BAD_REQUEST);
        e.errors.insert(field.into(), msg.into());
        e
    }

    pub fn bad_request(msg: impl Into<String>) -> Self {
        Self::message(StatusCode::BAD_REQUEST, msg)
    }

    pub fn issue_not_found() -> Self {
        Self::message(StatusCode::NOT_FOUND, ISSUE_NOT_FOUND)
    }

    /// Merges another collection's messages and field errors into this one (create validates
    /// every field before answering, as Jira does).
    pub fn absorb(&mut self, other: ApiError) {
        self.messages.extend(other.messages);
        self.errors.extend(other.errors);
    }

    pub fn is_empty(&self) -> bool {
        self.messages.is_empty() && self.errors.is_empty()
    }

    /// The JSON body alone (bulk create nests it under `elementErrors`).
    pub fn body(&self) -> serde_json::Value {
        json!({ "errorMessages": self.messages, "errors": self.errors })
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut resp = (self.status, axum::Json(self.body())).into_response();
        if let Some(secs) = self.retry_after {
            resp.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        resp
    }
}

pub type ApiResult<T> = Result<T, ApiError>;
