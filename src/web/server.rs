//! The listener: axum's router served over hyper's HTTP/1 with limits a slow or hostile client
//! cannot get around.
//!
//! `axum::serve` accepts every connection it can and gives hyper no timer, so a client that
//! sends half a request line keeps its connection (and a file descriptor) forever: about a
//! thousand of them exhaust the unit's descriptor limit and the daemon answers nobody. Here:
//!
//! - at most [`ServeLimits::max_connections`] connections are served at once. The listener
//!   accepts only when a slot is free (a semaphore, as in tokio's mini-redis), so further
//!   clients wait in the kernel's listen backlog, costing no descriptor of ours;
//! - a client must send a request's headers within [`ServeLimits::header_timeout`]; the same
//!   timer closes a keep-alive connection that sits idle that long between requests;
//! - a request (a slowly sent body included) must be answered within
//!   [`ServeLimits::request_timeout`], else it gets 408 and the connection is closed;
//! - accept errors such as EMFILE pause the loop (briefly, growing to a second) instead of
//!   spinning, and are logged once per burst.

use std::convert::Infallible;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::ConnectInfo;
use axum::http::{Request, StatusCode, header};
use axum::response::{IntoResponse, Response};
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, watch};
use tokio::task::JoinSet;
use tokio::time::Instant;
use tower::ServiceExt as _;

/// The shortest and longest pause after a failed `accept`.
const ACCEPT_PAUSE: (Duration, Duration) = (Duration::from_millis(10), Duration::from_secs(1));

/// How often, at most, "every slot is busy" is logged while it keeps happening.
const BUSY_LOG_EVERY: Duration = Duration::from_secs(60);

/// Limits for one listener.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ServeLimits {
    /// Connections served at once; more wait in the kernel's listen backlog until one closes.
    /// 0 is taken as 1.
    pub max_connections: usize,
    /// How long a client may take to send a request's headers, and how long a keep-alive
    /// connection may sit idle between requests.
    pub header_timeout: Duration,
    /// How long a request may take from its headers to its answer, body included.
    pub request_timeout: Duration,
}

impl Default for ServeLimits {
    /// `[web]`'s defaults: 512 connections, 5 s for headers, 30 s for a request.
    fn default() -> Self {
        Self::from(&crate::config::Web::default())
    }
}

impl From<&crate::config::Web> for ServeLimits {
    fn from(web: &crate::config::Web) -> Self {
        Self {
            max_connections: web.max_connections as usize,
            header_timeout: Duration::from_secs(web.header_timeout_secs),
            request_timeout: Duration::from_secs(web.request_timeout_secs),
        }
    }
}

