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
//!   concerns one reader. When the relay offers PIPELINING (RFC 2920), MAIL, RCPT and DATA go
//!   in one write and the three replies are read in order; the dot-stuffed content and its
//!   terminator go in one more. Two round trips per message instead of four is what puts the
//!   sender level with Postfix's `smtp-source`.
//! - After a 4yz/5yz reply the transaction is reset with RSET (RFC 5321 §4.1.1.5) and the
//!   connection kept, so a hard bounce costs no reconnect. After a timeout, a network error,
//!   a 421 or a failed RSET the connection is dropped and the next send reconnects.
//! - Every step (connect with its greeting, STARTTLS and AUTH; each send) runs under
//!   `tokio::time::timeout` with `[smtp] timeout_secs`: lettre bounds only the TCP connect.

use std::collections::HashMap;
use std::io;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::str::FromStr as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use lettre::Address;
use lettre::transport::smtp::authentication::{Credentials, Mechanism};
use lettre::transport::smtp::client::{
    AsyncSmtpConnection, AsyncTokioStream, Certificate, TlsParameters,
};
use lettre::transport::smtp::commands::{Data, Ehlo, Mail, Quit, Rcpt, Rset};
use lettre::transport::smtp::extension::{ClientId, Extension, MailBodyParameter, MailParameter};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;

use crate::config::{self, Security};
use crate::domain::EmailAddress;

/// Why a message was not sent, classified for the retry policy.
///
/// - [`SendError::Transient`], [`SendError::Timeout`], [`SendError::Network`]: try this
///   message again later ([`SendError::is_retryable`]).
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
    /// Not attempted: the sender gave the message back to the queue (its edition was paused
    /// by a [`SendError::Fatal`]). Never produced by a transport.
    #[error("not attempted: the edition is paused")]
    Released,
}

