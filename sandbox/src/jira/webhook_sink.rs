//! The bridge from committed site changes to J2's webhook delivery: turns each [`SiteEvent`]
//! into Jira's envelope (built with `webhooks::payload`) and hands it to
//! [`WebhookDispatcher::dispatch`] together with a JQL view of the issue, so registrations'
//! filters see the issue exactly as the change left it.
//!
//! Payload issues use **v2** `self` links, as real deliveries do (reference §5). Property
//! events (`issue_property_set`) have no payload builder yet and are not delivered.

use chrono::{DateTime, Utc};
use serde_json::Value;

use super::events::SiteEventSink;
use super::rest::search_http::{SearchView, SiteResolver};
use super::site::issue::{Comment, History, Issue, Worklog};
use super::site::render::{self, Expand, FieldSelection};
use super::site::{Site, SiteEvent};
use super::webhooks::payload::{self, ChangeItem, Changelog, EventName};
use super::webhooks::{Flow, WebhookDispatcher, WebhookEvent};

pub struct WebhookSink {
    pub dispatcher: WebhookDispatcher,
}

/// Rewrites REST v3 links to v2, the form webhook payloads carry.
fn v2_links(v: Value) -> Value {
    let text = v.to_string().replace("/rest/api/3/", "/rest/api/2/");
    serde_json::from_str(&text).unwrap_or(v)
}

fn user_json(site: &Site, account_id: &str) -> Value {
    match site.catalog.user(account_id) {
        Some(u) => payload::user(&site.base_url, &u.account_id, &u.display_name, &u.time_zone),
        None => payload::user(&site.base_url, account_id, account_id, "Etc/UTC"),
    }
}

fn issue_json(site: &Site, issue: &Issue) -> Value {
    v2_links(site.render_issue(issue, &FieldSelection::all(), Expand::default()))
}

/// The short issue of comment events (id, self, key, a few fields).
fn short_issue_json(site: &Site, issue: &Issue) -> Value {
    let sel = FieldSelection::parse(["summary,status,priority,assignee,issuetype,project"]);
    let mut v = site.render_issue(issue, &sel, Expand::default());
    if let Some(m) = v.as_object_mut() {
        m.remove("expand");
    }
    v2_links(v)
}

fn comment_json(site: &Site, issue_id: u64, c: &Comment) -> Value {
    v2_links(render::comment(&site.catalog, &site.base_url, issue_id, c))
}

fn worklog_json(site: &Site, w: &Worklog) -> Value {
    v2_links(render::worklog(&site.catalog, &site.base_url, w))
}

fn changelog(h: &History) -> Changelog {
    Changelog {
        id: h.id,
        items: h
            .items
            .iter()
            .map(|i| ChangeItem {
                field: i.field.clone(),
                fieldtype: i.fieldtype.clone(),
                field_id: Some(i.field_id.clone()),
                from: i.from.clone(),
                from_string: i.from_string.clone(),
                to: i.to.clone(),
                to_string: i.to_string.clone(),
            })
            .collect(),
    }
}

/// Jira's `issue_event_type_name` for an update.
fn update_type(history: Option<&History>, has_comment: bool) -> &'static str {
    let fields: Vec<&str> = history
        .map(|h| h.items.iter().map(|i| i.field_id.as_str()).collect())
        .unwrap_or_default();
    if fields.is_empty() && has_comment {
        "issue_commented"
    } else if fields.contains(&"status") || fields.contains(&"resolution") {
        "issue_generic"
    } else if fields == ["assignee"] {
        "issue_assigned"
    } else {
        "issue_updated"
    }
}

impl SiteEventSink for WebhookSink {
    fn publish(&self, site: &Site, actor: &str, event: &SiteEvent, at: DateTime<Utc>) {
        let user = user_json(site, actor);
        let issue_of = |id: u64| site.state.issues.get(&id);
        let (issue, payload): (Option<&Issue>, Value) = match event {
            SiteEvent::IssueCreated { issue_id } => {
                let Some(i) = issue_of(*issue_id) else { return };
                (
                    Some(i),
                    payload::issue_created(at, user, issue_json(site, i)),
                )
            }
            SiteEvent::IssueUpdated {
                issue_id,
                changelog: h,
                comment,
            } => {
                let Some(i) = issue_of(*issue_id) else { return };
                let cl = h.as_ref().map(changelog);
                let c = comment.as_ref().map(|c| comment_json(site, i.id, c));
                let kind = update_type(h.as_ref(), comment.is_some());
                (
                    Some(i),
                    payload::issue_updated(at, kind, user, issue_json(site, i), cl.as_ref(), c),
                )
            }
            SiteEvent::IssueDeleted { issue, .. } => (
                Some(issue.as_ref()),
                payload::issue_deleted(at, user, issue_json(site, issue)),
            ),
            SiteEvent::CommentCreated { issue_id, comment }
            | SiteEvent::CommentUpdated { issue_id, comment }
            | SiteEvent::CommentDeleted { issue_id, comment } => {
                let Some(i) = issue_of(*issue_id) else { return };
                let name = match event {
                    SiteEvent::CommentCreated { .. } => EventName::CommentCreated,
                    SiteEvent::CommentUpdated { .. } => EventName::CommentUpdated,
                    _ => EventName::CommentDeleted,
                };
                (
                    Some(i),
                    payload::comment_event(
                        name,
                        at,
                        comment_json(site, i.id, comment),
                        short_issue_json(site, i),
                    ),
                )
            }
            SiteEvent::WorklogCreated { issue_id, worklog }
            | SiteEvent::WorklogUpdated { issue_id, worklog }
            | SiteEvent::WorklogDeleted { issue_id, worklog } => {
                let name = match event {
                    SiteEvent::WorklogCreated { .. } => EventName::WorklogCreated,
                    SiteEvent::WorklogUpdated { .. } => EventName::WorklogUpdated,
                    _ => EventName::WorklogDeleted,
                };
                (
                    issue_of(*issue_id),
                    payload::worklog_event(name, at, worklog_json(site, worklog)),
                )
            }
            SiteEvent::PropertySet { .. } => return,
        };
        let view = issue.map(|i| SearchView::new(site, i));
        let resolver = SiteResolver {
            site,
            caller: Some(actor.to_string()),
        };
        self.dispatcher.dispatch(WebhookEvent {
            name: event.webhook_name().to_string(),
            payload,
            issue: view.as_ref().map(|v| v as &dyn super::jql::JqlIssue),
            resolver: &resolver,
            flow: match event {
                SiteEvent::IssueDeleted { cascade: true, .. } => Flow::Secondary,
                _ => Flow::Primary,
            },
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn links_become_v2() {
        let v = v2_links(json!({"self": "http://h/rest/api/3/issue/1"}));
        assert_eq!(v["self"], "http://h/rest/api/2/issue/1");
    }
}
