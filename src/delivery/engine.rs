//! The dispatcher: registers this process, claims work, feeds the workers, and stops cleanly.

use std::sync::Arc;
use std::time::{Duration as StdDuration, Instant};

use anyhow::{Context as _, Result, anyhow};
use chrono::{Duration, Utc};
use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc, watch};

use super::messages::{self, Renderings};
use super::owner::{self, Liveness};
use super::pauses::Pauses;
use super::policy::Unreachable;
use super::recorder::Recorder;
use super::relay_limit::ConnectionLimit;
use super::worker::{self, Content, Job, Shared};
use super::{Mode, Progress, Report, Scope};
use crate::config::Config;
use crate::mail::dkim::{DkimSigner, SigningPool};
use crate::mail::transport::Transport;
use crate::mail::verp::VerpItem;
use crate::store::{Item, Outcome, SenderId, Store, Verdict};

/// Jobs waiting in one worker's queue, at most. Claimed work waits here, not in the database:
/// enough to keep a connection busy while the dispatcher claims more, few enough that a
/// shutdown has little to give back. A worker holds up to four more (the message at the
/// relay, the next one whose envelope rides with it, two outcomes committing) and the
/// dispatcher claims when half the slots (at most [`MAX_CLAIM`]) are free: with 16, a queue
/// still holds a few jobs when the claim starts, so the next message is always there to go
/// ahead.
const PREFETCH: usize = 16;
/// Deliveries one claim takes at most. A claim holds SQLite's one writer while it checks and
/// leases its rows (and makes first tokens): 64 at once held it for 10 ms (50 ms under load)
/// and an API write queued behind it; 16 keep that short, at a few more claims per second.
const MAX_CLAIM: usize = 16;
/// Workers for the file and stub transports, which have no connections to share out.
const LOCAL_WORKERS: usize = 2;
/// How often an idle dispatcher with queued transactional mail looks for it.
const MAIL_CHECK: StdDuration = StdDuration::from_millis(250);
/// A daemon with nothing to send polls quickly right after work, then settles.
const NAP_BUSY: StdDuration = StdDuration::from_millis(100);
const NAP_IDLE: StdDuration = StdDuration::from_secs(1);
const BUSY_FOR: StdDuration = StdDuration::from_secs(2);
/// While work is outstanding, the dispatcher looks again this often.
const NAP_OUTSTANDING: StdDuration = StdDuration::from_millis(20);
/// After a shutdown signal, in-flight transactions get `[smtp] timeout_secs` plus this.
const SHUTDOWN_GRACE: StdDuration = StdDuration::from_secs(1);

/// The sending engine; one per process.
pub struct Engine {
    store: Store,
    config: Arc<Config>,
    transport: Arc<Transport>,
    signer: Option<SigningPool>,
    limiter: Option<Arc<DefaultDirectRateLimiter>>,
    progress: Arc<Progress>,
}

impl Engine {
    /// An engine for `config`, sending through `transport`. Loads the DKIM key when `[dkim]`
    /// is set, so a bad key fails here, before anything is recorded.
    pub fn new(store: Store, config: Arc<Config>, transport: Transport) -> Result<Self> {
        let signer = match &config.dkim {
            // One signing thread per core: RSA signing is CPU work, and more threads than
            // cores would only queue in the scheduler.
            Some(d) => Some(
                SigningPool::new(
                    DkimSigner::from_config(d).context("loading the DKIM key")?,
                    None,
                )
                .context("starting the DKIM signing threads")?,
            ),
            None => None,
        };
        // A burst of one: `Quota::per_second(r)` alone also allows a burst of `r`, so the
        // first second of a run sent up to 2r - 1 messages, over the configured cap.
        let limiter = std::num::NonZeroU32::new(config.sending.rate_per_second).map(|r| {
            Arc::new(RateLimiter::direct(
                Quota::per_second(r).allow_burst(std::num::NonZeroU32::MIN),
            ))
        });
        Ok(Self {
            store,
            config,
            transport: Arc::new(transport),
            signer,
            limiter,
            progress: Arc::new(Progress::default()),
        })
    }

    /// Live counters, for a progress bar.
    pub fn progress(&self) -> Arc<Progress> {
        Arc::clone(&self.progress)
    }

