//! The transactional producer: what makes a stage exactly-once into Kafka.
//!
//! A stage reads a batch, then inside one transaction produces its outputs (and any DLQ
//! records), adds the consumed offsets with [`TransactionalProducer::send_offsets`], and
//! commits. Either all of it becomes visible to `read_committed` readers, offsets included, or
//! none of it does and the batch is processed again.
//!
//! librdkafka sorts transactional errors into three kinds, and so does this module:
//! - *retriable* (e.g. a commit that timed out): the same call is tried again, here;
//! - *abortable* (`txn_requires_abort`): the transaction is aborted here and the caller gets
//!   [`TxnError::Aborted`]; it must rewind its consumer (see
//!   [`super::KafkaConsumer::rewind_to_committed`]) and process the batch again;
//! - *fatal* (e.g. fenced by a newer instance with the same `transactional.id`): the caller
//!   gets [`TxnError::Fatal`] and may call [`TransactionalProducer::recover`], which builds a
//!   new producer (fencing any zombie) — or stop, if another live instance took its id.
//!
//! The blocking librdkafka calls (`init`, `send_offsets`, `commit`, `abort`) run on tokio's
//! blocking pool.

use std::time::Duration;

use rdkafka::TopicPartitionList;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::ConsumerGroupMetadata;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::OwnedHeaders;
use rdkafka::producer::{DeliveryFuture, FutureProducer, Producer};

use super::OutRecord;
use crate::telemetry::{messaging, propagation};

/// Attempts for a retriable commit / send_offsets / init before giving up on the transaction.
const RETRIABLE_ATTEMPTS: u32 = 5;

#[derive(Debug, thiserror::Error)]
pub enum TxnError {
    /// Nothing produced in the transaction is visible and its offsets were not committed:
    /// rewind the consumer and process the batch again.
    #[error("transaction aborted: {reason}")]
    Aborted { reason: String },
    /// The producer cannot continue; call [`TransactionalProducer::recover`] or stop.
    #[error("fatal Kafka producer error: {0}")]
    Fatal(KafkaError),
}

pub struct TransactionalProducer {
    producer: FutureProducer,
    config: ClientConfig,
    transactional_id: String,
    op_timeout: Duration,
    in_flight: Vec<DeliveryFuture>,
    open: bool,
}

impl TransactionalProducer {
    /// Creates the producer for `transactional_id` and initialises transactions, which fences
    /// any older producer with the same id. The id must be stable per stage instance (e.g.
    /// `<stage>-<service.instance_id>`), so a restarted instance fences its own zombie.
    pub async fn new(
        base: &ClientConfig,
        transactional_id: &str,
        op_timeout: Duration,
    ) -> Result<Self, TxnError> {
        let mut config = base.clone();
        config.set("transactional.id", transactional_id);
        // Records wait in the client until a produce batch is full or this long: nothing waits
        // on it, since the commit sends whatever is queued at once (`flush_ignoring_linger`).
        // Larger batches cost less CPU per record in the client and in the broker: at 50 ms
        // instead of librdkafka's 5 ms the transformer's per-record CPU fell from 12.6-13.1 to
        // 10.5-10.9 us and the broker's from 5.1 to 3.5 us (`make bench`, 2 rounds each, set
        // through kafka.properties before this flush existed). A value in the deployment's
        // kafka.properties wins.
        if config.get("linger.ms").is_none() && config.get("queue.buffering.max.ms").is_none() {
            config.set("linger.ms", "50");
        }
        let producer = create_and_init(&config, op_timeout).await?;
        Ok(TransactionalProducer {
            producer,
            config,
            transactional_id: transactional_id.to_string(),
            op_timeout,
            in_flight: Vec::new(),
            open: false,
        })
    }

    pub fn transactional_id(&self) -> &str {
        &self.transactional_id
    }

    /// Whether a transaction is open (begun and not yet committed or aborted).
    pub fn is_open(&self) -> bool {
        self.open
    }

    pub fn begin(&mut self) -> Result<(), TxnError> {
        self.producer
            .begin_transaction()
            .map_err(fatal_or_aborted)?;
        self.open = true;
        Ok(())
    }

    /// Queues `record` in the open transaction. Delivery is confirmed by [`Self::commit`].
    pub async fn send(&mut self, record: &OutRecord) -> Result<(), TxnError> {
        let key = record.key.as_deref().map(String::from_utf8_lossy);
        let span = messaging::send_span(&record.topic, key.as_deref());
        let headers = span.in_scope(|| propagation::inject_current_context(record.owned_headers()));
        self.enqueue(record, headers).await
    }

