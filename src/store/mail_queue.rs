//! Transactional mail: double opt-in confirmations queued as rows and delivered by the same
//! sender as editions (leases, retries, DKIM), so a restart loses none.
//!
//! A confirmation's secret is made when the row is claimed, not when it is queued: the link
//! exists only in the message, and the database keeps its hash, as for every token.

use chrono::Duration;
use sqlx::FromRow;

use super::deliveries::Verdict;
use super::senders::SenderId;
use super::{Backend, Result, Store, Tx, db};
use crate::domain::{DbTime, EmailAddress, SubscriptionStatus, Token, TokenPurpose};

/// How long a confirmation link works.
pub const CONFIRM_TTL_DAYS: i64 = 7;

/// Kinds of transactional mail (`mail_queue.kind`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, sqlx::Type, serde::Serialize)]
#[sqlx(type_name = "TEXT", rename_all = "lowercase")]
#[serde(rename_all = "lowercase")]
pub enum MailKind {
    /// "Please confirm your subscription": the double opt-in link.
    Confirm,
}

/// A queued message claimed for sending.
#[derive(Debug, Clone)]
pub struct ClaimedMail {
    pub id: i64,
    pub kind: MailKind,
    pub subscription_id: i64,
    pub to: EmailAddress,
    pub name: Option<String>,
    pub list_slug: String,
    pub list_name: String,
    /// The list's language tag; `None` = `[publication] language`.
    pub list_language: Option<String>,
    /// Attempts including this one.
    pub attempt: i64,
    /// The secret the message carries (a fresh confirmation token).
    pub token: Token,
}

#[derive(FromRow)]
struct Candidate {
    id: i64,
    kind: MailKind,
    subscription_id: i64,
    attempts: i64,
    email: Option<String>,
    name: Option<String>,
    status: SubscriptionStatus,
    slug: String,
    list_name: String,
    list_language: Option<String>,
    queued_at: DbTime,
    unsubscribed_at: Option<DbTime>,
}

/// Queues a confirmation for `subscription_id` inside the caller's transaction.
pub(crate) async fn queue_confirmation(
    tx: &mut Tx,
    subscription_id: i64,
    now: DbTime,
) -> Result<()> {
    db!(tx, |c| {
        sqlx::query(
            "INSERT INTO mail_queue (kind, subscription_id, created_at) VALUES ($1, $2, $3)",
        )
        .bind(MailKind::Confirm)
        .bind(subscription_id)
        .bind(now)
        .execute(c)
        .await
        .affected()
    })?;
    Ok(())
}

/// Records one outcome of a mail-queue row inside the caller's transaction.
pub(crate) async fn record(tx: &mut Tx, id: i64, verdict: &Verdict, now: DbTime) -> Result<()> {
    db!(tx, |c| {
        let q = match verdict {
            Verdict::Sent => sqlx::query(
                "UPDATE mail_queue SET status = 'sent', sent_at = $1, last_reply = NULL, lease_until = NULL, lease_owner = NULL WHERE id = $2",
            )
            .bind(now)
            .bind(id),
            Verdict::Retry { reply, at } => sqlx::query(
                "UPDATE mail_queue SET status = 'queued', next_attempt_at = $1, last_reply = $2, lease_until = NULL, lease_owner = NULL WHERE id = $3",
            )
            .bind(DbTime::from(*at))
            .bind(reply.clone())
            .bind(id),
            Verdict::Failed { reply } | Verdict::Bounced { reply } => sqlx::query(
                "UPDATE mail_queue SET status = 'failed', last_reply = $1, lease_until = NULL, lease_owner = NULL WHERE id = $2",
            )
            .bind(reply.clone())
            .bind(id),
            Verdict::Skipped { reason } => sqlx::query(
                "UPDATE mail_queue SET status = 'skipped', last_reply = $1, lease_until = NULL, lease_owner = NULL WHERE id = $2",
            )
            .bind(reason.clone())
            .bind(id),
            Verdict::Released => sqlx::query(
                "UPDATE mail_queue SET status = 'queued', attempts = CASE WHEN attempts > 0 THEN attempts - 1 ELSE 0 END,
                     lease_until = NULL, lease_owner = NULL
                 WHERE id = $1 AND status = 'sending'",
            )
            .bind(id),
        };
        q.execute(c).await.affected()
    })?;
    Ok(())
}

