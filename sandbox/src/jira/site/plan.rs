//! Validation of an issue write: turns a request's `fields` and `update` (`set`/`add`/`remove`
//! operations) into a [`Plan`] of new stored values, checking every field against the
//! project's screens and the issue hierarchy (sub-task → standard issue → epic), and collecting
//! every error before answering, as Jira does. [`super::ops`] applies plans.
//!
//! Texts marked [U] are plausible, not recorded from a real site.

use serde_json::{Value, json};

use super::catalog::{FieldDef, FieldKind, IssueType};
use super::fields::{self, cannot_be_set};
use super::ops::IssueWrite;
use super::{Site, duration};
use crate::jira::error::{ApiError, ApiResult};

/// The validated effect of `fields` + `update` on one issue.
#[derive(Debug, Default)]
pub(super) struct Plan {
    /// Field def, new stored value (`None` = cleared).
    pub values: Vec<(FieldDef, Option<Value>)>,
    /// New (original, remaining) estimates in seconds, when `timetracking` was sent.
    pub estimates: Option<(Option<i64>, Option<i64>)>,
    /// ADF bodies from `update.comment[].add.body`.
    pub comments: Vec<Value>,
}

impl Site {
    /// Validates `fields` and `update` against the project's screens.
    pub(super) fn plan(
        &self,
        project_key: &str,
        issue_type: &IssueType,
        issue_id: Option<u64>,
        write: &IssueWrite,
    ) -> ApiResult<Plan> {
        let mut errs = ApiError::new(axum::http::StatusCode::BAD_REQUEST);
        let mut plan = Plan::default();
        let current = issue_id.and_then(|id| self.state.issues.get(&id));
        let field_def = |id: &str| {
            self.catalog
                .field(id)
                .filter(|d| d.applies_to(project_key))
                .cloned()
        };
        for (id, value) in &write.fields {
            if write.update.contains_key(id) {
                // [U] wording.
                errs.errors.insert(
                    id.clone(),
                    format!("Field '{id}' cannot be set in both 'fields' and 'update'"),
                );
                continue;
            }
            match field_def(id) {
                Some(def) if def.kind == FieldKind::TimeTracking => match parse_estimates(value) {
                    Ok(e) => plan.estimates = Some(e),
                    Err(m) => drop(errs.errors.insert(id.clone(), m)),
                },
                Some(def) => match fields::parse_value(&self.catalog, &self.state, &def, value) {
                    Ok(v) => plan.values.push((def, v)),
                    Err(m) => drop(errs.errors.insert(id.clone(), m)),
                },
                None => drop(errs.errors.insert(id.clone(), cannot_be_set(id))),
            }
        }
        for (id, ops) in &write.update {
            let ops = ops.as_array().cloned().unwrap_or_default();
            if id == "comment" {
                for op in &ops {
                    match op.get("add").and_then(|a| a.get("body")) {
                        Some(body) if crate::jira::adf::is_document(body) => {
                            plan.comments.push(body.clone())
                        }
                        _ => drop(
                            errs.errors
                                .insert("comment".into(), crate::jira::error::NOT_ADF.into()),
                        ),
                    }
                }
                continue;
            }
            let Some(def) = field_def(id) else {
                errs.errors.insert(id.clone(), cannot_be_set(id));
                continue;
            };
            let mut value = current.and_then(|i| i.fields.get(id).cloned());
            for op in &ops {
                match apply_op(self, &def, value.take(), op) {
                    Ok(v) => value = v,
                    Err(m) => {
                        errs.errors.insert(id.clone(), m);
                        break;
                    }
                }
            }
            plan.values.push((def, value));
        }
        // Hierarchy: sub-task → standard parent in the same project; standard → epic; epic → none.
        let parent_of_plan = plan
            .values
            .iter()
            .find(|(d, _)| d.kind == FieldKind::Parent)
            .map(|(_, v)| v.clone());
        let parent =
            parent_of_plan.unwrap_or_else(|| current.and_then(|i| i.fields.get("parent").cloned()));
        match parent
            .and_then(|v| v.as_u64())
            .and_then(|p| self.state.issues.get(&p))
        {
            None if issue_type.subtask && !errs.errors.contains_key("parent") => {
                errs.errors.insert(
                    "parent".into(),
                    "Issue type is a sub-task but parent issue key or id not specified.".into(),
                );
            }
            Some(p) => {
                let level = self.issue_type_of(p).hierarchy_level;
                if level != issue_type.hierarchy_level + 1 || Some(p.id) == issue_id {
                    // [U] wording.
                    errs.errors.insert(
                        "parent".into(),
                        "Given parent issue does not belong to appropriate hierarchy.".into(),
                    );
                } else if issue_type.subtask && p.project_key != project_key {
                    errs.errors.insert(
                        "project".into(),
                        "Sub-tasks must be created in the same project as the parent.".into(),
                    );
                }
            }
            None => {}
        }
        if errs.is_empty() { Ok(plan) } else { Err(errs) }
    }
}

