//! Reader tokens and what the web pages do with them: unsubscribe, confirm a sign-up, change
//! preferences, and sign up from the web form.
//!
//! Only the SHA-256 of a token is stored, and every lookup is by that hash. A timing
//! difference in the index lookup would at best reveal something about a *hash* an attacker
//! chose, not about a stored secret, so a constant-time comparison would add nothing here.
//!
//! Claims issue one `unsubscribe` token per message; the same token opens the reader's
//! preferences page (the email links both), so both purposes are accepted there. `confirm`
//! tokens are only good for confirming, and expire.

use chrono::Utc;
use sqlx::FromRow;

use super::backend::retrying;
use super::subscribers::erased_key;
use super::{Lock, Pool, Result, Store, StoreError, Tx, db, now_text, parse_db_time};
use crate::domain::{
    CategorySet, DbTime, EmailAddress, SubscriptionStatus, Token, TokenPurpose, db_time,
};

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

/// The result of [`Store::unsubscribe_by_token`].
#[derive(Debug, Clone)]
pub struct Unsubscribed {
    /// The token's subscription, as it was before.
    pub target: TokenTarget,
    /// How many subscriptions changed (0 when repeated).
    pub changed: u64,
}

/// A sign-up from the web form.
#[derive(Debug, Clone)]
pub struct WebSignup<'a> {
    pub email: &'a EmailAddress,
    pub list_id: i64,
    /// `None` = every category the list carries.
    pub categories: Option<CategorySet>,
    /// The client's IP as text, recorded as consent evidence.
    pub ip: &'a str,
}

/// What [`Store::web_subscribe`] did. The web page must not tell these apart (no enumeration).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SignupOutcome {
    /// A new, active subscription (single opt-in list, first sign-up); consent recorded.
    Activated,
    /// A confirmation message is queued (the sender delivers it); nothing is active until
    /// its link is used.
    ConfirmationQueued,
    /// Already subscribed: nothing changed.
    AlreadyActive,
}

/// The result of [`Store::confirm_by_token`].
#[derive(Debug, Clone)]
pub struct Confirmed {
    pub list_slug: String,
    pub list_name: String,
    /// Whether this call activated the subscription (false when repeated).
    pub activated: bool,
    pub email_domain: String,
}

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

const TARGET_SELECT: &str = "SELECT t.subscription_id, s.subscriber_id, s.list_id, l.slug AS list_slug, l.name AS list_name,
        s.status, t.purpose, t.created_at AS token_created_at, p.email, s.unsubscribed_at
 FROM tokens t
 JOIN subscriptions s ON s.id = t.subscription_id
 JOIN lists l ON l.id = s.list_id
 JOIN subscribers p ON p.id = s.subscriber_id
 WHERE t.hash = $1 AND (t.expires_at IS NULL OR t.expires_at > $2)";

