//! The only place with SQL, on SQLite or PostgreSQL.
//!
//! `[database] path` (the default) keeps everything in one SQLite file in WAL mode;
//! `[database] url = "postgres://…"` uses a PostgreSQL server that several `dispatch` nodes
//! share. Both run the same queries: one file per aggregate, one SQL text per query, and
//! migrations embedded for each (`migrations/` for SQLite, `migrations/postgres/`, with the
//! same tables and columns, which `tests/schema_parity.rs` checks). [`backend`] says how the
//! two are held and why it is not `sqlx::Any`.
//!
//! # How to add a query
//!
//! 1. Write it in the aggregate's file as a `Store` method, once, with [`db!`]:
//!    ```ignore
//!    pub async fn feed_count(&self) -> Result<i64> {
//!        Ok(db!(self.pool(), |c| {
//!            sqlx::query_scalar("SELECT COUNT(*) FROM feeds").fetch_one(c).await
//!        })?)
//!    }
//!    ```
//!    Reads use `self.pool()`, single-statement writes `self.writer()`, and a write that reads
//!    first uses `let mut tx = self.write_tx().await?;` then `db!(&mut tx, |c| { … })` per
//!    statement and `tx.commit().await?`.
//! 2. Write SQL both dialects accept (they agree on nearly everything): `$n` placeholders,
//!    `ON CONFLICT … DO NOTHING / DO UPDATE`, `RETURNING`, `COUNT(*) FILTER (WHERE …)`,
//!    `IS NOT DISTINCT FROM` for a null-safe `=`, `CASE` instead of two-argument `MAX`,
//!    `CAST(SUM(…) AS BIGINT)` (PostgreSQL's `SUM` of integers is `NUMERIC`), flags tested
//!    bare (`WHERE breaking`, not `= 1`), a name for every subquery in `FROM`.
//! 3. Where the dialects truly differ, write one small function per backend, chosen by
//!    `tx.backend()` / `self.backend()` (see `deliveries::claim_sql`, which adds
//!    `FOR UPDATE SKIP LOCKED` on PostgreSQL). Never a second copy of a store file.
//! 4. A read-then-write that must not interleave with another (look an address up, then
//!    insert it) takes [`backend::Lock`] with `tx.lock(..)`: free on SQLite, whose write
//!    transaction is already exclusive; an advisory lock on PostgreSQL. Claims lock their
//!    rows with `SKIP LOCKED` instead, so nodes share the work.
//! 5. A new table or column goes in a new migration file in both `migrations/` and
//!    `migrations/postgres/`, and gets a test in the store suite: the store tests run on both
//!    backends (`store_test!`), PostgreSQL on a throwaway cluster the test binary starts.
//!
//! Timestamps are [`DbTime`] text on both (fixed-width UTC, compared as strings; every
//! PostgreSQL text column is `COLLATE "C"` so it orders as SQLite does). Stored states are the
//! enums of [`crate::domain`]. Queries use the runtime API rather than the compile-time macros,
//! so a clean checkout builds without a database.

use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use chrono::{DateTime, Utc};
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};

use crate::config::DatabaseTarget;
use crate::domain::{TokenKey, VerpKey};

pub mod api_keys;
pub mod article_upsert;
pub mod articles;
pub mod audience;
pub(crate) mod backend;
pub mod bounces;
pub mod console;
pub mod copy;
pub mod deliveries;
pub mod editions;
pub mod feeds;
pub mod leases;
pub mod lists;
pub mod mail_queue;
pub mod metrics;
mod polls;
pub mod preferences;
pub mod retention;
pub mod senders;
pub mod signup;
pub mod sources;
pub mod subscribers;
pub mod tokens;
pub mod unsubscribe;
mod writer_gate;

