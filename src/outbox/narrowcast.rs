//! Following a narrowcast after LINE accepted it. LINE answers a
//! narrowcast with 202 and picks and messages the recipients in its own
//! background; its outcome is only known by asking
//! `GET /v2/bot/message/progress/narrowcast` with the accepted request's
//! id. The delivery stays `accepted` (not final, so a restart or another
//! replica takes it up like any unfinished send, under the same lease)
//! and the outbox asks, with growing pauses, until LINE's phase is
//! `succeeded` (delivered) or `failed` (failed); the send's final record
//! goes on the event log then.

use std::time::Duration;

use super::{Attempt, Inner, TokenProblem};
use crate::{
    line::{self, CallError},
    store::{DeliveryRecord, DeliveryState, NarrowcastRecord},
};

/// The pause before the first read of LINE's progress; it doubles after
/// each read, up to the outbox's longest pause (`outbox_max_backoff_ms`).
const FIRST_CHECK: Duration = Duration::from_secs(1);
/// How long a narrowcast is followed. LINE sends within hours; a request
/// LINE still calls unfinished after this is reported, not asked forever.
const FOLLOW_WINDOW: Duration = Duration::from_secs(7 * 24 * 60 * 60);

/// What one read of the progress came to.
pub(super) enum Followed {
    /// Delivered, failed or unknown: saved by the caller.
    Final,
    /// Still under way (or LINE could not be asked): ask again after this.
    Again(Duration),
}

impl Inner {
    fn check_pause(&self, checks: u32) -> Duration {
        FIRST_CHECK
            .saturating_mul(1 << checks.min(16))
            .min(self.max_backoff)
    }

    /// A narrowcast LINE accepted as `request_id`: saved as accepted, its
    /// first progress read due after [`FIRST_CHECK`]. Without a request id
    /// there is nothing to ask by, so the outcome is unknown.
    pub(super) async fn accepted_narrowcast(
        &self,
        record: &mut DeliveryRecord,
        request_id: String,
    ) -> Attempt {
        record.error = None;
        record.failure = None;
        if request_id.is_empty() {
            record.state = DeliveryState::Unknown;
            record.failure = Some(
                "LINE accepted the narrowcast without a request id, which its progress is asked by"
                    .into(),
            );
            self.save(record).await;
            return Attempt::Done;
        }
        record.state = DeliveryState::Accepted;
        record.narrowcast = Some(NarrowcastRecord {
            request_id,
            ..NarrowcastRecord::default()
        });
        record.next_attempt_ms = Some(self.clock.now_ms() + self.check_pause(0).as_millis() as i64);
        if self.save(record).await {
            Attempt::Follow
        } else {
            Attempt::Done
        }
    }

    /// Reads LINE's progress once and moves the delivery on: delivered on
    /// `succeeded`, failed on `failed`, unknown when LINE no longer knows
    /// the request (a 4xx) or the follow window ran out.
    pub(super) async fn follow(&self, record: &mut DeliveryRecord) -> Followed {
        let mut progress = record.narrowcast.clone().unwrap_or_default();
        let elapsed = self.clock.now_ms().saturating_sub(record.create_time_ms);
        if progress.request_id.is_empty() || elapsed > FOLLOW_WINDOW.as_millis() as i64 {
            record.state = DeliveryState::Unknown;
            record.failure = Some(format!(
                "LINE did not report a final phase of this narrowcast within {} days",
                FOLLOW_WINDOW.as_secs() / 86_400
            ));
            return Followed::Final;
        }
        let pause = self.check_pause(progress.checks.saturating_add(1));
        let channel = match self.token(&record.channel_id).await {
            Ok(channel) => channel,
            Err(TokenProblem::Transient(reason)) => {
                record.failure = Some(format!("progress not read: {reason}"));
                return Followed::Again(pause);
            }
            Err(TokenProblem::Permanent(reason)) => {
                record.state = DeliveryState::Unknown;
                record.failure = Some(format!("progress cannot be read: {reason}"));
                return Followed::Final;
            }
        };
        let read = self
            .tokens
            .line(&channel)
            .narrowcast_progress(&progress.request_id)
            .await;
        progress.checks = progress.checks.saturating_add(1);
        progress.check_time_ms = Some(self.clock.now_ms());
        let followed = match read {
            Ok(answer) => {
                record.error = None;
                record.failure = None;
                let phase = answer.phase.clone();
                progress.phase = answer.phase;
                progress.success_count = answer.success_count;
                progress.failure_count = answer.failure_count;
                progress.target_count = answer.target_count;
                progress.error_code = answer.error_code;
                progress.failed_description = answer.failed_description;
                progress.accepted_time = answer.accepted_time;
                progress.completed_time = answer.completed_time;
                match phase.as_str() {
                    "succeeded" => {
                        record.state = DeliveryState::Delivered;
                        Followed::Final
                    }
                    "failed" => {
                        record.state = DeliveryState::Failed;
                        record.failure = Some(format!(
                            "LINE did not send the narrowcast (error code {}): {}",
                            progress.error_code.unwrap_or_default(),
                            progress
                                .failed_description
                                .as_deref()
                                .unwrap_or("no reason given")
                        ));
                        Followed::Final
                    }
                    // waiting, sending, or a phase LINE adds later.
                    _ => Followed::Again(pause),
                }
            }
            Err(CallError::Line(line::Error::Api(error)))
                if (400..500).contains(&error.http_status) =>
            {
                // LINE does not know the request (or no longer): what it
                // did with the messages cannot be learnt.
                record.state = DeliveryState::Unknown;
                record.failure = None;
                record.error = Some(error.into());
                Followed::Final
            }
            Err(CallError::Line(line::Error::RateLimited { retry_after, error })) => {
                record.error = Some(error.into());
                Followed::Again(retry_after.unwrap_or(pause).max(pause))
            }
            Err(CallError::Line(line::Error::Paced { retry_after, .. })) => {
                Followed::Again(retry_after.max(pause))
            }
            Err(err) => {
                // LINE failed or could not be reached: ask again later.
                record.failure = Some(format!("progress not read: {err}"));
                Followed::Again(pause)
            }
        };
        record.narrowcast = Some(progress);
        followed
    }
}
