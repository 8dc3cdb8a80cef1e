//! Kafka clients for every sfjira stage, built on librdkafka (rdkafka).
//!
//! - [`client_config`] turns the deployment's `kafka` section into an rdkafka
//!   [`ClientConfig`]: `bootstrap_servers`, then every `properties` entry as-is (so
//!   `security.protocol`, `sasl.*`, `ssl.*` reach TLS/SASL clusters without code changes), then
//!   the `secret_properties` resolved from the environment or files.
//! - [`record`]: [`OutRecord`], an owned record to produce (the DLQ and the transactional
//!   producer both need to hold records past the borrow of a consumed message).
//! - [`producer`]: the idempotent producer (at-least-once into Kafka without duplicates from
//!   producer retries).
//! - [`transaction`]: the transactional producer (consume-transform-produce exactly once).
//! - [`reader`]: reads a topic from given offsets to its current end, outside any group
//!   (checkpoints, DLQ backlogs).
//! - [`consumer`]: the `read_committed` consumer with manual commits and an
//!   [`consumer::OffsetTracker`] so shutdown commits exactly what was processed.
//! - [`offset_watch`]: the consumer's watchdog for a group whose committed offsets cannot be
//!   fetched (a hanging transaction), reported in logs, metrics and `/readyz`.
//!
//! rdkafka's transactional calls block the calling thread; they run on tokio's blocking pool
//! so they never stall the async workers.

pub mod consumer;
pub mod offset_watch;
pub mod producer;
pub mod reader;
pub mod record;
pub mod transaction;

pub use consumer::{KafkaConsumer, OffsetTracker};
pub use offset_watch::{CommittedOffsetWatch, OffsetStall, OffsetWatchSettings, StallCause};
pub use producer::IdempotentProducer;
pub use reader::{latest_by_key, read_to_end};
pub use record::OutRecord;
pub use transaction::{TransactionalProducer, TxnError};

use rdkafka::config::ClientConfig;

use crate::config::KafkaConfig;

/// The rdkafka configuration every client of this deployment starts from.
pub fn client_config(kafka: &KafkaConfig) -> ClientConfig {
    let mut cfg = ClientConfig::new();
    cfg.set("bootstrap.servers", &kafka.bootstrap_servers);
    for (key, value) in &kafka.properties {
        cfg.set(key, value);
    }
    for (key, secret) in &kafka.secret_properties {
        cfg.set(key, secret.expose());
    }
    cfg
}

/// The topic name for `base` in this deployment (`kafka.topic_prefix` + base).
pub fn topic_name(kafka: &KafkaConfig, base: &str) -> String {
    format!("{}{}", kafka.topic_prefix, base)
}
