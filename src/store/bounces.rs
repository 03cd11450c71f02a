//! Bounce events and what they do to readers: hard and soft bounce rules, complaints and
//! `mailto:` unsubscribes. What a message *is* is decided in the bounces module; this module
//! only looks readers up and records the outcome, each message in one transaction.

use serde::Serialize;
use sqlx::FromRow;

use super::backend::retrying;
use super::{Result, Store, Tx, db};
use crate::domain::{BounceSource, BounceType, DbTime, EmailAddress, Token};

/// Longest diagnostic kept, in characters: enough for an SMTP reply, not for a letter.
pub const DIAGNOSTIC_MAX: usize = 300;

/// The thresholds of `[bounces]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Thresholds {
    /// Hard bounces after which a reader is marked bounced.
    pub hard: u32,
    /// Soft bounces in a row after which a reader is marked bounced.
    pub soft: u32,
}

/// How an event was tied to a reader.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MatchedBy {
    /// The VERP envelope sender the bounce was sent to, MAC verified.
    Verp,
    /// Our Message-ID in the returned headers.
    MessageId,
    /// The reader token of `List-Unsubscribe` (returned headers, or a `mailto:` subject).
    Token,
    /// The failed recipient's address together with our `List-Id`.
    RecipientAndList,
}

impl MatchedBy {
    fn as_str(self) -> &'static str {
        match self {
            Self::Verp => "verp",
            Self::MessageId => "message-id",
            Self::Token => "token",
            Self::RecipientAndList => "recipient+list-id",
        }
    }
}

/// Whom an event is about, as far as the message said.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Target {
    pub subscriber_id: Option<i64>,
    pub edition_id: Option<i64>,
    pub list_id: Option<i64>,
    /// The one subscription a `mailto:` unsubscribe ends.
    pub subscription_id: Option<i64>,
}

/// One event to record.
#[derive(Debug, Clone)]
pub struct NewEvent {
    pub kind: BounceType,
    pub target: Target,
    pub matched_by: Option<MatchedBy>,
    /// RFC 3463 status code, e.g. `5.1.1`.
    pub status: Option<String>,
    pub diagnostic: Option<String>,
    /// Why it was not matched (e.g. a forged VERP MAC).
    pub note: Option<String>,
}

/// One message that came back, with its events (at least one).
#[derive(Debug, Clone)]
pub struct NewBounceMessage {
    /// SHA-256 of the message as received.
    pub hash: [u8; 32],
    pub source: BounceSource,
    /// From and Subject, stored only with unidentified events.
    pub from: Option<String>,
    pub subject: Option<String>,
    pub events: Vec<NewEvent>,
}

/// What recording a message did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Recorded {
    /// The same message was ingested before: nothing changed.
    pub duplicate: bool,
    /// Readers this message marked bounced.
    pub marked_bounced: u64,
    /// Subscriptions this message ended (complaints, `mailto:` unsubscribes).
    pub unsubscribed: u64,
    /// Events that named a reader since erased (their data is not revived).
    pub erased: u64,
}

/// What a VERP item or a Message-ID points at, if it still exists.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lookup {
    /// A live reader, with the list when known.
    Reader(Target),
    /// The reader was erased (or never existed): record nothing about them.
    Gone { edition_id: Option<i64> },
}

/// A row of `dispatch bounces list`.
#[derive(Debug, Clone, FromRow, Serialize)]
pub struct BounceRow {
    pub id: i64,
    pub received_at: String,
    #[serde(rename = "type")]
    pub kind: BounceType,
    pub source: BounceSource,
    /// The reader's address (`None` when unidentified or erased).
    pub email: Option<String>,
    pub edition_id: Option<i64>,
    pub list: Option<String>,
    pub matched_by: Option<String>,
    pub status: Option<String>,
    pub diagnostic: Option<String>,
    pub from_addr: Option<String>,
    pub subject: Option<String>,
    pub note: Option<String>,
}

/// Bounce counts of one edition, for `editions show`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct EditionBounces {
    pub hard: i64,
    pub soft: i64,
    pub complaint: i64,
}

#[derive(FromRow)]
struct ReaderState {
    email: Option<String>,
    status: String,
}

const LIST_SELECT: &str =
    "SELECT b.id, b.received_at, b.type AS kind, b.source, p.email, b.edition_id,
        l.slug AS list, b.matched_by, b.status, b.diagnostic, b.from_addr, b.subject, b.note
 FROM bounce_events b
 LEFT JOIN subscribers p ON p.id = b.subscriber_id
 LEFT JOIN lists l ON l.id = b.list_id";

