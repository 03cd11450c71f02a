//! Articles: written by the CMS, the CLI or a feed import; read by the edition builder.

use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::FromRow;

use super::{Result, Store, StoreError, Tx, db, now_text};
use crate::domain::{db_time, storable_time};

/// An article as stored.
#[derive(Debug, Clone, FromRow, Serialize)]
pub struct ArticleRow {
    pub id: i64,
    pub external_id: String,
    pub url: String,
    pub title: String,
    pub summary: String,
    pub author: Option<String>,
    pub category: String,
    pub language: Option<String>,
    pub image_url: Option<String>,
    pub published_at: String,
    pub breaking: bool,
    pub created_at: String,
}

/// A validated article to store.
#[derive(Debug, Clone)]
pub struct NewArticle {
    /// CMS id, feed GUID or URL: re-importing the same id changes nothing.
    pub external_id: String,
    pub url: String,
    pub title: String,
    pub summary: String,
    pub author: Option<String>,
    pub category: String,
    pub language: Option<String>,
    pub image_url: Option<String>,
    pub published_at: DateTime<Utc>,
    pub breaking: bool,
}

pub(crate) const ARTICLE_COLUMNS: &str = "id, external_id, url, title, summary, author, category, language, image_url, published_at, breaking, created_at";

impl Store {
    /// Stores an article unless one with the same `external_id` exists. Returns the id and
    /// whether it was new.
    ///
    /// A publication time outside the years the schema's fixed form holds is refused here
    /// with a readable reason (callers validate it already; this keeps the raw `CHECK
    /// constraint failed` from ever reaching a person).
    pub async fn insert_article(&self, a: &NewArticle) -> Result<(i64, bool)> {
        storable_time(a.published_at).map_err(|e| StoreError::Conflict(e.to_string()))?;
        let mut tx = self.write_tx().await?;
        let id = match insert_new(&mut tx, a).await? {
            Some(id) => (id, true),
            None => {
                let id: i64 = db!(&mut tx, |c| {
                    sqlx::query_scalar("SELECT id FROM articles WHERE external_id = $1")
                        .bind(&a.external_id)
                        .fetch_one(c)
                        .await
                })?;
                (id, false)
            }
        };
        tx.commit().await?;
        Ok(id)
    }

    /// One article.
    pub async fn article(&self, id: i64) -> Result<ArticleRow> {
        let sql = format!("SELECT {ARTICLE_COLUMNS} FROM articles WHERE id = $1");
        db!(self.pool(), |c| {
            sqlx::query_as::<_, ArticleRow>(sqlx::AssertSqlSafe(sql))
                .bind(id)
                .fetch_optional(c)
                .await
        })?
        .ok_or_else(|| StoreError::NotFound(format!("article #{id}")))
    }

    /// Articles published at or after `since` (all when `None`), optionally of one category
    /// (case-insensitive), newest first, at most `limit`.
    pub async fn list_articles(
        &self,
        since: Option<DateTime<Utc>>,
        category: Option<&str>,
        limit: i64,
    ) -> Result<Vec<ArticleRow>> {
        let sql = format!(
            "SELECT {ARTICLE_COLUMNS} FROM articles
             WHERE ($1 IS NULL OR published_at >= $1) AND ($2 IS NULL OR lower(category) = lower($2))
             ORDER BY published_at DESC, id DESC LIMIT $3"
        );
        Ok(db!(self.pool(), |c| {
            sqlx::query_as::<_, ArticleRow>(sqlx::AssertSqlSafe(sql))
                .bind(since.map(db_time))
                .bind(category)
                .bind(limit)
                .fetch_all(c)
                .await
        })?)
    }

