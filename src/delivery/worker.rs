//! One worker per connection: it owns its SMTP session and its own queue of jobs.
//!
//! Nothing a worker awaits is behind a lock another task needs (the shutdown path in
//! particular): the worker selects on the shutdown signal itself, the way tokio's mini-redis
//! does. On shutdown it finishes the transaction in flight (bounded by `[smtp] timeout_secs`),
//! hands the jobs it has not started back to the queue, and waits for its outcomes to commit.
//!
//! The crash bound lives here: before a worker starts a message, the outcome of the message
//! before the previous one must be committed. So at any moment at most two messages of a
//! connection can have reached the relay without a committed outcome.

use std::collections::{HashSet, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration as StdDuration, Instant};

use governor::DefaultDirectRateLimiter;
use tokio::sync::{OwnedSemaphorePermit, mpsc, watch};

use super::policy::{self, Judgement, Unreachable};
use super::recorder::{Ack, Record, Recorder};
use crate::config::Sending;
use crate::domain::EmailAddress;
use crate::mail::dkim::SigningPool;
use crate::mail::transport::{SendError, Session, Transport};
use crate::store::{Item, Outcome, Store, Verdict};

/// A claimed message older than this is checked against the subscription again right before
/// it is sent (one that went straight through was checked by its claim).
pub(super) const RECHECK_AFTER: StdDuration = StdDuration::from_millis(250);

/// Outcomes of one connection that may be uncommitted when it starts a message: the previous
/// message's. With the message being sent, that makes two per connection a crash can repeat.
const UNCOMMITTED_PER_CONNECTION: usize = 1;

/// One message handed to a worker.
pub(super) struct Job {
    pub item: Item,
    /// The edition of a delivery (`None` for transactional mail).
    pub edition_id: Option<i64>,
    /// Attempts including this one.
    pub attempt: i64,
    pub to: EmailAddress,
    /// This message's envelope sender (a VERP address when `[bounces] return_path_domain`
    /// is set).
    pub envelope_from: EmailAddress,
    /// For the log: the Message-ID, never the address.
    pub message_id: String,
    pub bytes: Vec<u8>,
    /// When the item was claimed (and its subscription checked).
    pub claimed_at: Instant,
    /// Holds one of the dispatcher's slots until the outcome is committed.
    pub permit: OwnedSemaphorePermit,
}

/// What every worker shares.
pub(super) struct Shared {
    pub transport: Arc<Transport>,
    pub signer: Option<SigningPool>,
    pub limiter: Option<Arc<DefaultDirectRateLimiter>>,
    pub paused: Arc<Mutex<HashSet<i64>>>,
    pub unreachable: Unreachable,
    pub store: Store,
    pub recorder: Recorder,
    pub sending: Sending,
}

/// Runs one worker until its queue closes or shutdown; `Err` when the recorder failed.
pub(super) async fn run(
    n: usize,
    shared: Arc<Shared>,
    mut jobs: mpsc::Receiver<Job>,
    mut shutdown: watch::Receiver<bool>,
) -> Result<(), String> {
    let mut session: Option<Session> = None;
    let mut uncommitted: VecDeque<Ack> = VecDeque::new();
    let result = loop {
        let job = tokio::select! {
            biased;
            _ = shutdown.wait_for(|s| *s) => break Ok(()),
            job = jobs.recv() => job,
        };
        let Some(mut job) = job else { break Ok(()) };
        // The crash bound: the outcome before the previous one is committed before this
        // message can reach the relay.
        if let Err(e) = wait_for_commits(&mut uncommitted, UNCOMMITTED_PER_CONNECTION).await {
            release(&shared, job);
            break Err(e);
        }
        match attempt(n, &shared, &mut session, &mut job, &mut shutdown).await {
            Attempt::Done(result) => {
                let (outcome, pause) = outcome_of(&job, result, &shared.sending);
                uncommitted.push_back(shared.recorder.submit(Record {
                    outcome,
                    edition_id: job.edition_id,
                    pause,
                    permit: Some(job.permit),
                    ack: None,
                }));
            }
            Attempt::Skip(verdict) => {
                uncommitted.push_back(submit(&shared, job, verdict));
            }
        }
    };
    // Jobs not started go back to the queue; then every outcome of this worker is committed
    // before it reports done.
    jobs.close();
    while let Ok(job) = jobs.try_recv() {
        uncommitted.push_back(submit(&shared, job, Verdict::Released));
    }
    let committed = wait_for_commits(&mut uncommitted, 0).await;
    if let Some(s) = session.take() {
        s.close().await;
    }
    result.and(committed)
}

/// What one attempt came to.
enum Attempt {
    /// The transport was asked; this is its answer.
    Done(Result<(), SendError>),
    /// Not attempted, for this reason.
    Skip(Verdict),
}

