//! One worker per connection: it owns its SMTP session and its own queue of jobs.
//!
//! Nothing a worker awaits is behind a lock another task needs (the shutdown path in
//! particular): the worker selects on the shutdown signal itself, the way tokio's mini-redis
//! does. On shutdown it finishes the transaction in flight (bounded by `[smtp] timeout_secs`),
//! hands the jobs it has not started back to the queue, and waits for its outcomes to commit.
//!
//! One round trip per message: while a message goes to the relay, the worker has the next one
//! ready (checked and signed) when its queue holds one, so that its envelope goes in the same
//! write as this message's content (`Session::send_then`). Signing does not wait for the
//! worker: the dispatcher starts it when it claims the message ([`Content::Signing`]), so the
//! signing threads work through the queued messages while the connections wait for their
//! relays, and a worker finds its next message signed already. Not under `[sending]
//! rate_per_second`: there the cap sets the pace, and the next message would wait for the
//! limiter ahead of this one.
//!
//! The crash bound lives here (ARCHITECTURE promise 1: at most one repeat per connection):
//! before a worker sends a message's content, every outcome it submitted before is committed.
//! So at any moment at most one message of a connection can have reached the relay without a
//! committed outcome: the one being sent. The next message's envelope may be at the relay too,
//! but nothing is delivered before its content's final `.` (RFC 5321 §4.1.1.4) or its `BDAT
//! LAST` chunk (RFC 3030 §2), which waits for this message's commit. The price is one commit
//! per message on each connection's clock, beside its round trip; the recorder commits as soon
//! as a worker waits, whatever else has arrived with it.
//!
//! Relay limits ([`ConnectionLimit`]): a worker whose number is at or above the limit closes
//! its connection, gives its queued jobs back and waits until the limit rises; one that was
//! refused gives the message back and waits a little before it connects again. A worker
//! waiting for work watches the limit too: an idle connection over the limit would count
//! against the workers the relay still allows.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration as StdDuration, Instant};

use governor::DefaultDirectRateLimiter;
use tokio::sync::{OwnedSemaphorePermit, mpsc, oneshot, watch};

use super::pauses::Pauses;
use super::policy::{self, Judgement, Unreachable};
use super::recorder::{Ack, Record, Recorder};
use super::relay_limit::ConnectionLimit;
use crate::config::Sending;
use crate::domain::EmailAddress;
use crate::mail::dkim::Signing;
use crate::mail::transport::{Outgoing, SendError, Session, Transport};
use crate::store::{Item, Outcome, Store, Verdict};

/// A claimed message older than this is checked against the subscription again right before
/// it is sent (one that went straight through was checked by its claim).
pub(super) const RECHECK_AFTER: StdDuration = StdDuration::from_millis(250);

/// After a refusal, a worker waits this long before it connects again, doubling with each
/// refusal in a row up to [`REFUSED_WAIT_MAX`].
const REFUSED_WAIT: StdDuration = StdDuration::from_millis(200);
const REFUSED_WAIT_MAX: StdDuration = StdDuration::from_secs(5);

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
    pub content: Content,
    /// When the item was claimed (and its subscription checked).
    pub claimed_at: Instant,
    /// Holds one of the dispatcher's slots until the outcome is committed.
    pub permit: OwnedSemaphorePermit,
}

/// A job's message as the relay will get it, or on its way there.
pub(super) enum Content {
    /// Final: sent as it is.
    Final(Vec<u8>),
    /// Being signed (or waiting its turn) on the signing threads.
    Signing(Signing),
}

/// What every worker shares.
pub(super) struct Shared {
    pub transport: Arc<Transport>,
    pub limiter: Option<Arc<DefaultDirectRateLimiter>>,
    pub paused: Arc<Pauses>,
    pub unreachable: Unreachable,
    pub connections: Arc<ConnectionLimit>,
    pub store: Store,
    pub recorder: Recorder,
    pub sending: Sending,
}

/// A message that passed its checks, with its final (signed) bytes: ready for the relay.
struct Ready {
    job: Job,
    bytes: Vec<u8>,
}

