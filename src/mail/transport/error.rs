//! Why a message was not sent, and how a reply is classified for the retry policy.
//!
//! The first digit of a reply says whether to try again (RFC 5321 §4.2.1: 4yz transient,
//! 5yz permanent); the command it answered says who the refusal is about (RFC 5321 §3.3: a
//! refused MAIL is about our sender, a refused RCPT about one reader); the enhanced status
//! code (RFC 3463 §3) says whether a mailbox is gone for good, which is the only case in which
//! the reader is suppressed.

/// Why a message was not sent, classified for the retry policy.
///
/// - [`SendError::Transient`], [`SendError::Timeout`], [`SendError::Network`]: try this
///   message again later ([`SendError::is_retryable`]).
/// - [`SendError::Refused`]: the relay turned our connection away, not the message (too many
///   connections or messages from us): send it again on another connection, and use fewer.
/// - [`SendError::Permanent`]: give up on this message. Suppress the reader only when
///   [`SendError::is_hard_bounce`] says the mailbox does not exist.
/// - [`SendError::Fatal`]: every message would fail the same way (authentication refused,
///   TLS failure, relay unreachable, our sender rejected, content rejected by policy). Leave
///   the message queued, pause the run and tell the operator.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SendError {
    /// A 4yz reply (RFC 5321 §4.2.1: transient negative completion).
    #[error("temporary failure: {reply}")]
    Transient {
        /// The server's reply: code, enhanced code and text.
        reply: String,
    },
    /// A 5yz reply about this message or reader (RFC 5321 §4.2.1: permanent negative).
    #[error("permanent failure: {reply}")]
    Permanent {
        /// The server's reply: code, enhanced code and text.
        reply: String,
    },
    /// A failure that would fail every message until the configuration or the relay changes.
    #[error("cannot send at all: {reason}")]
    Fatal {
        /// What happened, for the operator.
        reason: String,
    },
    /// No answer within `[smtp] timeout_secs`.
    #[error("the SMTP server did not answer in time")]
    Timeout,
    /// The connection broke (reset, closed, garbled reply).
    #[error("network error: {reason}")]
    Network {
        /// What happened.
        reason: String,
    },
    /// The relay refused the connection, not the message: the TCP connection was refused, the
    /// greeting was a 4yz, or a reply was 421, "closing transmission channel" (RFC 5321 §3.8,
    /// §4.2.1). Relays say this when a client has too many connections or sends too fast.
    #[error("the relay refused the connection: {reason}")]
    Refused {
        /// The reply or the socket error.
        reason: String,
    },
}

impl SendError {
    /// Whether to try the same message again later (with backoff).
    pub fn is_retryable(&self) -> bool {
        matches!(
            self,
            Self::Transient { .. } | Self::Timeout | Self::Network { .. } | Self::Refused { .. }
        )
    }

    /// Whether the relay refused the connection rather than the message
    /// ([`SendError::Refused`]): the message was not judged, and fewer connections may help.
    pub fn is_refusal(&self) -> bool {
        matches!(self, Self::Refused { .. })
    }

    /// Whether every message would fail like this: stop sending, keep the message queued.
    pub fn is_fatal(&self) -> bool {
        matches!(self, Self::Fatal { .. })
    }

    /// Whether this is a hard bounce: the mailbox does not exist or is disabled, so the
    /// reader should be suppressed. Only RFC 3463 codes say so with confidence: `5.1.x`
    /// (address status, except `5.1.7`/`5.1.8`, which are about the sender) and `5.2.1`
    /// (mailbox disabled). A bare `550` without an enhanced code is not enough: relays use
    /// it for content and policy rejections too, and suppressing on those could empty a list.
    pub fn is_hard_bounce(&self) -> bool {
        let Self::Permanent { reply } = self else {
            return false;
        };
        match enhanced_code(reply) {
            Some((5, 1, d)) => d != 7 && d != 8,
            Some((5, 2, 1)) => true,
            _ => false,
        }
    }

    /// The server's reply, if the error is one.
    pub fn reply(&self) -> Option<&str> {
        match self {
            Self::Transient { reply } | Self::Permanent { reply } => Some(reply),
            _ => None,
        }
    }
}

/// Finds the RFC 3463 enhanced status code (`class.subject.detail`) in a reply such as
/// `550 5.1.1 No such user`.
pub(super) fn enhanced_code(reply: &str) -> Option<(u8, u16, u16)> {
    let word = reply.split_whitespace().find(|w| w.contains('.'))?;
    let mut it = word.split('.');
    let class: u8 = it.next()?.parse().ok()?;
    let subject: u16 = it.next()?.parse().ok()?;
    let detail: u16 = it.next()?.parse().ok()?;
    if it.next().is_some() || !matches!(class, 2 | 4 | 5) {
        return None;
    }
    Some((class, subject, detail))
}

/// Which command a reply answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Stage {
    Greeting,
    Starttls,
    Auth,
    Mail,
    Rcpt,
    Data,
    DataEnd,
}

/// Classifies a negative reply (RFC 5321 §4.2.1 for the first digit, RFC 3463 for the
/// enhanced code).
pub(super) fn classify_reply(stage: Stage, basic: u16, reply: String) -> SendError {
    let class = basic / 100;
    let enhanced = enhanced_code(&reply);
    // 421: the server is closing the channel (RFC 5321 §3.8), and a 4yz greeting turns the
    // session away before it starts: about our connections, not this message.
    if basic == 421 || (class == 4 && stage == Stage::Greeting) {
        return SendError::Refused { reason: reply };
    }
    if class == 4 {
        return SendError::Transient { reply };
    }
    match stage {
        // Setting up the session (greeting, STARTTLS, AUTH): nothing can be sent.
        Stage::Greeting | Stage::Starttls | Stage::Auth => SendError::Fatal { reason: reply },
        // A 5yz to MAIL FROM is about our envelope sender, which is the same for every
        // message (5.7.x: not authorised to send as it; 5.1.7/5.1.8: bad sender address).
        Stage::Mail => SendError::Fatal {
            reason: format!("the relay refused our sender: {reply}"),
        },
        // RFC 5321 §4.5.3.1.10: 552 to RCPT ("too many recipients") is to be treated as 452.
        Stage::Rcpt if basic == 552 => SendError::Transient { reply },
        Stage::Rcpt | Stage::Data => SendError::Permanent { reply },
        // 5.7.x after the data: the relay refused the content or our authentication (for
        // example DMARC/DKIM failure, RFC 7372 5.7.26), and the content and the signer are
        // the same for every reader of the edition.
        Stage::DataEnd => match enhanced {
            Some((5, 7, _)) => SendError::Fatal {
                reason: format!("the relay refused the message: {reply}"),
            },
            _ => SendError::Permanent { reply },
        },
    }
}

/// Maps a lettre error at `stage` to a [`SendError`].
pub(super) fn classify(stage: Stage, e: &lettre::transport::smtp::Error) -> SendError {
    if let Some(code) = e.status() {
        let text = std::error::Error::source(e)
            .map(ToString::to_string)
            .unwrap_or_default();
        let basic: u16 = code.to_string().parse().unwrap_or(0);
        return classify_reply(stage, basic, format!("{code} {text}").trim().to_owned());
    }
    if e.is_timeout() {
        return SendError::Timeout;
    }
    let reason = e.to_string();
    if e.is_tls() || e.is_client() || stage == Stage::Starttls {
        // TLS failures, STARTTLS not offered, no usable AUTH mechanism: configuration.
        return SendError::Fatal { reason };
    }
    SendError::Network { reason }
}
