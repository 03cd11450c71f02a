//! The outbox: claiming deliveries with an owned lease and recording what happened to them.
//!
//! A delivery moves `queued → sending → sent | failed | skipped`, or back to `queued` for a
//! retry. A `sending` row carries a lease and names its holder (a row of `senders`): if the
//! holder dies, its leases are taken over (at once on the same host, see
//! [`Store::take_over`]; elsewhere when the lease runs out) and the row is claimed again. That
//! is the only way a reader can get a message twice: it was handed to the relay and its
//! outcome was not yet committed when the holder died.

use chrono::{DateTime, Duration, Utc};
use sqlx::{FromRow, QueryBuilder};

use super::backend::retrying;
use super::senders::SenderId;
use super::{Backend, Result, Store, Tx, db, now_text};
use crate::domain::{
    DbTime, DeliveryStatus, EmailAddress, SubscriberStatus, SubscriptionStatus, Token, TokenPurpose,
};

/// A delivery claimed for sending, with what the sender needs to personalise it.
#[derive(Debug, Clone)]
pub struct Claimed {
    pub delivery_id: i64,
    pub edition_id: i64,
    pub subscriber_id: i64,
    pub email: EmailAddress,
    pub name: Option<String>,
    /// The reader's category choice when the edition was made (`None` = all).
    pub categories: Option<String>,
    /// Attempts including this one.
    pub attempt: i64,
    /// The subscription's reader token (unsubscribe and preferences), the same in every
    /// message of the subscription; only its hash is stored.
    pub token: Token,
}

/// What a claim produced besides the rows to send.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct ClaimSkips {
    /// Readers who unsubscribed, bounced or were erased since the edition was made.
    pub unwanted: u64,
    /// Stored addresses that no longer parse (written by hand?): failed, not retried.
    pub invalid: u64,
}

/// Which queued row an outcome is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Item {
    /// One reader's message of an edition.
    Delivery { id: i64, subscriber_id: i64 },
    /// A transactional message (`mail_queue`).
    Mail { id: i64 },
}

/// What happened to one claimed item.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// The relay accepted the message.
    Sent,
    /// A temporary failure: try again at this time.
    Retry { reply: String, at: DateTime<Utc> },
    /// Given up: the last attempt failed, or a permanent failure not about the mailbox.
    Failed { reply: String },
    /// A permanent failure for this recipient (hard bounce): counts against the subscriber.
    Bounced { reply: String },
    /// Not attempted after all (shutdown, paused edition, the re-check could not read the
    /// database): back to the queue, the attempt not counted.
    Released,
    /// Nothing to send this reader, or no longer wanted.
    Skipped { reason: String },
}

/// An item's outcome, to record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    pub item: Item,
    pub verdict: Verdict,
}

#[derive(FromRow)]
struct Candidate {
    id: i64,
    subscriber_id: i64,
    categories: Option<String>,
    attempts: i64,
    email: Option<String>,
    name: Option<String>,
    subscriber_status: SubscriberStatus,
    subscription_id: Option<i64>,
    subscription_status: Option<SubscriptionStatus>,
    token_gen: Option<i64>,
}

/// Most rows one statement updates: far below SQLite's bind limit (32,766).
const ROWS_PER_STATEMENT: usize = 300;

/// An edition's due deliveries in id order, with the reader's current state. PostgreSQL locks
/// the delivery rows it returns and passes over rows another node is claiming at that moment
/// (`SKIP LOCKED`), so nodes claiming at once take different readers; SQLite's write
/// transaction already excludes every other claim.
fn claim_sql(backend: Backend) -> &'static str {
    macro_rules! due_deliveries {
        () => {
            "SELECT d.id, d.subscriber_id, d.categories, d.attempts, p.email, p.name, p.status AS subscriber_status,
                    s.id AS subscription_id, s.status AS subscription_status, s.token_gen
             FROM deliveries d
             JOIN subscribers p ON p.id = d.subscriber_id
             LEFT JOIN subscriptions s ON s.subscriber_id = d.subscriber_id AND s.list_id = $2
             WHERE d.edition_id = $1
               -- Repeats the partial index's condition so that the planner may use deliveries_claim.
               AND d.status IN ('queued', 'sending')
               AND ((d.status = 'queued' AND (d.next_attempt_at IS NULL OR d.next_attempt_at <= $3))
                 OR (d.status = 'sending' AND d.lease_until <= $3))
             ORDER BY d.id
             LIMIT $4"
        };
    }
    match backend {
        Backend::Sqlite => due_deliveries!(),
        Backend::Postgres => concat!(due_deliveries!(), " FOR UPDATE OF d SKIP LOCKED"),
    }
}

