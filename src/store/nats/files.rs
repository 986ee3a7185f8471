//! Files every replica can read: a JetStream Object Store bucket
//! (`P_media`), where media and agents' uploads live on NATS instead of one
//! replica's data dir, so any replica serves any of them.
//!
//! Names are the caller's (`uploads/…`, `media/…`); the store only keeps
//! bytes, a description and the time each file was written.

use std::{
    future::Future as _,
    path::Path,
    pin::Pin,
    task::{Context, Poll},
    time::Duration,
};

use async_nats::jetstream::{
    self,
    object_store::{self, GetErrorKind, InfoErrorKind, ObjectMetadata, ObjectStore},
    stream,
};
use futures_util::TryStreamExt as _;
use tokio::io::{AsyncRead, AsyncReadExt as _, ReadBuf};

use super::backend;
use crate::store::{Result, StoreError};

/// One stored file, as a listing shows it.
#[derive(Debug, Clone)]
pub struct SharedFile {
    pub name: String,
    pub size: u64,
    /// What the writer said of it (uploads: the media id a token serves).
    pub description: String,
    /// When it was written, in ms since the epoch (0 when unknown).
    pub modified_ms: i64,
}

/// A file being read, from `skip` bytes in.
pub struct SharedReader {
    /// The whole file's size.
    pub size: u64,
    pub reader: Box<dyn AsyncRead + Send + Unpin>,
}

/// How long a read waits for the next bytes of an object. The client reads
/// an object's chunks with a consumer that never ends if the object is
/// deleted meanwhile (another replica pruned it): such a read fails
/// instead of hanging.
const READ_STALL: Duration = Duration::from_secs(10);

/// A reader that fails once `READ_STALL` passes without progress.
struct StallLimit<R> {
    inner: R,
    stall: Pin<Box<tokio::time::Sleep>>,
}

impl<R> StallLimit<R> {
    fn new(inner: R) -> Self {
        Self {
            inner,
            stall: Box::pin(tokio::time::sleep(READ_STALL)),
        }
    }
}

impl<R: AsyncRead + Unpin> AsyncRead for StallLimit<R> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let this = &mut *self;
        match Pin::new(&mut this.inner).poll_read(cx, buf) {
            Poll::Ready(read) => {
                this.stall
                    .as_mut()
                    .reset(tokio::time::Instant::now() + READ_STALL);
                Poll::Ready(read)
            }
            Poll::Pending => match this.stall.as_mut().poll(cx) {
                Poll::Ready(()) => Poll::Ready(Err(std::io::Error::new(
                    std::io::ErrorKind::TimedOut,
                    format!(
                        "NATS sent nothing of the file for {} s (removed while read?)",
                        READ_STALL.as_secs()
                    ),
                ))),
                Poll::Pending => Poll::Pending,
            },
        }
    }
}

/// The shared files bucket; cheap to clone.
#[derive(Clone)]
pub struct SharedFiles {
    bucket: ObjectStore,
}

impl std::fmt::Debug for SharedFiles {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SharedFiles").finish_non_exhaustive()
    }
}

impl SharedFiles {
    /// Opens bucket `name`, creating its stream if missing. The stream is
    /// made here, as the client's `create_object_store` makes it, for the
    /// same reason as the key-value buckets: that call is not usable with
    /// NATS 2.9 servers. Nothing expires by age: each owner prunes its own
    /// names by its own retention.
    pub async fn open(js: &jetstream::Context, name: &str, replicas: usize) -> Result<Self> {
        let config = stream::Config {
            name: format!("OBJ_{name}"),
            subjects: vec![format!("$O.{name}.C.>"), format!("$O.{name}.M.>")],
            storage: stream::StorageType::File,
            num_replicas: replicas,
            discard: stream::DiscardPolicy::New,
            allow_rollup: true,
            // Not direct: with replicas, a follower that is behind could
            // answer that a file just written by another replica is not
            // there.
            allow_direct: false,
            ..Default::default()
        };
        let written = match js.create_stream(config.clone()).await {
            Ok(_) => Ok(()),
            Err(_) => js.update_stream(&config).await.map(|_| ()),
        };
        let bucket = js.get_object_store(name).await.map_err(|e| {
            let why = match written {
                Err(write) => write.to_string(),
                Ok(()) => e.to_string(),
            };
            StoreError::Backend(format!("NATS: opening object store {name}: {why}"))
        })?;
        Ok(Self { bucket })
    }

