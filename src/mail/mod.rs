//! Mail: MIME assembly with per-recipient holes, DKIM signing and the transports.
//!
//! The sending path for one edition variant is:
//!
//! 1. [`mime::MessageTemplate::new`] encodes the headers and both bodies once, leaving holes
//!    for the reader's address, token, name and Message-ID.
//! 2. For each reader, [`mime::MessageTemplate::personalise`] copies the pre-encoded chunks
//!    and the reader's values into a reused buffer (no template work, no allocation).
//! 3. [`dkim::SigningPool::sign`] puts the `DKIM-Signature` header in front, on threads of
//!    its own ([`dkim::DkimSigner::sign`] is the same work, for callers off the runtime).
//! 4. A [`transport::Session`] (one per worker task) hands the bytes to the relay, from the
//!    message's own envelope sender ([`verp`] when `[bounces] return_path_domain` is set).

pub mod dkim;
pub mod mime;
pub mod transport;
pub mod verp;

pub use dkim::{DkimError, DkimSigner, SigningPool};
pub use mime::{CommonHeaders, MessageTemplate, Recipient, message_id};
pub use transport::{
    Outgoing, SendError, Session, SmtpConnector, SmtpSession, StubMessage, StubOutbox, Transport,
};