impl Store {
    /// Claims up to `limit` deliveries of an edition that are due, leasing them to `owner`
    /// for `lease`.
    ///
    /// The reader's subscription is checked here, under the write lock: a reader who
    /// unsubscribed (or bounced, or was erased) after the edition was made, but before this
    /// claim, is marked skipped and never sent to. A subscription's first message creates its
    /// reader token.
    pub async fn claim_deliveries(
        &self,
        edition_id: i64,
        list_id: i64,
        limit: i64,
        lease: Duration,
        owner: SenderId,
    ) -> Result<(Vec<Claimed>, ClaimSkips)> {
        let claim = |limit| {
            retrying(move || self.claim_deliveries_once(edition_id, list_id, limit, lease, owner))
        };
        let (mut claimed, mut skips) = claim(limit).await?;
        // A large edition has readers whose deliveries are not written yet
        // (`store::audience`): when the written ones run short, write the next thousand.
        loop {
            let taken = claimed.len() as i64 + (skips.unwanted + skips.invalid) as i64;
            if taken >= limit || !self.write_next_audience(edition_id).await? {
                return Ok((claimed, skips));
            }
            let (more, more_skips) = claim(limit - taken).await?;
            claimed.extend(more);
            skips.unwanted += more_skips.unwanted;
            skips.invalid += more_skips.invalid;
        }
    }

