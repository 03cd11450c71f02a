//! Editions: one send of a list (a digest for a window, or one breaking story), written with
//! its articles and its recipient snapshot in a single transaction.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::{FromRow, QueryBuilder};

use super::articles::{ARTICLE_COLUMNS, ArticleRow};
use super::{Lock, Result, Store, StoreError, Tx, audience, db, now_text, parse_db_time};
use crate::domain::{DbTime, DeliveryStatus, EditionKind, EditionStatus, db_time};

/// An edition as stored.
#[derive(Debug, Clone, FromRow, Serialize)]
pub struct EditionRow {
    pub id: i64,
    pub list_id: i64,
    pub kind: EditionKind,
    pub slot: Option<DbTime>,
    pub breaking_article_id: Option<i64>,
    pub window_start: DbTime,
    pub window_end: DbTime,
    pub subject: String,
    pub status: EditionStatus,
    pub status_reason: Option<String>,
    pub article_count: i64,
    pub recipient_count: i64,
    pub created_at: DbTime,
    pub finished_at: Option<DbTime>,
}

impl EditionRow {
    /// Whether this is a breaking-news edition.
    pub fn is_breaking(&self) -> bool {
        self.kind == EditionKind::Breaking
    }
    /// When the edition was made.
    pub fn created(&self) -> DateTime<Utc> {
        self.created_at.utc()
    }
}

/// The short form of an edition, for status listings.
#[derive(Debug, Clone, FromRow, Serialize)]
pub struct EditionSummary {
    pub id: i64,
    pub kind: EditionKind,
    pub status: EditionStatus,
    pub subject: String,
    pub article_count: i64,
    pub recipient_count: i64,
    pub created_at: DbTime,
}

/// Everything needed to record an edition.
#[derive(Debug, Clone)]
pub struct NewEdition {
    pub list_id: i64,
    pub kind: EditionKind,
    /// The scheduled slot this digest is for; at most one edition per (list, slot).
    pub slot: Option<DateTime<Utc>>,
    /// For breaking news; at most one edition per (list, article).
    pub breaking_article_id: Option<i64>,
    pub window_start: DateTime<Utc>,
    pub window_end: DateTime<Utc>,
    pub subject: String,
    /// (article id, already sent to this list as breaking news), in display order.
    pub articles: Vec<(i64, bool)>,
    /// `Some(reason)`: record the edition as skipped (e.g. empty) without recipients; its
    /// window still counts, so the next one starts where this one ended.
    pub skip_reason: Option<String>,
    /// Stored category choices (`None` = all) whose readers would get no story: their
    /// deliveries are recorded as skipped, not queued.
    pub empty_variants: Vec<Option<String>>,
}

/// The result of [`Store::create_edition`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Created {
    /// A new edition with this many queued recipients (and this many skipped).
    New { id: i64, queued: u64, skipped: u64 },
    /// The slot or breaking article already has an edition: nothing was written.
    Existing { id: i64 },
}

const EDITION_COLUMNS: &str = "id, list_id, kind, slot, breaking_article_id, window_start, window_end, subject, status, status_reason, article_count, recipient_count, created_at, finished_at";

impl Store {
    /// Where the list's next digest window starts: the end of its last digest that was not
    /// cancelled, if any.
    pub async fn last_digest_end(&self, list_id: i64) -> Result<Option<DateTime<Utc>>> {
        let end: Option<String> = db!(self.pool(), |c| {
            sqlx::query_scalar(
                "SELECT MAX(window_end) FROM editions WHERE list_id = $1 AND kind = 'digest' AND status <> 'cancelled'",
            )
            .bind(list_id)
            .fetch_one(c)
            .await
        })?;
        Ok(end.as_deref().and_then(parse_db_time))
    }

    /// The stories of the list's digest whose window ended at `end` (the one before a window
    /// starting there). Windows share their boundary second, so a story stored in that
    /// second may fall in both; this is how the second one leaves it out.
    pub async fn digest_articles_ending_at(
        &self,
        list_id: i64,
        end: DateTime<Utc>,
    ) -> Result<Vec<i64>> {
        Ok(db!(self.pool(), |c| {
            sqlx::query_scalar(
                "SELECT ea.article_id FROM edition_articles ea JOIN editions e ON e.id = ea.edition_id
                 WHERE e.list_id = $1 AND e.kind = 'digest' AND e.status <> 'cancelled' AND e.window_end = $2",
            )
            .bind(list_id)
            .bind(DbTime::from(end))
            .fetch_all(c)
            .await
        })?)
    }

    /// Of `article_ids`, those already sent (or being sent) to the list as breaking news.
    pub async fn sent_as_breaking(&self, list_id: i64) -> Result<Vec<i64>> {
        Ok(db!(self.pool(), |c| {
            sqlx::query_scalar(
                "SELECT breaking_article_id FROM editions
                 WHERE list_id = $1 AND kind = 'breaking' AND breaking_article_id IS NOT NULL AND status IN ('sending', 'paused', 'sent')",
            )
            .bind(list_id)
            .fetch_all(c)
            .await
        })?)
    }

