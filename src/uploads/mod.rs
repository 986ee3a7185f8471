//! Agents' attachments (Messaging.UploadMedia), kept on disk under
//! `data_dir/uploads` and served to LINE at `GET /media/{token}`: LINE only
//! takes media as public https URLs it fetches itself, lazily, for as long
//! as a user may open the chat.
//!
//! Layout: `uploads/{media id}/` holds `meta.json` (the [`Upload`]),
//! `content` (the bytes as uploaded), and for images `preview.jpg` and,
//! for WebP and GIF, `image.jpg`. An upload is written in
//! `uploads/.tmp/{media id}/` (each file synced), then the folder is
//! renamed into place and the parent synced: a folder under `uploads/`
//! is whole, and a crash leaves at most a `.tmp` entry, cleared at start.
//!
//! Tokens are 192 random bits (base64url), one per served file, and say
//! nothing about the channel or the media id. Requests never name a path:
//! a token is looked up in the in-memory index, which names the folder
//! (a media id this module made) and the file (one of three fixed names).
//!
//! On NATS the folder is only where an upload is made: once whole it is put
//! into the shared files bucket (see [`shared`]) and removed, and every
//! replica serves it from there. The index is then a cache of what this
//! replica has looked up, and pruning works on the bucket.

pub mod inspect;
mod shared;

use std::{
    collections::{BTreeSet, HashMap},
    path::{Path, PathBuf},
    sync::{Arc, RwLock},
    time::Duration,
};

use base64::Engine as _;
use serde::{Deserialize, Serialize};
use sha2::Digest as _;
use tokio::io::AsyncWriteExt as _;

use crate::store::{SharedFiles, SharedReader, StoreError};

pub use inspect::Kind;

/// How often at most a replica prunes the shared bucket (NATS).
const SHARED_PRUNE_EVERY: Duration = Duration::from_secs(60);
/// Uploads in progress, cleared at start.
const TMP_DIR: &str = ".tmp";
/// An upload's description, written last inside its folder.
const META_FILE: &str = "meta.json";
/// `med_` + a lowercase ULID.
const MEDIA_ID_PREFIX: &str = "med_";
const ULID_LEN: usize = 26;
/// Random bytes of a token: 192 bits, 32 base64url characters.
const TOKEN_BYTES: usize = 24;
const TOKEN_LEN: usize = 32;
/// The longest file name kept.
pub const MAX_FILE_NAME: usize = 255;

/// Which file of an upload a token serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// The bytes as uploaded.
    Content,
    /// A JPEG made from a WebP or GIF, for image messages.
    Image,
    /// An image's preview JPEG.
    Preview,
}

impl Role {
    /// The file's fixed name inside the upload's folder.
    fn file_name(self) -> &'static str {
        match self {
            Role::Content => "content",
            Role::Image => "image.jpg",
            Role::Preview => "preview.jpg",
        }
    }
}

/// One served file of an upload.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Variant {
    pub role: Role,
    pub token: String,
    pub content_type: String,
    pub size: u64,
    /// Lowercase hex SHA-256 of the file (its ETag).
    pub sha256: String,
}

/// A stored upload, as `meta.json` holds it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Upload {
    pub media_id: String,
    pub channel_id: String,
    pub kind: Kind,
    /// Detected from the bytes.
    pub content_type: String,
    pub declared_content_type: String,
    pub size: u64,
    pub file_name: String,
    pub width: u32,
    pub height: u32,
    pub duration_ms: u64,
    pub sha256: String,
    pub create_time_ms: i64,
    pub variants: Vec<Variant>,
}

impl Upload {
    pub fn variant(&self, role: Role) -> Option<&Variant> {
        self.variants.iter().find(|v| v.role == role)
    }

    /// What image messages send: the converted JPEG, else the upload.
    pub fn image_variant(&self) -> Option<&Variant> {
        if self.kind != Kind::Image {
            return None;
        }
        self.variant(Role::Image)
            .or_else(|| self.variant(Role::Content))
    }

    fn total_bytes(&self) -> u64 {
        self.variants.iter().map(|v| v.size).sum()
    }
}