    /// The articles an edition covering `(start, end]` carries, oldest first.
    ///
    /// A story belongs to the window in which it became available to us: the later of its
    /// publication time and the time it reached the database. So a story published at 06:58
    /// but imported at 07:05, after the 07:00 digest, goes in the next digest instead of
    /// none. Stories published more than `grace` before the window opened are left out,
    /// so importing an archive does not flood the next digest; stories dated in the future
    /// wait for their time.
    pub async fn articles_in_window(
        &self,
        start: DateTime<Utc>,
        end: DateTime<Utc>,
        grace: chrono::Duration,
    ) -> Result<Vec<ArticleRow>> {
        let sql = format!(
            "SELECT {ARTICLE_COLUMNS} FROM articles
             WHERE published_at > $3 AND published_at <= $2
               AND (CASE WHEN created_at > published_at THEN created_at ELSE published_at END) >= $1
               AND (CASE WHEN created_at > published_at THEN created_at ELSE published_at END) <= $2
             ORDER BY published_at, id"
        );
        Ok(db!(self.pool(), |c| {
            sqlx::query_as::<_, ArticleRow>(sqlx::AssertSqlSafe(sql))
                .bind(db_time(start))
                .bind(db_time(end))
                .bind(db_time(start - grace))
                .fetch_all(c)
                .await
        })?)
    }

    /// Article counts: (all, breaking, published in the last 24 hours).
    pub async fn article_counts(&self) -> Result<(i64, i64, i64)> {
        let since = db_time(Utc::now() - chrono::Duration::hours(24));
        Ok(db!(self.pool(), |c| {
            sqlx::query_as(
                "SELECT COUNT(*), COUNT(*) FILTER (WHERE breaking), COUNT(*) FILTER (WHERE published_at > $1)
                 FROM articles",
            )
            .bind(&since)
            .fetch_one(c)
            .await
        })?)
    }
}

