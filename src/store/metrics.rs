//! Counts for `/metrics`, each one query grouped on indexed columns.
//!
//! Deliveries are first grouped by `(edition_id, status)`, which the covering index
//! `deliveries_edition_status` answers without touching the table, and only then joined to
//! the (small) editions table to get the list.

use sqlx::FromRow;

use super::{Result, Store, db};

/// Deliveries of one list in one status.
#[derive(Debug, Clone, FromRow)]
pub struct DeliveryCount {
    pub list_id: i64,
    pub status: String,
    pub count: i64,
    /// Sum over these deliveries of `attempts - 1` (attempts beyond the first).
    pub retries: i64,
}

/// Subscriptions of one list in one status.
#[derive(Debug, Clone, FromRow)]
pub struct SubscriptionCount {
    pub list_id: i64,
    pub status: String,
    pub count: i64,
}

/// The newest edition of a list, and its newest scheduled one.
#[derive(Debug, Clone, FromRow)]
pub struct EditionTimes {
    pub list_id: i64,
    /// When the newest edition was made.
    pub last_created_at: Option<String>,
    /// The newest scheduled edition's slot and when it was made.
    pub slot: Option<String>,
    pub slot_created_at: Option<String>,
}

/// Everything `/metrics` reports, by list id.
#[derive(Debug, Clone, Default)]
pub struct MetricsSnapshot {
    /// Every list: (id, slug), so lists without rows still get zeros.
    pub lists: Vec<(i64, String)>,
    pub deliveries: Vec<DeliveryCount>,
    pub subscriptions: Vec<SubscriptionCount>,
    pub editions: Vec<EditionTimes>,
    /// Bounce events by type (`bounce_events`).
    pub bounces: Vec<(crate::domain::BounceType, i64)>,
}

impl Store {
    /// Reads the counts for `/metrics` in one read transaction (a consistent snapshot).
    pub async fn metrics_snapshot(&self) -> Result<MetricsSnapshot> {
        let mut tx = self.pool().begin_snapshot().await?;
        let snapshot = db!(&mut tx, |c| {
            let lists: Vec<(i64, String)> =
                sqlx::query_as("SELECT id, slug FROM lists ORDER BY slug")
                    .fetch_all(&mut *c)
                    .await?;
            // SUM of integers is NUMERIC on PostgreSQL: cast back to a 64-bit count.
            let deliveries: Vec<DeliveryCount> = sqlx::query_as(
                "SELECT e.list_id, x.status, CAST(SUM(x.n) AS BIGINT) AS count,
                        CAST(SUM(x.retries) AS BIGINT) AS retries
                 FROM (SELECT edition_id, status, COUNT(*) AS n,
                              SUM(CASE WHEN attempts > 1 THEN attempts - 1 ELSE 0 END) AS retries
                       FROM deliveries GROUP BY edition_id, status
                       UNION ALL
                       -- Queued readers whose rows are not written yet (`store::audience`).
                       SELECT edition_id, 'queued' AS status, CAST(SUM(readers) AS BIGINT) AS n, 0 AS retries
                       FROM edition_audience GROUP BY edition_id) x
                 JOIN editions e ON e.id = x.edition_id
                 GROUP BY e.list_id, x.status",
            )
            .fetch_all(&mut *c)
            .await?;
            let subscriptions: Vec<SubscriptionCount> = sqlx::query_as(
                "SELECT list_id, status, COUNT(*) AS count FROM subscriptions GROUP BY list_id, status",
            )
            .fetch_all(&mut *c)
            .await?;
            // The newest scheduled edition is the one with the greatest slot, found through
            // the UNIQUE (list_id, slot) index.
            let editions: Vec<EditionTimes> = sqlx::query_as(
                "SELECT l.id AS list_id,
                        (SELECT MAX(created_at) FROM editions e WHERE e.list_id = l.id) AS last_created_at,
                        m.slot, e2.created_at AS slot_created_at
                 FROM lists l
                 LEFT JOIN (SELECT list_id, MAX(slot) AS slot FROM editions WHERE slot IS NOT NULL GROUP BY list_id) m
                        ON m.list_id = l.id
                 LEFT JOIN editions e2 ON e2.list_id = l.id AND e2.slot = m.slot",
            )
            .fetch_all(&mut *c)
            .await?;
            let bounces = sqlx::query_as("SELECT type, COUNT(*) FROM bounce_events GROUP BY type")
                .fetch_all(&mut *c)
                .await?;
            Ok::<_, sqlx::Error>(MetricsSnapshot {
                lists,
                deliveries,
                subscriptions,
                editions,
                bounces,
            })
        })?;
        tx.commit().await?;
        Ok(snapshot)
    }
}
