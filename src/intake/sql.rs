//! `[[sql_sources]]`: a CMS's own SQLite database, read directly and read-only.
//!
//! Each poll opens the file with `mode=ro` (and `query_only`), runs the operator's query with
//! `:since` bound to the greatest `cursor` seen so far (`''` on the first poll), reads at most
//! [`MAX_ROWS`] rows and closes the connection before storing anything, so the CMS's database
//! is held only for the read itself. In WAL mode a reader never blocks the CMS's writer, nor
//! the writer the reader. Rows are mapped by column name into the JSON Lines shape and
//! validated by the same reader as `articles import` (a bad row is logged with its
//! `external_id` and skipped); a row seen again, because its cursor moved, updates the stored
//! article unless it has gone out ([`crate::store::Revision::Poll`]). The cursor is kept in our database, so a restart does not re-read everything.
//! Each poll holds the lease `sql:<path>`.

use std::time::Duration as StdDuration;

use chrono::{DateTime, Duration, Utc};
use tokio::sync::watch;

use super::feeds::backoff;
use super::{Stored, Write, store_records};
use crate::config::SqlSource;
use crate::domain::DbTime;
use crate::import::feeds::{Mapping, parse_with};
use crate::store::sources::{CmsRow, read_cms};
use crate::store::{LeaseHolder, SourcePoll, SqlValue, Store};

/// The most rows one poll reads; the rest come on the next poll (the query orders by cursor).
pub const MAX_ROWS: usize = 10_000;

/// What one poll did.
#[derive(Debug)]
pub enum SourceOutcome {
    /// The query ran; new and changed rows were stored.
    Read { rows: usize, stored: Stored },
    /// The poll failed; the reason, as recorded.
    Failed(String),
    /// Another node holds the lease or polled it and its next poll is not due.
    Skipped,
}

/// One poll's outcome and when the source is due again.
#[derive(Debug)]
pub struct SourceReport {
    pub outcome: SourceOutcome,
    pub next: DateTime<Utc>,
}

fn json_of(c: Option<SqlValue>) -> serde_json::Value {
    match c {
        None => serde_json::Value::Null,
        Some(SqlValue::Integer(i)) => i.into(),
        Some(SqlValue::Real(r)) => r.into(),
        Some(SqlValue::Text(t)) => t.into(),
    }
}

/// A column's value by name.
fn cell(row: &CmsRow, name: &str) -> Option<SqlValue> {
    row.iter()
        .find(|(n, _)| n == name)
        .and_then(|(_, v)| v.clone())
}

/// A row as one JSON Lines object, and its cursor.
fn row_to_line(row: &CmsRow) -> (serde_json::Value, Option<SqlValue>) {
    let mut obj = serde_json::Map::new();
    for (ours, theirs) in [
        ("id", "external_id"),
        ("url", "url"),
        ("title", "title"),
        ("summary", "summary"),
        ("author", "author"),
        ("category", "category"),
        ("language", "language"),
        ("image_url", "image_url"),
        ("published_at", "published_at"),
    ] {
        obj.insert(ours.into(), json_of(cell(row, theirs)));
    }
    if let Some(b) = cell(row, "breaking") {
        obj.insert(
            "breaking".into(),
            matches!(b, SqlValue::Integer(n) if n != 0).into(),
        );
    }
    (serde_json::Value::Object(obj), cell(row, "cursor"))
}

/// The parser's [`Mapping`] for a source: its default category.
fn mapping_of_source(src: &SqlSource) -> Mapping {
    Mapping::new(src.default_category.clone())
}

/// Polls SQL sources for one node.
#[derive(Debug, Clone)]
pub struct SqlPoller {
    store: Store,
    holder: LeaseHolder,
}

impl SqlPoller {
    /// A poller holding leases as `holder`.
    pub fn new(store: Store, holder: LeaseHolder) -> Self {
        Self { store, holder }
    }

    /// Polls `src` now; `force` polls even when another node's poll made it not due yet.
    /// Only a failing database of ours is an error; a failing source is an outcome.
    pub async fn poll(&self, src: &SqlSource, force: bool) -> crate::store::Result<SourceReport> {
        let path = src.path.display().to_string();
        let lease = format!("sql:{path}");
        let now = Utc::now();
        let every = Duration::seconds(i64::try_from(src.poll_secs).unwrap_or(i64::MAX / 2));
        if !self
            .store
            .try_lease(&lease, &self.holder, Duration::minutes(5))
            .await?
        {
            return Ok(SourceReport {
                outcome: SourceOutcome::Skipped,
                next: now + every,
            });
        }
        let result = self.poll_leased(src, &path, force, now).await;
        if let Err(e) = self.store.release_lease(&lease, &self.holder).await {
            tracing::warn!(source = %path, error = %e, "releasing the source lease failed");
        }
        result
    }

