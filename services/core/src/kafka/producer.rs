//! The idempotent producer: at-least-once into Kafka with no duplicates from the producer's own
//! retries (`enable.idempotence=true`, which implies `acks=all`). Stages that must not write
//! twice on a crash use [`super::TransactionalProducer`] instead.
//!
//! Every send opens a `send <topic>` span and writes its W3C trace context into the record's
//! headers, so the consumer's `process <topic>` span continues the same trace.

use std::time::Duration;

use rdkafka::config::ClientConfig;
use rdkafka::error::KafkaError;
use rdkafka::producer::{FutureProducer, Producer};
use rdkafka::util::Timeout;
use tracing::Instrument;

use super::OutRecord;
use crate::errors::{ErrorCode, StageError};
use crate::telemetry::{messaging, propagation};

/// How long `send` waits for the broker's acknowledgement, queueing included.
const DEFAULT_DELIVERY_TIMEOUT: Duration = Duration::from_secs(30);

#[derive(Clone)]
pub struct IdempotentProducer {
    inner: FutureProducer,
    delivery_timeout: Duration,
}

impl IdempotentProducer {
    /// Builds the producer from the deployment's base config (see [`super::client_config`]).
    pub fn new(base: &ClientConfig) -> Result<Self, KafkaError> {
        let mut cfg = base.clone();
        cfg.set("enable.idempotence", "true");
        if cfg.get("message.timeout.ms").is_none() {
            cfg.set(
                "message.timeout.ms",
                DEFAULT_DELIVERY_TIMEOUT.as_millis().to_string(),
            );
        }
        Ok(IdempotentProducer {
            inner: cfg.create()?,
            delivery_timeout: DEFAULT_DELIVERY_TIMEOUT,
        })
    }

    /// Sends one record and waits until the broker has it. Returns its (partition, offset).
    pub async fn send(&self, record: &OutRecord) -> Result<(i32, i64), StageError> {
        let key = record.key.as_deref().map(String::from_utf8_lossy);
        let span = messaging::send_span(&record.topic, key.as_deref());
        async {
            let headers = propagation::inject_current_context(record.owned_headers());
            let delivery = self
                .inner
                .send(
                    record.as_future_record(headers),
                    Timeout::After(self.delivery_timeout),
                )
                .await;
            match delivery {
                Ok(d) => Ok((d.partition, d.offset)),
                Err((err, _)) => Err(produce_error(&record.topic, err)),
            }
        }
        .instrument(span)
        .await
    }

    /// Waits until every queued record is delivered (or `timeout` passes).
    pub fn flush(&self, timeout: Duration) -> Result<(), KafkaError> {
        self.inner.flush(timeout)
    }

    /// The underlying rdkafka producer, for what this wrapper does not cover.
    pub fn inner(&self) -> &FutureProducer {
        &self.inner
    }
}

pub(crate) fn produce_error(topic: &str, err: KafkaError) -> StageError {
    use rdkafka::types::RDKafkaErrorCode as C;
    let code = match err.rdkafka_error_code() {
        Some(C::UnknownTopicOrPartition | C::UnknownTopic) => ErrorCode::TopicMissing,
        _ => ErrorCode::KafkaProduceFailed,
    };
    StageError::caused_by(code, format!("producing to {topic}"), err)
}
