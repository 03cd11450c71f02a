//! The sender loop: claims deliveries in small leased batches, personalises pre-encoded
//! messages, sends them over a bounded set of long-lived connections, and records outcomes
//! in batches.
//!
//! Shape: one dispatcher (this loop) and `[smtp] connections` worker tasks, each owning one
//! SMTP session. The dispatcher keeps at most a few batches in flight, so a crash can only
//! repeat the messages that were claimed and not yet recorded. Breaking news goes first:
//! every claim looks at the sending editions in priority order.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration as StdDuration;

use anyhow::{Context, Result};
use chrono::{Duration, Utc};
use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};
use rand::RngExt as _;
use sha2::Digest as _;
use tokio::sync::{mpsc, watch};

use super::dkim::DkimSigner;
use super::mime::{CommonHeaders, MessageTemplate, Recipient};
use super::transport::{SendError, Transport};
use crate::config::Config;
use crate::domain::EmailAddress;
use crate::edition::EditionRenderer;
use crate::store::{Claimed, EditionRow, Outcome, Store};

/// What a send run did.
#[derive(Debug, Default, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Report {
    pub sent: u64,
    pub failed: u64,
    pub bounced: u64,
    pub retry_later: u64,
    pub skipped: u64,
    /// Editions paused by an error that would fail every message, with the reason.
    pub paused: Vec<(i64, String)>,
}

/// How a run ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Return when nothing is due within `wait_for_retries` (the CLI's `send`).
    UntilIdle { wait_for_retries: StdDuration },
    /// Keep going until shutdown (the daemon).
    Forever,
}

/// Live counters for a progress display.
#[derive(Debug, Default)]
pub struct Progress {
    pub sent: std::sync::atomic::AtomicU64,
    pub failed: std::sync::atomic::AtomicU64,
    pub queued_total: std::sync::atomic::AtomicU64,
}

/// One message handed to a worker.
struct Job {
    /// When the delivery was claimed (and its subscription checked).
    claimed_at: std::time::Instant,
    delivery_id: i64,
    edition_id: i64,
    subscriber_id: i64,
    attempt: i64,
    to: EmailAddress,
    message_id: String,
    bytes: Vec<u8>,
}

/// Why a worker did not send: the transport's error, or not attempted at all (the message
/// goes back to the queue), which no transport produces.
enum Failure {
    Send(SendError),
    Released,
}

/// What a worker reports back.
struct Done {
    job_delivery: i64,
    edition_id: i64,
    subscriber_id: i64,
    attempt: i64,
    message_id: String,
    domain: String,
    result: Result<(), Failure>,
    /// The reader unsubscribed between the claim and the send: nothing was sent.
    unwanted: bool,
}

impl Done {
    /// The report on `job`.
    fn of(job: Job, result: Result<(), Failure>, unwanted: bool) -> Self {
        Self {
            job_delivery: job.delivery_id,
            edition_id: job.edition_id,
            subscriber_id: job.subscriber_id,
            attempt: job.attempt,
            domain: job.to.domain().to_owned(),
            message_id: job.message_id,
            result,
            unwanted,
        }
    }
}

/// A claimed message older than this is checked against the subscription again right
/// before it is sent.
const RECHECK_AFTER: StdDuration = StdDuration::from_millis(250);

/// The sending engine; one per process.
pub struct Engine {
    store: Store,
    config: Arc<Config>,
    transport: Arc<Transport>,
    dkim: Option<Arc<DkimSigner>>,
    limiter: Option<Arc<DefaultDirectRateLimiter>>,
    progress: Arc<Progress>,
}