impl Store {
    /// What a VERP delivery item names: the reader (if still there) of edition `edition_id`.
    /// A reader created after the edition cannot have received it (a reused row id).
    pub async fn lookup_delivery(&self, edition_id: i64, subscriber_id: i64) -> Result<Lookup> {
        let edition: Option<(i64, String)> = db!(self.pool(), |c| {
            sqlx::query_as("SELECT list_id, created_at FROM editions WHERE id = $1")
                .bind(edition_id)
                .fetch_optional(c)
                .await
        })?;
        let Some((list_id, edition_created)) = edition else {
            return Ok(Lookup::Gone { edition_id: None });
        };
        let reader: Option<(Option<String>, String)> = db!(self.pool(), |c| {
            sqlx::query_as("SELECT email, created_at FROM subscribers WHERE id = $1")
                .bind(subscriber_id)
                .fetch_optional(c)
                .await
        })?;
        Ok(match reader {
            Some((Some(_), created)) if created <= edition_created => Lookup::Reader(Target {
                subscriber_id: Some(subscriber_id),
                edition_id: Some(edition_id),
                list_id: Some(list_id),
                subscription_id: None,
            }),
            _ => Lookup::Gone {
                edition_id: Some(edition_id),
            },
        })
    }

    /// What a VERP transactional item names: the reader of that confirmation.
    pub async fn lookup_mail(&self, mail_id: i64) -> Result<Lookup> {
        let row: Option<(i64, i64, Option<String>)> = db!(self.pool(), |c| {
            sqlx::query_as(
                "SELECT s.subscriber_id, s.list_id, p.email FROM mail_queue m
                 JOIN subscriptions s ON s.id = m.subscription_id
                 JOIN subscribers p ON p.id = s.subscriber_id
                 WHERE m.id = $1",
            )
            .bind(mail_id)
            .fetch_optional(c)
            .await
        })?;
        Ok(match row {
            Some((subscriber_id, list_id, Some(_))) => Lookup::Reader(Target {
                subscriber_id: Some(subscriber_id),
                list_id: Some(list_id),
                ..Target::default()
            }),
            _ => Lookup::Gone { edition_id: None },
        })
    }

    /// The subscription a reader token names (any reader purpose), for complaints and
    /// `mailto:` unsubscribes.
    pub async fn lookup_token(&self, token: &Token) -> Result<Option<Lookup>> {
        let t = self
            .token_target(token, super::tokens::READER_PURPOSES)
            .await?;
        Ok(t.map(|t| {
            if t.email.is_some() {
                Lookup::Reader(Target {
                    subscriber_id: Some(t.subscriber_id),
                    edition_id: None,
                    list_id: Some(t.list_id),
                    subscription_id: Some(t.subscription_id),
                })
            } else {
                Lookup::Gone { edition_id: None }
            }
        }))
    }

    /// A live reader with this address who has a subscription to the list `slug`.
    pub async fn lookup_recipient(
        &self,
        email: &EmailAddress,
        slug: &str,
    ) -> Result<Option<Target>> {
        let row: Option<(i64, i64)> = db!(self.pool(), |c| {
            sqlx::query_as(
                "SELECT p.id, l.id FROM subscribers p
                 JOIN subscriptions s ON s.subscriber_id = p.id
                 JOIN lists l ON l.id = s.list_id
                 WHERE p.email_key = $1 AND p.email IS NOT NULL AND l.slug = $2",
            )
            .bind(email.canonical())
            .bind(slug)
            .fetch_optional(c)
            .await
        })?;
        Ok(row.map(|(subscriber_id, list_id)| Target {
            subscriber_id: Some(subscriber_id),
            list_id: Some(list_id),
            ..Target::default()
        }))
    }

    /// Whether a message with this hash was recorded already.
    pub async fn bounce_seen(&self, hash: &[u8; 32]) -> Result<bool> {
        let n: i64 = db!(self.pool(), |c| {
            sqlx::query_scalar("SELECT COUNT(*) FROM bounce_events WHERE message_hash = $1")
                .bind(hash.as_slice())
                .fetch_one(c)
                .await
        })?;
        Ok(n > 0)
    }

