//! Group commit for the store's small writes (channels, consumers, the
//! outbox): callers that need durability at about the same time share one
//! flush instead of queueing one each. sled's `flush_async` does not
//! coalesce concurrent callers and stalls under load.

use std::{fs::File, sync::Arc};

use tokio::sync::{Mutex, watch};

use super::{Result, StoreError};

/// Shares flushes among concurrent callers. Cheap to clone.
#[derive(Clone)]
pub struct GroupFlush {
    inner: Arc<Inner>,
}

struct Inner {
    db: sled::Db,
    /// sled's data file: synced after sled's flush, which only uses
    /// `sync_file_range`.
    data_file: File,
    /// Tickets handed out; a flush started after ticket `t` was taken
    /// covers `t`.
    requested: Mutex<u64>,
    /// Highest ticket whose writes are known durable.
    completed: watch::Sender<u64>,
}

impl GroupFlush {
    pub fn new(db: sled::Db, data_file: File) -> Self {
        Self {
            inner: Arc::new(Inner {
                db,
                data_file,
                requested: Mutex::new(0),
                completed: watch::channel(0).0,
            }),
        }
    }

    /// Returns once everything written before the call is durable.
    pub async fn flush(&self) -> Result<()> {
        let ticket = {
            let mut requested = self.inner.requested.lock().await;
            *requested += 1;
            *requested
        };
        let mut completed = self.inner.completed.subscribe();
        loop {
            if *completed.borrow_and_update() >= ticket {
                return Ok(());
            }
            // One flusher at a time: whoever holds the lock flushes for
            // every ticket taken so far; the others wait for its result.
            match self.inner.requested.try_lock() {
                Ok(requested) => {
                    let upto = *requested;
                    let inner = self.inner.clone();
                    let flushed = tokio::task::spawn_blocking(move || {
                        inner.db.flush().map_err(|e| match &e {
                            sled::Error::Io(io) => StoreError::from_io("sled flush", io),
                            _ => StoreError::Backend(e.to_string()),
                        })?;
                        inner
                            .data_file
                            .sync_data()
                            .map_err(|e| StoreError::from_io("syncing sled's data file", &e))
                    })
                    .await
                    .map_err(|e| StoreError::Backend(e.to_string()))?;
                    drop(requested);
                    flushed?;
                    self.inner
                        .completed
                        .send_modify(|done| *done = (*done).max(upto));
                }
                Err(_) => {
                    // Someone is flushing or taking a ticket: wait for news.
                    let _ = tokio::time::timeout(
                        std::time::Duration::from_millis(50),
                        completed.changed(),
                    )
                    .await;
                }
            }
        }
    }
}
