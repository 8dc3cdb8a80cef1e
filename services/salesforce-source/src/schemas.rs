//! Change-event schemas by Salesforce schema id: `GetSchema` once per id, then cached (an
//! event names its schema id; a new Salesforce schema version is a new id).
//!
//! A `GetSchema` that fails for a reason other than the session (the service unavailable, a
//! timeout) is retried with backoff and jitter within `salesforce_source.schema_retry`; once
//! that is spent the event is [`Unusable`] (SFJ-6005) and goes to the DLQ, so one outage of
//! the schema service cannot hold the stream forever. Nothing is cached then: the next event
//! naming that id asks again. A refused session is the caller's to handle (log in again and
//! resubscribe: the event comes again).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::SystemTime;

use sfjira_core::dlq::Attempts;
use sfjira_core::errors::{ErrorCode, StageError};
use sfjira_core::retry::RetryPolicy;
use tokio::sync::watch;
use tonic::transport::Channel;

use crate::auth::Session;
use crate::decode::EventSchema;
use crate::pubsub::{self, PubSubError};

/// Why an event cannot be published (it goes to the DLQ), and how often it was tried.
#[derive(Debug)]
pub struct Unusable {
    pub error: StageError,
    pub attempts: Attempts,
}

impl Unusable {
    /// A failure on the first try (nothing worth retrying).
    pub fn once(error: StageError) -> Self {
        Unusable {
            error,
            attempts: Attempts::once(),
        }
    }
}

/// The schemas fetched so far, and how `GetSchema` failures are retried.
pub struct Schemas {
    cache: HashMap<String, Arc<EventSchema>>,
    retry: RetryPolicy,
    /// Ends a retry wait when the source stops.
    stop: watch::Receiver<bool>,
}

impl Schemas {
    pub fn new(retry: RetryPolicy, stop: watch::Receiver<bool>) -> Self {
        Schemas {
            cache: HashMap::new(),
            retry,
            stop,
        }
    }

    /// The schema of `id`. `Ok(Err)` when it cannot be used (the event goes to the DLQ): it
    /// does not parse, or `GetSchema` kept failing until the retry budget was spent. `Err`
    /// when the session was refused, or the source is stopping.
    pub async fn get(
        &mut self,
        grpc: &Channel,
        session: &Session,
        channel: &str,
        id: &str,
    ) -> Result<Result<Arc<EventSchema>, Unusable>, PubSubError> {
        if let Some(s) = self.cache.get(id) {
            return Ok(Ok(s.clone()));
        }
        let mut backoff = self.retry.backoff();
        let json = loop {
            let e = match pubsub::get_schema(grpc, session, id).await {
                Ok(json) => break json,
                Err(e @ PubSubError::Unauthenticated(_)) => return Err(e),
                Err(e) => e,
            };
            let Some(delay) = backoff.next_delay(None) else {
                let attempts = Attempts {
                    count: backoff.attempts(),
                    first_failed_at: backoff.first_failed_at().unwrap_or_else(SystemTime::now),
                };
                let error = StageError::new(
                    ErrorCode::SalesforceSchemaUnavailable,
                    format!(
                        "GetSchema {id}: {e} (gave up after {} tries in {:.1} s)",
                        attempts.count,
                        backoff.elapsed().as_secs_f64()
                    ),
                );
                return Ok(Err(Unusable { error, attempts }));
            };
            tracing::warn!(%channel, schema_id = %id, error = %e,
                attempt = backoff.attempts(), ?delay, "GetSchema failed; retrying");
            tokio::select! {
                () = tokio::time::sleep(delay) => {}
                _ = self.stop.changed() => {
                    return Err(PubSubError::Other("the source is stopping".into()));
                }
            }
        };
        match EventSchema::parse(id, &json) {
            Ok(s) => {
                let s = Arc::new(s);
                self.cache.insert(id.to_string(), s.clone());
                Ok(Ok(s))
            }
            Err(e) => Ok(Err(Unusable::once(StageError::new(
                ErrorCode::SalesforceSchemaUnusable,
                e.to_string(),
            )))),
        }
    }
}
