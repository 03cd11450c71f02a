//! `dispatch run`: the scheduler, the breaking-news poll, the feed and SQL-source pollers, the
//! sender and the web pages (with the CMS API) in one process, or the [`Roles`] an operator
//! picks.
//!
//! Every piece talks to the others only through the database, so a crash anywhere leaves rows
//! that say what was done, and a restart carries on: a slot has at most one edition (unique
//! per list and slot), editions left mid-send are claimed again when their leases run out,
//! and breaking news is sent once per article per list.
//!
//! The same holds for several nodes sharing one PostgreSQL database: every node's scheduler
//! may race for a slot and one edition results; senders claim different readers (`SKIP
//! LOCKED`) and take over a dead node's work; jobs only one node should run at a time
//! (retention compaction, the bounce mailbox) run under a named lease ([`singleton`]), and
//! each feed and SQL source is polled under its own (`feed:<url>`, `sql:<path>`).

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration as StdDuration;

use anyhow::{Context, Result};
use chrono::{DateTime, Utc};
use tokio::sync::watch;

use crate::config::Config;
use crate::delivery::{Engine, Mode, owner};
use crate::edition;
use crate::mail::transport::Transport;
use crate::store::{Created, LeaseHolder, ListRow, Store};

/// How often the daemon compacts editions older than `[retention] days`.
const COMPACT_EVERY: StdDuration = StdDuration::from_secs(3600);

/// The named lease retention compaction runs under: one node at a time compacts.
pub const RETENTION_LEASE: &str = "retention";

/// The named lease the bounce mailbox is polled under: one node at a time polls.
pub const BOUNCES_LEASE: &str = "bounces-imap";

/// The parts of the daemon a process runs (`dispatch run --only …`); all by default.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Roles {
    /// Claims and delivers editions and transactional mail.
    pub sender: bool,
    /// Builds scheduled digests and breaking-news editions, and compacts old editions.
    pub scheduler: bool,
    /// Serves the reader pages and `/healthz`, `/metrics`.
    pub web: bool,
}

impl Roles {
    /// Every part: what `dispatch run` does without `--only`.
    pub const ALL: Self = Self {
        sender: true,
        scheduler: true,
        web: true,
    };
}

impl Default for Roles {
    fn default() -> Self {
        Self::ALL
    }
}

impl std::fmt::Display for Roles {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let names: Vec<&str> = [
            (self.sender, "sender"),
            (self.scheduler, "scheduler"),
            (self.web, "web"),
        ]
        .into_iter()
        .filter_map(|(on, name)| on.then_some(name))
        .collect();
        f.write_str(&names.join(","))
    }
}

/// How often the scheduler re-reads the lists, so CLI changes apply without a restart.
const SCHEDULE_TICK: StdDuration = StdDuration::from_secs(15);

/// What the scheduler decided about one list at one moment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SlotDecision {
    /// No schedule, or no slot has come since the list was created.
    Nothing,
    /// Build the digest for this slot.
    Send(DateTime<Utc>),
    /// The slot is more than `max_lateness` old: skip it; its stories go in the next digest.
    TooLate(DateTime<Utc>),
}

/// Decides whether `list` has a due slot at `now`. Only the latest slot counts: older missed
/// slots fold into it, since the window always starts where the last digest ended.
pub fn due_slot(
    list: &ListRow,
    now: DateTime<Utc>,
    max_lateness: chrono::Duration,
) -> SlotDecision {
    let Some(schedule) = list.parsed_schedule() else {
        return SlotDecision::Nothing;
    };
    let Some(slot) = schedule.last_at_or_before(now, list.tz()) else {
        return SlotDecision::Nothing;
    };
    let created = crate::store::parse_db_time(&list.created_at).unwrap_or(now);
    if slot < created {
        return SlotDecision::Nothing;
    }
    if now - slot > max_lateness {
        SlotDecision::TooLate(slot)
    } else {
        SlotDecision::Send(slot)
    }
}

