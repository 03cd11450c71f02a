//! Reader tokens: what a token points at, and issuing them.
//!
//! Only the SHA-256 of a token is stored, and every lookup is by that hash. A timing
//! difference in the index lookup would at best reveal something about a *hash* an attacker
//! chose, not about a stored secret, so a constant-time comparison would add nothing here.
//!
//! A subscription has one reader token, derived from the installation's key and the
//! subscription's generation and reused by every message; it opens both the unsubscribe and
//! the preferences page (the email links both), so both purposes are accepted there.
//! `confirm` tokens are only good for confirming, and expire. What the pages do with a token
//! is in [`super::unsubscribe`], [`super::signup`] and [`super::preferences`].

use sqlx::FromRow;

use super::{Lock, Result, Store, StoreError, Tx, db, now_text};
use crate::domain::{DbTime, EmailAddress, SubscriptionStatus, Token, TokenPurpose};

/// The tokens that open the unsubscribe and preferences pages.
pub const READER_PURPOSES: &[TokenPurpose] =
    &[TokenPurpose::Unsubscribe, TokenPurpose::Preferences];

/// What a valid token points at: one subscription, with its list.
#[derive(Debug, Clone, FromRow)]
pub struct TokenTarget {
    pub subscription_id: i64,
    pub subscriber_id: i64,
    pub list_id: i64,
    pub list_slug: String,
    pub list_name: String,
    /// The list's language tag; `None` = `[publication] language`.
    pub list_language: Option<String>,
    /// The subscription's status.
    pub status: SubscriptionStatus,
    pub purpose: TokenPurpose,
    pub token_created_at: DbTime,
    /// `None` once the subscriber was erased.
    pub email: Option<String>,
    pub unsubscribed_at: Option<String>,
}

impl TokenTarget {
    /// The domain of the reader's address, the only part of it we log.
    pub fn email_domain(&self) -> &str {
        self.email
            .as_deref()
            .and_then(|e| e.rsplit_once('@'))
            .map_or("(erased)", |(_, d)| d)
    }
}

const TARGET_SELECT: &str = "SELECT t.subscription_id, s.subscriber_id, s.list_id, l.slug AS list_slug, l.name AS list_name,
        l.language AS list_language, s.status, t.purpose, t.created_at AS token_created_at, p.email, s.unsubscribed_at
 FROM tokens t
 JOIN subscriptions s ON s.id = t.subscription_id
 JOIN lists l ON l.id = s.list_id
 JOIN subscribers p ON p.id = s.subscriber_id
 WHERE t.hash = $1 AND (t.expires_at IS NULL OR t.expires_at > $2)";

/// The token's target inside a transaction, if it has one of `purposes`.
pub(super) async fn find_target(
    tx: &mut Tx,
    hash: &[u8],
    purposes: &[TokenPurpose],
) -> Result<Option<TokenTarget>> {
    let t: Option<TokenTarget> = db!(tx, |conn| {
        sqlx::query_as(TARGET_SELECT)
            .bind(hash)
            .bind(now_text())
            .fetch_optional(conn)
            .await
    })?;
    Ok(with_purpose(t, purposes))
}

/// `t` if its token has one of `purposes`.
fn with_purpose(t: Option<TokenTarget>, purposes: &[TokenPurpose]) -> Option<TokenTarget> {
    t.filter(|t| purposes.contains(&t.purpose))
}

impl Store {
    /// The subscription a token points at, if the token exists, has not expired and has one
    /// of `purposes`. Malformed, unknown, expired and wrong-purpose tokens all give `None`.
    pub async fn token_target(
        &self,
        token: &Token,
        purposes: &[TokenPurpose],
    ) -> Result<Option<TokenTarget>> {
        let hash = token.hash();
        let t: Option<TokenTarget> = db!(self.pool(), |conn| {
            sqlx::query_as(TARGET_SELECT)
                .bind(&hash)
                .bind(now_text())
                .fetch_optional(conn)
                .await
        })?;
        Ok(with_purpose(t, purposes))
    }
}

impl Store {
    /// Issues a new reader token for every subscription of `email` and deletes the old ones
    /// (also those issued per message before tokens were per subscription): every earlier
    /// unsubscribe and preferences link of that reader stops working. Returns how many
    /// subscriptions got a new token.
    pub async fn rotate_tokens(&self, email: &EmailAddress) -> Result<u64> {
        let mut tx = self.write_tx().await?;
        tx.lock(Lock::Subscribers).await?;
        let subs: Vec<(i64, Option<i64>)> = db!(&mut tx, |conn| {
            sqlx::query_as(
            "SELECT s.id, s.token_gen FROM subscriptions s JOIN subscribers p ON p.id = s.subscriber_id
             WHERE p.email_key = $1 AND p.email IS NOT NULL",
        )
        .bind(email.canonical())
        .fetch_all(conn).await
        })?;
        if subs.is_empty() {
            return Err(StoreError::NotFound(format!(
                "subscriber with domain @{}",
                email.domain()
            )));
        }
        let now = DbTime::now();
        for (id, generation) in &subs {
            let next = generation.unwrap_or(0) + 1;
            db!(&mut tx, |conn| {
                sqlx::query(
                "DELETE FROM tokens WHERE subscription_id = $1 AND purpose IN ('unsubscribe', 'preferences')",
            )
            .bind(id)
            .execute(conn).await.affected()
            })?;
            db!(&mut tx, |conn| {
                sqlx::query("UPDATE subscriptions SET token_gen = $1 WHERE id = $2")
                    .bind(next)
                    .bind(id)
                    .execute(conn)
                    .await
                    .affected()
            })?;
            db!(&mut tx, |conn| {
                sqlx::query(
                "INSERT INTO tokens (hash, purpose, subscription_id, created_at) VALUES ($1, $2, $3, $4)",
            )
            .bind(Token::derive(self.token_key(), *id, next).hash())
            .bind(TokenPurpose::Unsubscribe)
            .bind(id)
            .bind(now)
            .execute(conn).await.affected()
            })?;
        }
        tx.commit().await?;
        Ok(subs.len() as u64)
    }

    /// The current reader token of a subscription, if it has one (tests and the preview).
    pub async fn reader_token(&self, subscription_id: i64) -> Result<Option<Token>> {
        let generation: Option<Option<i64>> = db!(self.pool(), |conn| {
            sqlx::query_scalar("SELECT token_gen FROM subscriptions WHERE id = $1")
                .bind(subscription_id)
                .fetch_optional(conn)
                .await
        })?;
        Ok(generation
            .flatten()
            .map(|g| Token::derive(self.token_key(), subscription_id, g)))
    }
}
