//! The web pages readers reach from their email, and two endpoints for operators.
//!
//! - `GET|POST /unsubscribe/{token}`: one-click unsubscribe (RFC 8058). GET only asks (link
//!   scanners prefetch URLs); POST unsubscribes at once, answers 200, never redirects.
//! - `GET|POST /preferences/{token}`: lists and topics.
//! - `GET|POST /subscribe`, `GET|POST /confirm/{token}`: sign-up with double opt-in (the GET
//!   shows a button; only the POST confirms).
//! - `GET /healthz`, `GET /metrics` (Prometheus text format).
//! - `/api/v1/…`: the CMS API ([`api`]), with bearer keys.
//!
//! Every bad, unknown or expired token gets the same plain 404 page as an unknown path. No
//! cookies, no JavaScript; the reader pages have no authentication (the token in the URL is
//! the only credential), the API has its keys.

use std::convert::Infallible;
use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use anyhow::Context as _;
use axum::Router;
use axum::extract::rejection::PathRejection;
use axum::extract::{ConnectInfo, DefaultBodyLimit, FromRequestParts, Path, State};
use axum::http::StatusCode;
use axum::http::header::{self, HeaderValue};
use axum::http::request::Parts;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use maud::Markup;

use crate::config::Config;
use crate::domain::Token;
use crate::store::Store;

pub mod api;
pub mod form;
mod ops;
mod pages;
mod ratelimit;
mod readers;
mod server;
mod signup;

pub use ops::render_metrics;
pub use ratelimit::RateLimits;
pub use server::ServeLimits;

/// The largest request body we read. Our forms are a few hundred bytes; RFC 8058 bodies are
/// one field.
const BODY_LIMIT: usize = 64 * 1024;

/// What the handlers share.
#[derive(Clone)]
pub struct AppState {
    pub store: Store,
    pub config: Arc<Config>,
    /// Sign-up rate limits (per client IP and per address). They are this node's: with
    /// several nodes behind a load balancer, a client may sign up that many times per node.
    pub limits: Arc<RateLimits>,
    /// This node's name (`[node] name`, else the host name), for `/healthz` and `/metrics`.
    pub node: Arc<str>,
}

impl AppState {
    /// State with the default rate limits (5 sign-ups a minute per IP, 3 an hour per address).
    pub fn new(store: Store, config: Arc<Config>) -> Self {
        let node = config.node.name_or_host().into();
        Self {
            store,
            config,
            limits: Arc::new(RateLimits::default()),
            node,
        }
    }

    /// The page chrome in `[publication] language`, for pages about no list.
    fn chrome(&self) -> pages::Chrome<'_> {
        self.chrome_in(None)
    }

    /// The page chrome in a list's language (its stored tag), else the publication's.
    fn chrome_in(&self, list_language: Option<&str>) -> pages::Chrome<'_> {
        let p = &self.config.publication;
        let lang = list_language
            .and_then(crate::i18n::Language::parse)
            .unwrap_or(p.language);
        pages::Chrome {
            publication: &p.name,
            site_url: p.url.as_str(),
            strings: self.config.catalogue.strings(lang),
            base: self.base(),
        }
    }

    /// `[web] public_url` without a trailing `/`.
    fn base(&self) -> &str {
        self.config.web.public_url.base()
    }

    fn page(&self, status: StatusCode, markup: Markup) -> Response {
        (status, markup).into_response()
    }

    fn not_found(&self) -> Response {
        self.page(StatusCode::NOT_FOUND, pages::not_found(&self.chrome()))
    }

    /// A 400 page saying `text_id` (a catalogue message), in `[publication] language`.
    fn bad_request(&self, text_id: &str) -> Response {
        self.page(
            StatusCode::BAD_REQUEST,
            pages::message(&self.chrome(), "page-check-form", text_id),
        )
    }

    /// Logs the cause (never shown to the reader) and answers 500.
    fn server_error(&self, what: &str, e: impl std::fmt::Display) -> Response {
        tracing::error!(error = %e, "{what}");
        self.page(
            StatusCode::INTERNAL_SERVER_ERROR,
            pages::message(&self.chrome(), "page-error-title", "page-error-text"),
        )
    }
}

