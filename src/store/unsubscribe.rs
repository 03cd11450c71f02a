//! Unsubscribing by token: one at a time from the page, and the one-click batch writer.

use super::backend::retrying;
use super::tokens::{READER_PURPOSES, TokenTarget, find_target};
use super::{Pool, Result, Store, StoreError, db, now_text};
use crate::domain::Token;

/// The result of [`Store::unsubscribe_by_token`].
#[derive(Debug, Clone)]
pub struct Unsubscribed {
    /// The token's subscription, as it was before.
    pub target: TokenTarget,
    /// How many subscriptions changed (0 when repeated).
    pub changed: u64,
}

impl Store {
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