    /// Records an edition, its articles and its recipient snapshot in one transaction.
    ///
    /// The snapshot is one `INSERT … SELECT` of the list's active subscriptions of active
    /// subscribers (the private `snapshot` function says what it costs and why it is eager).
    /// For a digest, the window must still start where the list's last digest ended (checked
    /// under the write lock, or the list's [`Lock`] on PostgreSQL), so two concurrent
    /// builders, on one node or several, cannot both cover the same stories; the unique
    /// (list, slot) and (list, breaking article) constraints make the loser of a race get the
    /// winner's edition.
    pub async fn create_edition(&self, e: &NewEdition) -> Result<Created> {
        let mut tx = self.write_tx().await?;
        tx.lock(Lock::ListEditions(e.list_id)).await?;
        if e.kind == EditionKind::Digest {
            let end: Option<String> = db!(&mut tx, |c| {
                sqlx::query_scalar(
                    "SELECT MAX(window_end) FROM editions WHERE list_id = $1 AND kind = 'digest' AND status <> 'cancelled'",
                )
                .bind(e.list_id)
                .fetch_one(c)
                .await
            })?;
            if let Some(end) = end.as_deref().and_then(parse_db_time)
                && end != e.window_start
            {
                // The slot may simply be taken already; report that rather than a race.
                if let Some(slot) = e.slot
                    && let Some(id) = existing_slot(&mut tx, e.list_id, slot).await?
                {
                    return Ok(Created::Existing { id });
                }
                return Err(StoreError::Conflict(format!(
                    "another edition of this list was recorded meanwhile (window now starts at {}); build again",
                    db_time(end)
                )));
            }
        }
        let now = now_text();
        let status = if e.skip_reason.is_some() {
            EditionStatus::Skipped
        } else {
            EditionStatus::Sending
        };
        let id: Option<i64> = db!(&mut tx, |c| {
            sqlx::query_scalar(
                "INSERT INTO editions (list_id, kind, slot, breaking_article_id, window_start, window_end, subject, status, status_reason, article_count, created_at, finished_at)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)
                 ON CONFLICT DO NOTHING
                 RETURNING id",
            )
            .bind(e.list_id)
            .bind(e.kind)
            .bind(e.slot.map(db_time))
            .bind(e.breaking_article_id)
            .bind(db_time(e.window_start))
            .bind(db_time(e.window_end))
            .bind(&e.subject)
            .bind(status)
            .bind(&e.skip_reason)
            .bind(e.articles.len() as i64)
            .bind(&now)
            .bind(e.skip_reason.as_ref().map(|_| now.clone()))
            .fetch_optional(c)
            .await
        })?;
        let Some(id) = id else {
            let existing: i64 = db!(&mut tx, |c| {
                sqlx::query_scalar(
                    "SELECT id FROM editions WHERE list_id = $1 AND (slot = $2 OR breaking_article_id = $3)",
                )
                .bind(e.list_id)
                .bind(e.slot.map(db_time))
                .bind(e.breaking_article_id)
                .fetch_one(c)
                .await
            })?;
            return Ok(Created::Existing { id: existing });
        };

        for (chunk_no, chunk) in e.articles.chunks(300).enumerate() {
            db!(&mut tx, |c| {
                let mut qb = QueryBuilder::new(
                    "INSERT INTO edition_articles (edition_id, article_id, position, was_breaking) ",
                );
                qb.push_values(chunk.iter().enumerate(), |mut b, (i, (aid, was))| {
                    b.push_bind(id)
                        .push_bind(*aid)
                        .push_bind((chunk_no * 300 + i) as i64)
                        .push_bind(*was);
                });
                qb.build().execute(c).await.affected()
            })?;
        }

        let (mut queued, mut skipped) = (0u64, 0u64);
        if e.skip_reason.is_none() {
            (queued, skipped) = snapshot(
                &mut tx,
                id,
                e.list_id,
                &e.empty_variants,
                self.eager_audience,
            )
            .await?;
            let total = queued + skipped;
            db!(&mut tx, |c| {
                sqlx::query("UPDATE editions SET recipient_count = $1 WHERE id = $2")
                    .bind(total as i64)
                    .bind(id)
                    .execute(c)
                    .await
                    .affected()
            })?;
        }
        tx.commit().await?;
        Ok(Created::New {
            id,
            queued,
            skipped,
        })
    }

    /// One edition.
    pub async fn edition(&self, id: i64) -> Result<EditionRow> {
        let sql = format!("SELECT {EDITION_COLUMNS} FROM editions WHERE id = $1");
        db!(self.pool(), |c| {
            sqlx::query_as::<_, EditionRow>(sqlx::AssertSqlSafe(sql))
                .bind(id)
                .fetch_optional(c)
                .await
        })?
        .ok_or_else(|| StoreError::NotFound(format!("edition #{id}")))
    }