    /// Records one message's events and applies them, in one write transaction: a hard
    /// bounce counts towards `hard`, a soft one may complete a run of `soft`, a complaint
    /// ends every subscription of the reader, a `mailto:` unsubscribe ends its subscription.
    /// A message recorded before changes nothing. An event about an erased reader is kept
    /// without the reader and without its diagnostic (which quotes the address).
    ///
    /// Two nodes ingesting the same message at once (the pipe on one, the mailbox on
    /// another) are serialised by the message's `UNIQUE (message_hash, part)`: the second
    /// insert waits for the first transaction and then fails, and is reported a duplicate.
    pub async fn record_bounce(
        &self,
        msg: &NewBounceMessage,
        thresholds: Thresholds,
    ) -> Result<Recorded> {
        match retrying(|| self.record_bounce_once(msg, thresholds)).await {
            Err(super::StoreError::Db(sqlx::Error::Database(d)))
                if d.kind() == sqlx::error::ErrorKind::UniqueViolation =>
            {
                Ok(Recorded {
                    duplicate: true,
                    ..Recorded::default()
                })
            }
            other => other,
        }
    }

    async fn record_bounce_once(
        &self,
        msg: &NewBounceMessage,
        thresholds: Thresholds,
    ) -> Result<Recorded> {
        let now = DbTime::now();
        let mut tx = self.write_tx().await?;
        let seen: i64 = db!(&mut tx, |c| {
            sqlx::query_scalar("SELECT COUNT(*) FROM bounce_events WHERE message_hash = $1")
                .bind(msg.hash.as_slice())
                .fetch_one(c)
                .await
        })?;
        let mut out = Recorded::default();
        if seen > 0 {
            out.duplicate = true;
            tx.commit().await?;
            return Ok(out);
        }
        for (part, ev) in msg.events.iter().enumerate() {
            let mut target = ev.target;
            let mut diagnostic = ev.diagnostic.as_deref().map(truncate);
            let mut note = ev.note.clone();
            if let Some(id) = target.subscriber_id {
                let state: Option<ReaderState> = db!(&mut tx, |c| {
                    sqlx::query_as("SELECT email, status FROM subscribers WHERE id = $1")
                        .bind(id)
                        .fetch_optional(c)
                        .await
                })?;
                if !state.is_some_and(|s| s.email.is_some() && s.status != "erased") {
                    target.subscriber_id = None;
                    target.subscription_id = None;
                    diagnostic = None;
                    note = Some("the reader was erased".into());
                    out.erased += 1;
                }
            }
            let unidentified = ev.kind == BounceType::Unidentified;
            db!(&mut tx, |c| {
                sqlx::query(
                    "INSERT INTO bounce_events (received_at, type, source, subscriber_id, edition_id, list_id,
                         matched_by, status, diagnostic, from_addr, subject, note, message_hash, part)
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)",
                )
                .bind(now)
                .bind(ev.kind)
                .bind(msg.source)
                .bind(target.subscriber_id)
                .bind(target.edition_id)
                .bind(target.list_id)
                .bind(ev.matched_by.map(MatchedBy::as_str))
                .bind(ev.status.as_deref())
                .bind(diagnostic.as_deref())
                .bind(unidentified.then(|| msg.from.as_deref().map(truncate)).flatten())
                .bind(unidentified.then(|| msg.subject.as_deref().map(truncate)).flatten())
                .bind(note.as_deref())
                .bind(msg.hash.as_slice())
                .bind(part as i64)
                .execute(c)
                .await
                .affected()
            })?;
            let Some(subscriber) = target.subscriber_id else {
                continue;
            };
            match ev.kind {
                BounceType::Hard => {
                    out.marked_bounced +=
                        count_hard(&mut tx, subscriber, thresholds.hard, now).await?;
                }
                BounceType::Soft => {
                    let run = soft_run(&mut tx, subscriber).await?;
                    if run >= i64::from(thresholds.soft) {
                        out.marked_bounced += mark_bounced(&mut tx, subscriber, now).await?;
                    }
                }
                BounceType::Complaint => {
                    let why = format!(
                        "complaint: reported as spam ({}) on {now}",
                        ev.diagnostic.as_deref().unwrap_or("feedback report")
                    );
                    out.unsubscribed +=
                        end_subscriptions(&mut tx, subscriber, None, &why, now).await?;
                }
                BounceType::Unsubscribe => {
                    if let Some(s) = target.subscription_id {
                        let why = format!("mailto: unsubscribe (RFC 2369) on {now}");
                        out.unsubscribed +=
                            end_subscriptions(&mut tx, subscriber, Some(s), &why, now).await?;
                    }
                }
                BounceType::Rejected
                | BounceType::AutoReply
                | BounceType::Other
                | BounceType::Unidentified => {}
            }
        }
        tx.commit().await?;
        Ok(out)
    }

    /// Bounce events, newest first, optionally of one type.
    pub async fn bounce_events(
        &self,
        kind: Option<BounceType>,
        limit: i64,
    ) -> Result<Vec<BounceRow>> {
        Ok(db!(self.pool(), |c| {
            sqlx::query_as(sqlx::AssertSqlSafe(format!(
                "{LIST_SELECT} WHERE ($1 IS NULL OR b.type = $1) ORDER BY b.id DESC LIMIT $2"
            )))
            .bind(kind)
            .bind(limit)
            .fetch_all(c)
            .await
        })?)
    }

    /// A reader's bounce events, newest first.
    pub async fn bounces_of(&self, subscriber_id: i64, limit: i64) -> Result<Vec<BounceRow>> {
        Ok(db!(self.pool(), |c| {
            sqlx::query_as(sqlx::AssertSqlSafe(format!(
                "{LIST_SELECT} WHERE b.subscriber_id = $1 ORDER BY b.id DESC LIMIT $2"
            )))
            .bind(subscriber_id)
            .bind(limit)
            .fetch_all(c)
            .await
        })?)
    }

    /// Hard, soft and complaint counts of one edition.
    pub async fn edition_bounces(&self, edition_id: i64) -> Result<EditionBounces> {
        let (hard, soft, complaint) = db!(self.pool(), |c| {
            sqlx::query_as(
                "SELECT COUNT(*) FILTER (WHERE type = 'hard'), COUNT(*) FILTER (WHERE type = 'soft'),
                        COUNT(*) FILTER (WHERE type = 'complaint')
                 FROM bounce_events WHERE edition_id = $1",
            )
            .bind(edition_id)
            .fetch_one(c)
            .await
        })?;
        Ok(EditionBounces {
            hard,
            soft,
            complaint,
        })
    }

    /// Undoes a bounce status: the reader is active again and earlier bounces stop counting
    /// (their events stay, for the record). `false`: the reader was not bounced.
    pub async fn reactivate(&self, email: &EmailAddress) -> Result<bool> {
        let now = DbTime::now();
        let changed = db!(self.writer(), |c| {
            sqlx::query(
                "UPDATE subscribers SET status = 'active', hard_bounces = 0, bounce_reset_at = $1, updated_at = $1
                 WHERE email_key = $2 AND email IS NOT NULL AND status = 'bounced'",
            )
            .bind(now)
            .bind(email.canonical())
            .execute(c)
            .await
            .affected()
        })?;
        if changed == 0 {
            // Tell "not bounced" from "no such reader".
            self.subscriber_by_email(email).await?;
            return Ok(false);
        }
        Ok(true)
    }
}

