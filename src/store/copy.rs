//! Moving an installation from SQLite to PostgreSQL (`dispatch db copy`), and checking a
//! database without changing it (`dispatch db check`).
//!
//! The copy takes every table the PostgreSQL schema has, in foreign-key order, from one read
//! snapshot of the SQLite file, streamed with `COPY … FROM STDIN`, inside one PostgreSQL
//! transaction: either all of it arrives or none does. Columns are read and written by the
//! PostgreSQL column's type, so a table or column added by a later migration is copied
//! without touching this file. The token key travels with `settings`, so every reader link
//! already sent keeps working. Afterwards the row counts of every table are compared, and
//! identity sequences start past the copied ids, and the tables are analysed.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::str::FromStr;

use futures_util::TryStreamExt;
use serde::Serialize;
use sqlx::{AssertSqlSafe, Row as _};

use super::{Backend, Result, StoreError, migrator, open_pg, open_sqlite};
use crate::config::DatabaseTarget;

/// Rows of one table.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TableRows {
    pub table: String,
    pub rows: i64,
}

/// One migration as `db check` sees it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct MigrationState {
    pub version: i64,
    pub description: String,
    /// Recorded as applied in the database.
    pub applied: bool,
    /// Embedded in this binary.
    pub known: bool,
    /// Recorded with the checksum this binary has (false when edited after it ran).
    pub checksum_matches: bool,
}

/// What `dispatch db check` reports.
#[derive(Debug, Clone, Serialize)]
pub struct Check {
    pub backend: Backend,
    pub migrations: Vec<MigrationState>,
    pub tables: Vec<TableRows>,
}

impl Check {
    /// Whether the database is exactly at this binary's schema: every embedded migration
    /// applied with its checksum, none unknown.
    pub fn is_current(&self) -> bool {
        self.migrations
            .iter()
            .all(|m| m.applied && m.known && m.checksum_matches)
    }
}

/// What a column holds, by its PostgreSQL type (the copy's source of truth).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Int,
    Bool,
    Text,
    Bytes,
}

#[derive(Debug)]
struct Table {
    name: String,
    columns: Vec<(String, Kind)>,
    /// The identity column whose sequence must start past the copied ids.
    identity: Option<String>,
}