    /// Editions, newest first, optionally of one list.
    pub async fn editions(&self, list_id: Option<i64>, limit: i64) -> Result<Vec<EditionRow>> {
        let sql = format!(
            "SELECT {EDITION_COLUMNS} FROM editions WHERE ($1 IS NULL OR list_id = $1) ORDER BY id DESC LIMIT $2"
        );
        Ok(db!(self.pool(), |c| {
            sqlx::query_as::<_, EditionRow>(sqlx::AssertSqlSafe(sql))
                .bind(list_id)
                .bind(limit)
                .fetch_all(c)
                .await
        })?)
    }

    /// Editions with deliveries to send, breaking news first, then oldest first.
    pub async fn editions_sending(&self) -> Result<Vec<EditionRow>> {
        let sql = format!(
            "SELECT {EDITION_COLUMNS} FROM editions WHERE status = 'sending' ORDER BY (kind = 'breaking') DESC, id"
        );
        Ok(db!(self.pool(), |c| {
            sqlx::query_as::<_, EditionRow>(sqlx::AssertSqlSafe(sql))
                .fetch_all(c)
                .await
        })?)
    }

    /// An edition's articles in display order, each with whether it was already sent to the
    /// list as breaking news.
    pub async fn edition_articles(&self, edition_id: i64) -> Result<Vec<(ArticleRow, bool)>> {
        #[derive(FromRow)]
        struct Row {
            #[sqlx(flatten)]
            article: ArticleRow,
            was_breaking: bool,
        }
        let cols = ARTICLE_COLUMNS
            .split(", ")
            .map(|c| format!("a.{c}"))
            .collect::<Vec<_>>()
            .join(", ");
        let sql = format!(
            "SELECT {cols}, ea.was_breaking FROM edition_articles ea JOIN articles a ON a.id = ea.article_id
             WHERE ea.edition_id = $1 ORDER BY ea.position"
        );
        let rows: Vec<Row> = db!(self.pool(), |c| {
            sqlx::query_as(sqlx::AssertSqlSafe(sql))
                .bind(edition_id)
                .fetch_all(c)
                .await
        })?;
        Ok(rows
            .into_iter()
            .map(|r| (r.article, r.was_breaking))
            .collect())
    }

