//! Editions: one send of a list (a digest for a window, or one breaking story), written with
//! its articles and its recipient snapshot in a single transaction.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::{FromRow, QueryBuilder};

use super::articles::{ARTICLE_COLUMNS, ArticleRow};
use super::{Lock, Result, Store, StoreError, Tx, db, now_text, parse_db_time};
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
    /// subscribers. For a digest, the window must still start where the list's last digest
    /// ended (checked under the write lock, or the list's [`Lock`] on PostgreSQL), so two
    /// concurrent builders, on one node or several, cannot both cover the same stories; the
    /// unique (list, slot) and (list, breaking article) constraints make the loser of a race
    /// get the winner's edition.
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
            queued = db!(&mut tx, |c| {
                sqlx::query(
                    "INSERT INTO deliveries (edition_id, subscriber_id, categories)
                     SELECT $1, s.subscriber_id, s.categories
                     FROM subscriptions s JOIN subscribers p ON p.id = s.subscriber_id
                     WHERE s.list_id = $2 AND s.status = 'active' AND p.status = 'active'",
                )
                .bind(id)
                .bind(e.list_id)
                .execute(c)
                .await
                .affected()
            })?;
            for v in &e.empty_variants {
                skipped += db!(&mut tx, |c| {
                    sqlx::query(
                        "UPDATE deliveries SET status = 'skipped', last_reply = 'no stories in the reader''s chosen categories'
                         WHERE edition_id = $1 AND categories IS NOT DISTINCT FROM $2",
                    )
                    .bind(id)
                    .bind(v)
                    .execute(c)
                    .await.affected()
                })?;
            }
            queued -= skipped;
            db!(&mut tx, |c| {
                sqlx::query("UPDATE editions SET recipient_count = $1 WHERE id = $2")
                    .bind((queued + skipped) as i64)
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
                   AND NOT EXISTS (SELECT 1 FROM deliveries WHERE edition_id = $2 AND status IN ('queued', 'sending'))",
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
        // Rows still stored, plus the counts of rows compacted away (see `retention`).
        let rows: Vec<(DeliveryStatus, i64)> = db!(self.pool(), |c| {
            sqlx::query_as(
                "SELECT status, CAST(SUM(n) AS BIGINT) FROM (
                     SELECT status, COUNT(*) AS n FROM deliveries WHERE edition_id = $1 GROUP BY status
                     UNION ALL
                     SELECT status, count AS n FROM edition_counts WHERE edition_id = $1
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
