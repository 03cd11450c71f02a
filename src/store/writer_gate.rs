//! SQLite's one writer, shared fairly with the people waiting on it.
//!
//! Every write on SQLite goes through one connection (see [`super::Store`]), whose waiters
//! queue in order. While an edition sends, the dispatcher's claims and the recorder's group
//! commits take turns on it back to back, and an interactive write (the CMS's `PUT
//! /api/v1/articles/{id}`) queued behind both of them waited for two bulk transactions. Two
//! things keep that wait to at most the one transaction already running:
//!
//! - [`WriterGate`]: an interactive writer says it is waiting; the bulk writers (claims,
//!   outcome commits) look before they queue for the connection and let it go first, for at
//!   most [`MAX_YIELD`] so a stream of interactive writes cannot stop the sending.
//! - Checkpoints off the writer: SQLite's automatic checkpoint runs inside the commit that
//!   crosses `wal_autocheckpoint` pages, and copies the WAL into the database with its
//!   `fsync`s while the writer is held. [`checkpointer`] runs a PASSIVE checkpoint
//!   (<https://www.sqlite.org/c3ref/wal_checkpoint_v2.html>) from a reading connection every
//!   [`CHECKPOINT_EVERY`] instead; it does not block writers, and the writer's own automatic
//!   checkpoint stays as a backstop at [`AUTOCHECKPOINT_PAGES`].
//!
//! PostgreSQL writes concurrently and checkpoints on its own: there the gate is never shut.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Weak};
use std::time::Duration;

use tokio::sync::Notify;

/// The longest a bulk writer stands aside for interactive ones.
pub(super) const MAX_YIELD: Duration = Duration::from_millis(50);
/// How often the WAL is copied back into the database.
pub(super) const CHECKPOINT_EVERY: Duration = Duration::from_millis(500);
/// The writer checkpoints itself only once the WAL holds this many pages (40 MB of 4 KiB
/// pages, 10× SQLite's default): when the checkpointer cannot keep up, not in normal running.
pub(super) const AUTOCHECKPOINT_PAGES: &str = "10000";

/// Interactive writers waiting for the writer connection.
#[derive(Debug, Default)]
pub(super) struct WriterGate {
    waiting: AtomicUsize,
    clear: Notify,
}

/// Held by an interactive writer until it has the connection.
pub(super) struct Waiting(Arc<WriterGate>);

impl WriterGate {
    /// Says an interactive writer is waiting until the returned guard drops (once it holds
    /// the connection, or if it gives up).
    pub(super) fn wait(self: &Arc<Self>) -> Waiting {
        self.waiting.fetch_add(1, Ordering::SeqCst);
        Waiting(Arc::clone(self))
    }

    /// Waits while interactive writers are waiting, for at most [`MAX_YIELD`].
    pub(super) async fn yield_to_interactive(&self) {
        let clear = async {
            loop {
                // Registered before the check, so a guard dropped in between still wakes us.
                let notified = self.clear.notified();
                tokio::pin!(notified);
                notified.as_mut().enable();
                if self.waiting.load(Ordering::SeqCst) == 0 {
                    return;
                }
                notified.await;
            }
        };
        let _ = tokio::time::timeout(MAX_YIELD, clear).await;
    }
}

impl Drop for Waiting {
    fn drop(&mut self) {
        if self.0.waiting.fetch_sub(1, Ordering::SeqCst) == 1 {
            self.0.clear.notify_waiters();
        }
    }
}

/// Checkpoints `pool`'s database every [`CHECKPOINT_EVERY`] until the pool is closed or the
/// store is gone (`store` is its gate: no store holds it any more), so that a dropped store's
/// connections do not stay open for this task.
pub(super) async fn checkpointer(pool: sqlx::SqlitePool, store: Weak<WriterGate>) {
    let mut tick = tokio::time::interval(CHECKPOINT_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        if pool.is_closed() || store.strong_count() == 0 {
            return;
        }
        // PASSIVE: copies what no reader still needs and returns; never waits for a lock.
        if let Err(e) = sqlx::query("PRAGMA wal_checkpoint(PASSIVE)")
            .execute(&pool)
            .await
        {
            if pool.is_closed() {
                return;
            }
            tracing::debug!(error = %e, "a background WAL checkpoint failed; the next one tries again");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_bulk_writer_waits_for_a_waiting_interactive_one_and_no_longer() {
        let gate = Arc::new(WriterGate::default());
        // Nobody waiting: no wait.
        tokio::time::timeout(Duration::from_secs(5), gate.yield_to_interactive())
            .await
            .expect("an open gate does not wait");

        let waiting = gate.wait();
        let g = Arc::clone(&gate);
        let bulk = tokio::spawn(async move { g.yield_to_interactive().await });
        tokio::task::yield_now().await;
        drop(waiting);
        tokio::time::timeout(Duration::from_secs(5), bulk)
            .await
            .expect("the bulk writer goes once the interactive one has the connection")
            .unwrap();

        // One that never gets the connection holds bulk writers up for MAX_YIELD, not forever.
        let _stuck = gate.wait();
        tokio::time::timeout(Duration::from_secs(5), gate.yield_to_interactive())
            .await
            .expect("the yield is bounded");
    }
}