/// What the caller says about an upload before its bytes.
#[derive(Debug, Clone)]
pub struct Declared {
    pub channel_id: String,
    /// Lowercase `type/subtype`, without parameters.
    pub content_type: String,
    pub file_name: String,
    pub size: Option<u64>,
}

/// Why an upload was not stored.
#[derive(Debug, thiserror::Error)]
pub enum UploadError {
    /// LINE fetches media over https only.
    #[error(
        "public_base_url is not set to an https URL: LINE fetches media only from public https URLs (set LINE_ADAPTER_PUBLIC_BASE_URL)"
    )]
    NoPublicBaseUrl,
    /// The caller's request or bytes: nothing was stored.
    #[error("{field}: {reason}")]
    Invalid { field: &'static str, reason: String },
    /// The data dir failed: nothing was stored.
    #[error("storing the upload failed: {0}")]
    Io(#[from] std::io::Error),
    /// The shared files bucket (NATS) failed: nothing was stored.
    #[error("storing the upload in NATS failed: {0}")]
    Shared(#[from] StoreError),
}

fn invalid(field: &'static str, reason: impl Into<String>) -> UploadError {
    UploadError::Invalid {
        field,
        reason: reason.into(),
    }
}

/// Where a served file's bytes are.
#[derive(Debug, Clone)]
pub enum Stored {
    /// In the data dir.
    File(PathBuf),
    /// In the shared files bucket, under this name.
    Shared(String),
}

/// A file to serve for a token.
#[derive(Debug, Clone)]
pub struct Served {
    pub stored: Stored,
    pub variant: Variant,
    pub file_name: String,
    pub kind: Kind,
    pub expire_time_ms: i64,
}

/// The kept uploads; cheap to clone.
#[derive(Clone)]
pub struct Uploads {
    inner: Arc<Inner>,
}

struct Inner {
    dir: PathBuf,
    /// `https://host[/path]` without a trailing `/`; `None` when the
    /// setting is missing or not https.
    public_base: Option<String>,
    retention: Duration,
    max_total_bytes: u64,
    index: RwLock<Index>,
    /// The shared files bucket (NATS), where uploads are kept instead.
    shared: Option<SharedFiles>,
    /// Uploads and bytes in the bucket, as of the last prune and the
    /// uploads made here since.
    shared_kept: std::sync::Mutex<(usize, u64)>,
    /// When this replica last pruned the bucket.
    last_shared_prune_ms: std::sync::Mutex<Option<i64>>,
}

#[derive(Default)]
struct Index {
    by_id: HashMap<String, Arc<Upload>>,
    by_token: HashMap<String, (String, Role)>,
    /// (create time, media id): oldest first.
    order: BTreeSet<(i64, String)>,
    total_bytes: u64,
}

impl Index {
    fn insert(&mut self, upload: Arc<Upload>) {
        for variant in &upload.variants {
            self.by_token.insert(
                variant.token.clone(),
                (upload.media_id.clone(), variant.role),
            );
        }
        self.order
            .insert((upload.create_time_ms, upload.media_id.clone()));
        self.total_bytes += upload.total_bytes();
        self.by_id.insert(upload.media_id.clone(), upload);
    }

    /// Keeps only the uploads `keep` says yes to.
    fn retain(&mut self, keep: impl Fn(&str) -> bool) {
        let gone: Vec<String> = self.by_id.keys().filter(|id| !keep(id)).cloned().collect();
        for media_id in gone {
            self.remove(&media_id);
        }
    }

    fn remove(&mut self, media_id: &str) -> Option<Arc<Upload>> {
        let upload = self.by_id.remove(media_id)?;
        for variant in &upload.variants {
            self.by_token.remove(&variant.token);
        }
        self.order
            .remove(&(upload.create_time_ms, upload.media_id.clone()));
        self.total_bytes = self.total_bytes.saturating_sub(upload.total_bytes());
        Some(upload)
    }
}

/// Media ids are made here; anything else never reaches a path.
pub fn valid_media_id(id: &str) -> bool {
    id.strip_prefix(MEDIA_ID_PREFIX).is_some_and(|rest| {
        rest.len() == ULID_LEN
            && rest
                .bytes()
                .all(|b| b.is_ascii_digit() || b.is_ascii_lowercase())
    })
}

/// Tokens are made here: 32 base64url characters.
pub fn valid_token(token: &str) -> bool {
    token.len() == TOKEN_LEN
        && token
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

fn new_token() -> std::io::Result<String> {
    let mut bytes = [0u8; TOKEN_BYTES];
    aws_lc_rs::rand::fill(&mut bytes)
        .map_err(|_| std::io::Error::other("the system random source failed"))?;
    Ok(base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes))
}

impl Uploads {
    /// Opens `dir` (created if missing): clears unfinished uploads and
    /// loads the index from every upload's `meta.json`. Blocking.
    pub fn open(
        dir: PathBuf,
        public_base_url: Option<&url::Url>,
        retention: Duration,
        max_total_bytes: u64,
    ) -> std::io::Result<Self> {
        std::fs::create_dir_all(&dir)?;
        let tmp = dir.join(TMP_DIR);
        if tmp.exists() {
            std::fs::remove_dir_all(&tmp)?;
        }
        let mut index = Index::default();
        for entry in std::fs::read_dir(&dir)? {
            let entry = entry?;
            let name = entry.file_name();
            let Some(name) = name.to_str().filter(|n| valid_media_id(n)) else {
                continue;
            };
            match read_meta(&entry.path().join(META_FILE)) {
                Ok(upload) if upload.media_id == name => index.insert(Arc::new(upload)),
                Ok(_) | Err(_) => {
                    tracing::warn!(media_id = %name, "an upload's meta.json cannot be read; it is not served")
                }
            }
        }
        let public_base = public_base_url
            .filter(|url| url.scheme() == "https")
            .map(|url| url.as_str().trim_end_matches('/').to_owned());
        Ok(Self {
            inner: Arc::new(Inner {
                dir,
                public_base,
                retention,
                max_total_bytes,
                index: RwLock::new(index),
                shared: None,
                shared_kept: std::sync::Mutex::new((0, 0)),
                last_shared_prune_ms: std::sync::Mutex::new(None),
            }),
        })
    }

    /// Keeps uploads in `files` (NATS) instead of the data dir. Called
    /// before the uploads are used.
    pub fn with_shared(mut self, files: Option<SharedFiles>) -> Self {
        match Arc::get_mut(&mut self.inner) {
            Some(inner) => inner.shared = files,
            None => debug_assert!(false, "with_shared is called before the uploads are cloned"),
        }
        self
    }

    /// The public URL serving `token`. Only called for uploads, which
    /// exist only with a public base.
    pub fn url(&self, token: &str) -> String {
        format!(
            "{}/media/{token}",
            self.inner.public_base.as_deref().unwrap_or_default()
        )
    }

    /// When an upload made at `create_time_ms` expires.
    pub fn expire_time_ms(&self, create_time_ms: i64) -> i64 {
        create_time_ms.saturating_add(self.inner.retention.as_millis() as i64)
    }

    /// Bytes kept now, all files of all uploads.
    #[cfg(test)]
    pub fn total_bytes(&self) -> u64 {
        self.index().total_bytes
    }

    /// Puts the uploads found in the data dir into the shared files bucket
    /// and removes them from the data dir: a replica of a version that
    /// kept uploads per replica leaves them there. Without a bucket:
    /// nothing to do.
    pub async fn move_into_shared(&self) {
        let Some(files) = &self.inner.shared else {
            return;
        };
        let local: Vec<Arc<Upload>> = self.index().by_id.values().cloned().collect();
        let mut moved = 0usize;
        for upload in local {
            let folder = self.inner.dir.join(&upload.media_id);
            match shared::share(files, &folder, &upload).await {
                Ok(()) => {
                    let _ = tokio::fs::remove_dir_all(&folder).await;
                    moved += 1;
                }
                Err(err) => {
                    tracing::warn!(media_id = %upload.media_id, error = %err, "moving an upload into NATS failed; its URLs answer 404")
                }
            }
        }
        if moved > 0 {
            tracing::info!(moved, "uploads kept in the data dir were moved into NATS");
        }
    }

    /// Uploads kept now, and their bytes (for `/metrics`).
    pub fn kept(&self) -> (usize, u64) {
        if self.inner.shared.is_some() {
            return *self.shared_kept();
        }
        let index = self.index();
        (index.by_id.len(), index.total_bytes)
    }

    fn shared_kept(&self) -> std::sync::MutexGuard<'_, (usize, u64)> {
        self.inner
            .shared_kept
            .lock()
            .unwrap_or_else(|p| p.into_inner())
    }

    /// Looks up, in the shared files bucket, the uploads among `media_ids`
    /// this replica does not know yet (made through another replica), so
    /// that [`Uploads::get`] finds them. Without a bucket: nothing to do.
    pub async fn load_shared(&self, media_ids: &[&str]) -> Result<(), StoreError> {
        let Some(files) = &self.inner.shared else {
            return Ok(());
        };
        for media_id in media_ids {
            if !valid_media_id(media_id) || self.index().by_id.contains_key(*media_id) {
                continue;
            }
            if let Some(upload) = shared::load(files, media_id).await? {
                self.index_mut().insert(Arc::new(upload));
            }
        }
        Ok(())
    }

    fn index(&self) -> std::sync::RwLockReadGuard<'_, Index> {
        self.inner.index.read().unwrap_or_else(|p| p.into_inner())
    }

    fn index_mut(&self) -> std::sync::RwLockWriteGuard<'_, Index> {
        self.inner.index.write().unwrap_or_else(|p| p.into_inner())
    }

    /// The largest upload accepted for `content_type`: its kind's limit,
    /// and never more than the total bound.
    pub fn limit(&self, content_type: &str) -> u64 {
        Kind::declared(content_type)
            .max_bytes()
            .min(self.inner.max_total_bytes)
    }

    /// Starts an upload: checks what can be checked before the bytes.
    pub async fn begin(&self, declared: Declared) -> Result<Incoming, UploadError> {
        if self.inner.public_base.is_none() {
            return Err(UploadError::NoPublicBaseUrl);
        }
        let limit = self.limit(&declared.content_type);
        if let Some(size) = declared.size {
            if size == 0 {
                return Err(invalid("start.size_bytes", "must be > 0 when set"));
            }
            if size > limit {
                return Err(invalid(
                    "start.size_bytes",
                    format!(
                        "{size} bytes is over the limit for {}: {limit} bytes{}",
                        declared.content_type,
                        self.limit_note(limit)
                    ),
                ));
            }
        }
        let media_id = format!(
            "{MEDIA_ID_PREFIX}{}",
            ulid::Ulid::generate().to_string().to_ascii_lowercase()
        );
        let dir = self.inner.dir.join(TMP_DIR).join(&media_id);
        tokio::fs::create_dir_all(&dir).await?;
        let mut incoming = Incoming {
            uploads: self.clone(),
            media_id,
            dir,
            file: None,
            hasher: sha2::Sha256::new(),
            size: 0,
            limit,
            declared,
            committed: false,
        };
        incoming.file =
            Some(tokio::fs::File::create(incoming.dir.join(Role::Content.file_name())).await?);
        Ok(incoming)
    }

    fn limit_note(&self, limit: u64) -> &'static str {
        if limit == self.inner.max_total_bytes {
            " (outbound_media_max_bytes)"
        } else {
            ""
        }
    }

    /// An upload of `channel_id` that has not expired, or why not.
    pub fn get(
        &self,
        channel_id: &str,
        media_id: &str,
        now_ms: i64,
    ) -> Result<Arc<Upload>, String> {
        let unknown = || {
            format!(
                "no upload {media_id} on channel {channel_id} (unknown, expired or of another channel)"
            )
        };
        if !valid_media_id(media_id) {
            return Err(format!(
                "is not a media id (`{MEDIA_ID_PREFIX}` followed by 26 lowercase letters and digits)"
            ));
        }
        let upload = self
            .index()
            .by_id
            .get(media_id)
            .cloned()
            .ok_or_else(unknown)?;
        if upload.channel_id != channel_id || self.expire_time_ms(upload.create_time_ms) <= now_ms {
            return Err(unknown());
        }
        Ok(upload)
    }

    /// The size of a file in the shared files bucket (see [`Stored`]).
    pub async fn shared_size(&self, name: &str) -> Result<Option<u64>, StoreError> {
        match &self.inner.shared {
            Some(files) => files.size(name).await,
            None => Ok(None),
        }
    }

    /// Reads a file of the shared files bucket from `skip` bytes in.
    pub async fn open_shared(
        &self,
        name: &str,
        skip: u64,
    ) -> Result<Option<SharedReader>, StoreError> {
        match &self.inner.shared {
            Some(files) => files.open_at(name, skip).await,
            None => Ok(None),
        }
    }

    /// The file a token serves, unless unknown or expired. On NATS, a
    /// token this replica does not know is looked up in the bucket.
    pub async fn served(&self, token: &str, now_ms: i64) -> Result<Option<Served>, StoreError> {
        if !valid_token(token) {
            return Ok(None);
        }
        // Read apart: a guard in the condition would live through the
        // block, whose lookup takes the index for writing.
        let known = self.index().by_token.contains_key(token);
        if let Some(files) = &self.inner.shared
            && !known
        {
            let Some((media_id, _)) = shared::find_token(files, token).await? else {
                return Ok(None);
            };
            self.load_shared(&[&media_id]).await?;
        }
        Ok(self.served_known(token, now_ms))
    }

    fn served_known(&self, token: &str, now_ms: i64) -> Option<Served> {
        let index = self.index();
        let (media_id, role) = index.by_token.get(token)?;
        let upload = index.by_id.get(media_id)?;
        let expire_time_ms = self.expire_time_ms(upload.create_time_ms);
        if expire_time_ms <= now_ms {
            return None;
        }
        let stored = match self.inner.shared {
            Some(_) => Stored::Shared(shared::served_name(&upload.media_id, *role)),
            None => Stored::File(self.inner.dir.join(&upload.media_id).join(role.file_name())),
        };
        Some(Served {
            stored,
            variant: upload.variant(*role)?.clone(),
            file_name: upload.file_name.clone(),
            kind: upload.kind,
            expire_time_ms,
        })
    }

    /// Drops expired uploads and, oldest first, whatever exceeds the total
    /// bound; their URLs answer 404 from now on. Returns how many went.
    pub async fn prune(&self, now_ms: i64) -> usize {
        if let Some(files) = &self.inner.shared {
            return self.prune_shared(files, now_ms, false).await;
        }
        let removed: Vec<String> = {
            let mut index = self.index_mut();
            let cutoff = now_ms.saturating_sub(self.inner.retention.as_millis() as i64);
            let mut removed = Vec::new();
            while let Some((create_time_ms, media_id)) = index.order.first().cloned() {
                if create_time_ms > cutoff && index.total_bytes <= self.inner.max_total_bytes {
                    break;
                }
                index.remove(&media_id);
                removed.push(media_id);
            }
            removed
        };
        if removed.is_empty() {
            return 0;
        }
        let dir = self.inner.dir.clone();
        let count = removed.len();
        let deleted = tokio::task::spawn_blocking(move || {
            for media_id in removed {
                // Renamed first, so a crash midway never leaves a folder
                // that looks whole without its files.
                let gone = dir.join(TMP_DIR).join(format!("gone-{media_id}"));
                let _ = std::fs::create_dir_all(dir.join(TMP_DIR));
                let result = std::fs::rename(dir.join(&media_id), &gone)
                    .and_then(|()| std::fs::remove_dir_all(&gone));
                if let Err(err) = result {
                    tracing::warn!(media_id = %media_id, error = %err, "removing an expired upload failed");
                }
            }
        })
        .await;
        if let Err(err) = deleted {
            tracing::warn!(error = %err, "removing expired uploads failed");
        }
        count
    }

    /// [`Uploads::prune`] on NATS: the bucket is pruned as a whole, and
    /// what went is dropped from this replica's index.
    /// Listing the bucket costs a read of every file's description, so it
    /// runs at most once a minute (or once a retention, when shorter),
    /// unless `now` (the bound may just have been passed).
    async fn prune_shared(&self, files: &SharedFiles, now_ms: i64, now: bool) -> usize {
        let every = self.inner.retention.min(SHARED_PRUNE_EVERY).as_millis() as i64;
        {
            let mut last = self
                .inner
                .last_shared_prune_ms
                .lock()
                .unwrap_or_else(|p| p.into_inner());
            if !now && last.is_some_and(|at| now_ms.saturating_sub(at) < every) {
                return 0;
            }
            *last = Some(now_ms);
        }
        let cutoff = now_ms.saturating_sub(self.inner.retention.as_millis() as i64);
        match shared::prune(files, cutoff, self.inner.max_total_bytes).await {
            Ok(pruned) => {
                // What another replica removed goes from this one's index
                // too (a cache: anything still in the bucket is looked up
                // again when asked for).
                self.index_mut()
                    .retain(|media_id| pruned.kept.contains(media_id));
                *self.shared_kept() = (pruned.kept.len(), pruned.bytes);
                pruned.removed.len()
            }
            Err(err) => {
                tracing::warn!(error = %err, "pruning uploads in NATS failed; trying again later");
                0
            }
        }
    }
}