impl Engine {
    /// An engine for `config`, sending through `transport`.
    pub fn new(store: Store, config: Arc<Config>, transport: Transport) -> Result<Self> {
        let dkim = match &config.dkim {
            Some(d) => Some(Arc::new(
                DkimSigner::from_config(d).context("loading the DKIM key")?,
            )),
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
            dkim,
            limiter,
            progress: Arc::new(Progress::default()),
        })
    }

    /// Live counters, for a progress bar.
    pub fn progress(&self) -> Arc<Progress> {
        Arc::clone(&self.progress)
    }

    /// Sends what is due: every edition in `sending` state (or only `only`), breaking news
    /// first, until `mode` says stop or `shutdown` turns true. On shutdown, messages not yet
    /// handed to the relay go back to the queue; messages in flight finish (bounded by the
    /// SMTP timeout).
    pub async fn run(
        &self,
        only: Option<HashSet<i64>>,
        mode: Mode,
        mut shutdown: watch::Receiver<bool>,
    ) -> Result<Report> {
        let workers = match &*self.transport {
            Transport::Smtp(_) => self.config.smtp.connections as usize,
            _ => 2,
        };
        let batch = (workers * 8).clamp(16, 256) as i64;
        let lease = Duration::seconds(self.config.sending.lease_secs as i64);
        let (job_tx, job_rx) = mpsc::channel::<Job>(workers * 16);
        let job_rx = Arc::new(tokio::sync::Mutex::new(job_rx));
        let (done_tx, mut done_rx) = mpsc::channel::<Done>(workers * 32);
        let paused: Arc<Mutex<HashSet<i64>>> = Arc::default();
        let unreachable = Arc::new(Unreachable {
            since: Mutex::new(None),
            limit: StdDuration::from_secs(self.config.sending.pause_after_secs),
        });

        let mut handles = Vec::with_capacity(workers);
        for n in 0..workers {
            handles.push(tokio::spawn(worker(
                n,
                Arc::clone(&self.transport),
                self.envelope_from()?,
                self.dkim.clone(),
                self.limiter.clone(),
                Arc::clone(&job_rx),
                done_tx.clone(),
                Arc::clone(&paused),
                Arc::clone(&unreachable),
                self.store.clone(),
            )));
        }
        drop(done_tx);

        let mut report = Report::default();
        let mut renderers: HashMap<i64, EditionRenderer> = HashMap::new();
        let mut templates: HashMap<(i64, Option<String>), Option<Arc<MessageTemplate>>> =
            HashMap::new();
        let mut buffer: Vec<Outcome> = Vec::new();
        let mut touched: HashSet<i64> = HashSet::new();
        let mut in_flight = 0usize;
        let mut flush_tick = tokio::time::interval(StdDuration::from_millis(100));
        let mut stopping = *shutdown.borrow();
        let mut idle_since: Option<tokio::time::Instant> = None;
        let mut scratch = Vec::new();

        loop {
            // Keep the workers fed, but hold few enough claims that a crash repeats little.
            if !stopping && in_flight < workers * 4 {
                let claimed = self
                    .claim_next(
                        only.as_ref(),
                        batch,
                        lease,
                        &paused,
                        &mut renderers,
                        &mut templates,
                        &mut report,
                        &mut scratch,
                    )
                    .await?;
                if !claimed.is_empty() {
                    idle_since = None;
                    for (job, outcome) in claimed {
                        match (job, outcome) {
                            (Some(job), _) => {
                                in_flight += 1;
                                if job_tx.send(job).await.is_err() {
                                    anyhow::bail!("every sender worker has stopped");
                                }
                            }
                            (None, Some(o)) => buffer.push(o),
                            (None, None) => {}
                        }
                    }
                    continue;
                }
                if in_flight == 0 {
                    self.flush(&mut buffer, &mut touched).await?;
                    match mode {
                        Mode::UntilIdle { wait_for_retries } => {
                            let due = self.next_due(only.as_ref()).await?;
                            match due {
                                Some(d)
                                    if d <= Utc::now()
                                        + Duration::from_std(wait_for_retries)
                                            .unwrap_or_default() =>
                                {
                                    let wait = (d - Utc::now())
                                        .to_std()
                                        .unwrap_or_default()
                                        .max(StdDuration::from_millis(50));
                                    tokio::select! {
                                        _ = tokio::time::sleep(wait) => {}
                                        _ = shutdown.changed() => stopping = true,
                                    }
                                    continue;
                                }
                                _ => break,
                            }
                        }
                        Mode::Forever => {
                            let since = *idle_since.get_or_insert_with(tokio::time::Instant::now);
                            // Poll quickly right after work, then settle to once a second.
                            let nap = if since.elapsed() < StdDuration::from_secs(2) {
                                100
                            } else {
                                1000
                            };
                            tokio::select! {
                                _ = tokio::time::sleep(StdDuration::from_millis(nap)) => {}
                                _ = shutdown.changed() => stopping = true,
                            }
                            continue;
                        }
                    }
                }
            }
            if stopping && in_flight == 0 {
                break;
            }

            tokio::select! {
                done = done_rx.recv() => {
                    let Some(done) = done else { break };
                    in_flight -= 1;
                    let o = self.judge(done, &paused, &mut report).await?;
                    touched.insert(o.1);
                    buffer.push(o.0);
                    if buffer.len() >= 256 {
                        self.flush(&mut buffer, &mut touched).await?;
                    }
                }
                _ = flush_tick.tick() => {
                    self.flush(&mut buffer, &mut touched).await?;
                }
                _ = shutdown.changed(), if !stopping => {
                    stopping = true;
                    // Messages not yet picked up by a worker go back to the queue now.
                    let mut rx = job_rx.lock().await;
                    while let Ok(job) = rx.try_recv() {
                        in_flight -= 1;
                        buffer.push(Outcome::Released { delivery_id: job.delivery_id });
                    }
                }
            }
        }

        drop(job_tx);
        for h in handles {
            let _ = h.await;
        }
        // Anything the workers left (shutdown raced with a send) is reported before exit.
        while let Ok(done) = done_rx.try_recv() {
            let o = self.judge(done, &paused, &mut report).await?;
            touched.insert(o.1);
            buffer.push(o.0);
        }
        self.flush(&mut buffer, &mut touched).await?;
        {
            let paused = paused.lock().map(|p| p.clone()).unwrap_or_default();
            for id in paused {
                if let Ok(e) = self.store.edition(id).await {
                    report
                        .paused
                        .push((id, e.status_reason.unwrap_or_default()));
                }
            }
        }
        Ok(report)
    }

    fn envelope_from(&self) -> Result<EmailAddress> {
        let mb = self.config.from_mailbox().map_err(anyhow::Error::msg)?;
        Ok(EmailAddress::parse(mb.email.as_ref())?)
    }

    async fn next_due(&self, only: Option<&HashSet<i64>>) -> Result<Option<chrono::DateTime<Utc>>> {
        let mut best = None;
        for e in self.store.editions_sending().await? {
            if only.is_some_and(|o| !o.contains(&e.id)) {
                continue;
            }
            if let Some(d) = self.store.next_due(e.id).await? {
                best = Some(best.map_or(d, |b: chrono::DateTime<Utc>| b.min(d)));
            }
        }
        Ok(best)
    }

    /// Claims the next batch from the highest-priority edition that has work, and turns each
    /// claim into a job (or an outcome, when there is nothing to send that reader).
    #[allow(clippy::too_many_arguments)]
    async fn claim_next(
        &self,
        only: Option<&HashSet<i64>>,
        batch: i64,
        lease: Duration,
        paused: &Arc<Mutex<HashSet<i64>>>,
        renderers: &mut HashMap<i64, EditionRenderer>,
        templates: &mut HashMap<(i64, Option<String>), Option<Arc<MessageTemplate>>>,
        report: &mut Report,
        scratch: &mut Vec<u8>,
    ) -> Result<Vec<(Option<Job>, Option<Outcome>)>> {
        let editions = self.store.editions_sending().await?;
        // An edition paused by this engine and seen sending again was resumed
        // (`dispatch editions resume`): stop releasing its messages.
        if let Ok(mut p) = paused.lock() {
            p.retain(|id| !editions.iter().any(|e| e.id == *id));
        }
        // A daemon runs for months: forget the renderings of editions that are done.
        renderers.retain(|id, _| editions.iter().any(|e| e.id == *id));
        templates.retain(|(id, _), _| editions.iter().any(|e| e.id == *id));
        for e in editions {
            if only.is_some_and(|o| !o.contains(&e.id))
                || paused.lock().map(|p| p.contains(&e.id)).unwrap_or(false)
            {
                continue;
            }
            let (claimed, skipped) = self
                .store
                .claim_deliveries(e.id, e.list_id, batch, lease)
                .await?;
            report.skipped += skipped;
            if claimed.is_empty() {
                self.store.finish_edition_if_done(e.id).await?;
                continue;
            }
            if let std::collections::hash_map::Entry::Vacant(slot) = renderers.entry(e.id) {
                slot.insert(EditionRenderer::load(&self.store, &self.config, e.clone()).await?);
            }
            let mut out = Vec::with_capacity(claimed.len());
            for c in claimed {
                let key = (e.id, c.categories.clone());
                let template = match templates.get(&key) {
                    Some(t) => t.clone(),
                    None => {
                        // Invariant: inserted just above for this edition.
                        let r = renderers
                            .get_mut(&e.id)
                            .and_then(|r| r.variant(&self.config, c.categories.as_deref()));
                        let t = match r {
                            Some(rendered) => Some(Arc::new(MessageTemplate::new(
                                &self.headers(&e, renderers, &rendered.subject)?,
                                &rendered.text,
                                &rendered.html,
                            ))),
                            None => None,
                        };
                        templates.insert(key, t.clone());
                        t
                    }
                };
                out.push(self.job(&e, c, template.as_deref(), scratch, report));
            }
            return Ok(out);
        }
        Ok(Vec::new())
    }

    fn headers(
        &self,
        e: &EditionRow,
        renderers: &HashMap<i64, EditionRenderer>,
        subject: &str,
    ) -> Result<CommonHeaders> {
        let list = renderers
            .get(&e.id)
            .map(|r| r.list())
            .context("edition renderer missing")?;
        let public = self.config.public_url();
        let host = public.host().to_owned();
        let from = self.config.from_mailbox().map_err(anyhow::Error::msg)?;
        let domain = from.email.domain().to_owned();
        let reply_to = match &self.config.publication.reply_to {
            Some(r) => Some(
                r.parse()
                    .map_err(|e| anyhow::anyhow!("[publication] reply_to: {e}"))?,
            ),
            None => None,
        };
        Ok(CommonHeaders {
            from,
            reply_to,
            subject: subject.to_owned(),
            date: Utc::now(),
            // RFC 2919 §2: the id is "list-label.namespace"; one per list, stable for its life.
            list_id: format!("{} <{}.{}>", list.name, list.slug, domain),
            public_url: public,
            unsubscribe_mailbox: format!("unsubscribe@{domain}"),
            message_id_domain: if domain.is_empty() { host } else { domain },
            feedback_id: Some(format!("{}:{}:dispatch", list.slug, e.kind)),
        })
    }

    fn job(
        &self,
        e: &EditionRow,
        c: Claimed,
        template: Option<&MessageTemplate>,
        scratch: &mut Vec<u8>,
        report: &mut Report,
    ) -> (Option<Job>, Option<Outcome>) {
        let Some(template) = template else {
            report.skipped += 1;
            return (
                None,
                Some(Outcome::Skipped {
                    delivery_id: c.delivery_id,
                    reason: "no stories in the reader's chosen categories".into(),
                }),
            );
        };
        let to = match EmailAddress::parse(&c.email) {
            Ok(t) => t,
            Err(err) => {
                report.failed += 1;
                return (
                    None,
                    Some(Outcome::Retry {
                        delivery_id: c.delivery_id,
                        reply: format!("stored address is invalid: {err}"),
                        next_attempt_at: None,
                    }),
                );
            }
        };
        let message_id = message_id_for(e, c.subscriber_id, template.message_id_domain());
        scratch.clear();
        template.personalise(
            &Recipient {
                to: &to,
                name: c.name.as_deref(),
                token: c.token.as_str(),
                message_id: &message_id,
            },
            scratch,
        );
        let job = Job {
            claimed_at: std::time::Instant::now(),
            delivery_id: c.delivery_id,
            edition_id: e.id,
            subscriber_id: c.subscriber_id,
            attempt: c.attempt,
            to,
            message_id,
            bytes: scratch.clone(),
        };
        (Some(job), None)
    }

    /// Turns a worker's result into an outcome to record, with retry timing.
    async fn judge(
        &self,
        d: Done,
        paused: &Arc<Mutex<HashSet<i64>>>,
        report: &mut Report,
    ) -> Result<(Outcome, i64)> {
        use std::sync::atomic::Ordering::Relaxed;
        let id = d.job_delivery;
        if d.unwanted {
            report.skipped += 1;
            return Ok((
                Outcome::Skipped {
                    delivery_id: id,
                    reason: "unsubscribed before sending".into(),
                },
                d.edition_id,
            ));
        }
        let result = match d.result {
            Ok(()) => Ok(()),
            Err(Failure::Send(e)) => Err(e),
            Err(Failure::Released) => {
                return Ok((Outcome::Released { delivery_id: id }, d.edition_id));
            }
        };
        let outcome = match result {
            Ok(()) => {
                report.sent += 1;
                self.progress.sent.fetch_add(1, Relaxed);
                tracing::debug!(edition = d.edition_id, recipient_domain = %d.domain, message_id = %d.message_id, "sent");
                Outcome::Sent {
                    delivery_id: id,
                    message_id: d.message_id,
                    reply: "250 accepted".into(),
                }
            }
            Err(err @ SendError::Permanent { .. }) if !err.is_hard_bounce() => {
                // A 5xx that is not about the mailbox (content, policy): this message failed,
                // but one rejection must not count against the reader's address.
                report.failed += 1;
                self.progress.failed.fetch_add(1, Relaxed);
                let reply = err.to_string();
                tracing::warn!(edition = d.edition_id, recipient_domain = %d.domain, message_id = %d.message_id, %reply, "rejected");
                Outcome::Retry {
                    delivery_id: id,
                    reply,
                    next_attempt_at: None,
                }
            }
            Err(SendError::Permanent { reply }) => {
                report.bounced += 1;
                self.progress.failed.fetch_add(1, Relaxed);
                tracing::warn!(edition = d.edition_id, recipient_domain = %d.domain, message_id = %d.message_id, %reply, "hard bounce");
                Outcome::Bounced {
                    delivery_id: id,
                    subscriber_id: d.subscriber_id,
                    reply,
                }
            }
            Err(SendError::Fatal { reason }) => {
                let newly = paused
                    .lock()
                    .map(|mut p| p.insert(d.edition_id))
                    .unwrap_or(false);
                if newly {
                    // Stored as the status reason: `editions show` prints it after the
                    // status ("status   paused: {why}"), so it does not repeat "paused".
                    let why = format!(
                        "{reason}; fix the cause, then run `dispatch editions resume {}`",
                        d.edition_id
                    );
                    tracing::error!(edition = d.edition_id, %reason, "pausing the edition: every message would fail");
                    self.store
                        .set_edition_status(d.edition_id, "paused", Some(&why))
                        .await
                        .ok();
                }
                Outcome::Released { delivery_id: id }
            }
            Err(err) => {
                let reply = err.to_string();
                let max = i64::from(self.config.sending.max_attempts);
                let next = (d.attempt < max).then(|| {
                    let base = self.config.sending.retry_base_secs as f64
                        * 2f64.powi((d.attempt - 1).clamp(0, 20) as i32);
                    let jitter = rand::rng().random_range(0.75..1.25);
                    Utc::now() + Duration::milliseconds((base * jitter * 1000.0) as i64)
                });
                if next.is_some() {
                    report.retry_later += 1;
                } else {
                    report.failed += 1;
                    self.progress.failed.fetch_add(1, Relaxed);
                }
                tracing::warn!(edition = d.edition_id, recipient_domain = %d.domain, message_id = %d.message_id, attempt = d.attempt, error = %reply, "temporary failure");
                Outcome::Retry {
                    delivery_id: id,
                    reply,
                    next_attempt_at: next,
                }
            }
        };
        Ok((outcome, d.edition_id))
    }

    async fn flush(&self, buffer: &mut Vec<Outcome>, touched: &mut HashSet<i64>) -> Result<()> {
        if buffer.is_empty() {
            return Ok(());
        }
        self.store
            .record_outcomes(buffer, self.config.sending.bounce_threshold)
            .await?;
        buffer.clear();
        for id in touched.drain() {
            if self.store.finish_edition_if_done(id).await? {
                tracing::info!(edition = id, "edition sent");
            }
        }
        Ok(())
    }
}

