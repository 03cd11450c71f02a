//! An edition's audience: recorded at once, written as deliveries rows as the sender reaches
//! it.
//!
//! The snapshot fixes who an edition goes to in the edition's own transaction. Writing that
//! as one `deliveries` row per reader, each with its index entries, took 10.8 s for 1,000,000
//! readers on PostgreSQL (a table with no index at all still took 4.3 s under load) and
//! 8.05 s on SQLite beside a build. So the queued readers are recorded in `edition_audience`
//! instead, a thousand subscriber ids to a row ("1,2,3"), and [`Store::claim_deliveries`]
//! writes one such row's deliveries when the rows already written run short: the work moves
//! from the moment the edition is made to the sending, a thousandth at a time (≈ 10 ms a row
//! on PostgreSQL), where the relay is the slower party. An edition of at most
//! [`EAGER_AUDIENCE`] readers is written out at once, in the same transaction.
//!
//! What stays the same whichever way a delivery is written:
//! * The audience is the one of the snapshot: readers who join later are not in it, readers
//!   who leave or bounce before their message is claimed are skipped by the claim's check,
//!   as for a row written at once; a subscriber deleted or erased meanwhile is left out when
//!   the row is written, as their erasure deletes a written row (the statement reads
//!   `subscribers` under the shared [`Lock::SnapshotAudience`] an erasure takes
//!   exclusively; SQLite's one writer orders them anyway).
//! * Counts: [`Store::delivery_counts`], `/metrics` and the API count an unwritten reader as
//!   queued; [`Store::finish_edition_if_done`] waits for them; cancelling an edition counts
//!   them skipped (in `edition_counts`, as compaction does).
//! * Readers skipped for want of stories in their categories are written at once.
//!
//! What differs: a reader's delivery history in the console shows an edition once their
//! delivery is written (when the sender reaches them); until then a deleted reader's id
//! stays in the row that names them (an id, no address).

use sqlx::QueryBuilder;

use super::backend::retrying;
use super::{Backend, Lock, Result, Store, Tx, db};

/// Readers whose deliveries a snapshot writes at once; a larger audience is recorded in
/// `edition_audience` and written as it is sent.
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
    tx: &mut Tx,
    id: i64,
    list_id: i64,
    no_stories: Option<(bool, &[&str])>,
) -> Result<u64> {
    if let Tx::Postgres(t) = tx {
        // A million readers hashed and grouped in memory instead of in temporary files.
        sqlx::query("SET LOCAL work_mem = '64MB'")
            .execute(&mut **t)
            .await?;
    }
    db!(tx, |c| {
        let mut qb = QueryBuilder::new(
            "INSERT INTO edition_audience (edition_id, seq, categories, readers, subscriber_ids)
             SELECT ",
        );
        qb.push_bind(id).push(
            ", row_number() OVER (ORDER BY block, categories), categories, COUNT(*),
                    string_agg(CAST(subscriber_id AS TEXT), ',')
             FROM (SELECT s.subscriber_id, s.categories, s.subscriber_id / ",
        );
        qb.push_bind(IDS_PER_ROW).push(" AS block");
        super::editions::push_audience(&mut qb, list_id);
        if let Some((all_empty, named)) = no_stories {
            // The condition is NULL for a NULL category choice when that variant has stories.
            qb.push(" AND NOT COALESCE(");
            super::editions::push_no_stories(&mut qb, all_empty, named);
            qb.push(", FALSE)");
        }
        qb.push(") AS audience GROUP BY block, categories");
        qb.build().execute(&mut *c).await.affected()
    })?;
    let readers: i64 = db!(tx, |c| {
        sqlx::query_scalar(
            "SELECT CAST(COALESCE(SUM(readers), 0) AS BIGINT) FROM edition_audience WHERE edition_id = $1",
        )
        .bind(id)
        .fetch_one(c)
        .await
    })?;
    Ok(readers as u64)
}

/// Writes the deliveries of the recorded audience rows of edition `$1` (the row `$2` when
/// `one`, else every row), in row order: one text per backend, as each splits the row's id
/// list its own way. A subscriber deleted or erased since the snapshot is left out, as their
/// erasure deletes a written delivery.
fn write_out_sql(backend: Backend, one: bool) -> &'static str {
    macro_rules! write_out {
        ($ids:literal, $id:literal, $which:literal) => {
            concat!(
                "INSERT INTO deliveries (edition_id, subscriber_id, categories, status)
                 SELECT a.edition_id, ",
                $id,
                ", a.categories, 'queued'
                 FROM edition_audience a ",
                $ids,
                " WHERE a.edition_id = $1",
                $which,
                " AND EXISTS (SELECT 1 FROM subscribers p WHERE p.id = ",
                $id,
                " AND p.status <> 'erased')
                 ORDER BY a.seq"
            )
        };
    }
    // "1,2,3" is the body of a JSON array.
    macro_rules! sqlite {
        ($which:literal) => {
            write_out!(
                "JOIN json_each('[' || a.subscriber_ids || ']') AS r",
                "r.value",
                $which
            )
        };
    }
    macro_rules! postgres {
        ($which:literal) => {
            write_out!(
                "CROSS JOIN LATERAL unnest(CAST(string_to_array(a.subscriber_ids, ',') AS BIGINT[])) AS r(id)",
                "r.id",
                $which
            )
        };
    }
    match (backend, one) {
        (Backend::Sqlite, true) => sqlite!(" AND a.seq = $2"),
        (Backend::Sqlite, false) => sqlite!(""),
        (Backend::Postgres, true) => postgres!(" AND a.seq = $2"),
        (Backend::Postgres, false) => postgres!(""),
    }
}

