//! Issue-level operations: create, edit, transition, delete. Each validates the request the
//! way Jira does (collecting every field error before answering), applies it, records one
//! changelog history for all the fields it changed (with the request's `historyMetadata`), and
//! returns the [`SiteEvent`]s for webhooks.
//!
//! Texts marked [U] are plausible, not recorded from a real site.

use chrono::{DateTime, Utc};
use serde_json::{Map, Value, json};

use super::catalog::IssueType;
use super::fields;
use super::issue::{ChangeItem, History, Issue};
use super::plan::Plan;
use super::{Site, SiteEvent};
use crate::jira::error::{ApiError, ApiResult};

/// What a create/edit/transition body asks for, already split out of the JSON.
#[derive(Debug, Default, Clone)]
pub struct IssueWrite {
    pub fields: Map<String, Value>,
    pub update: Map<String, Value>,
    pub history_metadata: Option<Value>,
    pub properties: Vec<(String, Value)>,
}

impl IssueWrite {
    /// Splits a request body (`fields`, `update`, `historyMetadata`, `properties`).
    pub fn from_body(body: &Value) -> Self {
        let obj = |k: &str| {
            body.get(k)
                .and_then(Value::as_object)
                .cloned()
                .unwrap_or_default()
        };
        let properties = body
            .get("properties")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(|p| Some((p.get("key")?.as_str()?.to_string(), p.get("value")?.clone())))
            .collect();
        IssueWrite {
            fields: obj("fields"),
            update: obj("update"),
            history_metadata: body
                .get("historyMetadata")
                .filter(|v| !v.is_null())
                .cloned(),
            properties,
        }
    }
}

impl Site {
    /// `POST /issue`. Returns the new issue's id.
    pub fn create_issue(
        &mut self,
        actor: &str,
        write: &IssueWrite,
        transition_id: Option<&str>,
        now: DateTime<Utc>,
    ) -> ApiResult<(u64, Vec<SiteEvent>)> {
        let f = &write.fields;
        let mut errs = ApiError::new(axum::http::StatusCode::BAD_REQUEST);
        let project = f
            .get("project")
            .and_then(|p| p.get("id").or_else(|| p.get("key")))
            .and_then(Value::as_str)
            .and_then(|p| self.catalog.project(p))
            .cloned();
        if project.is_none() {
            errs.errors
                .insert("project".into(), "Specify a valid project ID or key".into());
        }
        let issue_type = match (f.get("issuetype"), &project) {
            (None, _) => {
                errs.errors
                    .insert("issuetype".into(), "Specify an issue type".into());
                None
            }
            (Some(t), Some(p)) => {
                let wanted = t
                    .get("id")
                    .or_else(|| t.get("name"))
                    .and_then(Value::as_str)
                    .unwrap_or("");
                let found = self.catalog.project_issue_type(p, wanted).cloned();
                if found.is_none() {
                    errs.errors.insert(
                        "issuetype".into(),
                        "The issue type selected is invalid.".into(),
                    );
                }
                found
            }
            (Some(_), None) => None,
        };
        if !f.contains_key("summary") && !write.update.contains_key("summary") {
            errs.errors.insert(
                "summary".into(),
                "You must specify a summary of the issue.".into(),
            );
        }
        let (Some(project), Some(issue_type)) = (project, issue_type) else {
            return Err(errs);
        };
        let mut rest = write.clone();
        rest.fields.remove("project");
        rest.fields.remove("issuetype");
        let plan = match self.plan(&project.key, &issue_type, None, &rest) {
            Ok(plan) => plan,
            Err(e) => {
                errs.absorb(e);
                return Err(errs);
            }
        };
        if !errs.is_empty() {
            return Err(errs);
        }
        let state = &mut self.state;
        let id = state.next_issue_id;
        state.next_issue_id += 1;
        let number = state.key_counters.entry(project.key.clone()).or_insert(0);
        *number += 1;
        let mut issue = Issue {
            id,
            key: format!("{}-{}", project.key, number),
            project_key: project.key.clone(),
            issue_type_id: issue_type.id.clone(),
            status_id: self.catalog.initial_status().id.clone(),
            resolution_id: None,
            creator: actor.to_string(),
            fields: Default::default(),
            created: now,
            updated: now,
            resolution_date: None,
            status_category_changed: now,
            original_estimate_seconds: None,
            remaining_estimate_seconds: None,
            comments: Vec::new(),
            worklogs: Vec::new(),
            changelog: Vec::new(),
            properties: write.properties.iter().cloned().collect(),
            remote_links: Vec::new(),
        };
        issue.fields.insert("reporter".into(), json!(actor));
        issue.fields.insert("priority".into(), json!("3"));
        self.state.insert_issue(issue);
        // A create records no field history; apply the plan without one.
        self.apply_plan(id, actor, plan, now);
        let mut events = vec![SiteEvent::IssueCreated { issue_id: id }];
        if let Some(t) = transition_id {
            let tw = IssueWrite {
                history_metadata: write.history_metadata.clone(),
                ..Default::default()
            };
            match self.transition_issue(actor, id, t, &tw, now) {
                Ok(more) => events.extend(more),
                Err(e) => tracing::debug!(?e, "transition on create failed; issue kept"),
            }
        }
        self.save();
        Ok((id, events))
    }