pub use crate::domain::{
    BounceSource, BounceType, DbTime, DeliveryStatus, EditionKind, EditionStatus, SubscriberStatus,
    SubscriptionStatus, TokenPurpose,
};
pub use api_keys::ApiKeyRow;
pub use article_upsert::{Revision, Upserted};
pub use articles::{ArticleRow, NewArticle};
pub use backend::Backend;
pub(crate) use backend::{Lock, Pool, Tx, db};
pub use bounces::{
    BounceRow, EditionBounces, Lookup, MatchedBy, NewBounceMessage, NewEvent, Recorded, Target,
    Thresholds,
};
pub use console::{AuditRow, DeliveryHistoryRow, NewAudit, SessionRow, UserLogin, UserRow};
pub use deliveries::{ClaimSkips, Claimed, Item, Outcome, Verdict};
pub use editions::{Created, EditionRow, NewEdition};
pub use feeds::{FeedPoll, FeedState};
pub use leases::{LeaseHolder, LeaseRow};
pub use lists::{ListRow, ListSpec};
pub use mail_queue::{ClaimedMail, MailKind};
pub use metrics::MetricsSnapshot;
pub use preferences::{PreferenceChange, PreferenceRow, Preferences};
pub use senders::{SenderId, SenderIdentity, SenderRow, TakenOver};
pub use signup::{Confirmed, SignupOutcome, WebSignup};
pub use sources::{SourcePoll, SourceState, SqlValue};
pub use subscribers::{ImportOutcome, ImportSummary, SubscriberRow, SubscriptionInfo};
pub use tokens::TokenTarget;
pub use unsubscribe::Unsubscribed;

static SQLITE_MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");
static POSTGRES_MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/postgres");

/// The embedded migrations of a backend.
pub(crate) fn migrator(backend: Backend) -> &'static sqlx::migrate::Migrator {
    match backend {
        Backend::Sqlite => &SQLITE_MIGRATOR,
        Backend::Postgres => &POSTGRES_MIGRATOR,
    }
}

/// What went wrong in the store, for callers that branch on it.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The named thing does not exist.
    #[error("{0} not found")]
    NotFound(String),
    /// The request conflicts with what is stored (a duplicate, a refused change).
    #[error("{0}")]
    Conflict(String),
    /// The database failed.
    #[error("database error: {0}")]
    Db(#[from] sqlx::Error),
    /// Migrations failed.
    #[error("database migration failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    /// The database path names a directory, which SQLite cannot open as a file.
    #[error("[database] path {} is a directory; give a file path such as data/dispatch.db", .0.display())]
    IsADirectory(PathBuf),
    /// `[database] url` is not a PostgreSQL URL sqlx can use.
    #[error("[database] url: {0}")]
    BadUrl(String),
}

/// Shorthand for store results.
pub type Result<T, E = StoreError> = std::result::Result<T, E>;

/// A handle on the database; cheap to clone.
///
/// SQLite has one writer at a time. Rather than letting every writer poll for the write lock
/// (SQLite's busy handler sleeps in growing steps, up to 100 ms, which made one-click
/// unsubscribes wait hundreds of milliseconds while an edition was sending), all writes go
/// through `writer`, a pool of one connection whose waiters queue in order. Reads use
/// `pool`, whose connections read concurrently in WAL mode.
///
/// PostgreSQL writes concurrently, so there `writer` is the same pool as `pool`, and what
/// SQLite's single writer serialised for free is serialised explicitly where it matters
/// (row locks in claims, [`Lock`]s elsewhere).
#[derive(Debug, Clone)]
pub struct Store {
    pool: Pool,
    writer: Pool,
    /// One-click unsubscribes, committed in batches by [`unsubscribe::unsubscribe_writer`].
    unsubscribes: tokio::sync::mpsc::Sender<unsubscribe::UnsubscribeRequest>,
    /// The key reader tokens are derived with (see [`crate::domain::Token::derive`]).
    token_key: std::sync::Arc<TokenKey>,
    /// The key of VERP MACs, derived from `token_key`.
    verp_key: std::sync::Arc<VerpKey>,
    /// Interactive writes go ahead of the bulk ones at SQLite's writer ([`writer_gate`]).
    gate: std::sync::Arc<writer_gate::WriterGate>,
    /// Readers a PostgreSQL edition's deliveries are written for at once
    /// ([`audience::EAGER_AUDIENCE`]; the store tests lower it).
    eager_audience: u64,
}

/// Connections a PostgreSQL store opens at most when the config does not say.
pub const DEFAULT_PG_CONNECTIONS: u32 = 10;

impl Store {
    /// Opens the configured database: the SQLite file, or the PostgreSQL server.
    pub async fn connect(target: &DatabaseTarget) -> Result<Self> {
        match target {
            DatabaseTarget::Sqlite(path) => Self::open(path).await,
            DatabaseTarget::Postgres {
                url,
                max_connections,
            } => Self::open_postgres(url.expose(), *max_connections).await,
        }
    }

    /// Opens (creating the file and its folder if needed) and migrates an SQLite database.
    pub async fn open(path: &Path) -> Result<Self> {
        let pools = open_sqlite(path).await?;
        migrator(Backend::Sqlite).run(&pools.0).await?;
        Self::start(Pool::Sqlite(pools.0), Pool::Sqlite(pools.1)).await
    }