/// Writes the deliveries of edition `id`'s recorded audience, of the row `seq` or of every
/// row (`None`), and deletes those rows from `edition_audience`. Returns the deliveries
/// written. The caller holds [`Lock::SnapshotAudience`] shared.
pub(super) async fn write_out(tx: &mut Tx, id: i64, seq: Option<i64>) -> Result<u64> {
    let sql = write_out_sql(tx.backend(), seq.is_some());
    let written = db!(tx, |c| {
        let mut q = sqlx::query(sql).bind(id);
        if let Some(seq) = seq {
            q = q.bind(seq);
        }
        q.execute(c).await.affected()
    })?;
    db!(tx, |c| {
        match seq {
            Some(seq) => {
                sqlx::query("DELETE FROM edition_audience WHERE edition_id = $1 AND seq = $2")
                    .bind(id)
                    .bind(seq)
            }
            None => sqlx::query("DELETE FROM edition_audience WHERE edition_id = $1").bind(id),
        }
        .execute(c)
        .await
        .affected()
    })?;
    Ok(written)
}

/// The first recorded audience row of edition `$1`. PostgreSQL locks it, passing over rows
/// another node is writing out (`wait` false) or waiting for the first of them to be written
/// (`wait`); SQLite's write transaction already excludes every other writer.
fn next_row_sql(backend: Backend, wait: bool) -> &'static str {
    macro_rules! next_row {
        () => {
            "SELECT seq FROM edition_audience WHERE edition_id = $1 ORDER BY seq LIMIT 1"
        };
    }
    match (backend, wait) {
        (Backend::Sqlite, _) => next_row!(),
        (Backend::Postgres, false) => concat!(next_row!(), " FOR UPDATE SKIP LOCKED"),
        (Backend::Postgres, true) => concat!(next_row!(), " FOR UPDATE"),
    }
}

impl Store {
    /// Writes the deliveries of the next row of edition `id`'s recorded audience that no
    /// other node is writing. When other nodes are writing every row left, waits for the
    /// first of them to be written (about 10 ms) rather than report nothing to claim: a
    /// sender that found nothing would wait for its next poll. Returns whether deliveries may
    /// have been written since the caller's claim (false: no audience row is left).
    pub(super) async fn write_next_audience(&self, id: i64) -> Result<bool> {
        self.yield_to_interactive().await;
        retrying(move || async move {
            let mut tx = self.write_tx().await?;
            // The sender's own bookkeeping, as a claim: lost only with the database server,
            // and then together (the row is back, its deliveries are not there).
            tx.flush_lazily().await?;
            // Before any row lock: a subscriber's erasure holds this exclusively while it
            // deletes their deliveries.
            tx.lock_shared(Lock::SnapshotAudience).await?;
            let mut seq = next_row(&mut tx, id, false).await?;
            if seq.is_none() {
                let left: bool = db!(&mut tx, |c| {
                    sqlx::query_scalar(
                        "SELECT EXISTS (SELECT 1 FROM edition_audience WHERE edition_id = $1)",
                    )
                    .bind(id)
                    .fetch_one(c)
                    .await
                })?;
                if !left {
                    tx.rollback().await?;
                    return Ok(false);
                }
                // Rows other nodes are writing: once the first is written (or given up),
                // this returns the next one free, or none when they are all written.
                seq = next_row(&mut tx, id, true).await?;
            }
            let Some(seq) = seq else {
                tx.rollback().await?;
                return Ok(true);
            };
            let written = write_out(&mut tx, id, Some(seq)).await?;
            tx.commit().await?;
            tracing::debug!(edition = id, seq, written, "edition audience written");
            Ok(true)
        })
        .await
    }
}

/// [`next_row_sql`] run in `tx`.
async fn next_row(tx: &mut Tx, id: i64, wait: bool) -> Result<Option<i64>> {
    let sql = next_row_sql(tx.backend(), wait);
    Ok(db!(tx, |c| {
        sqlx::query_scalar(sql).bind(id).fetch_optional(c).await
    })?)
}
