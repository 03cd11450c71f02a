//! The outbox: claiming deliveries with a lease and recording what happened to them.
//!
//! A delivery moves `queued → sending → sent | failed | skipped`, or back to `queued` for a
//! retry. `sending` rows carry a lease: if their sender dies, the lease runs out and another
//! sender claims them again. That is the only way a reader can get a message twice: it was
//! in flight (claimed, perhaps handed to the relay, not yet recorded) when the sender died.

use chrono::{DateTime, Duration, Utc};
use sqlx::{FromRow, QueryBuilder, Sqlite};

use super::{Result, Store, now_text};
use crate::domain::{Token, db_time};

/// A delivery claimed for sending, with what the sender needs to personalise it.
#[derive(Debug, Clone)]
pub struct Claimed {
    pub delivery_id: i64,
    pub edition_id: i64,
    pub subscriber_id: i64,
    pub email: String,
    pub name: Option<String>,
    /// The reader's category choice when the edition was made (`None` = all).
    pub categories: Option<String>,
    /// Attempts including this one.
    pub attempt: i64,
    /// A fresh unsubscribe/preferences token for this message; only its hash is stored.
    pub token: Token,
}

/// What happened to one claimed delivery.
#[derive(Debug, Clone)]
pub enum Outcome {
    /// The relay accepted the message.
    Sent {
        delivery_id: i64,
        message_id: String,
        reply: String,
    },
    /// A temporary failure: try again at `next_attempt_at`, or give up (`None`).
    Retry {
        delivery_id: i64,
        reply: String,
        next_attempt_at: Option<DateTime<Utc>>,
    },
    /// A permanent failure for this recipient (hard bounce).
    Bounced {
        delivery_id: i64,
        subscriber_id: i64,
        reply: String,
    },
    /// Not attempted after all (shutdown, paused edition): back to the queue, attempt not counted.
    Released { delivery_id: i64 },
    /// Nothing to send this reader (e.g. no story in their categories).
    Skipped { delivery_id: i64, reason: String },
}

#[derive(FromRow)]
struct Candidate {
    id: i64,
    subscriber_id: i64,
    categories: Option<String>,
    attempts: i64,
    email: Option<String>,
    name: Option<String>,
    subscriber_status: String,
    subscription_id: Option<i64>,
    subscription_status: Option<String>,
}

