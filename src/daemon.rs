//! `dispatch run`: the scheduler, the breaking-news poll, the feed and SQL-source pollers, the
//! sender and the web pages (with the CMS API) in one process.
//!
//! Every piece talks to the others only through the database, so a crash anywhere leaves rows
//! that say what was done, and a restart carries on: a slot has at most one edition (unique
//! per list and slot), editions left mid-send are claimed again when their leases run out,
//! and breaking news is sent once per article per list.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration as StdDuration;

use anyhow::{Context, Result};
use chrono::{DateTime, Utc};
use tokio::sync::watch;

use crate::config::Config;
use crate::delivery::{Engine, Mode};
use crate::edition;
use crate::mail::transport::Transport;
use crate::store::{Created, ListRow, Store};

/// How often the daemon compacts editions older than `[retention] days`.
const COMPACT_EVERY: StdDuration = StdDuration::from_secs(3600);

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
                        tracing::error!(list = %list.slug, slot = %slot, error = %format!("{e:#}"), "could not build the digest")
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
pub fn shutdown_on_signals() -> watch::Receiver<bool> {
    let (tx, rx) = watch::channel(false);
    tokio::spawn(async move {
        wait_for_signal().await;
        tracing::info!(
            "shutting down: no new claims, letting messages in flight finish (signal again to quit at once)"
        );
        let _ = tx.send(true);
        wait_for_signal().await;
        tracing::warn!("second signal: exiting now");
        std::process::exit(130);
    });
    rx
}

async fn wait_for_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = term.recv() => {}
                    _ = tokio::signal::ctrl_c() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

/// Runs the daemon until `shutdown` turns true.
pub async fn run(store: Store, config: Arc<Config>, shutdown: watch::Receiver<bool>) -> Result<()> {
    let transport = Transport::from_config(&config).context("setting up the mail transport")?;
    let engine = Engine::new(store.clone(), Arc::clone(&config), transport)?;

    let listener = tokio::net::TcpListener::bind(config.web.bind)
        .await
        .with_context(|| format!("[web] bind: cannot listen on {}", config.web.bind))?;
    tracing::info!(bind = %config.web.bind, public_url = %config.web.public_url, "web pages up");
    let web_state = crate::web::AppState::new(store.clone(), Arc::clone(&config));
    let mut web_shutdown = shutdown.clone();
    let web = tokio::spawn(crate::web::serve(listener, web_state, async move {
        let _ = web_shutdown.wait_for(|s| *s).await;
    }));

    let sched = {
        let (store, config, mut shutdown) = (store.clone(), Arc::clone(&config), shutdown.clone());
        tokio::spawn(async move {
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
                    next_schedule = tokio::time::Instant::now()
                        + until_next_slot(&store, now).await.min(SCHEDULE_TICK);
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
        })
    };

    let retention = {
        let (store, days, mut shutdown) = (store.clone(), config.retention.days, shutdown.clone());
        tokio::spawn(async move {
            loop {
                let before = Utc::now() - chrono::Duration::days(i64::from(days));
                match store.compact_editions(before).await {
                    Ok(c) if c.editions > 0 => {
                        tracing::info!(
                            editions = c.editions,
                            deliveries = c.deliveries,
                            "compacted old editions"
                        )
                    }
                    Ok(_) => {}
                    Err(e) => tracing::warn!(error = %e, "compacting old editions failed"),
                }
                tokio::select! {
                    _ = tokio::time::sleep(COMPACT_EVERY) => {}
                    _ = shutdown.wait_for(|s| *s) => break,
                }
            }
        })
    };

    // The bounce mailbox, when one is configured.
    let bounces = config.bounces.imap.host.is_some().then(|| {
        tokio::spawn(crate::bounces::imap::run(
            store.clone(),
            Arc::clone(&config),
            shutdown.clone(),
        ))
    });

    // The feeds, when any are configured. A poller that cannot start (no TLS setup) is
    // logged and leaves the rest of the daemon running.
    let feeds = if config.feeds.is_empty() {
        None
    } else {
        match crate::intake::feeds::Poller::new(
            store.clone(),
            crate::intake::fetch::FetchLimits::default(),
            crate::intake::feeds::Poller::holder_name(),
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

    let sources = (!config.sql_sources.is_empty()).then(|| {
        tokio::spawn(
            crate::intake::sql::SqlPoller::new(
                store.clone(),
                crate::intake::feeds::Poller::holder_name(),
            )
            .run(config.sql_sources.clone(), shutdown.clone()),
        )
    });

    let result = engine.run(None, Mode::Forever, shutdown).await;
    if let Some(s) = sources {
        let _ = s.await;
    }
    if let Some(b) = bounces {
        let _ = b.await;
    }
    if let Some(f) = feeds {
        let _ = f.await;
    }
    let _ = retention.await;
    let _ = sched.await;
    match web.await {
        Ok(Err(e)) => {
            tracing::error!(error = %format!("{e:#}"), "web server stopped with an error")
        }
        Err(e) => tracing::error!(error = %e, "web server task failed"),
        Ok(Ok(())) => {}
    }
    let report = result?;
    tracing::info!(sent = report.sent, failed = report.failed, "stopped");
    store.close().await;
    Ok(())
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
