//! The `[[feeds]]` poller: each feed on its own interval, each poll under a named lease.
//!
//! A poll fetches the feed conditionally ([`super::fetch`]), parses it with the same parser
//! as `articles import` and stores new items through [`super::store_records`]; an item
//! whose `updated` changed revises its article unless the article has gone out
//! ([`crate::store::Revision::Poll`]). Whatever
//! happens to one feed (a timeout, a 500, 20 MB of garbage, a DNS failure) is recorded in
//! its row (`feeds list`, `/metrics`) and logged, and pushes only that feed's next poll out
//! (exponential backoff, [`backoff`]); the other feeds and the daemon carry on.
//!
//! "Feeds are polled by one node at a time": a poll holds the lease `feed:<url>` while it
//! runs, and a node that finds the feed's stored `next_poll_at` still ahead (another node
//! polled it) skips it until then.

use std::time::Duration as StdDuration;

use chrono::{DateTime, Duration, Utc};
use futures_util::StreamExt as _;
use tokio::sync::watch;

use super::fetch::{FetchError, FetchLimits, Fetched, Fetcher, Validators};
use super::{Stored, Write, store_records};
use crate::config::Feed;
use crate::domain::DbTime;
use crate::import::feeds::{FeedFormat, Mapping, parse_with};
use crate::store::{FeedPoll, LeaseHolder, Store};

/// The longest wait between polls of a failing feed.
pub const MAX_BACKOFF: StdDuration = StdDuration::from_secs(6 * 3600);

/// How many feeds are fetched at once.
const CONCURRENT_POLLS: usize = 16;

/// What one poll did.
#[derive(Debug)]
pub enum PollOutcome {
    /// 304 Not Modified.
    NotModified,
    /// The feed was read and its new items stored.
    Stored { format: FeedFormat, stored: Stored },
    /// The poll failed; the reason, as recorded.
    Failed(String),
    /// Another node holds the feed's lease, or polled it and its next poll is not due.
    Skipped,
}

/// One poll's outcome and when the feed is due again.
#[derive(Debug)]
pub struct PollReport {
    pub outcome: PollOutcome,
    pub next: DateTime<Utc>,
}

/// The delay before the next poll of a feed polled every `poll_secs` that has failed
/// `failures` times in a row: `poll_secs`, doubled for every failure after the first, at most
/// [`MAX_BACKOFF`] (and never less than `poll_secs`).
pub fn backoff(poll_secs: u64, failures: u32) -> StdDuration {
    let base = StdDuration::from_secs(poll_secs);
    let factor = 1u32 << failures.saturating_sub(1).min(16);
    base.saturating_mul(factor).min(MAX_BACKOFF.max(base))
}

/// Polls feeds for one node.
#[derive(Debug, Clone)]
pub struct Poller {
    store: Store,
    fetcher: Fetcher,
    /// Who this node is, in the leases it takes.
    holder: LeaseHolder,
    lease: Duration,
}

impl Poller {
    /// A poller with the given fetch limits, holding leases as `holder`.
    pub fn new(store: Store, limits: FetchLimits, holder: LeaseHolder) -> Result<Self, FetchError> {
        let lease = Duration::from_std(limits.timeout).unwrap_or(Duration::seconds(30))
            + Duration::seconds(60);
        Ok(Self {
            store,
            fetcher: Fetcher::new(limits)?,
            holder,
            lease,
        })
    }

    /// Polls `feed` now; `force` polls even when another node's poll made it not due yet
    /// (`feeds poll`). Only a failing database is an error; a failing feed is an outcome.
    pub async fn poll(&self, feed: &Feed, force: bool) -> crate::store::Result<PollReport> {
        let url = feed.url.as_str();
        let lease = format!("feed:{url}");
        let now = Utc::now();
        let every = Duration::seconds(i64::try_from(feed.poll_secs).unwrap_or(i64::MAX / 2));
        if !self
            .store
            .try_lease(&lease, &self.holder, self.lease)
            .await?
        {
            return Ok(PollReport {
                outcome: PollOutcome::Skipped,
                next: now + every,
            });
        }
        let result = self.poll_leased(feed, force, now).await;
        // A failed release only delays the next taker until the lease runs out.
        if let Err(e) = self.store.release_lease(&lease, &self.holder).await {
            tracing::warn!(feed = %feed.url.redacted(), error = %e, "releasing the feed lease failed");
        }
        result
    }

