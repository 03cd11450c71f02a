//! Articles written by the CMS API: create or update by `external_id` (`PUT` is idempotent).
//!
//! Kept apart from `articles.rs` so the store's backend refactor and this addition merge
//! without touching the same lines.

use super::articles::ARTICLE_COLUMNS;
use super::{ArticleRow, Lock, NewArticle, Result, Store, StoreError, db, now_text};
use crate::domain::{db_time, storable_time};

/// What [`Store::upsert_article`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Upserted {
    Created(i64),
    Updated(i64),
    /// Stored already, exactly so.
    Unchanged(i64),
}

impl Upserted {
    /// The article's id.
    pub fn id(self) -> i64 {
        match self {
            Self::Created(id) | Self::Updated(id) | Self::Unchanged(id) => id,
        }
    }
}

/// Whether the stored row already says what `a` says.
fn same(row: &ArticleRow, a: &NewArticle) -> bool {
    row.url == a.url
        && row.title == a.title
        && row.summary == a.summary
        && row.author == a.author
        && row.category == a.category
        && row.language == a.language
        && row.image_url == a.image_url
        && row.published_at == db_time(a.published_at)
        && row.breaking == a.breaking
}

impl Store {
    /// The article with this CMS id, feed GUID or URL.
    pub async fn article_by_external_id(&self, external_id: &str) -> Result<Option<ArticleRow>> {
        let sql = format!("SELECT {ARTICLE_COLUMNS} FROM articles WHERE external_id = $1");
        Ok(db!(self.pool(), |c| {
            sqlx::query_as::<_, ArticleRow>(sqlx::AssertSqlSafe(sql))
                .bind(external_id)
                .fetch_optional(c)
                .await
        })?)
    }

    /// Stores `a`, or brings the stored article with its `external_id` up to date. The
    /// article keeps its id and the time it first arrived (which decides its digest).
    pub async fn upsert_article(&self, a: &NewArticle) -> Result<Upserted> {
        storable_time(a.published_at).map_err(|e| StoreError::Conflict(e.to_string()))?;
        let mut tx = self.write_tx().await?;
        // Two PUTs of one new article at once must not both insert it (PostgreSQL; SQLite's
        // write transaction is exclusive already).
        tx.lock(Lock::ArticleUpsert).await?;
        let sql = format!("SELECT {ARTICLE_COLUMNS} FROM articles WHERE external_id = $1");
        let existing = db!(&mut tx, |c| {
            sqlx::query_as::<_, ArticleRow>(sqlx::AssertSqlSafe(sql))
                .bind(&a.external_id)
                .fetch_optional(c)
                .await
        })?;
        let done = match existing {
            Some(row) if same(&row, a) => Upserted::Unchanged(row.id),
            Some(row) => {
                db!(&mut tx, |c| {
                    sqlx::query(
                    "UPDATE articles SET url = $1, title = $2, summary = $3, author = $4, category = $5,
                         language = $6, image_url = $7, published_at = $8, breaking = $9
                     WHERE id = $10",
                )
                .bind(&a.url)
                .bind(&a.title)
                .bind(&a.summary)
                .bind(&a.author)
                .bind(&a.category)
                .bind(&a.language)
                .bind(&a.image_url)
                .bind(db_time(a.published_at))
                .bind(a.breaking)
                .bind(row.id)
                .execute(c)
                .await
                .affected()
                })?;
                Upserted::Updated(row.id)
            }
            None => {
                let id: i64 = db!(&mut tx, |c| {
                    sqlx::query_scalar(
                    "INSERT INTO articles (external_id, url, title, summary, author, category, language, image_url, published_at, breaking, created_at)
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)
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
                .fetch_one(c)
                .await
                })?;
                Upserted::Created(id)
            }
        };
        tx.commit().await?;
        Ok(done)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::Backend;
    use crate::store::testutil::{store_test, temp_store_on};

    store_test!(a_put_creates_then_updates_then_changes_nothing);
    async fn a_put_creates_then_updates_then_changes_nothing(backend: Backend) {
        let (store, _d) = temp_store_on(backend).await;
        let mut a = NewArticle {
            external_id: "cms-1".into(),
            url: "https://news.example.com/1".into(),
            title: "First".into(),
            summary: String::new(),
            author: None,
            category: "Politics".into(),
            language: None,
            image_url: None,
            published_at: crate::domain::parse_timestamp("2026-11-27T10:00:00Z").unwrap(),
            breaking: false,
        };
        let id = match store.upsert_article(&a).await.unwrap() {
            Upserted::Created(id) => id,
            other => panic!("{other:?}"),
        };
        a.title = "First, corrected".into();
        assert_eq!(
            store.upsert_article(&a).await.unwrap(),
            Upserted::Updated(id)
        );
        assert_eq!(
            store.upsert_article(&a).await.unwrap(),
            Upserted::Unchanged(id)
        );
        let row = store
            .article_by_external_id("cms-1")
            .await
            .unwrap()
            .unwrap();
        assert_eq!((row.id, row.title.as_str()), (id, "First, corrected"));
    }
}
