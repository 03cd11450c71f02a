//! What a transport's answer means for the message: sent, retried later, given up, a hard
//! bounce, or a pause of the whole edition.
//!
//! - A 4xx reply, a timeout or a dropped connection is retried with exponential backoff and
//!   jitter, until `[sending] max_attempts`.
//! - A refusal of our connection (421, a 4xx greeting, a refused connect) is not about the
//!   message: it goes back to the queue, the attempt not counted, and the sender uses fewer
//!   connections (`relay_limit`).
//! - A 5xx reply with an RFC 3463 `5.1.x`/`5.2.1` code is a hard bounce: it counts against the
//!   reader (marked bounced after `[bounces] hard_threshold`). Any other 5xx fails this
//!   message only.
//! - An error that would fail every message (AUTH refused, TLS failure, our sender rejected,
//!   the relay unreachable or refusing us for longer than `[sending] pause_after_secs`)
//!   pauses the edition and gives the message back to the queue.

use std::sync::Mutex;
use std::time::{Duration as StdDuration, Instant};

use chrono::{Duration, Utc};
use rand::RngExt as _;

use crate::config::Sending;
use crate::mail::transport::{SendError, Session};
use crate::store::Verdict;

/// What to do with a message after one attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Judgement {
    /// Record this verdict.
    Record(Verdict),
    /// Every message would fail like this one: pause the edition with this reason and give the
    /// message back to the queue.
    Pause { reason: String },
}

/// Judges one attempt (`attempt` counts from 1) of a message.
pub(super) fn judge(result: &Result<(), SendError>, attempt: i64, cfg: &Sending) -> Judgement {
    let verdict = match result {
        Ok(()) => Verdict::Sent,
        Err(err @ SendError::Permanent { reply }) => {
            if err.is_hard_bounce() {
                Verdict::Bounced {
                    reply: reply.clone(),
                }
            } else {
                // A 5xx that is not about the mailbox (content, policy): this message failed,
                // but one rejection must not count against the reader's address.
                Verdict::Failed {
                    reply: err.to_string(),
                }
            }
        }
        Err(SendError::Fatal { reason }) => {
            return Judgement::Pause {
                reason: reason.clone(),
            };
        }
        Err(SendError::Refused { .. }) => Verdict::Released,
        Err(err) => {
            let reply = err.to_string();
            if attempt < i64::from(cfg.max_attempts) {
                Verdict::Retry {
                    reply,
                    at: Utc::now() + backoff(attempt, cfg.retry_base_secs),
                }
            } else {
                Verdict::Failed { reply }
            }
        }
    };
    Judgement::Record(verdict)
}

/// The wait before attempt `attempt + 1`: `retry_base_secs × 2^(attempt-1)`, ±25 % jitter so
/// that readers who failed together do not retry together.
pub fn backoff(attempt: i64, retry_base_secs: u64) -> Duration {
    let base = retry_base_secs as f64 * 2f64.powi((attempt - 1).clamp(0, 20) as i32);
    let jitter = rand::rng().random_range(0.75..1.25);
    // At most a week: a longer wait would outlive any edition's usefulness.
    let ms = (base * jitter * 1000.0).min(7.0 * 86_400_000.0);
    Duration::milliseconds(ms as i64)
}

/// How long the relay has been unreachable (or refusing us), shared by the workers: one failed
/// connect is a retry; failing for longer than `limit` would fail every message, so it pauses
/// the edition.
#[derive(Debug)]
pub(super) struct Unreachable {
    since: Mutex<Option<Instant>>,
    limit: StdDuration,
}

impl Unreachable {
    /// A tracker that turns connection failures fatal after `limit`.
    pub(super) fn new(limit: StdDuration) -> Self {
        Self {
            since: Mutex::new(None),
            limit,
        }
    }

    /// Passes a connection attempt's result through, turning a network failure or a refusal
    /// into a fatal error once the relay has been unreachable for longer than the limit.
    pub(super) fn judge(&self, r: Result<Session, SendError>) -> Result<Session, SendError> {
        self.pass(r, |e| {
            matches!(
                e,
                SendError::Network { .. } | SendError::Timeout | SendError::Refused { .. }
            )
        })
    }

