//! Storage proportional to readers, not to messages sent: finished editions older than the
//! retention period keep per-status counts and their failures; their sent and skipped
//! delivery rows go.
//!
//! Counts of compacted rows live in `edition_counts`; [`Store::delivery_counts`] adds them
//! to the rows that remain, so `editions show` and the metrics read the same numbers before
//! and after.

use chrono::{DateTime, Utc};

use super::{Lock, Result, Store, db};
use crate::domain::{DbTime, EditionStatus};

/// What one compaction pass did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct Compacted {
    /// Editions compacted.
    pub editions: u64,
    /// Delivery rows deleted.
    pub deliveries: u64,
}

/// Editions compacted per transaction, so the writer is never held for long.
const EDITIONS_PER_TX: i64 = 20;

impl Store {
    /// Compacts every edition that finished before `before` and is not compacted yet.
    pub async fn compact_editions(&self, before: DateTime<Utc>) -> Result<Compacted> {
        let mut total = Compacted::default();
        loop {
            let mut tx = self.write_tx().await?;
            // Two nodes compacting at once would count the same rows twice.
            tx.lock(Lock::Retention).await?;
            let ids: Vec<i64> = db!(&mut tx, |c| {
                sqlx::query_scalar(
                    "SELECT id FROM editions
                     WHERE compacted_at IS NULL AND finished_at IS NOT NULL AND finished_at <= $1
                       AND status IN ($2, $3, $4)
                     ORDER BY id LIMIT $5",
                )
                .bind(DbTime::from(before))
                .bind(EditionStatus::Sent)
                .bind(EditionStatus::Skipped)
                .bind(EditionStatus::Cancelled)
                .bind(EDITIONS_PER_TX)
                .fetch_all(c)
                .await
            })?;
            if ids.is_empty() {
                tx.commit().await?;
                return Ok(total);
            }
            let now = DbTime::now();
            for id in ids {
                // A cancelled edition may keep rows 'queued' no sender will claim (its status
                // is final): they count as skipped.
                total.deliveries += db!(&mut tx, |c| {
                    sqlx::query(
                        "INSERT INTO edition_counts (edition_id, status, count)
                         SELECT edition_id, CASE WHEN status = 'sent' THEN 'sent' ELSE 'skipped' END, COUNT(*)
                         FROM deliveries WHERE edition_id = $1 AND status <> 'failed'
                         GROUP BY 1, 2
                         ON CONFLICT (edition_id, status) DO UPDATE SET count = edition_counts.count + excluded.count",
                    )
                    .bind(id)
                    .execute(&mut *c)
                    .await.affected()?;
                    let deleted = sqlx::query(
                        "DELETE FROM deliveries WHERE edition_id = $1 AND status <> 'failed'",
                    )
                    .bind(id)
                    .execute(&mut *c)
                    .await
                    .affected()?;
                    sqlx::query("UPDATE editions SET compacted_at = $1 WHERE id = $2")
                        .bind(now)
                        .bind(id)
                        .execute(&mut *c)
                        .await
                        .affected()?;
                    Ok::<_, sqlx::Error>(deleted)
                })?;
                total.editions += 1;
            }
            tx.commit().await?;
        }
    }
}
