//! The SMTP session with the relay (RFC 5321): connect, greeting, EHLO, STARTTLS (RFC 3207),
//! AUTH (RFC 4954), then one transaction per message, pipelined when offered (RFC 2920).

use std::io;
use std::str::FromStr as _;
use std::sync::Arc;
use std::time::Duration;

use lettre::Address;
use lettre::transport::smtp::authentication::{Credentials, Mechanism};
use lettre::transport::smtp::client::{AsyncSmtpConnection, AsyncTokioStream};
use lettre::transport::smtp::commands::{Data, Ehlo, Mail, Quit, Rcpt, Rset};
use lettre::transport::smtp::extension::{ClientId, Extension, MailBodyParameter, MailParameter};
use tokio::net::TcpStream;

use super::error::{Stage, classify};
use super::tls::{self, TlsSetup, tls_failure};
use super::{SendError, header_value};
use crate::config::{self, Security};
use crate::domain::EmailAddress;

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
    tls: TlsSetup,
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
        let tls = TlsSetup::from_config(cfg)?;
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
                tls,
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
        let stream: Box<dyn AsyncTokioStream> = match &i.tls {
            TlsSetup::Implicit(tls) => {
                Box::new(tls::wrap_implicit(tls, &i.host, i.port, tcp).await?)
            }
            TlsSetup::Starttls(_) | TlsSetup::None => Box::new(tcp),
        };
        let mut conn = AsyncSmtpConnection::connect_with_transport(stream, &i.hello)
            .await
            .map_err(|e| classify(Stage::Greeting, &e))?;
        if let TlsSetup::Starttls(params) = &i.tls {
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
    /// Whether the session holds a live connection (it reconnects on the next send if not).
    pub(super) fn is_connected(&self) -> bool {
        self.conn.is_some()
    }

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
/// Replaces the reader's full address in a server reply with `*@domain` for logging.
pub(super) fn redact(text: &str, to: &EmailAddress) -> String {
    text.replace(to.as_str(), &format!("*@{}", to.domain()))
}

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
