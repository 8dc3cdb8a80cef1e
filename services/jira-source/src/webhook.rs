//! The webhook receiver: `POST /webhooks/jira` for Jira's admin webhooks.
//!
//! 1. **Signature.** `X-Hub-Signature: <method>=<hex>`; the method is parsed from the header
//!    (only `sha256` exists today; any other is refused) and the HMAC of the raw body with
//!    `jira_source.webhook_secret` is compared in constant time (`Mac::verify_slice`). Unsigned
//!    or forged deliveries get 401 and nothing is published or recorded.
//! 2. **Size.** Bodies over `jira_source.max_body_bytes` get 413 before they are read whole.
//! 3. **Durable deduplication.** A delivery's `X-Atlassian-Webhook-Identifier` (the same on
//!    every retry) is written to `sfjira.checkpoints` (`jira-source:webhook:<id>`) in the same
//!    Kafka transaction as the records it produced, and the whole set is loaded at start
//!    (`state.rs`). So a retry — even one arriving after a restart or a `kill -9` — of a
//!    delivery whose records were committed is answered 200 and publishes nothing; a delivery
//!    whose transaction never committed is not recorded either, and its retry publishes.
//! 4. **Malformed JSON** gets 400 after the raw body is committed to `jira-source.dlq`
//!    (code SFJ-7001); a JSON event lacking what the canonical record needs likewise (SFJ-7002).
//! 5. **Acknowledgement.** 200 only after the transaction holding the records committed; if
//!    Kafka is unavailable (not connected yet, or the transaction fails) the answer is 503 so
//!    Jira retries. Nothing acknowledged is lost.
//! 6. **Order.** Before an `jira:issue_updated` is published, the issue's changelog is read
//!    (`GET /issue/{id}?expand=changelog`) and history entries newer than what was published
//!    but older than the delivered one are published first (origin POLL), so a delivery that
//!    overtook an earlier one loses no change; the late one is then dropped as older
//!    (`state.rs`). If Jira cannot be read the answer is 503 and Jira retries.

use std::collections::HashMap;
use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use hmac::{Hmac, Mac};
use serde_json::Value;
use sfjira_core::config::Secret;
use sfjira_core::dlq::{Attempts, DlqRouter, FailedAt, FailedRecord};
use sfjira_core::errors::{ErrorCode, StageError};
use sfjira_core::kafka::OutRecord;
use sha2::Sha256;

use crate::canonical::{self, ChangeContext, Event, Origin};
use crate::jira::JiraClient;
use crate::metrics as m;
use crate::publisher::{Batch, PublishError, Publisher, now_ms};
use crate::state::Entity;

pub const PATH: &str = "/webhooks/jira";
const H_SIGNATURE: &str = "x-hub-signature";
const H_IDENTIFIER: &str = "x-atlassian-webhook-identifier";
const JIRA_READ_BUDGET: std::time::Duration = std::time::Duration::from_secs(12);

/// Whether `header` (`method=hex`) is the HMAC of `body` with `secret`; constant time.
pub fn verify_signature(header: &str, secret: &[u8], body: &[u8]) -> bool {
    let Some((method, hex)) = header.trim().split_once('=') else {
        return false;
    };
    if !method.eq_ignore_ascii_case("sha256") || hex.len() != 64 || !hex.is_ascii() {
        return false;
    }
    let Some(sig) = (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).ok())
        .collect::<Option<Vec<u8>>>()
    else {
        return false;
    };
    let mut mac = Hmac::<Sha256>::new_from_slice(secret).expect("HMAC takes any key length");
    mac.update(body);
    mac.verify_slice(&sig).is_ok()
}

/// What the handler needs.
pub struct Receiver {
    pub publisher: Arc<Publisher>,
    pub jira: Arc<JiraClient>,
    pub secret: Secret,
    pub dlq: DlqRouter,
}

/// The router serving [`PATH`].
pub fn router(receiver: Arc<Receiver>, max_body_bytes: usize) -> Router {
    Router::new()
        .route(PATH, post(receive))
        .layer(DefaultBodyLimit::max(max_body_bytes))
        .with_state(receiver)
}

