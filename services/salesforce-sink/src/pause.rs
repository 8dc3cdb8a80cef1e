//! The pause after `REQUEST_LIMIT_EXCEEDED`, on the Kafka side: the assigned partitions are
//! paused and the consumer keeps being polled, so the group membership survives a pause longer
//! than `max.poll.interval.ms`; records already fetched are kept for the next batch.

use std::sync::Mutex;
use std::time::Duration;

use futures::future::BoxFuture;
use rdkafka::consumer::Consumer;
use rdkafka::message::OwnedMessage;
use sfjira_core::kafka::KafkaConsumer;
use tokio::time::Instant;

use crate::api::Pauser;

/// Pauses the assigned partitions and keeps polling (so the group membership survives a long
/// pause); records already fetched are kept for the next batch.
pub struct ConsumerPauser<'a> {
    pub consumer: &'a KafkaConsumer,
    pub backlog: &'a Mutex<Vec<OwnedMessage>>,
}

impl Pauser for ConsumerPauser<'_> {
    fn pause(&self, for_: Duration) -> BoxFuture<'_, ()> {
        Box::pin(async move {
            let inner = self.consumer.inner();
            let assignment = inner.assignment().unwrap_or_default();
            if let Err(e) = inner.pause(&assignment) {
                tracing::warn!(error = %e, "pausing the partitions failed");
            }
            let deadline = Instant::now() + for_;
            loop {
                match tokio::time::timeout_at(deadline, self.consumer.recv()).await {
                    Ok(Ok(m)) => self.backlog.lock().expect("backlog").push(m.detach()),
                    Ok(Err(e)) => tracing::warn!(error = %e, "consumer error while paused"),
                    Err(_) => break,
                }
            }
            if let Err(e) = inner.resume(&assignment) {
                tracing::warn!(error = %e, "resuming the partitions failed");
            }
        })
    }
}
