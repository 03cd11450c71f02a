//! The only place with SQL.
//!
//! SQLite in WAL mode with a busy timeout and foreign keys on; migrations are embedded and run
//! on open. Queries use the runtime API (`query`, `query_as` with `FromRow`) rather than the
//! compile-time macros so that a clean checkout builds without a database, and `$n`
//! placeholders so the SQL carries over to PostgreSQL.

use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use chrono::{DateTime, Utc};
use sqlx::SqlitePool;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};

use crate::domain::{TokenKey, VerpKey};

pub mod api_keys;
pub mod article_upsert;
pub mod articles;
pub mod bounces;
pub mod deliveries;
pub mod editions;
pub mod feeds;
pub mod leases;
pub mod lists;
pub mod mail_queue;
pub mod metrics;
pub mod retention;
pub mod senders;
pub mod sources;
pub mod subscribers;
pub mod tokens;

pub use crate::domain::{
    BounceSource, BounceType, DbTime, DeliveryStatus, EditionKind, EditionStatus, SubscriberStatus,
    SubscriptionStatus, TokenPurpose,
};
pub use api_keys::ApiKeyRow;
pub use article_upsert::Upserted;
pub use articles::{ArticleRow, NewArticle};
pub use bounces::{
    BounceRow, EditionBounces, Lookup, MatchedBy, NewBounceMessage, NewEvent, Recorded, Target,
    Thresholds,
};
pub use deliveries::{ClaimSkips, Claimed, Item, Outcome, Verdict};
pub use editions::{Created, EditionRow, NewEdition};
pub use feeds::{FeedPoll, FeedState};
pub use lists::{ListRow, ListSpec};
pub use mail_queue::{ClaimedMail, MailKind};
pub use metrics::MetricsSnapshot;
pub use senders::{SenderId, SenderIdentity, SenderRow, TakenOver};
pub use sources::{SourcePoll, SourceState, SqlValue};
pub use subscribers::{ImportOutcome, ImportSummary, SubscriberRow, SubscriptionInfo};
pub use tokens::{
    Confirmed, PreferenceChange, PreferenceRow, Preferences, SignupOutcome, TokenTarget,
    Unsubscribed, WebSignup,
};

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

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
#[derive(Debug, Clone)]
pub struct Store {
    pool: SqlitePool,
    writer: SqlitePool,
    /// One-click unsubscribes, committed in batches by [`tokens::unsubscribe_writer`].
    unsubscribes: tokio::sync::mpsc::Sender<tokens::UnsubscribeRequest>,
    /// The key reader tokens are derived with (see [`crate::domain::Token::derive`]).
    token_key: std::sync::Arc<TokenKey>,
    /// The key of VERP MACs, derived from `token_key`.
    verp_key: std::sync::Arc<VerpKey>,
}

impl Store {
    /// Opens (creating the file and its folder if needed) and migrates the database.
    pub async fn open(path: &Path) -> Result<Self> {
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
            .pragma("temp_store", "memory");
        let pool = SqlitePoolOptions::new()
            .max_connections(8)
            .acquire_timeout(Duration::from_secs(30))
            .connect_with(opts.clone())
            .await?;
        MIGRATOR.run(&pool).await?;
        let writer = SqlitePoolOptions::new()
            .max_connections(1)
            // A waiting writer queues behind the current one; a million-row snapshot can
            // hold the connection for seconds.
            .acquire_timeout(Duration::from_secs(120))
            .connect_with(opts)
            .await?;
        let token_key = load_token_key(&writer).await?;
        let verp_key = std::sync::Arc::new(VerpKey::derive(&token_key));
        let token_key = std::sync::Arc::new(token_key);
        let (unsubscribes, requests) = tokio::sync::mpsc::channel(1024);
        tokio::spawn(tokens::unsubscribe_writer(writer.clone(), requests));
        Ok(Self {
            pool,
            writer,
            unsubscribes,
            token_key,
            verp_key,
        })
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
    pub(crate) fn pool(&self) -> &SqlitePool {
        &self.pool
    }

    /// The single writing connection, for every statement that changes data.
    pub(crate) fn writer(&self) -> &SqlitePool {
        &self.writer
    }

    /// Begins a write transaction that takes SQLite's write lock at once, so that a
    /// read-then-write (e.g. computing an edition's window, claiming deliveries) cannot
    /// interleave with another writer's.
    pub(crate) async fn write_tx(&self) -> Result<sqlx::Transaction<'static, sqlx::Sqlite>> {
        Ok(self.writer.begin_with("BEGIN IMMEDIATE").await?)
    }

    /// Whether the database answers (for `/healthz`).
    pub async fn ping(&self) -> Result<()> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }

    /// Closes every connection (checkpointing the WAL).
    pub async fn close(&self) {
        self.writer.close().await;
        self.pool.close().await;
    }
}

/// Reads the installation's token key, making it on first open. The insert is a no-op when
/// another process made it first, so every process reads the same key.
async fn load_token_key(writer: &SqlitePool) -> Result<TokenKey> {
    sqlx::query(
        "INSERT INTO settings (key, value) VALUES ('token_key', $1) ON CONFLICT (key) DO NOTHING",
    )
    .bind(TokenKey::generate().as_bytes().to_vec())
    .execute(writer)
    .await?;
    let raw: Vec<u8> = sqlx::query_scalar("SELECT value FROM settings WHERE key = 'token_key'")
        .fetch_one(writer)
        .await?;
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
    use super::Store;

    /// A migrated store in a temporary folder that lives as long as the returned guard.
    pub(crate) async fn temp_store() -> (Store, tempfile::TempDir) {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("nested/test.db"))
            .await
            .unwrap();
        (store, dir)
    }

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
    use super::testutil::temp_store;

    #[tokio::test]
    async fn opens_in_wal_with_foreign_keys() {
        let (store, _dir) = temp_store().await;
        let mode: String = sqlx::query_scalar("PRAGMA journal_mode")
            .fetch_one(store.pool())
            .await
            .unwrap();
        assert_eq!(mode, "wal");
        let fk: i64 = sqlx::query_scalar("PRAGMA foreign_keys")
            .fetch_one(store.pool())
            .await
            .unwrap();
        assert_eq!(fk, 1);
        store.ping().await.unwrap();
    }
}

#[cfg(test)]
mod tests_outbox;