/// One scheduler pass: builds the digest of every list whose latest slot is due and has no
/// edition yet. Returns the editions created.
pub async fn schedule_tick(
    store: &Store,
    config: &Config,
    now: DateTime<Utc>,
    reported_late: &mut HashSet<(i64, DateTime<Utc>)>,
) -> Result<Vec<i64>> {
    let max_lateness = config.schedule.max_lateness.to_chrono();
    let mut created = Vec::new();
    for list in store.all_lists().await? {
        match due_slot(&list, now, max_lateness) {
            SlotDecision::Nothing => {}
            SlotDecision::TooLate(slot) => {
                if store.edition_for_slot(list.id, slot).await?.is_none()
                    && reported_late.insert((list.id, slot))
                {
                    tracing::warn!(
                        list = %list.slug, slot = %slot, late_secs = (now - slot).num_seconds(),
                        "skipping a slot missed by more than [schedule] max_lateness; its stories go in the next digest"
                    );
                }
            }
            SlotDecision::Send(slot) => {
                if store.edition_for_slot(list.id, slot).await?.is_some() {
                    continue;
                }
                match edition::create_digest(store, config, &list, now, Some(slot)).await {
                    Ok(Created::New {
                        id,
                        queued,
                        skipped,
                    }) => {
                        tracing::info!(list = %list.slug, edition = id, slot = %slot, queued, skipped, late_secs = (now - slot).num_seconds(), "digest built");
                        created.push(id);
                    }
                    Ok(Created::Existing { .. }) => {}
                    Err(e) => {
                        tracing::error!(list = %list.slug, slot = %slot, error = %format!("{e:#}"), "could not build the digest");
                    }
                }
            }
        }
    }
    Ok(created)
}

/// One breaking-news pass: every breaking article stored within `max_lateness` that a
/// breaking list has not had yet becomes an edition.
pub async fn breaking_tick(store: &Store, config: &Config, now: DateTime<Utc>) -> Result<Vec<i64>> {
    let max_lateness = config.schedule.max_lateness.to_chrono();
    let mut created = Vec::new();
    for article in store.unsent_breaking(now - max_lateness).await? {
        for (list, c) in edition::create_breaking(store, config, article, None).await? {
            if let Created::New { id, queued, .. } = c {
                tracing::info!(list = %list.slug, edition = id, article, queued, "breaking news");
                created.push(id);
            }
        }
    }
    Ok(created)
}

/// Waits for SIGTERM or Ctrl-C, then flips `tx`; a second signal exits at once.
///
/// SIGTERM's handler is installed before this returns, so a signal that comes at once (while
/// the database is still opening, say) is caught instead of taking its default action.
pub fn shutdown_on_signals() -> watch::Receiver<bool> {
    let (tx, rx) = watch::channel(false);
    let mut term = Term::install();
    tokio::spawn(async move {
        term.next().await;
        tracing::info!(
            "shutting down: no new claims, letting messages in flight finish (signal again to quit at once)"
        );
        let _ = tx.send(true);
        term.next().await;
        tracing::warn!("second signal: exiting now");
        std::process::exit(130);
    });
    rx
}

/// SIGTERM (where there is one) and Ctrl-C.
struct Term {
    #[cfg(unix)]
    term: Option<tokio::signal::unix::Signal>,
}

impl Term {
    fn install() -> Self {
        Self {
            #[cfg(unix)]
            term: tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok(),
        }
    }

    async fn next(&mut self) {
        #[cfg(unix)]
        if let Some(term) = &mut self.term {
            tokio::select! {
                _ = term.recv() => {}
                _ = tokio::signal::ctrl_c() => {}
            }
            return;
        }
        let _ = tokio::signal::ctrl_c().await;
    }
}

