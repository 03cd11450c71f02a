//! The PostgreSQL database a `pg-*` benchmark fills: one of its own, created on the server
//! that `DISPATCH_BENCH_POSTGRES` names and dropped afterwards. Each benchmark needs an
//! empty database (`db copy` refuses any other), so with one shared database `all` could run
//! only the first of them; and a database left with a million dead rows by one benchmark
//! wakes autovacuum in the middle of the next one's measurement.

use anyhow::{Context as _, Result};
use sqlx::Connection as _;
use sqlx::postgres::PgConnection;

/// The variable naming a PostgreSQL database whose owner may create databases.
pub(crate) const ENV: &str = "DISPATCH_BENCH_POSTGRES";

/// A benchmark's own database, `<the named database>_<benchmark>`.
pub(crate) struct BenchDb {
    /// The named database, from which this one is created and dropped.
    admin: String,
    /// The new database's name, quoted as an identifier.
    quoted: String,
    /// How the benchmark connects to its database.
    pub(crate) url: String,
}

impl BenchDb {
    /// Creates the database of benchmark `bench` (dropping one an interrupted run left), or
    /// `None` when `DISPATCH_BENCH_POSTGRES` is not set.
    pub(crate) async fn create(bench: &str) -> Result<Option<Self>> {
        let Ok(admin) = std::env::var(ENV) else {
            return Ok(None);
        };
        let mut url =
            url::Url::parse(&admin).with_context(|| format!("{ENV} is not a postgres:// URL"))?;
        let base = url.path().trim_start_matches('/');
        let base = if base.is_empty() { "postgres" } else { base };
        let name = format!("{base}_{}", bench.replace('-', "_"));
        url.set_path(&format!("/{name}"));
        let db = Self {
            admin,
            quoted: format!("\"{}\"", name.replace('"', "\"\"")),
            url: url.to_string(),
        };
        db.admin_sql(&format!(
            "DROP DATABASE IF EXISTS {} WITH (FORCE)",
            db.quoted
        ))
        .await?;
        db.admin_sql(&format!("CREATE DATABASE {}", db.quoted))
            .await?;
        Ok(Some(db))
    }

    /// Drops the database (every connection to it must be closed by now).
    pub(crate) async fn remove(self) -> Result<()> {
        self.admin_sql(&format!(
            "DROP DATABASE IF EXISTS {} WITH (FORCE)",
            self.quoted
        ))
        .await
    }

    async fn admin_sql(&self, sql: &str) -> Result<()> {
        let mut c = PgConnection::connect(&self.admin)
            .await
            .with_context(|| format!("connecting to the database {ENV} names"))?;
        // The name is ours plus the one in ENV, quoted as an identifier.
        sqlx::raw_sql(sqlx::AssertSqlSafe(sql.to_owned()))
            .execute(&mut c)
            .await
            .with_context(|| format!("{sql} (on the server {ENV} names)"))?;
        c.close().await?;
        Ok(())
    }
}