/// `"name"`, for a name read from the catalog.
fn quoted(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// Copies every table of the SQLite database at `from` into the empty PostgreSQL database
/// at `to` (one `COPY` per table, sent `batch` rows at a time), calling
/// `progress(table, rows so far)` as it goes.
/// Both are migrated to this binary's schema first. Refuses a target that holds any row.
/// Returns each table's row count, the same on both sides.
pub async fn copy_sqlite_to_postgres(
    from: &Path,
    to: &str,
    max_connections: u32,
    batch: usize,
    mut progress: impl FnMut(&str, u64),
) -> Result<Vec<TableRows>> {
    if !from.is_file() {
        return Err(StoreError::NotFound(format!(
            "SQLite database {}",
            from.display()
        )));
    }
    let (source, writer) = open_sqlite(from).await?;
    migrator(Backend::Sqlite).run(&writer).await?;
    writer.close().await;
    let target = open_pg(to, max_connections).await?;
    migrator(Backend::Postgres).run(&target).await?;

    let tables = pg_tables(&target).await?;
    for t in &tables {
        let n: i64 = sqlx::query_scalar(AssertSqlSafe(format!(
            "SELECT COUNT(*) FROM {}",
            quoted(&t.name)
        )))
        .fetch_one(&target)
        .await?;
        if n > 0 {
            return Err(StoreError::Conflict(format!(
                "the PostgreSQL database is not empty ({n} row(s) in {}); copy into a new, empty database",
                t.name
            )));
        }
    }

    // One snapshot of the source for the whole copy, counts included.
    let mut snapshot = source.begin().await?;
    let mut counts = Vec::with_capacity(tables.len());
    let mut tx = target.begin().await?;
    // `list_counts` is copied as it is: the triggers that count subscriptions as they are
    // written stand aside for this transaction, or the copied ones would be counted twice.
    sqlx::query("SET LOCAL dispatch.copying = 'on'")
        .execute(&mut *tx)
        .await?;
    for t in &tables {
        let select = t
            .columns
            .iter()
            .map(|(c, kind)| {
                let as_type = match kind {
                    Kind::Int | Kind::Bool => "INTEGER",
                    Kind::Text => "TEXT",
                    Kind::Bytes => "BLOB",
                };
                format!("CAST({} AS {as_type})", quoted(c))
            })
            .collect::<Vec<_>>()
            .join(", ");
        let expected: i64 = sqlx::query_scalar(AssertSqlSafe(format!(
            "SELECT COUNT(*) FROM {}",
            quoted(&t.name)
        )))
        .fetch_one(&mut *snapshot)
        .await?;
        let copied = copy_table(&mut snapshot, &mut tx, t, &select, batch, &mut progress).await?;
        if copied != expected as u64 {
            return Err(StoreError::Conflict(format!(
                "{}: read {copied} row(s) of {expected}; nothing was copied",
                t.name
            )));
        }
        if let Some(id) = &t.identity {
            // The next id after the copied ones (1 for an empty table).
            sqlx::query(AssertSqlSafe(format!(
                "SELECT setval(pg_get_serial_sequence($1, $2), COALESCE(MAX({col}), 0) + 1, false) FROM {table}",
                col = quoted(id),
                table = quoted(&t.name)
            )))
            .bind(&t.name)
            .bind(id)
            .execute(&mut *tx)
            .await?;
        }
        counts.push(TableRows {
            table: t.name.clone(),
            rows: expected,
        });
    }
    tx.commit().await?;
    snapshot.commit().await?;

    // The copy committed; check what the target now holds against what was read.
    for c in &counts {
        let n: i64 = sqlx::query_scalar(AssertSqlSafe(format!(
            "SELECT COUNT(*) FROM {}",
            quoted(&c.table)
        )))
        .fetch_one(&target)
        .await?;
        if n != c.rows {
            return Err(StoreError::Conflict(format!(
                "{}: {} row(s) in SQLite but {n} in PostgreSQL after the copy",
                c.table, c.rows
            )));
        }
    }
    // Fresh statistics, so the first edition's snapshot is planned for the copied rows
    // rather than for empty tables (autovacuum would get there, later).
    sqlx::query("ANALYZE").execute(&target).await?;
    target.close().await;
    source.close().await;
    Ok(counts)
}

/// Streams every row of `t` from the SQLite snapshot into PostgreSQL with one `COPY … FROM
/// STDIN` (text format), sending `batch` rows at a time; returns how many rows PostgreSQL
/// took. `COPY` writes many rows per WAL record and parses no SQL per row: the batched
/// `INSERT`s it replaced took 4–5 minutes per million readers.
async fn copy_table(
    snapshot: &mut sqlx::Transaction<'static, sqlx::Sqlite>,
    tx: &mut sqlx::Transaction<'static, sqlx::Postgres>,
    t: &Table,
    select: &str,
    batch: usize,
    progress: &mut impl FnMut(&str, u64),
) -> Result<u64> {
    let columns = t
        .columns
        .iter()
        .map(|(c, _)| quoted(c))
        .collect::<Vec<_>>()
        .join(", ");
    let mut copy = tx
        .copy_in_raw(&format!("COPY {} ({columns}) FROM STDIN", quoted(&t.name)))
        .await?;
    let mut rows = sqlx::query(AssertSqlSafe(format!(
        "SELECT {select} FROM {} ORDER BY rowid",
        quoted(&t.name)
    )))
    .fetch(&mut **snapshot);
    let mut buf = Vec::new();
    let mut sent = 0u64;
    let streamed: Result<()> = async {
        let mut in_buf = 0usize;
        while let Some(row) = rows.try_next().await? {
            for (i, (column, kind)) in t.columns.iter().enumerate() {
                let bad = |e: sqlx::Error| {
                    StoreError::Conflict(format!("{}.{column}: cannot read a value: {e}", t.name))
                };
                if i > 0 {
                    buf.push(b'\t');
                }
                match kind {
                    Kind::Int => {
                        let v: Option<i64> = row.try_get(i).map_err(bad)?;
                        encode(
                            &mut buf,
                            v.map(|v| v.to_string()).as_deref().map(str::as_bytes),
                        );
                    }
                    Kind::Bool => {
                        let v: Option<i64> = row.try_get(i).map_err(bad)?;
                        encode(
                            &mut buf,
                            v.map(|v| if v != 0 { &b"t"[..] } else { &b"f"[..] }),
                        );
                    }
                    Kind::Text => {
                        let v: Option<String> = row.try_get(i).map_err(bad)?;
                        encode(&mut buf, v.as_deref().map(str::as_bytes));
                    }
                    Kind::Bytes => {
                        let v: Option<Vec<u8>> = row.try_get(i).map_err(bad)?;
                        // bytea's hex input form, `\x0a1b…`.
                        let hex = v.map(|b| {
                            let mut h = String::with_capacity(2 + 2 * b.len());
                            h.push_str("\\x");
                            for byte in b {
                                h.push_str(&format!("{byte:02x}"));
                            }
                            h
                        });
                        encode(&mut buf, hex.as_deref().map(str::as_bytes));
                    }
                }
            }
            buf.push(b'\n');
            in_buf += 1;
            if in_buf >= batch.max(1) {
                copy.send(buf.as_slice()).await?;
                buf.clear();
                sent += in_buf as u64;
                in_buf = 0;
                progress(&t.name, sent);
            }
        }
        if in_buf > 0 {
            copy.send(buf.as_slice()).await?;
            sent += in_buf as u64;
            progress(&t.name, sent);
        }
        Ok(())
    }
    .await;
    drop(rows);
    match streamed {
        Ok(()) => copy.finish().await.map_err(|e| {
            StoreError::Conflict(format!("copying {}: {e}; nothing was copied", t.name))
        }),
        Err(e) => {
            // Ends the COPY so the transaction can roll back; the read error is the news.
            let _ = copy.abort("the source could not be read").await;
            Err(e)
        }
    }
}

/// Appends one value in `COPY`'s text format (PostgreSQL manual, COPY, "Text Format"):
/// `\N` for NULL; backslash, newline, carriage return and tab escaped, everything else as is.
/// bytea goes in its hex form (`\x0a1b…`), whose backslash this escapes like any other.
fn encode(out: &mut Vec<u8>, value: Option<&[u8]>) {
    let Some(value) = value else {
        out.extend_from_slice(b"\\N");
        return;
    };
    for &b in value {
        match b {
            b'\\' => out.extend_from_slice(b"\\\\"),
            b'\n' => out.extend_from_slice(b"\\n"),
            b'\r' => out.extend_from_slice(b"\\r"),
            b'\t' => out.extend_from_slice(b"\\t"),
            _ => out.push(b),
        }
    }
}

/// The tables of the PostgreSQL schema, parents before the tables that refer to them.
async fn pg_tables(pool: &sqlx::PgPool) -> Result<Vec<Table>> {
    let rows = sqlx::query(
        "SELECT c.table_name::text AS t, c.column_name::text AS c, c.data_type::text AS ty,
                c.is_identity::text AS ident
         FROM information_schema.columns c
         JOIN information_schema.tables t
           ON t.table_schema = c.table_schema AND t.table_name = c.table_name
         WHERE c.table_schema = current_schema() AND t.table_type = 'BASE TABLE'
           AND c.table_name NOT LIKE '\\_sqlx%'
         ORDER BY c.table_name, c.ordinal_position",
    )
    .fetch_all(pool)
    .await?;
    let mut tables: BTreeMap<String, Table> = BTreeMap::new();
    for r in rows {
        let (name, column, ty): (String, String, String) = (r.get("t"), r.get("c"), r.get("ty"));
        let kind = match ty.as_str() {
            "bigint" | "integer" | "smallint" => Kind::Int,
            "boolean" => Kind::Bool,
            "text" => Kind::Text,
            "bytea" => Kind::Bytes,
            other => {
                return Err(StoreError::Conflict(format!(
                    "{name}.{column} has type {other}, which the copy does not know"
                )));
            }
        };
        let t = tables.entry(name.clone()).or_insert_with(|| Table {
            name,
            columns: Vec::new(),
            identity: None,
        });
        if r.get::<String, _>("ident") == "YES" {
            t.identity = Some(column.clone());
        }
        t.columns.push((column, kind));
    }
    let edges: Vec<(String, String)> = sqlx::query_as(
        "SELECT conrelid::regclass::text, confrelid::regclass::text FROM pg_constraint
         WHERE contype = 'f' AND connamespace = current_schema()::regnamespace",
    )
    .fetch_all(pool)
    .await?;
    // Parents first: repeatedly take the tables whose copied parents are all placed.
    let all: BTreeSet<String> = tables.keys().cloned().collect();
    let mut parents: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for (child, parent) in edges {
        if child != parent && all.contains(&parent) {
            parents.entry(child).or_default().insert(parent);
        }
    }
    let mut ordered = Vec::with_capacity(tables.len());
    let mut placed = BTreeSet::new();
    while !tables.is_empty() {
        let ready: Vec<String> = tables
            .keys()
            .filter(|t| parents.get(*t).is_none_or(|ps| ps.is_subset(&placed)))
            .cloned()
            .collect();
        if ready.is_empty() {
            return Err(StoreError::Conflict(
                "the foreign keys of the PostgreSQL schema form a cycle; cannot order the copy"
                    .into(),
            ));
        }
        for name in ready {
            if let Some(t) = tables.remove(&name) {
                placed.insert(name);
                ordered.push(t);
            }
        }
    }
    Ok(ordered)
}

/// Reports the migrations and row counts of the database `target` without migrating or
/// otherwise changing it.
pub async fn check(target: &DatabaseTarget) -> Result<Check> {
    match target {
        DatabaseTarget::Sqlite(path) => {
            if !path.is_file() {
                return Err(StoreError::NotFound(format!(
                    "SQLite database {}",
                    path.display()
                )));
            }
            let opts = sqlx::sqlite::SqliteConnectOptions::from_str("sqlite://")?
                .filename(path)
                .create_if_missing(false)
                .busy_timeout(std::time::Duration::from_secs(15));
            let pool = sqlx::sqlite::SqlitePoolOptions::new()
                .max_connections(1)
                .connect_with(opts)
                .await?;
            let names: Vec<String> = sqlx::query_scalar(
                // Ordinary tables: not the FTS5 title index's virtual and shadow tables.
                "SELECT name FROM pragma_table_list WHERE schema = 'main' AND type = 'table'
                   AND name NOT LIKE 'sqlite\\_%' ESCAPE '\\' AND name NOT LIKE '\\_sqlx%' ESCAPE '\\'
                 ORDER BY name",
            )
            .fetch_all(&pool)
            .await?;
            let applied: Vec<(i64, Vec<u8>)> = if has_migrations_sqlite(&pool).await? {
                sqlx::query_as(
                    "SELECT version, checksum FROM _sqlx_migrations WHERE success ORDER BY version",
                )
                .fetch_all(&pool)
                .await?
            } else {
                Vec::new()
            };
            let mut tables = Vec::with_capacity(names.len());
            for name in names {
                let rows: i64 = sqlx::query_scalar(AssertSqlSafe(format!(
                    "SELECT COUNT(*) FROM {}",
                    quoted(&name)
                )))
                .fetch_one(&pool)
                .await?;
                tables.push(TableRows { table: name, rows });
            }
            pool.close().await;
            Ok(report(Backend::Sqlite, &applied, tables))
        }
        DatabaseTarget::Postgres { url, .. } => {
            let pool = open_pg(url.expose(), 2).await?;
            let names: Vec<String> = sqlx::query_scalar(
                "SELECT table_name::text FROM information_schema.tables
                 WHERE table_schema = current_schema() AND table_type = 'BASE TABLE'
                   AND table_name NOT LIKE '\\_sqlx%'
                 ORDER BY table_name",
            )
            .fetch_all(&pool)
            .await?;
            let recorded: bool = sqlx::query_scalar(
                "SELECT EXISTS (SELECT 1 FROM information_schema.tables
                                WHERE table_schema = current_schema() AND table_name = '_sqlx_migrations')",
            )
            .fetch_one(&pool)
            .await?;
            let applied: Vec<(i64, Vec<u8>)> = if recorded {
                sqlx::query_as(
                    "SELECT version, checksum FROM _sqlx_migrations WHERE success ORDER BY version",
                )
                .fetch_all(&pool)
                .await?
            } else {
                Vec::new()
            };
            let mut tables = Vec::with_capacity(names.len());
            for name in names {
                let rows: i64 = sqlx::query_scalar(AssertSqlSafe(format!(
                    "SELECT COUNT(*) FROM {}",
                    quoted(&name)
                )))
                .fetch_one(&pool)
                .await?;
                tables.push(TableRows { table: name, rows });
            }
            pool.close().await;
            Ok(report(Backend::Postgres, &applied, tables))
        }
    }
}

