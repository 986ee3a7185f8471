//! Subscribe streams: each reads the log from its position, then follows
//! the live tail, and falls back to the log whenever it falls behind.
//!
//! Why this shape: the log is durable, so a subscriber never needs the
//! writer to wait for it. Live records come through the store's broadcast
//! tail, whose bounded buffer is per receiver; a receiver that lags is told
//! so and simply reads the log again from the last sequence it handled. The
//! position only ever moves by one, so a stream has no gap and no duplicate
//! whatever its pace, and a slow one holds back nobody.

use std::{
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    time::Duration,
};

use tokio::time::Instant;

use tokio::sync::{broadcast::error::RecvError, mpsc};
use tokio_util::{sync::CancellationToken, task::TaskTracker};

use crate::{
    store::{EventRecord, Store, StoreError},
    time::Clock,
};

/// Records read from the log per step of catch-up.
const PAGE: usize = 512;
/// Items buffered between a stream's task and its gRPC response.
const STREAM_BUFFER: usize = 256;
/// A checkpoint is sent after this long without sending anything.
pub const IDLE_CHECKPOINT: Duration = Duration::from_secs(15);
/// How long the final status of a stream may wait for a client that stopped
/// reading; shutdown must not wait on it.
const FINAL_SEND_TIMEOUT: Duration = Duration::from_millis(100);
/// How long a stream waits for a store being reopened before it looks again.
const REOPEN_PAUSE: Duration = Duration::from_millis(100);

/// Which records a stream wants.
pub type Filter = Arc<dyn Fn(&EventRecord) -> bool + Send + Sync>;

/// One item of a stream.
#[derive(Debug, Clone)]
pub enum Item {
    Record(Arc<EventRecord>),
    Checkpoint(Checkpoint),
}

/// Progress of a stream; see `SubscribeCheckpoint` in the contract.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Checkpoint {
    /// Every record up to here has been sent or filtered out.
    pub sequence: u64,
    pub head: u64,
    pub caught_up: bool,
    pub time_ms: i64,
}

/// Why a stream ended on the server's side.
#[derive(Debug, thiserror::Error)]
pub enum StreamEnd {
    #[error(
        "records after {after} are no longer retained; the oldest available sequence is {oldest}"
    )]
    Pruned { after: u64, oldest: u64 },
    #[error("the server is shutting down; resume after sequence {after}")]
    ShuttingDown { after: u64 },
    #[error("reading the event log failed: {0}")]
    Store(#[from] StoreError),
}

/// Runs every Subscribe stream of the process.
#[derive(Clone)]
pub struct Fanout {
    store: Arc<dyn Store>,
    /// Dates checkpoints.
    clock: Clock,
    shutdown: CancellationToken,
    tasks: TaskTracker,
    active: Arc<AtomicUsize>,
}

impl Fanout {
    pub fn new(store: Arc<dyn Store>, clock: Clock) -> Self {
        Self {
            store,
            clock,
            shutdown: CancellationToken::new(),
            tasks: TaskTracker::new(),
            active: Arc::new(AtomicUsize::new(0)),
        }
    }

    /// Starts a stream of the records after `after` that pass `filter`.
    /// The stream ends when the receiver is dropped or at shutdown.
    pub fn subscribe(&self, after: u64, filter: Filter) -> mpsc::Receiver<Result<Item, StreamEnd>> {
        let (tx, rx) = mpsc::channel(STREAM_BUFFER);
        let stream = Stream {
            store: self.store.clone(),
            clock: self.clock.clone(),
            filter,
            tx,
            shutdown: self.shutdown.clone(),
            position: after,
            last_sent: Instant::now(),
            _active: ActiveGuard::new(&self.active),
        };
        // After close() the tracker is closed and nobody would wait for a
        // new task: such a stream ends at once (its task sees the
        // cancelled token first thing).
        self.tasks.spawn(stream.run());
        rx
    }

    /// Streams running now.
    pub fn active(&self) -> usize {
        self.active.load(Ordering::Relaxed)
    }

    /// Ends every stream (each tells its client where to resume) and waits
    /// for their tasks.
    pub async fn close(&self) {
        self.shutdown.cancel();
        self.tasks.close();
        self.tasks.wait().await;
    }
}

/// Counts a stream as active for as long as its task lives.
struct ActiveGuard(Arc<AtomicUsize>);

impl ActiveGuard {
    fn new(active: &Arc<AtomicUsize>) -> Self {
        active.fetch_add(1, Ordering::Relaxed);
        Self(active.clone())
    }
}

impl Drop for ActiveGuard {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Why sending stopped.
enum Stop {
    /// The client went away: end quietly.
    Gone,
    /// End the stream with this reason.
    End(StreamEnd),
}

impl From<StoreError> for Stop {
    fn from(err: StoreError) -> Self {
        Stop::End(StreamEnd::Store(err))
    }
}

struct Stream {
    store: Arc<dyn Store>,
    clock: Clock,
    filter: Filter,
    tx: mpsc::Sender<Result<Item, StreamEnd>>,
    shutdown: CancellationToken,
    /// Highest sequence sent or filtered out.
    position: u64,
    /// When something was last sent; drives idle checkpoints.
    last_sent: Instant,
    _active: ActiveGuard,
}

impl Stream {
    async fn run(mut self) {
        let stop = if self.shutdown.is_cancelled() {
            Stop::End(StreamEnd::ShuttingDown {
                after: self.position,
            })
        } else {
            self.follow().await
        };
        match stop {
            Stop::Gone => {}
            Stop::End(end) => {
                // A client that stopped reading must not hold up shutdown.
                let _ = tokio::time::timeout(FINAL_SEND_TIMEOUT, self.tx.send(Err(end))).await;
            }
        }
    }