/// Runs the daemon's `roles` until `shutdown` turns true.
pub async fn run(
    store: Store,
    config: Arc<Config>,
    roles: Roles,
    shutdown: watch::Receiver<bool>,
) -> Result<()> {
    let node = config.node.name_or_host();
    tracing::info!(%node, roles = %roles, database = %store.backend(), "starting");
    // The sender first: a bad transport or DKIM key fails before anything starts.
    let engine = if roles.sender {
        let transport = Transport::from_config(&config).context("setting up the mail transport")?;
        Some(Engine::new(store.clone(), Arc::clone(&config), transport)?)
    } else {
        None
    };

    let web = if roles.web {
        let listener = tokio::net::TcpListener::bind(config.web.bind)
            .await
            .with_context(|| format!("[web] bind: cannot listen on {}", config.web.bind))?;
        tracing::info!(bind = %config.web.bind, public_url = %config.web.public_url, "web pages up");
        let web_state = crate::web::AppState::new(store.clone(), Arc::clone(&config));
        let mut web_shutdown = shutdown.clone();
        Some(tokio::spawn(crate::web::serve_with(
            listener,
            web_state,
            crate::web::ServeLimits::from(&config.web),
            async move {
                let _ = web_shutdown.wait_for(|s| *s).await;
            },
        )))
    } else {
        None
    };

    // The console goes with the web pages, on its own listener. One that cannot listen
    // (the port is taken) is logged and left out: it must never stop the sending.
    let console = if roles.web {
        let bind = config.console.bind;
        match tokio::net::TcpListener::bind(bind).await {
            Ok(listener) => {
                tracing::info!(%bind, public_url = %config.console.public_url, "newsroom console up");
                let state = crate::console::ConsoleState::new(store.clone(), Arc::clone(&config))
                    .with_shutdown(shutdown.clone());
                let mut console_shutdown = shutdown.clone();
                Some(tokio::spawn(crate::console::serve(
                    listener,
                    state,
                    async move {
                        let _ = console_shutdown.wait_for(|s| *s).await;
                    },
                )))
            }
            Err(e) => {
                tracing::error!(%bind, error = %e, "[console] bind: cannot listen; running without the console");
                None
            }
        }
    } else {
        None
    };

    // Background jobs that one node at a time runs go with the scheduler, each under its
    // named lease.
    let holder = LeaseHolder::of(&owner::current(Some(&node)));
    let bounces = (roles.scheduler && config.bounces.imap.host.is_some()).then(|| {
        let (store, config) = (store.clone(), Arc::clone(&config));
        let every = StdDuration::from_secs(config.bounces.imap.poll_secs);
        tracing::info!(folder = %config.bounces.imap.folder, poll_secs = config.bounces.imap.poll_secs, "polling the bounce mailbox (one node at a time)");
        tokio::spawn(singleton(
            store.clone(),
            BOUNCES_LEASE,
            holder.clone(),
            every,
            shutdown.clone(),
            move || crate::bounces::imap::poll_logged(store.clone(), Arc::clone(&config)),
        ))
    });
    let sched = roles.scheduler.then(|| {
        tokio::spawn(scheduler(
            store.clone(),
            Arc::clone(&config),
            shutdown.clone(),
        ))
    });
    let retention = roles.scheduler.then(|| {
        let (store, days) = (store.clone(), config.retention.days);
        tokio::spawn(singleton(
            store.clone(),
            RETENTION_LEASE,
            holder.clone(),
            COMPACT_EVERY,
            shutdown.clone(),
            move || compact(store.clone(), days),
        ))
    });

    // The feeds, when any are configured, with the scheduler role (each feed under its own
    // named lease, `feed:<url>`). A poller that cannot start (no TLS setup) is
    // logged and leaves the rest of the daemon running.
    let feeds = if !roles.scheduler || config.feeds.is_empty() {
        None
    } else {
        match crate::intake::feeds::Poller::new(
            store.clone(),
            crate::intake::fetch::FetchLimits::default(),
            holder.clone(),
        ) {
            Ok(poller) => Some(tokio::spawn(
                poller.run(config.feeds.clone(), shutdown.clone()),
            )),
            Err(e) => {
                tracing::error!(error = %e, "the feed poller could not start; feeds are not polled");
                None
            }
        }
    };

    let sources = (roles.scheduler && !config.sql_sources.is_empty()).then(|| {
        tokio::spawn(
            crate::intake::sql::SqlPoller::new(store.clone(), holder.clone())
                .run(config.sql_sources.clone(), shutdown.clone()),
        )
    });

    let result = if let Some(engine) = engine {
        let report = engine.run(None, Mode::Forever, shutdown).await;
        report.map(|r| tracing::info!(sent = r.sent, failed = r.failed, "sender stopped"))
    } else {
        let mut shutdown = shutdown;
        let _ = shutdown.wait_for(|s| *s).await;
        Ok(())
    };
    if let Some(s) = sources {
        let _ = s.await;
    }
    if let Some(b) = bounces {
        let _ = b.await;
    }
    if let Some(f) = feeds {
        let _ = f.await;
    }
    if let Some(t) = retention {
        let _ = t.await;
    }
    if let Some(t) = sched {
        let _ = t.await;
    }
    if let Some(console) = console
        && let Err(e) = console.await
    {
        tracing::error!(error = %e, "console server task failed");
    }
    if let Some(web) = web {
        match web.await {
            Ok(Err(e)) => {
                tracing::error!(error = %format!("{e:#}"), "web server stopped with an error");
            }
            Err(e) => tracing::error!(error = %e, "web server task failed"),
            Ok(Ok(())) => {}
        }
    }
    result?;
    tracing::info!("stopped");
    store.close().await;
    Ok(())
}

