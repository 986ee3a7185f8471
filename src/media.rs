//! Media of inbound messages, fetched from LINE as soon as the event is
//! stored (LINE deletes it after an unspecified time) and kept on disk
//! under `data_dir/media`, bounded in total size and age.
//!
//! Layout: `media/{channel id}/{message id}` holds the content,
//! `…/{message id}.preview` the preview, `…/{message id}.json` what is
//! known about it. Files are written under a temporary name and renamed, so
//! a crash never leaves a half file that looks whole.
//!
//! On NATS the content and preview are put into the shared files bucket
//! once fetched (`media/{channel id}/{message id}[.preview]`, with the
//! `.json` beside them) and removed from the data dir, so every replica's
//! GetMessageContent serves them. The `.json` stays here too: it says how
//! the fetch ended, and Subscribe reads it for each event.

use std::{
    path::{Path, PathBuf},
    sync::Arc,
    time::{Duration, SystemTime},
};

use serde::{Deserialize, Serialize};
use tokio::{io::AsyncWriteExt as _, sync::mpsc};
use tokio_util::{sync::CancellationToken, task::TaskTracker};

use crate::{
    line::{self, CallError, client::Content},
    space::SpaceWatch,
    store::{SharedFiles, SharedReader},
    time::Clock,
    tokens::Tokens,
};

/// Media failures (LINE unreachable, a full disk) happen per message:
/// logged as counts.
static MEDIA_FAILED: crate::log_limit::Throttle =
    crate::log_limit::Throttle::new(crate::log_limit::INTERVAL);

/// Downloads running at once: media is big, webhooks come first.
const WORKERS: usize = 2;
/// Media waiting to be fetched before new ones are marked failed (and
/// served from LINE on demand instead).
const QUEUE_DEPTH: usize = 10_000;
/// LINE's largest media (video, audio, files) are 200 MB.
pub const MAX_FILE_BYTES: u64 = 300 * 1024 * 1024;
/// Attempts per media before giving up (202 "still preparing" included).
const MAX_ATTEMPTS: u32 = 8;
/// Free space (above the store's watermark) a fetch of unknown size waits
/// for.
const ROOM_FOR_UNKNOWN_SIZE: u64 = 1024 * 1024;
/// How long a fetch waits for room on the data dir before it gives up
/// (the media is then served from LINE on demand, while LINE keeps it).
const ROOM_WAIT: Duration = Duration::from_secs(10 * 60);

/// What is known about one message's media.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MediaState {
    Pending,
    Stored,
    Gone,
    Failed,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct MediaMeta {
    pub state: MediaState,
    #[serde(default)]
    pub content_type: String,
    #[serde(default)]
    pub size: u64,
    #[serde(default)]
    pub preview_content_type: String,
    #[serde(default)]
    pub file_name: String,
    #[serde(default)]
    pub error: String,
    pub update_time_ms: i64,
}

/// Why a message has no content to fetch from LINE.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WithoutContent {
    /// Its content provider is EXTERNAL: the event carries the URLs.
    External,
    /// Its type has no media (text, sticker, location).
    NoMedia,
}

/// Messages without LINE-hosted content remembered at most, per process:
/// enough for the chats agents look at now, a few MiB at most.
const WITHOUT_CONTENT_CAPACITY: usize = 100_000;

/// Recent messages without LINE-hosted content, by a hash of channel and
/// message id (oldest dropped first).
#[derive(Default)]
struct WithoutContentSeen {
    kinds: std::collections::HashMap<u64, WithoutContent>,
    order: std::collections::VecDeque<u64>,
}

fn message_key(channel_id: &str, message_id: &str) -> u64 {
    use std::hash::Hasher as _;
    // Fixed keys: the same message hashes the same in every call.
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    hasher.write(channel_id.as_bytes());
    hasher.write_u8(0);
    hasher.write(message_id.as_bytes());
    hasher.finish()
}

