//! Articles written by the CMS API: create or update by `external_id` (`PUT` is idempotent).
//!
//! Kept apart from `articles.rs` so the store's backend refactor and this addition merge
//! without touching the same lines.

use super::articles::{ARTICLE_COLUMNS, insert_new};
use super::{ArticleRow, Lock, NewArticle, Result, Store, StoreError, Tx, db};
use crate::domain::{db_time, storable_time};

/// What [`Store::upsert_article`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Upserted {
    Created(i64),
    Updated(i64),
    /// Stored already, exactly so.
    Unchanged(i64),
    /// Stored already and different, but left as it is: an edition with it has gone out
    /// ([`Store::article_gone_out`]) and this was a [`Revision::Poll`].
    KeptAsSent(i64),
}

impl Upserted {
    /// The article's id.
    pub fn id(self) -> i64 {
        match self {
            Self::Created(id) | Self::Updated(id) | Self::Unchanged(id) | Self::KeptAsSent(id) => {
                id
            }
        }
    }
}

/// Who brings a stored article up to date, which decides whether it may still change.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Revision {
    /// The CMS through the API (`PUT /api/v1/articles/{id}`): an explicit correction, applied
    /// whatever has been sent.
    Cms,
    /// A poll found the item again changed (a feed item whose `updated` moved, an SQL row
    /// whose cursor moved). Applied only while the article has not gone out
    /// ([`Store::article_gone_out`]): an article readers already received keeps what they
    /// got, so the archive, later digests and the reader's copy agree. The stored `breaking`
    /// flag is kept too (a `breaking = true` feed marks only items new after its first poll).
    Poll,
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

/// See [`Store::article_gone_out`]. A delivery that is `sending` counts: its message may be
/// on the wire already. Compacted editions keep their sent count in `edition_counts`.
async fn gone_out(tx: &mut Tx, article_id: i64) -> Result<bool> {
    Ok(db!(tx, |c| {
        sqlx::query_scalar(GONE_OUT)
            .bind(article_id)
            .fetch_one(c)
            .await
    })?)
}

