//! Worklogs (reference §3.5): the request rules (`started` strictly
//! `yyyy-MM-dd'T'HH:mm:ss.SSSZ`, exactly one of `timeSpent`/`timeSpentSeconds`, ADF `comment`,
//! `adjustEstimate`), and add/update/delete on the site, which keep the remaining estimate and
//! the deleted-worklog feed up to date and return the [`SiteEvent`]s for webhooks.
//!
//! Texts marked [U] are plausible, not recorded from a real site.

use axum::http::StatusCode;
use chrono::{DateTime, FixedOffset, Utc};
use serde_json::Value;

use super::activity::limit_breached;
use super::issue::{DeletedWorklog, Worklog};
use super::{Site, SiteEvent, duration};
use crate::jira::adf;
use crate::jira::error::{ApiError, ApiResult, NOT_ADF};
use crate::jira::time_format;

/// The real 400 for a worklog `started` not in Jira's format (reference §3.5).
pub const WORKLOG_DATE_FORMAT: &str =
    "Invalid date format. Please enter the date in the format \"yyyy-MM-dd'T'HH:mm:ss.SSSZ\".";
/// `adjustEstimate` of `POST /issue/{k}/worklog` (reference §3.5).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum AdjustEstimate {
    Auto,
    Leave,
    New(i64),
    Manual(i64),
}

impl AdjustEstimate {
    /// From the query parameters `adjustEstimate`, `newEstimate`, `reduceBy` of an add or edit.
    pub fn from_query(
        adjust: Option<&str>,
        new_estimate: Option<&str>,
        reduce_by: Option<&str>,
    ) -> ApiResult<Self> {
        Self::parse(
            adjust,
            new_estimate,
            reduce_by,
            (
                "reduceBy",
                "You must supply a valid amount of time to reduce the estimate by.",
            ),
        )
    }

    /// From the query parameters of `DELETE /issue/{k}/worklog/{id}`: `adjustEstimate`,
    /// `newEstimate`, and `increaseBy` for `manual` (a delete gives the time back).
    /// https://developer.atlassian.com/cloud/jira/platform/rest/v3/api-group-issue-worklogs/#api-rest-api-3-issue-issueidorkey-worklog-id-delete
    pub fn from_delete_query(
        adjust: Option<&str>,
        new_estimate: Option<&str>,
        increase_by: Option<&str>,
    ) -> ApiResult<Self> {
        Self::parse(
            adjust,
            new_estimate,
            increase_by,
            (
                "increaseBy",
                "You must supply a valid amount of time to increase the estimate by.",
            ),
        )
    }

    /// `manual`: the name of the parameter that carries its amount, and the error without it.
    fn parse(
        adjust: Option<&str>,
        new_estimate: Option<&str>,
        manual_amount: Option<&str>,
        (manual_param, manual_error): (&str, &str),
    ) -> ApiResult<Self> {
        match adjust.unwrap_or("auto") {
            "auto" => Ok(AdjustEstimate::Auto),
            "leave" => Ok(AdjustEstimate::Leave),
            "new" => new_estimate
                .and_then(duration::parse)
                .map(AdjustEstimate::New)
                .ok_or_else(|| {
                    ApiError::field("newEstimate", "You must supply a valid new estimate.")
                }), // [U]
            "manual" => manual_amount
                .and_then(duration::parse)
                .map(AdjustEstimate::Manual)
                .ok_or_else(|| ApiError::field(manual_param, manual_error)), // [U]
            other => Err(ApiError::bad_request(format!(
                "Illegal adjust estimate value '{other}'"
            ))), // [U]
        }
    }
}

/// A validated worklog body.
#[derive(Debug, Clone)]
pub struct WorklogInput {
    pub started: DateTime<FixedOffset>,
    pub time_spent_seconds: i64,
    pub comment: Option<Value>,
    pub visibility: Option<Value>,
}

