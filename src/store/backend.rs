//! The two databases the store runs on, behind one set of queries.
//!
//! [`Pool`] and [`Tx`] hold either an SQLite or a PostgreSQL pool (transaction), and the
//! [`db!`](crate::store::db) macro writes a query body once and compiles it for each: inside
//! the body the connection has its backend's concrete type, so every `bind`, `FromRow` and
//! `QueryBuilder` is checked by the compiler for both databases, with each driver's native
//! types and speed.
//!
//! Why not `sqlx::Any`: a spike on sqlx 0.9 showed the Any driver cannot read our SQLite
//! booleans (`bool` from an `INTEGER` column fails with "Rust type `bool` is not compatible
//! with SQL type `BIGINT`"; sqlx-sqlite's Any bridge rejects the `BOOLEAN` declared type
//! outright), the stored enums and `DbTime` would all need hand-written `Any` impls (the
//! `sqlx::Type` derive emits none), and every argument is copied once more on the way in.
//! Why not a generic `Repo<DB: Database>`: each query then needs a `where` clause per bound
//! type, higher-ranked for executors (sqlx#1674), at every call site.

use sqlx::{PgConnection, PgPool, Postgres, Sqlite, SqliteConnection, SqlitePool};

use super::Result;

/// Which database an installation keeps its data in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Backend {
    /// One file on one machine (`[database] path`), the default.
    Sqlite,
    /// A server several nodes share (`[database] url`).
    Postgres,
}

impl Backend {
    /// The name operators see (`/healthz`, `db check`).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Sqlite => "sqlite",
            Self::Postgres => "postgres",
        }
    }
}

impl std::fmt::Display for Backend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One thing of either backend: what [`Pool::on`] and [`Tx::on`] hand to [`db!`](crate::store::db).
#[derive(Debug)]
pub(crate) enum On<S, P> {
    Sqlite(S),
    Postgres(P),
}

/// A connection pool on either backend; cheap to clone.
#[derive(Debug, Clone)]
pub(crate) enum Pool {
    Sqlite(SqlitePool),
    Postgres(PgPool),
}

impl Pool {
    /// The concrete pool, for [`db!`](crate::store::db).
    pub(crate) fn on(&self) -> On<&SqlitePool, &PgPool> {
        match self {
            Self::Sqlite(p) => On::Sqlite(p),
            Self::Postgres(p) => On::Postgres(p),
        }
    }

    /// Which database this is.
    pub(crate) fn backend(&self) -> Backend {
        match self {
            Self::Sqlite(_) => Backend::Sqlite,
            Self::Postgres(_) => Backend::Postgres,
        }
    }

    /// Begins a transaction with the backend's default start (SQLite: deferred; PostgreSQL:
    /// read committed).
    pub(crate) async fn begin(&self) -> Result<Tx> {
        Ok(match self {
            Self::Sqlite(p) => Tx::Sqlite(p.begin().await?),
            Self::Postgres(p) => Tx::Postgres(p.begin().await?),
        })
    }

    /// Begins a write transaction for a read-then-write: SQLite takes its write lock at once
    /// (`BEGIN IMMEDIATE`), so nothing interleaves; PostgreSQL starts an ordinary
    /// read-committed transaction, and the statements take the row locks or [`Lock`] they
    /// need.
    pub(crate) async fn begin_write(&self) -> Result<Tx> {
        Ok(match self {
            Self::Sqlite(p) => Tx::Sqlite(p.begin_with("BEGIN IMMEDIATE").await?),
            Self::Postgres(p) => Tx::Postgres(p.begin().await?),
        })
    }

