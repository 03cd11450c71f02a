//! The checks migration (`migrations/20261219000000_import_checks.sql`) rebuilds `subscribers`
//! and `subscriptions` on SQLite with their `status` CHECKs written as `OR`ed equalities. On a
//! database that already holds readers the rebuild must keep every row with its id, what
//! points at them (tokens), the list counts and the triggers that keep them exact, and the
//! CHECKs must still refuse a status outside the set.

mod support;

use dispatch::store::Store;
use support::db::{TempDb, migrated_before, raw_pool};

/// The migration this test is about; every earlier one is applied first, by hand.
const CHECKS_MIGRATION: &str = "20261219000000";

const T: &str = "2026-12-01T00:00:00.000000Z";

/// A database with every migration before [`CHECKS_MIGRATION`], holding two readers (one
/// erased), their subscriptions and a token.
async fn older_database(db: &TempDb) {
    let pool = migrated_before(db, CHECKS_MIGRATION).await;
    for sql in [
        "INSERT INTO lists (id, slug, name, created_at, updated_at) VALUES (1, 'daily', 'Daily', $1, $1)",
        "INSERT INTO subscribers (id, email, email_key, name, created_at, updated_at)
         VALUES (7, 'Ayesha@example.pk', 'ayesha@example.pk', 'Ayesha', $1, $1)",
        "INSERT INTO subscribers (id, email, email_key, status, created_at, updated_at)
         VALUES (9, NULL, 'erased:00', 'erased', $1, $1)",
        "INSERT INTO subscriptions (id, subscriber_id, list_id, status, categories, created_at, token_gen)
         VALUES (40, 7, 1, 'active', 'Politics', $1, 3)",
        "INSERT INTO subscriptions (id, subscriber_id, list_id, status, created_at, unsubscribed_at, unsubscribe_reason)
         VALUES (41, 9, 1, 'unsubscribed', $1, $1, 'too many')",
        "INSERT INTO tokens (hash, purpose, subscription_id, created_at) VALUES (x'01', 'unsubscribe', 40, $1)",
    ] {
        sqlx::query(sql).bind(T).execute(&pool).await.unwrap();
    }
    pool.close().await;
}

/// `list_counts` of list 1 as (status, n), by status.
async fn counts(pool: &sqlx::SqlitePool) -> Vec<(String, i64)> {
    sqlx::query_as("SELECT status, n FROM list_counts WHERE list_id = 1 AND n <> 0 ORDER BY status")
        .fetch_all(pool)
        .await
        .unwrap()
}

