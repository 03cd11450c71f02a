//! SQL sources: the cursor each `[[sql_sources]]` database has been read up to, what its
//! polls found (`sources list`), and the read-only read of the CMS's file itself.

use std::path::Path;
use std::str::FromStr as _;
use std::time::Duration;

use futures_util::TryStreamExt as _;
use sqlx::sqlite::{SqliteConnectOptions, SqlitePoolOptions, SqliteRow};
use sqlx::{Column as _, FromRow, Row as _, TypeInfo as _, ValueRef as _};

use super::polls::Polled;
use super::{Result, Store, db};
use crate::domain::DbTime;

/// A cursor value as the CMS returned it.
#[derive(Debug, Clone, PartialEq)]
pub enum SqlValue {
    Integer(i64),
    Real(f64),
    Text(String),
}

impl SqlValue {
    /// SQLite's order: every number before every text, numbers by value, texts by bytes.
    pub fn max(self, other: SqlValue) -> SqlValue {
        use std::cmp::Ordering;
        let num = |c: &SqlValue| match c {
            SqlValue::Integer(i) => Some(*i as f64),
            SqlValue::Real(r) => Some(*r),
            SqlValue::Text(_) => None,
        };
        let ord = match (&self, &other) {
            (SqlValue::Text(a), SqlValue::Text(b)) => a.cmp(b),
            (SqlValue::Text(_), _) => Ordering::Greater,
            (_, SqlValue::Text(_)) => Ordering::Less,
            (a, b) => num(a).partial_cmp(&num(b)).unwrap_or(Ordering::Equal),
        };
        if ord == Ordering::Less { other } else { self }
    }

    fn stored(&self) -> (String, &'static str) {
        match self {
            SqlValue::Integer(i) => (i.to_string(), "integer"),
            SqlValue::Real(r) => (r.to_string(), "real"),
            SqlValue::Text(t) => (t.clone(), "text"),
        }
    }

    fn from_stored(value: Option<String>, kind: Option<String>) -> Option<SqlValue> {
        let value = value?;
        Some(match kind.as_deref() {
            Some("integer") => SqlValue::Integer(value.parse().ok()?),
            Some("real") => SqlValue::Real(value.parse().ok()?),
            _ => SqlValue::Text(value),
        })
    }
}

impl std::fmt::Display for SqlValue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SqlValue::Integer(i) => write!(f, "{i}"),
            SqlValue::Real(r) => write!(f, "{r}"),
            SqlValue::Text(t) => write!(f, "{t:?}"),
        }
    }
}

/// One source's stored state.
#[derive(Debug, Clone, PartialEq)]
pub struct SourceState {
    pub path: String,
    pub cursor: Option<SqlValue>,
    pub last_poll_at: Option<DbTime>,
    pub last_success_at: Option<DbTime>,
    pub next_poll_at: Option<DbTime>,
    pub failures: i64,
    pub last_error: Option<String>,
    pub items_stored: i64,
    pub items_updated: i64,
    pub polls_ok: i64,
    pub polls_failed: i64,
}

#[derive(FromRow)]
struct Raw {
    path: String,
    cursor: Option<String>,
    cursor_kind: Option<String>,
    last_poll_at: Option<DbTime>,
    last_success_at: Option<DbTime>,
    next_poll_at: Option<DbTime>,
    failures: i64,
    last_error: Option<String>,
    items_stored: i64,
    items_updated: i64,
    polls_ok: i64,
    polls_failed: i64,
}

impl From<Raw> for SourceState {
    fn from(r: Raw) -> Self {
        Self {
            path: r.path,
            cursor: SqlValue::from_stored(r.cursor, r.cursor_kind),
            last_poll_at: r.last_poll_at,
            last_success_at: r.last_success_at,
            next_poll_at: r.next_poll_at,
            failures: r.failures,
            last_error: r.last_error,
            items_stored: r.items_stored,
            items_updated: r.items_updated,
            polls_ok: r.polls_ok,
            polls_failed: r.polls_failed,
        }
    }
}

/// What one poll of a source found, to record.
#[derive(Debug, Clone, PartialEq)]
pub enum SourcePoll {
    /// The query ran; `cursor` is the greatest seen (`None`: no rows, keep the stored one).
    Read {
        cursor: Option<SqlValue>,
        stored: u64,
        updated: u64,
    },
    Failed {
        error: String,
    },
}

const COLUMNS: &str = "path, cursor, cursor_kind, last_poll_at, last_success_at, next_poll_at, failures, last_error, items_stored, items_updated, polls_ok, polls_failed";

