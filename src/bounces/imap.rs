//! The `[bounces.imap]` poller: the daemon reads new messages of one folder over IMAP with
//! TLS (RFC 9051; implicit TLS per RFC 8314 §3.2, or STARTTLS), ingests each, and moves it to
//! `processed` or `unidentified`.
//!
//! It never deletes a message and never touches another folder. A message is moved with
//! `UID MOVE` (RFC 6851); without MOVE, it is copied, flagged `\Deleted` and removed with
//! `UID EXPUNGE` of that UID alone (RFC 4315), so no other message flagged `\Deleted` by a
//! mail client is expunged; a server with neither gets the copy and a `$DispatchDone`
//! keyword instead, and flagged messages are not read again. A message is moved only after
//! its events are committed; one that cannot be recorded stays where it is for the next poll.

use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context as _, Result, anyhow, bail};
use async_imap::Client;
use futures_util::{StreamExt as _, TryStreamExt as _};
use tokio::net::TcpStream;
use tokio::sync::watch;
use tokio_rustls::client::TlsStream;

use super::ingest::{Folder, Settings, ingest};
use crate::config::{Config, Imap, ImapSecurity};
use crate::domain::BounceSource;
use crate::store::Store;

/// The folder understood messages go to.
pub const PROCESSED: &str = "processed";
/// The folder messages that name no reader of ours go to.
pub const UNIDENTIFIED: &str = "unidentified";
/// The keyword that marks a message done on a server without MOVE or UIDPLUS.
const DONE_KEYWORD: &str = "$DispatchDone";
/// Most messages one poll handles; the rest wait for the next.
const PER_POLL: usize = 500;
/// A poll that takes longer than this is abandoned (and retried next time).
const POLL_TIMEOUT: Duration = Duration::from_secs(600);
/// Connecting, TLS and login together.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(30);

/// What one poll did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PollReport {
    pub processed: u64,
    pub unidentified: u64,
}

type Session = async_imap::Session<TlsStream<TcpStream>>;

/// Polls every `[bounces.imap] poll_secs` until `shutdown` turns true. Failures are logged
/// and tried again at the next poll. (`dispatch run` polls through [`poll_logged`] under a
/// named lease instead, so that of several nodes one polls at a time.)
pub async fn run(store: Store, config: Arc<Config>, mut shutdown: watch::Receiver<bool>) {
    let cfg = &config.bounces.imap;
    let every = Duration::from_secs(cfg.poll_secs);
    let host = cfg.host.clone().unwrap_or_default();
    tracing::info!(%host, folder = %cfg.folder, poll_secs = cfg.poll_secs, "polling the bounce mailbox");
    loop {
        // Stopping mid-poll is safe: a message is moved only after its events are committed,
        // and one committed but not yet moved is a repeat next time (recorded once).
        tokio::select! {
            _ = poll_logged(store.clone(), Arc::clone(&config)) => {}
            _ = shutdown.wait_for(|s| *s) => return,
        };
        tokio::select! {
            _ = tokio::time::sleep(every) => {}
            _ = shutdown.wait_for(|s| *s) => return,
        }
    }
}

/// One poll of the mailbox, bounded in time, its outcome logged. Dropping it mid-poll is
/// safe (see [`run`]).
pub async fn poll_logged(store: Store, config: Arc<Config>) {
    let cfg = &config.bounces.imap;
    let settings = Settings::from_config(&config);
    let host = cfg.host.clone().unwrap_or_default();
    match tokio::time::timeout(POLL_TIMEOUT, poll_once(&store, &settings, cfg)).await {
        Ok(Ok(r)) if r.processed + r.unidentified > 0 => tracing::info!(
            processed = r.processed,
            unidentified = r.unidentified,
            "bounce mailbox polled"
        ),
        Ok(Ok(_)) => {}
        Ok(Err(e)) => {
            tracing::warn!(%host, error = %format!("{e:#}"), "polling the bounce mailbox failed; trying again at the next poll");
        }
        Err(_) => {
            tracing::warn!(%host, "polling the bounce mailbox timed out; trying again at the next poll");
        }
    }
}

/// One poll: connect, log in, file every new message of the folder, log out.
pub async fn poll_once(store: &Store, settings: &Settings, cfg: &Imap) -> Result<PollReport> {
    let mut session = tokio::time::timeout(CONNECT_TIMEOUT, connect(cfg))
        .await
        .map_err(|_| anyhow!("[bounces.imap] connecting and logging in took over 30 s"))??;
    let result = file_messages(&mut session, store, settings, cfg).await;
    // Logging out politely is not worth failing the poll over.
    let _ = session.logout().await;
    result
}

