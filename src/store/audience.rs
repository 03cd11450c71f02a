//! An edition's audience on PostgreSQL: recorded at once, written as deliveries rows as the
//! sender reaches it.
//!
//! The snapshot fixes who an edition goes to in the edition's own transaction. Writing that
//! as one `deliveries` row per reader, each with its four index entries, took 10.8 s for
//! 1,000,000 readers on PostgreSQL (a table with no index at all still took 4.3 s under
//! load); SQLite does the same in about a second. So on PostgreSQL the queued readers are
//! recorded in `edition_audience` instead, a thousand subscriber ids to a row (≈ 2.5 s for a
//! million), and [`Store::claim_deliveries`] writes one such row's deliveries when the
//! rows already written run short. An edition of at most [`EAGER_AUDIENCE`] readers is
//! written out at once, in the same transaction, as on SQLite.
//!
//! What stays the same whichever way a delivery is written:
//! * The audience is the one of the snapshot: readers who join later are not in it, readers
//!   who leave, bounce or are erased before their message is claimed are skipped by the
//!   claim's check, as for a row written at once; a subscriber deleted or erased meanwhile
//!   is left out when the row is written, as their erasure deletes a written row (the
//!   statement reads `subscribers` under the shared [`Lock::SnapshotAudience`] an erasure
//!   takes exclusively).
//! * Counts: [`Store::delivery_counts`], `/metrics` and the API count an unwritten reader as
//!   queued; [`Store::finish_edition_if_done`] waits for them; cancelling an edition counts
//!   them skipped (in `edition_counts`, as compaction does).
//! * Readers skipped for want of stories in their categories are written at once.
//!
//! What differs: a reader's delivery history in the console shows an edition once their
//! delivery is written (when the sender reaches them).

use sqlx::QueryBuilder;

use super::backend::retrying;
use super::{Backend, Lock, Result, Store, Tx};

/// Readers whose deliveries a PostgreSQL snapshot writes at once; a larger audience is
/// recorded in `edition_audience` and written as it is sent.
pub const EAGER_AUDIENCE: u64 = 10_000;

/// Subscriber ids per `edition_audience` row: a claim that runs short writes one row's
/// deliveries (≈ 10 ms on PostgreSQL), so a sender writes rows a thousand at a time while
/// it sends. The unit tests use a few per row, to write many rows with a few readers.
const IDS_PER_ROW: i64 = if cfg!(test) { 7 } else { 1_000 };

/// Records the queued audience of edition `id` of list `list_id` in `edition_audience`:
/// every active subscription of an active subscriber, except those whose category choice
/// has no story (`no_stories`: whether the all-readers variant is empty, and the empty named
/// variants; `None` skips nobody). Returns how many readers it recorded. The caller holds
/// [`Lock::SnapshotAudience`] shared.
pub(super) async fn record(
    t: &mut sqlx::PgConnection,
    id: i64,
    list_id: i64,
    no_stories: Option<(bool, &[&str])>,
) -> Result<u64> {
    // A million readers hashed and grouped in memory instead of in temporary files.
    sqlx::query("SET LOCAL work_mem = '64MB'")
        .execute(&mut *t)
        .await?;
    let mut qb = QueryBuilder::new(
        "WITH written AS (
             INSERT INTO edition_audience (edition_id, seq, categories, readers, subscriber_ids)
             SELECT ",
    );
    qb.push_bind(id).push(
        ", row_number() OVER (ORDER BY block, categories), categories, COUNT(*),
                    string_agg(CAST(subscriber_id AS TEXT), ',')
             FROM (SELECT s.subscriber_id, s.categories, s.subscriber_id / ",
    );
    qb.push_bind(IDS_PER_ROW).push(
        " AS block
                   FROM subscriptions s JOIN subscribers p ON p.id = s.subscriber_id
                   WHERE s.list_id = ",
    );
    qb.push_bind(list_id)
        .push(" AND s.status = 'active' AND p.status = 'active'");
    if let Some((all_empty, named)) = no_stories {
        // The condition is NULL for a NULL category choice when that variant has stories.
        qb.push(" AND NOT COALESCE(");
        super::editions::push_no_stories(&mut qb, all_empty, named);
        qb.push(", FALSE)");
    }
    qb.push(
        ") AS audience
             GROUP BY block, categories
             RETURNING readers
         )
         SELECT CAST(COALESCE(SUM(readers), 0) AS BIGINT) FROM written",
    );
    let readers: i64 = qb.build_query_scalar().fetch_one(&mut *t).await?;
    Ok(readers as u64)
}

/// Writes the deliveries of edition `id`'s recorded audience, of the row `seq` or of every
/// row (`None`), and deletes what it wrote from `edition_audience`. A subscriber deleted
/// since the snapshot is left out. Returns the deliveries written. The caller holds
/// [`Lock::SnapshotAudience`] shared.
pub(super) async fn write_out(
    t: &mut sqlx::PgConnection,
    id: i64,
    seq: Option<i64>,
) -> Result<u64> {
    let written = sqlx::query(
        "INSERT INTO deliveries (edition_id, subscriber_id, categories, status)
         SELECT a.edition_id, r.id, a.categories, 'queued'
         FROM edition_audience a
         CROSS JOIN LATERAL unnest(CAST(string_to_array(a.subscriber_ids, ',') AS BIGINT[])) AS r(id)
         WHERE a.edition_id = $1 AND ($2::BIGINT IS NULL OR a.seq = $2)
           AND EXISTS (SELECT 1 FROM subscribers p WHERE p.id = r.id AND p.status <> 'erased')
         ORDER BY a.seq",
    )
    .bind(id)
    .bind(seq)
    .execute(&mut *t)
    .await?
    .rows_affected();
    sqlx::query(
        "DELETE FROM edition_audience WHERE edition_id = $1 AND ($2::BIGINT IS NULL OR seq = $2)",
    )
    .bind(id)
    .bind(seq)
    .execute(&mut *t)
    .await?;
    Ok(written)
}

impl Store {
    /// Writes the deliveries of the next row of edition `id`'s recorded audience that no
    /// other node is writing. Returns whether there was one (it may have written nothing, if
    /// all its readers were deleted). Always `false` on SQLite, which writes every delivery
    /// with its edition.
    pub(super) async fn write_next_audience(&self, id: i64) -> Result<bool> {
        if self.backend() != Backend::Postgres {
            return Ok(false);
        }
        retrying(move || async move {
            let mut tx = self.write_tx().await?;
            // The sender's own bookkeeping, as a claim: lost only with the database server,
            // and then together (the row is back, its deliveries are not there).
            tx.flush_lazily().await?;
            // Before any row lock: a subscriber's deletion holds this exclusively while it
            // deletes their deliveries.
            tx.lock_shared(Lock::SnapshotAudience).await?;
            let Tx::Postgres(t) = &mut tx else {
                return Ok(false);
            };
            let seq: Option<i64> = sqlx::query_scalar(
                "SELECT seq FROM edition_audience WHERE edition_id = $1
                 ORDER BY seq LIMIT 1 FOR UPDATE SKIP LOCKED",
            )
            .bind(id)
            .fetch_optional(&mut **t)
            .await?;
            let Some(seq) = seq else {
                tx.rollback().await?;
                return Ok(false);
            };
            let written = write_out(t, id, Some(seq)).await?;
            tx.commit().await?;
            tracing::debug!(edition = id, seq, written, "edition audience written");
            Ok(true)
        })
        .await
    }
}
