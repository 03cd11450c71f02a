//! Committing outcomes: one task owns the writes, and commits whatever has arrived together.
//!
//! Every worker hands each message's outcome here and, before it sends the next message's
//! content, waits for the commit (see `worker`). That bounds what a crash can repeat to the
//! messages whose outcome was not yet committed: at most one per connection, the one being
//! sent. The bound is the workers' wait, so the recorder is free to choose when to commit, and
//! it groups outcomes across connections: it gathers until it holds one per connection, a
//! worker waits for one ([`Recorder::hurry`]), or the first has waited [`GATHER`]; then it
//! commits every outcome that has arrived (up to [`MAX_GROUP`]). Each transaction costs SQLite
//! a write of every page it touched, whatever the number of rows, so the outcomes that arrive
//! while a commit runs wait for the next one and share it.

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::time::Duration as StdDuration;

use tokio::sync::{Notify, OwnedSemaphorePermit, mpsc, oneshot};

use super::pauses::Pauses;
use super::{Progress, Report};
use crate::domain::EditionStatus;
use crate::store::{Item, Outcome, Store, StoreError, Verdict};

/// Most outcomes one transaction commits.
pub(super) const MAX_GROUP: usize = 512;
/// How long the recorder gathers outcomes, at most, when no worker waits for them (skips at
/// the claim, messages given back): short beside a commit's cost in the edition's progress. A
/// sent message's worker waits for its commit at once and cuts the gathering short.
pub(super) const GATHER: StdDuration = StdDuration::from_millis(4);
/// How often editions touched by recent outcomes are checked for being finished.
const FINISH_CHECK: StdDuration = StdDuration::from_millis(200);
/// A commit that fails is tried again this many times (with a short pause) before the
/// recorder gives up and the run stops with the error.
const COMMIT_TRIES: u32 = 5;

/// The recorder's answer to one outcome: committed, or why not.
pub(super) type Ack = oneshot::Receiver<Result<(), String>>;

/// One outcome waiting to be committed.
pub(super) struct Record {
    pub outcome: Outcome,
    /// The edition a delivery belongs to (`None` for transactional mail).
    pub edition_id: Option<i64>,
    /// Pause this edition (with this reason) in the same pass.
    pub pause: Option<(i64, String)>,
    /// Released once committed, which tells the dispatcher the slot is free again.
    pub permit: Option<OwnedSemaphorePermit>,
    pub ack: Option<oneshot::Sender<Result<(), String>>>,
}

/// A handle for submitting outcomes.
#[derive(Clone)]
pub(super) struct Recorder {
    tx: mpsc::UnboundedSender<Record>,
    /// Someone waits for a commit: stop gathering.
    hurry: Arc<Notify>,
}

impl Recorder {
    /// Starts the recording task for `connections` sending connections; it ends when every
    /// handle is dropped, returning the run's report, or the error that stopped it.
    pub(super) fn start(
        store: Store,
        bounce_threshold: u32,
        paused: Arc<Pauses>,
        progress: Arc<Progress>,
        connections: usize,
    ) -> (Self, tokio::task::JoinHandle<Result<Report, String>>) {
        // Unbounded is safe here: every record carries a permit or comes from a claim, so what
        // can wait is bounded by the dispatcher's permits and one claim batch.
        let (tx, rx) = mpsc::unbounded_channel();
        let hurry = Arc::new(Notify::new());
        // No connection has more than one outcome waiting (`worker`), so more never gather.
        let gather = connections.clamp(1, MAX_GROUP);
        let task = tokio::spawn(run(
            store,
            bounce_threshold,
            paused,
            progress,
            rx,
            Arc::clone(&hurry),
            gather,
        ));
        (Self { tx, hurry }, task)
    }

    /// Commits what has been gathered now: the caller is about to wait for an outcome it
    /// submitted.
    pub(super) fn hurry(&self) {
        self.hurry.notify_one();
    }

    /// Queues a record; the returned ack resolves once it is committed.
    pub(super) fn submit(&self, mut record: Record) -> Ack {
        let (ack_tx, ack_rx) = oneshot::channel();
        record.ack = Some(ack_tx);
        if let Err(mpsc::error::SendError(r)) = self.tx.send(record)
            && let Some(ack) = r.ack
        {
            let _ = ack.send(Err("the recorder has stopped".into()));
        }
        ack_rx
    }

    /// Queues an outcome nobody waits for (claim-time skips).
    pub(super) fn submit_quiet(&self, outcome: Outcome, edition_id: Option<i64>) {
        let _ = self.tx.send(Record {
            outcome,
            edition_id,
            pause: None,
            permit: None,
            ack: None,
        });
    }
}

