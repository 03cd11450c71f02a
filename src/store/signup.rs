//! Signing up from the web form, and confirming a sign-up by its token.

use chrono::Utc;

use super::preferences::stored;
use super::subscribers::erased_key;
use super::tokens::find_target;
use super::{Lock, Result, Store, StoreError, db, now_text, parse_db_time};
use crate::domain::{
    CategorySet, DbTime, EmailAddress, SubscriptionStatus, Token, TokenPurpose, db_time,
};

/// A sign-up from the web form.
#[derive(Debug, Clone)]
pub struct WebSignup<'a> {
    pub email: &'a EmailAddress,
    pub list_id: i64,
    /// `None` = every category the list carries.
    pub categories: Option<CategorySet>,
    /// The client's IP as text, recorded as consent evidence.
    pub ip: &'a str,
    /// The reader's name, cleaned, when the form asks for one (the API's `name`; our own page
    /// does not). Given to a new subscriber, or to one stored without a name; a stored name
    /// is never replaced by a form.
    pub name: Option<&'a str>,
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
    /// The list's language tag; `None` = `[publication] language`.
    pub list_language: Option<String>,
    /// Whether this call activated the subscription (false when repeated).
    pub activated: bool,
    pub email_domain: String,
}

impl Store {
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
            Some((id, Some(_))) => {
                if let Some(name) = s.name {
                    db!(&mut tx, |conn| {
                        sqlx::query(
                            "UPDATE subscribers SET name = $1 WHERE id = $2 AND name IS NULL",
                        )
                        .bind(name)
                        .bind(id)
                        .execute(conn)
                        .await
                        .affected()
                    })?;
                }
                id
            }
            Some((id, None)) => {
                // An erased address signing up again: it needs its address back to be mailed
                // once confirmed. Its unsubscriptions stay as they are until then.
                db!(&mut tx, |conn| {
                    sqlx::query(
                    "UPDATE subscribers SET email = $1, email_key = $2, status = 'active', updated_at = $3,
                         name = COALESCE(name, $5) WHERE id = $4",
                )
                .bind(s.email.as_str())
                .bind(&canonical)
                .bind(&now_s)
                .bind(id)
                .bind(s.name)
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
                    "INSERT INTO subscribers (email, email_key, name, status, consent_source, consent_at, consent_ip, created_at, updated_at)
                     VALUES ($1, $2, $7, 'active', $3, $4, $5, $6, $6) RETURNING id",
                )
                .bind(s.email.as_str())
                .bind(&canonical)
                .bind(consent.then_some("web"))
                .bind(consent.then_some(now_s.as_str()))
                .bind(consent.then_some(s.ip))
                .bind(&now_s)
                .bind(s.name)
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
            list_language: t.list_language,
            activated: activate,
            email_domain: domain,
        }))
    }
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
            name: None,
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