    /// `PUT /issue/{k}`.
    pub fn edit_issue(
        &mut self,
        actor: &str,
        id: u64,
        write: &IssueWrite,
        now: DateTime<Utc>,
    ) -> ApiResult<Vec<SiteEvent>> {
        let issue = self
            .state
            .issues
            .get(&id)
            .ok_or_else(ApiError::issue_not_found)?;
        let issue_type = self.issue_type_of(issue);
        let plan = self.plan(&issue.project_key.clone(), &issue_type, Some(id), write)?;
        let mut items = Vec::new();
        let comments = self.apply_plan_items(id, actor, plan, now, &mut items);
        let events = self.commit_history(id, actor, items, write, comments, now);
        self.save();
        Ok(events)
    }

    /// `POST /issue/{k}/transitions`.
    pub fn transition_issue(
        &mut self,
        actor: &str,
        id: u64,
        transition_id: &str,
        write: &IssueWrite,
        now: DateTime<Utc>,
    ) -> ApiResult<Vec<SiteEvent>> {
        let issue = self
            .state
            .issues
            .get(&id)
            .ok_or_else(ApiError::issue_not_found)?;
        let transition = self
            .catalog
            .transitions_from(&issue.status_id)
            .find(|t| t.id == transition_id)
            .cloned()
            .ok_or_else(|| {
                ApiError::bad_request(format!(
                    "Transition id '{transition_id}' is not valid for this issue."
                ))
            })?;
        let issue_type = self.issue_type_of(issue);
        let plan = self.plan(&issue.project_key.clone(), &issue_type, Some(id), write)?;
        let mut items = Vec::new();
        let comments = self.apply_plan_items(id, actor, plan, now, &mut items);
        let catalog = &self.catalog;
        let issue = self.state.issues.get_mut(&id).expect("checked above");
        let from = catalog
            .status(&issue.status_id)
            .expect("issue status in catalog");
        let to = catalog
            .status(&transition.to)
            .expect("transition target in catalog");
        items.push(ChangeItem {
            field: "status".into(),
            fieldtype: "jira".into(),
            field_id: "status".into(),
            from: Some(from.id.clone()),
            from_string: Some(from.name.clone()),
            to: Some(to.id.clone()),
            to_string: Some(to.name.clone()),
        });
        if from.category_id != to.category_id {
            issue.status_category_changed = now;
        }
        // Entering a done status resolves the issue; leaving it clears the resolution.
        let (res_id, res_name) = catalog.done_resolution.clone();
        let done = to.category_id == 3;
        if done && issue.resolution_id.is_none() {
            items.push(resolution_item(None, Some((&res_id, &res_name))));
            issue.resolution_id = Some(res_id);
            issue.resolution_date = Some(now);
        } else if !done && issue.resolution_id.is_some() {
            items.push(resolution_item(Some((&res_id, &res_name)), None));
            issue.resolution_id = None;
            issue.resolution_date = None;
        }
        issue.status_id = to.id.clone();
        let events = self.commit_history(id, actor, items, write, comments, now);
        self.save();
        Ok(events)
    }

    /// `DELETE /issue/{k}`: an issue with sub-tasks needs `deleteSubtasks=true`.
    pub fn delete_issue(
        &mut self,
        id: u64,
        delete_subtasks: bool,
        now: DateTime<Utc>,
    ) -> ApiResult<Vec<SiteEvent>> {
        let issue = self
            .state
            .issues
            .get(&id)
            .ok_or_else(ApiError::issue_not_found)?;
        let subtasks: Vec<u64> = self
            .children(id)
            .filter(|c| self.issue_type_of(c).subtask)
            .map(|c| c.id)
            .collect();
        if !subtasks.is_empty() && !delete_subtasks {
            return Err(ApiError::bad_request(format!(
                // [U] wording.
                "The issue '{}' has subtasks. You must specify the 'deleteSubtasks' parameter to delete this issue with subtasks.",
                issue.key
            )));
        }
        let mut events = Vec::new();
        for sub in subtasks.into_iter().chain([id]) {
            let removed = self.state.remove_issue(sub).expect("listed above");
            for w in &removed.worklogs {
                self.state
                    .deleted_worklogs
                    .push(super::issue::DeletedWorklog {
                        worklog_id: w.id,
                        deleted_at: now,
                    });
            }
            events.push(SiteEvent::IssueDeleted {
                issue: Box::new(removed),
                cascade: sub != id,
            });
        }
        // Children of a deleted epic stay, without a parent.
        let orphans: Vec<u64> = self.state.children_ids(id).collect();
        for child in orphans {
            self.state.set_parent(child, None);
        }
        self.save();
        Ok(events)
    }