impl WorklogInput {
    /// Validates `started` (strict format), exactly one of `timeSpent`/`timeSpentSeconds`, and
    /// an ADF `comment`; every problem is reported at once, keyed as Jira keys them.
    pub fn from_body(body: &Value) -> ApiResult<Self> {
        let mut errs = ApiError::new(StatusCode::BAD_REQUEST);
        let started = match body.get("started").and_then(Value::as_str) {
            Some(s) => time_format::parse_strict(s),
            None => None,
        };
        if started.is_none() {
            errs.errors
                .insert("started".into(), WORKLOG_DATE_FORMAT.into());
        }
        let text = body.get("timeSpent").and_then(Value::as_str);
        let secs = body.get("timeSpentSeconds").and_then(Value::as_i64);
        let spent = match (text, secs) {
            (Some(_), Some(_)) => {
                // [U] wording: the spec says exactly one of the two.
                errs.errors.insert(
                    "timeLogged".into(),
                    "Specify either timeSpent or timeSpentSeconds, not both.".into(),
                );
                None
            }
            (None, None) => {
                errs.errors.insert(
                    "timeLogged".into(),
                    "You must indicate the time spent working.".into(),
                );
                None
            }
            (Some(t), None) => duration::parse(t),
            (None, Some(s)) => (s > 0).then_some(s),
        };
        if spent.is_none() && !errs.errors.contains_key("timeLogged") {
            errs.errors
                .insert("timeLogged".into(), "Invalid time duration entered.".into());
        }
        let comment = body.get("comment").filter(|c| !c.is_null()).cloned();
        if comment.as_ref().is_some_and(|c| !adf::is_document(c)) {
            errs.errors.insert("comment".into(), NOT_ADF.into());
        }
        match (started, spent) {
            (Some(started), Some(time_spent_seconds)) if errs.is_empty() => Ok(WorklogInput {
                started,
                time_spent_seconds,
                comment,
                visibility: body.get("visibility").filter(|v| !v.is_null()).cloned(),
            }),
            _ => Err(errs),
        }
    }
}

/// A partial worklog edit (`PUT /issue/{k}/worklog/{id}`): any of `started` (strict),
/// `timeSpent` or `timeSpentSeconds` (not both), `comment` (ADF), `visibility`.
#[derive(Debug, Clone, Default)]
pub struct WorklogEdit {
    pub started: Option<DateTime<FixedOffset>>,
    pub time_spent_seconds: Option<i64>,
    pub comment: Option<Value>,
    pub visibility: Option<Value>,
}

impl WorklogEdit {
    pub fn from_body(body: &Value) -> ApiResult<Self> {
        let mut errs = ApiError::new(StatusCode::BAD_REQUEST);
        let mut edit = WorklogEdit::default();
        if let Some(s) = body.get("started") {
            edit.started = s.as_str().and_then(time_format::parse_strict);
            if edit.started.is_none() {
                errs.errors
                    .insert("started".into(), WORKLOG_DATE_FORMAT.into());
            }
        }
        let text = body.get("timeSpent").and_then(Value::as_str);
        let secs = body.get("timeSpentSeconds").and_then(Value::as_i64);
        edit.time_spent_seconds = match (text, secs) {
            (Some(_), Some(_)) => {
                errs.errors.insert(
                    "timeLogged".into(),
                    "Specify either timeSpent or timeSpentSeconds, not both.".into(),
                ); // [U]
                None
            }
            (Some(t), None) => duration::parse(t).or_else(|| {
                errs.errors
                    .insert("timeLogged".into(), "Invalid time duration entered.".into());
                None
            }),
            (None, Some(s)) if s > 0 => Some(s),
            (None, Some(_)) => {
                errs.errors
                    .insert("timeLogged".into(), "Invalid time duration entered.".into());
                None
            }
            (None, None) => None,
        };
        edit.comment = body.get("comment").filter(|c| !c.is_null()).cloned();
        if edit.comment.as_ref().is_some_and(|c| !adf::is_document(c)) {
            errs.errors.insert("comment".into(), NOT_ADF.into());
        }
        edit.visibility = body.get("visibility").filter(|v| !v.is_null()).cloned();
        if errs.is_empty() { Ok(edit) } else { Err(errs) }
    }
}
impl Site {
    /// `POST /issue/{k}/worklog`.
    pub fn add_worklog(
        &mut self,
        issue_id: u64,
        actor: &str,
        input: WorklogInput,
        adjust: AdjustEstimate,
        now: DateTime<Utc>,
    ) -> ApiResult<(Worklog, Vec<SiteEvent>)> {
        let limit = self.limits.worklogs;
        let id = self.state.next_worklog_id;
        let issue = self
            .state
            .issues
            .get_mut(&issue_id)
            .ok_or_else(ApiError::issue_not_found)?;
        if issue.worklogs.len() >= limit {
            return Err(limit_breached("worklog", limit));
        }
        self.state.next_worklog_id += 1;
        let worklog = Worklog {
            id,
            issue_id,
            author: actor.into(),
            update_author: actor.into(),
            comment: input.comment,
            started: input.started,
            time_spent_seconds: input.time_spent_seconds,
            created: now,
            updated: now,
            visibility: input.visibility,
            properties: Vec::new(),
        };
        let remaining = issue.remaining_estimate_seconds;
        issue.remaining_estimate_seconds = match adjust {
            AdjustEstimate::Auto => remaining.map(|r| (r - input.time_spent_seconds).max(0)),
            AdjustEstimate::Leave => remaining,
            AdjustEstimate::New(n) => Some(n),
            AdjustEstimate::Manual(by) => Some((remaining.unwrap_or(0) - by).max(0)),
        };
        issue.worklogs.push(worklog.clone());
        issue.updated = now;
        self.save();
        Ok((
            worklog.clone(),
            vec![SiteEvent::WorklogCreated { issue_id, worklog }],
        ))
    }

