//! DKIM signing off the async threads, on a bounded number of blocking threads.
//!
//! RSA signing is CPU work (about a millisecond per message): done on tokio's worker threads
//! it would stall every connection's I/O. Each signature runs on the blocking pool, and a
//! semaphore sized to the machine's cores keeps the number running at once from exceeding
//! what the CPU can do (more would only queue in the kernel's scheduler instead of here).

use std::sync::Arc;

use tokio::sync::Semaphore;

use crate::mail::dkim::{DkimError, DkimSigner};

/// A shared signer with its concurrency bound.
#[derive(Clone)]
pub(super) struct Signer {
    signer: Arc<DkimSigner>,
    permits: Arc<Semaphore>,
}

impl Signer {
    /// Signs on at most `threads` threads at once.
    pub(super) fn new(signer: DkimSigner, threads: usize) -> Self {
        Self {
            signer: Arc::new(signer),
            permits: Arc::new(Semaphore::new(threads.max(1))),
        }
    }

    /// The message with its `DKIM-Signature` header in front.
    pub(super) async fn sign(&self, message: &[u8]) -> Result<Vec<u8>, DkimError> {
        let _permit = self
            .permits
            .acquire()
            .await
            .map_err(|_| DkimError::Message("the signing pool is closed".into()))?;
        let signer = Arc::clone(&self.signer);
        let bytes = message.to_vec();
        tokio::task::spawn_blocking(move || {
            let header = signer.sign(&bytes)?;
            let mut out = Vec::with_capacity(header.len() + bytes.len());
            out.extend_from_slice(header.as_bytes());
            out.extend_from_slice(&bytes);
            Ok(out)
        })
        .await
        .map_err(|e| DkimError::Message(format!("the signing task failed: {e}")))?
    }
}
