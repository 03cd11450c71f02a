//! How many connections the relay lets us use: at most `[smtp] connections`, halved when the
//! relay turns one away, and one more after each quiet period.
//!
//! Relays cap connections per client (Postfix: 50 by default, providers often far fewer) and
//! answer the excess with a 421 greeting or a refused connect; they also close with a 421
//! when a client sends too fast (RFC 5321 §3.8). Either is [`SendError::Refused`]
//! (`crate::mail::transport`): the message was not judged, it goes back to the queue
//! (`Verdict::Released`, the attempt not counted) and the connections used are halved, as a
//! TCP sender halves its window on a loss. After [`QUIET`] without a refusal one more
//! connection is allowed, and again after each further quiet period, up to the configured
//! number.
//!
//! Worker `n` may hold a connection while `n` is below the limit. One refusal lowers the
//! limit once: the refusals of connections opened under an older, higher limit (several
//! workers turned away in the same moment) are already accounted for, which the limit's
//! epoch tells.
//!
//! [`SendError::Refused`]: crate::mail::transport::SendError::Refused

use std::sync::Mutex;
use std::time::{Duration, Instant};

use tokio::sync::watch;

/// Without a refusal for this long, one more connection is allowed.
pub(super) const QUIET: Duration = Duration::from_secs(10);

/// The number of connections workers may hold; shared by the workers and the dispatcher.
#[derive(Debug)]
pub(super) struct ConnectionLimit {
    max: usize,
    quiet: Duration,
    state: Mutex<State>,
    /// The limit, for workers waiting for it to rise.
    allowed: watch::Sender<usize>,
}

#[derive(Debug)]
struct State {
    allowed: usize,
    /// Changes with every change of the limit.
    epoch: u64,
    last_change: Instant,
}

impl ConnectionLimit {
    /// A limit of `max` connections (at least one).
    pub(super) fn new(max: usize) -> Self {
        Self::with_quiet(max, QUIET)
    }

    fn with_quiet(max: usize, quiet: Duration) -> Self {
        let max = max.max(1);
        Self {
            max,
            quiet,
            state: Mutex::new(State {
                allowed: max,
                epoch: 0,
                last_change: Instant::now(),
            }),
            allowed: watch::Sender::new(max),
        }
    }

    /// Whether worker `n` (from 0) may hold a connection now.
    pub(super) fn allows(&self, n: usize) -> bool {
        n < self.allowed_at(Instant::now())
    }

    /// The current epoch, to pass to [`Self::refused`] if the attempt made now is refused.
    pub(super) fn epoch(&self) -> u64 {
        self.state.lock().map(|s| s.epoch).unwrap_or(0)
    }

    /// The relay refused an attempt made at `epoch`: halves the limit unless it changed since.
    pub(super) fn refused(&self, epoch: u64) {
        self.refused_at(epoch, Instant::now());
    }

    /// Waits until the limit changes (a parked worker's wake-up).
    pub(super) fn subscribe(&self) -> watch::Receiver<usize> {
        self.allowed.subscribe()
    }

    fn allowed_at(&self, now: Instant) -> usize {
        // The lock is never held across an await: this is plain bookkeeping.
        let Ok(mut s) = self.state.lock() else {
            return self.max;
        };
        if s.allowed < self.max && now.duration_since(s.last_change) >= self.quiet {
            s.allowed += 1;
            s.epoch += 1;
            s.last_change = now;
            tracing::info!(
                connections = s.allowed,
                "no refusal from the relay for a while; using one more connection"
            );
            self.allowed.send_replace(s.allowed);
        }
        s.allowed
    }

    fn refused_at(&self, epoch: u64, now: Instant) {
        let Ok(mut s) = self.state.lock() else {
            return;
        };
        // A refusal at the floor still restarts the quiet period.
        s.last_change = now;
        if s.epoch != epoch || s.allowed == 1 {
            return;
        }
        s.allowed = (s.allowed / 2).max(1);
        s.epoch += 1;
        tracing::warn!(
            connections = s.allowed,
            "the relay refused a connection; using fewer connections for a while"
        );
        self.allowed.send_replace(s.allowed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_refusal_halves_the_limit_once_per_epoch_down_to_one() {
        let limit = ConnectionLimit::with_quiet(8, Duration::from_secs(10));
        let t = Instant::now();
        let e = limit.epoch();
        // Six workers turned away in the same moment: one halving.
        for _ in 0..6 {
            limit.refused_at(e, t);
        }
        assert_eq!(limit.allowed_at(t), 4);
        assert!(limit.allows(3) && !limit.allows(4));
        // A refusal under the new limit halves it again; then down to one, and no lower.
        let e = limit.epoch();
        limit.refused_at(e, t);
        assert_eq!(limit.allowed_at(t), 2);
        for _ in 0..3 {
            let e = limit.epoch();
            limit.refused_at(e, t);
        }
        assert_eq!(limit.allowed_at(t), 1);
        assert!(limit.allows(0));
    }

    #[test]
    fn the_limit_recovers_one_connection_per_quiet_period() {
        let quiet = Duration::from_secs(10);
        let limit = ConnectionLimit::with_quiet(8, quiet);
        let t = Instant::now();
        limit.refused_at(limit.epoch(), t);
        limit.refused_at(limit.epoch(), t);
        assert_eq!(limit.allowed_at(t), 2);
        assert_eq!(limit.allowed_at(t + quiet / 2), 2);
        assert_eq!(limit.allowed_at(t + quiet), 3);
        // One at a time: the next step needs another quiet period.
        assert_eq!(limit.allowed_at(t + quiet + quiet / 2), 3);
        assert_eq!(limit.allowed_at(t + 2 * quiet), 4);
        // A refusal restarts the clock (and halves).
        limit.refused_at(limit.epoch(), t + 2 * quiet);
        assert_eq!(limit.allowed_at(t + 2 * quiet + quiet / 2), 2);
        let mut now = t + 3 * quiet;
        for _ in 0..20 {
            limit.allowed_at(now);
            now += quiet;
        }
        assert_eq!(
            limit.allowed_at(now),
            8,
            "never above the configured number"
        );
    }

    #[test]
    fn a_refusal_from_before_a_change_does_not_lower_the_limit_again() {
        let limit = ConnectionLimit::with_quiet(8, Duration::from_secs(10));
        let t = Instant::now();
        let old = limit.epoch();
        limit.refused_at(old, t);
        assert_eq!(limit.allowed_at(t), 4);
        limit.refused_at(old, t);
        assert_eq!(limit.allowed_at(t), 4);
    }

    #[tokio::test]
    async fn waiting_workers_hear_of_a_rise() {
        let quiet = Duration::from_millis(1);
        let limit = ConnectionLimit::with_quiet(2, quiet);
        limit.refused(limit.epoch());
        let mut rx = limit.subscribe();
        assert_eq!(*rx.borrow_and_update(), 1);
        std::thread::sleep(quiet * 2);
        assert!(limit.allows(1));
        assert!(rx.has_changed().unwrap());
        assert_eq!(*rx.borrow_and_update(), 2);
    }
}