    /// Begins a transaction whose statements all read one snapshot (SQLite's WAL readers
    /// always do; PostgreSQL needs repeatable read for it).
    pub(crate) async fn begin_snapshot(&self) -> Result<Tx> {
        Ok(match self {
            Self::Sqlite(p) => Tx::Sqlite(p.begin().await?),
            Self::Postgres(p) => Tx::Postgres(
                p.begin_with("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
                    .await?,
            ),
        })
    }

    /// Closes every connection.
    pub(crate) async fn close(&self) {
        match self {
            Self::Sqlite(p) => p.close().await,
            Self::Postgres(p) => p.close().await,
        }
    }
}

/// A transaction on either backend. Dropped without [`Tx::commit`], it rolls back.
#[derive(Debug)]
pub(crate) enum Tx {
    Sqlite(sqlx::Transaction<'static, Sqlite>),
    Postgres(sqlx::Transaction<'static, Postgres>),
}

impl Tx {
    /// The concrete connection, for [`db!`](crate::store::db).
    pub(crate) fn on(&mut self) -> On<&mut SqliteConnection, &mut PgConnection> {
        match self {
            Self::Sqlite(t) => On::Sqlite(&mut **t),
            Self::Postgres(t) => On::Postgres(&mut **t),
        }
    }

    /// Which database this is.
    pub(crate) fn backend(&self) -> Backend {
        match self {
            Self::Sqlite(_) => Backend::Sqlite,
            Self::Postgres(_) => Backend::Postgres,
        }
    }

    /// Commits.
    pub(crate) async fn commit(self) -> Result<()> {
        match self {
            Self::Sqlite(t) => t.commit().await?,
            Self::Postgres(t) => t.commit().await?,
        }
        Ok(())
    }

    /// Rolls back.
    pub(crate) async fn rollback(self) -> Result<()> {
        match self {
            Self::Sqlite(t) => t.rollback().await?,
            Self::Postgres(t) => t.rollback().await?,
        }
        Ok(())
    }

    /// Makes this transaction the only one holding `lock` until it ends.
    ///
    /// For a read-then-write that must not interleave with another of its kind (does this
    /// address exist yet? where does the list's last window end?). SQLite needs nothing: a
    /// [`Store::write_tx`](super::Store::write_tx) holds the database's one write lock from
    /// its start. PostgreSQL takes a transaction-scoped advisory lock, released at commit or
    /// rollback, so other nodes wait for it while everything else carries on.
    pub(crate) async fn lock(&mut self, lock: Lock) -> Result<()> {
        if let Self::Postgres(t) = self {
            let (class, id) = lock.key();
            sqlx::query("SELECT pg_advisory_xact_lock($1, $2)")
                .bind(class)
                .bind(id)
                .execute(&mut **t)
                .await?;
        }
        Ok(())
    }

    /// Lets this transaction's commit return before the server has flushed it to disk
    /// (PostgreSQL's `synchronous_commit = off` for this transaction only), for the sender's
    /// own bookkeeping: claims and outcome commits, many per second. That is the durability
    /// SQLite gives every commit here (`synchronous = NORMAL` in WAL mode): a crash of this
    /// process or host loses nothing the database has answered; only a crash of the database
    /// server itself can lose its last few hundred milliseconds of such commits (three times
    /// `wal_writer_delay` at most), whose messages are then sent again — never a lost or
    /// half-written row. SQLite: nothing to do.
    pub(crate) async fn flush_lazily(&mut self) -> Result<()> {
        if let Self::Postgres(t) = self {
            sqlx::query("SET LOCAL synchronous_commit = off")
                .execute(&mut **t)
                .await?;
        }
        Ok(())
    }

    /// Holds `lock` shared until the transaction ends: any number of holders at once, none
    /// while another transaction holds it with [`Tx::lock`] (or the SQL that takes the same
    /// advisory lock exclusively). SQLite needs nothing, as for [`Tx::lock`].
    pub(crate) async fn lock_shared(&mut self, lock: Lock) -> Result<()> {
        if let Self::Postgres(t) = self {
            let (class, id) = lock.key();
            sqlx::query("SELECT pg_advisory_xact_lock_shared($1, $2)")
                .bind(class)
                .bind(id)
                .execute(&mut **t)
                .await?;
        }
        Ok(())
    }
}

/// What a [`Tx::lock`] serialises.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Lock {
    /// Creating, reviving or erasing subscribers and their subscriptions (an address is
    /// looked up, then inserted).
    Subscribers,
    /// Recording editions of one list (the window starts where the last one ended).
    ListEditions(i64),
    /// Compacting old editions (counts are moved, then rows deleted).
    Retention,
    /// Creating or updating an article by its `external_id` (the CMS API's `PUT`: looked up,
    /// then inserted).
    ArticleUpsert,
    /// Writing recipient snapshots and their recorded audience's deliveries
    /// ([`super::audience`]; held shared by each) against deleting subscribers (held
    /// exclusively by the `subscribers_delete_deliveries` trigger of PostgreSQL's
    /// `20261215000000_snapshot.sql`, which names the key `(5, 0)` itself, and by an erasure
    /// that keeps the reader's hashed record and deletes their deliveries): deliveries carry no
    /// foreign key there, so a deleted subscriber must not leave rows a concurrent snapshot
    /// wrote.
    SnapshotAudience,
}

impl Lock {
    /// PostgreSQL's two-key advisory lock id. A list id past `i32` shares a key with another
    /// list, which only makes the two wait for each other.
    fn key(self) -> (i32, i32) {
        match self {
            Self::Subscribers => (1, 0),
            Self::ListEditions(list) => (2, list as i32),
            Self::Retention => (3, 0),
            Self::ArticleUpsert => (4, 0),
            // Also written in the migration's trigger: change both or neither.
            Self::SnapshotAudience => (5, 0),
        }
    }
}

/// Writes one query body for both backends: `db!(target, |c| { body })` evaluates `body` with
/// `c` bound to the SQLite or the PostgreSQL side of `target`, a [`Pool`] (then `c` is the
/// pool) or a [`Tx`] (then `c` is the transaction's connection; write `&mut *c` to use it
/// more than once).
///
/// ```ignore
/// let n: i64 = db!(self.pool(), |c| {
///     sqlx::query_scalar("SELECT COUNT(*) FROM lists").fetch_one(c).await
/// })?;
/// let changed: u64 = db!(&mut tx, |c| {
///     sqlx::query("DELETE FROM lists WHERE id = $1").bind(id).execute(c).await.affected()
/// })?;
/// ```
macro_rules! db {
    ($target:expr, |$c:ident| $body:expr) => {{
        #[allow(unused_imports)]
        use $crate::store::backend::Affected as _;
        match $target.on() {
            $crate::store::backend::On::Sqlite($c) => $body,
            $crate::store::backend::On::Postgres($c) => $body,
        }
    }};
}
pub(crate) use db;

/// What `execute` returns differs per backend, and both arms of a [`db!`] must agree: an
/// `execute` in a `db!` body ends in `.affected()`, the number of rows it changed.
pub(crate) trait Affected {
    /// The rows the statement inserted, updated or deleted.
    fn affected(self) -> Result<u64, sqlx::Error>;
}

impl Affected for Result<sqlx::sqlite::SqliteQueryResult, sqlx::Error> {
    fn affected(self) -> Result<u64, sqlx::Error> {
        self.map(|r| r.rows_affected())
    }
}

impl Affected for Result<sqlx::postgres::PgQueryResult, sqlx::Error> {
    fn affected(self) -> Result<u64, sqlx::Error> {
        self.map(|r| r.rows_affected())
    }
}

/// Whether a failure is PostgreSQL giving up on one transaction to let another through (a
/// deadlock, a serialization failure): running the same transaction again is the cure.
pub(crate) fn is_transient(e: &super::StoreError) -> bool {
    let super::StoreError::Db(sqlx::Error::Database(d)) = e else {
        return false;
    };
    d.code().is_some_and(|c| c == "40P01" || c == "40001")
}

/// Runs `f` again (up to three times in all) while it fails with a transient conflict.
pub(crate) async fn retrying<T, F>(mut f: impl FnMut() -> F) -> Result<T>
where
    F: Future<Output = Result<T>>,
{
    let mut tries = 0;
    loop {
        match f().await {
            Err(e) if tries < 2 && is_transient(&e) => {
                tries += 1;
                tracing::debug!(error = %e, "transaction lost a conflict; running it again");
            }
            other => return other,
        }
    }
}
