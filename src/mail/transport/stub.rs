//! The in-memory transport tests use: it keeps what was sent and fails on request.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use super::SendError;
use crate::domain::EmailAddress;

/// A message kept by the [`StubOutbox`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StubMessage {
    /// The envelope sender.
    pub from: EmailAddress,
    /// The envelope recipient.
    pub to: EmailAddress,
    /// The message as it would go on the wire.
    pub bytes: Vec<u8>,
}

/// An in-memory outbox for tests; clones share the same messages.
#[derive(Debug, Clone, Default)]
pub struct StubOutbox {
    inner: Arc<Mutex<StubState>>,
}

#[derive(Debug, Default)]
struct StubState {
    sent: Vec<StubMessage>,
    failures: HashMap<String, SendError>,
}

impl StubOutbox {
    /// An empty outbox.
    pub fn new() -> Self {
        Self::default()
    }

    fn state(&self) -> std::sync::MutexGuard<'_, StubState> {
        // A panic in another test thread must not hide the messages from this one.
        self.inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Makes every send to `to` fail with `err` until [`Self::clear_failures`].
    pub fn fail(&self, to: &EmailAddress, err: SendError) {
        self.state().failures.insert(to.canonical(), err);
    }

    /// Forgets all failures set with [`Self::fail`].
    pub fn clear_failures(&self) {
        self.state().failures.clear();
    }

    /// The messages sent so far, in order.
    pub fn messages(&self) -> Vec<StubMessage> {
        self.state().sent.clone()
    }

    /// How many messages were sent.
    pub fn len(&self) -> usize {
        self.state().sent.len()
    }

    /// Whether nothing was sent.
    pub fn is_empty(&self) -> bool {
        self.state().sent.is_empty()
    }

    pub(super) fn send(
        &self,
        from: &EmailAddress,
        to: &EmailAddress,
        bytes: &[u8],
    ) -> Result<(), SendError> {
        let mut st = self.state();
        if let Some(e) = st.failures.get(&to.canonical()) {
            return Err(e.clone());
        }
        st.sent.push(StubMessage {
            from: from.clone(),
            to: to.clone(),
            bytes: bytes.to_vec(),
        });
        Ok(())
    }
}
