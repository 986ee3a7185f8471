//! The event log's dedupe memory: every `webhookEventId` of the window,
//! held in memory and persisted as packed runs, one sled key per run.
//!
//! sled's cost is per key, and a key per event (looked up, then inserted)
//! was most of the log writer's time under ingest. Here the writer asks a
//! hash map, and each group commit adds one key per [`ENTRIES_PER_RUN`]
//! new entries to its atomic batch, so an entry is durable exactly when its
//! event is. Start-up reads the runs back in one sequential scan.
//!
//! An entry is the fingerprint of `channel id + NUL + webhookEventId` (the
//! first 128 bits of its SHA-256), the event's sequence and its receive
//! time. The receive time stays on disk only: expiry walks the runs, which
//! are in sequence order and so in receive order, give or take the
//! milliseconds between taking a request's time and its commit.
//! Only signed bodies reach the log, so nobody can choose ids that collide;
//! by chance, two of 10^12 ids share a fingerprint with odds under 10^-14.

use std::collections::HashMap;

use sha2::{Digest as _, Sha256};

/// Key prefix of a run of dedupe entries; the key goes on with the first
/// entry's sequence (8 bytes BE).
pub const RUN: u8 = b'D';
/// Most entries one key holds: a commit of 40,000 events writes 20 keys,
/// and a prune that expires part of a run rewrites at most 64 KiB.
pub const ENTRIES_PER_RUN: usize = 2048;
/// Bytes of one entry in a run.
pub const ENTRY_BYTES: usize = 32;

/// 128 bits of SHA-256 of a dedupe key.
pub type Fingerprint = u128;

/// One remembered event, as a run stores it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Entry {
    pub fingerprint: Fingerprint,
    pub sequence: u64,
    pub received_ms: i64,
}

/// The fingerprint of a channel's `webhookEventId` (or of any other
/// dedupe id the log is given, such as a dead letter's digest).
pub fn fingerprint(channel_id: &str, webhook_event_id: &str) -> Fingerprint {
    let mut hash = Sha256::new();
    hash.update(channel_id.as_bytes());
    hash.update([0]);
    hash.update(webhook_event_id.as_bytes());
    fingerprint_of_digest(&hash.finalize())
}

/// The fingerprint of a legacy dedupe key's `channel id + NUL + id` bytes.
pub fn fingerprint_bytes(key: &[u8]) -> Fingerprint {
    fingerprint_of_digest(&Sha256::digest(key))
}

fn fingerprint_of_digest(digest: &[u8]) -> Fingerprint {
    let mut first = [0u8; 16];
    first.copy_from_slice(&digest[..16]);
    u128::from_be_bytes(first)
}

pub fn run_key(first_sequence: u64) -> [u8; 9] {
    let mut key = [RUN; 9];
    key[1..].copy_from_slice(&first_sequence.to_be_bytes());
    key
}

/// Packs entries, in sequence order, as one run's value.
pub fn encode_run(entries: &[Entry]) -> Vec<u8> {
    let mut value = Vec::with_capacity(entries.len() * ENTRY_BYTES);
    for entry in entries {
        value.extend_from_slice(&entry.fingerprint.to_be_bytes());
        value.extend_from_slice(&entry.sequence.to_be_bytes());
        value.extend_from_slice(&(entry.received_ms.max(0) as u64).to_be_bytes());
    }
    value
}

/// Unpacks a run; `None` when its length is not a whole number of entries.
pub fn decode_run(value: &[u8]) -> Option<Vec<Entry>> {
    if !value.len().is_multiple_of(ENTRY_BYTES) {
        return None;
    }
    let entries = value
        .chunks_exact(ENTRY_BYTES)
        .map(|bytes| {
            let word = |range: std::ops::Range<usize>| -> [u8; 8] {
                bytes[range].try_into().expect("eight bytes")
            };
            let fingerprint: [u8; 16] = bytes[..16].try_into().expect("sixteen bytes");
            Entry {
                fingerprint: u128::from_be_bytes(fingerprint),
                sequence: u64::from_be_bytes(word(16..24)),
                received_ms: u64::from_be_bytes(word(24..32)) as i64,
            }
        })
        .collect();
    Some(entries)
}

/// Fingerprint → sequence for every entry of the window. Owned by the log
/// writer; entries go in only once their commit is durable. Fingerprints
/// are already uniform, so the map hashes them with foldhash rather than
/// SipHash: start-up inserts every entry of the window.
#[derive(Debug, Default)]
pub struct DedupeIndex {
    sequences: HashMap<Fingerprint, u64, foldhash::fast::RandomState>,
}

impl DedupeIndex {
    pub fn with_capacity(entries: usize) -> Self {
        Self {
            sequences: HashMap::with_capacity_and_hasher(entries, Default::default()),
        }
    }

    pub fn get(&self, fingerprint: Fingerprint) -> Option<u64> {
        self.sequences.get(&fingerprint).copied()
    }

    pub fn insert(&mut self, fingerprint: Fingerprint, sequence: u64) {
        self.sequences.insert(fingerprint, sequence);
    }

    /// Forgets an entry, unless the fingerprint now names another event.
    pub fn remove(&mut self, fingerprint: Fingerprint, sequence: u64) {
        if self.sequences.get(&fingerprint) == Some(&sequence) {
            self.sequences.remove(&fingerprint);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runs_round_trip_and_refuse_torn_values() {
        let entries = [
            Entry {
                fingerprint: fingerprint("a", "x"),
                sequence: 7,
                received_ms: 1_700_000_000_123,
            },
            Entry {
                fingerprint: u128::MAX,
                sequence: u64::MAX,
                received_ms: 0,
            },
        ];
        let value = encode_run(&entries);
        assert_eq!(value.len(), 64);
        assert_eq!(decode_run(&value).unwrap(), entries);
        assert_eq!(decode_run(&value[..63]), None);
        assert_eq!(decode_run(&[]), Some(Vec::new()));
    }

    #[test]
    fn fingerprints_are_per_channel_and_match_legacy_keys() {
        assert_ne!(fingerprint("a", "x"), fingerprint("b", "x"));
        assert_ne!(fingerprint("a", "bx"), fingerprint("ab", "x"));
        assert_eq!(fingerprint("a", "x"), fingerprint_bytes(b"a\0x"));
    }

    #[test]
    fn an_entry_is_removed_only_for_its_own_event() {
        let mut index = DedupeIndex::default();
        index.insert(1, 10);
        index.remove(1, 11);
        assert_eq!(index.get(1), Some(10));
        index.remove(1, 10);
        assert_eq!(index.get(1), None);
    }
}