/// The token's target inside a transaction, if it has one of `purposes`.
async fn find_target(
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

fn stored(c: &Option<CategorySet>) -> Option<String> {
    c.as_ref()
        .filter(|c| !c.is_empty())
        .map(CategorySet::to_stored)
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

    /// Unsubscribes the token's subscription at once, or every subscription of its reader
    /// with `all`. Repeating it changes nothing and succeeds. `None`: no such token.
    ///
    /// Pending subscriptions are unsubscribed too, and [`Store::confirm_by_token`] refuses a
    /// confirmation link issued before the unsubscribe, so the later choice wins.
    pub async fn unsubscribe_by_token(
        &self,
        token: &Token,
        all: bool,
    ) -> Result<Option<Unsubscribed>> {
        let (reply, answer) = tokio::sync::oneshot::channel();
        let request = UnsubscribeRequest {
            hash: token.hash(),
            all,
            reply,
        };
        if self.unsubscribes.send(request).await.is_err() {
            return Err(StoreError::Conflict("the store is closed".into()));
        }
        answer.await.unwrap_or_else(|_| {
            Err(StoreError::Conflict(
                "the unsubscribe writer stopped".into(),
            ))
        })
    }

    /// Signs an address up for a list from the web form, in one write transaction.
    ///
    /// - New to the list: on a double opt-in list, a *pending* subscription and a confirmation
    ///   token; otherwise an active subscription, with consent recorded as `web`, now, `ip`.
    /// - Pending: a fresh confirmation token (the first mail may have been lost).
    /// - Active: nothing changes (a stranger must not be able to alter someone's choices).
    /// - Unsubscribed: stays unsubscribed until the new confirmation link is used, even on a
    ///   single opt-in list: only the mailbox owner may undo an unsubscribe.
    pub async fn web_subscribe(&self, s: &WebSignup<'_>) -> Result<SignupOutcome> {
        let now = Utc::now();
        let now_s = db_time(now);
        let canonical = s.email.canonical();
        let mut tx = self.write_tx().await?;
        // The address is looked up, then inserted: no other node may insert it in between.
        tx.lock(Lock::Subscribers).await?;
        let double_opt_in: Option<bool> = db!(&mut tx, |conn| {
            sqlx::query_scalar("SELECT double_opt_in FROM lists WHERE id = $1")
                .bind(s.list_id)
                .fetch_optional(conn)
                .await
        })?;
        let Some(double_opt_in) = double_opt_in else {
            return Err(StoreError::NotFound(format!("list #{}", s.list_id)));
        };

        // The live row, or the erasure record an unsubscribed-then-erased address left behind.
        let found: Option<(i64, Option<String>)> = db!(&mut tx, |conn| {
            sqlx::query_as(
                "SELECT id, email FROM subscribers WHERE email_key = $1 OR email_key = $2
             ORDER BY email IS NULL LIMIT 1",
            )
            .bind(&canonical)
            .bind(erased_key(&canonical))
            .fetch_optional(conn)
            .await
        })?;
        let subscriber_id = match found {
            Some((id, Some(_))) => id,
            Some((id, None)) => {
                // An erased address signing up again: it needs its address back to be mailed
                // once confirmed. Its unsubscriptions stay as they are until then.
                db!(&mut tx, |conn| {
                    sqlx::query(
                    "UPDATE subscribers SET email = $1, email_key = $2, status = 'active', updated_at = $3 WHERE id = $4",
                )
                .bind(s.email.as_str())
                .bind(&canonical)
                .bind(&now_s)
                .bind(id)
                .execute(conn).await.affected()
                })?;
                id
            }
            None => {
                // Consent is recorded when it is given: now for a single opt-in list, at
                // confirmation otherwise.
                let consent = !double_opt_in;
                db!(&mut tx, |conn| {
                    sqlx::query_scalar(
                    "INSERT INTO subscribers (email, email_key, status, consent_source, consent_at, consent_ip, created_at, updated_at)
                     VALUES ($1, $2, 'active', $3, $4, $5, $6, $6) RETURNING id",
                )
                .bind(s.email.as_str())
                .bind(&canonical)
                .bind(consent.then_some("web"))
                .bind(consent.then_some(now_s.as_str()))
                .bind(consent.then_some(s.ip))
                .bind(&now_s)
                .fetch_one(conn).await
                })?
            }
        };

        let existing: Option<(i64, String)> = db!(&mut tx, |conn| {
            sqlx::query_as(
                "SELECT id, status FROM subscriptions WHERE subscriber_id = $1 AND list_id = $2",
            )
            .bind(subscriber_id)
            .bind(s.list_id)
            .fetch_optional(conn)
            .await
        })?;
        let cats = stored(&s.categories);
        let subscription_id = match existing {
            Some((_, status)) if status == "active" => {
                tx.commit().await?;
                return Ok(SignupOutcome::AlreadyActive);
            }
            Some((id, _)) => {
                // Pending or unsubscribed: the choice of categories only takes effect once the
                // address is confirmed, so recording it now cannot harm anyone.
                db!(&mut tx, |conn| {
                    sqlx::query("UPDATE subscriptions SET categories = $1 WHERE id = $2")
                        .bind(&cats)
                        .bind(id)
                        .execute(conn)
                        .await
                        .affected()
                })?;
                id
            }
            None if !double_opt_in => {
                db!(&mut tx, |conn| {
                    sqlx::query(
                    "INSERT INTO subscriptions (subscriber_id, list_id, status, categories, created_at, confirmed_at, confirm_ip)
                     VALUES ($1, $2, 'active', $3, $4, $4, $5)",
                )
                .bind(subscriber_id)
                .bind(s.list_id)
                .bind(&cats)
                .bind(&now_s)
                .bind(s.ip)
                .execute(conn).await.affected()
                })?;
                db!(&mut tx, |conn| {
                    sqlx::query(
                    "UPDATE subscribers SET consent_source = 'web', consent_at = $1, consent_ip = $2, updated_at = $1 WHERE id = $3",
                )
                .bind(&now_s)
                .bind(s.ip)
                .bind(subscriber_id)
                .execute(conn).await.affected()
                })?;
                tx.commit().await?;
                return Ok(SignupOutcome::Activated);
            }
            None => db!(&mut tx, |conn| {
                sqlx::query_scalar(
                "INSERT INTO subscriptions (subscriber_id, list_id, status, categories, created_at)
                     VALUES ($1, $2, 'pending', $3, $4) RETURNING id",
            )
            .bind(subscriber_id)
            .bind(s.list_id)
            .bind(&cats)
            .bind(&now_s)
            .fetch_one(conn).await
            })?,
        };

        super::mail_queue::queue_confirmation(&mut tx, subscription_id, DbTime::from(now)).await?;
        tx.commit().await?;
        Ok(SignupOutcome::ConfirmationQueued)
    }

    /// Confirms a sign-up: activates the subscription and records the consent (confirmation
    /// time and IP on the subscription; source `web`, time and IP on the subscriber).
    /// Repeating it changes nothing and succeeds. `None`: unknown or expired token, or a link
    /// older than a later unsubscribe from the same list.
    pub async fn confirm_by_token(&self, token: &Token, ip: &str) -> Result<Option<Confirmed>> {
        let mut tx = self.write_tx().await?;
        tx.lock(Lock::Subscribers).await?;
        let Some(t) = find_target(&mut tx, &token.hash(), &[TokenPurpose::Confirm]).await? else {
            return Ok(None);
        };
        let Some(email) = t.email.clone() else {
            return Ok(None);
        };
        let domain = email.rsplit_once('@').map_or("", |(_, d)| d).to_owned();
        let activate = match t.status {
            SubscriptionStatus::Pending => true,
            SubscriptionStatus::Active => false,
            // A re-subscription waiting for this link, unless the reader unsubscribed again
            // after it was sent: then the later choice wins.
            SubscriptionStatus::Unsubscribed => {
                let unsub = t.unsubscribed_at.as_deref().and_then(parse_db_time);
                match unsub {
                    Some(u) if t.token_created_at.utc() >= u => true,
                    _ => return Ok(None),
                }
            }
        };
        if activate {
            let now = now_text();
            db!(&mut tx, |conn| {
                sqlx::query(
                "UPDATE subscriptions SET status = 'active', confirmed_at = $1, confirm_ip = $2, unsubscribed_at = NULL, unsubscribe_reason = NULL WHERE id = $3",
            )
            .bind(&now)
            .bind(ip)
            .bind(t.subscription_id)
            .execute(conn).await.affected()
            })?;
            // Confirming proves the mailbox works again, so an old bounce no longer counts.
            db!(&mut tx, |conn| {
                sqlx::query(
                "UPDATE subscribers SET consent_source = 'web', consent_at = $1, consent_ip = $2, status = 'active',
                     hard_bounces = CASE WHEN status = 'bounced' THEN 0 ELSE hard_bounces END,
                     bounce_reset_at = CASE WHEN status = 'bounced' THEN $1 ELSE bounce_reset_at END, updated_at = $1
                 WHERE id = $3",
            )
            .bind(&now)
            .bind(ip)
            .bind(t.subscriber_id)
            .execute(conn).await.affected()
            })?;
        }
        tx.commit().await?;
        Ok(Some(Confirmed {
            list_slug: t.list_slug,
            list_name: t.list_name,
            activated: activate,
            email_domain: domain,
        }))
    }

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

/// One one-click unsubscribe waiting for the batch writer.
pub(crate) struct UnsubscribeRequest {
    hash: Vec<u8>,
    all: bool,
    reply: tokio::sync::oneshot::Sender<Result<Option<Unsubscribed>>>,
}

/// Most unsubscribes one writer transaction carries.
const UNSUBSCRIBE_BATCH: usize = 128;

/// Commits one-click unsubscribes in shared transactions: it takes whatever requests are
/// waiting (one, when the site is quiet) and writes them together. Under a burst of clicks
/// (a digest just landed) this turns hundreds of writer transactions a second, each queueing
/// for SQLite's single writer with the sender's claims, into a few. It holds only the writer
/// pool, so it ends when the last `Store` is dropped.
pub(crate) async fn unsubscribe_writer(
    writer: Pool,
    mut requests: tokio::sync::mpsc::Receiver<UnsubscribeRequest>,
) {
    let mut batch = Vec::with_capacity(UNSUBSCRIBE_BATCH);
    while let Some(first) = requests.recv().await {
        batch.push(first);
        while batch.len() < UNSUBSCRIBE_BATCH {
            match requests.try_recv() {
                Ok(r) => batch.push(r),
                Err(_) => break,
            }
        }
        // A deadlock with another node's writes (PostgreSQL) loses one try, not the clicks.
        let (pool, requests_now) = (&writer, &batch);
        match retrying(move || unsubscribe_batch(pool, requests_now)).await {
            Ok(results) => {
                for (r, result) in batch.drain(..).zip(results) {
                    let _ = r.reply.send(Ok(result));
                }
            }
            Err(e) => {
                // sqlx errors do not clone: every waiter gets the message.
                let msg = e.to_string();
                for r in batch.drain(..) {
                    let _ = r.reply.send(Err(StoreError::Conflict(msg.clone())));
                }
            }
        }
    }
}

/// Applies a batch of unsubscribes in one transaction; `None` for an unknown token.
async fn unsubscribe_batch(
    writer: &Pool,
    batch: &[UnsubscribeRequest],
) -> Result<Vec<Option<Unsubscribed>>> {
    let now = now_text();
    let mut tx = writer.begin_write().await?;
    let mut out = Vec::with_capacity(batch.len());
    for r in batch {
        let Some(target) = find_target(&mut tx, &r.hash, READER_PURPOSES).await? else {
            out.push(None);
            continue;
        };
        let changed = db!(&mut tx, |conn| {
            sqlx::query(
                "UPDATE subscriptions SET status = 'unsubscribed', unsubscribed_at = $1
             WHERE status <> 'unsubscribed' AND (id = $2 OR ($3 AND subscriber_id = $4))",
            )
            .bind(&now)
            .bind(target.subscription_id)
            .bind(r.all)
            .bind(target.subscriber_id)
            .execute(conn)
            .await
            .affected()
        })?;
        out.push(Some(Unsubscribed { target, changed }));
    }
    tx.commit().await?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::ListSlug;
    use crate::store::testutil::{store_test, temp_store_on};
    use crate::store::{Backend, ListSpec};

    store_test!(unsubscribe_then_stale_confirmation_is_refused);
    async fn unsubscribe_then_stale_confirmation_is_refused(backend: Backend) {
        let (store, _d) = temp_store_on(backend).await;
        let list = store
            .create_list(
                &ListSlug::parse("daily").unwrap(),
                &ListSpec {
                    double_opt_in: Some(true),
                    ..Default::default()
                },
            )
            .await
            .unwrap();
        let email = EmailAddress::parse("a@example.com").unwrap();
        let signup = WebSignup {
            email: &email,
            list_id: list.id,
            categories: None,
            ip: "192.0.2.1",
        };
        assert_eq!(
            store.web_subscribe(&signup).await.unwrap(),
            SignupOutcome::ConfirmationQueued,
            "double opt-in needs confirmation"
        );
        let t1 = crate::store::testutil::claim_confirmation(&store).await;
        let c = store
            .confirm_by_token(&t1, "192.0.2.1")
            .await
            .unwrap()
            .unwrap();
        assert!(c.activated);
        assert!(
            !store
                .confirm_by_token(&t1, "192.0.2.1")
                .await
                .unwrap()
                .unwrap()
                .activated
        );
        assert_eq!(
            store.web_subscribe(&signup).await.unwrap(),
            SignupOutcome::AlreadyActive
        );
        // Unsubscribe (by admin), then the old confirmation link must not undo it.
        store.unsubscribe_email(&email, None).await.unwrap();
        db!(store.pool(), |conn| {
            sqlx::query("UPDATE subscriptions SET unsubscribed_at = '2099-01-01T00:00:00Z'")
                .execute(conn)
                .await
                .affected()
        })
        .unwrap();
        assert!(
            store
                .confirm_by_token(&t1, "192.0.2.1")
                .await
                .unwrap()
                .is_none()
        );
        // Expired tokens are unknown.
        db!(store.pool(), |conn| {
            sqlx::query("UPDATE tokens SET expires_at = '2000-01-01T00:00:00Z'")
                .execute(conn)
                .await
                .affected()
        })
        .unwrap();
        assert!(
            store
                .token_target(&t1, &[TokenPurpose::Confirm])
                .await
                .unwrap()
                .is_none()
        );
    }
}
