//! What comes back: bounces (RFC 3464 delivery status notifications, and the prose ones some
//! providers still send), complaints (RFC 5965 ARF reports), automatic replies (RFC 3834) and
//! `mailto:` unsubscribes (RFC 2369).
//!
//! - [`parse`]: what a message is, from its MIME structure and report fields.
//! - [`classify`]: what a status means for the reader's address.
//! - [`ingest`]: which reader it names and what it does to them, recorded once per message.
//! - [`imap`]: the `[bounces.imap]` mailbox poller of the daemon.
//!
//! The per-message envelope sender that makes bounces identifiable is
//! [`crate::mail::verp`]; the sender uses it, this module reads it back.

pub mod classify;
pub mod imap;
pub mod ingest;
pub mod parse;

pub use ingest::{Folder, Ingested, Settings, ingest};