async fn has_migrations_sqlite(pool: &sqlx::SqlitePool) -> Result<bool> {
    Ok(sqlx::query_scalar::<_, i64>(
        "SELECT COUNT(*) FROM sqlite_master WHERE type = 'table' AND name = '_sqlx_migrations'",
    )
    .fetch_one(pool)
    .await?
        > 0)
}

/// The migrations of `backend` this binary embeds, against those `applied` (version,
/// checksum) in the database.
fn report(backend: Backend, applied: &[(i64, Vec<u8>)], tables: Vec<TableRows>) -> Check {
    let embedded = migrator(backend);
    let mut migrations: Vec<MigrationState> = embedded
        .iter()
        .map(|m| {
            let stored = applied.iter().find(|(v, _)| *v == m.version);
            MigrationState {
                version: m.version,
                description: m.description.to_string(),
                applied: stored.is_some(),
                known: true,
                checksum_matches: stored.is_some_and(|(_, c)| c.as_slice() == &*m.checksum),
            }
        })
        .collect();
    for (version, _) in applied {
        if !embedded.iter().any(|m| m.version == *version) {
            migrations.push(MigrationState {
                version: *version,
                description: "(not in this binary: written by a newer dispatch?)".into(),
                applied: true,
                known: false,
                checksum_matches: false,
            });
        }
    }
    migrations.sort_by_key(|m| m.version);
    Check {
        backend,
        migrations,
        tables,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{EmailAddress, ListSlug};
    use crate::store::subscribers::NewSubscription;
    use crate::store::testutil::{postgres_or_skip, sender, temp_store_on};
    use crate::store::{Backend, ListSpec, Store, db, tokens};

    const AWKWARD_NAME: &str = "Tab\there, back\\slash \\N, new\nline\r";

    #[test]
    fn copy_text_format_escapes_its_separators_and_marks_null() {
        let mut out = Vec::new();
        encode(&mut out, Some(AWKWARD_NAME.as_bytes()));
        out.push(b'|');
        encode(&mut out, None);
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "Tab\\there, back\\\\slash \\\\N, new\\nline\\r|\\N"
        );
    }

    #[tokio::test]
    async fn a_copied_database_has_every_row_and_its_tokens_still_work() {
        if !postgres_or_skip() {
            return;
        }
        let (sqlite, guard) = temp_store_on(Backend::Sqlite).await;
        let list = sqlite
            .create_list(&ListSlug::parse("daily").unwrap(), &ListSpec::default())
            .await
            .unwrap();
        let rows: Vec<NewSubscription> = (0..25)
            .map(|i| NewSubscription {
                email: EmailAddress::parse(&format!("r{i}@example.com")).unwrap(),
                // Every byte COPY's text format escapes, and a backslash-N that is not NULL.
                name: (i == 0).then(|| AWKWARD_NAME.to_owned()),
                categories: None,
            })
            .collect();
        sqlite
            .subscribe_batch(list.id, &rows, "test", false)
            .await
            .unwrap();
        let crate::store::Created::New { id, .. } = sqlite
            .create_edition(&crate::store::NewEdition {
                list_id: list.id,
                kind: crate::domain::EditionKind::Digest,
                slot: None,
                breaking_article_id: None,
                window_start: chrono::Utc::now() - chrono::Duration::days(1),
                window_end: chrono::Utc::now(),
                subject: "Daily".into(),
                articles: vec![],
                skip_reason: None,
                empty_variants: vec![],
            })
            .await
            .unwrap()
        else {
            panic!("a new edition")
        };
        let me = sender(&sqlite).await;
        let (claimed, _) = sqlite
            .claim_deliveries(id, list.id, 100, chrono::Duration::minutes(5), me)
            .await
            .unwrap();
        assert_eq!(claimed.len(), 25);
        sqlite.close().await;
        let crate::store::testutil::Guard::Dir { path, .. } = &guard else {
            panic!("an SQLite guard")
        };

        let url = crate::test_tools::postgres::server()
            .unwrap()
            .fresh_database()
            .await;
        // Small batches, so the copy takes many statements per table.
        let counts = copy_sqlite_to_postgres(path, &url, 4, 7, |_, _| {})
            .await
            .unwrap();
        let n = |t: &str| counts.iter().find(|c| c.table == t).map(|c| c.rows);
        assert_eq!(n("subscriptions"), Some(25));
        assert_eq!(n("deliveries"), Some(25));
        assert_eq!(n("tokens"), Some(25));
        assert_eq!(n("settings"), Some(1));

        let pg = Store::open_postgres(&url, 4).await.unwrap();
        let names: Vec<Option<String>> = db!(pg.pool(), |c| {
            sqlx::query_scalar("SELECT name FROM subscribers ORDER BY id")
                .fetch_all(c)
                .await
        })
        .unwrap();
        assert_eq!(names[0].as_deref(), Some(AWKWARD_NAME));
        assert!(names[1..].iter().all(Option::is_none));
        // The same key: a link sent from SQLite opens the reader's page on PostgreSQL.
        let target = pg
            .token_target(&claimed[3].token, tokens::READER_PURPOSES)
            .await
            .unwrap()
            .expect("the old link works");
        assert_eq!(target.subscriber_id, claimed[3].subscriber_id);
        // The counts arrive as they were, not counted again by the triggers as the
        // subscriptions are copied, and keep counting afterwards.
        assert_eq!(n("list_counts"), Some(1));
        assert_eq!(pg.subscription_counts(list.id).await.unwrap(), (0, 25, 0));
        pg.unsubscribe_email(
            &EmailAddress::parse("r1@example.com").unwrap(),
            Some(list.id),
        )
        .await
        .unwrap();
        assert_eq!(pg.subscription_counts(list.id).await.unwrap(), (0, 24, 1));
        // Identities continue past the copied ids.
        let next = pg
            .create_list(&ListSlug::parse("weekly").unwrap(), &ListSpec::default())
            .await
            .unwrap();
        assert!(next.id > list.id);
        // A second copy into the now non-empty database is refused, and changes nothing.
        let again = copy_sqlite_to_postgres(path, &url, 4, 1000, |_, _| {}).await;
        assert!(
            matches!(&again, Err(StoreError::Conflict(m)) if m.contains("not empty")),
            "{again:?}"
        );
        let check = check(&DatabaseTarget::Postgres {
            url: crate::config::PostgresUrl::parse(&url).unwrap(),
            max_connections: 2,
        })
        .await
        .unwrap();
        assert!(check.is_current(), "{check:?}");
        assert_eq!(
            check
                .tables
                .iter()
                .find(|t| t.table == "lists")
                .map(|t| t.rows),
            Some(2)
        );
    }

    #[tokio::test]
    async fn check_reports_a_database_without_changing_it() {
        let (store, guard) = temp_store_on(Backend::Sqlite).await;
        store.close().await;
        let crate::store::testutil::Guard::Dir { path, .. } = &guard else {
            panic!("an SQLite guard")
        };
        let before = std::fs::read(path).unwrap();
        let c = check(&DatabaseTarget::Sqlite(path.clone())).await.unwrap();
        assert!(c.is_current(), "{c:?}");
        assert!(
            c.tables
                .iter()
                .any(|t| t.table == "deliveries" && t.rows == 0)
        );
        assert_eq!(c.migrations.len(), migrator(Backend::Sqlite).iter().count());
        assert_eq!(std::fs::read(path).unwrap(), before, "check writes nothing");
        let missing = check(&DatabaseTarget::Sqlite(path.with_file_name("nope.db"))).await;
        assert!(
            matches!(missing, Err(StoreError::NotFound(_))),
            "{missing:?}"
        );
    }
}