/// What preparing a job came to.
enum Prepared {
    Ready(Ready),
    /// Not attempted, for this reason.
    Skip(Job, Verdict),
    /// Failed before it reached the relay (signing).
    Failed(Job, SendError),
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
    // The message after the one being sent, ready (and its envelope perhaps at the relay).
    let mut next: Option<Ready> = None;
    // Refusals in a row, and when this worker may connect again.
    let mut refusals: u32 = 0;
    let mut connect_after: Option<tokio::time::Instant> = None;
    // Changes of the limit, so that a worker waiting for work hears that it is over it.
    let mut limit = shared.connections.subscribe();
    let result = loop {
        // Seen before the check below: a change after it wakes the wait for a job.
        limit.borrow_and_update();
        if *shutdown.borrow() {
            if let Some(r) = next.take() {
                uncommitted.push_back(submit(&shared, r.job, Verdict::Released));
            }
            break Ok(());
        }
        if !shared.connections.allows(n) {
            if let Some(r) = next.take() {
                uncommitted.push_back(submit(&shared, r.job, Verdict::Released));
            }
            if let Some(s) = session.take() {
                s.close().await;
            }
            match park(n, &shared, &mut jobs, &mut shutdown, &mut uncommitted).await {
                Ok(Parked::Resume) => continue,
                Ok(Parked::Stop) => break Ok(()),
                Err(e) => break Err(e),
            }
        }
        let current = match next.take() {
            Some(r) => r,
            None => {
                // A worker whose queue is empty also wakes when the limit changes: one that
                // falls below its number must let go of its connection now, not after its next
                // job. The dispatcher gives it no more work, so it would hold an idle
                // connection the relay counts against us while the allowed workers are turned
                // away, and their refusals restart the quiet period the limit needs to rise:
                // nothing would be sent until `pause_after_secs` paused the edition.
                let job = tokio::select! {
                    biased;
                    _ = shutdown.wait_for(|s| *s) => break Ok(()),
                    Ok(()) = limit.changed() => continue,
                    job = jobs.recv() => job,
                };
                let Some(job) = job else { break Ok(()) };
                match prepare(&shared, job, &mut shutdown).await {
                    Prepared::Ready(r) => r,
                    other => {
                        uncommitted.push_back(settle(&shared, other));
                        continue;
                    }
                }
            }
        };
        // The next message, made ready now so that its envelope can go with this content.
        if shared.limiter.is_none() {
            while next.is_none()
                && !*shutdown.borrow()
                && let Ok(job) = jobs.try_recv()
            {
                match prepare(&shared, job, &mut shutdown).await {
                    Prepared::Ready(r) => next = Some(r),
                    other => uncommitted.push_back(settle(&shared, other)),
                }
            }
        }
        // The crash bound: every earlier outcome is committed before this message's content
        // can reach the relay, so a crash repeats at most this one.
        if let Err(e) = wait_for_commits(&shared.recorder, &mut uncommitted, 0).await {
            release(&shared, current.job);
            if let Some(r) = next.take() {
                release(&shared, r.job);
            }
            break Err(e);
        }
        if session.is_none()
            && let Some(at) = connect_after.take()
        {
            tokio::select! {
                biased;
                _ = shutdown.wait_for(|s| *s) => {
                    uncommitted.push_back(submit(&shared, current.job, Verdict::Released));
                    continue; // The top of the loop gives `next` back.
                }
                _ = tokio::time::sleep_until(at) => {}
            }
        }
        // The limit may have fallen below this worker while it prepared or waited: it does not
        // knock with a connection the relay would count against the others.
        if session.is_none() && !shared.connections.allows(n) {
            uncommitted.push_back(submit(&shared, current.job, Verdict::Released));
            continue; // The top of the loop gives `next` back and parks.
        }
        let epoch = shared.connections.epoch();
        let result = send_one(n, &shared, &mut session, &current, next.as_ref()).await;
        let result = shared.unreachable.judge_send(result);
        match &result {
            Err(e) if e.is_refusal() => {
                shared.connections.refused(epoch);
                refusals += 1;
                let wait = REFUSED_WAIT
                    .saturating_mul(1 << (refusals - 1).min(8))
                    .min(REFUSED_WAIT_MAX);
                connect_after = Some(tokio::time::Instant::now() + wait);
                // It would wait that long after its re-check: back through the queue instead.
                if let Some(r) = next.take() {
                    uncommitted.push_back(submit(&shared, r.job, Verdict::Released));
                }
            }
            Err(SendError::Fatal { .. }) => {
                // The edition pauses: what was made ready for it is not sent either.
                if let Some(r) = next.take() {
                    uncommitted.push_back(submit(&shared, r.job, Verdict::Released));
                }
            }
            _ => refusals = 0,
        }
        let (outcome, pause) = outcome_of(&current.job, result, &shared.sending);
        uncommitted.push_back(shared.recorder.submit(Record {
            outcome,
            edition_id: current.job.edition_id,
            pause,
            permit: Some(current.job.permit),
            ack: None,
        }));
    };
    // Jobs not started go back to the queue; then every outcome of this worker is committed
    // before it reports done.
    jobs.close();
    while let Ok(job) = jobs.try_recv() {
        uncommitted.push_back(submit(&shared, job, Verdict::Released));
    }
    let committed = wait_for_commits(&shared.recorder, &mut uncommitted, 0).await;
    if let Some(s) = session.take() {
        s.close().await;
    }
    result.and(committed)
}

