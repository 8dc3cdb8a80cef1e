//! The consumer every consuming stage uses: a consumer-group member that reads only committed
//! records (`isolation.level=read_committed`) and commits offsets only when told to.
//!
//! Automatic commits are off because an offset may be committed only after its record's effect
//! is safe: inside the output transaction for exactly-once stages (the producer sends the
//! offsets, see [`super::TransactionalProducer::send_offsets`]), or after delivery for
//! at-least-once sinks ([`KafkaConsumer::commit`]). [`OffsetTracker`] remembers, per
//! partition, the offset after the last record processed, so a graceful shutdown commits
//! exactly what was done and nothing more.
//!
//! Every consumer runs a [`CommittedOffsetWatch`] (see [`super::offset_watch`]): a group whose
//! committed offsets cannot be fetched (a hanging transaction) makes the consumer read nothing
//! without an error, and the watch makes that visible in the logs, the metrics and `/readyz`.

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use rdkafka::config::ClientConfig;
use rdkafka::consumer::{CommitMode, Consumer, ConsumerGroupMetadata, StreamConsumer};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{BorrowedMessage, Message};
use rdkafka::{Offset, TopicPartitionList};

use super::offset_watch::{CommittedOffsetWatch, OffsetWatchSettings};

/// Consumer errors that only report a state librdkafka works its way out of.
fn passing(code: RDKafkaErrorCode) -> bool {
    use RDKafkaErrorCode as C;
    matches!(
        code,
        C::BrokerTransportFailure
            | C::AllBrokersDown
            | C::Resolve
            | C::OperationTimedOut
            | C::RequestTimedOut
            | C::NetworkException
            | C::LeaderNotAvailable
            | C::NotLeaderForPartition
            | C::NotCoordinator
            | C::CoordinatorNotAvailable
            | C::CoordinatorLoadInProgress
            | C::PartitionEOF
    )
}

pub struct KafkaConsumer {
    /// First, so the watch stops before the consumer closes.
    offset_watch: Option<CommittedOffsetWatch>,
    /// Shared with the watch's thread only as a `Weak`: dropping this closes the consumer.
    inner: Arc<StreamConsumer>,
    group_id: String,
    /// Where to start a partition that has no committed offset (`auto.offset.reset`).
    from_earliest: bool,
}

impl KafkaConsumer {
    /// Joins `group_id` and subscribes to `topics`. `auto.offset.reset` defaults to `earliest`
    /// (a new group reads everything rather than silently skipping history); a value in the
    /// deployment's `kafka.properties` wins.
    pub fn new(base: &ClientConfig, group_id: &str, topics: &[&str]) -> Result<Self, KafkaError> {
        Self::with_offset_watch(base, group_id, topics, OffsetWatchSettings::default())
    }

    /// [`Self::new`] with its [`CommittedOffsetWatch`] set up by `watch` (tests use a short
    /// threshold; services keep the default).
    pub fn with_offset_watch(
        base: &ClientConfig,
        group_id: &str,
        topics: &[&str],
        watch: OffsetWatchSettings,
    ) -> Result<Self, KafkaError> {
        let mut cfg = base.clone();
        cfg.set("group.id", group_id)
            .set("enable.auto.commit", "false")
            .set("enable.auto.offset.store", "false")
            .set("isolation.level", "read_committed");
        if cfg.get("auto.offset.reset").is_none() {
            cfg.set("auto.offset.reset", "earliest");
        }
        // librdkafka prefetches up to 64 MB per consumer by default; a stage holds what it
        // works on in memory as well, so prefetch less and keep the process small (a property
        // in the deployment's kafka.properties wins). 4 MB is ~40 ms of the transformer's
        // stream of ~1 KB records at full speed: `make bench` read as fast with it as with
        // 8 MB (the default before records streamed through) and the peak RSS was 2-4 MB lower.
        if cfg.get("queued.max.messages.kbytes").is_none() {
            cfg.set("queued.max.messages.kbytes", "4096");
        }
        // Once that queue is full, librdkafka postpones the partition's next fetch by
        // `fetch.queue.backoff.ms`, 1000 ms by default (librdkafka CONFIGURATION.md), even when
        // the stage drains the queue a millisecond later: a stage catching up on a backlog then
        // reads in bursts with ~1 s gaps. Measured with the transformer's transactions
        // (`cargo run --release -p sfjira-transformer --example txn_phases`): 22 000 records/s
        // with the default, 95 000 with 10 ms, at a 16 MB queue.
        if cfg.get("fetch.queue.backoff.ms").is_none() {
            cfg.set("fetch.queue.backoff.ms", "10");
        }
        let from_earliest = matches!(
            cfg.get("auto.offset.reset"),
            Some("earliest" | "smallest" | "beginning")
        );
        let inner: Arc<StreamConsumer> = Arc::new(cfg.create()?);
        inner.subscribe(topics)?;
        let offset_watch = match CommittedOffsetWatch::start(
            Arc::downgrade(&inner),
            &cfg,
            group_id,
            watch,
        ) {
            Ok(w) => Some(w),
            Err(e) => {
                tracing::warn!(group = %group_id, error = %e, "cannot start the committed-offset watchdog; a stalled group will not be reported");
                None
            }
        };
        Ok(KafkaConsumer {
            offset_watch,
            inner,
            group_id: group_id.to_string(),
            from_earliest,
        })
    }

