//! Uploads on NATS: kept in the shared files bucket rather than one
//! replica's data dir, so every replica serves every upload's URLs and
//! sends by any `media_id`.
//!
//! Names: `uploads/{media id}/{file}` for the upload's files and its
//! `meta.json` (as on disk), and `upload-tokens/{token}` per served file,
//! holding the media id and role it serves. Every file is described by
//! the media id and creation time, which a listing shows: a prune needs
//! nothing else. An upload is
//! put whole before its tokens, so a token found always has its files; it
//! is pruned tokens first for the same reason.

use std::{collections::BTreeMap, path::Path};

use super::{META_FILE, Role, Upload, valid_media_id};
use crate::store::{SharedFiles, StoreError};

const UPLOADS: &str = "uploads/";
const TOKENS: &str = "upload-tokens/";

fn file_name(media_id: &str, file: &str) -> String {
    format!("{UPLOADS}{media_id}/{file}")
}

fn token_name(token: &str) -> String {
    format!("{TOKENS}{token}")
}

/// The files of an upload's folder: its served files, then `meta.json`
/// (written last, as on disk).
fn stored_files(upload: &Upload) -> impl Iterator<Item = &'static str> + '_ {
    upload
        .variants
        .iter()
        .map(|v| v.role.file_name())
        .chain([META_FILE])
}

/// Puts the finished upload in `folder` into the bucket; on failure takes
/// back what it put.
pub(super) async fn share(
    files: &SharedFiles,
    folder: &Path,
    upload: &Upload,
) -> Result<(), StoreError> {
    let described = description(upload);
    let put = async {
        for name in stored_files(upload) {
            files
                .put_file(
                    &file_name(&upload.media_id, name),
                    &folder.join(name),
                    &described,
                )
                .await?;
        }
        for variant in &upload.variants {
            let target = serde_json::to_vec(&TokenTarget {
                media_id: upload.media_id.clone(),
                role: variant.role,
            })
            .expect("a token's target serializes");
            files
                .put_bytes(&token_name(&variant.token), &target, &described)
                .await?;
        }
        Ok(())
    };
    let result = put.await;
    if result.is_err() {
        remove(files, upload).await;
    }
    result
}

/// What every file of an upload is described by: its media id and when it
/// was made (the time its expiry counts from), which a listing shows.
fn description(upload: &Upload) -> String {
    format!("{} {}", upload.media_id, upload.create_time_ms)
}

/// The media id and creation time a description names.
fn described(description: &str) -> Option<(&str, i64)> {
    let (media_id, created) = description.split_once(' ')?;
    Some((media_id, created.parse().ok()?)).filter(|(id, _)| valid_media_id(id))
}

/// Removes an upload's names, tokens first; failures are logged (the next
/// prune finds what is left).
pub(super) async fn remove(files: &SharedFiles, upload: &Upload) {
    let mut names: Vec<String> = upload
        .variants
        .iter()
        .map(|v| token_name(&v.token))
        .collect();
    names.extend(stored_files(upload).map(|name| file_name(&upload.media_id, name)));
    delete_all(files, &upload.media_id, &names).await;
}

async fn delete_all(files: &SharedFiles, media_id: &str, names: &[String]) {
    for name in names {
        if let Err(err) = files.delete(name).await {
            tracing::warn!(media_id = %media_id, error = %err, "removing a shared upload's file failed");
        }
    }
}

/// What a token object holds: the file it serves.
#[derive(serde::Serialize, serde::Deserialize)]
struct TokenTarget {
    media_id: String,
    role: Role,
}

/// The media id and role a token serves, if the bucket has it.
pub(super) async fn find_token(
    files: &SharedFiles,
    token: &str,
) -> Result<Option<(String, Role)>, StoreError> {
    let Some(bytes) = files.read(&token_name(token)).await? else {
        return Ok(None);
    };
    Ok(serde_json::from_slice::<TokenTarget>(&bytes)
        .ok()
        .filter(|t| valid_media_id(&t.media_id))
        .map(|t| (t.media_id, t.role)))
}

/// An upload's description, if the bucket has it.
pub(super) async fn load(
    files: &SharedFiles,
    media_id: &str,
) -> Result<Option<Upload>, StoreError> {
    let Some(bytes) = files.read(&file_name(media_id, META_FILE)).await? else {
        return Ok(None);
    };
    Ok(serde_json::from_slice::<Upload>(&bytes)
        .ok()
        .filter(|u| u.media_id == media_id))
}

/// Where a served file is in the bucket.
pub(super) fn served_name(media_id: &str, role: Role) -> String {
    file_name(media_id, role.file_name())
}

/// What the bucket holds of one upload.
#[derive(Default)]
struct Held {
    bytes: u64,
    names: Vec<String>,
}

/// What a prune of the bucket did.
pub(super) struct Pruned {
    /// Media ids removed.
    pub removed: Vec<String>,
    /// Media ids still in the bucket.
    pub kept: std::collections::HashSet<String>,
    /// Bytes still in the bucket.
    pub bytes: u64,
}

/// Removes, from the whole bucket, uploads created before `cutoff_ms` and,
/// oldest first, what exceeds `max_total_bytes`. Every replica may run it:
/// a name already removed is not an error. A file whose description does
/// not name its upload (none is written so) is left alone.
pub(super) async fn prune(
    files: &SharedFiles,
    cutoff_ms: i64,
    max_total_bytes: u64,
) -> Result<Pruned, StoreError> {
    let mut held: BTreeMap<(i64, String), Held> = BTreeMap::new();
    for file in files.list("").await? {
        let token = file.name.starts_with(TOKENS);
        if !token && !file.name.starts_with(UPLOADS) {
            continue;
        }
        let Some((media_id, created)) = described(&file.description) else {
            continue;
        };
        let entry = held.entry((created, media_id.to_owned())).or_default();
        entry.bytes += file.size;
        // Tokens go first: a token found always has its files.
        if token {
            entry.names.insert(0, file.name);
        } else {
            entry.names.push(file.name);
        }
    }
    let mut bytes: u64 = held.values().map(|h| h.bytes).sum();
    let mut removed = Vec::new();
    while let Some(((created, _), _)) = held.first_key_value() {
        if *created > cutoff_ms && bytes <= max_total_bytes {
            break;
        }
        let ((_, media_id), gone) = held.pop_first().expect("just seen");
        delete_all(files, &media_id, &gone.names).await;
        bytes = bytes.saturating_sub(gone.bytes);
        removed.push(media_id);
    }
    let kept = held.into_keys().map(|(_, id)| id).collect();
    Ok(Pruned {
        removed,
        kept,
        bytes,
    })
}
