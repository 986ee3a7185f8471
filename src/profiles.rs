//! Profile records of the event log: who wrote. After the first event of a
//! user (or group) on a channel, and again once the last lookup is a day
//! old, LINE is asked in the background who they are, and the answer is
//! appended as an `EVENT_TYPE_PROFILE` record after the event, so that a
//! desk shows names and pictures without calling LINE per message.
//!
//! Ingest never waits: events only queue lookups (a bounded queue; when it
//! is full the lookup is left for the user's next event). A few workers
//! ask LINE through the channel's client, which paces calls per channel,
//! and through the lookup cache the lookup RPCs use. A refusal (404 for a
//! user who blocked the account or left the group, 403 for an unverified
//! account) writes nothing and is not asked again for a day; a failure
//! (LINE down, no token) is asked again at the subject's next event, then
//! after pauses that double from 2 s to 10 minutes while it keeps failing.
//!
//! Which subjects were looked up when is kept in memory, bounded: after a
//! restart (or on each replica sharing a NATS store) a subject is looked up
//! once more at its next event.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
    time::Duration,
};

use serde_json::json;
use tokio::sync::mpsc;
use tokio_util::{sync::CancellationToken, task::TaskTracker};

use crate::{
    line::{self, CallError, api::Chat},
    lookup_cache::{LookupCache, group_key, member_key, profile_key},
    proto::v1 as pb,
    store::{NewEvent, Store},
    time::{Clock, timestamp},
    tokens::{TokenError, Tokens},
};

/// `Event.type_name` of profile records (not a LINE type: see
/// [`crate::outbound::TYPE_NAME`]).
pub const TYPE_NAME: &str = "line-adapter/profile";

/// How long a subject's lookup stands before an event asks again.
const REFRESH_AFTER: Duration = Duration::from_secs(24 * 60 * 60);
/// Lookups waiting at most; past it a lookup waits for the next event.
const QUEUE_DEPTH: usize = 10_000;
/// Lookups in flight at once, over all channels: a burst of new users is
/// worked through a few at a time (the channel's client paces them too).
const WORKERS: usize = 4;
/// Longest pause before a lookup that keeps failing is made again.
const MAX_FAILURE_PAUSE: Duration = Duration::from_secs(10 * 60);
/// Subjects remembered at most; past it the day-old ones go first, then
/// all (the worst case is one more lookup per subject).
const SEEN_CAPACITY: usize = 200_000;

static LOOKUP_FAILED: crate::log_limit::Throttle =
    crate::log_limit::Throttle::new(crate::log_limit::INTERVAL);

/// Who a record is about.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Subject {
    User(String),
    GroupMember { group: String, user: String },
    RoomMember { room: String, user: String },
    Group(String),
}

impl Subject {
    fn key(&self, channel_id: &str) -> String {
        match self {
            Self::User(user) => format!("{channel_id}/user/{user}"),
            Self::GroupMember { group, user } => format!("{channel_id}/group/{group}/{user}"),
            Self::RoomMember { room, user } => format!("{channel_id}/room/{room}/{user}"),
            Self::Group(group) => format!("{channel_id}/group/{group}"),
        }
    }
}

/// A subject's last lookup.
#[derive(Debug, Clone, Copy)]
struct Seen {
    /// When it was made (or queued), Unix ms.
    at_ms: i64,
    /// Failures in a row since the last answer.
    failures: u32,
    /// Queued or being made: never queued twice.
    pending: bool,
}

impl Seen {
    /// Whether an event at `now` should ask again: a day after an answer
    /// (or a refusal), and after failures at once the first time, then
    /// after pauses that double from 2 s up to 10 minutes, so that a LINE
    /// outage does not turn every event into a failed call.
    fn due(&self, now: i64) -> bool {
        if self.pending {
            return false;
        }
        let wait = match self.failures {
            0 => REFRESH_AFTER,
            1 => Duration::ZERO,
            n => Duration::from_secs(1 << (n - 1).min(9)).min(MAX_FAILURE_PAUSE),
        };
        now.saturating_sub(self.at_ms) >= wait.as_millis() as i64
    }
}

