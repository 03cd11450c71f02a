//! Feed state: what each poll of a `[[feeds]]` URL found (conditional-GET validators, the
//! last error, counters for `feeds list` and `/metrics`).

use sqlx::FromRow;

use super::polls::Polled;
use super::{Result, Store, db};
use crate::domain::DbTime;

/// One feed's stored state.
#[derive(Debug, Clone, PartialEq, Eq, FromRow)]
pub struct FeedState {
    pub url: String,
    pub etag: Option<String>,
    pub last_modified: Option<String>,
    pub last_poll_at: Option<DbTime>,
    pub last_success_at: Option<DbTime>,
    pub next_poll_at: Option<DbTime>,
    /// Failed polls in a row.
    pub failures: i64,
    pub last_error: Option<String>,
    /// New articles stored from this feed, over all polls.
    pub items_stored: i64,
    pub polls_ok: i64,
    pub polls_not_modified: i64,
    pub polls_failed: i64,
}

/// What one poll found, to record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FeedPoll {
    /// The server answered 304 Not Modified.
    NotModified,
    /// A feed was read; `stored` new articles came from it.
    Fetched {
        etag: Option<String>,
        last_modified: Option<String>,
        stored: u64,
    },
    /// The poll failed; the reason is shown in `feeds list`.
    Failed { error: String },
}

const COLUMNS: &str = "url, etag, last_modified, last_poll_at, last_success_at, next_poll_at, failures, last_error, items_stored, polls_ok, polls_not_modified, polls_failed";

impl Store {
    /// The stored state of the feed at `url`, if it was ever polled.
    pub async fn feed_state(&self, url: &str) -> Result<Option<FeedState>> {
        let sql = format!("SELECT {COLUMNS} FROM feeds WHERE url = $1");
        Ok(db!(self.pool(), |c| {
            sqlx::query_as::<_, FeedState>(sqlx::AssertSqlSafe(sql))
                .bind(url)
                .fetch_optional(c)
                .await
        })?)
    }

    /// Every feed ever polled, by URL.
    pub async fn feed_states(&self) -> Result<Vec<FeedState>> {
        let sql = format!("SELECT {COLUMNS} FROM feeds ORDER BY url");
        Ok(db!(self.pool(), |c| {
            sqlx::query_as::<_, FeedState>(sqlx::AssertSqlSafe(sql))
                .fetch_all(c)
                .await
        })?)
    }

    /// Records a poll of `url` made at `at`, and when the next one is due. A failure keeps
    /// the validators of the last good answer, so the next poll can still be conditional.
    pub async fn record_feed_poll(
        &self,
        url: &str,
        at: DbTime,
        poll: &FeedPoll,
        next: DbTime,
    ) -> Result<()> {
        db!(self.writer(), |c| {
            match poll {
            FeedPoll::NotModified => sqlx::query(
                "INSERT INTO feeds (url, last_poll_at, last_success_at, next_poll_at, polls_not_modified)
                 VALUES ($1, $2, $2, $3, 1)
                 ON CONFLICT (url) DO UPDATE SET last_poll_at = $2, last_success_at = $2,
                     next_poll_at = $3, failures = 0, last_error = NULL,
                     polls_not_modified = feeds.polls_not_modified + 1",
            )
            .bind(url)
            .bind(at)
            .bind(next),
            FeedPoll::Fetched {
                etag,
                last_modified,
                stored,
            } => sqlx::query(
                "INSERT INTO feeds (url, etag, last_modified, last_poll_at, last_success_at, next_poll_at, items_stored, polls_ok)
                 VALUES ($1, $2, $3, $4, $4, $5, $6, 1)
                 ON CONFLICT (url) DO UPDATE SET etag = $2, last_modified = $3, last_poll_at = $4,
                     last_success_at = $4, next_poll_at = $5, failures = 0, last_error = NULL,
                     items_stored = feeds.items_stored + $6, polls_ok = feeds.polls_ok + 1",
            )
            .bind(url)
            .bind(etag)
            .bind(last_modified)
            .bind(at)
            .bind(next)
            .bind(i64::try_from(*stored).unwrap_or(i64::MAX)),
            FeedPoll::Failed { error } => {
                return self
                    .record_failed_poll(Polled::Feeds, url, at, next, error)
                    .await;
            }
        }
        .execute(c)
        .await
        .affected()
        })?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::Backend;
    use crate::store::testutil::{store_test, temp_store_on};

    store_test!(failures_count_in_a_row_and_keep_the_validators);
    async fn failures_count_in_a_row_and_keep_the_validators(backend: Backend) {
        let (store, _dir) = temp_store_on(backend).await;
        let (t, url) = (DbTime::now(), "https://news.example.com/feed/");
        let fetched = FeedPoll::Fetched {
            etag: Some("\"v1\"".into()),
            last_modified: None,
            stored: 3,
        };
        store.record_feed_poll(url, t, &fetched, t).await.unwrap();
        let failed = FeedPoll::Failed {
            error: "HTTP 500".into(),
        };
        store.record_feed_poll(url, t, &failed, t).await.unwrap();
        store.record_feed_poll(url, t, &failed, t).await.unwrap();
        let s = store.feed_state(url).await.unwrap().unwrap();
        assert_eq!((s.failures, s.polls_failed, s.items_stored), (2, 2, 3));
        assert_eq!(s.etag.as_deref(), Some("\"v1\""));
        assert_eq!(s.last_error.as_deref(), Some("HTTP 500"));
        store
            .record_feed_poll(url, t, &FeedPoll::NotModified, t)
            .await
            .unwrap();
        let s = store.feed_state(url).await.unwrap().unwrap();
        assert_eq!((s.failures, s.polls_not_modified), (0, 1));
        assert_eq!(s.last_error, None);
        assert_eq!(store.feed_states().await.unwrap().len(), 1);
    }
}
