//! What feeds and SQL sources record alike about a poll: the failure counters and the
//! backoff state live in the same columns of `feeds` and `sql_sources`.

use super::{Result, Store, db};
use crate::domain::DbTime;

/// A table of polled intake, keyed by what the config names it by.
#[derive(Debug, Clone, Copy)]
pub(super) enum Polled {
    /// `feeds`, by URL.
    Feeds,
    /// `sql_sources`, by file path.
    SqlSources,
}

impl Polled {
    fn table_and_key(self) -> (&'static str, &'static str) {
        match self {
            Self::Feeds => ("feeds", "url"),
            Self::SqlSources => ("sql_sources", "path"),
        }
    }
}

impl Store {
    /// Records a failed poll of `key` made at `at`: one more failure in a row (the backoff),
    /// the error shown by `feeds list` / `sources list`, and when to try again. What the
    /// last good poll left (validators, cursor, counters) is kept.
    pub(super) async fn record_failed_poll(
        &self,
        polled: Polled,
        key: &str,
        at: DbTime,
        next: DbTime,
        error: &str,
    ) -> Result<()> {
        let (t, k) = polled.table_and_key();
        // Both names are the constants above, never input.
        let sql = format!(
            "INSERT INTO {t} ({k}, last_poll_at, next_poll_at, failures, last_error, polls_failed)
             VALUES ($1, $2, $3, 1, $4, 1)
             ON CONFLICT ({k}) DO UPDATE SET last_poll_at = $2, next_poll_at = $3,
                 failures = {t}.failures + 1, last_error = $4, polls_failed = {t}.polls_failed + 1"
        );
        db!(self.writer(), |c| {
            sqlx::query(sqlx::AssertSqlSafe(sql))
                .bind(key)
                .bind(at)
                .bind(next)
                .bind(error)
                .execute(c)
                .await
                .affected()
        })?;
        Ok(())
    }
}