    /// Sends what is due in `scope` (editions in `sending` state, breaking news first, and
    /// transactional mail ahead of both) until `mode` says stop or `shutdown` turns true.
    ///
    /// On shutdown no more work is claimed, messages not yet started go back to the queue,
    /// transactions in flight finish (bounded by `[smtp] timeout_secs`), every outcome is
    /// committed, and the call returns.
    pub async fn run(
        &self,
        scope: impl Into<Scope>,
        mode: Mode,
        shutdown: watch::Receiver<bool>,
    ) -> Result<Report> {
        let scope = scope.into();
        let who = owner::current(Some(&self.config.node.name_or_host()));
        let me = self
            .store
            .register_sender(&who)
            .await
            .context("registering this sender")?;
        tracing::debug!(sender = me.0, "registered");
        let result = self.run_as(me, &who.host, &scope, mode, shutdown).await;
        // Whatever is still leased to us goes back to the queue, even after an error.
        match self.store.deregister_sender(me).await {
            Ok(freed) if freed.deliveries + freed.mail > 0 => {
                tracing::info!(
                    deliveries = freed.deliveries,
                    mail = freed.mail,
                    "gave unsent work back to the queue"
                );
            }
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "could not deregister; our leases will run out"),
        }
        result
    }

    async fn run_as(
        &self,
        me: SenderId,
        host: &str,
        scope: &Scope,
        mode: Mode,
        mut shutdown: watch::Receiver<bool>,
    ) -> Result<Report> {
        let lease = Duration::seconds(i64::try_from(self.config.sending.lease_secs)?);
        take_over_dead(&self.store, me, host, lease).await?;

        let workers = match &*self.transport {
            Transport::Smtp(_) => self.config.smtp.connections as usize,
            _ => LOCAL_WORKERS,
        };
        let slots = workers * PREFETCH;
        let batch = (slots / 2).clamp(1, MAX_CLAIM);
        let permits = Arc::new(Semaphore::new(slots));
        let paused: Arc<Pauses> = Arc::default();
        let (recorder, recorder_task) = Recorder::start(
            self.store.clone(),
            self.config.bounces.hard_threshold,
            Arc::clone(&paused),
            Arc::clone(&self.progress),
            workers,
        );

        // Workers stop on the caller's shutdown, or when the dispatcher fails.
        let (stop_tx, stop_rx) = watch::channel(false);
        let forward = {
            let stop_tx = stop_tx.clone();
            let mut shutdown = shutdown.clone();
            tokio::spawn(async move {
                if shutdown.wait_for(|s| *s).await.is_ok() {
                    let _ = stop_tx.send(true);
                }
            })
        };

        let connections = Arc::new(ConnectionLimit::new(workers));
        let shared = Arc::new(Shared {
            transport: Arc::clone(&self.transport),
            limiter: self.limiter.clone(),
            paused: Arc::clone(&paused),
            unreachable: Unreachable::new(StdDuration::from_secs(
                self.config.sending.pause_after_secs,
            )),
            connections: Arc::clone(&connections),
            store: self.store.clone(),
            recorder: recorder.clone(),
            sending: self.config.sending.clone(),
        });
        let mut queues = Vec::with_capacity(workers);
        let mut handles = Vec::with_capacity(workers);
        for n in 0..workers {
            let (tx, rx) = mpsc::channel::<Job>(PREFETCH);
            queues.push(tx);
            handles.push(tokio::spawn(worker::run(
                n,
                Arc::clone(&shared),
                rx,
                stop_rx.clone(),
            )));
        }
        drop(shared);

        let heartbeat = tokio::spawn(heartbeat(self.store.clone(), me, host.to_owned(), lease));

        let mut dispatch = Dispatch {
            engine: self,
            me,
            lease,
            scope,
            batch,
            paused: &paused,
            recorder: &recorder,
            connections: &connections,
            renderings: Renderings::default(),
            scratch: Vec::new(),
            claim_report: Report::default(),
            last_mail_check: None,
        };
        let dispatched = dispatch
            .run(&queues, &permits, slots, mode, &mut shutdown)
            .await;
        let claim_report = std::mem::take(&mut dispatch.claim_report);
        drop(dispatch);

        // Stop: workers finish (or give back) what they hold. After a shutdown signal or an
        // error they get the SMTP timeout to finish a transaction in flight, no more.
        if dispatched.is_err() {
            let _ = stop_tx.send(true);
        }
        drop(queues);
        let stopping = *stop_rx.borrow();
        let deadline = stopping.then(|| {
            tokio::time::Instant::now()
                + StdDuration::from_secs(self.config.smtp.timeout_secs)
                + SHUTDOWN_GRACE
        });
        let mut worker_error = None;
        for h in handles {
            let joined = match deadline {
                Some(d) => match tokio::time::timeout_at(d, h).await {
                    Ok(j) => j,
                    Err(_) => {
                        tracing::warn!(
                            "a transaction did not finish in time; its message goes back to the queue"
                        );
                        continue;
                    }
                },
                // A worker's last jobs finish on their own timeouts.
                None => h.await,
            };
            match joined {
                Ok(Ok(())) => {}
                Ok(Err(e)) => worker_error = Some(e),
                Err(e) => worker_error = Some(format!("a sender worker failed: {e}")),
            }
        }
        heartbeat.abort();
        forward.abort();
        drop(recorder);
        let recorded = recorder_task
            .await
            .map_err(|e| anyhow!("the recorder task failed: {e}"))?;
        dispatched?;
        if let Some(e) = worker_error {
            return Err(anyhow!(e));
        }
        let mut report = recorded.map_err(|e| anyhow!(e))?;
        report.skipped += claim_report.skipped;
        report.failed += claim_report.failed;
        for id in paused.ids() {
            if let Ok(e) = self.store.edition(id).await {
                report
                    .paused
                    .push((id, e.status_reason.unwrap_or_default()));
            }
        }
        report.paused.sort();
        Ok(report)
    }
}