/// One media to fetch.
#[derive(Debug, Clone)]
pub struct Job {
    pub channel_id: String,
    pub message_id: String,
    /// Image and video messages have a preview too.
    pub preview: bool,
    pub file_name: String,
}

/// The media keeper; cheap to clone.
#[derive(Clone)]
pub struct Media {
    inner: Arc<Inner>,
}

struct Inner {
    dir: PathBuf,
    tokens: Tokens,
    /// The data dir's free space: media never takes what the store needs.
    space: Option<SpaceWatch>,
    /// Dates the media's state.
    clock: Clock,
    /// The shared files bucket (NATS), where fetched media is kept instead.
    shared: Option<SharedFiles>,
    queue: mpsc::Sender<Job>,
    without_content: std::sync::Mutex<WithoutContentSeen>,
    shutdown: CancellationToken,
    tasks: TaskTracker,
}

/// Message ids are LINE's decimal ids; anything else never reaches a path.
pub fn valid_message_id(id: &str) -> bool {
    !id.is_empty() && id.len() <= 64 && id.bytes().all(|b| b.is_ascii_alphanumeric())
}

impl Media {
    /// `space`: fetches wait while the data dir has no room above the
    /// store's watermark (`None`: unchecked).
    /// `shared`: where fetched media is kept on NATS (see the module doc).
    pub fn new(
        dir: PathBuf,
        tokens: Tokens,
        clock: Clock,
        space: Option<SpaceWatch>,
        shared: Option<SharedFiles>,
    ) -> Self {
        let (queue, jobs) = mpsc::channel(QUEUE_DEPTH);
        let inner = Arc::new(Inner {
            dir,
            tokens,
            space,
            clock,
            shared,
            queue,
            without_content: std::sync::Mutex::default(),
            shutdown: CancellationToken::new(),
            tasks: TaskTracker::new(),
        });
        let jobs = Arc::new(tokio::sync::Mutex::new(jobs));
        for _ in 0..WORKERS {
            let inner = inner.clone();
            let jobs = jobs.clone();
            inner.tasks.clone().spawn(async move {
                loop {
                    let job = tokio::select! {
                        _ = inner.shutdown.cancelled() => return,
                        job = async { jobs.lock().await.recv().await } => match job {
                            Some(job) => job,
                            None => return,
                        },
                    };
                    inner.fetch(job).await;
                }
            });
        }
        Self { inner }
    }

    /// Queues a fetch; never waits (ingest must not).
    pub fn enqueue(&self, job: Job) {
        if !valid_message_id(&job.message_id) {
            return;
        }
        let path = self.inner.meta_path(&job.channel_id, &job.message_id);
        let meta = MediaMeta {
            state: MediaState::Pending,
            content_type: String::new(),
            size: 0,
            preview_content_type: String::new(),
            file_name: job.file_name.clone(),
            error: String::new(),
            update_time_ms: self.inner.clock.now_ms(),
        };
        if let Err(err) = write_meta_sync(&path, &meta) {
            if let Some(suppressed) = MEDIA_FAILED.admit() {
                tracing::warn!(error = %err, suppressed, "cannot record pending media (suppressed: how many more media failures since the last such line)");
            }
            return;
        }
        if let Err(err) = self.inner.queue.try_send(job) {
            let job = match err {
                mpsc::error::TrySendError::Full(job) | mpsc::error::TrySendError::Closed(job) => {
                    job
                }
            };
            let meta = MediaMeta {
                state: MediaState::Failed,
                error: "too many media waiting to be fetched".into(),
                ..meta
            };
            let _ = write_meta_sync(
                &self.inner.meta_path(&job.channel_id, &job.message_id),
                &meta,
            );
        }
    }

    /// Remembers that a stored message has no content to fetch from LINE,
    /// so that GetMessageContent can say so without asking LINE.
    pub fn note_without_content(&self, channel_id: &str, message_id: &str, why: WithoutContent) {
        let key = message_key(channel_id, message_id);
        let mut seen = self
            .inner
            .without_content
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        if seen.kinds.insert(key, why).is_none() {
            seen.order.push_back(key);
        }
        while seen.order.len() > WITHOUT_CONTENT_CAPACITY {
            if let Some(oldest) = seen.order.pop_front() {
                seen.kinds.remove(&oldest);
            }
        }
    }

