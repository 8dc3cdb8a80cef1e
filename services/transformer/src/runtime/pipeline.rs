//! Reading and preparing ahead of the transaction. A reader task takes the records the consumer
//! already holds in chunks of up to [`CHUNK`] and starts preparing each chunk on its own task
//! the moment it is read; the transaction loop takes the prepared chunks in read order
//! ([`PreparePipeline::next`]) and produces them into its open transaction at once.
//!
//! So reading, mapping (on every core), producing and committing all overlap, and a
//! transaction can grow to thousands of records without the process holding them: a chunk's
//! input records are dropped once prepared and its outputs once handed to the producer. Only
//! [`DEPTH`] chunks wait at a time; the reader waits when they are not taken.
//!
//! Nothing here commits or produces, so stopping it ([`PreparePipeline::stop`]) loses nothing:
//! what it read ahead was never committed and is read again from the committed offsets.

use std::sync::Arc;

use rdkafka::message::OwnedMessage;
use sfjira_core::kafka::KafkaConsumer;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use super::prepare::{Prepared, Preparer, Retryable};

/// Records per chunk at most: large enough that a chunk's task costs little next to its
/// mapping, small enough that the first outputs reach the producer soon after they are read.
pub const CHUNK: usize = 256;
/// Chunks read and prepared ahead of the transaction loop: one per core here keeps both busy.
/// Cut from 4 together with the consumer's prefetch (8 → 4 MB): `make bench` read as fast and
/// the peak RSS fell from 90-93 to 80-84 MB (the two were not measured apart).
pub const DEPTH: usize = 2;

/// One prepared chunk, in read order.
pub struct Chunk {
    pub prepared: Result<Prepared, Retryable>,
    /// The reader found no further record waiting when it closed this chunk: the stream is
    /// caught up, so a transaction need not wait for more.
    pub caught_up: bool,
}

type Pending = (JoinHandle<Result<Prepared, Retryable>>, bool);

pub struct PreparePipeline {
    reader: JoinHandle<anyhow::Result<()>>,
    queue: mpsc::Receiver<Pending>,
    /// The chunk being awaited, kept here so a cancelled [`Self::next`] does not drop it.
    head: Option<Pending>,
}

impl PreparePipeline {
    pub fn start(consumer: Arc<KafkaConsumer>, preparer: Arc<Preparer>) -> Self {
        let (tx, queue) = mpsc::channel(DEPTH);
        PreparePipeline {
            reader: tokio::spawn(read(consumer, preparer, tx)),
            queue,
            head: None,
        }
    }

    /// The next prepared chunk. Waits until one is read and prepared; an error is the
    /// consumer's (or a preparing task that died). Cancel-safe: a chunk being awaited when
    /// the call is dropped is returned by the next call.
    pub async fn next(&mut self) -> anyhow::Result<Chunk> {
        if self.head.is_none() {
            match self.queue.recv().await {
                Some(pending) => self.head = Some(pending),
                // The reader only stops on an error (or when this pipeline is dropped).
                None => return Err(self.reader_error().await),
            }
        }
        let (task, caught_up) = self.head.as_mut().expect("set above");
        let joined = task.await;
        let caught_up = *caught_up;
        self.head = None;
        match joined {
            Ok(prepared) => Ok(Chunk {
                prepared,
                caught_up,
            }),
            Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
            Err(e) => Err(anyhow::anyhow!("preparing a chunk: {e}")),
        }
    }

    /// Stops reading and preparing, and waits until the reader has stopped (so the consumer
    /// can be rewound without a read racing the seek) and every queued chunk's task has ended.
    /// A chunk the reader had read but not queued yet may still be prepared on its task; that
    /// touches no consumer and its result is dropped.
    pub async fn stop(mut self) {
        self.reader.abort();
        let _ = (&mut self.reader).await;
        let mut pending: Vec<Pending> = self.head.take().into_iter().collect();
        self.queue.close();
        while let Some(p) = self.queue.recv().await {
            pending.push(p);
        }
        for (task, _) in pending {
            task.abort();
            let _ = task.await;
        }
    }

    async fn reader_error(&mut self) -> anyhow::Error {
        match (&mut self.reader).await {
            Ok(Ok(())) => anyhow::anyhow!("the record reader stopped"),
            Ok(Err(e)) => e,
            Err(e) => anyhow::anyhow!("the record reader failed: {e}"),
        }
    }
}

/// The reader task: a chunk is the first record to arrive plus every record already waiting
/// behind it, up to [`CHUNK`].
async fn read(
    consumer: Arc<KafkaConsumer>,
    preparer: Arc<Preparer>,
    ready: mpsc::Sender<Pending>,
) -> anyhow::Result<()> {
    loop {
        let mut chunk: Vec<OwnedMessage> = Vec::with_capacity(CHUNK);
        chunk.push(consumer.recv().await?.detach());
        let mut caught_up = false;
        while chunk.len() < CHUNK {
            match consumer.recv_now() {
                Some(msg) => chunk.push(msg?.detach()),
                None => {
                    caught_up = true;
                    break;
                }
            }
        }
        let preparer = Arc::clone(&preparer);
        let task = tokio::spawn(async move { preparer.prepare(chunk).await });
        if ready.send((task, caught_up)).await.is_err() {
            return Ok(()); // the pipeline was stopped
        }
    }
}
