//! Turning decoded changes (and events that cannot be published) into Kafka records for `salesforce.cdc.<Entity>`: key = record Id,
//! value = the change event as typed Avro (Confluent wire format) under `<topic>-value`.
//!
//! Each Salesforce schema id is registered once (cached here by topic and schema id); a new
//! Salesforce schema version is a new schema id, so it registers as a new version of the
//! subject (BACKWARD, set by `AvroCodec::register`) while the source runs.

use std::collections::HashMap;
use std::sync::Arc;

use sfjira_core::avro::{AvroCodec, WriterSchema};
use sfjira_core::dlq::{Attempts, DlqRouter, FailedAt, FailedRecord};
use sfjira_core::errors::StageError;
use sfjira_core::kafka::OutRecord;

use crate::decode::{Change, EventSchema};
use crate::proto::ProducerEvent;

/// The topic base name of an entity.
pub fn topic_for(prefix: &str, entity: &str) -> String {
    format!("{prefix}salesforce.cdc.{entity}")
}

pub struct Publisher {
    codec: AvroCodec,
    prefix: String,
    writers: HashMap<(String, String), Arc<WriterSchema>>,
}

impl Publisher {
    pub fn new(codec: AvroCodec, prefix: &str) -> Self {
        Publisher {
            codec,
            prefix: prefix.to_string(),
            writers: HashMap::new(),
        }
    }

    /// The record for `change`, registering its schema on first use.
    pub async fn record(
        &mut self,
        schema: &EventSchema,
        change: &Change,
    ) -> Result<OutRecord, StageError> {
        let topic = topic_for(&self.prefix, &change.entity);
        let cache_key = (topic.clone(), schema.id.clone());
        let writer = match self.writers.get(&cache_key) {
            Some(w) => w.clone(),
            None => {
                let w = self.codec.register(&topic, &schema.kafka).await?;
                tracing::info!(%topic, schema_id = %schema.id, registry_id = w.id, "registered the change-event schema");
                self.writers.insert(cache_key, w.clone());
                w
            }
        };
        let payload = self.codec.encode(&writer, change.value.clone())?;
        let mut record = OutRecord::new(topic)
            .key(change.record_id.clone())
            .payload(payload)
            .header(
                "sfjira.source",
                format!("salesforce/{}/{}", change.entity, change.record_id),
            );
        if let Some(gap) = &change.gap {
            record.set_header(crate::gap::HEADER, gap.clone());
        }
        Ok(record)
    }
}

/// The DLQ record for an event that cannot be published: the raw Avro payload keyed by the
/// event id, with Salesforce's schema id and the replay id as headers (so it can be decoded
/// and traced back), plus the router's error headers (`attempts`: tries made, e.g. of
/// `GetSchema`).
pub fn dead_letter(
    dlq: &DlqRouter,
    channel: &str,
    pe: &ProducerEvent,
    replay_id: &[u8],
    err: &StageError,
    attempts: Attempts,
) -> OutRecord {
    tracing::warn!(%channel, schema_id = %pe.schema_id, error = %err, "event dead-lettered");
    let record = OutRecord::new(channel)
        .key(pe.id.clone())
        .payload(pe.payload.clone())
        .header("sfjira.salesforce.schema_id", pe.schema_id.clone())
        .header(
            "sfjira.salesforce.replay_id",
            crate::checkpoint::hex(replay_id),
        );
    let failed = FailedRecord {
        topic: channel.to_string(),
        partition: -1,
        offset: -1,
        record,
    };
    dlq.dead_letter(&failed, err, FailedAt::TaskPoll, attempts)
}
