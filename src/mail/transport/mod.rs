//! Delivering finished messages: SMTP, a folder of `.eml` files, or an in-memory stub.
//!
//! Each worker task holds one [`Session`] from [`Transport::session`] and sends its messages
//! over it one after another. For SMTP that is one long-lived connection per worker:
//!
//! - We open the TCP stream ourselves and set `TCP_NODELAY`. lettre 0.11.23 writes the end of
//!   data (`CRLF . CRLF`) as a second small write; with Nagle's algorithm on it waits for the
//!   server's delayed ACK, about 40 ms per message.
//! - Each transaction's replies are classified by the stage they answer (MAIL, RCPT, DATA,
//!   RFC 5321 §3.3): a 5yz to MAIL concerns our sender and stops the run, a 5yz to RCPT
//!   concerns one reader. A message takes one round trip when the relay offers PIPELINING
//!   (RFC 2920): its content is followed in the same write by the next message's envelope
//!   ([`Session::send_then`]), so each round trip carries one message's reply and the
//!   answers to the next one's envelope. The content is `BDAT n LAST` with the message when
//!   the relay offers CHUNKING (RFC 3030), else DATA's dot-stuffed text. Without PIPELINING,
//!   one command at a time. Each reply is attributed to the command and the message it
//!   answers, wherever it came in the group.
//! - A 421 ("closing", RFC 5321 §3.8), a 4yz greeting or a refused TCP connection is
//!   [`SendError::Refused`]: the relay's verdict on our connections, not on the message.
//! - After a 4yz/5yz reply the transaction is reset with RSET (RFC 5321 §4.1.1.5) and the
//!   connection kept, so a hard bounce costs no reconnect. After a timeout, a network error,
//!   a 421 or a failed RSET the connection is dropped and the next send reconnects.
//! - Every step (connect with its greeting, STARTTLS and AUTH; each send) runs under
//!   `tokio::time::timeout` with `[smtp] timeout_secs`: lettre bounds only the TCP connect.
//!
//! By job: `error` says why a message was not sent and classifies replies, `tls` prepares
//! the relay's TLS, `smtp` holds the session and its transactions, `file` writes the outbox
//! folder, `stub` keeps messages in memory for tests.

mod error;
mod file;
mod smtp;
mod stub;
mod tls;

use std::path::PathBuf;

pub use error::SendError;
pub use smtp::{Outgoing, SmtpConnector, SmtpSession};
pub use stub::{StubMessage, StubOutbox};

use crate::config;
use crate::domain::EmailAddress;

/// Where messages go.
#[derive(Debug, Clone)]
pub enum Transport {
    /// A real SMTP relay.
    Smtp(SmtpConnector),
    /// One `.eml` file per message in this folder (development, previews, dry runs).
    File(PathBuf),
    /// Kept in memory, for tests.
    Stub(StubOutbox),
}

impl Transport {
    /// The transport `[delivery] transport` names, with `[smtp]` for SMTP. The EHLO name is
    /// `[smtp] helo_name`, else the host of `[web] public_url`.
    pub fn from_config(cfg: &config::Config) -> Result<Self, SendError> {
        match cfg.delivery.transport {
            config::TransportKind::File => Ok(Self::File(cfg.delivery.outbox.clone())),
            config::TransportKind::Smtp => {
                let helo = cfg
                    .smtp
                    .helo_name
                    .clone()
                    .unwrap_or_else(|| cfg.web.public_url.host().to_owned());
                SmtpConnector::new(&cfg.smtp, &helo).map(Self::Smtp)
            }
        }
    }

    /// A session for one worker task. For SMTP this connects (and fails with
    /// [`SendError::Fatal`] when the relay cannot be used at all).
    pub async fn session(&self) -> Result<Session, SendError> {
        Ok(Session {
            inner: match self {
                Self::Smtp(c) => SessionInner::Smtp(Box::new(c.connect().await?)),
                Self::File(dir) => {
                    tokio::fs::create_dir_all(dir)
                        .await
                        .map_err(|e| SendError::Fatal {
                            reason: format!(
                                "cannot create the outbox folder {}: {e}",
                                dir.display()
                            ),
                        })?;
                    SessionInner::File(dir.clone())
                }
                Self::Stub(s) => SessionInner::Stub(s.clone()),
            },
        })
    }
}

/// One worker's handle on a [`Transport`].
#[derive(Debug)]
pub struct Session {
    inner: SessionInner,
}

#[derive(Debug)]
enum SessionInner {
    Smtp(Box<SmtpSession>),
    File(PathBuf),
    Stub(StubOutbox),
}

impl Session {
    /// Sends one message with envelope sender `from` (the bounce address) to `to`.
    pub async fn send(
        &mut self,
        from: &EmailAddress,
        to: &EmailAddress,
        bytes: &[u8],
    ) -> Result<(), SendError> {
        match &mut self.inner {
            SessionInner::Smtp(s) => s.send(from, to, bytes).await,
            SessionInner::File(dir) => file::write_eml(dir, bytes).await,
            SessionInner::Stub(s) => s.send(from, to, bytes),
        }
    }

    /// Sends `msg`; `next` is the message the caller will send next, if it knows it now. Over
    /// SMTP with PIPELINING, `next`'s envelope then goes in the same write as `msg`'s content
    /// and the next call, which should be for `next`, writes only its content: one round trip
    /// per message ([`SmtpSession::send_then`]). The other transports ignore `next`.
    pub async fn send_then(
        &mut self,
        msg: Outgoing<'_>,
        next: Option<Outgoing<'_>>,
    ) -> Result<(), SendError> {
        match &mut self.inner {
            SessionInner::Smtp(s) => s.send_then(msg, next).await,
            SessionInner::File(dir) => file::write_eml(dir, msg.bytes).await,
            SessionInner::Stub(s) => s.send(msg.from, msg.to, msg.bytes),
        }
    }

    /// Whether the session still holds a live connection. An SMTP session whose connection
    /// was dropped (after a timeout, a network error or a 421) reconnects by itself on the
    /// next send, so dropping it and asking [`Transport::session`] for a new one is optional.
    pub fn is_usable(&self) -> bool {
        match &self.inner {
            SessionInner::Smtp(s) => s.is_connected(),
            SessionInner::File(_) | SessionInner::Stub(_) => true,
        }
    }

    /// Closes the session (QUIT for SMTP).
    pub async fn close(self) {
        if let SessionInner::Smtp(s) = self.inner {
            s.quit().await;
        }
    }
}

/// The value of the first header `name` (case-insensitive, not unfolded), for logs and
/// file names.
fn header_value<'a>(msg: &'a [u8], name: &str) -> Option<&'a str> {
    let end = msg
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .unwrap_or(msg.len());
    std::str::from_utf8(&msg[..end])
        .ok()?
        .split("\r\n")
        .find_map(|line| {
            let (k, v) = line.split_once(':')?;
            k.eq_ignore_ascii_case(name).then(|| v.trim())
        })
}

#[cfg(test)]
mod tests;