    /// Sets an edition's status (sending, paused, cancelled) with a reason for people.
    /// Cancelling also marks its unsent deliveries skipped.
    pub async fn set_edition_status(
        &self,
        id: i64,
        status: EditionStatus,
        reason: Option<&str>,
    ) -> Result<()> {
        let mut tx = self.write_tx().await?;
        let n = db!(&mut tx, |c| {
            sqlx::query("UPDATE editions SET status = $1, status_reason = $2 WHERE id = $3 AND status NOT IN ('sent', 'skipped', 'cancelled')")
                .bind(status)
                .bind(reason)
                .bind(id)
                .execute(c)
                .await.affected()
        })?;
        if n == 0 {
            let cur: Option<EditionStatus> = db!(&mut tx, |c| {
                sqlx::query_scalar("SELECT status FROM editions WHERE id = $1")
                    .bind(id)
                    .fetch_optional(c)
                    .await
            })?;
            return match cur {
                None => Err(StoreError::NotFound(format!("edition #{id}"))),
                Some(s) => Err(StoreError::Conflict(format!(
                    "edition #{id} is already {s}"
                ))),
            };
        }
        if status == EditionStatus::Cancelled {
            db!(&mut tx, |c| {
                sqlx::query(
                    "UPDATE deliveries SET status = 'skipped', last_reply = 'edition cancelled', lease_until = NULL
                     WHERE edition_id = $1 AND status IN ('queued', 'sending')",
                )
                .bind(id)
                .execute(&mut *c)
                .await.affected()?;
                // Readers whose deliveries were not written yet count as skipped, kept as a
                // count as compaction keeps them.
                sqlx::query(
                    "INSERT INTO edition_counts (edition_id, status, count)
                     SELECT edition_id, 'skipped', CAST(SUM(readers) AS BIGINT) FROM edition_audience
                     WHERE edition_id = $1 GROUP BY edition_id
                     ON CONFLICT (edition_id, status) DO UPDATE SET count = edition_counts.count + excluded.count",
                )
                .bind(id)
                .execute(&mut *c)
                .await.affected()?;
                sqlx::query("DELETE FROM edition_audience WHERE edition_id = $1")
                    .bind(id)
                    .execute(&mut *c)
                    .await
                    .affected()?;
                sqlx::query("UPDATE editions SET finished_at = $1 WHERE id = $2")
                    .bind(now_text())
                    .bind(id)
                    .execute(&mut *c)
                    .await
                    .affected()
            })?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// Marks the edition sent if nothing is left to send. Returns whether it is finished.
    pub async fn finish_edition_if_done(&self, id: i64) -> Result<bool> {
        let n = db!(self.writer(), |c| {
            sqlx::query(
                "UPDATE editions SET status = 'sent', finished_at = $1
                 WHERE id = $2 AND status = 'sending'
                   AND NOT EXISTS (SELECT 1 FROM deliveries WHERE edition_id = $2 AND status IN ('queued', 'sending'))
                   AND NOT EXISTS (SELECT 1 FROM edition_audience WHERE edition_id = $2)",
            )
            .bind(now_text())
            .bind(id)
            .execute(c)
            .await.affected()
        })?;
        Ok(n > 0)
    }

    /// Delivery counts of an edition by status.
    pub async fn delivery_counts(&self, edition_id: i64) -> Result<BTreeMap<DeliveryStatus, i64>> {
        // Rows still stored, plus the counts of rows compacted away (see `retention`), plus
        // the queued readers whose rows are not written yet (see `audience`).
        let rows: Vec<(DeliveryStatus, i64)> = db!(self.pool(), |c| {
            sqlx::query_as(
                "SELECT status, CAST(SUM(n) AS BIGINT) FROM (
                     SELECT status, COUNT(*) AS n FROM deliveries WHERE edition_id = $1 GROUP BY status
                     UNION ALL
                     SELECT status, count AS n FROM edition_counts WHERE edition_id = $1
                     UNION ALL
                     SELECT 'queued' AS status, readers AS n FROM edition_audience WHERE edition_id = $1
                 ) AS counts GROUP BY status",
            )
            .bind(edition_id)
            .fetch_all(c)
            .await
        })?;
        Ok(rows.into_iter().collect())
    }

    /// The most recent error replies of an edition's deliveries, with how many got each.
    pub async fn last_errors(&self, edition_id: i64, limit: i64) -> Result<Vec<(String, i64)>> {
        Ok(db!(self.pool(), |c| {
            sqlx::query_as(
                "SELECT last_reply, COUNT(*) FROM deliveries
                 WHERE edition_id = $1 AND status IN ('failed', 'queued') AND last_reply IS NOT NULL
                 GROUP BY last_reply ORDER BY COUNT(*) DESC, last_reply LIMIT $2",
            )
            .bind(edition_id)
            .bind(limit)
            .fetch_all(c)
            .await
        })?)
    }

    /// The newest edition of a list, if any.
    pub async fn last_edition_summary(&self, list_id: i64) -> Result<Option<EditionSummary>> {
        Ok(db!(self.pool(), |c| {
            sqlx::query_as::<_, EditionSummary>(
                "SELECT id, kind, status, subject, article_count, recipient_count, created_at
                 FROM editions WHERE list_id = $1 ORDER BY id DESC LIMIT 1",
            )
            .bind(list_id)
            .fetch_optional(c)
            .await
        })?)
    }

    /// The distinct category choices (stored form, `None` = all) of a list's active readers:
    /// the render variants an edition needs.
    pub async fn category_variants(&self, list_id: i64) -> Result<Vec<Option<String>>> {
        Ok(db!(self.pool(), |c| {
            sqlx::query_scalar(
                "SELECT DISTINCT categories FROM subscriptions WHERE list_id = $1 AND status = 'active'",
            )
            .bind(list_id)
            .fetch_all(c)
            .await
        })?)
    }
}

/// Why a reader's delivery is skipped when their category choice has no story.
const NO_STORIES: &str = "no stories in the reader's chosen categories";

/// Writes the recipient snapshot of edition `id`: one delivery per active subscription of an
/// active subscriber of the list, queued, or skipped when the reader's stored category choice
/// is one of `empty_variants` (no story for them). Returns how many it queued and skipped.
///
/// In the edition's transaction, so the edition and its audience appear together or not at
/// all. The skipped rows are written; the queued readers are recorded in `edition_audience`
/// and written out as deliveries at once when there are at most `eager` of them, otherwise
/// as the sender reaches them (see [`audience`](super::audience)).
///
/// What made a large snapshot slow on PostgreSQL before (52.6 s for 1,000,000 readers,
/// mostly the two per-row foreign-key triggers) is gone from the schema
/// (`migrations/postgres/20261215000000_snapshot.sql`): integrity is kept by statement-level
/// triggers and the shared [`Lock::SnapshotAudience`] taken here.
async fn snapshot(
    tx: &mut Tx,
    id: i64,
    list_id: i64,
    empty_variants: &[Option<String>],
    eager: u64,
) -> Result<(u64, u64)> {
    // A subscriber deleted meanwhile waits for this transaction (see the lock's rustdoc).
    tx.lock_shared(Lock::SnapshotAudience).await?;
    let named: Vec<&str> = empty_variants
        .iter()
        .flatten()
        .map(String::as_str)
        .collect();
    let all_empty = empty_variants.iter().any(Option::is_none);
    let no_stories = (!empty_variants.is_empty()).then_some((all_empty, named.as_slice()));
    let skipped = match no_stories {
        None => 0,
        Some((all_empty, named)) => db!(tx, |c| {
            let mut qb = QueryBuilder::new(
                "INSERT INTO deliveries (edition_id, subscriber_id, categories, status, last_reply) SELECT ",
            );
            qb.push_bind(id)
                .push(", s.subscriber_id, s.categories, 'skipped', ")
                .push_bind(NO_STORIES);
            push_audience(&mut qb, list_id);
            qb.push(" AND ");
            push_no_stories(&mut qb, all_empty, named);
            qb.build().execute(c).await.affected()
        })?,
    };
    let queued = audience::record(tx, id, list_id, no_stories).await?;
    if queued <= eager {
        audience::write_out(tx, id, None).await?;
    }
    Ok((queued, skipped))
}

/// ` FROM … WHERE …`: the active subscriptions of active subscribers of `list_id`, as `s`.
pub(super) fn push_audience<DB: sqlx::Database>(qb: &mut QueryBuilder<DB>, list_id: i64)
where
    for<'t> i64: sqlx::Encode<'t, DB> + sqlx::Type<DB>,
{
    qb.push(
        " FROM subscriptions s JOIN subscribers p ON p.id = s.subscriber_id
          WHERE s.list_id = ",
    )
    .push_bind(list_id)
    .push(" AND s.status = 'active' AND p.status = 'active'");
}

/// Whether reader `s`'s category choice has no story: `(s.categories IS NULL AND
/// <all readers' variant is empty>) OR s.categories IN (<named empty variants>)`, the
/// `IS NOT DISTINCT FROM` of each variant written so that both backends plan it. NULL (not
/// false) for a NULL choice when the all-readers variant has stories.
pub(super) fn push_no_stories<DB: sqlx::Database>(
    qb: &mut QueryBuilder<DB>,
    all_empty: bool,
    named: &[&str],
) where
    for<'t> bool: sqlx::Encode<'t, DB> + sqlx::Type<DB>,
    for<'t> String: sqlx::Encode<'t, DB> + sqlx::Type<DB>,
{
    qb.push("((s.categories IS NULL AND ")
        .push_bind(all_empty)
        .push(") OR s.categories IN (");
    let mut sep = qb.separated(", ");
    // An empty IN () is not SQL; NULL matches nothing there.
    sep.push("NULL");
    for v in named {
        sep.push_bind((*v).to_owned());
    }
    qb.push("))");
}

async fn existing_slot(tx: &mut Tx, list_id: i64, slot: DateTime<Utc>) -> Result<Option<i64>> {
    Ok(db!(tx, |c| {
        sqlx::query_scalar("SELECT id FROM editions WHERE list_id = $1 AND slot = $2")
            .bind(list_id)
            .bind(db_time(slot))
            .fetch_optional(c)
            .await
    })?)
}

impl Store {
    /// Whether the list has an edition for this scheduled slot.
    pub async fn edition_for_slot(&self, list_id: i64, slot: DateTime<Utc>) -> Result<Option<i64>> {
        Ok(db!(self.pool(), |c| {
            sqlx::query_scalar("SELECT id FROM editions WHERE list_id = $1 AND slot = $2")
                .bind(list_id)
                .bind(db_time(slot))
                .fetch_optional(c)
                .await
        })?)
    }