impl SendError {
    /// Whether to try the same message again later (with backoff).
    pub fn is_retryable(&self) -> bool {
        matches!(
            self,
            Self::Transient { .. } | Self::Timeout | Self::Network { .. }
        )
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
fn enhanced_code(reply: &str) -> Option<(u8, u16, u16)> {
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
enum Stage {
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
fn classify_reply(stage: Stage, basic: u16, reply: String) -> SendError {
    let class = basic / 100;
    let enhanced = enhanced_code(&reply);
    // 421: the server is closing the channel (RFC 5321 §3.8); try again later.
    if class == 4 || basic == 421 {
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
fn classify(stage: Stage, e: &lettre::transport::smtp::Error) -> SendError {
    if let Some(code) = e.status() {
        let text = std::error::Error::source(e)
            .map(|s| s.to_string())
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

/// Makes SMTP sessions to the configured relay. Cheap to clone; one per daemon.
#[derive(Clone)]
pub struct SmtpConnector {
    inner: Arc<ConnectorInner>,
}

struct ConnectorInner {
    host: String,
    port: u16,
    security: Security,
    credentials: Option<Credentials>,
    timeout: Duration,
    hello: ClientId,
    /// For STARTTLS (lettre upgrades the connection).
    starttls: Option<TlsParameters>,
    /// For implicit TLS (we wrap the stream before the greeting).
    implicit: Option<tokio_rustls::TlsConnector>,
}

impl std::fmt::Debug for SmtpConnector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SmtpConnector")
            .field("host", &self.inner.host)
            .field("port", &self.inner.port)
            .field("security", &self.inner.security)
            .field("auth", &self.inner.credentials.is_some())
            .finish_non_exhaustive()
    }
}

impl SmtpConnector {
    /// Prepares connections to `cfg.host:cfg.port`, greeting with `helo` (the EHLO name).
    /// Fails with [`SendError::Fatal`] when the extra CA file cannot be used.
    pub fn new(cfg: &config::Smtp, helo: &str) -> Result<Self, SendError> {
        let fatal = |reason: String| SendError::Fatal { reason };
        let ca_pem =
            match &cfg.ca_file {
                Some(p) => Some(std::fs::read(p).map_err(|e| {
                    fatal(format!("[smtp] ca_file {}: cannot read: {e}", p.display()))
                })?),
                None => None,
            };
        let ca_name = cfg.ca_file.as_deref().map(Path::display);
        let (starttls, implicit) = match cfg.security {
            Security::Starttls => {
                let mut b = TlsParameters::builder(cfg.host.clone());
                if let Some(pem) = &ca_pem {
                    let cert = Certificate::from_pem(pem).map_err(|e| {
                        fatal(format!(
                            "[smtp] ca_file {}: not a PEM certificate: {e}",
                            ca_name.as_ref().map(|d| d.to_string()).unwrap_or_default()
                        ))
                    })?;
                    b = b.add_root_certificate(cert);
                }
                let params = b
                    .build_rustls()
                    .map_err(|e| fatal(format!("[smtp] TLS setup: {e}")))?;
                (Some(params), None)
            }
            Security::Tls => (
                None,
                Some(implicit_tls_connector(
                    ca_pem.as_deref(),
                    cfg.ca_file.as_deref(),
                )?),
            ),
            Security::None => {
                if cfg.username.is_some() {
                    tracing::warn!(
                        host = %cfg.host,
                        "[smtp] security = \"none\" with a username: the password crosses the network in clear text"
                    );
                }
                (None, None)
            }
        };
        let credentials = match (&cfg.username, &cfg.password) {
            (Some(u), Some(p)) => Some(Credentials::new(u.clone(), p.expose().to_owned())),
            _ => None,
        };
        let helo = helo.trim();
        Ok(Self {
            inner: Arc::new(ConnectorInner {
                host: cfg.host.clone(),
                port: cfg.port,
                security: cfg.security,
                credentials,
                timeout: Duration::from_secs(cfg.timeout_secs.max(1)),
                hello: ClientId::Domain(if helo.is_empty() {
                    "localhost".into()
                } else {
                    helo.to_owned()
                }),
                starttls,
                implicit,
            }),
        })
    }

    /// Opens a session: connects, reads the greeting, sends EHLO, upgrades with STARTTLS
    /// (which must be offered: there is no fallback to plain text) and authenticates.
    pub async fn connect(&self) -> Result<SmtpSession, SendError> {
        let (conn, pipelining) = self.open().await?;
        Ok(SmtpSession {
            connector: self.clone(),
            conn: Some(conn),
            sent_on_conn: 0,
            pipelining,
        })
    }

    /// Opens a connection; also says whether it may pipeline.
    async fn open(&self) -> Result<(AsyncSmtpConnection, bool), SendError> {
        let host = &self.inner.host;
        let setup = async {
            let mut conn = self.open_untimed().await?;
            let pipelining = offers_pipelining(&mut conn, &self.inner.hello).await;
            Ok::<_, SendError>((conn, pipelining))
        };
        match tokio::time::timeout(self.inner.timeout, setup).await {
            Ok(Ok(opened)) => Ok(opened),
            Ok(Err(e)) => {
                tracing::warn!(host = %host, error = %e, "SMTP session setup failed");
                Err(e)
            }
            Err(_) => {
                tracing::warn!(host = %host, "SMTP session setup timed out");
                Err(SendError::Timeout)
            }
        }
    }

    async fn open_untimed(&self) -> Result<AsyncSmtpConnection, SendError> {
        let i = &self.inner;
        // Unreachable is retryable: a relay restarting must not pause an edition. The sender
        // pauses only when the relay stays unreachable for `[sending] pause_after_secs`.
        let tcp = connect_tcp(&i.host, i.port)
            .await
            .map_err(|e| SendError::Network {
                reason: format!("cannot connect to {}:{}: {e}", i.host, i.port),
            })?;
        // The point of opening the socket ourselves (see the module docs).
        tcp.set_nodelay(true).map_err(|e| SendError::Network {
            reason: format!("cannot set TCP_NODELAY: {e}"),
        })?;
        let stream: Box<dyn AsyncTokioStream> = match &i.implicit {
            Some(tls) => {
                // RFC 8314 §3.3: TLS from the first byte, then the SMTP greeting inside it.
                let name =
                    rustls::pki_types::ServerName::try_from(i.host.clone()).map_err(|e| {
                        SendError::Fatal {
                            reason: format!(
                                "[smtp] host {:?} is not a TLS server name: {e}",
                                i.host
                            ),
                        }
                    })?;
                let s = tls.connect(name, tcp).await.map_err(|e| SendError::Fatal {
                    reason: tls_failure(
                        &format!("TLS handshake with {}:{}", i.host, i.port),
                        &e.to_string(),
                    ),
                })?;
                Box::new(ImplicitTls(Box::new(s)))
            }
            None => Box::new(tcp),
        };
        let mut conn = AsyncSmtpConnection::connect_with_transport(stream, &i.hello)
            .await
            .map_err(|e| classify(Stage::Greeting, &e))?;
        if let Some(params) = &i.starttls {
            // RFC 3207 §4: the client decides whether to go on without TLS; we never do.
            if !conn.server_info().supports_feature(Extension::StartTls) {
                conn.abort().await;
                return Err(SendError::Fatal {
                    reason: format!(
                        "{}:{} does not offer STARTTLS and [smtp] security = \"starttls\"; refusing to send in plain text",
                        i.host, i.port
                    ),
                });
            }
            conn.starttls(params.clone(), &i.hello).await.map_err(|e| {
                match classify(Stage::Starttls, &e) {
                    SendError::Fatal { reason } => SendError::Fatal {
                        reason: tls_failure(
                            &format!("STARTTLS with {}:{}", i.host, i.port),
                            &reason,
                        ),
                    },
                    other => other,
                }
            })?;
        }
        if let Some(creds) = &i.credentials {
            // RFC 4954; PLAIN (RFC 4616) first, LOGIN for servers that only have that.
            if let Err(e) = conn
                .auth(&[Mechanism::Plain, Mechanism::Login], creds)
                .await
            {
                let err = match classify(Stage::Auth, &e) {
                    SendError::Fatal { reason } => SendError::Fatal {
                        reason: format!("authentication refused: {reason}"),
                    },
                    other => other,
                };
                conn.abort().await;
                return Err(err);
            }
        }
        Ok(conn)
    }
}

/// Whether the server offers PIPELINING (RFC 2920). lettre keeps only the EHLO keywords it
/// knows, and this is not one of them, so ask again: RFC 5321 §4.1.4 allows a repeated EHLO,
/// which also resets nothing we rely on between transactions.
async fn offers_pipelining(conn: &mut AsyncSmtpConnection, hello: &ClientId) -> bool {
    match conn.command(Ehlo::new(hello.clone())).await {
        Ok(r) => r
            .message()
            .skip(1)
            .any(|l| l.trim().eq_ignore_ascii_case("PIPELINING")),
        Err(_) => false,
    }
}

/// Explains a failed TLS handshake with the relay: `what` names it, `err` is the TLS error;
/// for the certificate errors an operator can fix, says how.
fn tls_failure(what: &str, err: &str) -> String {
    // lettre wraps the rustls error in "Connection error: " (twice for STARTTLS).
    let mut err = err.trim();
    while let Some(rest) = err.strip_prefix("Connection error: ") {
        err = rest;
    }
    let hint = if err.contains("CaUsedAsEndEntity") {
        "; the relay presents a CA certificate (basicConstraints CA:TRUE) as its own server \
         certificate, which is refused even when it is in [smtp] ca_file: give the relay a \
         certificate issued by that CA, or make the self-signed one with \
         `openssl req -x509 ... -addext basicConstraints=critical,CA:FALSE`"
    } else if err.contains("UnknownIssuer") {
        "; the relay's certificate is not signed by a trusted CA: put the CA that issued it (or, \
         for a self-signed certificate, the certificate itself) in [smtp] ca_file"
    } else {
        ""
    };
    format!("{what} failed: {err}{hint}")
}

/// Builds the rustls client for implicit TLS: the webpki roots plus the optional extra CA.
fn implicit_tls_connector(
    ca_pem: Option<&[u8]>,
    ca_path: Option<&Path>,
) -> Result<tokio_rustls::TlsConnector, SendError> {
    use rustls::pki_types::CertificateDer;
    use rustls::pki_types::pem::PemObject as _;
    let fatal = |reason: String| SendError::Fatal { reason };
    let mut roots = rustls::RootCertStore::empty();
    roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    if let Some(pem) = ca_pem {
        let shown = ca_path.map(|p| p.display().to_string()).unwrap_or_default();
        let mut n = 0;
        for cert in CertificateDer::pem_slice_iter(pem) {
            let cert = cert.map_err(|e| fatal(format!("[smtp] ca_file {shown}: {e}")))?;
            roots
                .add(cert)
                .map_err(|e| fatal(format!("[smtp] ca_file {shown}: {e}")))?;
            n += 1;
        }
        if n == 0 {
            return Err(fatal(format!(
                "[smtp] ca_file {shown}: no certificate in it"
            )));
        }
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let cfg = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| fatal(format!("TLS setup: {e}")))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(tokio_rustls::TlsConnector::from(Arc::new(cfg)))
}

/// Tries each address of `host` in turn.
async fn connect_tcp(host: &str, port: u16) -> io::Result<TcpStream> {
    let mut last = None;
    for addr in tokio::net::lookup_host((host, port)).await? {
        match TcpStream::connect(addr).await {
            Ok(s) => return Ok(s),
            Err(e) => last = Some(e),
        }
    }
    Err(last.unwrap_or_else(|| {
        io::Error::new(io::ErrorKind::NotFound, "the host name has no addresses")
    }))
}

/// A TLS stream lettre can use as an already-connected transport.
#[derive(Debug)]
struct ImplicitTls(Box<tokio_rustls::client::TlsStream<TcpStream>>);

impl AsyncRead for ImplicitTls {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut *self.0).poll_read(cx, buf)
    }
}

impl AsyncWrite for ImplicitTls {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut *self.0).poll_write(cx, buf)
    }
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut *self.0).poll_flush(cx)
    }
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut *self.0).poll_shutdown(cx)
    }
}