    /// The same for a send: a relay that takes connections but refuses every message with a
    /// 421 for longer than the limit cannot be used either.
    pub(super) fn judge_send(&self, r: Result<(), SendError>) -> Result<(), SendError> {
        self.pass(r, SendError::is_refusal)
    }

    fn pass<T>(
        &self,
        r: Result<T, SendError>,
        counts: impl Fn(&SendError) -> bool,
    ) -> Result<T, SendError> {
        // The lock is never held across an await: this is plain bookkeeping.
        let Ok(mut since) = self.since.lock() else {
            return r;
        };
        match r {
            Ok(s) => {
                *since = None;
                Ok(s)
            }
            Err(e) if counts(&e) => {
                let first = *since.get_or_insert_with(Instant::now);
                if first.elapsed() >= self.limit {
                    Err(SendError::Fatal {
                        reason: format!(
                            "the SMTP relay has been unreachable or refusing us for {} s: {e}",
                            first.elapsed().as_secs()
                        ),
                    })
                } else {
                    Err(e)
                }
            }
            Err(e) => Err(e),
        }
    }

    #[cfg(test)]
    fn is_clear(&self) -> bool {
        self.since.lock().map(|s| s.is_none()).unwrap_or(false)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mail::transport::{StubOutbox, Transport};

    fn down() -> Result<Session, SendError> {
        Err(SendError::Network {
            reason: "connection refused".into(),
        })
    }

    #[tokio::test]
    async fn an_unreachable_relay_pauses_only_after_the_limit() {
        let patient = Unreachable::new(StdDuration::from_secs(3600));
        assert!(matches!(
            patient.judge(down()),
            Err(SendError::Network { .. })
        ));
        assert!(matches!(
            patient.judge(down()),
            Err(SendError::Network { .. })
        ));
        // A successful connect resets the clock.
        let ok = Transport::Stub(StubOutbox::new()).session().await;
        assert!(patient.judge(ok).is_ok());
        assert!(patient.is_clear());

        let impatient = Unreachable::new(StdDuration::ZERO);
        match impatient.judge(down()) {
            Err(SendError::Fatal { reason }) => assert!(reason.contains("unreachable"), "{reason}"),
            other => panic!("expected Fatal, got {:?}", other.err()),
        }
    }

    #[test]
    fn hard_bounces_count_other_rejections_fail_and_temporary_ones_retry() {
        let cfg = Sending::default();
        let perm = |r: &str| {
            Err(SendError::Permanent {
                reply: r.to_owned(),
            })
        };
        assert!(matches!(
            judge(&perm("550 5.1.1 no such user"), 1, &cfg),
            Judgement::Record(Verdict::Bounced { .. })
        ));
        assert!(matches!(
            judge(&perm("554 5.7.1 spam"), 1, &cfg),
            Judgement::Record(Verdict::Failed { .. })
        ));
        let busy = Err(SendError::Transient {
            reply: "451 4.3.0 try later".into(),
        });
        assert!(matches!(
            judge(&busy, 1, &cfg),
            Judgement::Record(Verdict::Retry { .. })
        ));
        assert!(matches!(
            judge(&busy, i64::from(cfg.max_attempts), &cfg),
            Judgement::Record(Verdict::Failed { .. })
        ));
        assert!(matches!(
            judge(
                &Err(SendError::Fatal {
                    reason: "AUTH refused".into()
                }),
                1,
                &cfg
            ),
            Judgement::Pause { .. }
        ));
        assert_eq!(judge(&Ok(()), 1, &cfg), Judgement::Record(Verdict::Sent));
        // Refused connections are not the message's fault: back to the queue, uncounted,
        // however many attempts it has had.
        let refused = Err(SendError::Refused {
            reason: "421 4.7.0 too many connections".into(),
        });
        assert_eq!(
            judge(&refused, i64::from(cfg.max_attempts), &cfg),
            Judgement::Record(Verdict::Released)
        );
    }

    #[test]
    fn backoff_doubles_with_jitter_and_is_capped() {
        let first = backoff(1, 60).num_milliseconds();
        assert!((45_000..=75_000).contains(&first), "{first}");
        let third = backoff(3, 60).num_milliseconds();
        assert!((180_000..=300_000).contains(&third), "{third}");
        assert!(backoff(60, 86_400) <= Duration::days(7));
    }
}
