//! Recent reply tokens, in memory, for the outbound side: a reply should
//! use the newest unused token of its chat. Each backend fills the index
//! from its log (at start-up from the last 20 minutes, then from every
//! newly durable record); the tokens themselves are durable inside the
//! event records.

use std::{
    collections::{BTreeMap, HashMap, VecDeque},
    sync::{Arc, Mutex},
    time::Duration,
};

use super::records::{EventRecord, ReplyToken};

/// How far back start-up looks for reply tokens: LINE refuses older ones.
pub const REPLY_TOKEN_LIFETIME: Duration = Duration::from_secs(20 * 60);

/// Most tokens kept, the newest: under heavy ingest 20 minutes of tokens
/// would grow without bound (942k events held 420 MiB), while LINE only
/// promises a token for a minute and `Send` uses one only while it is
/// younger than 50 s. 100,000 is those 50 s at 2,000 events with a token
/// per second, in about 30 MiB.
pub const MAX_REPLY_TOKENS: usize = 100_000;

/// Recent reply tokens by (channel, conversation), oldest first, and at
/// most `limit` of them (the newest).
#[derive(Debug)]
pub struct ReplyTokens {
    index: Mutex<Index>,
    limit: usize,
}

#[derive(Debug, Default)]
struct Index {
    /// By chat key (see [`chat_key`]), in sequence order.
    chats: HashMap<Arc<str>, VecDeque<ReplyToken>>,
    /// Every kept token's chat, by sequence: the oldest goes first.
    by_sequence: BTreeMap<u64, Arc<str>>,
}

impl Default for ReplyTokens {
    fn default() -> Self {
        Self::with_limit(MAX_REPLY_TOKENS)
    }
}

/// One string for both parts; an id holds no NUL.
fn chat_key(channel_id: &str, conversation_id: &str) -> String {
    format!("{channel_id}\0{conversation_id}")
}