    /// Why a message has no content at LINE, if this process received it
    /// and knows.
    pub fn without_content(&self, channel_id: &str, message_id: &str) -> Option<WithoutContent> {
        self.inner
            .without_content
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .kinds
            .get(&message_key(channel_id, message_id))
            .copied()
    }

    /// What is known about a message's media.
    pub fn meta(&self, channel_id: &str, message_id: &str) -> Option<MediaMeta> {
        if !valid_message_id(message_id) {
            return None;
        }
        let text = std::fs::read(self.inner.meta_path(channel_id, message_id)).ok()?;
        serde_json::from_slice(&text).ok()
    }

    /// What is known about a message's media here or, on NATS, by the
    /// replica that fetched it. A bucket that cannot be read counts as
    /// knowing nothing (the content is then asked of LINE).
    pub async fn meta_anywhere(&self, channel_id: &str, message_id: &str) -> Option<MediaMeta> {
        let local = self.meta(channel_id, message_id);
        let Some(files) = &self.inner.shared else {
            return local;
        };
        if !valid_message_id(message_id) {
            return None;
        }
        // On NATS the bucket's state is the one every replica shares
        // (retention marks it gone there); this replica's own is the
        // fallback (a pending fetch's file name, a failed put).
        match files
            .read(&shared_name(channel_id, message_id, "json"))
            .await
        {
            Ok(Some(bytes)) => serde_json::from_slice(&bytes).ok().or(local),
            Ok(None) => local,
            Err(err) => {
                tracing::warn!(error = %err, "reading media's state from NATS failed");
                local
            }
        }
    }

    /// The kept content (or preview), from the data dir or the shared
    /// files bucket.
    pub async fn open_stored(
        &self,
        channel_id: &str,
        message_id: &str,
        preview: bool,
    ) -> Option<SharedReader> {
        if !valid_message_id(message_id) {
            return None;
        }
        let path = self.inner.content_path(channel_id, message_id, preview);
        if let Ok(file) = tokio::fs::File::open(&path).await {
            let size = file.metadata().await.map(|m| m.len()).unwrap_or_default();
            return Some(SharedReader {
                size,
                reader: Box::new(file),
            });
        }
        let files = self.inner.shared.as_ref()?;
        let name = shared_name(channel_id, message_id, if preview { "preview" } else { "" });
        match files.open_at(&name, 0).await {
            Ok(found) => found,
            Err(err) => {
                tracing::warn!(error = %err, "reading media from NATS failed");
                None
            }
        }
    }

    /// Drops media older than `before` and, oldest first, whatever exceeds
    /// `max_total_bytes`. Returns the number of media removed.
    pub async fn prune(&self, before: SystemTime, max_total_bytes: u64) -> usize {
        let dir = self.inner.dir.clone();
        let local = tokio::task::spawn_blocking(move || prune_dir(&dir, before, max_total_bytes))
            .await
            .unwrap_or(0);
        let Some(files) = &self.inner.shared else {
            return local;
        };
        match prune_shared(files, before, max_total_bytes).await {
            Ok(shared) => local.max(shared),
            Err(err) => {
                tracing::warn!(error = %err, "pruning media in NATS failed; trying again later");
                local
            }
        }
    }

    pub async fn close(&self) {
        self.inner.shutdown.cancel();
        self.inner.tasks.close();
        self.inner.tasks.wait().await;
    }
}

impl Inner {
    fn channel_dir(&self, channel_id: &str) -> PathBuf {
        self.dir.join(channel_id)
    }

    fn meta_path(&self, channel_id: &str, message_id: &str) -> PathBuf {
        self.channel_dir(channel_id)
            .join(format!("{message_id}.json"))
    }