    async fn claim_deliveries_once(
        &self,
        edition_id: i64,
        list_id: i64,
        limit: i64,
        lease: Duration,
        owner: SenderId,
    ) -> Result<(Vec<Claimed>, ClaimSkips)> {
        let now = DbTime::now();
        let mut tx = self.write_tx().await?;
        // Lost only with the database server: the deliveries are then queued again and their
        // claim makes the same tokens (derived, not random), so a message already sent keeps
        // a working link.
        tx.flush_lazily().await?;
        let sql = claim_sql(tx.backend());
        let cands: Vec<Candidate> = db!(&mut tx, |c| {
            sqlx::query_as(sql)
                .bind(edition_id)
                .bind(list_id)
                .bind(now)
                .bind(limit)
                .fetch_all(c)
                .await
        })?;

        let mut claimed = Vec::with_capacity(cands.len());
        let mut skipped: Vec<(i64, &'static str)> = Vec::new();
        let mut new_tokens: Vec<(i64, Vec<u8>)> = Vec::new();
        let mut skips = ClaimSkips::default();
        for c in cands {
            let reason = match (c.subscription_status, c.subscriber_status, &c.email) {
                (_, _, None) => Some("subscriber erased before sending"),
                (_, SubscriberStatus::Bounced, _) => Some("address bounced before sending"),
                (Some(SubscriptionStatus::Active), SubscriberStatus::Active, Some(_)) => None,
                _ => Some("unsubscribed before sending"),
            };
            if let Some(r) = reason {
                skipped.push((c.id, r));
                skips.unwanted += 1;
                continue;
            }
            // Invariant: the match above only lets rows with an email and a subscription through.
            let (Some(raw), Some(subscription_id)) = (c.email, c.subscription_id) else {
                continue;
            };
            let Ok(email) = EmailAddress::parse(&raw) else {
                skipped.push((c.id, "the stored address is not a valid address"));
                skips.invalid += 1;
                continue;
            };
            let generation = match c.token_gen {
                Some(g) => g,
                None => {
                    let t = Token::derive(self.token_key(), subscription_id, 1);
                    new_tokens.push((subscription_id, t.hash()));
                    1
                }
            };
            claimed.push(Claimed {
                delivery_id: c.id,
                edition_id,
                subscriber_id: c.subscriber_id,
                email,
                name: c.name,
                categories: c.categories,
                attempt: c.attempts + 1,
                token: Token::derive(self.token_key(), subscription_id, generation),
            });
        }

        for (id, reason) in &skipped {
            // An invalid stored address can never be sent to: failed, so it is not retried.
            let status = if reason.starts_with("the stored address") {
                DeliveryStatus::Failed
            } else {
                DeliveryStatus::Skipped
            };
            set_delivery(&mut tx, *id, status, reason).await?;
        }
        if !claimed.is_empty() {
            let lease_until = DbTime::from(now.utc() + lease);
            for chunk in claimed.chunks(ROWS_PER_STATEMENT) {
                db!(&mut tx, |c| {
                    let mut qb = QueryBuilder::new(
                        "UPDATE deliveries SET status = 'sending', attempts = attempts + 1, lease_until = ",
                    );
                    qb.push_bind(lease_until);
                    qb.push(", lease_owner = ");
                    qb.push_bind(owner.0);
                    qb.push(" WHERE id IN (");
                    let mut sep = qb.separated(", ");
                    for claim in chunk {
                        sep.push_bind(claim.delivery_id);
                    }
                    qb.push(")");
                    qb.build().execute(c).await.affected()
                })?;
            }
        }
        // A subscription's first message makes its reader token (generation 1). In id order,
        // so two nodes making tokens for overlapping readers lock their rows in one order.
        new_tokens.sort_unstable_by_key(|(sub, _)| *sub);
        for chunk in new_tokens.chunks(ROWS_PER_STATEMENT) {
            db!(&mut tx, |c| {
                let mut qb =
                    QueryBuilder::new("UPDATE subscriptions SET token_gen = 1 WHERE id IN (");
                let mut sep = qb.separated(", ");
                for (sub, _) in chunk {
                    sep.push_bind(*sub);
                }
                qb.push(") AND token_gen IS NULL");
                qb.build().execute(&mut *c).await.affected()?;
                let mut qb = QueryBuilder::new(
                    "INSERT INTO tokens (hash, purpose, subscription_id, created_at) ",
                );
                qb.push_values(chunk, |mut b, (sub, hash)| {
                    b.push_bind(hash.as_slice())
                        .push_bind(TokenPurpose::Unsubscribe)
                        .push_bind(*sub)
                        .push_bind(now);
                });
                qb.push(" ON CONFLICT (hash) DO NOTHING");
                qb.build().execute(&mut *c).await.affected()
            })?;
        }
        tx.commit().await?;
        Ok((claimed, skips))
    }

    /// Records a batch of outcomes in one transaction. A hard bounce counts against the
    /// subscriber, who is marked bounced after `hard_threshold` of them (`[bounces]`), and is
    /// recorded as a bounce event like one that comes back by DSN.
    pub async fn record_outcomes(&self, outcomes: &[Outcome], hard_threshold: u32) -> Result<()> {
        if outcomes.is_empty() {
            return Ok(());
        }
        retrying(move || self.record_outcomes_once(outcomes, hard_threshold)).await
    }

    async fn record_outcomes_once(&self, outcomes: &[Outcome], hard_threshold: u32) -> Result<()> {
        let now = DbTime::now();
        let mut tx = self.writer().begin().await?;
        // Lost only with the database server: its messages are then sent again (WAL order
        // keeps it consistent: a later commit that survived means this one did).
        tx.flush_lazily().await?;
        // Sent messages, nearly every outcome, are recorded many per statement: one statement
        // per message cost a round trip to SQLite's thread for each message sent.
        let sent: Vec<i64> = outcomes
            .iter()
            .filter_map(|o| match (o.item, &o.verdict) {
                (Item::Delivery { id, .. }, Verdict::Sent) => Some(id),
                _ => None,
            })
            .collect();
        for chunk in sent.chunks(ROWS_PER_STATEMENT) {
            db!(&mut tx, |c| {
                let mut qb = QueryBuilder::new("UPDATE deliveries SET status = 'sent', sent_at = ");
                qb.push_bind(now);
                // The Message-ID is derived from (edition, subscriber) and the reply is always
                // "250": neither is stored, which keeps a sent row small.
                qb.push(
                    ", last_reply = NULL, lease_until = NULL, lease_owner = NULL WHERE id IN (",
                );
                let mut sep = qb.separated(", ");
                for id in chunk {
                    sep.push_bind(*id);
                }
                qb.push(")");
                qb.build().execute(c).await.affected()
            })?;
        }
        for o in outcomes {
            match (o.item, &o.verdict) {
                (Item::Delivery { .. }, Verdict::Sent) => {}
                (Item::Delivery { id, .. }, Verdict::Retry { reply, at }) => {
                    db!(&mut tx, |c| {
                        sqlx::query(
                            "UPDATE deliveries SET status = 'queued', next_attempt_at = $1, last_reply = $2, lease_until = NULL, lease_owner = NULL WHERE id = $3",
                        )
                        .bind(DbTime::from(*at))
                        .bind(reply)
                        .bind(id)
                        .execute(c)
                        .await.affected()
                    })?;
                }
                (Item::Delivery { id, .. }, Verdict::Failed { reply }) => {
                    set_delivery(&mut tx, id, DeliveryStatus::Failed, reply).await?;
                }
                (Item::Delivery { id, .. }, Verdict::Skipped { reason }) => {
                    set_delivery(&mut tx, id, DeliveryStatus::Skipped, reason).await?;
                }
                (Item::Delivery { id, subscriber_id }, Verdict::Bounced { reply }) => {
                    set_delivery(&mut tx, id, DeliveryStatus::Failed, reply).await?;
                    // The same rule as a bounce by DSN: one counter, one threshold, one event.
                    super::bounces::record_smtp_bounce(&mut tx, id, subscriber_id, reply, now)
                        .await?;
                    super::bounces::count_hard(&mut tx, subscriber_id, hard_threshold, now).await?;
                }
                (Item::Delivery { id, .. }, Verdict::Released) => {
                    db!(&mut tx, |c| {
                        sqlx::query(
                            "UPDATE deliveries SET status = 'queued', attempts = CASE WHEN attempts > 0 THEN attempts - 1 ELSE 0 END,
                                 lease_until = NULL, lease_owner = NULL
                             WHERE id = $1 AND status = 'sending'",
                        )
                        .bind(id)
                        .execute(c)
                        .await.affected()
                    })?;
                }
                (Item::Mail { id }, v) => super::mail_queue::record(&mut tx, id, v, now).await?,
            }
        }
        tx.commit().await?;
        Ok(())
    }

    /// Number of deliveries still to send (queued or sending), for metrics and progress.
    pub async fn pending_deliveries(&self, edition_id: Option<i64>) -> Result<i64> {
        Ok(db!(self.pool(), |c| {
            sqlx::query_scalar(
                "SELECT COUNT(*) FROM deliveries WHERE status IN ('queued', 'sending') AND ($1 IS NULL OR edition_id = $1)",
            )
            .bind(edition_id)
            .fetch_one(c)
            .await
        })?)
    }

    /// The earliest time a queued delivery of the edition becomes due, if any is waiting.
    pub async fn next_due(&self, edition_id: i64) -> Result<Option<DateTime<Utc>>> {
        let t: Option<DbTime> = db!(self.pool(), |c| {
            sqlx::query_scalar(
                // Readers whose deliveries are not written yet (`store::audience`) are due now.
                "SELECT MIN(due) FROM (
                     SELECT COALESCE(CASE WHEN status = 'sending' THEN lease_until ELSE next_attempt_at END, $2) AS due
                     FROM deliveries WHERE edition_id = $1 AND status IN ('queued', 'sending')
                     UNION ALL
                     SELECT $2 AS due FROM edition_audience WHERE edition_id = $1
                 ) AS pending",
            )
            .bind(edition_id)
            .bind(now_text())
            .fetch_one(c)
            .await
        })?;
        Ok(t.map(DbTime::utc))
    }

