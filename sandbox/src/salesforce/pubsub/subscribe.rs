//! One `Subscribe` call: flow control, replay, keepalives and idle close (reference §1.1–1.4;
//! https://developer.salesforce.com/docs/platform/pub-sub-api/references/methods/subscribe-rpc.html).
//!
//! - `replay_preset`/`replay_id` count only in the first FetchRequest; a later request naming a
//!   different topic fails with `INVALID_ARGUMENT`.
//! - `num_requested` must be positive; demand adds up and is capped at 100; a response never
//!   carries more events than are pending, and says how many remain pending.
//! - With demand pending and nothing to deliver, an empty FetchResponse carrying the latest
//!   replay id is sent every `keepalive` (sandbox time); like the real shared bus, that
//!   position moves on even without events for this org, and clients must store it.
//! - With no demand pending, the client must send a FetchRequest within `idle_timeout`, or the
//!   stream ends (the sandbox ends it with status OK: what the real server sends is
//!   unverified).
//! - While the `service.unavailable` fault is on, the stream ends with that error within
//!   [`FAULT_POLL`].

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;
use tokio::time::Instant;
use tonic::{Code, Status, Streaming};

use super::PubSubSettings;
use super::faults::{CorruptedEvents, StreamFaults};
use super::proto::{ConsumerEvent, FetchRequest, FetchResponse, ProducerEvent, ReplayPreset};
use super::status::{self, error};
use crate::clock::SandboxClock;
use crate::salesforce::cdc::log::{decode_replay_id, encode_replay_id};
use crate::salesforce::cdc::{EventBus, PositionError};

/// The cap on pending demand per Subscribe call.
pub const MAX_PENDING: i32 = 100;
const RPC: &str = "Subscribe";
/// How often an open stream re-reads the `service.unavailable` fault while nothing happens.
const FAULT_POLL: Duration = Duration::from_millis(200);

pub(crate) struct Subscription {
    pub bus: Arc<EventBus>,
    pub faults: Arc<dyn StreamFaults>,
    pub settings: PubSubSettings,
    pub clock: SandboxClock,
    pub(crate) corrupted: Arc<CorruptedEvents>,
    pub rpc_id: String,
    pub tx: mpsc::Sender<Result<FetchResponse, Status>>,
}

/// Why the loop ended: an error to send, or a quiet close.
type Outcome = Result<(), Status>;

impl Subscription {
    pub async fn run(self, requests: Streaming<FetchRequest>) {
        let tx = self.tx.clone();
        if let Err(status) = self.serve(requests).await {
            let _ = tx.send(Err(status)).await;
        }
    }

    fn err(&self, code: Code, short: &str, message: &str) -> Status {
        error(code, short, message, &self.rpc_id, RPC)
    }

    fn wall(&self, d: Duration) -> Duration {
        self.clock.wall(d)
    }