    fn content_path(&self, channel_id: &str, message_id: &str, preview: bool) -> PathBuf {
        let name = if preview {
            format!("{message_id}.preview")
        } else {
            message_id.to_owned()
        };
        self.channel_dir(channel_id).join(name)
    }

    async fn fetch(&self, job: Job) {
        let meta_path = self.meta_path(&job.channel_id, &job.message_id);
        let mut meta = read_meta(&meta_path).await.unwrap_or(MediaMeta {
            state: MediaState::Pending,
            content_type: String::new(),
            size: 0,
            preview_content_type: String::new(),
            file_name: job.file_name.clone(),
            error: String::new(),
            update_time_ms: self.clock.now_ms(),
        });
        let outcome = self.download(&job, false).await;
        match outcome {
            Ok(Downloaded::Stored { content_type, size }) => {
                meta.state = MediaState::Stored;
                meta.content_type = content_type;
                meta.size = size;
                meta.error.clear();
                if job.preview
                    && let Ok(Downloaded::Stored { content_type, .. }) =
                        self.download(&job, true).await
                {
                    meta.preview_content_type = content_type;
                }
            }
            Ok(Downloaded::Gone(reason)) => {
                meta.state = MediaState::Gone;
                meta.error = reason;
            }
            Err(reason) => {
                if let Some(suppressed) = MEDIA_FAILED.admit() {
                    tracing::warn!(channel = %job.channel_id, message = %job.message_id, error = %reason, suppressed, "fetching media from LINE failed (suppressed: how many more media failures since the last such line)");
                }
                meta.state = MediaState::Failed;
                meta.error = reason;
            }
        }
        meta.update_time_ms = self.clock.now_ms();
        if let Err(err) = write_meta(&meta_path, &meta).await
            && let Some(suppressed) = MEDIA_FAILED.admit()
        {
            tracing::warn!(error = %err, suppressed, "cannot record fetched media (suppressed: how many more media failures since the last such line)");
        }
        if let Some(files) = &self.shared
            && let Err(err) = self.share(files, &job, &meta).await
            && let Some(suppressed) = MEDIA_FAILED.admit()
        {
            tracing::warn!(error = %err, suppressed, "putting fetched media into NATS failed; only this replica serves it (suppressed: how many more media failures since the last such line)");
        }
    }

    /// Puts what a fetch stored into the shared files bucket, its state
    /// last (the other replicas look at that first), then removes the
    /// files from the data dir.
    async fn share(
        &self,
        files: &SharedFiles,
        job: &Job,
        meta: &MediaMeta,
    ) -> Result<(), crate::store::StoreError> {
        let (channel, message) = (&job.channel_id, &job.message_id);
        let mut local = Vec::new();
        if meta.state == MediaState::Stored {
            for (preview, suffix) in [(false, ""), (true, "preview")] {
                let path = self.content_path(channel, message, preview);
                if preview && !tokio::fs::try_exists(&path).await.unwrap_or(false) {
                    continue;
                }
                files
                    .put_file(&shared_name(channel, message, suffix), &path, "")
                    .await?;
                local.push(path);
            }
        }
        let state = serde_json::to_vec(meta).expect("media meta serializes");
        files
            .put_bytes(&shared_name(channel, message, "json"), &state, "")
            .await?;
        for path in local {
            let _ = tokio::fs::remove_file(path).await;
        }
        Ok(())
    }