impl Store {
    /// Claims up to `limit` deliveries of an edition that are due, leasing them for `lease`.
    ///
    /// The reader's subscription is checked here, under the write lock: a reader who
    /// unsubscribed (or bounced, or was erased) after the edition was made, but before this
    /// claim, is marked skipped and never sent to. Returns the claimed rows and how many were
    /// skipped.
    pub async fn claim_deliveries(
        &self,
        edition_id: i64,
        list_id: i64,
        limit: i64,
        lease: Duration,
    ) -> Result<(Vec<Claimed>, u64)> {
        let now = Utc::now();
        let now_s = db_time(now);
        let mut tx = self.write_tx().await?;
        let cands: Vec<Candidate> = sqlx::query_as(
            "SELECT d.id, d.subscriber_id, d.categories, d.attempts, p.email, p.name, p.status AS subscriber_status,
                    s.id AS subscription_id, s.status AS subscription_status
             FROM deliveries d
             JOIN subscribers p ON p.id = d.subscriber_id
             LEFT JOIN subscriptions s ON s.subscriber_id = d.subscriber_id AND s.list_id = $2
             WHERE d.edition_id = $1
               -- Repeats the partial index's condition so that SQLite may use deliveries_claim.
               AND d.status IN ('queued', 'sending')
               AND ((d.status = 'queued' AND (d.next_attempt_at IS NULL OR d.next_attempt_at <= $3))
                 OR (d.status = 'sending' AND d.lease_until <= $3))
             ORDER BY d.id
             LIMIT $4",
        )
        .bind(edition_id)
        .bind(list_id)
        .bind(&now_s)
        .bind(limit)
        .fetch_all(&mut *tx)
        .await?;

        let mut claimed = Vec::with_capacity(cands.len());
        let mut skipped: Vec<(i64, &'static str)> = Vec::new();
        for c in cands {
            let reason = match (
                c.subscription_status.as_deref(),
                c.subscriber_status.as_str(),
                &c.email,
            ) {
                (_, _, None) => Some("subscriber erased before sending"),
                (_, "bounced", _) => Some("address bounced before sending"),
                (Some("active"), "active", Some(_)) => None,
                _ => Some("unsubscribed before sending"),
            };
            if let Some(r) = reason {
                skipped.push((c.id, r));
                continue;
            }
            // Invariant: the match above only lets rows with an email and a subscription through.
            let (Some(email), Some(subscription_id)) = (c.email, c.subscription_id) else {
                continue;
            };
            claimed.push((
                subscription_id,
                Claimed {
                    delivery_id: c.id,
                    edition_id,
                    subscriber_id: c.subscriber_id,
                    email,
                    name: c.name,
                    categories: c.categories,
                    attempt: c.attempts + 1,
                    token: Token::generate(),
                },
            ));
        }

        for (id, reason) in &skipped {
            sqlx::query("UPDATE deliveries SET status = 'skipped', last_reply = $1, lease_until = NULL WHERE id = $2")
                .bind(*reason)
                .bind(*id)
                .execute(&mut *tx)
                .await?;
        }
        if !claimed.is_empty() {
            let lease_until = db_time(now + lease);
            let mut qb: QueryBuilder<Sqlite> = QueryBuilder::new(
                "UPDATE deliveries SET status = 'sending', attempts = attempts + 1, lease_until = ",
            );
            qb.push_bind(lease_until);
            qb.push(" WHERE id IN (");
            let mut sep = qb.separated(", ");
            for (_, c) in &claimed {
                sep.push_bind(c.delivery_id);
            }
            qb.push(")");
            qb.build().execute(&mut *tx).await?;

            let mut qb: QueryBuilder<Sqlite> = QueryBuilder::new(
                "INSERT INTO tokens (hash, purpose, subscription_id, created_at) ",
            );
            qb.push_values(&claimed, |mut b, (sub_id, c)| {
                b.push_bind(c.token.hash())
                    .push_bind("unsubscribe")
                    .push_bind(*sub_id)
                    .push_bind(now_s.clone());
            });
            qb.build().execute(&mut *tx).await?;
        }
        tx.commit().await?;
        Ok((
            claimed.into_iter().map(|(_, c)| c).collect(),
            skipped.len() as u64,
        ))
    }

    /// Records a batch of outcomes in one transaction. A hard bounce counts against the
    /// subscriber, who is marked bounced after `bounce_threshold` of them.
    pub async fn record_outcomes(&self, outcomes: &[Outcome], bounce_threshold: u32) -> Result<()> {
        if outcomes.is_empty() {
            return Ok(());
        }
        let now = now_text();
        let mut tx = self.writer().begin().await?;
        // Sent messages, nearly every outcome, are recorded a few hundred per statement: one
        // statement per message cost a round trip to SQLite's thread for each message sent.
        let sent: Vec<(&i64, &String, &String)> = outcomes
            .iter()
            .filter_map(|o| match o {
                Outcome::Sent {
                    delivery_id,
                    message_id,
                    reply,
                } => Some((delivery_id, message_id, reply)),
                _ => None,
            })
            .collect();
        for chunk in sent.chunks(300) {
            let mut qb: QueryBuilder<Sqlite> =
                QueryBuilder::new("UPDATE deliveries SET status = 'sent', sent_at = ");
            qb.push_bind(&now);
            qb.push(", message_id = v.column2, last_reply = v.column3, lease_until = NULL FROM (");
            qb.push_values(chunk, |mut b, (id, message_id, reply)| {
                b.push_bind(**id)
                    .push_bind(message_id.as_str())
                    .push_bind(reply.as_str());
            });
            qb.push(") AS v WHERE deliveries.id = v.column1");
            qb.build().execute(&mut *tx).await?;
        }
        for o in outcomes {
            match o {
                Outcome::Sent { .. } => {}
                Outcome::Retry {
                    delivery_id,
                    reply,
                    next_attempt_at,
                } => {
                    let status = if next_attempt_at.is_some() {
                        "queued"
                    } else {
                        "failed"
                    };
                    sqlx::query(
                        "UPDATE deliveries SET status = $1, next_attempt_at = $2, last_reply = $3, lease_until = NULL WHERE id = $4",
                    )
                    .bind(status)
                    .bind(next_attempt_at.map(db_time))
                    .bind(reply)
                    .bind(delivery_id)
                    .execute(&mut *tx)
                    .await?;
                }
                Outcome::Bounced {
                    delivery_id,
                    subscriber_id,
                    reply,
                } => {
                    sqlx::query("UPDATE deliveries SET status = 'failed', last_reply = $1, lease_until = NULL WHERE id = $2")
                        .bind(reply)
                        .bind(delivery_id)
                        .execute(&mut *tx)
                        .await?;
                    sqlx::query(
                        "UPDATE subscribers SET hard_bounces = hard_bounces + 1,
                             status = CASE WHEN hard_bounces + 1 >= $1 AND status = 'active' THEN 'bounced' ELSE status END,
                             updated_at = $2
                         WHERE id = $3",
                    )
                    .bind(i64::from(bounce_threshold))
                    .bind(&now)
                    .bind(subscriber_id)
                    .execute(&mut *tx)
                    .await?;
                }
                Outcome::Skipped {
                    delivery_id,
                    reason,
                } => {
                    sqlx::query("UPDATE deliveries SET status = 'skipped', last_reply = $1, lease_until = NULL WHERE id = $2")
                        .bind(reason)
                        .bind(delivery_id)
                        .execute(&mut *tx)
                        .await?;
                }
                Outcome::Released { delivery_id } => {
                    sqlx::query(
                        "UPDATE deliveries SET status = 'queued', attempts = MAX(attempts - 1, 0), lease_until = NULL
                         WHERE id = $1 AND status = 'sending'",
                    )
                    .bind(delivery_id)
                    .execute(&mut *tx)
                    .await?;
                }
            }
        }
        tx.commit().await?;
        Ok(())
    }

    /// Number of deliveries still to send (queued or sending), for metrics and progress.
    pub async fn pending_deliveries(&self, edition_id: Option<i64>) -> Result<i64> {
        Ok(sqlx::query_scalar(
            "SELECT COUNT(*) FROM deliveries WHERE status IN ('queued', 'sending') AND ($1 IS NULL OR edition_id = $1)",
        )
        .bind(edition_id)
        .fetch_one(self.pool())
        .await?)
    }

    /// The earliest time a queued delivery of the edition becomes due, if any is waiting.
    pub async fn next_due(&self, edition_id: i64) -> Result<Option<DateTime<Utc>>> {
        let t: Option<String> = sqlx::query_scalar(
            "SELECT MIN(COALESCE(CASE WHEN status = 'sending' THEN lease_until ELSE next_attempt_at END, $2))
             FROM deliveries WHERE edition_id = $1 AND status IN ('queued', 'sending')",
        )
        .bind(edition_id)
        .bind(now_text())
        .fetch_one(self.pool())
        .await?;
        Ok(t.as_deref().and_then(super::parse_db_time))
    }
}

impl Store {
    /// Whether a claimed delivery should still go out: its reader is still subscribed and
    /// active. Checked by the sender immediately before the SMTP transaction, so an
    /// unsubscribe that lands between the claim and the send (a rate-limited sender may hold
    /// claims for seconds) still stops the message.
    pub async fn still_wanted(&self, delivery_id: i64) -> Result<bool> {
        let n: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM deliveries d
             JOIN editions e ON e.id = d.edition_id
             JOIN subscribers p ON p.id = d.subscriber_id
             JOIN subscriptions s ON s.subscriber_id = d.subscriber_id AND s.list_id = e.list_id
             WHERE d.id = $1 AND s.status = 'active' AND p.status = 'active'",
        )
        .bind(delivery_id)
        .fetch_one(self.pool())
        .await?;
        Ok(n > 0)
    }
}