impl Store {
    /// The stored state of the source at `path`, if it was ever polled.
    pub async fn source_state(&self, path: &str) -> Result<Option<SourceState>> {
        let sql = format!("SELECT {COLUMNS} FROM sql_sources WHERE path = $1");
        let raw: Option<Raw> = db!(self.pool(), |c| {
            sqlx::query_as(sqlx::AssertSqlSafe(sql))
                .bind(path)
                .fetch_optional(c)
                .await
        })?;
        Ok(raw.map(Into::into))
    }

    /// Every source ever polled, by path.
    pub async fn source_states(&self) -> Result<Vec<SourceState>> {
        let sql = format!("SELECT {COLUMNS} FROM sql_sources ORDER BY path");
        let raw: Vec<Raw> = db!(self.pool(), |c| {
            sqlx::query_as(sqlx::AssertSqlSafe(sql)).fetch_all(c).await
        })?;
        Ok(raw.into_iter().map(Into::into).collect())
    }

    /// Records a poll of the source at `path` made at `at`, and when the next is due.
    pub async fn record_source_poll(
        &self,
        path: &str,
        at: DbTime,
        poll: &SourcePoll,
        next: DbTime,
    ) -> Result<()> {
        db!(self.writer(), |c| {
            match poll {
            SourcePoll::Read {
                cursor,
                stored,
                updated,
            } => {
                let (value, kind) = cursor.as_ref().map(SqlValue::stored).unzip();
                sqlx::query(
                    "INSERT INTO sql_sources (path, cursor, cursor_kind, last_poll_at, last_success_at, next_poll_at, items_stored, items_updated, polls_ok)
                     VALUES ($1, $2, $3, $4, $4, $5, $6, $7, 1)
                     ON CONFLICT (path) DO UPDATE SET
                         cursor = COALESCE($2, sql_sources.cursor),
                         cursor_kind = COALESCE($3, sql_sources.cursor_kind),
                         last_poll_at = $4, last_success_at = $4, next_poll_at = $5,
                         failures = 0, last_error = NULL,
                         items_stored = sql_sources.items_stored + $6,
                         items_updated = sql_sources.items_updated + $7,
                         polls_ok = sql_sources.polls_ok + 1",
                )
                .bind(path)
                .bind(value)
                .bind(kind)
                .bind(at)
                .bind(next)
                .bind(i64::try_from(*stored).unwrap_or(i64::MAX))
                .bind(i64::try_from(*updated).unwrap_or(i64::MAX))
            }
            SourcePoll::Failed { error } => {
                return self
                    .record_failed_poll(Polled::SqlSources, path, at, next, error)
                    .await;
            }
        }
        .execute(c)
        .await
        .affected()
        })?;
        Ok(())
    }
}

/// Rewrites the query's `:since` (outside quotes and comments) as `?1`, the only parameter
/// form our SQLite driver binds.
pub fn bind_since(query: &str) -> String {
    let b = query.as_bytes();
    let mut out = String::with_capacity(query.len());
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        let skip_to = |from: usize, end: &[u8]| {
            query[from..]
                .find(std::str::from_utf8(end).unwrap_or("\0"))
                .map_or(b.len(), |p| from + p + end.len())
        };
        let next = match c {
            b'\'' => skip_to(i + 1, b"'"),
            b'"' => skip_to(i + 1, b"\""),
            b'-' if b.get(i + 1) == Some(&b'-') => skip_to(i + 2, b"\n"),
            b'/' if b.get(i + 1) == Some(&b'*') => skip_to(i + 2, b"*/"),
            b':' if query[i..].starts_with(":since")
                && !b
                    .get(i + 6)
                    .is_some_and(|n| n.is_ascii_alphanumeric() || *n == b'_') =>
            {
                out.push_str("?1");
                i += 6;
                continue;
            }
            _ => i + query[i..].chars().next().map_or(1, char::len_utf8),
        };
        out.push_str(&query[i..next.min(b.len())]);
        i = next.min(b.len());
    }
    out
}

/// A row of a CMS's query: each column's name and value, in column order.
pub type CmsRow = Vec<(String, Option<SqlValue>)>;

/// One cell by its SQLite type.
fn cell(row: &SqliteRow, i: usize, name: &str) -> std::result::Result<Option<SqlValue>, String> {
    let raw = row.try_get_raw(i).map_err(|e| format!("{name}: {e}"))?;
    if raw.is_null() {
        return Ok(None);
    }
    let kind = raw.type_info().name().to_owned();
    let e = |e: sqlx::Error| format!("{name}: {e}");
    Ok(Some(match kind.as_str() {
        "INTEGER" | "BOOLEAN" => SqlValue::Integer(row.try_get::<i64, _>(i).map_err(e)?),
        "REAL" => SqlValue::Real(row.try_get::<f64, _>(i).map_err(e)?),
        "TEXT" => SqlValue::Text(row.try_get::<String, _>(i).map_err(e)?),
        other => return Err(format!("{name}: a {other} value cannot be read")),
    }))
}