    pub fn issue_type_of(&self, issue: &Issue) -> IssueType {
        self.catalog
            .issue_type(&issue.issue_type_id)
            .cloned()
            .expect("issue type in catalog")
    }

    /// The issues whose parent is `id`, by ascending id (from the index, not a scan).
    pub fn children(&self, id: u64) -> impl Iterator<Item = &Issue> {
        self.state
            .children_ids(id)
            .filter_map(|c| self.state.issues.get(&c))
    }

    /// Applies a plan without recording history (create).
    fn apply_plan(&mut self, id: u64, actor: &str, plan: Plan, now: DateTime<Utc>) {
        let mut ignored = Vec::new();
        let comments = self.apply_plan_items(id, actor, plan, now, &mut ignored);
        for body in comments {
            let _ = self.push_comment(id, actor, body, None, now);
        }
    }

    /// Applies field values, appending a changelog item per real change. Returns comment
    /// bodies still to add (they become comments after the history is recorded).
    fn apply_plan_items(
        &mut self,
        id: u64,
        _actor: &str,
        plan: Plan,
        _now: DateTime<Utc>,
        items: &mut Vec<ChangeItem>,
    ) -> Vec<Value> {
        for (def, new) in plan.values {
            let old = self.state.issues[&id].fields.get(&def.id).cloned();
            if old == new {
                continue;
            }
            let (from, from_string) =
                fields::change_strings(&self.catalog, &self.state, &def, old.as_ref());
            let (to, to_string) =
                fields::change_strings(&self.catalog, &self.state, &def, new.as_ref());
            items.push(ChangeItem {
                field: fields::changelog_field_name(&def),
                fieldtype: if def.is_custom() { "custom" } else { "jira" }.into(),
                field_id: def.id.clone(),
                from,
                from_string,
                to,
                to_string,
            });
            if def.id == "parent" {
                // Through the state, so the parent → children index follows.
                self.state.set_parent(id, new);
                continue;
            }
            let issue = self.state.issues.get_mut(&id).expect("issue exists");
            match new {
                Some(v) => issue.fields.insert(def.id.clone(), v),
                None => issue.fields.remove(&def.id),
            };
        }
        if let Some((original, remaining)) = plan.estimates {
            let issue = self.state.issues.get_mut(&id).expect("issue exists");
            for (name, old, new) in [
                (
                    "timeoriginalestimate",
                    issue.original_estimate_seconds,
                    original,
                ),
                (
                    "timeestimate",
                    issue.remaining_estimate_seconds,
                    remaining.or(original),
                ),
            ] {
                if old != new {
                    let s = |v: Option<i64>| v.map(|v| v.to_string());
                    items.push(ChangeItem {
                        field: name.into(),
                        fieldtype: "jira".into(),
                        field_id: name.into(),
                        from: s(old),
                        from_string: s(old),
                        to: s(new),
                        to_string: s(new),
                    });
                }
            }
            issue.original_estimate_seconds = original;
            issue.remaining_estimate_seconds = remaining.or(original);
        }
        plan.comments
    }

    /// Records one history for `items` (if any), adds comments from `update.comment`, and
    /// returns the events.
    fn commit_history(
        &mut self,
        id: u64,
        actor: &str,
        items: Vec<ChangeItem>,
        write: &IssueWrite,
        comments: Vec<Value>,
        now: DateTime<Utc>,
    ) -> Vec<SiteEvent> {
        let mut events = Vec::new();
        let issue = self.state.issues.get_mut(&id).expect("issue exists");
        for (k, v) in &write.properties {
            issue.properties.insert(k.clone(), v.clone());
        }
        let history = (!items.is_empty()).then(|| {
            let h = History {
                id: self.state.next_history_id,
                author: actor.to_string(),
                created: now,
                items,
                history_metadata: write.history_metadata.clone(),
            };
            self.state.next_history_id += 1;
            issue.changelog.push(h.clone());
            issue.updated = now;
            h
        });
        let mut comment = None;
        for body in comments {
            if let Ok((c, mut evs)) = self.push_comment(id, actor, body, None, now) {
                comment = Some(c);
                events.append(&mut evs);
            }
        }
        if history.is_some() || comment.is_some() {
            events.insert(
                0,
                SiteEvent::IssueUpdated {
                    issue_id: id,
                    changelog: history,
                    comment,
                },
            );
        }
        events
    }
}

fn resolution_item(from: Option<(&String, &String)>, to: Option<(&String, &String)>) -> ChangeItem {
    ChangeItem {
        field: "resolution".into(),
        fieldtype: "jira".into(),
        field_id: "resolution".into(),
        from: from.map(|f| f.0.clone()),
        from_string: from.map(|f| f.1.clone()),
        to: to.map(|t| t.0.clone()),
        to_string: to.map(|t| t.1.clone()),
    }
}