    /// Breaking articles stored since `since` that some breaking-news list has no edition
    /// of yet: the daemon's breaking-news poll.
    pub async fn unsent_breaking(&self, since: DateTime<Utc>) -> Result<Vec<i64>> {
        Ok(db!(self.pool(), |c| {
            sqlx::query_scalar(
                "SELECT a.id FROM articles a
                 WHERE a.breaking AND a.created_at >= $1
                   AND EXISTS (SELECT 1 FROM lists l WHERE l.sends_breaking
                       AND NOT EXISTS (SELECT 1 FROM editions e WHERE e.list_id = l.id AND e.breaking_article_id = a.id))
                 ORDER BY a.id",
            )
            .bind(db_time(since))
            .fetch_all(c)
            .await
        })?)
    }
}

#[cfg(test)]
mod tests {
    use chrono::Duration;

    use super::*;
    use crate::domain::{CategorySet, EmailAddress, ListSlug, parse_timestamp};
    use crate::store::subscribers::NewSubscription;
    use crate::store::testutil::{daily_list, sender, store_test, temp_store_on};
    use crate::store::{Backend, Item, ListSpec, Outcome, Verdict};

    fn reader(i: usize, sport_only: bool) -> NewSubscription {
        NewSubscription {
            email: EmailAddress::parse(&format!("reader{i}@example.com")).unwrap(),
            name: None,
            categories: sport_only.then(|| CategorySet::parse_list("Sport").unwrap()),
        }
    }

    fn digest(list_id: i64, empty_variants: Vec<Option<String>>) -> NewEdition {
        NewEdition {
            list_id,
            kind: EditionKind::Digest,
            slot: None,
            breaking_article_id: None,
            window_start: parse_timestamp("2026-11-27T02:00:00Z").unwrap(),
            window_end: parse_timestamp("2026-11-28T02:00:00Z").unwrap(),
            subject: "Daily".into(),
            articles: vec![],
            skip_reason: None,
            empty_variants,
        }
    }