/// Runs an operator's query on a CMS's SQLite file, read-only (`mode=ro`, `query_only`),
/// with `:since` bound to `since` (`''` when `None`), reading at most `max_rows` rows, and
/// closes the file again before returning. Not our database: nothing here is migrated or
/// written, and the journal mode is left as the CMS set it.
pub async fn read_cms(
    path: &Path,
    query: &str,
    since: Option<SqlValue>,
    max_rows: usize,
) -> std::result::Result<Vec<std::result::Result<CmsRow, String>>, String> {
    if !path.is_file() {
        return Err(format!("{} is not a file", path.display()));
    }
    let opts = SqliteConnectOptions::from_str("sqlite://")
        .map_err(|e| e.to_string())?
        .filename(path)
        .read_only(true)
        .create_if_missing(false)
        // A CMS mid-checkpoint (or in rollback-journal mode, mid-write) may hold the file
        // for a moment; wait that long, never longer.
        .busy_timeout(Duration::from_secs(5))
        .pragma("query_only", "ON");
    let pool = SqlitePoolOptions::new()
        .max_connections(1)
        .acquire_timeout(Duration::from_secs(10))
        .connect_with(opts)
        .await
        .map_err(|e| format!("cannot open {} read-only: {e}", path.display()))?;
    let q = sqlx::query(sqlx::AssertSqlSafe(bind_since(query)));
    let q = match since {
        None => q.bind(""),
        Some(SqlValue::Integer(i)) => q.bind(i),
        Some(SqlValue::Real(r)) => q.bind(r),
        Some(SqlValue::Text(t)) => q.bind(t),
    };
    let mut rows = Vec::new();
    let result: std::result::Result<(), sqlx::Error> = async {
        let mut stream = q.fetch(&pool);
        while let Some(row) = stream.try_next().await? {
            let cells: std::result::Result<CmsRow, String> = row
                .columns()
                .iter()
                .map(|c| Ok((c.name().to_owned(), cell(&row, c.ordinal(), c.name())?)))
                .collect();
            rows.push(cells);
            if rows.len() >= max_rows {
                break;
            }
        }
        Ok(())
    }
    .await;
    pool.close().await;
    result.map_err(|e| format!("the query failed: {e}"))?;
    Ok(rows)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::Backend;
    use crate::store::testutil::{store_test, temp_store_on};

    #[test]
    fn since_is_bound_outside_quotes_and_comments_only() {
        assert_eq!(
            bind_since(
                "SELECT ':since' AS a, \":since\" FROM t -- :since\nWHERE u > :since OR :since = ''"
            ),
            "SELECT ':since' AS a, \":since\" FROM t -- :since\nWHERE u > ?1 OR ?1 = ''"
        );
        assert_eq!(
            bind_since("x > :since_2 /* :since */"),
            "x > :since_2 /* :since */"
        );
        assert_eq!(bind_since("é > :since"), "é > ?1");
    }

    #[test]
    fn cursors_order_as_sqlite_does() {
        let t = |s: &str| SqlValue::Text(s.into());
        assert_eq!(t("2026-11-28").max(t("2026-11-29")), t("2026-11-29"));
        assert_eq!(
            SqlValue::Integer(9).max(SqlValue::Integer(10)),
            SqlValue::Integer(10)
        );
        assert_eq!(
            SqlValue::Integer(9).max(SqlValue::Real(9.5)),
            SqlValue::Real(9.5)
        );
        assert_eq!(SqlValue::Integer(100).max(t("")), t(""));
    }

    store_test!(the_cursor_and_its_type_survive_and_an_empty_poll_keeps_it);
    async fn the_cursor_and_its_type_survive_and_an_empty_poll_keeps_it(backend: Backend) {
        let (store, _dir) = temp_store_on(backend).await;
        let t = DbTime::now();
        let read = |cursor| SourcePoll::Read {
            cursor,
            stored: 2,
            updated: 1,
        };
        store
            .record_source_poll("cms.db", t, &read(Some(SqlValue::Integer(42))), t)
            .await
            .unwrap();
        store
            .record_source_poll("cms.db", t, &read(None), t)
            .await
            .unwrap();
        let s = store.source_state("cms.db").await.unwrap().unwrap();
        assert_eq!(s.cursor, Some(SqlValue::Integer(42)));
        assert_eq!((s.items_stored, s.items_updated, s.polls_ok), (4, 2, 2));
        let failed = SourcePoll::Failed {
            error: "no such table: posts".into(),
        };
        store
            .record_source_poll("cms.db", t, &failed, t)
            .await
            .unwrap();
        let s = store.source_state("cms.db").await.unwrap().unwrap();
        assert_eq!((s.failures, s.cursor), (1, Some(SqlValue::Integer(42))));
        assert_eq!(store.source_states().await.unwrap().len(), 1);
    }
}