    async fn poll_leased(
        &self,
        src: &SqlSource,
        path: &str,
        force: bool,
        now: DateTime<Utc>,
    ) -> crate::store::Result<SourceReport> {
        let state = self.store.source_state(path).await?;
        if !force
            && let Some(next) = state.as_ref().and_then(|s| s.next_poll_at)
            && next.utc() > now
        {
            return Ok(SourceReport {
                outcome: SourceOutcome::Skipped,
                next: next.utc(),
            });
        }
        let since = state.as_ref().and_then(|s| s.cursor.clone());
        let failures = state.as_ref().map_or(0, |s| s.failures);
        let (record, outcome) = match read_cms(&src.path, &src.query, since, MAX_ROWS).await {
            Ok(rows) => {
                let n = rows.len();
                let mut cursor: Option<SqlValue> = None;
                let mut lines = Vec::with_capacity(n);
                let mut ids = Vec::with_capacity(n);
                let mut bad = Vec::new();
                for (i, r) in rows.into_iter().enumerate() {
                    match r.map(|row| row_to_line(&row)) {
                        Ok((line, c)) => {
                            if let Some(c) = c {
                                cursor = Some(match cursor {
                                    Some(old) => old.max(c),
                                    None => c,
                                });
                            }
                            ids.push(line["id"].to_string());
                            lines.push(line.to_string());
                        }
                        Err(e) => bad.push(format!("row {}: {e}", i + 1)),
                    }
                }
                let doc = lines.join("\n");
                let items = match parse_with(doc.as_bytes(), &mapping_of_source(src), now) {
                    Ok((_, items)) => items,
                    // No rows: JSON Lines of nothing is not even detected as a format.
                    Err(_) => Vec::new(),
                };
                let stored = store_records(&self.store, items, false, Write::Upsert).await?;
                for e in &stored.rejected {
                    let id = ids
                        .get(e.item.saturating_sub(1))
                        .map_or("?", String::as_str);
                    tracing::warn!(source = %path, external_id = %id, reason = %e.reason, "source row skipped");
                }
                for e in &bad {
                    tracing::warn!(source = %path, reason = %e, "source row skipped");
                }
                (
                    SourcePoll::Read {
                        cursor,
                        stored: stored.added,
                        updated: stored.updated,
                    },
                    SourceOutcome::Read { rows: n, stored },
                )
            }
            Err(error) => (
                SourcePoll::Failed {
                    error: error.clone(),
                },
                SourceOutcome::Failed(error),
            ),
        };
        let failures = match &record {
            SourcePoll::Failed { .. } => u32::try_from(failures + 1).unwrap_or(u32::MAX),
            SourcePoll::Read { .. } => 0,
        };
        let delay = backoff(src.poll_secs, failures);
        let next = now + Duration::from_std(delay).unwrap_or(Duration::hours(6));
        self.store
            .record_source_poll(path, DbTime::from(now), &record, DbTime::from(next))
            .await?;
        match &outcome {
            SourceOutcome::Read { stored, .. }
                if stored.added + stored.updated > 0 || !stored.kept_as_sent.is_empty() =>
            {
                tracing::info!(source = %path, added = stored.added, updated = stored.updated, kept_as_sent = stored.kept_as_sent.len(), skipped = stored.rejected.len(), "source read");
                for id in stored.kept_as_sent.iter().take(5) {
                    tracing::info!(source = %path, external_id = %id, "row changed after its edition went out; the article keeps what readers got");
                }
            }
            SourceOutcome::Failed(error) => {
                tracing::warn!(source = %path, %error, failures, retry_in_secs = delay.as_secs(), "source poll failed");
            }
            _ => {}
        }
        Ok(SourceReport { outcome, next })
    }

    /// Polls every source on its interval until `shutdown` turns true.
    pub async fn run(self, sources: Vec<SqlSource>, mut shutdown: watch::Receiver<bool>) {
        let mut due = vec![Utc::now(); sources.len()];
        tracing::info!(sources = sources.len(), "SQL source poller up");
        loop {
            for (i, src) in sources.iter().enumerate() {
                if due[i] > Utc::now() {
                    continue;
                }
                let polled = tokio::select! {
                    r = self.poll(src, false) => r,
                    _ = shutdown.wait_for(|s| *s) => return,
                };
                due[i] = match polled {
                    Ok(r) => r.next,
                    Err(e) => {
                        tracing::error!(source = %src.path.display(), error = %e, "recording a source poll failed");
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
                _ = shutdown.wait_for(|s| *s) => return,
            }
        }
    }
}
