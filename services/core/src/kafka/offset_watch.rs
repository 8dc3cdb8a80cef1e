//! [`CommittedOffsetWatch`]: the watchdog that notices when a consumer group's committed
//! offsets cannot be fetched, so the consumer reads nothing while looking alive.
//!
//! Why: our consumers are `read_committed`, so librdkafka asks for the group's offsets with
//! `require_stable`. While a transaction holding offsets for the group is open on
//! `__consumer_offsets`, Kafka answers `UNSTABLE_OFFSET_COMMIT` and librdkafka retries without
//! end and without a word. Normally that lasts until the transaction ends; a *hanging*
//! transaction (one left open by a broker restart) never ends, and the stage waits for ever
//! (docs/runbook.md, the hanging-transaction entry).
//!
//! What it looks at, on its own thread every `threshold / 4` (between 250 ms and 5 s):
//! 1. `position()` (local, cheap): the assigned partitions without a fetch position. A
//!    partition's position moves with every record received, so these are the partitions
//!    nothing was received from. An empty assignment, or none without a position, is healthy.
//! 2. Those partitions alone are not proof: an idle consumer on an empty topic, or one restarted
//!    when it had already read everything, keeps `Offset::Invalid` for ever too (measured on
//!    librdkafka 2.12: `position()` reports the application's position, which exists only once a
//!    record was consumed). So it asks the group's committed offsets for them, as the consumer
//!    itself does (`require_stable`, bounded by the look's interval). An answer means the
//!    offsets are stable and the consumer is just idle; no answer means it is waiting.
//!    Partitions with records received are never asked about: the stage's own open transaction
//!    holds offsets only for partitions it consumed, so it cannot raise a false alarm.
//! 3. Waiting for longer than the threshold (default [`DEFAULT_STALL_THRESHOLD`]) starts an
//!    episode: one error log line (group, partitions, likely cause, runbook anchor), the gauge
//!    `sfjira_consumer_offsets_unfetched_partitions{stage,group}`, and a raised readiness
//!    condition `kafka_consumer:<group>` (see `health::runtime_conditions`). To name the cause
//!    it asks once more from a `read_uncommitted` client, which Kafka answers despite pending
//!    transactional offsets: if that one answers, the offsets are unstable (an open
//!    transaction). The first healthy look ends the episode: an info line, the gauge at 0,
//!    ready again.
//!
//! Why a thread: `position()`, `committed_offsets()` and creating the diagnostic client block,
//! and the consuming task must never wait on them. The thread holds only a `Weak` reference to
//! the consumer, so dropping the `KafkaConsumer` stops it (it also wakes on the drop of the
//! watch). A look costs one OffsetFetch request, and only while some assigned partition has
//! received nothing; a consuming stage costs one `position()` call per look.

use std::collections::BTreeSet;
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer, StreamConsumer};
use rdkafka::{Offset, TopicPartitionList};

use crate::health::{ReadinessFlag, runtime_conditions};
use crate::telemetry::events::{ConsumerOffsetsRecovered, ConsumerOffsetsStalled};

/// How long assigned partitions may wait for their committed offsets before it is an episode.
/// Long enough for a stage's own transaction (whose offsets also make the group's offsets
/// unstable for a moment) and a coordinator moving after a broker restart.
pub const DEFAULT_STALL_THRESHOLD: Duration = Duration::from_secs(30);

/// Where the runbook explains what to do.
pub const RUNBOOK_ANCHOR: &str =
    "docs/runbook.md#and-afterwards-a-stage-reads-nothing-a-hanging-transaction";

/// How a consumer's watchdog is set up.
#[derive(Debug, Clone)]
pub struct OffsetWatchSettings {
    /// See [`DEFAULT_STALL_THRESHOLD`].
    pub threshold: Duration,
    /// The `stage` label and log field; by default the executable's name without `sfjira-`
    /// (`sfjira-transformer` → `transformer`, as the stages name themselves).
    pub stage: String,
}

impl Default for OffsetWatchSettings {
    fn default() -> Self {
        OffsetWatchSettings {
            threshold: DEFAULT_STALL_THRESHOLD,
            stage: stage_from_executable(),
        }
    }
}

fn stage_from_executable() -> String {
    std::env::current_exe()
        .ok()
        .and_then(|p| p.file_stem().map(|s| s.to_string_lossy().into_owned()))
        .map(|name| name.strip_prefix("sfjira-").unwrap_or(&name).to_owned())
        .unwrap_or_else(|| "unknown".to_owned())
}