/// An upload whose bytes are arriving. Dropped before [`Incoming::finish`]
/// succeeds, it removes everything it wrote.
pub struct Incoming {
    uploads: Uploads,
    media_id: String,
    dir: PathBuf,
    file: Option<tokio::fs::File>,
    hasher: sha2::Sha256,
    size: u64,
    limit: u64,
    declared: Declared,
    committed: bool,
}

impl Incoming {
    /// Bytes received so far.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// Appends the next chunk, refusing it past the limit.
    pub async fn write(&mut self, chunk: &[u8]) -> Result<(), UploadError> {
        let size = self.size + chunk.len() as u64;
        if size > self.limit {
            return Err(invalid(
                "chunk",
                format!(
                    "the upload is over the limit for {}: {} bytes{}; nothing was stored",
                    self.declared.content_type,
                    self.limit,
                    self.uploads.limit_note(self.limit)
                ),
            ));
        }
        if let Some(expected) = self.declared.size
            && size > expected
        {
            return Err(invalid(
                "chunk",
                format!("more bytes than start.size_bytes ({expected}); nothing was stored"),
            ));
        }
        let file = self
            .file
            .as_mut()
            .ok_or_else(|| std::io::Error::other("the upload's file is closed"))?;
        file.write_all(chunk).await?;
        self.hasher.update(chunk);
        self.size = size;
        Ok(())
    }

