//! A database file in a temporary directory, and a raw pool on it for what tests do behind
//! the store's back (backdating rows, reading statuses the store does not expose).

use std::path::{Path, PathBuf};
use std::time::Duration;

use dispatch::store::Store;
use sqlx::SqlitePool;
use sqlx::sqlite::{SqliteConnectOptions, SqlitePoolOptions};
use tempfile::TempDir;

/// `dispatch.db` in a fresh temporary directory, removed when this is dropped. The file does
/// not exist until something opens it.
pub struct TempDb {
    dir: TempDir,
    path: PathBuf,
}

impl Default for TempDb {
    fn default() -> Self {
        Self::new()
    }
}

impl TempDb {
    /// A fresh directory; the database path inside it.
    pub fn new() -> Self {
        let dir = tempfile::Builder::new()
            .prefix("dispatch-db-")
            .tempdir()
            .expect("create temp dir");
        let path = dir.path().join("dispatch.db");
        Self { dir, path }
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The temporary directory, for files a test puts next to the database.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Opens (and on first use creates and migrates) the store on the file.
    pub async fn store(&self) -> Store {
        Store::open(&self.path).await.expect("open the store")
    }
}

/// One connection to the file, waiting up to 15 s for the store's writers (SQLite's busy
/// timeout), so a test's own reads and writes never fail with "database is locked".
pub async fn raw_pool(path: &Path) -> SqlitePool {
    SqlitePoolOptions::new()
        .max_connections(1)
        .connect_with(
            SqliteConnectOptions::new()
                .filename(path)
                .busy_timeout(Duration::from_secs(15)),
        )
        .await
        .expect("open a raw pool on the test database")
}

/// A pool of one connection on `db`'s file with every migration older than `version` (a
/// migration's leading number) applied and no later one, as a database this version of
/// `dispatch` upgrades would be: for tests of a migration that rewrites existing rows.
#[allow(dead_code)] // only the migration tests use it
pub async fn migrated_before(db: &TempDb, version: &str) -> SqlitePool {
    let older = db.dir().join("older-migrations");
    std::fs::create_dir(&older).unwrap();
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("migrations");
    for entry in std::fs::read_dir(&src).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        if path.is_file() && name.ends_with(".sql") && name.as_str() < version {
            std::fs::copy(&path, older.join(&name)).unwrap();
        }
    }
    let pool = SqlitePoolOptions::new()
        .max_connections(1)
        .connect_with(
            SqliteConnectOptions::new()
                .filename(db.path())
                .create_if_missing(true)
                .foreign_keys(true),
        )
        .await
        .unwrap();
    sqlx::migrate::Migrator::new(older.as_path())
        .await
        .unwrap()
        .run(&pool)
        .await
        .unwrap();
    pool
}