async fn receive(State(r): State<Arc<Receiver>>, headers: HeaderMap, body: Bytes) -> StatusCode {
    m::delivery("received");
    let signature = headers.get(H_SIGNATURE).and_then(|v| v.to_str().ok());
    if !signature.is_some_and(|s| verify_signature(s, r.secret.expose().as_bytes(), &body)) {
        m::delivery("rejected");
        tracing::warn!(code = %ErrorCode::JiraSignatureInvalid, signed = signature.is_some(), "webhook delivery refused");
        return StatusCode::UNAUTHORIZED;
    }
    m::delivery("verified");
    let identifier = headers
        .get(H_IDENTIFIER)
        .and_then(|v| v.to_str().ok())
        .map(String::from);
    if let Some(id) = &identifier {
        match r.publisher.with_state(|s| s.seen_webhook(id)).await {
            None => return StatusCode::SERVICE_UNAVAILABLE,
            Some(true) => {
                m::delivery("duplicate");
                return StatusCode::OK;
            }
            Some(false) => {}
        }
    }
    let webhook = identifier.clone().map(|id| (id, now_ms()));
    let payload = match serde_json::from_slice::<Value>(&body) {
        Ok(v @ Value::Object(_)) => v,
        Ok(_) | Err(_) => {
            let err = StageError::new(
                ErrorCode::JiraWebhookMalformed,
                "the body is not a JSON object",
            );
            return r
                .dead_letter(&headers, &body, err, webhook, StatusCode::BAD_REQUEST)
                .await;
        }
    };
    // Jira waits 20 s for an answer: a slow or rate-limited Jira read becomes a 503 (and a
    // retry) well before that.
    let events = tokio::time::timeout(JIRA_READ_BUDGET, r.events(&payload, identifier.as_deref()));
    let events = match events.await {
        Err(_) => {
            tracing::warn!("reading Jira took too long; asking Jira to retry");
            return StatusCode::SERVICE_UNAVAILABLE;
        }
        Ok(Ok(e)) => e,
        Ok(Err(EventsError::Unusable(why))) => {
            let err = StageError::new(ErrorCode::JiraEventUnusable, why.0);
            return r
                .dead_letter(&headers, &body, err, webhook, StatusCode::BAD_REQUEST)
                .await;
        }
        Ok(Err(EventsError::Jira(e))) => {
            tracing::warn!(error = %e, "cannot read the issue's changelog; asking Jira to retry");
            return StatusCode::SERVICE_UNAVAILABLE;
        }
    };
    let batch = Batch {
        events,
        webhook: webhook.clone(),
        ..Batch::default()
    };
    match r.publisher.publish(batch).await {
        Ok(outcome) => {
            if outcome.duplicate_delivery {
                m::delivery("duplicate");
            }
            m::published(outcome.published, outcome.dropped);
            StatusCode::OK
        }
        Err(PublishError::Encode(err)) => {
            r.dead_letter(&headers, &body, err, webhook, StatusCode::BAD_REQUEST)
                .await
        }
        Err(e) => {
            tracing::warn!(error = %e, "not acknowledged; Jira will retry");
            StatusCode::SERVICE_UNAVAILABLE
        }
    }
}

enum EventsError {
    Unusable(canonical::Unusable),
    Jira(crate::jira::JiraError),
}

impl From<canonical::Unusable> for EventsError {
    fn from(e: canonical::Unusable) -> Self {
        EventsError::Unusable(e)
    }
}

impl Receiver {
    /// The canonical events of a delivery, preceded by any changelog gap (see the module comment).
    async fn events(&self, p: &Value, webhook_id: Option<&str>) -> Result<Vec<Event>, EventsError> {
        let kind = p.get("webhookEvent").and_then(Value::as_str).unwrap_or("");
        let timestamp = p
            .get("timestamp")
            .and_then(Value::as_i64)
            .unwrap_or_else(now_ms);
        let actor = p
            .pointer("/user/accountId")
            .and_then(Value::as_str)
            .map(String::from);
        let issue = p.get("issue").unwrap_or(&Value::Null);
        let issue_id = issue.get("id").and_then(Value::as_str).unwrap_or("");
        let issue_key = issue.get("key").and_then(Value::as_str).unwrap_or("");
        match kind {
            "jira:issue_created" | "jira:issue_updated" | "jira:issue_deleted" => {
                let names = self.names(issue).await;
                let change = ChangeContext {
                    event_type: kind,
                    origin: Origin::Webhook,
                    webhook_id,
                    timestamp,
                    actor,
                    changelog: p.get("changelog"),
                };
                let event = canonical::issue_event(issue, &change, &names)?;
                let mut out = Vec::new();
                if kind == "jira:issue_updated" {
                    out = self.gap(&event, &names).await?;
                }
                out.push(event);
                Ok(out)
            }
            "comment_created" | "comment_updated" | "comment_deleted" => {
                let comment = p.get("comment").unwrap_or(&Value::Null);
                Ok(vec![canonical::comment_event(
                    kind,
                    Origin::Webhook,
                    webhook_id,
                    timestamp,
                    issue_id,
                    issue_key,
                    comment,
                )?])
            }
            "worklog_created" | "worklog_updated" | "worklog_deleted" => {
                let worklog = p.get("worklog").unwrap_or(&Value::Null);
                let id = worklog
                    .get("issueId")
                    .and_then(Value::as_str)
                    .unwrap_or(issue_id)
                    .to_string();
                let key = if issue_key.is_empty() {
                    // Worklog payloads carry only `issueId` (reference §5).
                    match self.jira.issue(&id).await.map_err(EventsError::Jira)? {
                        Some(i) => i
                            .get("key")
                            .and_then(Value::as_str)
                            .unwrap_or(&id)
                            .to_string(),
                        None => id.clone(),
                    }
                } else {
                    issue_key.to_string()
                };
                Ok(vec![canonical::worklog_event(
                    kind,
                    Origin::Webhook,
                    webhook_id,
                    timestamp,
                    &key,
                    worklog,
                )?])
            }
            other => {
                tracing::debug!(event = other, "webhook event not captured");
                Ok(Vec::new())
            }
        }
    }