    /// `PUT /issue/{k}/worklog/{id}`. With `auto`, the remaining estimate absorbs the change in
    /// time spent.
    pub fn update_worklog(
        &mut self,
        issue_id: u64,
        worklog_id: u64,
        actor: &str,
        edit: WorklogEdit,
        adjust: AdjustEstimate,
        now: DateTime<Utc>,
    ) -> ApiResult<(Worklog, Vec<SiteEvent>)> {
        let issue = self
            .state
            .issues
            .get_mut(&issue_id)
            .ok_or_else(ApiError::issue_not_found)?;
        let w = issue
            .worklogs
            .iter_mut()
            .find(|w| w.id == worklog_id)
            .ok_or_else(|| {
                ApiError::message(
                    StatusCode::NOT_FOUND,
                    format!("Cannot find worklog with id: '{worklog_id}'."),
                )
            })?; // [U]
        let before = w.time_spent_seconds;
        if let Some(s) = edit.started {
            w.started = s;
        }
        if let Some(t) = edit.time_spent_seconds {
            w.time_spent_seconds = t;
        }
        if edit.comment.is_some() {
            w.comment = edit.comment;
        }
        if edit.visibility.is_some() {
            w.visibility = edit.visibility;
        }
        w.update_author = actor.into();
        w.updated = now;
        let worklog = w.clone();
        let delta = worklog.time_spent_seconds - before;
        issue.remaining_estimate_seconds = match adjust {
            AdjustEstimate::Auto => issue.remaining_estimate_seconds.map(|r| (r - delta).max(0)),
            AdjustEstimate::New(n) => Some(n),
            AdjustEstimate::Leave | AdjustEstimate::Manual(_) => issue.remaining_estimate_seconds,
        };
        issue.updated = now;
        self.save();
        Ok((
            worklog.clone(),
            vec![SiteEvent::WorklogUpdated { issue_id, worklog }],
        ))
    }

    /// `DELETE /issue/{k}/worklog/{id}` (remembered for `GET /worklog/deleted`). The deleted
    /// time goes back to the remaining estimate: `auto` adds the worklog's time spent, `manual`
    /// the `increaseBy` amount. (Atlassian's page words `auto` as for an add, "reduces"; a
    /// delete that reduced the estimate again would count the work twice. [U])
    pub fn delete_worklog(
        &mut self,
        issue_id: u64,
        worklog_id: u64,
        adjust: AdjustEstimate,
        now: DateTime<Utc>,
    ) -> ApiResult<Vec<SiteEvent>> {
        let issue = self
            .state
            .issues
            .get_mut(&issue_id)
            .ok_or_else(ApiError::issue_not_found)?;
        let pos = issue
            .worklogs
            .iter()
            .position(|w| w.id == worklog_id)
            .ok_or_else(|| {
                ApiError::message(
                    StatusCode::NOT_FOUND,
                    format!("Cannot find worklog with id: '{worklog_id}'."),
                )
            })?; // [U]
        let worklog = issue.worklogs.remove(pos);
        let remaining = issue.remaining_estimate_seconds;
        issue.remaining_estimate_seconds = match adjust {
            AdjustEstimate::Auto => remaining.map(|r| r + worklog.time_spent_seconds),
            AdjustEstimate::Leave => remaining,
            AdjustEstimate::New(n) => Some(n),
            AdjustEstimate::Manual(by) => Some(remaining.unwrap_or(0) + by),
        };
        issue.updated = now;
        self.state.deleted_worklogs.push(DeletedWorklog {
            worklog_id,
            deleted_at: now,
        });
        self.save();
        Ok(vec![SiteEvent::WorklogDeleted { issue_id, worklog }])
    }
}