    /// Fetches with retries: 202 (LINE still preparing), 5xx and network
    /// errors are retried with backoff.
    async fn download(&self, job: &Job, preview: bool) -> Result<Downloaded, String> {
        let channel = self
            .tokens
            .channels()
            .get(&job.channel_id)
            .await
            .map_err(|e| e.to_string())?;
        let line = self.tokens.line(&channel);
        let mut last = String::new();
        for attempt in 0..MAX_ATTEMPTS {
            if attempt > 0 {
                let pause = Duration::from_millis(500 * (1 << attempt.min(6)));
                tokio::select! {
                    _ = tokio::time::sleep(pause) => {}
                    _ = self.shutdown.cancelled() => return Err("stopped before the media was fetched".into()),
                }
            }
            self.wait_for_room(ROOM_FOR_UNKNOWN_SIZE).await?;
            match line.message_content(&job.message_id, preview).await {
                Ok(content) if !self.has_room_for(content.content_length.unwrap_or_default()) => {
                    // Not now: the store's space comes first. Ask again
                    // once there is room for it.
                    let size = content.content_length.unwrap_or_default();
                    drop(content);
                    self.wait_for_room(size).await?;
                    last = format!("no room on the data dir for {size} bytes at first");
                }
                Ok(content) => {
                    let target = self.content_path(&job.channel_id, &job.message_id, preview);
                    // A stop does not wait for a 200 MB video: the partial
                    // file is dropped and the media fetched from LINE on
                    // demand instead.
                    return tokio::select! {
                        saved = save(content, &target) => saved,
                        _ = self.shutdown.cancelled() => {
                            let _ = tokio::fs::remove_file(target.with_extension("part")).await;
                            Err("stopped before the media was fetched".into())
                        }
                    };
                }
                Err(CallError::Line(line::Error::Api(error)))
                    if matches!(error.http_status, 404 | 410) =>
                {
                    return Ok(Downloaded::Gone(format!(
                        "LINE answered {}: the content is gone",
                        error.http_status
                    )));
                }
                // Still preparing (202), LINE failed, the rate limit, no
                // answer: later.
                Err(CallError::Line(err)) if err.is_retryable() => last = err.to_string(),
                Err(err) => return Err(err.to_string()),
            }
        }
        Err(format!("gave up after {MAX_ATTEMPTS} attempts: {last}"))
    }
}

impl Inner {
    fn has_room_for(&self, bytes: u64) -> bool {
        self.space
            .as_ref()
            .is_none_or(|space| space.has_room_for(bytes.max(ROOM_FOR_UNKNOWN_SIZE)))
    }

    /// Waits (up to [`ROOM_WAIT`]) until the data dir has `bytes` free
    /// above the store's watermark: a fetch on a full disk waits, rather
    /// than failing or taking the store's space.
    async fn wait_for_room(&self, bytes: u64) -> Result<(), String> {
        let until = tokio::time::Instant::now() + ROOM_WAIT;
        while !self.has_room_for(bytes) {
            if tokio::time::Instant::now() >= until {
                return Err(format!(
                    "the data dir had no room above the store's watermark for {} min",
                    ROOM_WAIT.as_secs() / 60
                ));
            }
            tokio::select! {
                _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                _ = self.shutdown.cancelled() => return Err("stopped before the media was fetched".into()),
            }
        }
        Ok(())
    }
}

enum Downloaded {
    Stored { content_type: String, size: u64 },
    Gone(String),
}

/// Streams a response body to `target` (via a temporary file).
async fn save(mut content: Content, target: &Path) -> Result<Downloaded, String> {
    let content_type = content
        .content_type
        .clone()
        .unwrap_or_else(|| "application/octet-stream".to_owned());
    if content
        .content_length
        .is_some_and(|len| len > MAX_FILE_BYTES)
    {
        return Err(format!("larger than {MAX_FILE_BYTES} bytes"));
    }
    if let Some(parent) = target.parent() {
        tokio::fs::create_dir_all(parent)
            .await
            .map_err(|e| e.to_string())?;
    }
    let partial = target.with_extension("part");
    let written = write_partial(&mut content, &partial).await;
    let saved = match written {
        Ok(size) => tokio::fs::rename(&partial, target)
            .await
            .map(|()| size)
            .map_err(|e| e.to_string()),
        Err(err) => Err(err),
    };
    match saved {
        Ok(size) => Ok(Downloaded::Stored { content_type, size }),
        Err(err) => {
            // Never leave a partial file behind (on a full disk it would
            // keep the space).
            let _ = tokio::fs::remove_file(&partial).await;
            Err(err)
        }
    }
}