    /// Whether a claimed delivery should still go out: its reader is still subscribed and
    /// active. Checked by the sender immediately before the
    /// SMTP transaction, so an unsubscribe that lands between the claim and the send (a
    /// rate-limited sender may hold claims for seconds) still stops the message. An error
    /// means "unknown": the caller must not send.
    pub async fn still_wanted(&self, delivery_id: i64) -> Result<bool> {
        let n: i64 = db!(self.pool(), |c| {
            sqlx::query_scalar(
                "SELECT COUNT(*) FROM deliveries d
                 JOIN editions e ON e.id = d.edition_id
                 JOIN subscribers p ON p.id = d.subscriber_id
                 JOIN subscriptions s ON s.subscriber_id = d.subscriber_id AND s.list_id = e.list_id
                 WHERE d.id = $1 AND s.status = 'active' AND p.status = 'active'",
            )
            .bind(delivery_id)
            .fetch_one(c)
            .await
        })?;
        Ok(n > 0)
    }
}

async fn set_delivery(tx: &mut Tx, id: i64, status: DeliveryStatus, reply: &str) -> Result<()> {
    db!(tx, |c| {
        sqlx::query(
            "UPDATE deliveries SET status = $1, last_reply = $2, lease_until = NULL, lease_owner = NULL WHERE id = $3",
        )
        .bind(status)
        .bind(reply)
        .bind(id)
        .execute(c)
        .await.affected()
    })?;
    Ok(())
}