/// One lookup to make.
struct Job {
    channel_id: String,
    subject: Subject,
    /// The chat it was seen in (`user:`, `group:` or `room:` + id).
    chat: String,
    trigger_sequence: u64,
    seen_key: String,
}

/// The profile looker-up; cheap to clone.
#[derive(Clone)]
pub struct Profiles {
    inner: Arc<Inner>,
}

struct Inner {
    enabled: bool,
    store: Arc<dyn Store>,
    tokens: Tokens,
    lookups: LookupCache,
    /// Dates lookups (when a subject is asked again) and their records.
    clock: Clock,
    queue: mpsc::Sender<Job>,
    /// Subject key → its last lookup.
    seen: Mutex<HashMap<String, Seen>>,
    shutdown: CancellationToken,
    tasks: TaskTracker,
}

impl Profiles {
    /// With `enabled` false, events queue nothing (`lookup_profiles`).
    pub fn new(
        enabled: bool,
        store: Arc<dyn Store>,
        tokens: Tokens,
        lookups: LookupCache,
        clock: Clock,
    ) -> Self {
        let (queue, jobs) = mpsc::channel(QUEUE_DEPTH);
        let inner = Arc::new(Inner {
            enabled,
            store,
            tokens,
            lookups,
            clock,
            queue,
            seen: Mutex::default(),
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
                    // A stop does not wait for LINE's answer.
                    tokio::select! {
                        _ = inner.shutdown.cancelled() => return,
                        _ = inner.look_up(job) => {}
                    }
                }
            });
        }
        Self { inner }
    }

    /// Whether events should be shown to [`Self::saw`] at all.
    pub fn enabled(&self) -> bool {
        self.inner.enabled
    }

    /// Queues the lookups a stored event (of `event_type`, from `source`,
    /// stored as `sequence`) calls for; never waits.
    pub fn saw(
        &self,
        channel_id: &str,
        event_type: pb::EventType,
        source: Option<&pb::Source>,
        sequence: u64,
    ) {
        if !self.inner.enabled {
            return;
        }
        let Some(source) = source else {
            return;
        };
        // After these LINE refuses the lookup (the user blocked the
        // account, or left; the account left the chat).
        if matches!(
            event_type,
            pb::EventType::Unfollow | pb::EventType::Leave | pb::EventType::MemberLeft
        ) {
            return;
        }
        let user = (!source.user_id.is_empty()).then(|| source.user_id.clone());
        let mut wanted = Vec::new();
        let chat = match source.r#type() {
            pb::SourceType::User => {
                if let Some(user) = user {
                    wanted.push((Subject::User(user.clone()), false));
                    format!("user:{user}")
                } else {
                    return;
                }
            }
            pb::SourceType::Group => {
                let group = source.group_id.clone();
                if group.is_empty() {
                    return;
                }
                // A join is when a group's name is news.
                let joined = event_type == pb::EventType::Join;
                wanted.push((Subject::Group(group.clone()), joined));
                if let Some(user) = user {
                    wanted.push((
                        Subject::GroupMember {
                            group: group.clone(),
                            user,
                        },
                        false,
                    ));
                }
                format!("group:{group}")
            }
            pb::SourceType::Room => {
                let room = source.room_id.clone();
                match user {
                    Some(user) if !room.is_empty() => wanted.push((
                        Subject::RoomMember {
                            room: room.clone(),
                            user,
                        },
                        false,
                    )),
                    _ => return,
                }
                format!("room:{room}")
            }
            pb::SourceType::Unspecified => return,
        };
        let now = self.inner.clock.now_ms();
        for (subject, always) in wanted {
            let seen_key = subject.key(channel_id);
            if !self.inner.claim(&seen_key, now, always) {
                continue;
            }
            let job = Job {
                channel_id: channel_id.to_owned(),
                subject,
                chat: chat.clone(),
                trigger_sequence: sequence,
                seen_key,
            };
            if let Err(
                mpsc::error::TrySendError::Full(job) | mpsc::error::TrySendError::Closed(job),
            ) = self.inner.queue.try_send(job)
            {
                // Left for the subject's next event.
                self.inner.forget(&job.seen_key);
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
    /// Marks a subject as being looked up now; `false` when its last
    /// lookup is not due again ([`Seen::due`]; a join always is).
    fn claim(&self, key: &str, now: i64, always: bool) -> bool {
        let mut seen = self.seen.lock().unwrap_or_else(|p| p.into_inner());
        let failures = match seen.get(key) {
            Some(last) if !always && !last.due(now) => return false,
            Some(last) => last.failures,
            None => 0,
        };
        if seen.len() >= SEEN_CAPACITY {
            let stale = now.saturating_sub(REFRESH_AFTER.as_millis() as i64);
            seen.retain(|_, last| last.at_ms > stale);
            if seen.len() >= SEEN_CAPACITY {
                seen.clear();
            }
        }
        seen.insert(
            key.to_owned(),
            Seen {
                at_ms: now,
                failures,
                pending: true,
            },
        );
        true
    }

    /// Forgets a subject whose lookup was never made (the queue was full):
    /// its next event asks.
    fn forget(&self, key: &str) {
        self.seen
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(key);
    }

    /// Records how a lookup ended: `answered` (or refused) waits a day, a
    /// failure counts towards the pause before the next.
    fn ended(&self, key: &str, answered: bool) {
        let mut seen = self.seen.lock().unwrap_or_else(|p| p.into_inner());
        let failures = seen.get(key).map_or(0, |last| last.failures);
        seen.insert(
            key.to_owned(),
            Seen {
                at_ms: self.clock.now_ms(),
                failures: if answered { 0 } else { failures + 1 },
                pending: false,
            },
        );
    }

    async fn look_up(&self, job: Job) {
        let channel = match self.tokens.channels().get(&job.channel_id).await {
            Ok(channel) => channel,
            // Deleted since (nothing to say about it), or the store failed.
            Err(_) => {
                self.ended(&job.seen_key, false);
                return;
            }
        };
        let line = self.tokens.line(&channel);
        let lookups = &self.lookups;
        let answer: Result<(pb::ProfileUpdate, i64), CallError<TokenError>> = match &job.subject {
            Subject::User(user) => lookups
                .get_or_fetch(&channel, &profile_key(user), || line.profile(user))
                .await
                .map(|(p, at)| {
                    let update = pb::ProfileUpdate {
                        subject: pb::ProfileSubject::User as i32,
                        user_id: p.user_id,
                        display_name: p.display_name,
                        picture_url: p.picture_url.unwrap_or_default(),
                        status_message: p.status_message.unwrap_or_default(),
                        language: p.language.unwrap_or_default(),
                        ..Default::default()
                    };
                    (update, at)
                }),
            Subject::GroupMember { group, user } => lookups
                .get_or_fetch(&channel, &member_key("group", group, user), || {
                    line.member_profile(Chat::Group(group), user)
                })
                .await
                .map(|(p, at)| {
                    let update = pb::ProfileUpdate {
                        subject: pb::ProfileSubject::GroupMember as i32,
                        user_id: p.user_id,
                        group_id: group.clone(),
                        display_name: p.display_name,
                        picture_url: p.picture_url.unwrap_or_default(),
                        ..Default::default()
                    };
                    (update, at)
                }),
            Subject::RoomMember { room, user } => lookups
                .get_or_fetch(&channel, &member_key("room", room, user), || {
                    line.member_profile(Chat::Room(room), user)
                })
                .await
                .map(|(p, at)| {
                    let update = pb::ProfileUpdate {
                        subject: pb::ProfileSubject::RoomMember as i32,
                        user_id: p.user_id,
                        room_id: room.clone(),
                        display_name: p.display_name,
                        picture_url: p.picture_url.unwrap_or_default(),
                        ..Default::default()
                    };
                    (update, at)
                }),
            Subject::Group(group) => lookups
                .get_or_fetch(&channel, &group_key(group), || line.group_summary(group))
                .await
                .map(|(g, at)| {
                    let update = pb::ProfileUpdate {
                        subject: pb::ProfileSubject::Group as i32,
                        group_id: g.group_id,
                        display_name: g.group_name,
                        picture_url: g.picture_url.unwrap_or_default(),
                        ..Default::default()
                    };
                    (update, at)
                }),
        };
        let (mut update, fetched) = match answer {
            Ok(answer) => answer,
            Err(CallError::Line(line::Error::Api(error)))
                if matches!(error.http_status, 403 | 404) =>
            {
                // LINE will say the same tomorrow at the earliest.
                tracing::debug!(channel = %job.channel_id, status = error.http_status, "LINE refused a profile lookup");
                self.ended(&job.seen_key, true);
                return;
            }
            Err(err) => {
                self.ended(&job.seen_key, false);
                if let Some(suppressed) = LOOKUP_FAILED.admit() {
                    tracing::warn!(channel = %job.channel_id, error = %err, suppressed, "a profile lookup failed; asked again at a later event of the subject (suppressed: how many more since the last such line)");
                }
                return;
            }
        };
        update.trigger_sequence = job.trigger_sequence;
        update.fetch_time = Some(timestamp(fetched));
        let record = record(&job.channel_id, &job.chat, update, self.clock.now_ms());
        let stored = self.store.append(vec![record]).await;
        self.ended(&job.seen_key, stored.is_ok());
        if let Err(err) = stored
            && let Some(suppressed) = LOOKUP_FAILED.admit()
        {
            tracing::warn!(channel = %job.channel_id, error = %err, suppressed, "storing a profile record failed (suppressed: how many more since the last such line)");
        }
    }
}

/// The log record of a lookup's answer, in the chat it was seen in.
fn record(channel_id: &str, chat: &str, update: pb::ProfileUpdate, now_ms: i64) -> NewEvent {
    let subject = match update.subject() {
        pb::ProfileSubject::User => "user",
        pb::ProfileSubject::GroupMember => "groupMember",
        pb::ProfileSubject::RoomMember => "roomMember",
        pb::ProfileSubject::Group => "group",
        pb::ProfileSubject::Unspecified => "",
    };
    let json = json!({
        "subject": subject,
        "userId": update.user_id,
        "groupId": update.group_id,
        "roomId": update.room_id,
        "displayName": update.display_name,
        "pictureUrl": update.picture_url,
        "statusMessage": update.status_message,
        "language": update.language,
        "triggerSequence": update.trigger_sequence,
    })
    .to_string();
    let event = pb::Event {
        channel_id: channel_id.to_owned(),
        r#type: pb::EventType::Profile as i32,
        type_name: TYPE_NAME.into(),
        timestamp: update.fetch_time,
        receive_time: Some(timestamp(now_ms)),
        source: crate::outbound::chat_source(chat),
        json,
        payload: Some(pb::event::Payload::Profile(update)),
        ..Default::default()
    };
    // Each answer is news; nothing to deduplicate.
    crate::outbound::own_record(&event, Some(chat), now_ms, None)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seen(failures: u32, pending: bool) -> Seen {
        Seen {
            at_ms: 1_000_000,
            failures,
            pending,
        }
    }

    #[test]
    fn answers_wait_a_day_and_failures_back_off() {
        let day = REFRESH_AFTER.as_millis() as i64;
        assert!(!seen(0, false).due(1_000_000 + day - 1));
        assert!(seen(0, false).due(1_000_000 + day));
        // The first failure is asked again at once, later ones after 2 s,
        // 4 s, … never more than MAX_FAILURE_PAUSE.
        assert!(seen(1, false).due(1_000_000));
        assert!(!seen(2, false).due(1_000_000 + 1_999));
        assert!(seen(2, false).due(1_000_000 + 2_000));
        assert!(!seen(3, false).due(1_000_000 + 3_999));
        let longest = MAX_FAILURE_PAUSE.as_millis() as i64;
        assert!(seen(40, false).due(1_000_000 + longest));
        // Queued or in flight: never twice.
        assert!(!seen(1, true).due(i64::MAX));
    }

    #[test]
    fn subjects_of_one_channel_have_distinct_keys() {
        let keys = [
            Subject::User("U1".into()).key("ch"),
            Subject::Group("U1".into()).key("ch"),
            Subject::GroupMember {
                group: "C1".into(),
                user: "U1".into(),
            }
            .key("ch"),
            Subject::RoomMember {
                room: "C1".into(),
                user: "U1".into(),
            }
            .key("ch"),
            Subject::User("U1".into()).key("ch2"),
        ];
        let distinct: std::collections::HashSet<_> = keys.iter().collect();
        assert_eq!(distinct.len(), keys.len());
    }
}
