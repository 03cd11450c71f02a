//! Fetching a feed over HTTP(S): one client, hard limits, conditional GET.
//!
//! reqwest with rustls (the ring provider and webpki roots the SMTP client uses), gzip, a
//! whole-request timeout and a redirect limit. The size cap is enforced while the body
//! streams in (after decompression, so a small gzip bomb is caught as well), never after
//! buffering it. A 304 answer to `If-None-Match`/`If-Modified-Since` (RFC 9110 §13.1.1,
//! §13.1.3) is reported as [`Fetched::NotModified`] and costs no parsing.

use std::sync::Arc;
use std::time::Duration;

use reqwest::StatusCode;
use reqwest::header::{ETAG, IF_MODIFIED_SINCE, IF_NONE_MATCH, LAST_MODIFIED};

/// What a fetch may cost.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FetchLimits {
    /// The whole request, connect to last byte.
    pub timeout: Duration,
    /// The largest body read, after decompression.
    pub max_bytes: u64,
    /// Redirects followed.
    pub max_redirects: usize,
}

impl Default for FetchLimits {
    /// 30 s, 10 MB, 5 redirects.
    fn default() -> Self {
        Self {
            timeout: Duration::from_secs(30),
            max_bytes: 10 * 1024 * 1024,
            max_redirects: 5,
        }
    }
}

/// The validators of the last good answer, sent back on the next request.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Validators {
    pub etag: Option<String>,
    pub last_modified: Option<String>,
}

/// A fetch's answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fetched {
    /// 304: the feed is unchanged.
    NotModified,
    /// 200: the body, and the validators to send next time.
    Body {
        bytes: Vec<u8>,
        validators: Validators,
    },
}

/// Why a fetch failed, in words for `feeds list`.
#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    #[error("timed out after {0} s")]
    Timeout(u64),
    #[error("the feed is larger than the {0} MB limit")]
    TooLarge(u64),
    #[error("HTTP {0}")]
    Status(u16),
    #[error("more than {0} redirects")]
    Redirects(usize),
    #[error("cannot connect: {0}")]
    Connect(String),
    #[error("{0}")]
    Other(String),
}

/// The feed client; cheap to clone.
#[derive(Debug, Clone)]
pub struct Fetcher {
    client: reqwest::Client,
    limits: FetchLimits,
}

impl Fetcher {
    /// A client with these limits.
    pub fn new(limits: FetchLimits) -> Result<Self, FetchError> {
        let mut roots = rustls::RootCertStore::empty();
        roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let tls = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| FetchError::Other(format!("TLS setup: {e}")))?
            .with_root_certificates(roots)
            .with_no_client_auth();
        let client = reqwest::Client::builder()
            .tls_backend_preconfigured(tls)
            .gzip(true)
            .timeout(limits.timeout)
            .connect_timeout(limits.timeout.min(Duration::from_secs(10)))
            .redirect(reqwest::redirect::Policy::limited(limits.max_redirects))
            .user_agent(concat!(
                "dispatch/",
                env!("CARGO_PKG_VERSION"),
                " (feed poller)"
            ))
            .build()
            .map_err(|e| FetchError::Other(format!("HTTP client setup: {e}")))?;
        Ok(Self { client, limits })
    }

    /// GETs `url`, conditionally when `validators` has any.
    pub async fn fetch(&self, url: &str, validators: &Validators) -> Result<Fetched, FetchError> {
        let mut req = self.client.get(url);
        if let Some(etag) = &validators.etag {
            req = req.header(IF_NONE_MATCH, etag);
        }
        if let Some(lm) = &validators.last_modified {
            req = req.header(IF_MODIFIED_SINCE, lm);
        }
        let mut resp = req.send().await.map_err(|e| self.error(e))?;
        let status = resp.status();
        if status == StatusCode::NOT_MODIFIED {
            return Ok(Fetched::NotModified);
        }
        if !status.is_success() {
            return Err(FetchError::Status(status.as_u16()));
        }
        let header = |name| {
            resp.headers()
                .get(name)
                .and_then(|v: &reqwest::header::HeaderValue| v.to_str().ok())
                .map(str::to_owned)
        };
        let validators = Validators {
            etag: header(ETAG),
            last_modified: header(LAST_MODIFIED),
        };
        let cap = self.limits.max_bytes;
        let too_large = FetchError::TooLarge(cap / (1024 * 1024));
        if resp.content_length().is_some_and(|n| n > cap) {
            return Err(too_large);
        }
        let mut bytes = Vec::new();
        while let Some(chunk) = resp.chunk().await.map_err(|e| self.error(e))? {
            if bytes.len() as u64 + chunk.len() as u64 > cap {
                // Dropping the response closes the connection: the rest is never read.
                return Err(too_large);
            }
            bytes.extend_from_slice(&chunk);
        }
        Ok(Fetched::Body { bytes, validators })
    }

    fn error(&self, e: reqwest::Error) -> FetchError {
        if e.is_timeout() {
            FetchError::Timeout(self.limits.timeout.as_secs().max(1))
        } else if e.is_redirect() {
            FetchError::Redirects(self.limits.max_redirects)
        } else if e.is_connect() {
            FetchError::Connect(source_chain(e))
        } else {
            FetchError::Other(source_chain(e))
        }
    }
}

/// An error with its causes, `a: b: c`, without the URL reqwest puts in its own message
/// (a feed URL may carry a key in its query).
fn source_chain(e: reqwest::Error) -> String {
    let mut parts = Vec::new();
    let mut cur: Option<&dyn std::error::Error> = std::error::Error::source(&e);
    while let Some(err) = cur {
        parts.push(err.to_string());
        cur = err.source();
    }
    if parts.is_empty() {
        let e = e.without_url();
        return e.to_string();
    }
    parts.join(": ")
}