/// How a parked worker's wait ended.
enum Parked {
    /// The limit rose to include it.
    Resume,
    /// Shutdown, or its queue closed.
    Stop,
}

/// Waits while worker `n` is over the connection limit, giving back whatever the dispatcher
/// still hands it; `Err` when the recorder failed.
async fn park(
    n: usize,
    shared: &Shared,
    jobs: &mut mpsc::Receiver<Job>,
    shutdown: &mut watch::Receiver<bool>,
    uncommitted: &mut VecDeque<Ack>,
) -> Result<Parked, String> {
    tracing::debug!(worker = n, "over the relay's connection limit; waiting");
    let mut limit = shared.connections.subscribe();
    loop {
        while let Ok(job) = jobs.try_recv() {
            uncommitted.push_back(submit(shared, job, Verdict::Released));
        }
        wait_for_commits(&shared.recorder, uncommitted, 0).await?;
        if shared.connections.allows(n) {
            tracing::debug!(worker = n, "the relay's connection limit rose; resuming");
            return Ok(Parked::Resume);
        }
        tokio::select! {
            biased;
            _ = shutdown.wait_for(|s| *s) => return Ok(Parked::Stop),
            changed = limit.changed() => if changed.is_err() { return Ok(Parked::Stop) },
            job = jobs.recv() => match job {
                Some(job) => uncommitted.push_back(submit(shared, job, Verdict::Released)),
                None => return Ok(Parked::Stop),
            },
            // The limit rises by itself after a quiet period, seen when someone looks.
            _ = tokio::time::sleep(super::relay_limit::QUIET) => {}
        }
    }
}

/// Readies a job for the relay: the paused check, the rate limit, the re-check of the
/// subscription and the signature.
async fn prepare(shared: &Shared, mut job: Job, shutdown: &mut watch::Receiver<bool>) -> Prepared {
    if let Some(e) = job.edition_id
        && shared.paused.contains(e)
    {
        return Prepared::Skip(job, Verdict::Released);
    }
    if let Some(l) = &shared.limiter {
        tokio::select! {
            biased;
            _ = shutdown.wait_for(|s| *s) => return Prepared::Skip(job, Verdict::Released),
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
                return Prepared::Skip(
                    job,
                    Verdict::Skipped {
                        reason: "unsubscribed before sending".into(),
                    },
                );
            }
            // Fail closed: when we cannot tell, the message is not sent.
            Err(e) => {
                tracing::warn!(error = %e, "cannot re-check the subscription; the message goes back to the queue");
                return Prepared::Skip(job, Verdict::Released);
            }
        }
    }
    // The bytes go to the relay from here; the job keeps what it needs to record the outcome.
    match std::mem::replace(&mut job.content, Content::Final(Vec::new())) {
        Content::Final(bytes) => Prepared::Ready(Ready { job, bytes }),
        // Signed on the pool's own threads, never on the async worker threads; usually done
        // by now (see the module's docs).
        Content::Signing(signing) => match signing.finish().await {
            Ok(bytes) => Prepared::Ready(Ready { job, bytes }),
            Err(e) => Prepared::Failed(
                job,
                SendError::Fatal {
                    reason: format!("DKIM signing failed: {e}"),
                },
            ),
        },
    }
}