    /// Stores the file at `path` as `name` (replacing one of that name).
    pub async fn put_file(&self, name: &str, path: &Path, description: &str) -> Result<()> {
        let mut file = tokio::fs::File::open(path)
            .await
            .map_err(|e| StoreError::from_io("reading a file to share", &e))?;
        self.put(name, &mut file, description).await
    }

    /// Stores `bytes` as `name` (replacing one of that name).
    pub async fn put_bytes(&self, name: &str, bytes: &[u8], description: &str) -> Result<()> {
        let mut reader = bytes;
        self.put(name, &mut reader, description).await
    }

    async fn put(
        &self,
        name: &str,
        data: &mut (impl AsyncRead + Unpin),
        description: &str,
    ) -> Result<()> {
        let meta = ObjectMetadata {
            name: name.to_owned(),
            description: (!description.is_empty()).then(|| description.to_owned()),
            ..Default::default()
        };
        self.bucket.put(meta, data).await.map_err(backend)?;
        Ok(())
    }

    /// The whole of a small file, `None` if there is none of that name.
    pub async fn read(&self, name: &str) -> Result<Option<Vec<u8>>> {
        let Some(mut file) = self.open_at(name, 0).await? else {
            return Ok(None);
        };
        let mut bytes = Vec::with_capacity(usize::try_from(file.size).unwrap_or(0));
        file.reader.read_to_end(&mut bytes).await.map_err(backend)?;
        Ok(Some(bytes))
    }

    /// Reads `name` from `skip` bytes in (for byte ranges: the bucket has
    /// no seek, so the bytes before are read and dropped), `None` if there
    /// is none of that name.
    pub async fn open_at(&self, name: &str, skip: u64) -> Result<Option<SharedReader>> {
        let object = match self.bucket.get(name).await {
            Ok(object) => object,
            Err(err) if err.kind() == GetErrorKind::NotFound => return Ok(None),
            Err(err) => return Err(backend(err)),
        };
        let size = object.info().size as u64;
        let mut object = StallLimit::new(object);
        if skip > 0 {
            let skipped = tokio::io::copy(&mut (&mut object).take(skip), &mut tokio::io::sink())
                .await
                .map_err(backend)?;
            if skipped < skip.min(size) {
                return Err(StoreError::Backend(format!(
                    "NATS: {name} ended after {skipped} of {size} bytes"
                )));
            }
        }
        Ok(Some(SharedReader {
            size,
            reader: Box::new(object),
        }))
    }

    /// The size of `name`, `None` if there is none of that name.
    pub async fn size(&self, name: &str) -> Result<Option<u64>> {
        match self.bucket.info(name).await {
            Ok(info) if !info.deleted => Ok(Some(info.size as u64)),
            Ok(_) => Ok(None),
            Err(err) if err.kind() == InfoErrorKind::NotFound => Ok(None),
            Err(err) => Err(backend(err)),
        }
    }

    /// Removes `name`; one already gone (another replica pruned it first)
    /// is not an error.
    pub async fn delete(&self, name: &str) -> Result<()> {
        match self.bucket.delete(name).await {
            Ok(()) => Ok(()),
            Err(err) if err.kind() == object_store::DeleteErrorKind::NotFound => Ok(()),
            Err(err) => Err(backend(err)),
        }
    }

    /// Every file whose name starts with `prefix`.
    pub async fn list(&self, prefix: &str) -> Result<Vec<SharedFile>> {
        let mut listing = self.bucket.list().await.map_err(backend)?;
        let mut files = Vec::new();
        // The client's listing ends at the message it saw last as the
        // newest; if a delete rolls that one up meanwhile, it waits for
        // ever: a listing that stalls fails instead (the prune is tried
        // again later).
        loop {
            let next = tokio::time::timeout(READ_STALL, listing.try_next())
                .await
                .map_err(|_| {
                    StoreError::Backend(format!(
                        "NATS: listing the files stalled for {} s",
                        READ_STALL.as_secs()
                    ))
                })?;
            let Some(info) = next.map_err(backend)? else {
                break;
            };
            if info.deleted || !info.name.starts_with(prefix) {
                continue;
            }
            files.push(SharedFile {
                modified_ms: info
                    .modified
                    .map(|t| (t.unix_timestamp_nanos() / 1_000_000) as i64)
                    .unwrap_or(0),
                size: info.size as u64,
                description: info.description.unwrap_or_default(),
                name: info.name,
            });
        }
        Ok(files)
    }
}