async fn attempt(
    n: usize,
    shared: &Shared,
    session: &mut Option<Session>,
    job: &mut Job,
    shutdown: &mut watch::Receiver<bool>,
) -> Attempt {
    if let Some(e) = job.edition_id
        && shared
            .paused
            .lock()
            .map(|p| p.contains(&e))
            .unwrap_or(false)
    {
        return Attempt::Skip(Verdict::Released);
    }
    if let Some(l) = &shared.limiter {
        tokio::select! {
            biased;
            _ = shutdown.wait_for(|s| *s) => return Attempt::Skip(Verdict::Released),
            _ = l.until_ready() => {}
        }
    }
    // An unsubscribe committed before the attempt stops the message. The claim checked the
    // subscription; a message that has waited since (behind the rate limit, or a slow relay)
    // is checked again. One that went straight through is not, which spares a database round
    // trip per message at full speed.
    if let Item::Delivery { id, .. } = job.item
        && job.claimed_at.elapsed() > RECHECK_AFTER
    {
        match shared.store.still_wanted(id).await {
            Ok(true) => {}
            Ok(false) => {
                return Attempt::Skip(Verdict::Skipped {
                    reason: "unsubscribed before sending".into(),
                });
            }
            // Fail closed: when we cannot tell, the message is not sent.
            Err(e) => {
                tracing::warn!(error = %e, "cannot re-check the subscription; the message goes back to the queue");
                return Attempt::Skip(Verdict::Released);
            }
        }
    }
    // The bytes go to the relay (or the signer) from here; the job keeps what it needs to
    // record the outcome.
    let bytes = std::mem::take(&mut job.bytes);
    let bytes = match &shared.signer {
        // Signed on the pool's own threads, never on the async worker threads.
        Some(signer) => match signer.sign(bytes).await {
            Ok(b) => b,
            Err(e) => {
                return Attempt::Done(Err(SendError::Fatal {
                    reason: format!("DKIM signing failed: {e}"),
                }));
            }
        },
        None => bytes,
    };
    Attempt::Done(send_one(n, shared, session, &job.envelope_from, &job.to, &bytes).await)
}

async fn send_one(
    n: usize,
    shared: &Shared,
    session: &mut Option<Session>,
    from: &EmailAddress,
    to: &EmailAddress,
    bytes: &[u8],
) -> Result<(), SendError> {
    let s = match session {
        Some(s) => s,
        None => {
            let s = shared.unreachable.judge(shared.transport.session().await)?;
            tracing::debug!(worker = n, "connected");
            session.insert(s)
        }
    };
    let r = s.send(from, to, bytes).await;
    if r.is_err() && !s.is_usable() {
        // A broken conversation is not reused: the next message opens a fresh connection.
        *session = None;
    }
    r
}

fn outcome_of(
    job: &Job,
    result: Result<(), SendError>,
    cfg: &Sending,
) -> (Outcome, Option<(i64, String)>) {
    let (verdict, pause) = match policy::judge(&result, job.attempt, cfg) {
        Judgement::Record(v) => (v, None),
        Judgement::Pause { reason } => (Verdict::Released, job.edition_id.map(|e| (e, reason))),
    };
    log(job, &verdict, &result);
    (
        Outcome {
            item: job.item,
            verdict,
        },
        pause,
    )
}

fn log(job: &Job, verdict: &Verdict, result: &Result<(), SendError>) {
    let domain = job.to.domain();
    let mid = job.message_id.as_str();
    match verdict {
        Verdict::Sent => tracing::debug!(recipient_domain = %domain, message_id = %mid, "sent"),
        Verdict::Bounced { reply } => {
            tracing::warn!(recipient_domain = %domain, message_id = %mid, %reply, "hard bounce")
        }
        Verdict::Failed { reply } => {
            tracing::warn!(recipient_domain = %domain, message_id = %mid, attempt = job.attempt, %reply, "failed")
        }
        Verdict::Retry { reply, .. } => {
            tracing::warn!(recipient_domain = %domain, message_id = %mid, attempt = job.attempt, error = %reply, "temporary failure")
        }
        Verdict::Released | Verdict::Skipped { .. } => {
            if let Err(e) = result {
                tracing::warn!(recipient_domain = %domain, message_id = %mid, error = %e, "not sent")
            }
        }
    }
}

fn submit(shared: &Shared, job: Job, verdict: Verdict) -> Ack {
    shared.recorder.submit(Record {
        outcome: Outcome {
            item: job.item,
            verdict,
        },
        edition_id: job.edition_id,
        pause: None,
        permit: Some(job.permit),
        ack: None,
    })
}

fn release(shared: &Shared, job: Job) {
    drop(submit(shared, job, Verdict::Released));
}

/// Waits until at most `keep` outcomes are uncommitted.
async fn wait_for_commits(uncommitted: &mut VecDeque<Ack>, keep: usize) -> Result<(), String> {
    while uncommitted.len() > keep {
        let Some(ack) = uncommitted.pop_front() else {
            break;
        };
        match ack.await {
            Ok(r) => r?,
            Err(_) => return Err("the recorder stopped before committing".into()),
        }
    }
    Ok(())
}