/// At most [`DIAGNOSTIC_MAX`] characters, on a character boundary, control characters gone.
fn truncate(s: &str) -> String {
    let clean: String = s
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    let clean = clean.split_whitespace().collect::<Vec<_>>().join(" ");
    match clean.char_indices().nth(DIAGNOSTIC_MAX) {
        Some((i, _)) => format!("{}…", &clean[..i]),
        None => clean,
    }
}

/// Counts a hard bounce against `subscriber` (SMTP time or DSN alike); returns 1 when it
/// marked them bounced.
pub(super) async fn count_hard(
    tx: &mut Tx,
    subscriber: i64,
    threshold: u32,
    now: DbTime,
) -> Result<u64> {
    // The row lock of the UPDATE serialises two nodes counting bounces of one reader.
    let became: Option<bool> = db!(tx, |c| {
        sqlx::query_scalar(
            "UPDATE subscribers SET hard_bounces = hard_bounces + 1,
                 status = CASE WHEN hard_bounces + 1 >= $1 AND status = 'active' THEN 'bounced' ELSE status END,
                 updated_at = $2
             WHERE id = $3 AND email IS NOT NULL
             RETURNING status = 'bounced' AND hard_bounces = (CASE WHEN $1 > 1 THEN $1 ELSE 1 END)",
        )
        .bind(i64::from(threshold))
        .bind(now)
        .bind(subscriber)
        .fetch_optional(c)
        .await
    })?;
    Ok(u64::from(became.unwrap_or(false)))
}