/// Records what became of a job that did not reach the relay.
fn settle(shared: &Shared, prepared: Prepared) -> Ack {
    match prepared {
        Prepared::Ready(r) => submit(shared, r.job, Verdict::Released),
        Prepared::Skip(job, verdict) => submit(shared, job, verdict),
        Prepared::Failed(job, err) => {
            let (outcome, pause) = outcome_of(&job, Err(err), &shared.sending);
            shared.recorder.submit(Record {
                outcome,
                edition_id: job.edition_id,
                pause,
                permit: Some(job.permit),
                ack: None,
            })
        }
    }
}

async fn send_one(
    n: usize,
    shared: &Shared,
    session: &mut Option<Session>,
    current: &Ready,
    next: Option<&Ready>,
) -> Result<(), SendError> {
    let s = match session {
        Some(s) => s,
        None => {
            let s = shared.unreachable.judge(shared.transport.session().await)?;
            tracing::debug!(worker = n, "connected");
            session.insert(s)
        }
    };
    let msg = Outgoing {
        from: &current.job.envelope_from,
        to: &current.job.to,
        bytes: &current.bytes,
    };
    let next = next.map(|r| Outgoing {
        from: &r.job.envelope_from,
        to: &r.job.to,
        bytes: &r.bytes,
    });
    let r = s.send_then(msg, next).await;
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
            tracing::warn!(recipient_domain = %domain, message_id = %mid, %reply, "hard bounce");
        }
        Verdict::Failed { reply } => {
            tracing::warn!(recipient_domain = %domain, message_id = %mid, attempt = job.attempt, %reply, "failed");
        }
        Verdict::Retry { reply, .. } => {
            tracing::warn!(recipient_domain = %domain, message_id = %mid, attempt = job.attempt, error = %reply, "temporary failure");
        }
        Verdict::Released | Verdict::Skipped { .. } => match result {
            // The connection limit says so once, for all of them.
            Err(e) if e.is_refusal() => {
                tracing::debug!(recipient_domain = %domain, message_id = %mid, error = %e, "refused; back to the queue");
            }
            Err(e) => {
                tracing::warn!(recipient_domain = %domain, message_id = %mid, error = %e, "not sent");
            }
            Ok(()) => {}
        },
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