/// The routes, with their limits and headers.
pub fn router(state: AppState) -> Router {
    Router::new()
        .route(
            "/unsubscribe/{token}",
            get(readers::unsubscribe_page).post(readers::unsubscribe_now),
        )
        .route(
            "/preferences/{token}",
            get(readers::preferences_page).post(readers::save_preferences),
        )
        .route("/subscribe", get(signup::form).post(signup::subscribe))
        .route(
            "/confirm/{token}",
            get(signup::confirm_page).post(signup::confirm),
        )
        .route("/healthz", get(ops::healthz))
        .route("/metrics", get(ops::metrics))
        // Its own body limit (1 MB, read by the API's extractor) and errors (problem+json).
        .nest("/api/v1", api::router(state.clone()))
        // The nested router's fallback does not see its own root with a slash.
        .route("/api/v1/", axum::routing::any(api::not_found))
        .fallback(fallback)
        .layer(DefaultBodyLimit::max(BODY_LIMIT))
        .layer(axum::middleware::map_response(common_headers))
        .with_state(state)
}

/// Serves [`router`] on `listener` with the default [`ServeLimits`] until `shutdown`
/// completes, then finishes the requests in flight. Handlers see the peer address through
/// `ConnectInfo<SocketAddr>`.
pub async fn serve(
    listener: tokio::net::TcpListener,
    state: AppState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    serve_with(listener, state, ServeLimits::default(), shutdown).await
}

/// [`serve`] with the given connection cap and timeouts.
pub async fn serve_with(
    listener: tokio::net::TcpListener,
    state: AppState,
    limits: ServeLimits,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let addr = listener
        .local_addr()
        .context("reading the web listener's address")?;
    tracing::info!(
        %addr,
        max_connections = limits.max_connections,
        header_timeout_ms = limits.header_timeout.as_millis() as u64,
        "web server listening"
    );
    server::run(listener, router(state), limits, shutdown).await;
    Ok(())
}

/// Serves any router (the console's) on `listener` with the same connection cap, header and
/// request timeouts as the reader pages, until `shutdown` completes.
pub async fn serve_router(
    listener: tokio::net::TcpListener,
    app: Router,
    limits: ServeLimits,
    shutdown: impl Future<Output = ()> + Send + 'static,
) {
    server::run(listener, app, limits, shutdown).await;
}

async fn fallback(State(st): State<AppState>) -> Response {
    st.not_found()
}

/// Headers for every answer: nothing is cached (pages reflect live state and URLs carry
/// tokens), the token never leaks through `Referer`, and the pages load nothing external.
async fn common_headers(mut res: Response) -> Response {
    set_common_headers(
        &mut res,
        "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
    );
    res
}

/// The headers every answer of ours carries (the reader pages' and the console's): nothing
/// cached, nothing framed, no sniffing, no referrer, not indexed; `csp` is the one that
/// differs between them.
pub(crate) fn set_common_headers(res: &mut Response, csp: &'static str) {
    let h = res.headers_mut();
    for (name, value) in [
        (header::CACHE_CONTROL, "no-store"),
        (header::REFERRER_POLICY, "no-referrer"),
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        (header::X_FRAME_OPTIONS, "DENY"),
        (header::CONTENT_SECURITY_POLICY, csp),
    ] {
        h.insert(name, HeaderValue::from_static(value));
    }
    h.insert("x-robots-tag", HeaderValue::from_static("noindex"));
}

/// A token from the path, if it has the right shape. Anything else (including a path that
/// does not decode) is treated like an unknown token.
fn token_of(path: Result<Path<String>, PathRejection>) -> Option<Token> {
    path.ok().and_then(|Path(raw)| Token::parse(&raw))
}

/// The client's IP address: the TCP peer, or, when `[web] client_ip_header` names a header
/// set by our reverse proxy, the rightmost address in it. Behind a proxy without that
/// setting, every client appears as the proxy.
pub(crate) struct ClientIp(pub IpAddr);

impl FromRequestParts<AppState> for ClientIp {
    type Rejection = Infallible;

    async fn from_request_parts(parts: &mut Parts, st: &AppState) -> Result<Self, Infallible> {
        Ok(Self(client_ip(
            parts,
            st.config.web.client_ip_header.as_deref(),
        )))
    }
}

/// The client's IP address of a request: the rightmost address in the header `via_header`
/// (set by our reverse proxy) when named and present, else the TCP peer.
pub fn client_ip(parts: &Parts, via_header: Option<&str>) -> IpAddr {
    let from_header = via_header.and_then(|name| {
        // The proxy appends the address it saw, so the rightmost entry is the one it
        // vouches for; anything to its left came from the client and may be forged.
        let last = parts.headers.get_all(name).iter().next_back()?;
        let entry = last.to_str().ok()?.rsplit(',').next()?.trim();
        entry
            .parse::<IpAddr>()
            .ok()
            .or_else(|| entry.parse::<SocketAddr>().ok().map(|s| s.ip()))
    });
    let peer = parts
        .extensions
        .get::<ConnectInfo<SocketAddr>>()
        .map(|ConnectInfo(a)| a.ip());
    from_header
        .or(peer)
        .unwrap_or(IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED))
}