/// A Message-ID unique per (edition, subscriber) and stable across retries, so a copy sent
/// twice after a crash carries the same id and mail clients can fold the copies together.
fn message_id_for(e: &EditionRow, subscriber_id: i64, domain: &str) -> String {
    let mut h = sha2::Sha256::new();
    h.update(e.id.to_be_bytes());
    h.update(e.created_at.as_bytes());
    h.update(subscriber_id.to_be_bytes());
    let d = h.finalize();
    let nonce: String = d[..6].iter().map(|b| format!("{b:02x}")).collect();
    format!("<e{}.s{}.{}@{}>", e.id, subscriber_id, nonce, domain)
}

#[allow(clippy::too_many_arguments)]
async fn worker(
    n: usize,
    transport: Arc<Transport>,
    from: EmailAddress,
    dkim: Option<Arc<DkimSigner>>,
    limiter: Option<Arc<DefaultDirectRateLimiter>>,
    jobs: Arc<tokio::sync::Mutex<mpsc::Receiver<Job>>>,
    done: mpsc::Sender<Done>,
    paused: Arc<Mutex<HashSet<i64>>>,
    unreachable: Arc<Unreachable>,
    store: Store,
) {
    let mut session = None;
    loop {
        let job = {
            let mut rx = jobs.lock().await;
            rx.recv().await
        };
        let Some(mut job) = job else { break };
        let result = if paused
            .lock()
            .map(|p| p.contains(&job.edition_id))
            .unwrap_or(false)
        {
            Err(Failure::Released)
        } else {
            if let Some(l) = &limiter {
                l.until_ready().await;
            }
            // Promise 2: an unsubscribe committed before the attempt stops the message. The
            // claim checked the subscription; a message that has waited since (behind the rate
            // limit, or a slow relay) is checked again. One that went straight through is
            // not, which spares a database round trip per message at full speed.
            let waited = job.claimed_at.elapsed() > RECHECK_AFTER;
            if waited && !store.still_wanted(job.delivery_id).await.unwrap_or(true) {
                if done
                    .send(Done::of(job, Err(Failure::Released), true))
                    .await
                    .is_err()
                {
                    break;
                }
                continue;
            }
            // RSA signing costs about a millisecond: keep it off the async worker threads.
            let signed = match &dkim {
                Some(signer) => {
                    let (signer, bytes) = (Arc::clone(signer), std::mem::take(&mut job.bytes));
                    match tokio::task::spawn_blocking(move || {
                        signer.sign(&bytes).map(|h| (h, bytes))
                    })
                    .await
                    {
                        Ok(Ok((header, bytes))) => {
                            let mut out = Vec::with_capacity(header.len() + bytes.len());
                            out.extend_from_slice(header.as_bytes());
                            out.extend_from_slice(&bytes);
                            Ok(out)
                        }
                        Ok(Err(e)) => Err(SendError::Fatal {
                            reason: format!("DKIM signing failed: {e}"),
                        }),
                        Err(e) => Err(SendError::Fatal {
                            reason: format!("DKIM signing task failed: {e}"),
                        }),
                    }
                }
                None => Ok(std::mem::take(&mut job.bytes)),
            };
            match signed {
                Ok(bytes) => {
                    send_one(
                        &transport,
                        &mut session,
                        &from,
                        &job.to,
                        &bytes,
                        n,
                        &unreachable,
                    )
                    .await
                }
                Err(e) => Err(e),
            }
            .map_err(Failure::Send)
        };
        if done.send(Done::of(job, result, false)).await.is_err() {
            break;
        }
    }
    if let Some(s) = session.take() {
        super::transport::Session::close(s).await;
    }
}