    /// Checks the whole upload, makes what LINE needs from it, and puts it
    /// in place. Nothing is kept if it fails.
    pub async fn finish(mut self, now_ms: i64) -> Result<Arc<Upload>, UploadError> {
        if let Some(mut file) = self.file.take() {
            file.flush().await?;
            file.sync_all().await?;
        }
        if self.size == 0 {
            return Err(invalid(
                "chunk",
                "no bytes were uploaded; nothing was stored",
            ));
        }
        if let Some(expected) = self.declared.size
            && self.size != expected
        {
            return Err(invalid(
                "start.size_bytes",
                format!(
                    "{expected} bytes were declared but the stream ended after {}: nothing was stored",
                    self.size
                ),
            ));
        }
        let sha256 = hex::encode(std::mem::take(&mut self.hasher).finalize());
        let staged = Staged {
            dir: self.dir.clone(),
            media_id: self.media_id.clone(),
            declared: self.declared.clone(),
            size: self.size,
            sha256,
            create_time_ms: now_ms,
        };
        let root = self.uploads.inner.dir.clone();
        let folder = root.join(&self.media_id);
        let upload = tokio::task::spawn_blocking(move || staged.build(&root))
            .await
            .map_err(|e| std::io::Error::other(format!("inspecting the upload failed: {e}")))??;
        if let Some(files) = &self.uploads.inner.shared {
            // Into the bucket, and out of the data dir whether that worked
            // or not: on NATS the folder is never served.
            // In a task of its own: a caller that goes away meanwhile must
            // not leave the folder, or half the files in NATS, behind.
            let (files, moved, folder) = (files.clone(), upload.clone(), folder.clone());
            let shared = tokio::spawn(async move {
                let shared = shared::share(&files, &folder, &moved).await;
                let _ = tokio::fs::remove_dir_all(&folder).await;
                shared
            })
            .await
            .map_err(|e| {
                std::io::Error::other(format!("storing the upload in NATS failed: {e}"))
            })?;
            shared?;
            let mut kept = self.uploads.shared_kept();
            *kept = (kept.0 + 1, kept.1 + upload.total_bytes());
        }
        self.committed = true;
        let upload = Arc::new(upload);
        self.uploads.index_mut().insert(upload.clone());
        // The bound holds after this upload too; it is the newest, so the
        // oldest go first. (On NATS the bucket is listed only when the
        // count says the bound may be passed.)
        match &self.uploads.inner.shared {
            None => {
                self.uploads.prune(now_ms).await;
            }
            Some(files) if self.uploads.kept().1 > self.uploads.inner.max_total_bytes => {
                self.uploads.prune_shared(files, now_ms, true).await;
            }
            Some(_) => {}
        }
        Ok(upload)
    }
}