impl ReplyTokens {
    pub fn with_limit(limit: usize) -> Self {
        Self {
            index: Mutex::default(),
            limit,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Index> {
        self.index.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn add(&self, record: &EventRecord) {
        if record.reply_token.is_empty() {
            return;
        }
        self.insert(
            &record.channel_id,
            &record.conversation_id,
            ReplyToken {
                sequence: record.sequence,
                token: record.reply_token.clone(),
                receive_time_ms: record.receive_time_ms,
            },
        );
    }

    /// Adds a token of a chat, kept in sequence order: usually the newest,
    /// but a backend filling the index in the background may add older
    /// ones after newer ones. `false` when the index is full of newer
    /// tokens, so that this one is not kept (nor would any older one be).
    pub fn insert(&self, channel_id: &str, conversation_id: &str, token: ReplyToken) -> bool {
        let mut index = self.lock();
        if index.by_sequence.contains_key(&token.sequence) {
            return true;
        }
        if index.by_sequence.len() >= self.limit {
            match index.by_sequence.first_key_value() {
                Some((&oldest, _)) if oldest < token.sequence => index.forget_oldest(),
                _ => return false,
            }
        }
        let key = chat_key(channel_id, conversation_id);
        let key: Arc<str> = match index.chats.get_key_value(key.as_str()) {
            Some((known, _)) => known.clone(),
            None => Arc::from(key),
        };
        index.by_sequence.insert(token.sequence, key.clone());
        let queue = index
            .chats
            .entry(key)
            .or_insert_with(|| VecDeque::with_capacity(1));
        match queue.back() {
            Some(last) if last.sequence > token.sequence => {
                let at = queue.partition_point(|t| t.sequence < token.sequence);
                queue.insert(at, token);
            }
            _ => queue.push_back(token),
        }
        true
    }

    pub fn recent(&self, channel_id: &str, conversation_id: &str) -> Vec<ReplyToken> {
        let index = self.lock();
        index
            .chats
            .get(chat_key(channel_id, conversation_id).as_str())
            .map(|queue| queue.iter().cloned().collect())
            .unwrap_or_default()
    }

    /// Forgets tokens received before `before_ms`; returns how many.
    pub fn expire(&self, before_ms: i64) -> u64 {
        let mut index = self.lock();
        let Index { chats, by_sequence } = &mut *index;
        let mut removed = 0;
        chats.retain(|_, queue| {
            while let Some(front) = queue.front()
                && front.receive_time_ms < before_ms
            {
                by_sequence.remove(&front.sequence);
                queue.pop_front();
                removed += 1;
            }
            !queue.is_empty()
        });
        removed
    }

    /// How many tokens are kept.
    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.lock().by_sequence.len()
    }
}

impl Index {
    fn forget_oldest(&mut self) {
        let Some((sequence, key)) = self.by_sequence.pop_first() else {
            return;
        };
        if let Some(queue) = self.chats.get_mut(&key) {
            if let Ok(at) = queue.binary_search_by_key(&sequence, |t| t.sequence) {
                queue.remove(at);
            }
            if queue.is_empty() {
                self.chats.remove(&key);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn token(sequence: u64) -> ReplyToken {
        ReplyToken {
            sequence,
            token: format!("t{sequence}"),
            receive_time_ms: sequence as i64,
        }
    }

    #[test]
    fn tokens_stay_in_sequence_order_whatever_order_they_arrive_in() {
        let tokens = ReplyTokens::default();
        for sequence in [5, 9, 2, 7, 9, 1, 10, 7] {
            tokens.insert("ch", "U1", token(sequence));
        }
        let order: Vec<u64> = tokens
            .recent("ch", "U1")
            .iter()
            .map(|t| t.sequence)
            .collect();
        assert_eq!(order, [1, 2, 5, 7, 9, 10], "sorted, each once");
        assert_eq!(tokens.expire(6), 3);
        let order: Vec<u64> = tokens
            .recent("ch", "U1")
            .iter()
            .map(|t| t.sequence)
            .collect();
        assert_eq!(order, [7, 9, 10]);
        assert!(tokens.recent("ch", "U2").is_empty());
    }

    #[test]
    fn only_the_newest_tokens_are_kept_past_the_limit() {
        let tokens = ReplyTokens::with_limit(3);
        for sequence in [2, 4, 6] {
            assert!(tokens.insert("ch", "U1", token(sequence)));
        }
        assert!(
            tokens.insert("ch", "U2", token(7)),
            "newer: the oldest goes"
        );
        let sequences = |chat: &str| -> Vec<u64> {
            tokens
                .recent("ch", chat)
                .iter()
                .map(|t| t.sequence)
                .collect()
        };
        assert_eq!(sequences("U1"), [4, 6]);
        assert_eq!(sequences("U2"), [7]);
        assert!(!tokens.insert("ch", "U3", token(3)), "older than all kept");
        assert!(sequences("U3").is_empty());
        assert!(
            tokens.insert("ch", "U1", token(5)),
            "between: the oldest goes"
        );
        assert_eq!(sequences("U1"), [5, 6]);
        assert!(tokens.insert("ch", "U1", token(6)), "known: kept once");
        assert_eq!(tokens.len(), 3);
        assert_eq!(tokens.expire(6), 1);
        assert_eq!(tokens.len(), 2);
        assert!(tokens.insert("ch", "U4", token(8)));
        assert_eq!(tokens.len(), 3);
        assert_eq!(sequences("U1"), [6]);
    }

    #[test]
    fn chats_of_other_channels_stay_apart() {
        let tokens = ReplyTokens::default();
        tokens.insert("a", "U1", token(1));
        tokens.insert("b", "U2", token(2));
        assert_eq!(tokens.recent("a", "U1")[0].sequence, 1);
        assert!(tokens.recent("b", "U1").is_empty());
        assert!(tokens.recent("a", "U2").is_empty());
    }
}