    /// Makes the list's digest with no Sport story, so that Sport-only readers are recorded
    /// skipped: (edition, queued, skipped).
    async fn digest_without_sport(store: &Store, list: i64) -> (i64, u64, u64) {
        let variants = store.category_variants(list).await.unwrap();
        let sport = variants.into_iter().flatten().next().unwrap();
        let Created::New {
            id,
            queued,
            skipped,
        } = store
            .create_edition(&digest(list, vec![Some(sport)]))
            .await
            .unwrap()
        else {
            panic!("expected a new edition");
        };
        (id, queued, skipped)
    }

    /// The readers an edition has a delivery row for, by address.
    async fn audience(store: &Store, edition: i64) -> Vec<(String, DeliveryStatus)> {
        db!(store.pool(), |c| {
            sqlx::query_as(
                "SELECT p.email, d.status FROM deliveries d JOIN subscribers p ON p.id = d.subscriber_id
                 WHERE d.edition_id = $1 ORDER BY p.email",
            )
            .bind(edition)
            .fetch_all(c)
            .await
        })
        .unwrap()
    }

    store_test!(the_snapshot_holds_the_readers_active_when_it_is_made_and_skips_empty_variants);
    async fn the_snapshot_holds_the_readers_active_when_it_is_made_and_skips_empty_variants(
        backend: Backend,
    ) {
        let (store, _d) = temp_store_on(backend).await;
        let list = store
            .create_list(&ListSlug::parse("daily").unwrap(), &ListSpec::default())
            .await
            .unwrap()
            .id;
        // reader0 and reader2 take everything, reader1 and reader3 only Sport.
        let rows: Vec<_> = (0..4).map(|i| reader(i, i % 2 == 1)).collect();
        store
            .subscribe_batch(list, &rows, "test", false)
            .await
            .unwrap();
        // reader2 leaves before the edition is made.
        store
            .unsubscribe_email(&rows[2].email, Some(list))
            .await
            .unwrap();
        let (id, queued, skipped) = digest_without_sport(&store, list).await;
        assert_eq!((queued, skipped), (1, 2));
        assert_eq!(store.edition(id).await.unwrap().recipient_count, 3);
        // reader4 joins after the snapshot: not in it.
        store
            .subscribe_batch(list, &[reader(4, false)], "test", false)
            .await
            .unwrap();
        assert_eq!(
            audience(&store, id).await,
            [
                ("reader0@example.com".to_owned(), DeliveryStatus::Queued),
                ("reader1@example.com".to_owned(), DeliveryStatus::Skipped),
                ("reader3@example.com".to_owned(), DeliveryStatus::Skipped),
            ]
        );
        let reasons: Vec<Option<String>> = db!(store.pool(), |c| {
            sqlx::query_scalar(
                "SELECT last_reply FROM deliveries WHERE edition_id = $1 AND status = 'skipped'",
            )
            .bind(id)
            .fetch_all(c)
            .await
        })
        .unwrap();
        assert_eq!(reasons, vec![Some(NO_STORIES.to_owned()); 2]);
        let counts =
            |pairs: &[(DeliveryStatus, i64)]| pairs.iter().copied().collect::<BTreeMap<_, _>>();
        assert_eq!(
            store.delivery_counts(id).await.unwrap(),
            counts(&[(DeliveryStatus::Queued, 1), (DeliveryStatus::Skipped, 2)])
        );

        // While sending, then after.
        let me = sender(&store).await;
        let (claimed, skips) = store
            .claim_deliveries(id, list, 10, Duration::minutes(5), me)
            .await
            .unwrap();
        assert_eq!(skips.unwanted, 0);
        let emails: Vec<&str> = claimed.iter().map(|c| c.email.as_str()).collect();
        assert_eq!(emails, ["reader0@example.com"]);
        assert_eq!(
            store.delivery_counts(id).await.unwrap(),
            counts(&[(DeliveryStatus::Sending, 1), (DeliveryStatus::Skipped, 2)])
        );
        store
            .record_outcomes(
                &[Outcome {
                    item: Item::Delivery {
                        id: claimed[0].delivery_id,
                        subscriber_id: claimed[0].subscriber_id,
                    },
                    verdict: Verdict::Sent,
                }],
                3,
            )
            .await
            .unwrap();
        assert!(store.finish_edition_if_done(id).await.unwrap());
        assert_eq!(
            store.delivery_counts(id).await.unwrap(),
            counts(&[(DeliveryStatus::Sent, 1), (DeliveryStatus::Skipped, 2)])
        );
    }