async fn file_messages(
    session: &mut Session,
    store: &Store,
    settings: &Settings,
    cfg: &Imap,
) -> Result<PollReport> {
    let caps = session.capabilities().await.context("IMAP CAPABILITY")?;
    let can_move = caps.has_str("MOVE");
    let uidplus = caps.has_str("UIDPLUS");
    for name in [PROCESSED, UNIDENTIFIED] {
        // Fails when it exists already, which is what we want.
        let _ = session.create(name).await;
    }
    session
        .select(&cfg.folder)
        .await
        .with_context(|| format!("[bounces.imap] folder {:?}: SELECT", cfg.folder))?;
    let query = if can_move || uidplus {
        "ALL".to_owned()
    } else {
        format!("UNKEYWORD {DONE_KEYWORD}")
    };
    let mut uids: Vec<u32> = session
        .uid_search(&query)
        .await
        .context("IMAP UID SEARCH")?
        .into_iter()
        .collect();
    uids.sort_unstable();
    let mut report = PollReport::default();
    for uid in uids.into_iter().take(PER_POLL) {
        let set = uid.to_string();
        let body: Option<Vec<u8>> = {
            let mut fetches = session
                .uid_fetch(&set, "BODY.PEEK[]")
                .await
                .context("IMAP UID FETCH")?;
            let mut body = None;
            while let Some(f) = fetches.next().await {
                let f = f.context("IMAP UID FETCH")?;
                if let Some(b) = f.body() {
                    body = Some(b.to_vec());
                }
            }
            body
        };
        // Gone meanwhile (another client moved it): nothing to do.
        let Some(body) = body else { continue };
        let done = ingest(store, settings, &body, BounceSource::Imap, None)
            .await
            .context("recording a message from the bounce mailbox")?;
        let target = match done.folder {
            Folder::Processed => {
                report.processed += 1;
                PROCESSED
            }
            Folder::Unidentified => {
                report.unidentified += 1;
                UNIDENTIFIED
            }
        };
        if can_move {
            session
                .uid_mv(&set, target)
                .await
                .with_context(|| format!("IMAP UID MOVE to {target}"))?;
        } else if uidplus {
            session
                .uid_copy(&set, target)
                .await
                .with_context(|| format!("IMAP UID COPY to {target}"))?;
            session
                .uid_store(&set, "+FLAGS.SILENT (\\Deleted)")
                .await
                .context("IMAP UID STORE")?
                .try_collect::<Vec<_>>()
                .await
                .context("IMAP UID STORE")?;
            // Only this UID: other messages a client flagged \Deleted stay.
            session
                .uid_expunge(&set)
                .await
                .context("IMAP UID EXPUNGE")?
                .try_collect::<Vec<_>>()
                .await
                .context("IMAP UID EXPUNGE")?;
        } else {
            session
                .uid_copy(&set, target)
                .await
                .with_context(|| format!("IMAP UID COPY to {target}"))?;
            session
                .uid_store(&set, format!("+FLAGS.SILENT ({DONE_KEYWORD} \\Seen)"))
                .await
                .context("IMAP UID STORE")?
                .try_collect::<Vec<_>>()
                .await
                .context("IMAP UID STORE")?;
        }
    }
    Ok(report)
}

async fn connect(cfg: &Imap) -> Result<Session> {
    let host = cfg
        .host
        .as_deref()
        .context("[bounces.imap] host is not set")?;
    let (Some(user), Some(password)) = (&cfg.username, &cfg.password) else {
        bail!("[bounces.imap] username and password are not set");
    };
    let tls = tls_connector(cfg)?;
    let name = rustls::pki_types::ServerName::try_from(host.to_owned())
        .map_err(|e| anyhow!("[bounces.imap] host {host:?} is not a TLS server name: {e}"))?;
    let tcp = TcpStream::connect((host, cfg.port))
        .await
        .with_context(|| format!("connecting to {host}:{}", cfg.port))?;
    let _ = tcp.set_nodelay(true);
    let stream = match cfg.security {
        ImapSecurity::Tls => tls
            .connect(name, tcp)
            .await
            .with_context(|| format!("TLS handshake with {host}:{}", cfg.port))?,
        ImapSecurity::Starttls => {
            let mut plain = Client::new(tcp);
            plain
                .read_response()
                .await
                .context("reading the IMAP greeting")?
                .context("the IMAP server closed the connection before its greeting")?;
            // RFC 9051 §6.2.1: no fallback to plain text; a refusal ends the poll.
            plain
                .run_command_and_check_ok("STARTTLS", None)
                .await
                .context("IMAP STARTTLS refused")?;
            tls.connect(name, plain.into_inner())
                .await
                .with_context(|| format!("TLS handshake (STARTTLS) with {host}:{}", cfg.port))?
        }
    };
    let mut client = Client::new(stream);
    if cfg.security == ImapSecurity::Tls {
        client
            .read_response()
            .await
            .context("reading the IMAP greeting")?
            .context("the IMAP server closed the connection before its greeting")?;
    }
    client
        .login(user, password.expose())
        .await
        .map_err(|(e, _)| anyhow!("IMAP LOGIN as {user:?} refused: {e}"))
}

/// The webpki roots plus `[bounces.imap] ca_file`.
fn tls_connector(cfg: &Imap) -> Result<tokio_rustls::TlsConnector> {
    use rustls::pki_types::CertificateDer;
    use rustls::pki_types::pem::PemObject as _;
    let mut roots = rustls::RootCertStore::empty();
    roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    if let Some(path) = &cfg.ca_file {
        let pem = std::fs::read(path)
            .with_context(|| format!("[bounces.imap] ca_file {}: cannot read", path.display()))?;
        let mut n = 0;
        for cert in CertificateDer::pem_slice_iter(&pem) {
            let cert =
                cert.with_context(|| format!("[bounces.imap] ca_file {}", path.display()))?;
            roots
                .add(cert)
                .with_context(|| format!("[bounces.imap] ca_file {}", path.display()))?;
            n += 1;
        }
        if n == 0 {
            bail!(
                "[bounces.imap] ca_file {}: no certificate in it",
                path.display()
            );
        }
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let tls = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .context("TLS setup")?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(tokio_rustls::TlsConnector::from(Arc::new(tls)))
}