/// Streams the body into `partial` and syncs it; returns its size.
async fn write_partial(content: &mut Content, partial: &Path) -> Result<u64, String> {
    let mut file = tokio::fs::File::create(partial)
        .await
        .map_err(|e| e.to_string())?;
    let mut size = 0u64;
    while let Some(chunk) = content.body.next().await {
        let chunk = chunk.map_err(|e| e.to_string())?;
        size += chunk.len() as u64;
        if size > MAX_FILE_BYTES {
            return Err(format!("larger than {MAX_FILE_BYTES} bytes"));
        }
        file.write_all(&chunk).await.map_err(|e| e.to_string())?;
    }
    file.sync_all().await.map_err(|e| e.to_string())?;
    Ok(size)
}

async fn read_meta(path: &Path) -> Option<MediaMeta> {
    let bytes = tokio::fs::read(path).await.ok()?;
    serde_json::from_slice(&bytes).ok()
}

async fn write_meta(path: &Path, meta: &MediaMeta) -> std::io::Result<()> {
    let path = path.to_owned();
    let meta = meta.clone();
    tokio::task::spawn_blocking(move || write_meta_sync(&path, &meta))
        .await
        .map_err(std::io::Error::other)?
}

fn write_meta_sync(path: &Path, meta: &MediaMeta) -> std::io::Result<()> {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent)?;
    }
    let partial = path.with_extension("json.part");
    std::fs::write(
        &partial,
        serde_json::to_vec(meta).expect("media meta serializes"),
    )?;
    std::fs::rename(partial, path)
}

/// A message's file in the shared files bucket: the content (`suffix`
/// empty), `preview` or `json`.
fn shared_name(channel_id: &str, message_id: &str, suffix: &str) -> String {
    if suffix.is_empty() {
        format!("{SHARED_PREFIX}{channel_id}/{message_id}")
    } else {
        format!("{SHARED_PREFIX}{channel_id}/{message_id}.{suffix}")
    }
}

/// Where inbound media is in the shared files bucket.
const SHARED_PREFIX: &str = "media/";

/// [`Media::prune`] of the shared files bucket, as a whole: every replica
/// may run it (a file already removed is not an error). A message's files
/// go together, dated by the newest of them; its state stays, marked gone
/// (as on disk), for one more retention period, then goes too.
async fn prune_shared(
    files: &SharedFiles,
    before: SystemTime,
    max_total_bytes: u64,
) -> Result<usize, crate::store::StoreError> {
    use std::collections::{BTreeMap, HashMap};
    #[derive(Default)]
    struct Message {
        newest_ms: i64,
        bytes: u64,
        names: Vec<String>,
        /// Only its state is left, marked gone.
        gone: bool,
    }
    let before_ms = before
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0);
    let mut messages: HashMap<String, Message> = HashMap::new();
    for file in files.list(SHARED_PREFIX).await? {
        let key = file.name[SHARED_PREFIX.len()..]
            .trim_end_matches(".preview")
            .trim_end_matches(".json")
            .to_owned();
        let entry = messages.entry(key).or_insert_with(|| Message {
            gone: true,
            ..Message::default()
        });
        entry.newest_ms = entry.newest_ms.max(file.modified_ms);
        entry.bytes += file.size;
        entry.gone &= file.description == GONE;
        entry.names.push(file.name);
    }
    let mut total: u64 = messages.values().map(|m| m.bytes).sum();
    let oldest_first: BTreeMap<(i64, String), Message> = messages
        .into_iter()
        .map(|(key, message)| ((message.newest_ms, key), message))
        .collect();
    let mut removed = 0;
    for ((newest_ms, key), message) in oldest_first {
        if newest_ms >= before_ms && total <= max_total_bytes {
            break;
        }
        total = total.saturating_sub(message.bytes);
        if message.gone {
            for name in &message.names {
                files.delete(name).await?;
            }
            continue;
        }
        let state = format!("{SHARED_PREFIX}{key}.json");
        for name in message.names.iter().filter(|n| **n != state) {
            files.delete(name).await?;
        }
        if let Some(bytes) = files.read(&state).await?
            && let Ok(mut record) = serde_json::from_slice::<MediaMeta>(&bytes)
        {
            record.state = MediaState::Gone;
            record.error = "removed by media retention".into();
            let record = serde_json::to_vec(&record).expect("media meta serializes");
            files.put_bytes(&state, &record, GONE).await?;
        }
        removed += 1;
    }
    Ok(removed)
}

