//! Delivery: how a recorded edition's messages reach the relay, exactly once as far as a crash
//! allows, and never after a reader said stop.
//!
//! A message travels:
//!
//! 1. **Claim** (`engine`): the dispatcher claims a batch of due rows (transactional mail
//!    first, then breaking news, then digests) under a lease that names this process. The claim
//!    re-checks each reader's subscription under the write lock.
//! 2. **Personalise** (`messages`): each edition variant is encoded once; a reader's message
//!    is a splice of their address, name, token and Message-ID.
//! 3. **Send** (`worker`): one worker per connection, each with its own queue; it re-checks a
//!    subscription that waited, signs (DKIM, on the signing pool's threads, never the async
//!    ones: [`crate::mail::dkim::SigningPool`]) and sends, with the next message ready so that
//!    its envelope rides with this one's content: one round trip per message on a relay that
//!    offers PIPELINING. The workers use as many connections as the relay lets them
//!    (`relay_limit`): a 421 or a refused connection halves them for a while.
//! 4. **Judge** (`policy`): sent, retried with backoff, failed, a hard bounce, or a pause of
//!    the whole edition.
//! 5. **Record** (`recorder`): outcomes are committed in groups across connections, and a
//!    connection waits for the commit of one message before it sends the next one's content.
//!
//! What a crash can repeat: the messages the relay accepted whose outcome was not committed,
//! at most one per connection (the one being sent). The envelope of the next may be at the
//! relay too, sent ahead with this one's content, but no message is delivered before its
//! content is complete, and its content waits for this one's commit. Leases record their holder
//! ([`owner`]): a sender that finds work held by a dead process on its own host takes it over
//! at once; work held elsewhere waits for its lease to run out (live holders renew theirs).

use std::collections::HashSet;
use std::sync::atomic::AtomicU64;
use std::time::Duration as StdDuration;

mod engine;
mod messages;
pub mod owner;
mod pauses;
mod policy;
mod recorder;
mod relay_limit;
mod worker;

pub use engine::Engine;
pub use messages::message_id_for;
pub use policy::backoff;

/// What a send run did.
#[derive(Debug, Default, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Report {
    /// Edition messages the relay accepted.
    pub sent: u64,
    /// Edition messages given up on (not hard bounces).
    pub failed: u64,
    /// Hard bounces.
    pub bounced: u64,
    /// Temporary failures queued for a later attempt.
    pub retry_later: u64,
    /// Messages not sent on purpose (unsubscribed meanwhile, nothing in the reader's topics).
    pub skipped: u64,
    /// Transactional messages (confirmations) sent.
    pub mail_sent: u64,
    /// Transactional messages given up on.
    pub mail_failed: u64,
    /// Editions paused by an error that would fail every message, with the reason.
    pub paused: Vec<(i64, String)>,
}

/// What a run sends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scope {
    /// Every sending edition and transactional mail (the daemon).
    Everything,
    /// Only these editions (`dispatch send`, `editions resume`).
    Editions(HashSet<i64>),
    /// Only transactional mail (confirmations).
    Mail,
}

impl Scope {
    /// Whether the run sends edition `id`.
    pub fn edition(&self, id: i64) -> bool {
        match self {
            Self::Everything => true,
            Self::Editions(ids) => ids.contains(&id),
            Self::Mail => false,
        }
    }

    /// Whether the run sends transactional mail.
    pub fn mail(&self) -> bool {
        matches!(self, Self::Everything | Self::Mail)
    }
}

/// `None` is everything; `Some(ids)` those editions.
impl From<Option<HashSet<i64>>> for Scope {
    fn from(only: Option<HashSet<i64>>) -> Self {
        only.map_or(Self::Everything, Self::Editions)
    }
}

/// How a run ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Return when nothing is due within `wait_for_retries` (the CLI's `send`).
    UntilIdle { wait_for_retries: StdDuration },
    /// Keep going until shutdown (the daemon).
    Forever,
}

/// Live counters for a progress display: committed outcomes.
#[derive(Debug, Default)]
pub struct Progress {
    pub sent: AtomicU64,
    pub failed: AtomicU64,
    pub queued_total: AtomicU64,
}