/// What is most likely holding a stalled group's offsets back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StallCause {
    /// A `read_uncommitted` client got the offsets at once: a transaction holding offsets for
    /// the group is open (`UNSTABLE_OFFSET_COMMIT`), most likely a hanging one.
    UnstableOffsets,
    /// Nobody got an answer: the group coordinator is unreachable or not answering.
    CoordinatorSilent,
}

impl StallCause {
    pub fn describe(self) -> &'static str {
        match self {
            StallCause::UnstableOffsets => {
                "Kafka reports the group's offsets unstable (UNSTABLE_OFFSET_COMMIT): a transaction holding offsets for this group is open on __consumer_offsets, most likely a hanging transaction left by a broker restart"
            }
            StallCause::CoordinatorSilent => {
                "the group coordinator does not answer offset fetches (a broker down or moving), or a transaction holding offsets for this group is open on __consumer_offsets"
            }
        }
    }
}

/// One episode: assigned partitions that have waited for their committed offsets for longer
/// than the threshold.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OffsetStall {
    pub group: String,
    /// `(topic, partition)`, sorted.
    pub partitions: Vec<(String, i32)>,
    /// When the first look that got no answer began.
    pub since: Instant,
    pub cause: StallCause,
}

impl OffsetStall {
    /// `topic[0], topic[1]`.
    pub fn partition_list(&self) -> String {
        self.partitions
            .iter()
            .map(|(t, p)| format!("{t}[{p}]"))
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// The watchdog of one consumer; see the module comment. Dropping it stops it and clears what
/// it raised.
pub struct CommittedOffsetWatch {
    shared: Arc<Shared>,
    /// Dropping this wakes the thread, which then stops.
    _stop: mpsc::Sender<()>,
}

struct Shared {
    group: String,
    settings: OffsetWatchSettings,
    flag: ReadinessFlag,
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    stopped: bool,
    stall: Option<OffsetStall>,
    /// Looks that found partitions without a position whose offsets were stable.
    idle_looks: u64,
}

impl CommittedOffsetWatch {
    /// Starts watching `consumer` (group `group`). `config` is the consumer's own configuration,
    /// for the diagnostic client.
    pub(crate) fn start(
        consumer: Weak<StreamConsumer>,
        config: &ClientConfig,
        group: &str,
        settings: OffsetWatchSettings,
    ) -> std::io::Result<Self> {
        let shared = Arc::new(Shared {
            group: group.to_owned(),
            flag: runtime_conditions().flag(format!("kafka_consumer:{group}")),
            settings,
            state: Mutex::new(State::default()),
        });
        let (stop, stopped) = mpsc::channel();
        let mut diagnostic = config.clone();
        diagnostic
            .set("isolation.level", "read_uncommitted")
            .remove("group.instance.id");
        let thread_shared = Arc::clone(&shared);
        std::thread::Builder::new()
            .name("sfjira-offset-watch".into())
            .spawn(move || watch(consumer, diagnostic, thread_shared, stopped))?;
        Ok(CommittedOffsetWatch {
            shared,
            _stop: stop,
        })
    }

    /// The current episode, if the consumer is stalled.
    pub fn stall(&self) -> Option<OffsetStall> {
        self.shared.lock().stall.clone()
    }

    /// How many looks found partitions without a position and their offsets stable (an idle,
    /// healthy consumer): shows the watch is looking even when it has nothing to report.
    pub fn idle_looks(&self) -> u64 {
        self.shared.lock().idle_looks
    }

    pub fn settings(&self) -> &OffsetWatchSettings {
        &self.shared.settings
    }
}

impl Drop for CommittedOffsetWatch {
    fn drop(&mut self) {
        let mut state = self.shared.lock();
        state.stopped = true;
        if state.stall.take().is_some() {
            self.shared.flag.clear();
        }
    }
}

impl Shared {
    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// What one look saw.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Look {
    /// Nothing waits: no assignment, every partition has a position, or the offsets of those
    /// without one were fetched (`idle`).
    Healthy { idle: bool },
    /// These partitions have no position and their committed offsets could not be fetched.
    Waiting(BTreeSet<(String, i32)>),
    /// The look itself failed (the consumer is closing); says nothing.
    Unknown,
}

/// The watch's episode logic, apart from Kafka so it can be tested on its own.
#[derive(Debug)]
struct Episodes {
    threshold: Duration,
    waiting_since: Option<Instant>,
    in_episode: bool,
}

#[derive(Debug, PartialEq, Eq)]
enum Transition {
    /// Waiting since the given instant, for longer than the threshold: a new episode.
    Stalled(Instant),
    /// The episode that started at the given instant ended.
    Recovered(Instant),
}

impl Episodes {
    fn new(threshold: Duration) -> Self {
        Episodes {
            threshold,
            waiting_since: None,
            in_episode: false,
        }
    }

    /// Takes in a look that began at `started` and ended at `now`.
    fn observe(&mut self, look: &Look, started: Instant, now: Instant) -> Option<Transition> {
        match look {
            Look::Unknown => None,
            Look::Healthy { .. } => {
                let since = self.waiting_since.take();
                if std::mem::take(&mut self.in_episode) {
                    since.map(Transition::Recovered)
                } else {
                    None
                }
            }
            Look::Waiting(_) => {
                let since = *self.waiting_since.get_or_insert(started);
                if !self.in_episode && now.duration_since(since) >= self.threshold {
                    self.in_episode = true;
                    Some(Transition::Stalled(since))
                } else {
                    None
                }
            }
        }
    }
}

/// The look interval (also the bound of one offset fetch).
fn interval(threshold: Duration) -> Duration {
    (threshold / 4).clamp(Duration::from_millis(250), Duration::from_secs(5))
}

fn watch(
    consumer: Weak<StreamConsumer>,
    diagnostic: ClientConfig,
    shared: Arc<Shared>,
    stop: mpsc::Receiver<()>,
) {
    let every = interval(shared.settings.threshold);
    let mut episodes = Episodes::new(shared.settings.threshold);
    loop {
        match stop.recv_timeout(every) {
            Err(RecvTimeoutError::Timeout) => {}
            Ok(()) | Err(RecvTimeoutError::Disconnected) => return,
        }
        let Some(consumer) = consumer.upgrade() else {
            return;
        };
        let started = Instant::now();
        let look = look(&consumer, every);
        drop(consumer);
        let transition = episodes.observe(&look, started, Instant::now());
        // The diagnosis asks Kafka, so it runs before the state is locked.
        let stall = match (&transition, &look) {
            (Some(Transition::Stalled(since)), Look::Waiting(partitions)) => Some(OffsetStall {
                group: shared.group.clone(),
                partitions: partitions.iter().cloned().collect(),
                since: *since,
                cause: diagnose(&diagnostic, partitions, every),
            }),
            _ => None,
        };
        let mut state = shared.lock();
        if state.stopped {
            return;
        }
        if look == (Look::Healthy { idle: true }) {
            state.idle_looks += 1;
        }
        match (stall, transition, look) {
            (Some(stall), _, _) => {
                report_stall(&shared, &stall);
                state.stall = Some(stall);
            }
            (None, Some(Transition::Recovered(since)), _) => {
                state.stall = None;
                shared.flag.clear();
                ConsumerOffsetsRecovered {
                    stage: &shared.settings.stage,
                    group: &shared.group,
                    stalled_for: since.elapsed(),
                }
                .emit();
            }
            // Still stalled: follow the partitions (a rebalance may change them) quietly.
            (None, None, Look::Waiting(partitions)) => {
                if let Some(stall) = state.stall.as_mut() {
                    stall.partitions = partitions.into_iter().collect();
                }
            }
            _ => {}
        }
    }
}

fn report_stall(shared: &Shared, stall: &OffsetStall) {
    let partitions = stall.partition_list();
    let waited = stall.since.elapsed();
    let cause = stall.cause.describe();
    shared.flag.raise(format!(
        "no committed offsets for {partitions} of group {} after {}s: {cause}; see {RUNBOOK_ANCHOR}",
        shared.group,
        waited.as_secs()
    ));
    ConsumerOffsetsStalled {
        stage: &shared.settings.stage,
        group: &shared.group,
        partitions: &partitions,
        partition_count: stall.partitions.len(),
        waited,
        cause,
        runbook: RUNBOOK_ANCHOR,
    }
    .emit();
}

/// One look at `consumer`; an offset fetch waits at most `timeout`.
fn look(consumer: &StreamConsumer, timeout: Duration) -> Look {
    let Ok(positions) = consumer.position() else {
        return Look::Unknown;
    };
    let mut unfetched = TopicPartitionList::new();
    for elem in positions.elements() {
        if elem.offset() == Offset::Invalid {
            unfetched.add_partition(elem.topic(), elem.partition());
        }
    }
    if unfetched.count() == 0 {
        return Look::Healthy { idle: false };
    }
    match consumer.committed_offsets(unfetched.clone(), timeout) {
        Ok(list) if list.elements().iter().all(|e| e.error().is_ok()) => {
            Look::Healthy { idle: true }
        }
        _ => Look::Waiting(
            unfetched
                .elements()
                .iter()
                .map(|e| (e.topic().to_owned(), e.partition()))
                .collect(),
        ),
    }
}

/// Asks the offsets of `partitions` from a `read_uncommitted` client, which Kafka answers even
/// while transactional offsets are pending.
fn diagnose(
    config: &ClientConfig,
    partitions: &BTreeSet<(String, i32)>,
    timeout: Duration,
) -> StallCause {
    let Ok(client) = config.create::<BaseConsumer>() else {
        return StallCause::CoordinatorSilent;
    };
    let mut list = TopicPartitionList::new();
    for (topic, partition) in partitions {
        list.add_partition(topic, *partition);
    }
    // A fresh client first has to find the coordinator: give it a few intervals.
    match client.committed_offsets(list, timeout * 4) {
        Ok(answer) if answer.elements().iter().all(|e| e.error().is_ok()) => {
            StallCause::UnstableOffsets
        }
        _ => StallCause::CoordinatorSilent,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn waiting() -> Look {
        Look::Waiting(BTreeSet::from([("t".to_owned(), 0)]))
    }

    #[test]
    fn waiting_past_the_threshold_is_one_episode_until_a_healthy_look() {
        let t0 = Instant::now();
        let s = Duration::from_secs(1);
        let mut e = Episodes::new(Duration::from_secs(30));
        assert_eq!(e.observe(&waiting(), t0, t0 + s), None);
        assert_eq!(e.observe(&waiting(), t0 + 10 * s, t0 + 11 * s), None);
        assert_eq!(
            e.observe(&waiting(), t0 + 29 * s, t0 + 30 * s),
            Some(Transition::Stalled(t0))
        );
        // One report per episode, however long it lasts; unknown looks change nothing.
        assert_eq!(e.observe(&waiting(), t0 + 40 * s, t0 + 41 * s), None);
        assert_eq!(e.observe(&Look::Unknown, t0 + 50 * s, t0 + 51 * s), None);
        assert_eq!(
            e.observe(&Look::Healthy { idle: true }, t0 + 60 * s, t0 + 61 * s),
            Some(Transition::Recovered(t0))
        );
        assert_eq!(
            e.observe(&Look::Healthy { idle: false }, t0 + 70 * s, t0 + 71 * s),
            None
        );
        // A new episode counts from its own first waiting look.
        assert_eq!(e.observe(&waiting(), t0 + 80 * s, t0 + 81 * s), None);
        assert_eq!(
            e.observe(&waiting(), t0 + 110 * s, t0 + 111 * s),
            Some(Transition::Stalled(t0 + 80 * s))
        );
    }

    #[test]
    fn a_short_wait_is_no_episode() {
        let t0 = Instant::now();
        let s = Duration::from_secs(1);
        let mut e = Episodes::new(Duration::from_secs(30));
        assert_eq!(e.observe(&waiting(), t0, t0 + s), None);
        assert_eq!(
            e.observe(&Look::Healthy { idle: true }, t0 + 5 * s, t0 + 6 * s),
            None
        );
        // The wait before the healthy look does not count towards the next one.
        assert_eq!(e.observe(&waiting(), t0 + 20 * s, t0 + 21 * s), None);
        assert_eq!(e.observe(&waiting(), t0 + 40 * s, t0 + 41 * s), None);
    }

    #[test]
    fn looks_are_spaced_by_a_quarter_of_the_threshold_within_bounds() {
        // 30 s / 4 = 7.5 s, capped at 5 s.
        assert_eq!(interval(DEFAULT_STALL_THRESHOLD), Duration::from_secs(5));
        assert_eq!(interval(Duration::from_secs(2)), Duration::from_millis(500));
        assert_eq!(
            interval(Duration::from_millis(100)),
            Duration::from_millis(250)
        );
    }
}