/// The dispatcher's state for one run.
struct Dispatch<'a> {
    engine: &'a Engine,
    me: SenderId,
    lease: Duration,
    scope: &'a Scope,
    batch: usize,
    paused: &'a Arc<Pauses>,
    recorder: &'a Recorder,
    /// Which workers may hold a connection: only they are given work.
    connections: &'a ConnectionLimit,
    renderings: Renderings,
    scratch: Vec<u8>,
    /// Skips and failures found while claiming (written by the claim itself).
    claim_report: Report,
    last_mail_check: Option<Instant>,
}

impl Dispatch<'_> {
    async fn run(
        &mut self,
        queues: &[mpsc::Sender<Job>],
        permits: &Arc<Semaphore>,
        slots: usize,
        mode: Mode,
        shutdown: &mut watch::Receiver<bool>,
    ) -> Result<()> {
        let mut idle_since: Option<tokio::time::Instant> = None;
        loop {
            if *shutdown.borrow() {
                return Ok(());
            }
            // With every worker allowed a connection, the slots in the queues add up to the
            // permits, so there is room for whatever the permits let us claim. While the relay
            // allows fewer, claim only what the allowed workers have room for.
            let open = queues.iter().filter(|q| !q.is_closed()).count();
            anyhow::ensure!(open > 0, "every sender worker has stopped");
            let want = if self.active(queues).count() < open {
                let free: usize = self.active(queues).map(|(_, q)| q.capacity()).sum();
                if free == 0 {
                    tokio::select! {
                        _ = tokio::time::sleep(NAP_OUTSTANDING) => continue,
                        _ = shutdown.wait_for(|s| *s) => return Ok(()),
                    }
                }
                self.batch.min(free)
            } else {
                self.batch
            } as u32;
            let room = tokio::select! {
                biased;
                _ = shutdown.wait_for(|s| *s) => return Ok(()),
                p = Arc::clone(permits).acquire_many_owned(want) => p?,
            };
            let jobs = self.claim(room).await?;
            if !jobs.is_empty() {
                idle_since = None;
                for job in jobs {
                    self.hand_out(queues, job);
                }
                continue;
            }
            // Nothing to claim. While outcomes are outstanding, wait for them: they may
            // finish the edition, or bring retries due soon.
            let nap = if permits.available_permits() < slots {
                NAP_OUTSTANDING
            } else {
                match mode {
                    Mode::UntilIdle { wait_for_retries } => {
                        match self.engine.next_due(self.scope).await? {
                            Some(d)
                                if d <= Utc::now()
                                    + Duration::from_std(wait_for_retries).unwrap_or_default() =>
                            {
                                (d - Utc::now())
                                    .to_std()
                                    .unwrap_or_default()
                                    .max(StdDuration::from_millis(50))
                            }
                            _ => return Ok(()),
                        }
                    }
                    Mode::Forever => {
                        let since = *idle_since.get_or_insert_with(tokio::time::Instant::now);
                        if since.elapsed() < BUSY_FOR {
                            NAP_BUSY
                        } else {
                            NAP_IDLE
                        }
                    }
                }
            };
            tokio::select! {
                _ = tokio::time::sleep(nap) => {}
                _ = shutdown.wait_for(|s| *s) => return Ok(()),
            }
        }
    }

    /// The queues of the workers allowed a connection, with their numbers.
    fn active<'q>(
        &self,
        queues: &'q [mpsc::Sender<Job>],
    ) -> impl Iterator<Item = (usize, &'q mpsc::Sender<Job>)> {
        queues
            .iter()
            .enumerate()
            .filter(|(n, q)| !q.is_closed() && self.connections.allows(*n))
    }

    /// Gives `job` to the allowed worker with the most room. The claim took no more than the
    /// allowed workers had room for, but the limit may have fallen since: then any worker
    /// with room takes it (one over the limit gives it back), and with none it goes back to
    /// the queue at once.
    fn hand_out(&self, queues: &[mpsc::Sender<Job>], job: Job) {
        let best = self
            .active(queues)
            .map(|(_, q)| q)
            .max_by_key(|q| q.capacity())
            .filter(|q| q.capacity() > 0)
            .or_else(|| {
                queues
                    .iter()
                    .filter(|q| !q.is_closed())
                    .max_by_key(|q| q.capacity())
            });
        let job = match best {
            Some(q) => match q.try_send(job) {
                Ok(()) => return,
                Err(e) => e.into_inner(),
            },
            None => job,
        };
        drop(self.recorder.submit(super::recorder::Record {
            outcome: Outcome {
                item: job.item,
                verdict: Verdict::Released,
            },
            edition_id: job.edition_id,
            pause: None,
            permit: Some(job.permit),
            ack: None,
        }));
    }

    /// Claims the next batch of work into jobs, one permit each: transactional mail first,
    /// then the highest-priority edition that has work. Empty when nothing is due.
    async fn claim(&mut self, mut room: OwnedSemaphorePermit) -> Result<Vec<Job>> {
        let store = &self.engine.store;
        let limit = room.num_permits() as i64;
        let mut jobs = Vec::new();

        let mail_check_due = self
            .last_mail_check
            .is_none_or(|t| t.elapsed() >= MAIL_CHECK);
        if self.scope.mail() && mail_check_due {
            self.last_mail_check = Some(Instant::now());
            if store.mail_due().await? {
                for m in store.claim_mail(limit, self.lease, self.me).await? {
                    let Some(permit) = room.split(1) else { break };
                    let (bytes, message_id) = messages::transactional(&self.engine.config, &m)?;
                    let envelope_from = messages::envelope_from(
                        &self.engine.config,
                        store,
                        VerpItem::Mail { id: m.id },
                    );
                    jobs.push(Job {
                        item: Item::Mail { id: m.id },
                        edition_id: None,
                        attempt: m.attempt,
                        to: m.to,
                        envelope_from,
                        message_id,
                        content: self.engine.content(bytes),
                        claimed_at: Instant::now(),
                        permit,
                    });
                }
                if !jobs.is_empty() {
                    return Ok(jobs);
                }
            }
        }

        let read_at = Instant::now();
        let editions = store.editions_sending().await?;
        // An edition paused by this engine and seen sending again was resumed
        // (`dispatch editions resume`): stop giving its messages back.
        self.paused
            .forget_resumed(|id| editions.iter().any(|e| e.id == id), read_at);
        self.renderings.retain(&editions);
        for e in editions {
            let skip = !self.scope.edition(e.id) || self.paused.contains(e.id);
            if skip {
                continue;
            }
            let started = Instant::now();
            store.yield_to_interactive().await;
            let (claimed, skips) = store
                .claim_deliveries(e.id, e.list_id, limit, self.lease, self.me)
                .await?;
            // Like the recorder's commits, a claim holds SQLite's one writer.
            tracing::debug!(
                claimed = claimed.len(),
                took_us = started.elapsed().as_micros() as u64,
                "deliveries claimed"
            );
            self.claim_report.skipped += skips.unwanted;
            self.claim_report.failed += skips.invalid;
            if claimed.is_empty() {
                if store.finish_edition_if_done(e.id).await? {
                    tracing::info!(edition = e.id, "edition sent");
                }
                continue;
            }
            for c in claimed {
                let item = Item::Delivery {
                    id: c.delivery_id,
                    subscriber_id: c.subscriber_id,
                };
                let template = self
                    .renderings
                    .template(store, &self.engine.config, &e, c.categories.as_deref())
                    .await?;
                let Some(template) = template else {
                    self.recorder.submit_quiet(
                        Outcome {
                            item,
                            verdict: Verdict::Skipped {
                                reason: "no stories in the reader's chosen categories".into(),
                            },
                        },
                        Some(e.id),
                    );
                    continue;
                };
                let Some(permit) = room.split(1) else { break };
                let message_id =
                    messages::personalise(store.verp_key(), &e, &c, &template, &mut self.scratch);
                let envelope_from = messages::envelope_from(
                    &self.engine.config,
                    store,
                    VerpItem::Delivery {
                        edition_id: e.id,
                        subscriber_id: c.subscriber_id,
                    },
                );
                jobs.push(Job {
                    item,
                    edition_id: Some(e.id),
                    attempt: c.attempt,
                    to: c.email,
                    envelope_from,
                    message_id,
                    content: self.engine.content(self.scratch.clone()),
                    claimed_at: Instant::now(),
                    permit,
                });
            }
            return Ok(jobs);
        }
        Ok(jobs)
    }
}