    async fn poll_leased(
        &self,
        feed: &Feed,
        force: bool,
        now: DateTime<Utc>,
    ) -> crate::store::Result<PollReport> {
        let url = feed.url.as_str();
        let label = feed.url.redacted();
        let state = self.store.feed_state(url).await?;
        if !force
            && let Some(next) = state.as_ref().and_then(|s| s.next_poll_at)
            && next.utc() > now
        {
            return Ok(PollReport {
                outcome: PollOutcome::Skipped,
                next: next.utc(),
            });
        }
        let validators = state
            .as_ref()
            .map(|s| Validators {
                etag: s.etag.clone(),
                last_modified: s.last_modified.clone(),
            })
            .unwrap_or_default();
        // Breaking feeds: what the first poll finds is the back catalogue, not news.
        let first_read = state.as_ref().is_none_or(|s| s.polls_ok == 0);
        let failures = state.as_ref().map_or(0, |s| s.failures);
        let (record, outcome) = match self.fetcher.fetch(url, &validators).await {
            Ok(Fetched::NotModified) => (FeedPoll::NotModified, PollOutcome::NotModified),
            Ok(Fetched::Body { bytes, validators }) => {
                match parse_with(&bytes, &mapping_of(feed), now) {
                    Ok((format, items)) => {
                        let stored = store_records(
                            &self.store,
                            items,
                            feed.breaking && !first_read,
                            Write::Revise,
                        )
                        .await?;
                        (
                            FeedPoll::Fetched {
                                etag: validators.etag,
                                last_modified: validators.last_modified,
                                stored: stored.added,
                            },
                            PollOutcome::Stored { format, stored },
                        )
                    }
                    Err(e) => {
                        let error = e.to_string();
                        (
                            FeedPoll::Failed {
                                error: error.clone(),
                            },
                            PollOutcome::Failed(error),
                        )
                    }
                }
            }
            Err(e) => {
                let error = e.to_string();
                (
                    FeedPoll::Failed {
                        error: error.clone(),
                    },
                    PollOutcome::Failed(error),
                )
            }
        };
        let failures = match &record {
            FeedPoll::Failed { .. } => u32::try_from(failures + 1).unwrap_or(u32::MAX),
            _ => 0,
        };
        let delay = backoff(feed.poll_secs, failures);
        let next = now + Duration::from_std(delay).unwrap_or(every_max());
        self.store
            .record_feed_poll(url, DbTime::from(now), &record, DbTime::from(next))
            .await?;
        match &outcome {
            PollOutcome::Stored { format, stored } => {
                if stored.added + stored.updated > 0
                    || !stored.rejected.is_empty()
                    || !stored.kept_as_sent.is_empty()
                {
                    tracing::info!(feed = %label, %format, added = stored.added, updated = stored.updated, kept_as_sent = stored.kept_as_sent.len(), skipped = stored.rejected.len(), "feed read");
                }
                for id in stored.kept_as_sent.iter().take(5) {
                    tracing::info!(feed = %label, external_id = %id, "item changed after its edition went out; the article keeps what readers got");
                }
                for e in stored.rejected.iter().take(5) {
                    tracing::warn!(feed = %label, item = e.item, reason = %e.reason, "feed item skipped");
                }
            }
            PollOutcome::Failed(error) => {
                tracing::warn!(feed = %label, %error, failures, retry_in_secs = delay.as_secs(), "feed poll failed");
            }
            PollOutcome::NotModified | PollOutcome::Skipped => {}
        }
        Ok(PollReport { outcome, next })
    }

    /// Polls every feed on its interval until `shutdown` turns true.
    pub async fn run(self, feeds: Vec<Feed>, mut shutdown: watch::Receiver<bool>) {
        let mut due: Vec<DateTime<Utc>> = Vec::with_capacity(feeds.len());
        for f in &feeds {
            let next = match self.store.feed_state(f.url.as_str()).await {
                Ok(Some(s)) => s.next_poll_at.map(DbTime::utc),
                _ => None,
            };
            due.push(next.unwrap_or_else(Utc::now));
        }
        tracing::info!(feeds = feeds.len(), "feed poller up");
        loop {
            let now = Utc::now();
            let ready: Vec<usize> = (0..feeds.len()).filter(|&i| due[i] <= now).collect();
            let me = &self;
            let polls = futures_util::stream::iter(ready)
                .map(|i| {
                    let feed = &feeds[i];
                    async move { (i, me.poll(feed, false).await) }
                })
                .buffer_unordered(CONCURRENT_POLLS)
                .collect::<Vec<_>>();
            let done = tokio::select! {
                done = polls => done,
                _ = shutdown.wait_for(|s| *s) => break,
            };
            for (i, report) in done {
                due[i] = match report {
                    Ok(r) => r.next,
                    Err(e) => {
                        tracing::error!(feed = %feeds[i].url.redacted(), error = %e, "recording a feed poll failed");
                        Utc::now() + Duration::seconds(60)
                    }
                };
            }
            let wake = due
                .iter()
                .min()
                .copied()
                .unwrap_or_else(|| Utc::now() + Duration::hours(1));
            let nap = (wake - Utc::now())
                .to_std()
                .unwrap_or(StdDuration::ZERO)
                .clamp(StdDuration::from_millis(100), StdDuration::from_secs(300));
            tokio::select! {
                _ = tokio::time::sleep(nap) => {}
                _ = shutdown.wait_for(|s| *s) => break,
            }
        }
    }
}

fn every_max() -> Duration {
    Duration::from_std(MAX_BACKOFF).unwrap_or(Duration::hours(6))
}

/// The parser's [`Mapping`] for a configured feed.
pub fn mapping_of(feed: &Feed) -> Mapping {
    Mapping {
        default_category: feed.default_category.clone(),
        category_map: feed
            .category_map
            .iter()
            .map(|(k, v)| (k.trim().to_lowercase(), v.clone()))
            .collect(),
        language: feed
            .language
            .as_deref()
            .and_then(crate::domain::language_tag),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_after_each_failure_up_to_six_hours() {
        let s = |n| backoff(300, n).as_secs();
        assert_eq!([s(0), s(1), s(2), s(3)], [300, 300, 600, 1200]);
        assert_eq!(s(7), 19_200);
        assert_eq!(s(8), 6 * 3600);
        assert_eq!(s(u32::MAX), 6 * 3600);
        assert_eq!(
            backoff(86_400, 5).as_secs(),
            86_400,
            "never below the interval"
        );
    }
}
