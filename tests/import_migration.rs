//! The import migration (`migrations/20261214000000_import.sql`) rebuilds `subscribers` on
//! SQLite without the UNIQUE on `email` that `email_key` already implies. On a database that
//! already holds readers the rebuild must keep every one of them, and everything that points
//! at them: dropping the old table with foreign keys on would cascade to the subscriptions.

mod support;

use dispatch::store::Store;
use support::db::{TempDb, migrated_before, raw_pool};

/// The migration this test is about; every earlier one is applied first, by hand.
const IMPORT_MIGRATION: &str = "20261214000000";

#[tokio::test]
async fn rebuilding_subscribers_keeps_every_reader_and_their_subscriptions() {
    let db = TempDb::new();
    // The migrations before this one, in a folder of their own.
    let pool = migrated_before(&db, IMPORT_MIGRATION).await;
    let t = "2026-12-01T00:00:00.000000Z";
    for sql in [
        "INSERT INTO lists (id, slug, name, created_at, updated_at) VALUES (1, 'daily', 'Daily', $1, $1)",
        "INSERT INTO subscribers (id, email, email_key, name, created_at, updated_at)
         VALUES (7, 'Ayesha@example.pk', 'ayesha@example.pk', 'Ayesha', $1, $1)",
        "INSERT INTO subscribers (id, email, email_key, status, created_at, updated_at)
         VALUES (9, NULL, 'erased:00', 'erased', $1, $1)",
        "INSERT INTO subscriptions (subscriber_id, list_id, status, created_at) VALUES (7, 1, 'active', $1)",
        "INSERT INTO subscriptions (subscriber_id, list_id, status, created_at) VALUES (9, 1, 'unsubscribed', $1)",
    ] {
        sqlx::query(sql).bind(t).execute(&pool).await.unwrap();
    }
    pool.close().await;

    // The store applies the rest, this migration among them.
    let store = Store::open(db.path()).await.unwrap();
    store.close().await;

    let pool = raw_pool(db.path()).await;
    let subscribers: Vec<(i64, Option<String>, String)> =
        sqlx::query_as("SELECT id, email, email_key FROM subscribers ORDER BY id")
            .fetch_all(&pool)
            .await
            .unwrap();
    assert_eq!(
        subscribers,
        [
            (
                7,
                Some("Ayesha@example.pk".into()),
                "ayesha@example.pk".into()
            ),
            (9, None, "erased:00".into()),
        ]
    );
    let subscriptions: Vec<(i64, String)> =
        sqlx::query_as("SELECT subscriber_id, status FROM subscriptions ORDER BY subscriber_id")
            .fetch_all(&pool)
            .await
            .unwrap();
    assert_eq!(
        subscriptions,
        [(7, "active".into()), (9, "unsubscribed".into())]
    );
    let broken: Vec<(String,)> = sqlx::query_as("SELECT \"table\" FROM pragma_foreign_key_check")
        .fetch_all(&pool)
        .await
        .unwrap();
    assert!(broken.is_empty(), "{broken:?}");
    // One unique index is left, on email_key, and it still refuses a second reader.
    let unique: Vec<(String,)> = sqlx::query_as(
        "SELECT ii.name FROM pragma_index_list('subscribers') il, pragma_index_info(il.name) ii WHERE il.\"unique\"",
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    assert_eq!(unique, [("email_key".to_owned(),)]);
    let twice = sqlx::query(
        "INSERT INTO subscribers (email, email_key, created_at, updated_at) VALUES ('AYESHA@example.pk', 'ayesha@example.pk', $1, $1)",
    )
    .bind(t)
    .execute(&pool)
    .await;
    assert!(twice.is_err(), "email_key must stay unique");
}