    /// Custom field names for the fields `issue` carries (ids as names if Jira cannot say).
    async fn names(&self, issue: &Value) -> HashMap<String, String> {
        let ids: Vec<&str> = issue
            .get("fields")
            .and_then(Value::as_object)
            .map(|f| {
                f.keys()
                    .filter(|k| k.starts_with("customfield_"))
                    .map(String::as_str)
                    .collect()
            })
            .unwrap_or_default();
        if ids.is_empty() {
            return HashMap::new();
        }
        self.jira.field_names(&ids).await.unwrap_or_else(|e| {
            tracing::warn!(error = %e, "cannot read field names; custom fields keep their ids as names");
            HashMap::new()
        })
    }

    /// History entries of the issue newer than what was published and older than `event`.
    async fn gap(
        &self,
        event: &Event,
        names: &HashMap<String, String>,
    ) -> Result<Vec<Event>, EventsError> {
        let entity = Entity::Issue(event.issue_id.clone());
        let published = self
            .publisher
            .with_state(|s| s.published(&entity))
            .await
            .flatten();
        let Some(issue) = self
            .jira
            .issue(&event.issue_id)
            .await
            .map_err(EventsError::Jira)?
        else {
            return Ok(Vec::new());
        };
        let floor = published.as_ref().map_or(0, |p| p.changelog);
        let mut out = Vec::new();
        if published.is_none() {
            out.push(crate::poller::created_event(&issue, names)?);
        }
        for h in crate::poller::histories(&issue) {
            let id = h
                .get("id")
                .and_then(|v| {
                    v.as_str()
                        .and_then(|s| s.parse::<u64>().ok())
                        .or(v.as_u64())
                })
                .unwrap_or(0);
            let created = h
                .get("created")
                .and_then(Value::as_str)
                .and_then(canonical::parse_time)
                .unwrap_or(0);
            let before = match event.version.changelog {
                Some(c) => id < c,
                None => created <= event.version.updated,
            };
            if id > floor && before {
                out.push(crate::poller::history_event(&issue, h, names)?);
            }
        }
        Ok(out)
    }

    async fn dead_letter(
        &self,
        headers: &HeaderMap,
        body: &Bytes,
        err: StageError,
        webhook: Option<(String, i64)>,
        answer: StatusCode,
    ) -> StatusCode {
        let mut record = OutRecord::new(PATH).payload(body.to_vec());
        for name in [
            H_IDENTIFIER,
            "x-atlassian-webhook-retry",
            "x-atlassian-webhook-flow",
            "content-type",
        ] {
            if let Some(v) = headers.get(name) {
                record.set_header(name, v.as_bytes());
            }
        }
        let failed = FailedRecord {
            topic: PATH.to_string(),
            partition: -1,
            offset: -1,
            record,
        };
        let letter = self
            .dlq
            .dead_letter(&failed, &err, FailedAt::TaskPoll, Attempts::once());
        tracing::warn!(code = %err.code, error = %err, "webhook delivery dead-lettered");
        let batch = Batch {
            webhook,
            dead_letters: vec![letter],
            ..Batch::default()
        };
        match self.publisher.publish(batch).await {
            Ok(_) => answer,
            Err(e) => {
                tracing::warn!(error = %e, "cannot record the dead letter; Jira will retry");
                StatusCode::SERVICE_UNAVAILABLE
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::verify_signature;

    #[test]
    fn atlassians_published_test_vector_verifies() {
        let secret = b"It's a Secret to Everybody";
        let header = "sha256=a4771c39fbe90f317c7824e83ddef3caae9cb3d976c214ace1f2937e133263c9";
        assert!(verify_signature(header, secret, b"Hello World!"));
        assert!(verify_signature(
            &header.to_uppercase().replacen("SHA256", "sha256", 1),
            secret,
            b"Hello World!"
        ));
        assert!(!verify_signature(header, secret, b"Hello World?"));
        assert!(!verify_signature(
            header,
            b"another secret",
            b"Hello World!"
        ));
        assert!(!verify_signature(
            &header.replace("sha256", "sha1"),
            secret,
            b"Hello World!"
        ));
        assert!(!verify_signature("a4771c39", secret, b"Hello World!"));
        assert!(!verify_signature("sha256=zz", secret, b"Hello World!"));
    }
}