    async fn follow(&mut self) -> Stop {
        let mut announced = false;
        loop {
            // Subscribe to the tail before reading the log, so that nothing
            // appended meanwhile can slip between the two.
            let mut live = self.store.tail();
            if let Err(stop) = self.catch_up().await {
                return stop;
            }
            if !announced {
                announced = true;
                if let Err(stop) = self.checkpoint(true).await {
                    return stop;
                }
            }
            match self.live(&mut live).await {
                Ok(()) => continue, // fell behind: read the log again
                Err(stop) => return stop,
            }
        }
    }

    /// Sends everything in the log after the position.
    async fn catch_up(&mut self) -> Result<(), Stop> {
        loop {
            // A stream whose filter matches nothing sends nothing, so check
            // on every page whether it should still be reading.
            if self.shutdown.is_cancelled() {
                return Err(Stop::End(StreamEnd::ShuttingDown {
                    after: self.position,
                }));
            }
            if self.tx.is_closed() {
                return Err(Stop::Gone);
            }
            if self.last_sent.elapsed() >= IDLE_CHECKPOINT {
                self.checkpoint(false).await?;
            }
            let oldest = self.store.bounds().oldest;
            if self.position + 1 < oldest {
                return Err(Stop::End(StreamEnd::Pruned {
                    after: self.position,
                    oldest,
                }));
            }
            let page = match self.store.read_events(self.position, PAGE).await {
                // Back in a moment (see store::Watched): wait, not end.
                Err(StoreError::Reopening) => {
                    tokio::time::sleep(REOPEN_PAUSE).await;
                    continue;
                }
                page => page?,
            };
            if page.is_empty() {
                return Ok(());
            }
            for record in page {
                // Retention removed records under our feet, or the log has
                // a hole where a refused write was (see
                // Store::oldest_retained): only the first ends the stream.
                if record.sequence != self.position + 1
                    && self.position + 1 < self.store.oldest_retained().await?
                {
                    return Err(Stop::End(StreamEnd::Pruned {
                        after: self.position,
                        oldest: record.sequence,
                    }));
                }
                self.offer(Arc::new(record)).await?;
            }
        }
    }

    /// Follows the live tail; returns `Ok` when it fell behind.
    async fn live(
        &mut self,
        live: &mut tokio::sync::broadcast::Receiver<Arc<EventRecord>>,
    ) -> Result<(), Stop> {
        loop {
            // Reset only by sending: filtered-out traffic does not count.
            let idle = tokio::time::sleep_until(self.last_sent + IDLE_CHECKPOINT);
            tokio::select! {
                _ = self.shutdown.cancelled() => {
                    return Err(Stop::End(StreamEnd::ShuttingDown { after: self.position }));
                }
                _ = self.tx.closed() => return Err(Stop::Gone),
                _ = idle => self.checkpoint(true).await?,
                received = live.recv() => match received {
                    Ok(record) if record.sequence <= self.position => {}
                    Ok(record) if record.sequence == self.position + 1 => self.offer(record).await?,
                    // A record we did not see: read it from the log.
                    Ok(_) | Err(RecvError::Lagged(_)) => return Ok(()),
                    // The store closed: for good when the service stops,
                    // else it was reopened and has a new tail.
                    Err(RecvError::Closed) => {
                        tokio::select! {
                            _ = self.shutdown.cancelled() => {
                                return Err(Stop::End(StreamEnd::ShuttingDown { after: self.position }));
                            }
                            _ = tokio::time::sleep(REOPEN_PAUSE) => return Ok(()),
                        }
                    }
                },
            }
        }
    }

    /// Advances the position past `record`, sending it if it matches.
    async fn offer(&mut self, record: Arc<EventRecord>) -> Result<(), Stop> {
        let sequence = record.sequence;
        if (self.filter)(&record) {
            self.send(Item::Record(record)).await?;
        }
        self.position = sequence;
        Ok(())
    }

    async fn checkpoint(&mut self, caught_up: bool) -> Result<(), Stop> {
        let checkpoint = Checkpoint {
            sequence: self.position,
            head: self.store.bounds().head,
            caught_up,
            time_ms: self.clock.now_ms(),
        };
        self.send(Item::Checkpoint(checkpoint)).await
    }

    async fn send(&mut self, item: Item) -> Result<(), Stop> {
        self.last_sent = Instant::now();
        tokio::select! {
            sent = self.tx.send(Ok(item)) => sent.map_err(|_| Stop::Gone),
            _ = self.shutdown.cancelled() => {
                Err(Stop::End(StreamEnd::ShuttingDown { after: self.position }))
            }
        }
    }
}