impl AsyncTokioStream for ImplicitTls {
    fn peer_addr(&self) -> io::Result<SocketAddr> {
        self.0.get_ref().0.peer_addr()
    }
}

/// One worker's SMTP connection. Reconnects by itself on the next send after the connection
/// was dropped.
pub struct SmtpSession {
    connector: SmtpConnector,
    conn: Option<AsyncSmtpConnection>,
    sent_on_conn: u64,
    /// The connected server offers PIPELINING.
    pipelining: bool,
}

impl std::fmt::Debug for SmtpSession {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SmtpSession")
            .field("connector", &self.connector)
            .field("connected", &self.conn.is_some())
            .field("sent_on_conn", &self.sent_on_conn)
            .finish()
    }
}

/// A failed step of a transaction.
enum TxError {
    Smtp(Stage, lettre::transport::smtp::Error),
    Local(SendError),
    /// The server's replies left the conversation out of step (it accepted DATA after
    /// refusing the envelope): the error to report, and the connection must go.
    Desync(SendError),
}

impl SmtpSession {
    /// Sends `bytes` (a complete message with CRLF line endings) with envelope sender
    /// `from` (the bounce address) to `to`.
    pub async fn send(
        &mut self,
        from: &EmailAddress,
        to: &EmailAddress,
        bytes: &[u8],
    ) -> Result<(), SendError> {
        let result = self.send_inner(from, to, bytes).await;
        match &result {
            Ok(()) => tracing::debug!(
                recipient_domain = to.domain(),
                message_id = header_value(bytes, "Message-ID").unwrap_or("-"),
                "sent over SMTP"
            ),
            Err(e) => tracing::warn!(
                recipient_domain = to.domain(),
                message_id = header_value(bytes, "Message-ID").unwrap_or("-"),
                error = %redact(&e.to_string(), to),
                "SMTP send failed"
            ),
        }
        result
    }