/// The one INSERT of an article (the CLI, imports, feeds, SQL sources and the API all store
/// through it): its id, or `None` when one with its `external_id` is stored already. The
/// caller has checked [`storable_time`].
pub(super) async fn insert_new(tx: &mut Tx, a: &NewArticle) -> Result<Option<i64>> {
    Ok(db!(tx, |c| {
        sqlx::query_scalar(
            "INSERT INTO articles (external_id, url, title, summary, author, category, language, image_url, published_at, breaking, created_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)
             ON CONFLICT (external_id) DO NOTHING
             RETURNING id",
        )
        .bind(&a.external_id)
        .bind(&a.url)
        .bind(&a.title)
        .bind(&a.summary)
        .bind(&a.author)
        .bind(&a.category)
        .bind(&a.language)
        .bind(&a.image_url)
        .bind(db_time(a.published_at))
        .bind(a.breaking)
        .bind(now_text())
        .fetch_optional(c)
        .await
    })?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::Backend;
    use crate::store::testutil::{store_test, temp_store_on};

    fn art(id: &str, cat: &str, at: &str) -> NewArticle {
        NewArticle {
            external_id: id.into(),
            url: format!("https://news.example.com/{id}"),
            title: format!("Story {id}"),
            summary: String::new(),
            author: None,
            category: cat.into(),
            language: None,
            image_url: None,
            published_at: crate::domain::parse_timestamp(at).unwrap(),
            breaking: false,
        }
    }

    /// Stores an article as a CMS writing rows directly would.
    async fn insert(store: &Store, id: &str, published: &str, created: &str) {
        db!(store.writer(), |c| {
            sqlx::query(
                "INSERT INTO articles (external_id, url, title, category, published_at, created_at) VALUES ($1, 'https://e.com', 't', 'c', $2, $3)",
            )
            .bind(id)
            .bind(published)
            .bind(created)
            .execute(c)
            .await.affected()
        })
        .unwrap();
    }

    store_test!(insert_is_idempotent_and_windows_are_half_open);
    async fn insert_is_idempotent_and_windows_are_half_open(backend: Backend) {
        let (store, _d) = temp_store_on(backend).await;
        let (a, new) = store
            .insert_article(&art("a", "Politics", "2026-11-27T10:00:00Z"))
            .await
            .unwrap();
        assert!(new);
        let (a2, new) = store
            .insert_article(&art("a", "Politics", "2026-11-27T10:00:00Z"))
            .await
            .unwrap();
        assert!(!new);
        assert_eq!(a, a2);
        store
            .insert_article(&art("b", "Sport", "2026-11-27T12:00:00Z"))
            .await
            .unwrap();
        let t = |s: &str| crate::domain::parse_timestamp(s).unwrap();
        // Both were stored just now, long after they were published: by arrival they belong
        // to the window that contains now, not to one that closed before they arrived.
        let day = chrono::Duration::hours(24);
        let closed = store
            .articles_in_window(t("2026-11-27T10:00:00Z"), t("2026-11-27T12:00:00Z"), day)
            .await
            .unwrap();
        assert!(closed.is_empty());
        let l = store
            .list_articles(None, Some("politics"), 10)
            .await
            .unwrap();
        assert_eq!(l.len(), 1);
        assert_eq!(store.article(a).await.unwrap().title, "Story a");
        assert_eq!(store.article_counts().await.unwrap().0, 2);
    }

    store_test!(a_story_imported_after_its_window_closed_goes_in_the_next_one);
    async fn a_story_imported_after_its_window_closed_goes_in_the_next_one(backend: Backend) {
        let (store, _d) = temp_store_on(backend).await;
        let t = |s: &str| crate::domain::parse_timestamp(s).unwrap();
        let day = chrono::Duration::hours(24);
        // Published 06:58, imported 07:05: after the 07:00 digest closed its window.
        insert(
            &store,
            "late",
            "2026-11-28T06:58:00Z",
            "2026-11-28T07:05:00Z",
        )
        .await;
        // Published and stored in time.
        insert(
            &store,
            "on-time",
            "2026-11-28T06:30:00Z",
            "2026-11-28T06:30:00Z",
        )
        .await;
        // An archive story from a month ago, imported now: too old for any digest.
        insert(
            &store,
            "archive",
            "2026-10-28T06:00:00Z",
            "2026-11-28T07:06:00Z",
        )
        .await;
        // Scheduled for tomorrow.
        insert(
            &store,
            "future",
            "2026-11-29T06:00:00Z",
            "2026-11-28T07:00:00Z",
        )
        .await;
        let ids = |w: Vec<ArticleRow>| w.into_iter().map(|a| a.external_id).collect::<Vec<_>>();
        let first = ids(store
            .articles_in_window(t("2026-11-27T07:00:00Z"), t("2026-11-28T07:00:00Z"), day)
            .await
            .unwrap());
        assert_eq!(first, ["on-time"]);
        let next = ids(store
            .articles_in_window(t("2026-11-28T07:00:00Z"), t("2026-11-29T07:00:00Z"), day)
            .await
            .unwrap());
        assert_eq!(next, ["late", "future"]);
    }

    store_test!(a_time_outside_the_stored_years_is_refused_readably);
    async fn a_time_outside_the_stored_years_is_refused_readably(backend: Backend) {
        let (store, _d) = temp_store_on(backend).await;
        let mut a = art("far", "Politics", "2026-11-27T10:00:00Z");
        a.published_at = DateTime::parse_from_rfc3339("9999-12-31T23:59:59-23:59")
            .unwrap()
            .with_timezone(&Utc);
        let err = store.insert_article(&a).await.unwrap_err().to_string();
        assert!(err.contains("outside the years 0000 to 9999"), "{err}");
        assert!(!err.contains("CHECK"), "{err}");
        assert_eq!(store.article_counts().await.unwrap().0, 0);
    }

    store_test!(schema_rejects_a_non_canonical_timestamp_from_a_cms);
    async fn schema_rejects_a_non_canonical_timestamp_from_a_cms(backend: Backend) {
        let (store, _d) = temp_store_on(backend).await;
        let err = db!(store.writer(), |c| {
            sqlx::query(
                "INSERT INTO articles (external_id, url, title, category, published_at, created_at) VALUES ('x', 'https://e.com', 't', 'c', '2026-11-27 10:00', '')",
            )
            .execute(c)
            .await.affected()
        });
        assert!(err.is_err());
    }
}