    /// Queues a record whose headers already carry its trace context (the caller opened the
    /// `send` span and injected it when it built the record, e.g. while processing the input
    /// that caused it): no span is opened here and the headers are sent as they are.
    pub async fn send_prepared(&mut self, record: &OutRecord) -> Result<(), TxnError> {
        self.enqueue(record, record.owned_headers()).await
    }

    async fn enqueue(&mut self, record: &OutRecord, headers: OwnedHeaders) -> Result<(), TxnError> {
        debug_assert!(self.open, "send outside a transaction");
        let mut headers = Some(headers);
        loop {
            let h = headers.take().unwrap_or_else(|| record.owned_headers());
            match self.producer.send_result(record.as_future_record(h)) {
                Ok(fut) => {
                    self.in_flight.push(fut);
                    return Ok(());
                }
                // The local queue is full: let librdkafka drain it, then try again.
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), rec)) => {
                    headers = rec.headers;
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
                Err((err, _)) => {
                    return Err(self
                        .abort_after(format!("producing to {}: {err}", record.topic))
                        .await);
                }
            }
        }
    }

    /// Sends every queued record of the open transaction to the broker now (they stay invisible
    /// to `read_committed` readers until the commit).
    pub async fn flush(&self) -> Result<(), TxnError> {
        let producer = self.producer.clone();
        let timeout = self.op_timeout;
        blocking(move || flush_ignoring_linger(&producer, timeout))
            .await
            .map_err(|e| TxnError::Aborted {
                reason: format!("flushing: {e}"),
            })
    }

    /// Adds the consumer's offsets to the transaction (each the *next* offset to read).
    pub async fn send_offsets(
        &mut self,
        offsets: &TopicPartitionList,
        group: ConsumerGroupMetadata,
    ) -> Result<(), TxnError> {
        // Deliveries first here too: offsets added while records are still in flight made
        // send_offsets or the commit after it wait ~100 ms now and then (librdkafka's timers);
        // `cargo run --release -p sfjira-transformer --example txn_phases` with
        // SFJIRA_PROBE_ORDER=offsets_first shows it (commit p90 101 ms vs 0.7 ms).
        self.await_deliveries().await?;
        let producer = self.producer.clone();
        let offsets = offsets.clone();
        let timeout = self.op_timeout;
        let result = blocking(move || {
            retry_retriable(|| producer.send_offsets_to_transaction(&offsets, &group, timeout))
        })
        .await;
        match result {
            Ok(()) => Ok(()),
            Err(e) => Err(self.fail(e).await),
        }
    }

    /// Commits: every queued record is delivered and becomes visible together with the offsets.
    pub async fn commit(&mut self) -> Result<(), TxnError> {
        // Every delivery report first. librdkafka's commit flushes what is still in flight by
        // polling on a ~100 ms cycle, so committing with records in flight cost ~100 ms per
        // transaction whatever its size (measured: 101 ms vs 7 ms once the reports are in).
        self.await_deliveries().await?;
        let producer = self.producer.clone();
        let timeout = self.op_timeout;
        let result =
            blocking(move || retry_retriable(|| producer.commit_transaction(timeout))).await;
        match result {
            Ok(()) => {
                self.open = false;
                Ok(())
            }
            Err(e) => Err(self.fail(e).await),
        }
    }

    /// Waits for the delivery report of every record sent in the open transaction; one not
    /// delivered aborts the transaction.
    async fn await_deliveries(&mut self) -> Result<(), TxnError> {
        if !self.in_flight.is_empty() {
            let producer = self.producer.clone();
            let timeout = self.op_timeout;
            if let Err(e) = blocking(move || flush_ignoring_linger(&producer, timeout)).await {
                return Err(self
                    .abort_after(format!("sending the transaction's records: {e}"))
                    .await);
            }
        }
        let mut undelivered = None;
        for fut in self.in_flight.drain(..) {
            match fut.await {
                Ok(Ok(_)) => {}
                Ok(Err((err, _))) => {
                    undelivered.get_or_insert(err);
                }
                Err(_) => {
                    undelivered.get_or_insert(KafkaError::Canceled);
                }
            }
        }
        match undelivered {
            None => Ok(()),
            Some(err) => Err(self
                .abort_after(format!(
                    "a record of the transaction was not delivered: {err}"
                ))
                .await),
        }
    }

    /// Aborts the open transaction: nothing it holds becomes visible.
    pub async fn abort(&mut self) -> Result<(), TxnError> {
        self.in_flight.clear();
        if !self.open {
            return Ok(());
        }
        let producer = self.producer.clone();
        let timeout = self.op_timeout;
        let result =
            blocking(move || retry_retriable(|| producer.abort_transaction(timeout))).await;
        self.open = false;
        result.map_err(TxnError::Fatal)
    }

    /// Aborts a transaction its caller abandoned: cancelled between [`Self::begin`] and its
    /// commit or abort (an HTTP handler whose client hung up). Left open, it makes every later
    /// `begin` fail with "Operation not valid in state InTransaction" and the stage stalls.
    /// The abandoned commit may still have finished in the background, so finding no
    /// transaction in progress is not an error here. No-op when nothing is open.
    pub async fn abort_abandoned(&mut self) -> Result<(), TxnError> {
        if !self.open {
            return Ok(());
        }
        tracing::warn!(
            transactional_id = %self.transactional_id,
            "a transaction was left open by a cancelled caller; aborting it"
        );
        self.in_flight.clear();
        let producer = self.producer.clone();
        let timeout = self.op_timeout;
        let result =
            blocking(move || retry_retriable(|| producer.abort_transaction(timeout))).await;
        self.open = false;
        match result {
            Ok(()) => Ok(()),
            Err(KafkaError::Transaction(e)) if e.code() == RDKafkaErrorCode::State => Ok(()),
            Err(e) => Err(TxnError::Fatal(e)),
        }
    }

    /// After [`TxnError::Fatal`]: a new producer with the same transactional id.
    pub async fn recover(&mut self) -> Result<(), TxnError> {
        self.in_flight.clear();
        self.open = false;
        self.producer = create_and_init(&self.config, self.op_timeout).await?;
        Ok(())
    }

    /// Classifies a failed transactional call, aborting when librdkafka asks for it.
    async fn fail(&mut self, err: KafkaError) -> TxnError {
        match &err {
            KafkaError::Transaction(e) if e.is_fatal() => {
                self.open = false;
                TxnError::Fatal(err)
            }
            _ => self.abort_after(err.to_string()).await,
        }
    }

    async fn abort_after(&mut self, reason: String) -> TxnError {
        match self.abort().await {
            Ok(()) => TxnError::Aborted { reason },
            Err(abort_err) => abort_err,
        }
    }
}

