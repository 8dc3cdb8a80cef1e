//! One event of a channel, from the wire to the open Kafka transaction: its schema (cached,
//! see [`crate::schemas`]), decoding, gap recovery or enrichment over REST, the change records
//! — or one DLQ record when the event cannot be published — and the commit before a new
//! Salesforce transaction once `batch_size` records are open. Split from the run loop in
//! [`super`], which owns subscribing, committing and reconnecting.

use sfjira_core::errors::{ErrorCode, StageError};
use sfjira_core::kafka::OutRecord;

use super::{ChannelRunner, txn};
use crate::decode;
use crate::events::{CaptureLag, GapRecovered};
use crate::proto::ConsumerEvent;
use crate::pubsub::PubSubError;
use crate::schemas::Unusable;

impl ChannelRunner {
    /// Decodes one event and hands its records to the open Kafka transaction.
    pub(super) async fn handle(&mut self, event: ConsumerEvent) -> Result<(), PubSubError> {
        let Some(pe) = event.event else {
            return Ok(());
        };
        let schema = self
            .schemas
            .get(&self.grpc, &self.session, &self.channel, &pe.schema_id)
            .await?;
        let changes = match &schema {
            Ok(s) => decode::decode_event(s, &pe.payload, &event.replay_id).map_err(|e| {
                Unusable::once(StageError::new(
                    ErrorCode::SalesforcePayloadUndecodable,
                    e.to_string(),
                ))
            }),
            Err(u) => Err(Unusable {
                error: u.error.clone_for(&pe.schema_id),
                attempts: u.attempts,
            }),
        };
        let changes = match changes {
            Ok(c) if c.first().is_some_and(|c| c.change_type.starts_with("GAP_")) => {
                let schema = schema.as_ref().expect("decoded with it");
                let (entity, gap) = (c[0].entity.clone(), c[0].change_type.clone());
                let recovered = crate::gap::recover(&self.http, &self.session, schema, c).await?;
                GapRecovered {
                    entity: &entity,
                    gap: &gap,
                    records: recovered.len() as u64,
                }
                .emit();
                Ok(recovered)
            }
            Ok(c) if self.settings.enrich_full_state => {
                let schema = schema.as_ref().expect("decoded with it");
                Ok(crate::enrich::enrich(&self.http, &self.session, schema, c).await?)
            }
            other => other,
        };
        let mut records = Vec::new();
        match changes {
            Ok(changes) => {
                let tx_key = changes.first().map(|c| c.transaction_key.clone());
                if self.in_txn >= self.settings.batch_size
                    && tx_key.is_some()
                    && tx_key != self.last_tx_key
                {
                    let at = self.last_replay.clone();
                    self.commit(&at).await?;
                }
                self.last_tx_key = tx_key;
                let schema = schema.as_ref().expect("decoded with it");
                let now_ms = chrono::Utc::now().timestamp_millis();
                for c in &changes {
                    match self.publisher.record(schema, c).await {
                        Ok(r) => {
                            records.push(r);
                            *self
                                .published
                                .entry((c.entity.clone(), c.change_type.clone()))
                                .or_default() += 1;
                            CaptureLag {
                                entity: &c.entity,
                                seconds: (now_ms - c.commit_timestamp) as f64 / 1000.0,
                            }
                            .emit();
                        }
                        Err(e) if e.retryable() => {
                            return Err(PubSubError::Other(format!("registering a schema: {e}")));
                        }
                        Err(e) => {
                            let e = Unusable::once(e);
                            records = vec![self.dead_letter(&pe, &event.replay_id, &e)];
                            break;
                        }
                    }
                }
            }
            Err(e) => records.push(self.dead_letter(&pe, &event.replay_id, &e)),
        }
        if !self.producer.is_open() {
            self.producer.begin().map_err(txn)?;
        }
        for r in &records {
            self.producer.send(r).await.map_err(txn)?;
            let e = self.sent.entry(r.topic.clone()).or_default();
            e.0 += 1;
            e.1 += r.payload.as_ref().map_or(0, |p| p.len() as u64);
        }
        self.in_txn += records.len();
        self.last_replay = event.replay_id;
        Ok(())
    }

    fn dead_letter(
        &self,
        pe: &crate::proto::ProducerEvent,
        replay_id: &[u8],
        u: &Unusable,
    ) -> OutRecord {
        crate::publish::dead_letter(
            &self.dlq,
            &self.channel,
            pe,
            replay_id,
            &u.error,
            u.attempts,
        )
    }
}