/// The reader's current run of soft bounces: distinct messages (editions) that soft-bounced
/// since the last edition the relay accepted for them that brought no bounce back, and since
/// a reactivation. Computed afresh at each soft bounce, so a message whose bounce was still
/// on its way when the run was last looked at is judged by what is known now.
async fn soft_run(tx: &mut Tx, subscriber: i64) -> Result<i64> {
    Ok(db!(tx, |c| {
        sqlx::query_scalar(
            "SELECT COUNT(DISTINCT COALESCE('e' || CAST(b.edition_id AS TEXT), 'x' || CAST(b.id AS TEXT)))
             FROM bounce_events b LEFT JOIN editions e ON e.id = b.edition_id
             WHERE b.subscriber_id = $1 AND b.type = 'soft'
               AND COALESCE(e.created_at, b.received_at) > COALESCE((
                   SELECT MAX(t) FROM (
                       SELECT e2.created_at AS t FROM deliveries d JOIN editions e2 ON e2.id = d.edition_id
                       WHERE d.subscriber_id = $1 AND d.status = 'sent'
                         AND NOT EXISTS (SELECT 1 FROM bounce_events x
                                         WHERE x.subscriber_id = $1 AND x.edition_id = d.edition_id
                                           AND x.type IN ('hard', 'soft', 'rejected'))
                       UNION ALL
                       SELECT bounce_reset_at FROM subscribers WHERE id = $1) AS since), '')",
        )
        .bind(subscriber)
        .fetch_one(c)
        .await
    })?)
}

async fn mark_bounced(tx: &mut Tx, subscriber: i64, now: DbTime) -> Result<u64> {
    Ok(db!(tx, |c| {
        sqlx::query(
            "UPDATE subscribers SET status = 'bounced', updated_at = $1 WHERE id = $2 AND status = 'active'",
        )
        .bind(now)
        .bind(subscriber)
        .execute(c)
        .await
        .affected()
    })?)
}

/// Ends one subscription, or all of the reader's, recording why in the consent record.
async fn end_subscriptions(
    tx: &mut Tx,
    subscriber: i64,
    only: Option<i64>,
    why: &str,
    now: DbTime,
) -> Result<u64> {
    Ok(db!(tx, |c| {
        sqlx::query(
            "UPDATE subscriptions SET status = 'unsubscribed', unsubscribed_at = $1, unsubscribe_reason = $2
             WHERE subscriber_id = $3 AND status <> 'unsubscribed' AND ($4 IS NULL OR id = $4)",
        )
        .bind(now)
        .bind(why)
        .bind(subscriber)
        .bind(only)
        .execute(c)
        .await
        .affected()
    })?)
}

/// Records a hard bounce refused at SMTP time as an event (the count is [`count_hard`]'s).
pub(super) async fn record_smtp_bounce(
    tx: &mut Tx,
    delivery_id: i64,
    subscriber: i64,
    reply: &str,
    now: DbTime,
) -> Result<()> {
    let status = enhanced_status(reply);
    let diagnostic = truncate(reply);
    db!(tx, |c| {
        sqlx::query(
            "INSERT INTO bounce_events (received_at, type, source, subscriber_id, edition_id, list_id, status, diagnostic)
             SELECT $1, 'hard', 'smtp', $2, d.edition_id, e.list_id, $3, $4
             FROM deliveries d JOIN editions e ON e.id = d.edition_id WHERE d.id = $5",
        )
        .bind(now)
        .bind(subscriber)
        .bind(status.as_deref())
        .bind(diagnostic.as_str())
        .bind(delivery_id)
        .execute(c)
        .await
        .affected()
    })?;
    Ok(())
}