    store_test!(a_reader_who_leaves_after_the_snapshot_is_not_sent);
    async fn a_reader_who_leaves_after_the_snapshot_is_not_sent(backend: Backend) {
        let (store, _d) = temp_store_on(backend).await;
        let rows: Vec<_> = (0..3).map(|i| reader(i, false)).collect();
        let list = daily_list(&store, &rows).await;
        let Created::New { id, queued: 3, .. } =
            store.create_edition(&digest(list, vec![])).await.unwrap()
        else {
            panic!("expected a new edition of three");
        };
        store
            .unsubscribe_email(&rows[1].email, Some(list))
            .await
            .unwrap();
        let me = sender(&store).await;
        let (claimed, skips) = store
            .claim_deliveries(id, list, 10, Duration::minutes(5), me)
            .await
            .unwrap();
        assert_eq!(skips.unwanted, 1);
        let emails: Vec<&str> = claimed.iter().map(|c| c.email.as_str()).collect();
        assert_eq!(emails, ["reader0@example.com", "reader2@example.com"]);
    }

    store_test!(erasing_a_reader_or_deleting_a_list_removes_their_deliveries);
    async fn erasing_a_reader_or_deleting_a_list_removes_their_deliveries(backend: Backend) {
        let (store, _d) = temp_store_on(backend).await;
        let rows: Vec<_> = (0..3).map(|i| reader(i, false)).collect();
        let list = daily_list(&store, &rows).await;
        let Created::New { id, .. } = store.create_edition(&digest(list, vec![])).await.unwrap()
        else {
            panic!("expected a new edition");
        };
        // Never unsubscribed, so nothing of them is kept (`false`): the subscriber row itself
        // is deleted, and PostgreSQL's trigger (SQLite's cascade) takes the delivery with it.
        assert!(!store.erase_subscriber(&rows[0].email).await.unwrap());
        let left: Vec<String> = audience(&store, id)
            .await
            .into_iter()
            .map(|(e, _)| e)
            .collect();
        assert_eq!(left, ["reader1@example.com", "reader2@example.com"]);
        let all: i64 = db!(store.pool(), |c| {
            sqlx::query_scalar("SELECT COUNT(*) FROM deliveries")
                .fetch_one(c)
                .await
        })
        .unwrap();
        assert_eq!(all, 2);
        store.delete_list("daily", true).await.unwrap();
        let all: i64 = db!(store.pool(), |c| {
            sqlx::query_scalar("SELECT COUNT(*) FROM deliveries")
                .fetch_one(c)
                .await
        })
        .unwrap();
        assert_eq!(all, 0);
    }

    /// Claims `store`'s deliveries of edition `id` `batch` at a time until none is left,
    /// recording each sent; returns the addresses claimed, in claim order, and the readers
    /// the claims skipped.
    async fn send_all(store: &Store, id: i64, list: i64, batch: i64) -> (Vec<String>, u64) {
        let me = sender(store).await;
        let (mut sent, mut unwanted) = (Vec::new(), 0);
        loop {
            let (claimed, skips) = store
                .claim_deliveries(id, list, batch, Duration::minutes(5), me)
                .await
                .unwrap();
            unwanted += skips.unwanted;
            if claimed.is_empty() && skips.unwanted == 0 {
                return (sent, unwanted);
            }
            assert!(claimed.len() as i64 <= batch);
            let outcomes: Vec<Outcome> = claimed
                .iter()
                .map(|c| Outcome {
                    item: Item::Delivery {
                        id: c.delivery_id,
                        subscriber_id: c.subscriber_id,
                    },
                    verdict: Verdict::Sent,
                })
                .collect();
            store.record_outcomes(&outcomes, 3).await.unwrap();
            sent.extend(claimed.into_iter().map(|c| c.email.as_str().to_owned()));
        }
    }

