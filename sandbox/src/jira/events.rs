//! Where committed changes go: every [`SiteEvent`] the site model returns is handed to the
//! registered [`SiteEventSink`]s while the site lock is still held, so a sink renders the
//! issue exactly as the change left it. Webhook delivery (`webhooks/`, J2) registers itself as
//! a sink; the hub also keeps the last events for `GET /__admin/jira/events`, which tests use
//! to see what a write fired.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, RwLock};

use chrono::{DateTime, Utc};
use serde_json::{Value, json};

use super::site::{Site, SiteEvent};
use super::time_format::rfc3339;

/// Something that reacts to committed changes (webhook dispatch, recorders).
pub trait SiteEventSink: Send + Sync {
    /// Called once per event, in commit order, with the site after the change.
    fn publish(&self, site: &Site, actor: &str, event: &SiteEvent, at: DateTime<Utc>);
}

const KEPT_EVENTS: usize = 1000;

/// The fan-out point shared by the REST and admin handlers.
#[derive(Default)]
pub struct EventHub {
    sinks: RwLock<Vec<Arc<dyn SiteEventSink>>>,
    recent: Mutex<VecDeque<Value>>,
}

impl EventHub {
    pub fn add_sink(&self, sink: Arc<dyn SiteEventSink>) {
        self.sinks
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .push(sink);
    }

    pub fn publish(&self, site: &Site, actor: &str, events: &[SiteEvent], at: DateTime<Utc>) {
        let sinks = self.sinks.read().unwrap_or_else(|p| p.into_inner());
        let mut recent = self.recent.lock().unwrap_or_else(|p| p.into_inner());
        for event in events {
            for sink in sinks.iter() {
                sink.publish(site, actor, event, at);
            }
            recent.push_back(summary(actor, event, at));
            if recent.len() > KEPT_EVENTS {
                recent.pop_front();
            }
        }
    }

    /// The last events, oldest first (admin API).
    pub fn recent(&self) -> Vec<Value> {
        self.recent
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .cloned()
            .collect()
    }

    pub fn clear(&self) {
        self.recent
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clear();
    }
}

fn summary(actor: &str, event: &SiteEvent, at: DateTime<Utc>) -> Value {
    let (issue_id, detail) = match event {
        SiteEvent::IssueCreated { issue_id } => (*issue_id, Value::Null),
        SiteEvent::IssueUpdated {
            issue_id,
            changelog,
            comment,
        } => (
            *issue_id,
            json!({
                "changelogId": changelog.as_ref().map(|h| h.id),
                "fields": changelog.as_ref().map(|h| h.items.iter().map(|i| i.field_id.clone()).collect::<Vec<_>>()),
                "historyMetadata": changelog.as_ref().and_then(|h| h.history_metadata.clone()),
                "commentId": comment.as_ref().map(|c| c.id),
            }),
        ),
        SiteEvent::IssueDeleted { issue, cascade } => {
            (issue.id, json!({"key": issue.key, "cascade": cascade}))
        }
        SiteEvent::CommentCreated { issue_id, comment }
        | SiteEvent::CommentUpdated { issue_id, comment }
        | SiteEvent::CommentDeleted { issue_id, comment } => {
            (*issue_id, json!({"commentId": comment.id}))
        }
        SiteEvent::WorklogCreated { issue_id, worklog }
        | SiteEvent::WorklogUpdated { issue_id, worklog }
        | SiteEvent::WorklogDeleted { issue_id, worklog } => {
            (*issue_id, json!({"worklogId": worklog.id}))
        }
        SiteEvent::PropertySet { issue_id, key } => (*issue_id, json!({"propertyKey": key})),
    };
    json!({"webhookEvent": event.webhook_name(), "issueId": issue_id.to_string(), "actor": actor, "at": rfc3339(at), "detail": detail})
}