/// Serves `app` on `listener` until `shutdown` completes; then stops accepting, lets every
/// connection finish the request it is on, and returns.
pub(super) async fn run(
    listener: TcpListener,
    app: Router,
    limits: ServeLimits,
    shutdown: impl Future<Output = ()> + Send + 'static,
) {
    let slots = Arc::new(Semaphore::new(limits.max_connections.max(1)));
    let (stop_tx, stop_rx) = watch::channel(false);
    let mut connections = JoinSet::new();
    let mut shutdown = std::pin::pin!(shutdown);
    let mut accept_errors = AcceptErrors::default();
    let mut busy = BusyLog::default();
    loop {
        let slot = match Arc::clone(&slots).try_acquire_owned() {
            Ok(slot) => slot,
            Err(_) => {
                busy.every_slot_taken(limits.max_connections);
                tokio::select! {
                    slot = Arc::clone(&slots).acquire_owned() => match slot {
                        Ok(slot) => slot,
                        Err(_) => break, // the semaphore is never closed
                    },
                    () = &mut shutdown => break,
                }
            }
        };
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => {
                    accept_errors.recovered();
                    accepted
                }
                Err(e) => {
                    drop(slot);
                    if let Some(pause) = accept_errors.failed(&e) {
                        tokio::select! {
                            () = tokio::time::sleep(pause) => {}
                            () = &mut shutdown => break,
                        }
                    }
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        // Reap finished connections so the set does not grow with every one ever served.
        while connections.try_join_next().is_some() {}
        connections.spawn(connection(
            stream,
            peer,
            app.clone(),
            limits,
            stop_rx.clone(),
            slot,
        ));
    }
    // Closing the socket refuses new clients at once rather than leaving them in the backlog.
    drop(listener);
    let _ = stop_tx.send(true);
    while connections.join_next().await.is_some() {}
}

/// One connection, holding its slot until it closes.
async fn connection(
    stream: TcpStream,
    peer: SocketAddr,
    app: Router,
    limits: ServeLimits,
    mut stop: watch::Receiver<bool>,
    _slot: OwnedSemaphorePermit,
) {
    // Answers are written in one go; waiting for the client's delayed ACK only adds latency.
    let _ = stream.set_nodelay(true);
    let service = hyper::service::service_fn(move |req: Request<Incoming>| {
        let app = app.clone();
        async move {
            let mut req = req.map(axum::body::Body::new);
            // What `into_make_service_with_connect_info` would add: handlers read the peer.
            req.extensions_mut().insert(ConnectInfo(peer));
            let res = match tokio::time::timeout(limits.request_timeout, app.oneshot(req)).await {
                Ok(Ok(res)) => res,
                Ok(Err(never)) => match never {},
                Err(_) => too_slow(),
            };
            Ok::<_, Infallible>(res)
        }
    });
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_timeout);
    let mut conn = std::pin::pin!(builder.serve_connection(TokioIo::new(stream), service));
    let mut stopping = false;
    loop {
        tokio::select! {
            done = conn.as_mut() => {
                if let Err(e) = done {
                    // Timeouts, resets and garbage from clients: routine, not our failure.
                    tracing::debug!(error = %e, "connection closed");
                }
                break;
            }
            _ = stop.wait_for(|s| *s), if !stopping => {
                stopping = true;
                conn.as_mut().graceful_shutdown();
            }
        }
    }
}

/// 408 for a request that took longer than [`ServeLimits::request_timeout`]; the connection
/// is closed after it, since the rest of its body may still be on the way.
fn too_slow() -> Response {
    (
        StatusCode::REQUEST_TIMEOUT,
        [(header::CONNECTION, "close")],
        "request timed out\n",
    )
        .into_response()
}

/// Counts failed accepts and says how long to pause.
#[derive(Default)]
struct AcceptErrors {
    failures: u64,
    pause: Duration,
}

impl AcceptErrors {
    /// The pause after `e`, or `None` when `e` concerns only the one connection (a client
    /// that reset before we accepted), after which the next accept is fine.
    fn failed(&mut self, e: &io::Error) -> Option<Duration> {
        if matches!(
            e.kind(),
            io::ErrorKind::ConnectionAborted
                | io::ErrorKind::ConnectionReset
                | io::ErrorKind::ConnectionRefused
        ) {
            return None;
        }
        if self.failures == 0 {
            tracing::error!(
                error = %e,
                "cannot accept web connections; pausing and retrying (further failures are counted, not logged)"
            );
        }
        self.failures += 1;
        self.pause = (self.pause * 2).clamp(ACCEPT_PAUSE.0, ACCEPT_PAUSE.1);
        Some(self.pause)
    }

    /// An accept succeeded: ends the burst.
    fn recovered(&mut self) {
        if self.failures > 0 {
            tracing::warn!(failures = self.failures, "accepting web connections again");
            *self = Self::default();
        }
    }
}

/// Logs "every slot is busy" at most once a [`BUSY_LOG_EVERY`], with how often it happened.
#[derive(Default)]
struct BusyLog {
    last: Option<Instant>,
    since: u64,
}

impl BusyLog {
    fn every_slot_taken(&mut self, max_connections: usize) {
        self.since += 1;
        if self.last.is_none_or(|t| t.elapsed() >= BUSY_LOG_EVERY) {
            tracing::warn!(
                max_connections,
                times = self.since,
                "every web connection slot is busy; new clients wait in the listen backlog"
            );
            self.last = Some(Instant::now());
            self.since = 0;
        }
    }
}