#[tokio::test]
async fn rebuilding_with_or_checks_keeps_rows_references_counts_and_triggers() {
    let db = TempDb::new();
    older_database(&db).await;
    // The store applies the rest, this migration among them.
    Store::open(db.path()).await.unwrap().close().await;

    let pool = raw_pool(db.path()).await;
    let subscribers: Vec<(i64, Option<String>, String, String)> =
        sqlx::query_as("SELECT id, email, email_key, status FROM subscribers ORDER BY id")
            .fetch_all(&pool)
            .await
            .unwrap();
    assert_eq!(
        subscribers,
        [
            (
                7,
                Some("Ayesha@example.pk".into()),
                "ayesha@example.pk".into(),
                "active".into()
            ),
            (9, None, "erased:00".into(), "erased".into()),
        ]
    );
    type Sub = (
        i64,
        i64,
        String,
        Option<String>,
        Option<i64>,
        Option<String>,
    );
    let subscriptions: Vec<Sub> = sqlx::query_as(
        "SELECT id, subscriber_id, status, categories, token_gen, unsubscribe_reason FROM subscriptions ORDER BY id",
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    assert_eq!(
        subscriptions,
        [
            (
                40,
                7,
                "active".into(),
                Some("Politics".into()),
                Some(3),
                None
            ),
            (
                41,
                9,
                "unsubscribed".into(),
                None,
                None,
                Some("too many".into())
            ),
        ]
    );
    let token: (i64,) = sqlx::query_as("SELECT subscription_id FROM tokens")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(token, (40,));
    let broken: Vec<(String,)> = sqlx::query_as("SELECT \"table\" FROM pragma_foreign_key_check")
        .fetch_all(&pool)
        .await
        .unwrap();
    assert!(broken.is_empty(), "{broken:?}");
    assert_eq!(
        counts(&pool).await,
        [("active".into(), 1), ("unsubscribed".into(), 1)]
    );

    // The count triggers came back with the table: an insert, a status change and a delete
    // (through the subscriber's cascade) each move the counts.
    sqlx::query(
        "INSERT INTO subscribers (id, email, email_key, created_at, updated_at) VALUES (11, 'b@example.org', 'b@example.org', $1, $1)",
    )
    .bind(T)
    .execute(&pool)
    .await
    .unwrap();
    sqlx::query("INSERT INTO subscriptions (subscriber_id, list_id, status, created_at) VALUES (11, 1, 'pending', $1)")
        .bind(T)
        .execute(&pool)
        .await
        .unwrap();
    assert_eq!(
        counts(&pool).await,
        [
            ("active".into(), 1),
            ("pending".into(), 1),
            ("unsubscribed".into(), 1)
        ]
    );
    sqlx::query("UPDATE subscriptions SET status = 'active' WHERE subscriber_id = 11")
        .execute(&pool)
        .await
        .unwrap();
    assert_eq!(
        counts(&pool).await,
        [("active".into(), 2), ("unsubscribed".into(), 1)]
    );
    sqlx::query("DELETE FROM subscribers WHERE id = 7")
        .execute(&pool)
        .await
        .unwrap();
    assert_eq!(
        counts(&pool).await,
        [("active".into(), 1), ("unsubscribed".into(), 1)]
    );
    let tokens: (i64,) = sqlx::query_as("SELECT COUNT(*) FROM tokens")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(
        tokens,
        (0,),
        "the cascade from subscriptions to tokens holds"
    );
}

#[tokio::test]
async fn the_rewritten_checks_still_refuse_a_status_outside_the_set() {
    let db = TempDb::new();
    Store::open(db.path()).await.unwrap().close().await;
    let pool = raw_pool(db.path()).await;
    for (id, slug) in [(1, "daily"), (2, "weekly")] {
        sqlx::query(
            "INSERT INTO lists (id, slug, name, created_at, updated_at) VALUES ($1, $2, $2, $3, $3)",
        )
        .bind(id)
        .bind(slug)
        .bind(T)
        .execute(&pool)
        .await
        .unwrap();
    }
    for status in ["active", "bounced", "erased"] {
        sqlx::query(
            "INSERT INTO subscribers (email, email_key, status, created_at, updated_at) VALUES ($1, $1, $2, $3, $3)",
        )
        .bind(format!("{status}@example.org"))
        .bind(status)
        .bind(T)
        .execute(&pool)
        .await
        .unwrap();
    }
    for status in ["Active", "unsubscribed", "", "active "] {
        let refused = sqlx::query(
            "INSERT INTO subscribers (email, email_key, status, created_at, updated_at) VALUES ('x@example.org', 'x@example.org', $1, $2, $2)",
        )
        .bind(status)
        .bind(T)
        .execute(&pool)
        .await;
        assert!(
            refused.is_err(),
            "subscribers.status {status:?} was accepted"
        );
    }
    for (id, status) in [(1, "pending"), (2, "active"), (3, "unsubscribed")] {
        sqlx::query(
            "INSERT INTO subscriptions (subscriber_id, list_id, status, created_at) VALUES ($1, 1, $2, $3)",
        )
        .bind(id)
        .bind(status)
        .bind(T)
        .execute(&pool)
        .await
        .unwrap();
    }
    let refused = sqlx::query(
        "INSERT INTO subscriptions (subscriber_id, list_id, status, created_at) VALUES (1, 2, 'bounced', $1)",
    )
    .bind(T)
    .execute(&pool)
    .await;
    assert!(
        refused.is_err(),
        "subscriptions.status 'bounced' was accepted"
    );
    let null = sqlx::query(
        "INSERT INTO subscriptions (subscriber_id, list_id, status, created_at) VALUES (2, 2, NULL, $1)",
    )
    .bind(T)
    .execute(&pool)
    .await;
    assert!(null.is_err(), "subscriptions.status NULL was accepted");
}