    async fn send_inner(
        &mut self,
        from: &EmailAddress,
        to: &EmailAddress,
        bytes: &[u8],
    ) -> Result<(), SendError> {
        let from_addr = Address::from_str(from.as_str()).map_err(|e| SendError::Fatal {
            reason: format!("the bounce address is not usable: {e}"),
        })?;
        let to_addr = Address::from_str(to.as_str()).map_err(|e| SendError::Permanent {
            reply: format!("the recipient address is not usable: {e}"),
        })?;
        // RFC 5321 §4.1.1.4: the data ends with CRLF . CRLF, whose first CRLF ends the last
        // line; lettre adds all of CRLF . CRLF, so the message's own final CRLF goes.
        let data = bytes.strip_suffix(b"\r\n").unwrap_or(bytes);
        let timeout = self.connector.inner.timeout;
        let mut retried = false;
        loop {
            if self.conn.is_none() {
                let (conn, pipelining) = self.connector.open().await?;
                self.conn = Some(conn);
                self.pipelining = pipelining;
                self.sent_on_conn = 0;
            }
            let reused = self.sent_on_conn > 0;
            let Some(conn) = self.conn.as_mut() else {
                continue; // Invariant: set just above.
            };
            let outcome = tokio::time::timeout(
                timeout,
                transaction(conn, self.pipelining, &from_addr, &to_addr, data),
            )
            .await;
            let (stage, err) = match outcome {
                Ok(Ok(())) => {
                    self.sent_on_conn += 1;
                    return Ok(());
                }
                Err(_) => {
                    self.conn = None;
                    return Err(SendError::Timeout);
                }
                Ok(Err(TxError::Local(e))) => {
                    self.reset().await;
                    return Err(e);
                }
                Ok(Err(TxError::Desync(e))) => {
                    self.drop_connection().await;
                    return Err(e);
                }
                Ok(Err(TxError::Smtp(stage, e))) => (stage, classify(stage, &e)),
            };
            let closing = err.reply().is_some_and(|r| r.starts_with("421"));
            // A connection the server closed while idle (or is closing) fails at MAIL, before
            // anything was accepted: reconnect and try once more.
            if stage == Stage::Mail
                && reused
                && !retried
                && (matches!(err, SendError::Network { .. }) || closing)
            {
                self.conn = None;
                retried = true;
                continue;
            }
            if err.reply().is_some() && !closing {
                self.reset().await;
            } else {
                self.drop_connection().await;
            }
            return Err(err);
        }
    }