    /// [`Self::new`] as a static member (`group.instance.id` = `<group_id>-<instance_id>`,
    /// unless the deployment's `kafka.properties` sets one): an instance restarted after a crash
    /// takes its partitions back at once instead of waiting out the dead member's session
    /// timeout (45 s). `instance_id` is `service.instance_id`, stable per instance.
    pub fn new_static(
        base: &ClientConfig,
        group_id: &str,
        instance_id: &str,
        topics: &[&str],
    ) -> Result<Self, KafkaError> {
        let mut cfg = base.clone();
        if cfg.get("group.instance.id").is_none() {
            cfg.set("group.instance.id", format!("{group_id}-{instance_id}"));
        }
        Self::new(&cfg, group_id, topics)
    }

    pub fn group_id(&self) -> &str {
        &self.group_id
    }

    /// The next record (waits for one).
    ///
    /// Errors librdkafka recovers from by itself (the broker restarting or unreachable, a
    /// partition leader moving) are logged and skipped: a stage rides out a broker restart
    /// instead of stopping. Anything else — fatal errors included — is returned.
    pub async fn recv(&self) -> Result<BorrowedMessage<'_>, KafkaError> {
        loop {
            match self.inner.recv().await {
                Err(KafkaError::MessageConsumption(code)) if passing(code) => {
                    tracing::warn!(group = %self.group_id, error = %code, "Kafka consumer error; the client reconnects by itself");
                }
                other => return other,
            }
        }
    }

    /// A record the consumer already holds, without waiting for one (`None` when none is
    /// there). [`Self::recv`] polled once: librdkafka's queue answers at once when it holds a
    /// record. (A zero `tokio::time::timeout` does the same but reads the clock for every
    /// record, 2.6 % of the transformer's CPU in perf.)
    pub fn recv_now(&self) -> Option<Result<BorrowedMessage<'_>, KafkaError>> {
        let mut recv = std::pin::pin!(self.recv());
        match recv.as_mut().poll(&mut Context::from_waker(Waker::noop())) {
            Poll::Ready(result) => Some(result),
            Poll::Pending => None,
        }
    }

    /// The group's identity for [`super::TransactionalProducer::send_offsets`].
    pub fn group_metadata(&self) -> Option<ConsumerGroupMetadata> {
        self.inner.group_metadata()
    }

    /// Commits what `tracker` holds, synchronously. An empty tracker commits nothing.
    pub fn commit(&self, tracker: &OffsetTracker) -> Result<(), KafkaError> {
        if tracker.is_empty() {
            return Ok(());
        }
        self.inner.commit(&tracker.to_list(), CommitMode::Sync)
    }

    /// After an aborted transaction: moves every assigned partition back to its committed
    /// offset, so the records of the aborted batch are read again.
    pub fn rewind_to_committed(&self, timeout: Duration) -> Result<(), KafkaError> {
        let committed = self.inner.committed(timeout)?;
        let mut seek = TopicPartitionList::new();
        for elem in committed.elements() {
            let offset = match elem.offset() {
                Offset::Offset(o) => Offset::Offset(o),
                _ if self.from_earliest => Offset::Beginning,
                _ => Offset::End,
            };
            seek.add_partition_offset(elem.topic(), elem.partition(), offset)?;
        }
        if seek.count() > 0 {
            self.inner.seek_partitions(seek, timeout)?;
        }
        Ok(())
    }

    /// Graceful stop: commits what was processed, then leaves the group.
    pub fn shutdown(&self, tracker: &OffsetTracker) -> Result<(), KafkaError> {
        let result = self.commit(tracker);
        self.inner.unsubscribe();
        result
    }

    /// The watchdog reporting a group whose committed offsets cannot be fetched (`None` only if
    /// its thread could not be started).
    pub fn offset_watch(&self) -> Option<&CommittedOffsetWatch> {
        self.offset_watch.as_ref()
    }

    /// The underlying rdkafka consumer, for what this wrapper does not cover.
    pub fn inner(&self) -> &StreamConsumer {
        &self.inner
    }
}

/// Per partition, the offset to resume from: one past the last record processed.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct OffsetTracker {
    next: BTreeMap<(String, i32), i64>,
}

impl OffsetTracker {
    pub fn new() -> Self {
        Self::default()
    }

    /// Marks `msg` as processed.
    pub fn record<M: Message>(&mut self, msg: &M) {
        self.mark(msg.topic(), msg.partition(), msg.offset());
    }

    /// Marks the record at `offset` of `topic`/`partition` as processed.
    pub fn mark(&mut self, topic: &str, partition: i32, offset: i64) {
        let next = self
            .next
            .entry((topic.to_string(), partition))
            .or_insert(offset + 1);
        *next = (*next).max(offset + 1);
    }

    pub fn is_empty(&self) -> bool {
        self.next.is_empty()
    }

    /// Takes in what `other` marked (batches processed in slices are committed as one).
    pub fn merge(&mut self, other: &OffsetTracker) {
        for ((topic, partition), next) in &other.next {
            self.mark(topic, *partition, next - 1);
        }
    }

    pub fn clear(&mut self) {
        self.next.clear();
    }

    /// The offsets to commit (next to read per partition).
    pub fn to_list(&self) -> TopicPartitionList {
        let mut tpl = TopicPartitionList::with_capacity(self.next.len());
        for ((topic, partition), offset) in &self.next {
            tpl.add_partition_offset(topic, *partition, Offset::Offset(*offset))
                .expect("a fresh list accepts any offset");
        }
        tpl
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tracker_keeps_the_offset_after_the_highest_processed() {
        let mut t = OffsetTracker::new();
        t.mark("a", 0, 5);
        t.mark("a", 0, 3); // out of order: must not move backwards
        t.mark("a", 1, 0);
        let list = t.to_list();
        assert_eq!(
            list.find_partition("a", 0).unwrap().offset(),
            Offset::Offset(6)
        );
        assert_eq!(
            list.find_partition("a", 1).unwrap().offset(),
            Offset::Offset(1)
        );
        t.clear();
        assert!(t.is_empty());
    }
}