    async fn serve(self, mut requests: Streaming<FetchRequest>) -> Outcome {
        let first = tokio::select! {
            r = requests.message() => r?,
            _ = tokio::time::sleep(self.wall(self.settings.idle_timeout)) => return Ok(()),
        };
        let Some(first) = first else { return Ok(()) };
        let topic = first.topic_name.clone();
        if topic.is_empty() {
            return Err(self.err(
                Code::InvalidArgument,
                status::TOPIC_EMPTY,
                "The topic name must not be empty.",
            ));
        }
        let mut cursor = self.start_position(&first)?;
        let mut pending = self.add_demand(0, first.num_requested)?;
        let mut watch = self.bus.watch();
        let mut reading = true;
        let mut last_sent = Instant::now();
        let mut last_request = Instant::now();
        let (mut drop_limit, mut drop_budget): (Option<u32>, Option<u32>) = (None, None);
        // Wakes the loop now and then so a `service.unavailable` fault ends an idle stream
        // promptly (wall time; a cheap re-check when nothing changed).
        let mut fault_poll = tokio::time::interval(FAULT_POLL);
        fault_poll.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            // Fault: the service went down; open streams end with `service.unavailable`, as
            // the live service ends them (pozil/pub-sub-api-node-client#52).
            if self.faults.service_unavailable() {
                return Err(status::service_unavailable(&self.rpc_id, RPC));
            }
            // Fault: the stream is dropped after this many more events (counted from when the
            // knob was set or changed).
            let limit = self.faults.drop_streams_after_events();
            if limit != drop_limit {
                (drop_limit, drop_budget) = (limit, limit);
            }
            // Deliver what is available, at most what is pending.
            while pending > 0 {
                if drop_budget == Some(0) {
                    break;
                }
                let events = self.read(&topic, cursor, pending as usize)?;
                let Some(last) = events.last() else { break };
                let batch = drop_budget.map_or(events.len(), |b| events.len().min(b as usize));
                let last_id = if batch == events.len() {
                    last.replay_id
                } else {
                    events[batch - 1].replay_id
                };
                pending -= batch as i32;
                if let Some(b) = drop_budget.as_mut() {
                    *b -= batch as u32;
                }
                let response = FetchResponse {
                    events: events
                        .into_iter()
                        .take(batch)
                        .map(|e| ConsumerEvent {
                            event: Some(ProducerEvent {
                                payload: self.corrupted.payload(
                                    self.faults.as_ref(),
                                    &topic,
                                    e.replay_id,
                                    &e.event_id,
                                    &e.payload,
                                ),
                                id: e.event_id,
                                schema_id: e.schema_id,
                                headers: Vec::new(),
                            }),
                            replay_id: encode_replay_id(e.replay_id),
                        })
                        .collect(),
                    latest_replay_id: encode_replay_id(last_id),
                    rpc_id: self.rpc_id.clone(),
                    pending_num_requested: pending,
                };
                cursor = last_id;
                self.send(response).await?;
                last_sent = Instant::now();
                if pending == 0 {
                    last_request = last_request.max(Instant::now());
                }
            }
            if drop_budget == Some(0) {
                // What clients see when a proxy resets the stream (reference §1.5).
                return Err(status::plain(
                    Code::Unavailable,
                    "RST_STREAM closed stream",
                    &self.rpc_id,
                    RPC,
                ));
            }
            let keepalive_at = last_sent + self.wall(self.settings.keepalive);
            let idle_at = last_request + self.wall(self.settings.idle_timeout);
            tokio::select! {
                r = requests.message(), if reading => match r {
                    Ok(Some(req)) => {
                        if !req.topic_name.is_empty() && req.topic_name != topic {
                            return Err(self.err(
                                Code::InvalidArgument,
                                status::TOPIC_MISMATCH,
                                &format!("The topic in the fetch request, {}, doesn't match the subscribed topic {topic}.", req.topic_name),
                            ));
                        }
                        pending = self.add_demand(pending, req.num_requested)?;
                        last_request = Instant::now();
                    }
                    Ok(None) => reading = false,
                    Err(_) => return Ok(()),
                },
                changed = watch.changed() => if changed.is_err() { return Ok(()) },
                _ = tokio::time::sleep_until(keepalive_at), if pending > 0 => {
                    if !self.faults.suppress_keepalives() {
                        // The reported position may be past the last event sent ("an advanced
                        // position in the stream"), never past an undelivered one.
                        let Some(position) = self.bus.idle_position(&topic, cursor).map_err(|e| self.position_error(e))? else {
                            continue; // events arrived meanwhile: deliver them first
                        };
                        cursor = position;
                        self.send(FetchResponse {
                            events: Vec::new(),
                            latest_replay_id: encode_replay_id(position),
                            rpc_id: self.rpc_id.clone(),
                            pending_num_requested: pending,
                        }).await?;
                    }
                    last_sent = Instant::now();
                }
                _ = tokio::time::sleep_until(idle_at), if pending == 0 => return Ok(()),
                _ = fault_poll.tick() => {}
                _ = self.tx.closed() => return Ok(()),
            }
        }
    }

    async fn send(&self, response: FetchResponse) -> Outcome {
        // A gone client ends the call; nothing to report to it.
        self.tx
            .send(Ok(response))
            .await
            .map_err(|_| Status::cancelled("client gone"))
    }

    fn read(
        &self,
        topic: &str,
        cursor: u64,
        max: usize,
    ) -> Result<Vec<crate::salesforce::cdc::log::StoredEvent>, Status> {
        let max = max.min(self.settings.max_events_per_response.max(1));
        self.bus
            .read(topic, cursor, max)
            .map_err(|e| self.position_error(e))
    }

    fn add_demand(&self, pending: i32, requested: i32) -> Result<i32, Status> {
        if requested <= 0 {
            return Err(self.err(
                Code::InvalidArgument,
                status::REQUESTED_INVALID,
                "The number of requested events must be greater than 0.",
            ));
        }
        Ok(pending.saturating_add(requested).min(MAX_PENDING))
    }

    /// Where delivery starts: after the returned replay id.
    fn start_position(&self, first: &FetchRequest) -> Result<u64, Status> {
        let topic = &first.topic_name;
        let p = match ReplayPreset::try_from(first.replay_preset).unwrap_or(ReplayPreset::Latest) {
            ReplayPreset::Latest => self.bus.latest(topic),
            ReplayPreset::Earliest => self.bus.earliest(topic),
            ReplayPreset::Custom => {
                if first.replay_id.is_empty() {
                    return Err(self.err(
                        Code::InvalidArgument,
                        status::REPLAY_VALIDATION,
                        "A replay ID is required when the replay preset is CUSTOM.",
                    ));
                }
                match decode_replay_id(&first.replay_id) {
                    Some(id) => self.bus.check_position(topic, id).map(|()| id),
                    None => Err(PositionError::Corrupted),
                }
            }
        };
        p.map_err(|e| self.position_error(e))
    }

    fn position_error(&self, e: PositionError) -> Status {
        match e {
            PositionError::UnknownTopic(t) => status::topic_not_found(&t, &self.rpc_id, RPC),
            PositionError::Corrupted => self.err(
                Code::InvalidArgument,
                status::REPLAY_CORRUPTED,
                "The replay ID validation failed. Ensure that the replay ID is valid and refers to an event that is within the retention window.",
            ),
        }
    }
}