    /// RSET after a refused transaction; drops the connection when that fails too.
    async fn reset(&mut self) {
        let timeout = self.connector.inner.timeout;
        let ok = match self.conn.as_mut() {
            Some(conn) => matches!(
                tokio::time::timeout(timeout, conn.command(Rset)).await,
                Ok(Ok(_))
            ),
            None => true,
        };
        if !ok {
            self.conn = None;
        }
    }

    async fn drop_connection(&mut self) {
        if let Some(mut conn) = self.conn.take() {
            // Best effort QUIT; the server may already be gone.
            let _ = tokio::time::timeout(Duration::from_secs(1), conn.abort()).await;
        }
    }

    /// Ends the session politely with QUIT (RFC 5321 §4.1.1.10).
    pub async fn quit(mut self) {
        if let Some(mut conn) = self.conn.take() {
            let _ = tokio::time::timeout(self.connector.inner.timeout, conn.command(Quit)).await;
        }
    }
}

/// One mail transaction: MAIL, RCPT, DATA, the message (RFC 5321 §3.3).
async fn transaction(
    conn: &mut AsyncSmtpConnection,
    pipelining: bool,
    from: &Address,
    to: &Address,
    data: &[u8],
) -> Result<(), TxError> {
    let mut params = Vec::new();
    if !data.is_ascii() {
        // RFC 6152: 8-bit data only to a server that offers 8BITMIME.
        if !conn.server_info().supports_feature(Extension::EightBitMime) {
            return Err(TxError::Local(SendError::Permanent {
                reply: "the message has 8-bit data and the server does not offer 8BITMIME".into(),
            }));
        }
        params.push(MailParameter::Body(MailBodyParameter::EightBitMime));
    }
    if !AsRef::<str>::as_ref(from).is_ascii() || !AsRef::<str>::as_ref(to).is_ascii() {
        // RFC 6531: internationalised addresses need SMTPUTF8.
        if !conn.server_info().supports_feature(Extension::SmtpUtfEight) {
            return Err(TxError::Local(SendError::Permanent {
                reply: "the address is internationalised and the server does not offer SMTPUTF8"
                    .into(),
            }));
        }
        params.push(MailParameter::SmtpUtfEight);
    }
    let mail = Mail::new(Some(from.clone()), params);
    let rcpt = Rcpt::new(to.clone(), vec![]);
    if pipelining {
        // RFC 2920: MAIL, RCPT and DATA go in one write and their three replies are read in
        // order, one round trip instead of three. Every reply is read even after a refusal,
        // so the conversation stays in step for RSET and the next message.
        let mail_reply = conn.command(Pipelined(&mail, &rcpt)).await;
        let rcpt_reply = conn.read_response().await;
        let data_reply = conn.read_response().await;
        let refused = |stage, e| Err(TxError::Smtp(stage, e));
        match (mail_reply, rcpt_reply, data_reply) {
            (Ok(_), Ok(_), Ok(_)) => {}
            // A server that answers DATA with 354 after refusing the envelope waits for
            // content we must not send: report the refusal and drop the connection.
            (Err(e), _, Ok(_)) => return Err(TxError::Desync(classify(Stage::Mail, &e))),
            (Ok(_), Err(e), Ok(_)) => return Err(TxError::Desync(classify(Stage::Rcpt, &e))),
            (Err(e), _, _) => return refused(Stage::Mail, e),
            (Ok(_), Err(e), _) => return refused(Stage::Rcpt, e),
            (Ok(_), Ok(_), Err(e)) => return refused(Stage::Data, e),
        }
    } else {
        conn.command(mail)
            .await
            .map_err(|e| TxError::Smtp(Stage::Mail, e))?;
        conn.command(rcpt)
            .await
            .map_err(|e| TxError::Smtp(Stage::Rcpt, e))?;
        conn.command(Data)
            .await
            .map_err(|e| TxError::Smtp(Stage::Data, e))?;
    }
    match std::str::from_utf8(data) {
        Ok(text) => conn.command(DataContent(&dot_stuff(text))).await,
        // Not UTF-8 (8-bit data): let lettre stuff and send it.
        Err(_) => conn.message(data).await,
    }
    .map_err(|e| TxError::Smtp(Stage::DataEnd, e))?;
    Ok(())
}