async fn run(
    store: Store,
    bounce_threshold: u32,
    paused: Arc<Pauses>,
    progress: Arc<Progress>,
    mut rx: mpsc::UnboundedReceiver<Record>,
    hurry: Arc<Notify>,
    gather: usize,
) -> Result<Report, String> {
    let mut report = Report::default();
    let mut group: Vec<Record> = Vec::with_capacity(MAX_GROUP);
    let mut outcomes: Vec<Outcome> = Vec::with_capacity(MAX_GROUP);
    let mut touched: HashSet<i64> = HashSet::new();
    let mut last_finish = tokio::time::Instant::now();
    loop {
        let first = if touched.is_empty() {
            rx.recv().await
        } else {
            // Something may have finished: look again after FINISH_CHECK at the latest.
            match tokio::time::timeout(FINISH_CHECK, rx.recv()).await {
                Ok(r) => r,
                Err(_) => {
                    finish_touched(&store, &mut touched).await?;
                    last_finish = tokio::time::Instant::now();
                    continue;
                }
            }
        };
        let Some(first) = first else { break };
        group.push(first);
        let until = tokio::time::Instant::now() + GATHER;
        let mut done = false;
        loop {
            // Last, after the wait ends too: what the hurrying worker submitted is in.
            while group.len() < MAX_GROUP {
                match rx.try_recv() {
                    Ok(r) => group.push(r),
                    Err(_) => break,
                }
            }
            if done || group.len() >= gather {
                break;
            }
            // A hurry left from a wait the previous commit ended only makes this group
            // smaller.
            tokio::select! {
                biased;
                _ = hurry.notified() => done = true,
                r = rx.recv() => match r {
                    Some(r) => group.push(r),
                    None => done = true,
                },
                _ = tokio::time::sleep_until(until) => done = true,
            }
        }

        // Pauses first: a pause that cannot be recorded must stop the run, not loop.
        for r in &group {
            if let Some((edition, reason)) = &r.pause
                && paused.begin(*edition)
            {
                pause(&store, *edition, reason).await?;
                paused.committed(*edition);
            }
        }

        outcomes.clear();
        outcomes.extend(group.iter().map(|r| r.outcome.clone()));
        let mut tries = 0;
        let started = std::time::Instant::now();
        // An API call waiting for the writer goes first (`Store::yield_to_interactive`); the
        // workers wait for this commit only by count, so the crash bound is unchanged.
        store.yield_to_interactive().await;
        let committed = loop {
            match store.record_outcomes(&outcomes, bounce_threshold).await {
                Ok(()) => break Ok(()),
                Err(e) if tries + 1 < COMMIT_TRIES => {
                    tries += 1;
                    tracing::warn!(error = %e, attempt = tries, "recording outcomes failed; trying again");
                    tokio::time::sleep(StdDuration::from_millis(100 * u64::from(tries))).await;
                }
                Err(e) => break Err(format!("recording delivery outcomes failed: {e}")),
            }
        };
        // How long the writer was ours (waiting for it included), to weigh against the
        // interactive writes that queue behind it.
        tracing::debug!(
            outcomes = outcomes.len(),
            took_us = started.elapsed().as_micros() as u64,
            "outcomes committed"
        );
        for r in group.drain(..) {
            if committed.is_ok() {
                count(&mut report, &progress, &r.outcome);
                if let Some(e) = r.edition_id {
                    touched.insert(e);
                }
            }
            drop(r.permit);
            if let Some(ack) = r.ack {
                let _ = ack.send(committed.clone());
            }
        }
        committed?;
        if !touched.is_empty() && last_finish.elapsed() >= FINISH_CHECK {
            finish_touched(&store, &mut touched).await?;
            last_finish = tokio::time::Instant::now();
        }
    }
    finish_touched(&store, &mut touched).await?;
    Ok(report)
}

/// Records that an edition is paused. An edition that is already final (cancelled meanwhile)
/// needs no pause; any other failure is an error.
async fn pause(store: &Store, edition: i64, reason: &str) -> Result<(), String> {
    // Stored as the status reason: `editions show` prints it after the status
    // ("status   paused: {why}"), so it does not repeat "paused".
    let why = format!("{reason}; fix the cause, then run `dispatch editions resume {edition}`");
    tracing::error!(edition, %reason, "pausing the edition: every message would fail");
    match store
        .set_edition_status(edition, EditionStatus::Paused, Some(&why))
        .await
    {
        Ok(()) | Err(StoreError::Conflict(_)) => Ok(()),
        Err(e) => Err(format!(
            "recording the pause of edition #{edition} failed: {e}"
        )),
    }
}

async fn finish_touched(store: &Store, touched: &mut HashSet<i64>) -> Result<(), String> {
    for id in touched.drain() {
        store.yield_to_interactive().await;
        match store.finish_edition_if_done(id).await {
            Ok(true) => tracing::info!(edition = id, "edition sent"),
            Ok(false) => {}
            Err(e) => return Err(format!("finishing edition #{id} failed: {e}")),
        }
    }
    Ok(())
}

fn count(report: &mut Report, progress: &Progress, o: &Outcome) {
    let mail = matches!(o.item, Item::Mail { .. });
    match &o.verdict {
        Verdict::Sent if mail => report.mail_sent += 1,
        Verdict::Sent => {
            report.sent += 1;
            progress.sent.fetch_add(1, Relaxed);
        }
        Verdict::Retry { .. } => report.retry_later += 1,
        Verdict::Failed { .. } if mail => report.mail_failed += 1,
        Verdict::Failed { .. } => {
            report.failed += 1;
            progress.failed.fetch_add(1, Relaxed);
        }
        Verdict::Bounced { .. } => {
            report.bounced += 1;
            progress.failed.fetch_add(1, Relaxed);
        }
        Verdict::Skipped { .. } if mail => {}
        Verdict::Skipped { .. } => report.skipped += 1,
        Verdict::Released => {}
    }
}