/// The RFC 3463 `class.subject.detail` code in an SMTP reply, if any.
fn enhanced_status(reply: &str) -> Option<String> {
    reply
        .split(|c: char| c.is_whitespace() || c == '-')
        .find(|w| {
            let parts: Vec<&str> = w.split('.').collect();
            parts.len() == 3
                && matches!(parts[0], "2" | "4" | "5")
                && parts[1..]
                    .iter()
                    .all(|p| (1..=3).contains(&p.len()) && p.bytes().all(|b| b.is_ascii_digit()))
        })
        .map(str::to_owned)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::ListSlug;
    use crate::store::Backend;
    use crate::store::ListSpec;
    use crate::store::subscribers::NewSubscription;
    use crate::store::testutil::{store_test, temp_store_on};

    /// A reader of `daily` and `editions` sent to them, created a minute apart.
    async fn reader_with_editions(store: &Store, editions: i64) -> (i64, Vec<i64>) {
        let list = store
            .create_list(&ListSlug::parse("daily").unwrap(), &ListSpec::default())
            .await
            .unwrap();
        store
            .subscribe_batch(
                list.id,
                &[NewSubscription {
                    email: EmailAddress::parse("r@example.org").unwrap(),
                    name: None,
                    categories: None,
                }],
                "cli",
                false,
            )
            .await
            .unwrap();
        let sub = store
            .subscriber_by_email(&EmailAddress::parse("r@example.org").unwrap())
            .await
            .unwrap()
            .id;
        let mut ids = Vec::new();
        for i in 0..editions {
            let at = format!("2099-01-01T00:{i:02}:00Z");
            let id: i64 = db!(store.writer(), |c| {
                sqlx::query_scalar(
                    "INSERT INTO editions (list_id, kind, window_start, window_end, subject, status, created_at)
                     VALUES ($1, 'digest', $2, $2, 's', 'sent', $2) RETURNING id",
                )
                .bind(list.id)
                .bind(&at)
                .fetch_one(c)
                .await
            })
            .unwrap();
            db!(store.writer(), |c| {
                sqlx::query(
                    "INSERT INTO deliveries (edition_id, subscriber_id, status, sent_at) VALUES ($1, $2, 'sent', $3)",
                )
                .bind(id)
                .bind(sub)
                .bind(&at)
                .execute(c)
                .await
                .affected()
            })
            .unwrap();
            ids.push(id);
        }
        (sub, ids)
    }

    async fn soft(store: &Store, sub: i64, edition: i64, n: u8) -> Recorded {
        store
            .record_bounce(
                &NewBounceMessage {
                    hash: [n; 32],
                    source: BounceSource::Pipe,
                    from: None,
                    subject: None,
                    events: vec![NewEvent {
                        kind: BounceType::Soft,
                        target: Target {
                            subscriber_id: Some(sub),
                            edition_id: Some(edition),
                            ..Target::default()
                        },
                        matched_by: Some(MatchedBy::Verp),
                        status: Some("4.2.2".into()),
                        diagnostic: None,
                        note: None,
                    }],
                },
                Thresholds { hard: 1, soft: 2 },
            )
            .await
            .unwrap()
    }

    async fn status(store: &Store) -> String {
        store
            .subscriber_by_email(&EmailAddress::parse("r@example.org").unwrap())
            .await
            .unwrap()
            .status
    }

    store_test!(soft_bounces_in_a_row_bounce_the_reader_once_the_editions_between_bounced_too);
    async fn soft_bounces_in_a_row_bounce_the_reader_once_the_editions_between_bounced_too(
        backend: Backend,
    ) {
        let (store, _d) = temp_store_on(backend).await;
        let (sub, e) = reader_with_editions(&store, 3).await;
        assert_eq!(soft(&store, sub, e[0], 1).await.marked_bounced, 0);
        // A second DSN for the same edition is not a second message of the run.
        assert_eq!(soft(&store, sub, e[0], 2).await.marked_bounced, 0);
        // Edition 3 bounces while edition 2's fate is unknown (sent, no bounce yet): edition 2
        // may have reached the reader, so the run is not complete...
        assert_eq!(soft(&store, sub, e[2], 3).await.marked_bounced, 0);
        assert_eq!(status(&store).await, "active");
        // ...until edition 2's bounce arrives: the run is judged afresh, 3 in a row.
        assert_eq!(soft(&store, sub, e[1], 4).await.marked_bounced, 1);
        assert_eq!(status(&store).await, "bounced");
    }

    store_test!(a_later_delivery_that_did_not_bounce_ends_the_run);
    async fn a_later_delivery_that_did_not_bounce_ends_the_run(backend: Backend) {
        let (store, _d) = temp_store_on(backend).await;
        let (sub, e) = reader_with_editions(&store, 3).await;
        soft(&store, sub, e[0], 1).await;
        // Edition 2 reached the reader (sent, no bounce), then edition 3 soft-bounced.
        soft(&store, sub, e[2], 2).await;
        assert_eq!(
            status(&store).await,
            "active",
            "the run was reset by edition 2"
        );
        // Reactivating clears the record too.
        store
            .reactivate(&EmailAddress::parse("r@example.org").unwrap())
            .await
            .unwrap();
    }
}