/// MAIL FROM, RCPT TO and DATA as one pipelined write (RFC 2920 §3.1).
struct Pipelined<'a>(&'a Mail, &'a Rcpt);

impl std::fmt::Display for Pipelined<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // lettre's commands each render with their own CRLF.
        write!(f, "{}{}{}", self.0, self.1, Data)
    }
}

/// The content of a DATA command, already dot-stuffed, written in one piece together with
/// its terminating `CRLF . CRLF` (RFC 5321 §4.1.1.4).
///
/// lettre's `message()` copies the body byte by byte into a new buffer to dot-stuff it and
/// writes the terminator as a second write: about a fifth of the sender's CPU per message.
/// Handing the prepared text to `command()` costs one copy.
struct DataContent<'a>(&'a str);

impl std::fmt::Display for DataContent<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.0)?;
        f.write_str("\r\n.\r\n")
    }
}

/// Doubles the `.` that starts a line (RFC 5321 §4.5.2), so no line of the message can end
/// the DATA early. Our quoted-printable bodies almost never have one, so the usual case is a
/// SIMD search and no copy.
fn dot_stuff(data: &str) -> std::borrow::Cow<'_, str> {
    let needs = data.starts_with('.') || memchr::memmem::find(data.as_bytes(), b"\n.").is_some();
    if !needs {
        return std::borrow::Cow::Borrowed(data);
    }
    let mut out = String::with_capacity(data.len() + 64);
    if data.starts_with('.') {
        out.push('.');
    }
    let mut rest = data;
    while let Some(i) = memchr::memmem::find(rest.as_bytes(), b"\n.") {
        out.push_str(&rest[..=i]);
        out.push('.');
        rest = &rest[i + 1..];
    }
    out.push_str(rest);
    std::borrow::Cow::Owned(out)
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