impl Engine {
    /// A claimed message's content: with DKIM, handed to the signing threads now, so that
    /// they sign the messages queued for the workers while the connections wait for their
    /// relays (the worker waits only when it finds its message not signed yet).
    fn content(&self, bytes: Vec<u8>) -> Content {
        match &self.signer {
            Some(pool) => Content::Signing(pool.start(bytes)),
            None => Content::Final(bytes),
        }
    }

    /// The earliest time queued work of the scope's editions becomes due.
    async fn next_due(&self, scope: &Scope) -> Result<Option<chrono::DateTime<Utc>>> {
        let mut best = None;
        for e in self.store.editions_sending().await? {
            if !scope.edition(e.id) {
                continue;
            }
            if let Some(d) = self.store.next_due(e.id).await? {
                best = Some(best.map_or(d, |b: chrono::DateTime<Utc>| b.min(d)));
            }
        }
        Ok(best)
    }
}

/// Takes over the work of senders that are gone: on this host, those whose process no longer
/// exists; anywhere, those that missed their heartbeats for a whole lease (their leases have
/// run out already; this also clears their registration).
async fn take_over_dead(store: &Store, me: SenderId, host: &str, lease: Duration) -> Result<()> {
    let stale_before = Utc::now() - lease;
    for s in store.senders().await? {
        if s.id == me.0 {
            continue;
        }
        let dead = if s.host == host {
            owner::liveness(&s) == Liveness::Dead
        } else {
            s.heartbeat_at.utc() < stale_before
        };
        if dead {
            let freed = store.take_over(SenderId(s.id)).await?;
            tracing::info!(
                node = %s.node, pid = s.pid, deliveries = freed.deliveries, mail = freed.mail,
                "took over the work of a sender that is gone"
            );
        }
    }
    Ok(())
}

/// Renews our leases and watches for dead senders, every third of a lease.
async fn heartbeat(store: Store, me: SenderId, host: String, lease: Duration) {
    let every = (lease / 3).to_std().unwrap_or(StdDuration::from_secs(10));
    loop {
        tokio::time::sleep(every).await;
        match store.heartbeat(me, lease).await {
            Ok(true) => {}
            Ok(false) => tracing::error!(
                "this sender's registration is gone (taken over after a stall?); its leases are no longer renewed"
            ),
            Err(e) => {
                tracing::warn!(error = %e, "heartbeat failed; leases run out unless it recovers");
            }
        }
        if let Err(e) = take_over_dead(&store, me, &host, lease).await {
            tracing::warn!(error = %e, "looking for dead senders failed");
        }
    }
}