/// One `update` operation (`set`/`add`/`remove`) on the current stored value.
fn apply_op(
    site: &Site,
    def: &FieldDef,
    current: Option<Value>,
    op: &Value,
) -> Result<Option<Value>, String> {
    let (name, arg) = op
        .as_object()
        .and_then(|o| o.iter().next())
        .ok_or_else(|| format!("Field '{}' has an invalid operation", def.id))?; // [U]
    match (name.as_str(), def.kind) {
        ("set", FieldKind::Parent) if arg.get("none").and_then(Value::as_bool) == Some(true) => {
            Ok(None)
        }
        ("set", _) => fields::parse_value(&site.catalog, &site.state, def, arg),
        ("add" | "remove", FieldKind::Labels) => {
            let label = arg.as_str().ok_or("data was not a string")?; // [U]
            let mut labels: Vec<Value> = current
                .and_then(|v| v.as_array().cloned())
                .unwrap_or_default();
            labels.retain(|l| l.as_str() != Some(label));
            if name == "add" {
                fields::parse_value(&site.catalog, &site.state, def, &json!([label]))?;
                labels.push(json!(label));
            }
            Ok((!labels.is_empty()).then(|| Value::Array(labels)))
        }
        // [U] wording.
        (other, _) => Err(format!(
            "Field '{}' does not support operation '{other}'",
            def.id
        )),
    }
}

fn parse_estimates(v: &Value) -> Result<(Option<i64>, Option<i64>), String> {
    let one = |k: &str| -> Result<Option<i64>, String> {
        match v.get(k).and_then(Value::as_str) {
            None => Ok(None),
            Some(s) => duration::parse(s)
                .map(Some)
                .ok_or_else(|| "The original estimate specified is not valid.".to_string()), // [U]
        }
    };
    Ok((one("originalEstimate")?, one("remainingEstimate")?))
}

#[cfg(test)]
mod tests {
    use chrono::Utc;
    use serde_json::json;

    use super::super::seed::{self, INTEGRATION_ACCOUNT};
    use super::super::{IssueLimits, Site, SiteEvent};
    use super::IssueWrite;

    fn site() -> Site {
        Site::new(
            seed::catalog(),
            "http://sandbox".into(),
            IssueLimits::default(),
            None,
        )
        .unwrap()
    }

    fn write(body: serde_json::Value) -> IssueWrite {
        IssueWrite::from_body(&body)
    }

    #[test]
    fn hierarchy_and_change_events() {
        let mut s = site();
        let now = Utc::now();
        let fields = |t: &str, extra: serde_json::Value| {
            let mut f = json!({"project": {"key": "PROJ"}, "issuetype": {"name": t}, "summary": t});
            f.as_object_mut()
                .unwrap()
                .extend(extra.as_object().unwrap().clone());
            write(json!({ "fields": f }))
        };
        let (task, _) = s
            .create_issue(INTEGRATION_ACCOUNT, &fields("Task", json!({})), None, now)
            .unwrap();
        // A story's parent must be an epic.
        let err = s
            .create_issue(
                INTEGRATION_ACCOUNT,
                &fields("Story", json!({"parent": {"id": task.to_string()}})),
                None,
                now,
            )
            .unwrap_err();
        assert!(err.errors.contains_key("parent"));
        let (epic, _) = s
            .create_issue(INTEGRATION_ACCOUNT, &fields("Epic", json!({})), None, now)
            .unwrap();
        let (story, _) = s
            .create_issue(
                INTEGRATION_ACCOUNT,
                &fields("Story", json!({"parent": {"key": "PROJ-2"}})),
                None,
                now,
            )
            .unwrap();
        assert_eq!(s.state.issues[&story].parent_id(), Some(epic));

        // An edit that changes nothing records nothing.
        let same = write(json!({"fields": {"summary": "Task"}}));
        assert!(
            s.edit_issue(INTEGRATION_ACCOUNT, task, &same, now)
                .unwrap()
                .is_empty()
        );
        let changed =
            write(json!({"fields": {"summary": "T2", "customfield_10060": {"value": "Silver"}}}));
        let events = s
            .edit_issue(INTEGRATION_ACCOUNT, task, &changed, now)
            .unwrap();
        let [
            SiteEvent::IssueUpdated {
                changelog: Some(h), ..
            },
        ] = events.as_slice()
        else {
            panic!("one update with a changelog: {events:?}");
        };
        let tier = h
            .items
            .iter()
            .find(|i| i.field_id == "customfield_10060")
            .unwrap();
        assert_eq!(
            (tier.field.as_str(), tier.fieldtype.as_str()),
            ("Customer Tier", "custom")
        );
        assert_eq!(
            (tier.to.as_deref(), tier.to_string.as_deref()),
            (Some("10101"), Some("Silver"))
        );
    }
}