/// Waits until at most `keep` outcomes are uncommitted, telling the recorder to commit what it
/// has gathered when one is not committed yet.
async fn wait_for_commits(
    recorder: &Recorder,
    uncommitted: &mut VecDeque<Ack>,
    keep: usize,
) -> Result<(), String> {
    let stopped = || "the recorder stopped before committing".to_string();
    while uncommitted.len() > keep {
        let Some(mut ack) = uncommitted.pop_front() else {
            break;
        };
        match ack.try_recv() {
            Ok(r) => r?,
            Err(oneshot::error::TryRecvError::Empty) => {
                recorder.hurry();
                ack.await.map_err(|_| stopped())??;
            }
            Err(oneshot::error::TryRecvError::Closed) => return Err(stopped()),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};

    use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
    use tokio::net::TcpListener;
    use tokio::sync::Semaphore;

    use super::*;
    use crate::config::{Config, Security, TransportKind};
    use crate::delivery::Progress;

    /// A relay without PIPELINING that takes every message and counts the connections open
    /// and the messages taken (RFC 5321 §4.1.1's commands in lockstep, nothing more).
    struct Relay {
        port: u16,
        open: Arc<AtomicUsize>,
        taken: Arc<AtomicUsize>,
    }

    async fn relay() -> Relay {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let open = Arc::new(AtomicUsize::new(0));
        let taken = Arc::new(AtomicUsize::new(0));
        let (o, t) = (open.clone(), taken.clone());
        tokio::spawn(async move {
            while let Ok((sock, _)) = listener.accept().await {
                let (o, t) = (o.clone(), t.clone());
                o.fetch_add(1, SeqCst);
                tokio::spawn(async move {
                    let (r, mut w) = sock.into_split();
                    let mut lines = BufReader::new(r).lines();
                    let _ = w.write_all(b"220 relay.invalid ESMTP\r\n").await;
                    let mut in_data = false;
                    while let Ok(Some(line)) = lines.next_line().await {
                        let reply: &[u8] = if in_data {
                            if line != "." {
                                continue;
                            }
                            in_data = false;
                            t.fetch_add(1, SeqCst);
                            b"250 2.0.0 queued\r\n"
                        } else {
                            match line.get(..4).map(str::to_ascii_uppercase).as_deref() {
                                Some("DATA") => {
                                    in_data = true;
                                    b"354 go ahead\r\n"
                                }
                                Some("QUIT") => {
                                    let _ = w.write_all(b"221 bye\r\n").await;
                                    break;
                                }
                                _ => b"250 ok\r\n",
                            }
                        };
                        if w.write_all(reply).await.is_err() {
                            break;
                        }
                    }
                    o.fetch_sub(1, SeqCst);
                });
            }
        });
        Relay { port, open, taken }
    }

    async fn until(what: &str, cond: impl Fn() -> bool) {
        // A guard against a hang, not a timing assertion: the condition holds within
        // milliseconds when the worker behaves.
        let waited = tokio::time::timeout(StdDuration::from_secs(20), async {
            while !cond() {
                tokio::time::sleep(StdDuration::from_millis(10)).await;
            }
        })
        .await;
        assert!(waited.is_ok(), "{what}");
    }

    /// The lost wake-up behind a rare hang of `tests/relay_limits.rs`: a worker waiting for
    /// work with its connection open was not told that the limit fell below its number, so
    /// it kept the connection the relay counted against us, and the allowed workers were
    /// turned away until the edition paused.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn an_idle_worker_over_a_lowered_limit_closes_its_connection_at_once() {
        let relay = relay().await;
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("dispatch.db")).await.unwrap();
        let mut config = Config::default();
        config.delivery.transport = TransportKind::Smtp;
        config.smtp.host = "127.0.0.1".into();
        config.smtp.port = relay.port;
        config.smtp.security = Security::None;
        config.smtp.timeout_secs = 5;
        let paused: Arc<Pauses> = Arc::default();
        let (recorder, recorder_task) = Recorder::start(
            store.clone(),
            3,
            paused.clone(),
            Arc::new(Progress::default()),
            2,
        );
        let connections = Arc::new(ConnectionLimit::new(2));
        let shared = Arc::new(Shared {
            transport: Arc::new(Transport::from_config(&config).unwrap()),
            limiter: None,
            paused,
            unreachable: Unreachable::new(StdDuration::from_secs(300)),
            connections: connections.clone(),
            store,
            recorder,
            sending: config.sending.clone(),
        });
        let (jobs_tx, jobs_rx) = mpsc::channel(4);
        let (stop_tx, stop_rx) = watch::channel(false);
        let worker = tokio::spawn(run(1, shared.clone(), jobs_rx, stop_rx));

        let permits = Arc::new(Semaphore::new(1));
        let job = Job {
            // No such row: recording its outcome changes nothing, which is all this needs.
            item: Item::Delivery {
                id: 1,
                subscriber_id: 1,
            },
            edition_id: None,
            attempt: 1,
            to: EmailAddress::parse("reader@example.org").unwrap(),
            envelope_from: EmailAddress::parse("news@example.com").unwrap(),
            message_id: "<1@example.com>".into(),
            content: Content::Final(b"Subject: today\r\n\r\nThe news.\r\n".to_vec()),
            claimed_at: Instant::now(),
            permit: permits.clone().acquire_owned().await.unwrap(),
        };
        jobs_tx.send(job).await.unwrap();
        until("the worker sends its message", || {
            relay.taken.load(SeqCst) == 1
        })
        .await;
        // Committed, and the worker waits for work with its connection open.
        until("the outcome is committed", || {
            permits.available_permits() == 1
        })
        .await;
        assert_eq!(relay.open.load(SeqCst), 1);

        // Another worker is turned away: the limit falls to one, below worker 1.
        connections.refused(connections.epoch());
        until("worker 1 lets go of its connection", || {
            relay.open.load(SeqCst) == 0
        })
        .await;

        stop_tx.send(true).unwrap();
        worker.await.unwrap().unwrap();
        drop(shared);
        recorder_task.await.unwrap().unwrap();
    }
}