/// How long the relay has been unreachable, shared by the workers: one failed connect is a
/// retry; failing for longer than `limit` would fail every message, so it pauses the edition.
struct Unreachable {
    since: Mutex<Option<std::time::Instant>>,
    limit: StdDuration,
}

impl Unreachable {
    fn judge(
        &self,
        r: Result<super::transport::Session, SendError>,
    ) -> Result<super::transport::Session, SendError> {
        let Ok(mut since) = self.since.lock() else {
            return r;
        };
        match r {
            Ok(s) => {
                *since = None;
                Ok(s)
            }
            Err(e @ (SendError::Network { .. } | SendError::Timeout)) => {
                let first = *since.get_or_insert_with(std::time::Instant::now);
                if first.elapsed() >= self.limit {
                    Err(SendError::Fatal {
                        reason: format!(
                            "the SMTP relay has been unreachable for {} s: {e}",
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
}

#[allow(clippy::too_many_arguments)]
async fn send_one(
    transport: &Transport,
    session: &mut Option<super::transport::Session>,
    from: &EmailAddress,
    to: &EmailAddress,
    bytes: &[u8],
    worker: usize,
    unreachable: &Unreachable,
) -> Result<(), SendError> {
    if session.is_none() {
        *session = Some(unreachable.judge(transport.session().await)?);
        tracing::debug!(worker, "connected");
    }
    // Invariant: set just above.
    let Some(s) = session.as_mut() else {
        unreachable!()
    };
    let r = s.send(from, to, bytes).await;
    if r.is_err() && !s.is_usable() {
        // A broken conversation is not reused: the next message opens a fresh connection.
        *session = None;
    }
    r
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mail::transport::StubOutbox;

    fn down() -> Result<super::super::transport::Session, SendError> {
        Err(SendError::Network {
            reason: "connection refused".into(),
        })
    }

    #[tokio::test]
    async fn an_unreachable_relay_pauses_only_after_the_limit() {
        let patient = Unreachable {
            since: Mutex::new(None),
            limit: StdDuration::from_secs(3600),
        };
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
        assert!(patient.since.lock().unwrap().is_none());

        let impatient = Unreachable {
            since: Mutex::new(None),
            limit: StdDuration::ZERO,
        };
        match impatient.judge(down()) {
            Err(SendError::Fatal { reason }) => assert!(reason.contains("unreachable"), "{reason}"),
            other => panic!("expected Fatal, got {:?}", other.err()),
        }
    }
}