    /// Connects to a PostgreSQL database (`postgres://user@host/dbname`, with any of libpq's
    /// URL parameters sqlx understands, e.g. `sslmode=require` or `host=/run/postgresql`)
    /// and migrates it.
    pub async fn open_postgres(url: &str, max_connections: u32) -> Result<Self> {
        let pool = open_pg(url, max_connections).await?;
        migrator(Backend::Postgres).run(&pool).await?;
        let pool = Pool::Postgres(pool);
        Self::start(pool.clone(), pool).await
    }

    async fn start(pool: Pool, writer: Pool) -> Result<Self> {
        let token_key = load_token_key(&writer).await?;
        let verp_key = std::sync::Arc::new(VerpKey::derive(&token_key));
        let token_key = std::sync::Arc::new(token_key);
        let (unsubscribes, requests) = tokio::sync::mpsc::channel(1024);
        tokio::spawn(unsubscribe::unsubscribe_writer(writer.clone(), requests));
        let gate = std::sync::Arc::<writer_gate::WriterGate>::default();
        if let Pool::Sqlite(p) = &pool {
            tokio::spawn(writer_gate::checkpointer(
                p.clone(),
                std::sync::Arc::downgrade(&gate),
            ));
        }
        Ok(Self {
            pool,
            writer,
            unsubscribes,
            token_key,
            verp_key,
            gate,
            eager_audience: audience::EAGER_AUDIENCE,
        })
    }

    /// This store, writing a PostgreSQL edition's deliveries at once only up to `readers`
    /// (a test's way to reach the unwritten audience with a few readers).
    #[cfg(test)]
    pub(crate) fn with_eager_audience(mut self, readers: u64) -> Self {
        self.eager_audience = readers;
        self
    }

    /// Which database this store is on.
    pub fn backend(&self) -> Backend {
        self.pool.backend()
    }

    /// The key reader tokens are derived with.
    pub(crate) fn token_key(&self) -> &TokenKey {
        &self.token_key
    }

    /// The key VERP envelope senders are signed with (VERP, in the mail module).
    pub fn verp_key(&self) -> &VerpKey {
        &self.verp_key
    }

    /// The reading pool, for the store's own modules.
    pub(crate) fn pool(&self) -> &Pool {
        &self.pool
    }

    /// The pool for every statement that changes data (on SQLite, its single connection).
    pub(crate) fn writer(&self) -> &Pool {
        &self.writer
    }

    /// Begins a write transaction for a read-then-write (computing an edition's window,
    /// claiming deliveries). On SQLite it takes the write lock at once, so nothing can
    /// interleave with it; on PostgreSQL it is an ordinary read-committed transaction, and
    /// the query takes the row locks or [`Lock`] it needs.
    pub(crate) async fn write_tx(&self) -> Result<Tx> {
        self.writer.begin_write().await
    }

    /// [`Self::write_tx`] for a write someone is waiting on (an API call): bulk writers
    /// that look ([`Self::yield_to_interactive`]) let it go first.
    pub(crate) async fn interactive_write_tx(&self) -> Result<Tx> {
        if self.backend() == Backend::Postgres {
            return self.write_tx().await;
        }
        let _waiting = self.gate.wait();
        self.writer.begin_write().await
    }

    /// Called by bulk writers (the sender's claims and outcome commits) before they queue
    /// for SQLite's writer: waits, briefly, while an interactive write is waiting for it.
    pub async fn yield_to_interactive(&self) {
        if self.backend() == Backend::Sqlite {
            self.gate.yield_to_interactive().await;
        }
    }

    /// Whether the database answers (for `/healthz`).
    pub async fn ping(&self) -> Result<()> {
        db!(self.pool(), |c| {
            sqlx::query("SELECT 1").execute(c).await.affected()
        })?;
        Ok(())
    }

    /// Closes every connection (checkpointing the WAL on SQLite).
    pub async fn close(&self) {
        self.writer.close().await;
        self.pool.close().await;
    }
}

