//! TLS towards the relay: STARTTLS parameters for lettre (RFC 3207), the rustls client for
//! implicit TLS (RFC 8314 §3.3), the extra CA of `[smtp] ca_file`, and errors that say how to
//! fix a certificate.

use std::io;
use std::net::SocketAddr;
use std::path::Path;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use lettre::transport::smtp::client::{AsyncTokioStream, Certificate, TlsParameters};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;

use super::SendError;
use crate::config::{self, Security};

/// How connections to the relay are secured, prepared once per connector.
pub(super) enum TlsSetup {
    /// Plain text (`[smtp] security = "none"`).
    None,
    /// Upgrade after the greeting; lettre does the handshake.
    Starttls(TlsParameters),
    /// TLS from the first byte; we wrap the stream before the greeting.
    Implicit(tokio_rustls::TlsConnector),
}

impl TlsSetup {
    /// Prepares TLS as `[smtp] security` asks, with the webpki roots plus the certificates of
    /// `[smtp] ca_file`. Fails with [`SendError::Fatal`] naming the file when it cannot be used.
    pub(super) fn from_config(cfg: &config::Smtp) -> Result<Self, SendError> {
        let fatal = |reason: String| SendError::Fatal { reason };
        let ca_pem =
            match &cfg.ca_file {
                Some(p) => Some(std::fs::read(p).map_err(|e| {
                    fatal(format!("[smtp] ca_file {}: cannot read: {e}", p.display()))
                })?),
                None => None,
            };
        let ca_name = cfg.ca_file.as_deref().map(Path::display);
        Ok(match cfg.security {
            Security::Starttls => {
                let mut b = TlsParameters::builder(cfg.host.clone());
                if let Some(pem) = &ca_pem {
                    let cert = Certificate::from_pem(pem).map_err(|e| {
                        fatal(format!(
                            "[smtp] ca_file {}: not a PEM certificate: {e}",
                            ca_name
                                .as_ref()
                                .map(ToString::to_string)
                                .unwrap_or_default()
                        ))
                    })?;
                    b = b.add_root_certificate(cert);
                }
                let params = b
                    .build_rustls()
                    .map_err(|e| fatal(format!("[smtp] TLS setup: {e}")))?;
                Self::Starttls(params)
            }
            Security::Tls => Self::Implicit(implicit_tls_connector(
                ca_pem.as_deref(),
                cfg.ca_file.as_deref(),
            )?),
            Security::None => {
                if cfg.username.is_some() {
                    tracing::warn!(
                        host = %cfg.host,
                        "[smtp] security = \"none\" with a username: the password crosses the network in clear text"
                    );
                }
                Self::None
            }
        })
    }
}

/// Does the implicit TLS handshake (RFC 8314 §3.3) with `host:port` on `tcp`, before any SMTP.
pub(super) async fn wrap_implicit(
    tls: &tokio_rustls::TlsConnector,
    host: &str,
    port: u16,
    tcp: TcpStream,
) -> Result<ImplicitTls, SendError> {
    let name =
        rustls::pki_types::ServerName::try_from(host.to_owned()).map_err(|e| SendError::Fatal {
            reason: format!("[smtp] host {host:?} is not a TLS server name: {e}"),
        })?;
    let s = tls.connect(name, tcp).await.map_err(|e| SendError::Fatal {
        reason: tls_failure(&format!("TLS handshake with {host}:{port}"), &e.to_string()),
    })?;
    Ok(ImplicitTls(Box::new(s)))
}

/// for the certificate errors an operator can fix, says how.
pub(super) fn tls_failure(what: &str, err: &str) -> String {
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

/// A TLS stream lettre can use as an already-connected transport.
#[derive(Debug)]
pub(super) struct ImplicitTls(Box<tokio_rustls::client::TlsStream<TcpStream>>);

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