/// Due transactional mail, oldest first, with what the message needs. PostgreSQL locks the
/// rows it returns and passes over rows another node is claiming (`SKIP LOCKED`), so nodes
/// claim different messages; SQLite's write transaction already excludes every other claim.
fn claim_sql(backend: Backend) -> &'static str {
    macro_rules! due_mail {
        () => {
            "SELECT m.id, m.kind, m.subscription_id, m.attempts, p.email, p.name, s.status,
                    l.slug, l.name AS list_name, l.language AS list_language, m.created_at AS queued_at, s.unsubscribed_at
             FROM mail_queue m
             JOIN subscriptions s ON s.id = m.subscription_id
             JOIN subscribers p ON p.id = s.subscriber_id
             JOIN lists l ON l.id = s.list_id
             WHERE m.status IN ('queued', 'sending')
               AND ((m.status = 'queued' AND (m.next_attempt_at IS NULL OR m.next_attempt_at <= $1))
                 OR (m.status = 'sending' AND m.lease_until <= $1))
             ORDER BY m.id
             LIMIT $2"
        };
    }
    match backend {
        Backend::Sqlite => due_mail!(),
        Backend::Postgres => concat!(due_mail!(), " FOR UPDATE OF m SKIP LOCKED"),
    }
}

impl Store {
    /// Whether any transactional mail is due (a cheap read, so an idle sender need not take
    /// the write lock to find out).
    pub async fn mail_due(&self) -> Result<bool> {
        let now = DbTime::now();
        let n: i64 = db!(self.pool(), |c| {
            sqlx::query_scalar(
                "SELECT COUNT(*) FROM (SELECT 1 FROM mail_queue
                 WHERE status IN ('queued', 'sending')
                   AND ((status = 'queued' AND (next_attempt_at IS NULL OR next_attempt_at <= $1))
                     OR (status = 'sending' AND lease_until <= $1))
                 LIMIT 1) AS due",
            )
            .bind(now)
            .fetch_one(c)
            .await
        })?;
        Ok(n > 0)
    }

    /// Claims up to `limit` due transactional messages for `owner`. A confirmation whose
    /// subscription is no longer pending (confirmed meanwhile, unsubscribed, erased) is
    /// skipped; each claimed one gets a fresh confirmation token.
    pub async fn claim_mail(
        &self,
        limit: i64,
        lease: Duration,
        owner: SenderId,
    ) -> Result<Vec<ClaimedMail>> {
        let now = DbTime::now();
        let mut tx = self.write_tx().await?;
        let sql = claim_sql(tx.backend());
        let cands: Vec<Candidate> = db!(&mut tx, |c| {
            sqlx::query_as(sql).bind(now).bind(limit).fetch_all(c).await
        })?;
        let mut out = Vec::with_capacity(cands.len());
        for c in cands {
            let to = c.email.as_deref().map(EmailAddress::parse);
            let skip = match (&to, c.status) {
                (None, _) => Some("the reader was erased"),
                (Some(Err(_)), _) => Some("the stored address is not a valid address"),
                (Some(Ok(_)), SubscriptionStatus::Pending) => None,
                (Some(Ok(_)), SubscriptionStatus::Active) => Some("already confirmed"),
                // A reader who left and signs up again must confirm: that is what this
                // message asks, unless they unsubscribed again after asking.
                (Some(Ok(_)), SubscriptionStatus::Unsubscribed)
                    if c.unsubscribed_at.is_some_and(|u| u > c.queued_at) =>
                {
                    Some("unsubscribed after asking")
                }
                (Some(Ok(_)), SubscriptionStatus::Unsubscribed) => None,
            };
            if let Some(reason) = skip {
                record(
                    &mut tx,
                    c.id,
                    &Verdict::Skipped {
                        reason: reason.to_owned(),
                    },
                    now,
                )
                .await?;
                continue;
            }
            let Some(Ok(to)) = to else { continue };
            let token = Token::generate();
            db!(&mut tx, |conn| {
                sqlx::query(
                    "INSERT INTO tokens (hash, purpose, subscription_id, created_at, expires_at) VALUES ($1, $2, $3, $4, $5)",
                )
                .bind(token.hash())
                .bind(TokenPurpose::Confirm)
                .bind(c.subscription_id)
                .bind(now)
                .bind(DbTime::from(now.utc() + Duration::days(CONFIRM_TTL_DAYS)))
                .execute(&mut *conn)
                .await.affected()?;
                sqlx::query(
                    "UPDATE mail_queue SET status = 'sending', attempts = attempts + 1, lease_until = $1, lease_owner = $2 WHERE id = $3",
                )
                .bind(DbTime::from(now.utc() + lease))
                .bind(owner.0)
                .bind(c.id)
                .execute(&mut *conn)
                .await.affected()
            })?;
            out.push(ClaimedMail {
                id: c.id,
                kind: c.kind,
                subscription_id: c.subscription_id,
                to,
                name: c.name,
                list_slug: c.slug,
                list_name: c.list_name,
                list_language: c.list_language,
                attempt: c.attempts + 1,
                token,
            });
        }
        tx.commit().await?;
        Ok(out)
    }

    /// Queued, sent and failed transactional messages (for `status` and tests).
    pub async fn mail_counts(&self) -> Result<Vec<(String, i64)>> {
        Ok(db!(self.pool(), |c| {
            sqlx::query_as(
                "SELECT status, COUNT(*) FROM mail_queue GROUP BY status ORDER BY status",
            )
            .fetch_all(c)
            .await
        })?)
    }
}