/// The scheduler and the breaking-news poll, until `shutdown`.
async fn scheduler(store: Store, config: Arc<Config>, mut shutdown: watch::Receiver<bool>) {
    warn_stored_problems(&store).await;
    let mut late = HashSet::new();
    let breaking_every = StdDuration::from_secs(config.schedule.breaking_poll_secs);
    let mut next_schedule = tokio::time::Instant::now();
    loop {
        let now = Utc::now();
        if tokio::time::Instant::now() >= next_schedule {
            if let Err(e) = schedule_tick(&store, &config, now, &mut late).await {
                tracing::error!(error = %format!("{e:#}"), "scheduler pass failed");
            }
            // Wake for the next slot if it comes before the next re-read.
            next_schedule =
                tokio::time::Instant::now() + until_next_slot(&store, now).await.min(SCHEDULE_TICK);
        }
        if let Err(e) = breaking_tick(&store, &config, now).await {
            tracing::error!(error = %format!("{e:#}"), "breaking-news pass failed");
        }
        let nap = breaking_every.min(
            next_schedule
                .saturating_duration_since(tokio::time::Instant::now())
                .max(StdDuration::from_millis(200)),
        );
        tokio::select! {
            _ = tokio::time::sleep(nap) => {}
            _ = shutdown.wait_for(|s| *s) => break,
        }
    }
}

/// One compaction pass of editions older than `days`.
async fn compact(store: Store, days: u32) {
    let before = Utc::now() - chrono::Duration::days(i64::from(days));
    match store.compact_editions(before).await {
        Ok(c) if c.editions > 0 => {
            tracing::info!(
                editions = c.editions,
                deliveries = c.deliveries,
                "compacted old editions"
            );
        }
        Ok(_) => {}
        Err(e) => tracing::warn!(error = %e, "compacting old editions failed"),
    }
}

/// Runs `job` every `every` on one node at a time: the node holding the named lease `name`
/// (taken for two periods and renewed before each run), whatever the number of nodes. If
/// the holder dies, another node takes the lease over once it has run out, within two
/// periods. At shutdown the lease is given up so another node need not wait.
///
/// For jobs any node may run but only one should at once: retention compaction and the
/// bounce mailbox. The feed and SQL-source pollers take the same named leases
/// ([`Store::try_lease`]) themselves, one per feed (`feed:<url>`) and source (`sql:<path>`),
/// since each has its own interval.
pub async fn singleton<F, Fut>(
    store: Store,
    name: &'static str,
    holder: LeaseHolder,
    every: StdDuration,
    mut shutdown: watch::Receiver<bool>,
    mut job: F,
) where
    F: FnMut() -> Fut,
    Fut: Future<Output = ()>,
{
    let lease = chrono::Duration::from_std(every * 2).unwrap_or(chrono::Duration::hours(2));
    let mut held = false;
    loop {
        match store.try_lease(name, &holder, lease).await {
            Ok(true) => {
                if !held {
                    tracing::info!(job = name, "this node runs the job now");
                }
                held = true;
                // A job stopped mid-run must be safe to drop (compaction is one transaction;
                // a bounce poll moves a message only after recording it).
                tokio::select! {
                    _ = job() => {}
                    _ = shutdown.wait_for(|s| *s) => break,
                }
            }
            Ok(false) => {
                if held {
                    tracing::info!(job = name, "another node runs the job now");
                }
                held = false;
            }
            Err(e) => tracing::warn!(job = name, error = %e, "could not renew the job's lease"),
        }
        tokio::select! {
            _ = tokio::time::sleep(every) => {}
            _ = shutdown.wait_for(|s| *s) => break,
        }
    }
    if held && let Err(e) = store.release_lease(name, &holder).await {
        tracing::warn!(job = name, error = %e, "could not give the job's lease up; it runs out");
    }
}