/// The reading pool and the single-connection writer of an SQLite file.
async fn open_sqlite(path: &Path) -> Result<(sqlx::SqlitePool, sqlx::SqlitePool)> {
    // SQLite would say only "unable to open database file", once per connection attempt.
    if path.is_dir() {
        return Err(StoreError::IsADirectory(path.to_path_buf()));
    }
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|e| {
            StoreError::Conflict(format!(
                "cannot create database folder {}: {e}",
                dir.display()
            ))
        })?;
    }
    let opts = SqliteConnectOptions::from_str("sqlite://")?
        .filename(path)
        .create_if_missing(true)
        .journal_mode(SqliteJournalMode::Wal)
        // NORMAL is durable across application crashes in WAL mode; only a power loss can
        // drop the last commits, never corrupt the file.
        .synchronous(SqliteSynchronous::Normal)
        .busy_timeout(Duration::from_secs(15))
        .foreign_keys(true)
        .pragma("temp_store", "memory")
        // Checkpoints run beside the writer, not inside its commits (`writer_gate`).
        .pragma("wal_autocheckpoint", writer_gate::AUTOCHECKPOINT_PAGES);
    let pool = SqlitePoolOptions::new()
        .max_connections(8)
        .acquire_timeout(Duration::from_secs(30))
        .connect_with(opts.clone())
        .await?;
    let writer = SqlitePoolOptions::new()
        .max_connections(1)
        // A waiting writer queues behind the current one; a million-row snapshot can
        // hold the connection for seconds.
        .acquire_timeout(Duration::from_secs(120))
        .connect_with(opts)
        .await?;
    Ok((pool, writer))
}

/// A pool on a PostgreSQL database.
async fn open_pg(url: &str, max_connections: u32) -> Result<sqlx::PgPool> {
    let opts = PgConnectOptions::from_str(url)
        .map_err(|e| StoreError::BadUrl(e.to_string()))?
        .application_name("dispatch");
    Ok(PgPoolOptions::new()
        .max_connections(max_connections.max(2))
        // Claims and snapshots wait for row locks other nodes hold; a million-row snapshot
        // holds the connection for seconds.
        .acquire_timeout(Duration::from_secs(120))
        .connect_with(opts)
        .await?)
}

/// Reads the installation's token key, making it on first open. The insert is a no-op when
/// another process made it first, so every process reads the same key.
async fn load_token_key(writer: &Pool) -> Result<TokenKey> {
    let fresh = TokenKey::generate().as_bytes().to_vec();
    let raw: Vec<u8> = db!(writer, |c| {
        sqlx::query(
            "INSERT INTO settings (key, value) VALUES ('token_key', $1) ON CONFLICT (key) DO NOTHING",
        )
        .bind(&fresh)
        .execute(c)
        .await.affected()?;
        sqlx::query_scalar("SELECT value FROM settings WHERE key = 'token_key'")
            .fetch_one(c)
            .await
    })?;
    TokenKey::from_bytes(&raw).ok_or_else(|| {
        StoreError::Conflict(
            "the stored token key (settings.token_key) is not 32 bytes; was the database edited by hand?".into(),
        )
    })
}

/// The current time in the database's text form.
pub(crate) fn now_text() -> String {
    crate::domain::db_time(Utc::now())
}

/// Reads a stored timestamp; stored values were all written by [`crate::domain::db_time`] or
/// checked by the schema.
pub fn parse_db_time(s: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(s)
        .ok()
        .map(|t| t.with_timezone(&Utc))
}

#[cfg(test)]
pub(crate) mod testutil {
    use super::{Backend, Store};

    /// What keeps a test's database alive, and where it is: an SQLite file in a temporary
    /// folder, or a database of the test binary's PostgreSQL cluster (which goes with it).
    #[derive(Debug)]
    pub(crate) enum Guard {
        Dir {
            _dir: tempfile::TempDir,
            path: std::path::PathBuf,
        },
        Postgres(String),
    }

    impl Guard {
        /// Opens the same database again, as a second process (node) would.
        pub(crate) async fn reopen(&self) -> Store {
            match self {
                Self::Dir { path, .. } => Store::open(path).await.unwrap(),
                Self::Postgres(url) => Store::open_postgres(url, 4).await.unwrap(),
            }
        }
    }

    /// A migrated store on `backend` that lives as long as the returned guard.
    pub(crate) async fn temp_store_on(backend: Backend) -> (Store, Guard) {
        match backend {
            Backend::Sqlite => {
                let dir = tempfile::tempdir().unwrap();
                let path = dir.path().join("nested/test.db");
                let store = Store::open(&path).await.unwrap();
                (store, Guard::Dir { _dir: dir, path })
            }
            Backend::Postgres => {
                let server = crate::test_tools::postgres::server()
                    .expect("store_test! runs PostgreSQL tests only when a cluster is there");
                let url = server.fresh_database().await;
                let store = Store::open_postgres(&url, 4).await.unwrap();
                (store, Guard::Postgres(url))
            }
        }
    }

