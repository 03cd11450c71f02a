//! The preferences page: a reader's lists and categories, read and changed by token.

use sqlx::FromRow;

use super::tokens::{READER_PURPOSES, TokenTarget, find_target};
use super::{Result, Store, Tx, db, now_text};
use crate::domain::{CategorySet, SubscriptionStatus, Token};

/// One of a reader's subscriptions, for the preferences page.
#[derive(Debug, Clone, FromRow)]
pub struct PreferenceRow {
    pub list_id: i64,
    pub slug: String,
    pub name: String,
    pub description: String,
    /// The categories the list carries (`None` = all).
    pub list_categories: Option<String>,
    pub status: SubscriptionStatus,
    /// The reader's choice (`None` = all).
    pub categories: Option<String>,
}

/// A reader's preferences page: the token's subscription and all of the reader's lists.
#[derive(Debug, Clone)]
pub struct Preferences {
    pub target: TokenTarget,
    pub subscriptions: Vec<PreferenceRow>,
}

/// A change asked for on the preferences page, for one list the reader has a subscription on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PreferenceChange {
    pub list_id: i64,
    /// Stay on (or rejoin) the list, or leave it.
    pub subscribed: bool,
    /// `None` = every category.
    pub categories: Option<CategorySet>,
}

async fn subscriber_subscriptions(tx: &mut Tx, subscriber_id: i64) -> Result<Vec<PreferenceRow>> {
    Ok(db!(tx, |conn| {
        sqlx::query_as(
        "SELECT l.id AS list_id, l.slug, l.name, l.description, l.categories AS list_categories, s.status, s.categories
         FROM subscriptions s JOIN lists l ON l.id = s.list_id
         WHERE s.subscriber_id = $1 ORDER BY l.name, l.slug",
    )
    .bind(subscriber_id)
    .fetch_all(conn).await
    })?)
}

pub(super) fn stored(c: &Option<CategorySet>) -> Option<String> {
    c.as_ref()
        .filter(|c| !c.is_empty())
        .map(CategorySet::to_stored)
}

impl Store {
    /// The reader's preferences: every list they have (or had) a subscription on. `None`: no
    /// such token, or the reader was erased.
    pub async fn preferences(&self, token: &Token) -> Result<Option<Preferences>> {
        let mut tx = self.pool().begin_snapshot().await?;
        let target = find_target(&mut tx, &token.hash(), READER_PURPOSES)
            .await?
            .filter(|t| t.email.is_some());
        let Some(target) = target else {
            return Ok(None);
        };
        let subscriptions = subscriber_subscriptions(&mut tx, target.subscriber_id).await?;
        tx.commit().await?;
        Ok(Some(Preferences {
            target,
            subscriptions,
        }))
    }

    /// Applies the preferences page: per list, leave it, or stay/rejoin with a choice of
    /// categories. Lists the reader never had a subscription on are ignored. Rejoining a list
    /// records fresh consent (`web`, now, `ip`): the token proves the reader received our mail.
    /// Returns the reader's subscriptions afterwards; `None`: no such token.
    pub async fn save_preferences(
        &self,
        token: &Token,
        changes: &[PreferenceChange],
        ip: &str,
    ) -> Result<Option<Preferences>> {
        let mut tx = self.write_tx().await?;
        let target = find_target(&mut tx, &token.hash(), READER_PURPOSES)
            .await?
            .filter(|t| t.email.is_some());
        let Some(target) = target else {
            return Ok(None);
        };
        let now = now_text();
        // In list order: each statement locks its list's rows in `list_counts` until the
        // commit, so two readers saving the same lists in different orders (a form lists them
        // as the reader's subscriptions come) would otherwise wait for each other on PostgreSQL.
        let mut changes: Vec<&PreferenceChange> = changes.iter().collect();
        changes.sort_by_key(|c| c.list_id);
        for c in changes {
            if !c.subscribed {
                db!(&mut tx, |conn| {
                    sqlx::query(
                        "UPDATE subscriptions SET status = 'unsubscribed', unsubscribed_at = $1
                     WHERE subscriber_id = $2 AND list_id = $3 AND status <> 'unsubscribed'",
                    )
                    .bind(&now)
                    .bind(target.subscriber_id)
                    .bind(c.list_id)
                    .execute(conn)
                    .await
                    .affected()
                })?;
                continue;
            }
            let rejoined = db!(&mut tx, |conn| {
                sqlx::query(
                "UPDATE subscriptions SET status = 'active', confirmed_at = $1, confirm_ip = $2, unsubscribed_at = NULL, unsubscribe_reason = NULL
                 WHERE subscriber_id = $3 AND list_id = $4 AND status <> 'active'",
            )
            .bind(&now)
            .bind(ip)
            .bind(target.subscriber_id)
            .bind(c.list_id)
            .execute(conn).await.affected()
            })?;
            if rejoined > 0 {
                db!(&mut tx, |conn| {
                    sqlx::query(
                    "UPDATE subscribers SET consent_source = 'web', consent_at = $1, consent_ip = $2, updated_at = $1 WHERE id = $3",
                )
                .bind(&now)
                .bind(ip)
                .bind(target.subscriber_id)
                .execute(conn).await.affected()
                })?;
            }
            db!(&mut tx, |conn| {
                sqlx::query(
                "UPDATE subscriptions SET categories = $1 WHERE subscriber_id = $2 AND list_id = $3",
            )
            .bind(stored(&c.categories))
            .bind(target.subscriber_id)
            .bind(c.list_id)
            .execute(conn).await.affected()
            })?;
        }
        let subscriptions = subscriber_subscriptions(&mut tx, target.subscriber_id).await?;
        tx.commit().await?;
        Ok(Some(Preferences {
            target,
            subscriptions,
        }))
    }
}