    store_test!(
        an_audience_written_as_the_sender_reaches_it_is_the_snapshots_and_each_reader_gets_one
    );
    async fn an_audience_written_as_the_sender_reaches_it_is_the_snapshots_and_each_reader_gets_one(
        backend: Backend,
    ) {
        let (store, _d) = temp_store_on(backend).await;
        // Nothing written at once: every queued reader waits in edition_audience, seven to
        // a row (the unit tests' size).
        let store = store.with_eager_audience(0);
        let list = store
            .create_list(&ListSlug::parse("daily").unwrap(), &ListSpec::default())
            .await
            .unwrap()
            .id;
        // 40 readers, the last ten Sport only; the edition has no Sport story.
        let rows: Vec<_> = (0..40).map(|i| reader(i, i >= 30)).collect();
        store
            .subscribe_batch(list, &rows, "test", false)
            .await
            .unwrap();
        let (id, queued, skipped) = digest_without_sport(&store, list).await;
        assert_eq!((queued, skipped), (30, 10));
        assert_eq!(store.edition(id).await.unwrap().recipient_count, 40);
        let written: i64 = db!(store.pool(), |c| {
            sqlx::query_scalar("SELECT COUNT(*) FROM deliveries WHERE edition_id = $1")
                .bind(id)
                .fetch_one(c)
                .await
        })
        .unwrap();
        assert_eq!(written, 10, "only the skipped rows are written at once");
        let due = store.next_due(id).await.unwrap();
        assert!(
            due.is_some_and(|t| t <= Utc::now()),
            "unwritten readers are due now: {due:?}"
        );
        let counts =
            |pairs: &[(DeliveryStatus, i64)]| pairs.iter().copied().collect::<BTreeMap<_, _>>();
        assert_eq!(
            store.delivery_counts(id).await.unwrap(),
            counts(&[(DeliveryStatus::Queued, 30), (DeliveryStatus::Skipped, 10)])
        );
        let metrics = store.metrics_snapshot().await.unwrap();
        let queued_in_metrics: i64 = metrics
            .deliveries
            .iter()
            .filter(|d| d.status == "queued")
            .map(|d| d.count)
            .sum();
        assert_eq!(queued_in_metrics, 30);

        // After the snapshot: reader40 joins (not in it), reader3 leaves (skipped when
        // claimed), reader5 is erased outright and reader20 erased keeping a hashed record
        // (no delivery at all for either).
        store
            .subscribe_batch(list, &[reader(40, false)], "test", false)
            .await
            .unwrap();
        store
            .unsubscribe_email(&rows[3].email, Some(list))
            .await
            .unwrap();
        assert!(!store.erase_subscriber(&rows[5].email).await.unwrap());
        store
            .unsubscribe_email(&rows[20].email, Some(list))
            .await
            .unwrap();
        assert!(store.erase_subscriber(&rows[20].email).await.unwrap());
        assert!(!store.finish_edition_if_done(id).await.unwrap());

        let (sent, unwanted) = send_all(&store, id, list, 4).await;
        let mut expected: Vec<String> = (0..30)
            .filter(|i| ![3, 5, 20].contains(i))
            .map(|i| format!("reader{i}@example.com"))
            .collect();
        let mut got = sent.clone();
        got.sort();
        expected.sort();
        assert_eq!(
            got, expected,
            "every reader of the snapshot once, nobody else"
        );
        assert_eq!(unwanted, 1);
        assert!(store.finish_edition_if_done(id).await.unwrap());
        assert_eq!(
            store.delivery_counts(id).await.unwrap(),
            counts(&[(DeliveryStatus::Sent, 27), (DeliveryStatus::Skipped, 11)])
        );
        let left: i64 = db!(store.pool(), |c| {
            sqlx::query_scalar("SELECT COUNT(*) FROM edition_audience")
                .fetch_one(c)
                .await
        })
        .unwrap();
        assert_eq!(left, 0);
    }

    store_test!(two_nodes_writing_one_audience_at_once_send_each_reader_once);
    async fn two_nodes_writing_one_audience_at_once_send_each_reader_once(backend: Backend) {
        let (store, d) = temp_store_on(backend).await;
        let store = store.with_eager_audience(0);
        let other = d.reopen().await.with_eager_audience(0);
        let rows: Vec<_> = (0..200).map(|i| reader(i, false)).collect();
        let list = daily_list(&store, &rows).await;
        let Created::New {
            id, queued: 200, ..
        } = store.create_edition(&digest(list, vec![])).await.unwrap()
        else {
            panic!("expected a new edition of 200");
        };
        let ((a, _), (b, _)) =
            tokio::join!(send_all(&store, id, list, 3), send_all(&other, id, list, 5));
        let mut all: Vec<String> = a.into_iter().chain(b).collect();
        all.sort();
        let mut expected: Vec<String> = rows.iter().map(|r| r.email.as_str().to_owned()).collect();
        expected.sort();
        assert_eq!(all, expected, "each reader exactly once across both nodes");
        assert!(store.finish_edition_if_done(id).await.unwrap());
    }

    store_test!(cancelling_an_edition_counts_its_unwritten_readers_skipped);
    async fn cancelling_an_edition_counts_its_unwritten_readers_skipped(backend: Backend) {
        let (store, _d) = temp_store_on(backend).await;
        let store = store.with_eager_audience(0);
        let rows: Vec<_> = (0..20).map(|i| reader(i, false)).collect();
        let list = daily_list(&store, &rows).await;
        let Created::New { id, .. } = store.create_edition(&digest(list, vec![])).await.unwrap()
        else {
            panic!("expected a new edition");
        };
        // One claim of 4: one row of seven written, four of them claimed.
        let me = sender(&store).await;
        let (claimed, _) = store
            .claim_deliveries(id, list, 4, Duration::minutes(5), me)
            .await
            .unwrap();
        assert_eq!(claimed.len(), 4);
        store
            .set_edition_status(id, EditionStatus::Cancelled, Some("test"))
            .await
            .unwrap();
        let counts = store.delivery_counts(id).await.unwrap();
        assert_eq!(counts.get(&DeliveryStatus::Skipped), Some(&20));
        assert_eq!(counts.values().sum::<i64>(), 20);
        let (claimed, _) = store
            .claim_deliveries(id, list, 50, Duration::minutes(5), me)
            .await
            .unwrap();
        assert!(
            claimed.is_empty(),
            "a cancelled edition has nothing to claim"
        );
    }
}