    /// Creates the list `daily` with `rows` subscribed to it; returns its id.
    pub(crate) async fn daily_list(
        store: &Store,
        rows: &[super::subscribers::NewSubscription],
    ) -> i64 {
        let list = store
            .create_list(
                &crate::domain::ListSlug::parse("daily").unwrap(),
                &super::ListSpec::default(),
            )
            .await
            .unwrap()
            .id;
        store
            .subscribe_batch(list, rows, "test", false)
            .await
            .unwrap();
        list
    }

    /// A migrated SQLite store, for tests outside the store that need one database.
    pub(crate) async fn temp_store() -> (Store, Guard) {
        temp_store_on(Backend::Sqlite).await
    }

    /// Whether the PostgreSQL half of a [`store_test!`] runs: the cluster is there, or the
    /// test passes with a notice (fails under `DISPATCH_REQUIRE_TOOLS=1`).
    pub(crate) fn postgres_or_skip() -> bool {
        crate::test_tools::postgres::server().is_some()
    }

    /// Runs the store test `async fn NAME(backend: Backend)` on both backends, as the
    /// tests `NAME::sqlite` and `NAME::postgres` (a module and a function may share a name).
    /// PostgreSQL runs on the test binary's throwaway cluster; where PostgreSQL is not
    /// installed that half passes with a notice (fails under `DISPATCH_REQUIRE_TOOLS=1`).
    ///
    /// ```ignore
    /// store_test!(lists_round_trip);
    /// async fn lists_round_trip(backend: Backend) {
    ///     let (store, _db) = temp_store_on(backend).await;
    ///     …
    /// }
    /// ```
    ///
    /// `store_test!(NAME, multi_thread)` runs both on tokio's multi-threaded runtime.
    macro_rules! store_test {
        ($name:ident) => {
            $crate::store::testutil::store_test!(@ $name, #[tokio::test]);
        };
        ($name:ident, multi_thread) => {
            $crate::store::testutil::store_test!(
                @ $name, #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            );
        };
        (@ $name:ident, #[$test:meta]) => {
            mod $name {
                #[$test]
                async fn sqlite() {
                    super::$name($crate::store::Backend::Sqlite).await
                }

                #[$test]
                async fn postgres() {
                    if $crate::store::testutil::postgres_or_skip() {
                        super::$name($crate::store::Backend::Postgres).await
                    }
                }
            }
        };
    }
    pub(crate) use store_test;

    /// A registered sender that never dies (its start is unknown), for claiming in tests.
    pub(crate) async fn sender(store: &Store) -> super::SenderId {
        store
            .register_sender(&super::SenderIdentity {
                host: "test".into(),
                pid: 1,
                started: "unknown".into(),
                node: "test".into(),
            })
            .await
            .unwrap()
    }

    /// Claims the one queued confirmation as a sender would, returning the token its
    /// message carries.
    pub(crate) async fn claim_confirmation(store: &Store) -> crate::domain::Token {
        let me = sender(store).await;
        let mut claimed = store
            .claim_mail(10, chrono::Duration::minutes(5), me)
            .await
            .unwrap();
        assert_eq!(claimed.len(), 1, "one confirmation queued");
        claimed.remove(0).token
    }
}

#[cfg(test)]
mod tests {
    use super::testutil::{store_test, temp_store, temp_store_on};
    use super::*;

    #[tokio::test]
    async fn sqlite_opens_in_wal_with_foreign_keys() {
        let (store, _dir) = temp_store().await;
        let Pool::Sqlite(pool) = store.pool() else {
            panic!("temp_store is SQLite")
        };
        let mode: String = sqlx::query_scalar("PRAGMA journal_mode")
            .fetch_one(pool)
            .await
            .unwrap();
        assert_eq!(mode, "wal");
        let fk: i64 = sqlx::query_scalar("PRAGMA foreign_keys")
            .fetch_one(pool)
            .await
            .unwrap();
        assert_eq!(fk, 1);
        store.ping().await.unwrap();
    }

    store_test!(every_open_of_one_database_reads_the_same_token_key);
    async fn every_open_of_one_database_reads_the_same_token_key(backend: Backend) {
        let (store, db) = temp_store_on(backend).await;
        store.ping().await.unwrap();
        assert_eq!(store.backend(), backend);
        let second = db.reopen().await;
        assert_eq!(
            second.token_key().as_bytes(),
            store.token_key().as_bytes(),
            "a second process reads the key the first one made"
        );
    }
}

#[cfg(test)]
mod tests_outbox;
