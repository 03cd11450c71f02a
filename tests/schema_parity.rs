//! The SQLite migrations (`migrations/`) and the PostgreSQL ones (`migrations/postgres/`) build
//! the same schema: the same tables, each with the same columns, of the same type family and
//! nullability. The store runs one SQL text on both, so a column added to one set only would
//! break the other at run time; this catches it at test time.

mod support;

use std::collections::BTreeMap;

use dispatch::store::Store;
use sqlx::Row as _;
use support::db::TempDb;

/// What a column holds, as far as both databases can agree.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Family {
    /// SQLite `INTEGER`: PostgreSQL `bigint`, or `boolean` for a flag (SQLite stores 0/1).
    Integer,
    Text,
    Blob,
}

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct Column {
    family: Family,
    nullable: bool,
}

type Schema = BTreeMap<String, BTreeMap<String, Column>>;

/// Tables the migrators keep for themselves.
fn ours(table: &str) -> bool {
    !table.starts_with("_sqlx") && !table.starts_with("sqlite_")
}

async fn sqlite_schema() -> Schema {
    let db = TempDb::new();
    db.store().await.close().await;
    let pool = support::db::raw_pool(db.path()).await;
    let tables: Vec<String> =
        // Ordinary tables only: an FTS5 index (a virtual table and its shadow tables) is
        // SQLite's own, PostgreSQL indexes the same column its own way.
        sqlx::query_scalar(
            "SELECT name FROM pragma_table_list WHERE schema = 'main' AND type = 'table' ORDER BY name",
        )
            .fetch_all(&pool)
            .await
            .unwrap();
    let mut schema = Schema::new();
    for table in tables.into_iter().filter(|t| ours(t)) {
        let rows = sqlx::query("SELECT name, type, \"notnull\", pk FROM pragma_table_info($1)")
            .bind(&table)
            .fetch_all(&pool)
            .await
            .unwrap();
        let columns = rows
            .iter()
            .map(|r| {
                let declared: String = r.get("type");
                let family = match declared.to_ascii_uppercase().as_str() {
                    "INTEGER" => Family::Integer,
                    "TEXT" => Family::Text,
                    "BLOB" => Family::Blob,
                    other => panic!("{table}: SQLite type {other} has no family here"),
                };
                // An INTEGER PRIMARY KEY is the rowid: never NULL, whatever the pragma says.
                let pk: i64 = r.get("pk");
                let notnull: i64 = r.get("notnull");
                (
                    r.get::<String, _>("name"),
                    Column {
                        family,
                        nullable: notnull == 0 && pk == 0,
                    },
                )
            })
            .collect();
        schema.insert(table, columns);
    }
    pool.close().await;
    schema
}

async fn postgres_schema(url: &str) -> Schema {
    Store::open_postgres(url, 2).await.unwrap().close().await;
    let pool = sqlx::PgPool::connect(url).await.unwrap();
    let rows = sqlx::query(
        "SELECT c.table_name::text AS t, c.column_name::text AS c, c.data_type::text AS ty,
                c.is_nullable::text AS n
         FROM information_schema.columns c
         JOIN information_schema.tables t
           ON t.table_schema = c.table_schema AND t.table_name = c.table_name
         WHERE c.table_schema = current_schema() AND t.table_type = 'BASE TABLE'",
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    let mut schema = Schema::new();
    for r in rows {
        let (table, column, ty): (String, String, String) = (r.get("t"), r.get("c"), r.get("ty"));
        if !ours(&table) {
            continue;
        }
        let family = match ty.as_str() {
            "bigint" | "boolean" => Family::Integer,
            "text" => Family::Text,
            "bytea" => Family::Blob,
            other => panic!("{table}.{column}: PostgreSQL type {other} has no family here"),
        };
        let nullable = r.get::<String, _>("n") == "YES";
        schema
            .entry(table)
            .or_default()
            .insert(column, Column { family, nullable });
    }
    pool.close().await;
    schema
}

#[tokio::test]
async fn both_migration_sets_build_the_same_tables_and_columns() {
    let Some(server) = support::postgres::server() else {
        return;
    };
    let url = server.fresh_database().await;
    let (sqlite, postgres) = (sqlite_schema().await, postgres_schema(&url).await);
    assert!(sqlite.contains_key("deliveries"), "{sqlite:?}");
    let tables = |s: &Schema| s.keys().cloned().collect::<Vec<_>>();
    assert_eq!(
        tables(&sqlite),
        tables(&postgres),
        "tables differ: add the migration to both migrations/ and migrations/postgres/"
    );
    for (table, columns) in &sqlite {
        assert_eq!(
            Some(columns),
            postgres.get(table),
            "table {table}: columns differ (SQLite left, PostgreSQL right)"
        );
    }
}