const GONE_OUT: &str = "SELECT EXISTS (
                 SELECT 1 FROM editions e
                 WHERE (e.breaking_article_id = $1
                        OR EXISTS (SELECT 1 FROM edition_articles ea
                                   WHERE ea.edition_id = e.id AND ea.article_id = $1))
                   AND (EXISTS (SELECT 1 FROM deliveries d
                                WHERE d.edition_id = e.id AND d.status IN ('sent', 'sending'))
                        OR EXISTS (SELECT 1 FROM edition_counts n
                                   WHERE n.edition_id = e.id AND n.status = 'sent' AND n.count > 0)))";

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

    /// Whether article `id` has gone out: some edition containing it (a digest listing it, or
    /// its breaking edition) has a delivery that was sent or is being sent. From then on a
    /// [`Revision::Poll`] leaves it as readers got it.
    pub async fn article_gone_out(&self, id: i64) -> Result<bool> {
        Ok(db!(self.pool(), |c| {
            sqlx::query_scalar(GONE_OUT).bind(id).fetch_one(c).await
        })?)
    }

    /// Stores `a`, or brings the stored article with its `external_id` up to date as
    /// `revision` allows. The article keeps its id and the time it first arrived (which
    /// decides its digest).
    pub async fn upsert_article(&self, a: &NewArticle, revision: Revision) -> Result<Upserted> {
        Ok(self.upsert_article_row(a, revision).await?.0)
    }

    /// [`Self::upsert_article`], answering the article as stored too: read in the same
    /// transaction, so an API call needs no second read after its write.
    pub async fn upsert_article_row(
        &self,
        a: &NewArticle,
        revision: Revision,
    ) -> Result<(Upserted, ArticleRow)> {
        storable_time(a.published_at).map_err(|e| StoreError::Conflict(e.to_string()))?;
        // Where an interactive write's time goes (`dispatch-bench api`): waiting for the
        // writer, its statements, its commit.
        let started = std::time::Instant::now();
        let mut tx = self.interactive_write_tx().await?;
        let waited = started.elapsed();
        // Two PUTs of one new article at once must not both insert it (PostgreSQL; SQLite's
        // write transaction is exclusive already). The same transaction checks what was sent,
        // so a delivery marked sent meanwhile is seen.
        tx.lock(Lock::ArticleUpsert).await?;
        let sql = format!("SELECT {ARTICLE_COLUMNS} FROM articles WHERE external_id = $1");
        let existing = db!(&mut tx, |c| {
            sqlx::query_as::<_, ArticleRow>(sqlx::AssertSqlSafe(sql))
                .bind(&a.external_id)
                .fetch_optional(c)
                .await
        })?;
        let mut a = std::borrow::Cow::Borrowed(a);
        if let (Some(row), Revision::Poll) = (&existing, revision) {
            a.to_mut().breaking = row.breaking;
        }
        let done = match existing {
            Some(row) if same(&row, &a) => (Upserted::Unchanged(row.id), row),
            Some(row) if revision == Revision::Poll && gone_out(&mut tx, row.id).await? => {
                (Upserted::KeptAsSent(row.id), row)
            }
            Some(row) => {
                let sql = format!(
                    "UPDATE articles SET url = $1, title = $2, summary = $3, author = $4, category = $5,
                         language = $6, image_url = $7, published_at = $8, breaking = $9
                     WHERE id = $10 RETURNING {ARTICLE_COLUMNS}"
                );
                let updated = db!(&mut tx, |c| {
                    sqlx::query_as::<_, ArticleRow>(sqlx::AssertSqlSafe(sql))
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
                        .fetch_one(c)
                        .await
                })?;
                (Upserted::Updated(row.id), updated)
            }
            None => match insert_new(&mut tx, &a).await? {
                Some(id) => {
                    let sql = format!("SELECT {ARTICLE_COLUMNS} FROM articles WHERE id = $1");
                    let created = db!(&mut tx, |c| {
                        sqlx::query_as::<_, ArticleRow>(sqlx::AssertSqlSafe(sql))
                            .bind(id)
                            .fetch_one(c)
                            .await
                    })?;
                    (Upserted::Created(id), created)
                }
                // The lock above makes this unreachable; answer plainly rather than panic.
                None => {
                    return Err(StoreError::Conflict(format!(
                        "article {:?} was stored meanwhile; try again",
                        a.external_id
                    )));
                }
            },
        };
        let statements = started.elapsed() - waited;
        tx.commit().await?;
        let commit = started.elapsed() - waited - statements;
        tracing::debug!(
            wait_us = waited.as_micros() as u64,
            statements_us = statements.as_micros() as u64,
            commit_us = commit.as_micros() as u64,
            "article upsert"
        );
        Ok(done)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::testutil::{store_test, temp_store_on};
    use crate::store::{Backend, EditionKind};

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
        let id = match store.upsert_article(&a, Revision::Cms).await.unwrap() {
            Upserted::Created(id) => id,
            other => panic!("{other:?}"),
        };
        a.title = "First, corrected".into();
        assert_eq!(
            store.upsert_article(&a, Revision::Cms).await.unwrap(),
            Upserted::Updated(id)
        );
        assert_eq!(
            store.upsert_article(&a, Revision::Cms).await.unwrap(),
            Upserted::Unchanged(id)
        );
        let row = store
            .article_by_external_id("cms-1")
            .await
            .unwrap()
            .unwrap();
        assert_eq!((row.id, row.title.as_str()), (id, "First, corrected"));
    }

    /// A reader on a list `daily`, and that list's id.
    async fn list_with_a_reader(store: &Store) -> i64 {
        use crate::domain::{EmailAddress, ListSlug};
        use crate::store::subscribers::NewSubscription;
        let list = store
            .create_list(
                &ListSlug::parse("daily").unwrap(),
                &crate::store::ListSpec::default(),
            )
            .await
            .unwrap();
        let reader = NewSubscription {
            email: EmailAddress::parse("reader@example.com").unwrap(),
            name: None,
            categories: None,
        };
        store
            .subscribe_batch(list.id, &[reader], "test", false)
            .await
            .unwrap();
        list.id
    }

    /// An edition of `kind` on `list` with `article` in it, and its id.
    async fn edition_with(store: &Store, list: i64, kind: EditionKind, article: i64) -> i64 {
        let t = |s: &str| crate::domain::parse_timestamp(s).unwrap();
        let e = crate::store::NewEdition {
            list_id: list,
            kind,
            slot: None,
            breaking_article_id: (kind == EditionKind::Breaking).then_some(article),
            window_start: t("2026-11-27T00:00:00Z"),
            window_end: t("2026-11-28T00:00:00Z"),
            subject: "Daily".into(),
            articles: vec![(article, false)],
            skip_reason: None,
            empty_variants: vec![],
        };
        match store.create_edition(&e).await.unwrap() {
            crate::store::Created::New { id, queued: 1, .. } => id,
            other => panic!("{other:?}"),
        }
    }

    fn story(id: &str) -> NewArticle {
        NewArticle {
            external_id: id.into(),
            url: format!("https://news.example.com/{id}"),
            title: "v1".into(),
            summary: String::new(),
            author: None,
            category: "Politics".into(),
            language: None,
            image_url: None,
            published_at: crate::domain::parse_timestamp("2026-11-27T10:00:00Z").unwrap(),
            breaking: false,
        }
    }

    async fn title(store: &Store, id: &str) -> String {
        store
            .article_by_external_id(id)
            .await
            .unwrap()
            .unwrap()
            .title
    }

    store_test!(a_poll_revises_an_article_until_a_delivery_of_its_digest_is_sent);
    async fn a_poll_revises_an_article_until_a_delivery_of_its_digest_is_sent(backend: Backend) {
        let (store, _d) = temp_store_on(backend).await;
        let list = list_with_a_reader(&store).await;
        let mut a = story("feed-1");
        let Upserted::Created(id) = store.upsert_article(&a, Revision::Poll).await.unwrap() else {
            panic!("not created")
        };
        // In a digest whose one delivery is still queued: nothing has gone out yet.
        let ed = edition_with(&store, list, EditionKind::Digest, id).await;
        assert!(!store.article_gone_out(id).await.unwrap());
        a.title = "v2".into();
        assert_eq!(
            store.upsert_article(&a, Revision::Poll).await.unwrap(),
            Upserted::Updated(id)
        );
        // Claimed by a sender (the message may be on the wire), then sent: gone out.
        for status in ["sending", "sent"] {
            db!(store.writer(), |c| {
                sqlx::query("UPDATE deliveries SET status = $1 WHERE edition_id = $2")
                    .bind(status)
                    .bind(ed)
                    .execute(c)
                    .await
                    .affected()
            })
            .unwrap();
            assert!(store.article_gone_out(id).await.unwrap(), "{status}");
            a.title = format!("v3 while {status}");
            a.breaking = true;
            assert_eq!(
                store.upsert_article(&a, Revision::Poll).await.unwrap(),
                Upserted::KeptAsSent(id)
            );
            assert_eq!(title(&store, "feed-1").await, "v2", "readers got v2");
        }
        // The same item again after it went out, unchanged, is just unchanged (a poll does not
        // carry `breaking` over a stored article).
        a.title = "v2".into();
        assert_eq!(
            store.upsert_article(&a, Revision::Poll).await.unwrap(),
            Upserted::Unchanged(id)
        );
        // The CMS's explicit correction is applied whatever was sent.
        a.title = "v4 from the CMS".into();
        assert_eq!(
            store.upsert_article(&a, Revision::Cms).await.unwrap(),
            Upserted::Updated(id)
        );
        assert_eq!(title(&store, "feed-1").await, "v4 from the CMS");
    }

    store_test!(a_sent_breaking_edition_still_counts_once_its_deliveries_are_compacted);
    async fn a_sent_breaking_edition_still_counts_once_its_deliveries_are_compacted(
        backend: Backend,
    ) {
        let (store, _d) = temp_store_on(backend).await;
        let list = list_with_a_reader(&store).await;
        let mut a = story("feed-2");
        let id = store.upsert_article(&a, Revision::Poll).await.unwrap().id();
        let ed = edition_with(&store, list, EditionKind::Breaking, id).await;
        // What compaction leaves of a sent edition: its count, no delivery rows.
        db!(store.writer(), |c| {
            sqlx::query("DELETE FROM deliveries WHERE edition_id = $1")
                .bind(ed)
                .execute(c)
                .await
                .affected()
        })
        .unwrap();
        assert!(!store.article_gone_out(id).await.unwrap());
        db!(store.writer(), |c| {
            sqlx::query(
                "INSERT INTO edition_counts (edition_id, status, count) VALUES ($1, 'sent', 1)",
            )
            .bind(ed)
            .execute(c)
            .await
            .affected()
        })
        .unwrap();
        assert!(store.article_gone_out(id).await.unwrap());
        a.title = "v2".into();
        assert_eq!(
            store.upsert_article(&a, Revision::Poll).await.unwrap(),
            Upserted::KeptAsSent(id)
        );
        assert_eq!(title(&store, "feed-2").await, "v1");
    }
}