impl Drop for Incoming {
    fn drop(&mut self) {
        if !self.committed {
            // Small and local; a leftover is also cleared at start.
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

/// A received upload in its temporary folder.
struct Staged {
    dir: PathBuf,
    media_id: String,
    declared: Declared,
    size: u64,
    sha256: String,
    create_time_ms: i64,
}

impl Staged {
    /// Inspects, writes the variants and the meta, and renames the folder
    /// into `root`. Blocking.
    fn build(self, root: &Path) -> Result<Upload, UploadError> {
        let content = self.dir.join(Role::Content.file_name());
        let (inspected, image) =
            inspect::inspect(&content, &self.declared.content_type).map_err(|refused| {
                invalid(
                    "start.content_type",
                    format!("{refused}; nothing was stored"),
                )
            })?;
        let mut variants = vec![Variant {
            role: Role::Content,
            token: new_token()?,
            content_type: inspected.content_type.clone(),
            size: self.size,
            sha256: self.sha256.clone(),
        }];
        if let Some(image) = &image {
            if inspected.needs_conversion {
                variants.push(self.jpeg(
                    Role::Image,
                    image,
                    inspect::MAX_IMAGE_SIDE,
                    inspect::MAX_IMAGE_BYTES,
                )?);
            }
            variants.push(self.jpeg(
                Role::Preview,
                image,
                inspect::PREVIEW_SIDE,
                inspect::MAX_PREVIEW_BYTES,
            )?);
        }
        let upload = Upload {
            media_id: self.media_id.clone(),
            channel_id: self.declared.channel_id.clone(),
            kind: inspected.kind,
            content_type: inspected.content_type,
            declared_content_type: self.declared.content_type.clone(),
            size: self.size,
            file_name: self.declared.file_name.clone(),
            width: inspected.width,
            height: inspected.height,
            duration_ms: inspected.duration_ms,
            sha256: self.sha256.clone(),
            create_time_ms: self.create_time_ms,
            variants,
        };
        let meta = self.dir.join(META_FILE);
        std::fs::write(
            &meta,
            serde_json::to_vec(&upload).expect("an upload serializes"),
        )?;
        std::fs::File::open(&meta)?.sync_all()?;
        sync_dir(&self.dir)?;
        std::fs::rename(&self.dir, root.join(&self.media_id))?;
        sync_dir(root)?;
        Ok(upload)
    }

    fn jpeg(
        &self,
        role: Role,
        image: &image::DynamicImage,
        max_side: u32,
        max_bytes: u64,
    ) -> Result<Variant, UploadError> {
        let path = self.dir.join(role.file_name());
        let (size, _, _) = inspect::write_jpeg(image, max_side, max_bytes, &path).map_err(|e| {
            invalid(
                "start.content_type",
                format!("the image cannot be made into a JPEG: {e}"),
            )
        })?;
        let sha256 = hex::encode(sha2::Sha256::digest(std::fs::read(&path)?));
        Ok(Variant {
            role,
            token: new_token()?,
            content_type: "image/jpeg".into(),
            size,
            sha256,
        })
    }
}

fn read_meta(path: &Path) -> std::io::Result<Upload> {
    serde_json::from_slice(&std::fs::read(path)?).map_err(std::io::Error::other)
}

/// Makes a rename or a new file inside `dir` durable.
fn sync_dir(dir: &Path) -> std::io::Result<()> {
    std::fs::File::open(dir)?.sync_all()
}

#[cfg(test)]
mod tests;
