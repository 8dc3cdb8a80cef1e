//! Things attached to an issue: comments, entity properties and remote links (worklogs are in
//! [`super::worklogs`]). Each
//! write bumps the issue's `updated`, respects the per-issue limits (413, reference §3.3–3.5)
//! and returns the [`SiteEvent`]s for webhooks.
//!
//! Texts marked [U] are plausible, not recorded from a real site.

use axum::http::StatusCode;
use chrono::{DateTime, Utc};
use serde_json::Value;

use super::issue::{Comment, RemoteLink};
use super::{Site, SiteEvent};
use crate::jira::adf;
use crate::jira::error::{ApiError, ApiResult, NOT_ADF};

/// Entity property limits (reference §3.6).
pub const PROPERTY_VALUE_MAX_CHARS: usize = 32768;
pub const PROPERTY_KEY_MAX_CHARS: usize = 255;

fn check_comment_body(body: &Value) -> ApiResult<()> {
    if !adf::is_document(body) {
        return Err(ApiError::field("comment", NOT_ADF));
    }
    if adf::too_long(body) {
        return Err(ApiError::field("comment", adf::TEXT_TOO_LONG));
    }
    Ok(())
}

pub(super) fn limit_breached(what: &str, limit: usize) -> ApiError {
    // [U] wording; the status (413) is from the spec.
    ApiError::message(
        StatusCode::PAYLOAD_TOO_LARGE,
        format!("The {what} limit of {limit} for this issue has been reached."),
    )
}

impl Site {
    /// Adds a comment (`POST /issue/{k}/comment`, `update.comment`). `body` must be ADF.
    pub fn push_comment(
        &mut self,
        issue_id: u64,
        actor: &str,
        body: Value,
        visibility: Option<Value>,
        now: DateTime<Utc>,
    ) -> ApiResult<(Comment, Vec<SiteEvent>)> {
        check_comment_body(&body)?;
        let limit = self.limits.comments;
        let id = self.state.next_comment_id;
        let issue = self
            .state
            .issues
            .get_mut(&issue_id)
            .ok_or_else(ApiError::issue_not_found)?;
        if issue.comments.len() >= limit {
            return Err(limit_breached("comment", limit));
        }
        self.state.next_comment_id += 1;
        let comment = Comment {
            id,
            author: actor.into(),
            update_author: actor.into(),
            body,
            created: now,
            updated: now,
            visibility,
            properties: Vec::new(),
        };
        issue.comments.push(comment.clone());
        issue.updated = now;
        self.save();
        Ok((
            comment.clone(),
            vec![SiteEvent::CommentCreated { issue_id, comment }],
        ))
    }

    /// `PUT /issue/{k}/comment/{id}`.
    pub fn update_comment(
        &mut self,
        issue_id: u64,
        comment_id: u64,
        actor: &str,
        body: Value,
        now: DateTime<Utc>,
    ) -> ApiResult<(Comment, Vec<SiteEvent>)> {
        check_comment_body(&body)?;
        let issue = self
            .state
            .issues
            .get_mut(&issue_id)
            .ok_or_else(ApiError::issue_not_found)?;
        let comment = issue
            .comments
            .iter_mut()
            .find(|c| c.id == comment_id)
            .ok_or_else(|| {
                ApiError::message(
                    StatusCode::NOT_FOUND,
                    "Can not find a comment for the id: ".to_string() + &comment_id.to_string(),
                )
            })?; // [U]
        comment.body = body;
        comment.update_author = actor.into();
        comment.updated = now;
        let comment = comment.clone();
        issue.updated = now;
        self.save();
        Ok((
            comment.clone(),
            vec![SiteEvent::CommentUpdated { issue_id, comment }],
        ))
    }

    /// `DELETE /issue/{k}/comment/{id}`.
    pub fn delete_comment(
        &mut self,
        issue_id: u64,
        comment_id: u64,
        now: DateTime<Utc>,
    ) -> ApiResult<Vec<SiteEvent>> {
        let issue = self
            .state
            .issues
            .get_mut(&issue_id)
            .ok_or_else(ApiError::issue_not_found)?;
        let pos = issue
            .comments
            .iter()
            .position(|c| c.id == comment_id)
            .ok_or_else(|| {
                ApiError::message(
                    StatusCode::NOT_FOUND,
                    format!("Can not find a comment for the id: {comment_id}"),
                )
            })?; // [U]
        let comment = issue.comments.remove(pos);
        issue.updated = now;
        self.save();
        Ok(vec![SiteEvent::CommentDeleted { issue_id, comment }])
    }

    /// `PUT /issue/{k}/properties/{key}`: `Ok(true)` when created (201), `Ok(false)` when
    /// replaced (200).
    pub fn set_property(
        &mut self,
        issue_id: u64,
        key: &str,
        value: Value,
    ) -> ApiResult<(bool, Vec<SiteEvent>)> {
        if key.chars().count() > PROPERTY_KEY_MAX_CHARS {
            return Err(ApiError::bad_request(format!(
                "The property key cannot be longer than {PROPERTY_KEY_MAX_CHARS} characters." // [U]
            )));
        }
        if value.is_null() || value.to_string().chars().count() > PROPERTY_VALUE_MAX_CHARS {
            return Err(ApiError::bad_request(format!(
                "The property value cannot be empty or longer than {PROPERTY_VALUE_MAX_CHARS} characters." // [U]
            )));
        }
        let issue = self
            .state
            .issues
            .get_mut(&issue_id)
            .ok_or_else(ApiError::issue_not_found)?;
        let created = issue.properties.insert(key.to_string(), value).is_none();
        self.save();
        Ok((
            created,
            vec![SiteEvent::PropertySet {
                issue_id,
                key: key.to_string(),
            }],
        ))
    }

    /// `POST /issue/{k}/remotelink`: an existing `globalId` is replaced (`Ok((id, false))`, 200),
    /// else a new link is added (`Ok((id, true))`, 201).
    pub fn upsert_remote_link(
        &mut self,
        issue_id: u64,
        body: Value,
        now: DateTime<Utc>,
    ) -> ApiResult<(u64, bool)> {
        let object = body.get("object");
        if object
            .and_then(|o| o.get("url"))
            .and_then(Value::as_str)
            .is_none()
            || object
                .and_then(|o| o.get("title"))
                .and_then(Value::as_str)
                .is_none()
        {
            // [U] wording.
            return Err(ApiError::field(
                "object",
                "Remote link object must have a url and a title.",
            ));
        }
        let limit = self.limits.remote_links;
        let next_id = self.state.next_remote_link_id;
        let issue = self
            .state
            .issues
            .get_mut(&issue_id)
            .ok_or_else(ApiError::issue_not_found)?;
        let global_id = body
            .get("globalId")
            .and_then(Value::as_str)
            .map(str::to_string);
        let existing = global_id.as_ref().and_then(|g| {
            issue
                .remote_links
                .iter_mut()
                .find(|l| l.global_id.as_ref() == Some(g))
        });
        let result = if let Some(link) = existing {
            // Omitted fields become null: the stored body is replaced wholesale.
            link.body = body;
            (link.id, false)
        } else {
            if issue.remote_links.len() >= limit {
                return Err(limit_breached("remote link", limit));
            }
            self.state.next_remote_link_id += 1;
            issue.remote_links.push(RemoteLink {
                id: next_id,
                global_id,
                body,
            });
            (next_id, true)
        };
        issue.updated = now;
        self.save();
        Ok(result)
    }
}
