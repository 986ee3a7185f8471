//! Recent reply tokens, in memory, for the outbound side: a reply should
//! use the newest unused token of its chat. Each backend fills the index
//! from its log (at start-up from the last 20 minutes, then from every
//! newly durable record); the tokens themselves are durable inside the
//! event records.

use std::{
    collections::{HashMap, VecDeque},
    sync::Mutex,
    time::Duration,
};

use super::records::{EventRecord, ReplyToken};

/// How far back start-up looks for reply tokens: LINE refuses older ones.
pub const REPLY_TOKEN_LIFETIME: Duration = Duration::from_secs(20 * 60);

/// Recent reply tokens by (channel, conversation), oldest first.
#[derive(Debug, Default)]
pub struct ReplyTokens(Mutex<HashMap<(String, String), VecDeque<ReplyToken>>>);

impl ReplyTokens {
    pub fn add(&self, record: &EventRecord) {
        if record.reply_token.is_empty() {
            return;
        }
        self.insert(
            record.channel_id.clone(),
            record.conversation_id.clone(),
            ReplyToken {
                sequence: record.sequence,
                token: record.reply_token.clone(),
                receive_time_ms: record.receive_time_ms,
            },
        );
    }

    /// Adds a token of a chat, kept in sequence order: usually the newest,
    /// but a backend filling the index in the background may add older
    /// ones after newer ones.
    pub fn insert(&self, channel_id: String, conversation_id: String, token: ReplyToken) {
        let mut tokens = self.0.lock().unwrap_or_else(|p| p.into_inner());
        let queue = tokens.entry((channel_id, conversation_id)).or_default();
        match queue.back() {
            Some(last) if last.sequence > token.sequence => {
                let at = queue.partition_point(|t| t.sequence < token.sequence);
                if queue.get(at).is_none_or(|t| t.sequence != token.sequence) {
                    queue.insert(at, token);
                }
            }
            Some(last) if last.sequence == token.sequence => {}
            _ => queue.push_back(token),
        }
    }

    pub fn recent(&self, channel_id: &str, conversation_id: &str) -> Vec<ReplyToken> {
        let tokens = self.0.lock().unwrap_or_else(|p| p.into_inner());
        tokens
            .get(&(channel_id.to_owned(), conversation_id.to_owned()))
            .map(|queue| queue.iter().cloned().collect())
            .unwrap_or_default()
    }

    /// Forgets tokens received before `before_ms`; returns how many.
    pub fn expire(&self, before_ms: i64) -> u64 {
        let mut tokens = self.0.lock().unwrap_or_else(|p| p.into_inner());
        let mut removed = 0;
        tokens.retain(|_, queue| {
            while queue.front().is_some_and(|t| t.receive_time_ms < before_ms) {
                queue.pop_front();
                removed += 1;
            }
            !queue.is_empty()
        });
        removed
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
            tokens.insert("ch".into(), "U1".into(), token(sequence));
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
}