/// Sends every queued record now and waits until each one's delivery is reported (or
/// `timeout` passes).
///
/// Why not rdkafka's `Producer::flush`: librdkafka ignores `linger.ms` only for as long as its
/// `rd_kafka_flush` call lasts, and rdkafka calls it without waiting, then waits in `poll`
/// steps of up to 100 ms during which linger applies again — so a transaction's last records
/// still waited out `linger.ms` before its commit. One call with the whole timeout holds the
/// flush for the whole wait.
fn flush_ignoring_linger(producer: &FutureProducer, timeout: Duration) -> Result<(), KafkaError> {
    let timeout_ms = i32::try_from(timeout.as_millis()).unwrap_or(i32::MAX);
    // SAFETY: the pointer is `producer`'s live librdkafka handle, which `producer` keeps alive
    // for the whole call; `rd_kafka_flush` is thread-safe (it polls the producer's queue as its
    // polling thread does, and delivery callbacks may run on either).
    let code =
        unsafe { rdkafka::bindings::rd_kafka_flush(producer.client().native_ptr(), timeout_ms) };
    match RDKafkaErrorCode::from(code) {
        RDKafkaErrorCode::NoError => Ok(()),
        code => Err(KafkaError::Flush(code)),
    }
}

async fn create_and_init(
    config: &ClientConfig,
    timeout: Duration,
) -> Result<FutureProducer, TxnError> {
    let producer: FutureProducer = config.create().map_err(TxnError::Fatal)?;
    let p = producer.clone();
    blocking(move || retry_retriable(|| p.init_transactions(timeout)))
        .await
        .map_err(TxnError::Fatal)?;
    Ok(producer)
}

fn retry_retriable(mut op: impl FnMut() -> Result<(), KafkaError>) -> Result<(), KafkaError> {
    let mut attempt = 1;
    loop {
        match op() {
            Err(KafkaError::Transaction(e)) if e.is_retriable() && attempt < RETRIABLE_ATTEMPTS => {
                tracing::warn!(error = %e, attempt, "retriable transactional error; trying again");
                attempt += 1;
                std::thread::sleep(Duration::from_millis(100 * u64::from(attempt)));
            }
            other => return other,
        }
    }
}

async fn blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    tokio::task::spawn_blocking(f)
        .await
        .expect("blocking Kafka call panicked")
}

fn fatal_or_aborted(err: KafkaError) -> TxnError {
    match &err {
        KafkaError::Transaction(e) if !e.is_fatal() => TxnError::Aborted {
            reason: err.to_string(),
        },
        _ => TxnError::Fatal(err),
    }
}
