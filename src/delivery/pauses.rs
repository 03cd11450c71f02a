//! The editions this run has paused, shared by the recorder (which pauses), the workers
//! (which stop sending a paused edition's messages) and the dispatcher (which stops claiming
//! them, and notices a resume).

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Instant;

/// Editions paused by this run. An entry is made before the pause is written to the store,
/// so that the workers stop at once; it records when the write committed, so that a
/// dispatcher that read the editions still sending *before* that moment does not take the
/// pause for a resume (`dispatch editions resume` sets `sending` again; only a read made
/// after the pause committed can see that).
#[derive(Debug, Default)]
pub(super) struct Pauses {
    /// Edition -> when its pause was committed (`None` while it is being written).
    editions: Mutex<HashMap<i64, Option<Instant>>>,
}

impl Pauses {
    /// Marks `edition` paused; `false` when it already was.
    pub(super) fn begin(&self, edition: i64) -> bool {
        self.with(|m| {
            let newly = !m.contains_key(&edition);
            m.entry(edition).or_insert(None);
            newly
        })
        .unwrap_or(false)
    }

    /// The pause of `edition` is in the store (or needed no writing).
    pub(super) fn committed(&self, edition: i64) {
        self.with(|m| m.insert(edition, Some(Instant::now())));
    }

    /// Whether `edition`'s messages must not be sent.
    pub(super) fn contains(&self, edition: i64) -> bool {
        self.with(|m| m.contains_key(&edition)).unwrap_or(true)
    }

    /// Forgets the pauses an operator has lifted: an edition in `sending`, as read by a query
    /// that started at `read_at`, after its pause committed.
    pub(super) fn forget_resumed(&self, sending: impl Fn(i64) -> bool, read_at: Instant) {
        self.with(|m| {
            m.retain(|id, at| !matches!(at, Some(t) if *t <= read_at && sending(*id)));
        });
    }

    /// The paused editions, in order.
    pub(super) fn ids(&self) -> Vec<i64> {
        let mut ids: Vec<i64> = self
            .with(|m| m.keys().copied().collect())
            .unwrap_or_default();
        ids.sort_unstable();
        ids
    }

    /// Runs `f` under the lock. A poisoned lock (a panic while holding it, which nothing here
    /// does) answers `None`; callers then err on the side of not sending.
    fn with<T>(&self, f: impl FnOnce(&mut HashMap<i64, Option<Instant>>) -> T) -> Option<T> {
        self.editions.lock().ok().map(|mut m| f(&mut m))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sending_edition_read_before_the_pause_committed_is_not_a_resume() {
        let p = Pauses::default();
        assert!(p.begin(7));
        assert!(!p.begin(7));
        // The dispatcher read "7 is sending" while the pause was being written.
        let read_early = Instant::now();
        p.forget_resumed(|id| id == 7, read_early);
        assert!(p.contains(7));
        p.committed(7);
        p.forget_resumed(|id| id == 7, read_early);
        assert!(p.contains(7), "a read from before the commit says nothing");
        // A read after the commit that still sees it sending: an operator resumed it.
        p.forget_resumed(|_| false, Instant::now());
        assert_eq!(p.ids(), vec![7]);
        p.forget_resumed(|id| id == 7, Instant::now());
        assert!(!p.contains(7));
        assert!(p.ids().is_empty());
    }
}