/// Replaces the reader's full address in a server reply with `*@domain` for logging.
fn redact(text: &str, to: &EmailAddress) -> String {
    text.replace(to.as_str(), &format!("*@{}", to.domain()))
}

// ---------------------------------------------------------------------------------------------
// The transport choice and per-worker sessions

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
            SessionInner::File(dir) => write_eml(dir, bytes).await,
            SessionInner::Stub(s) => s.send(from, to, bytes),
        }
    }

    /// Whether the session still holds a live connection. An SMTP session whose connection
    /// was dropped (after a timeout, a network error or a 421) reconnects by itself on the
    /// next send, so dropping it and asking [`Transport::session`] for a new one is optional.
    pub fn is_usable(&self) -> bool {
        match &self.inner {
            SessionInner::Smtp(s) => s.conn.is_some(),
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

static FILE_COUNTER: AtomicU64 = AtomicU64::new(0);

/// Writes one `.eml`, named after the Message-ID (so a resend replaces the file), through a
/// temporary name and a rename so that a crash never leaves half a message under the final
/// name.
async fn write_eml(dir: &Path, bytes: &[u8]) -> Result<(), SendError> {
    let stem: String = match header_value(bytes, "Message-ID") {
        Some(mid) => mid
            .trim_matches(['<', '>'])
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_' | '@' | '+') {
                    c
                } else {
                    '_'
                }
            })
            .take(200)
            .collect(),
        None => String::new(),
    };
    let stem = if stem.is_empty() || stem.starts_with('.') {
        format!(
            "{}-{}-{}",
            chrono::Utc::now().format("%Y%m%dT%H%M%S%.f"),
            std::process::id(),
            FILE_COUNTER.fetch_add(1, Ordering::Relaxed)
        )
    } else {
        stem
    };
    let tmp = dir.join(format!(
        ".{stem}.{}.tmp",
        FILE_COUNTER.fetch_add(1, Ordering::Relaxed)
    ));
    let dest = dir.join(format!("{stem}.eml"));
    let io_err = |e: io::Error| SendError::Fatal {
        reason: format!("cannot write to the outbox {}: {e}", dir.display()),
    };
    let write = async {
        use tokio::io::AsyncWriteExt as _;
        let mut f = tokio::fs::File::create(&tmp).await?;
        f.write_all(bytes).await?;
        f.sync_all().await?;
        drop(f);
        tokio::fs::rename(&tmp, &dest).await
    };
    if let Err(e) = write.await {
        let _ = tokio::fs::remove_file(&tmp).await;
        return Err(io_err(e));
    }
    tracing::debug!(
        message_id = header_value(bytes, "Message-ID").unwrap_or("-"),
        "written to the outbox"
    );
    Ok(())
}

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
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
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

    fn send(&self, from: &EmailAddress, to: &EmailAddress, bytes: &[u8]) -> Result<(), SendError> {
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

#[cfg(test)]
mod tests;

#[cfg(test)]
mod dot_stuff_tests {
    use super::dot_stuff;

    #[test]
    fn lines_starting_with_a_dot_are_doubled_and_others_borrowed() {
        assert!(matches!(dot_stuff("a\r\nb"), std::borrow::Cow::Borrowed(_)));
        assert_eq!(dot_stuff(".x\r\n.\r\nok\r\n..y"), "..x\r\n..\r\nok\r\n...y");
        assert_eq!(dot_stuff("a.b\r\nc."), "a.b\r\nc.");
    }
}