/// The description of a message's state in the bucket once retention
/// removed its content.
const GONE: &str = "gone";

/// See [`Media::prune`].
fn prune_dir(dir: &Path, before: SystemTime, max_total_bytes: u64) -> usize {
    let Ok(channels) = std::fs::read_dir(dir) else {
        return 0;
    };
    // (modified, path, size) of every content file with its meta.
    let mut files = Vec::new();
    for channel in channels.flatten() {
        let Ok(entries) = std::fs::read_dir(channel.path()) else {
            continue;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            let is_content = path
                .file_name()
                .and_then(|n| n.to_str())
                .is_some_and(valid_message_id);
            if !is_content {
                continue;
            }
            if let Ok(metadata) = entry.metadata() {
                let modified = metadata.modified().unwrap_or(SystemTime::UNIX_EPOCH);
                files.push((modified, path, metadata.len()));
            }
        }
    }
    files.sort();
    let mut total: u64 = files.iter().map(|(_, _, size)| size).sum();
    let mut removed = 0;
    for (modified, path, size) in files {
        if modified >= before && total <= max_total_bytes {
            break;
        }
        let _ = std::fs::remove_file(&path);
        let _ = std::fs::remove_file(path.with_extension("preview"));
        let meta = path.with_extension("json");
        if let Ok(bytes) = std::fs::read(&meta)
            && let Ok(mut record) = serde_json::from_slice::<MediaMeta>(&bytes)
        {
            record.state = MediaState::Gone;
            record.error = "removed by media retention".into();
            let _ = write_meta_sync(&meta, &record);
        }
        total = total.saturating_sub(size);
        removed += 1;
    }
    removed
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_plain_ids_reach_the_file_system() {
        assert!(valid_message_id("444573844083572737"));
        for bad in ["", "../x", "a/b", "a.b", &"1".repeat(65)] {
            assert!(!valid_message_id(bad), "{bad}");
        }
    }

    #[test]
    fn retention_drops_old_and_excess_media_oldest_first() {
        let dir = tempfile::tempdir().unwrap();
        let channel = dir.path().join("ch_x");
        std::fs::create_dir_all(&channel).unwrap();
        for (name, size) in [("1", 100), ("2", 100), ("3", 100)] {
            std::fs::write(channel.join(name), vec![0u8; size]).unwrap();
            write_meta_sync(
                &channel.join(format!("{name}.json")),
                &MediaMeta {
                    state: MediaState::Stored,
                    content_type: "image/jpeg".into(),
                    size: size as u64,
                    preview_content_type: String::new(),
                    file_name: String::new(),
                    error: String::new(),
                    update_time_ms: 0,
                },
            )
            .unwrap();
            std::thread::sleep(Duration::from_millis(20));
        }
        let removed = prune_dir(dir.path(), SystemTime::UNIX_EPOCH, 200);
        assert_eq!(removed, 1);
        assert!(!channel.join("1").exists() && channel.join("2").exists());
        let meta: MediaMeta =
            serde_json::from_slice(&std::fs::read(channel.join("1.json")).unwrap()).unwrap();
        assert_eq!(meta.state, MediaState::Gone);
        let removed = prune_dir(dir.path(), SystemTime::now(), u64::MAX);
        assert_eq!(removed, 2, "everything older than now");
    }
}