/// Says at start which lists hold a schedule or time zone the scheduler cannot use, so a
/// list that would never send does not stay silent.
async fn warn_stored_problems(store: &Store) {
    match store.all_lists().await {
        Ok(lists) => {
            for list in &lists {
                for (problem, mend) in list.stored_problems() {
                    tracing::warn!(
                        "list {} {problem}; mend it with `dispatch lists update {} {mend}`",
                        list.slug,
                        list.slug
                    );
                }
            }
        }
        Err(e) => tracing::warn!(error = %e, "could not read the lists to check their schedules"),
    }
}

/// Time until the earliest next slot of any list (a minute when nothing is scheduled).
async fn until_next_slot(store: &Store, now: DateTime<Utc>) -> StdDuration {
    let Ok(lists) = store.all_lists().await else {
        return SCHEDULE_TICK;
    };
    lists
        .iter()
        .filter_map(|l| l.parsed_schedule().and_then(|s| s.next_after(now, l.tz())))
        .min()
        .and_then(|t| (t - now).to_std().ok())
        .map(|d| d + StdDuration::from_millis(50))
        .unwrap_or(SCHEDULE_TICK)
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;
    use crate::store::Backend;
    use crate::store::testutil::{store_test, temp_store_on};

    /// Polls `f` every 20 ms until it holds, for at most 30 s.
    async fn until(what: &str, f: impl Fn() -> bool) {
        let deadline = tokio::time::Instant::now() + StdDuration::from_secs(30);
        while !f() {
            assert!(tokio::time::Instant::now() < deadline, "never: {what}");
            tokio::time::sleep(StdDuration::from_millis(20)).await;
        }
    }

    fn holder(node: &str) -> LeaseHolder {
        LeaseHolder::of(&owner::current(Some(node)))
    }

    store_test!(a_singleton_job_runs_on_one_node_and_moves_when_that_node_stops);
    /// The periods are far apart so that no stall of a loaded machine can decide the test: a
    /// holds its lease (20 s) long past the second in which b (every 50 ms) keeps asking for
    /// it; once a gives it up, b takes it and keeps renewing it.
    async fn a_singleton_job_runs_on_one_node_and_moves_when_that_node_stops(backend: Backend) {
        let (store, db) = temp_store_on(backend).await;
        let other = db.reopen().await;
        let (runs_a, runs_b) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
        let (stop_a, stop_a_rx) = watch::channel(false);
        let (stop_b, stop_b_rx) = watch::channel(false);
        let job = |n: &Arc<AtomicUsize>| {
            let n = Arc::clone(n);
            move || {
                n.fetch_add(1, Ordering::SeqCst);
                std::future::ready(())
            }
        };
        let a = tokio::spawn(singleton(
            store.clone(),
            "job",
            holder("a"),
            StdDuration::from_secs(10),
            stop_a_rx,
            job(&runs_a),
        ));
        until("a runs the job", || runs_a.load(Ordering::SeqCst) >= 1).await;
        let b = tokio::spawn(singleton(
            other.clone(),
            "job",
            holder("b"),
            StdDuration::from_millis(50),
            stop_b_rx,
            job(&runs_b),
        ));
        tokio::time::sleep(StdDuration::from_secs(1)).await;
        assert_eq!(runs_b.load(Ordering::SeqCst), 0, "one node at a time");
        // a stops and gives the lease up: b takes the job and renews its lease each period.
        stop_a.send(true).unwrap();
        a.await.unwrap();
        until("b runs the job, again and again", || {
            runs_b.load(Ordering::SeqCst) >= 3
        })
        .await;
        stop_b.send(true).unwrap();
        b.await.unwrap();
        assert!(store.leases().await.unwrap().is_empty(), "both gave it up");
    }
}
