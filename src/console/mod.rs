//! The newsroom console: editors send breaking news from a browser, admins run lists.
//!
//! Served by `dispatch run` on its own listener (`[console] bind`), with the reader pages'
//! server code (connection cap, header and request timeouts). Server-rendered Maud pages
//! that work without JavaScript; nothing is loaded from elsewhere.
//!
//! Every request passes [`guard`], the one place where the rules are enforced:
//! - who may reach a path: [`access`] (public, editor, admin); signed out, a page redirects
//!   to `/login` and a POST is 403; a role that may not is 403;
//! - every POST carries the form field `csrf`, equal to the session's token (or, on the
//!   public sign-in forms, to the `dispatch_csrf` cookie): without it, 403;
//! - sessions: a random 128-bit id in an `HttpOnly; SameSite=Strict` cookie (`Secure` when
//!   `[console] public_url` is https), stored as its SHA-256, ended after 12 hours idle.
//!
//! Sign-ins are limited per account and per IP ([`limits`]); wrong password and unknown
//! address get the same answer. Everything that sends, stops or changes something is written
//! to the audit log (`dispatch audit`).

use std::net::IpAddr;
use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::extract::{FromRequestParts, Request, State};
use axum::http::header::{self, HeaderMap, HeaderValue};
use axum::http::request::Parts;
use axum::http::{Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};

use crate::config::Config;
use crate::domain::{DbTime, Role, Token};
use crate::store::{NewAudit, Store, UserRow};
use crate::web::ServeLimits;
use crate::web::form::{self, Fields};

mod admin;
mod auth;
mod editorial;
pub mod limits;
mod lists;
mod pages;
mod schedule;
mod subscribers_io;
pub mod password;

use limits::SignInLimits;

/// The session cookie's name.
pub const SESSION_COOKIE: &str = "dispatch_session";
/// The cookie that carries the CSRF token of the forms shown before signing in.
pub const PRE_CSRF_COOKIE: &str = "dispatch_csrf";
/// A session unused this long is over.
pub const IDLE: chrono::Duration = chrono::Duration::hours(12);
/// How long a set-password link works.
pub const SETUP_VALID: chrono::Duration = chrono::Duration::hours(24);
/// The largest POST body read (a subscriber CSV upload is the big one).
const BODY_LIMIT: usize = 2 * 1024 * 1024;

/// A fresh set-password link under `base` (`[console] public_url`), valid for
/// [`SETUP_VALID`]: the URL to hand the user once, the token's hash to store, its expiry.
/// `dispatch users add|reset` and the users page both make theirs here.
pub fn setup_link(base: &str) -> (String, Vec<u8>, DbTime) {
    let token = Token::generate();
    let url = format!("{base}/set-password/{}", token.as_str());
    let expires = DbTime::from(chrono::Utc::now() + SETUP_VALID);
    (url, token.hash(), expires)
}

/// What the console's handlers share.
#[derive(Clone)]
pub struct ConsoleState {
    pub store: Store,
    pub config: Arc<Config>,
    /// Sign-in limits, this node's.
    pub limits: Arc<SignInLimits>,
    /// Turns `true` when the daemon stops: live-progress streams end then, or the server's
    /// graceful shutdown would wait for them forever.
    pub stopping: Option<tokio::sync::watch::Receiver<bool>>,
}

impl ConsoleState {
    /// State with fresh sign-in limits.
    pub fn new(store: Store, config: Arc<Config>) -> Self {
        Self {
            store,
            config,
            limits: Arc::new(SignInLimits::default()),
            stopping: None,
        }
    }

    /// Ends the live-progress streams when `stopping` turns `true`.
    pub fn with_shutdown(mut self, stopping: tokio::sync::watch::Receiver<bool>) -> Self {
        self.stopping = Some(stopping);
        self
    }

    /// `[console] public_url` without a trailing `/`.
    pub fn base(&self) -> &str {
        self.config.console.public_url.base()
    }

    /// Writes an audit entry; a failure is logged, never shown (the action itself is done).
    async fn audit(&self, actor: &str, ip: IpAddr, action: &str, subject: &str, detail: &str) {
        let entry = NewAudit {
            actor,
            action,
            subject,
            detail,
            ip: Some(ip.to_string()),
        };
        if let Err(e) = self.store.audit(&entry).await {
            tracing::error!(error = %e, action, "writing the audit log failed");
        }
    }
}

/// Who may reach a path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Anyone: sign-in, set-password, the stylesheet and script.
    Public,
    /// A signed-in user whose role allows this one.
    Signed(Role),
}

/// Paths for admins only (and everything under them).
pub const ADMIN_PATHS: &[&str] = &["/lists", "/subscribers", "/users", "/api-keys", "/audit"];
/// Paths anyone may reach.
pub const PUBLIC_PATHS: &[&str] = &["/login", "/set-password", "/assets"];

/// The role rule: who may reach `path`. Everything not public or admin is for editors.
pub fn access(path: &str) -> Access {
    let under = |prefix: &str| {
        path == prefix
            || path
                .strip_prefix(prefix)
                .is_some_and(|rest| rest.starts_with('/'))
    };
    if PUBLIC_PATHS.iter().any(|p| under(p)) {
        Access::Public
    } else if ADMIN_PATHS.iter().any(|p| under(p)) {
        Access::Signed(Role::Admin)
    } else {
        Access::Signed(Role::Editor)
    }
}

/// The console's routes behind [`guard`].
pub fn router(state: ConsoleState) -> Router {
    Router::new()
        .route("/", get(editorial::home))
        .route("/login", get(auth::login_page).post(auth::login))
        .route("/logout", post(auth::logout))
        .route(
            "/set-password/{token}",
            get(auth::set_password_page).post(auth::set_password),
        )
        .route("/assets/console.css", get(pages::css))
        .route("/assets/console.js", get(editorial::script))
        .route("/articles", get(editorial::articles))
        .route(
            "/articles/{id}/breaking",
            get(editorial::breaking_page).post(editorial::send_breaking),
        )
        .route("/schedule", get(schedule::schedule))
        .route("/editions", get(editorial::editions))
        .route("/editions/{id}", get(editorial::edition_page))
        .route("/editions/{id}/events", get(editorial::edition_events))
        .route("/editions/{id}/{action}", post(editorial::edition_action))
        .route("/audit", get(editorial::audit))
        .route("/users", get(admin::users))
        .route("/users/{action}", post(admin::user_action))
        .route("/subscribers", get(editorial::subscribers))
        .route("/subscribers/import", post(subscribers_io::import))
        .route("/subscribers/export", get(subscribers_io::export))
        .route("/subscribers/{action}", post(editorial::subscriber_action))
        .route("/lists", get(editorial::lists))
        .route("/lists/new", get(lists::new_page).post(lists::create))
        .route("/lists/next-sends", get(lists::next_sends_fragment))
        .route(
            "/lists/{slug}/edit",
            get(lists::edit_page).post(lists::update),
        )
        .route("/api-keys", get(admin::api_keys))
        .route("/api-keys/{action}", post(admin::api_key_action))
        .fallback(not_found)
        .layer(axum::middleware::from_fn_with_state(state.clone(), guard))
        .layer(axum::middleware::map_response(common_headers))
        .with_state(state)
}

/// Serves the console on `listener` until `shutdown` completes.
pub async fn serve(
    listener: tokio::net::TcpListener,
    state: ConsoleState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) {
    crate::web::serve_router(listener, router(state), ServeLimits::default(), shutdown).await;
}

/// The signed-in user of a request (set by [`guard`]).
#[derive(Debug, Clone)]
pub(crate) struct Signed {
    pub user: UserRow,
    pub csrf: String,
    pub session_hash: Vec<u8>,
}

/// The client's IP (set by [`guard`]).
#[derive(Debug, Clone, Copy)]
pub(crate) struct ClientIp(pub IpAddr);

/// A POST's form fields, read and CSRF-checked by [`guard`].
#[derive(Debug, Clone, Default)]
pub(crate) struct Posted(pub Fields);

/// The CSRF token of the public forms (set by [`guard`] on public paths).
#[derive(Debug, Clone)]
pub(crate) struct PreCsrf(pub String);

macro_rules! from_extension {
    ($t:ty, $missing:expr) => {
        impl<S: Send + Sync> FromRequestParts<S> for $t {
            type Rejection = Response;
            async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Response> {
                parts
                    .extensions
                    .get::<$t>()
                    .cloned()
                    .ok_or_else(|| $missing)
            }
        }
    };
}
// Each is present whenever the guard let the request through to a handler that takes it;
// the rejections are for a route wired without the guard.
from_extension!(Signed, StatusCode::FORBIDDEN.into_response());
from_extension!(ClientIp, StatusCode::INTERNAL_SERVER_ERROR.into_response());
from_extension!(Posted, StatusCode::FORBIDDEN.into_response());
from_extension!(PreCsrf, StatusCode::INTERNAL_SERVER_ERROR.into_response());

/// The value of cookie `name` in the request's `Cookie` headers (RFC 6265 §5.4).
fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(n, _)| *n == name)
        .map(|(_, v)| v.trim())
}

/// A `Set-Cookie` value for the console's cookies.
fn set_cookie(config: &Config, name: &str, value: &str, remove: bool) -> HeaderValue {
    let secure = if config.console.https() {
        "; Secure"
    } else {
        ""
    };
    let age = if remove { "; Max-Age=0" } else { "" };
    let text = format!("{name}={value}; Path=/; HttpOnly; SameSite=Strict{secure}{age}");
    // Invariant: names are our constants and values are base64url tokens.
    HeaderValue::from_str(&text).unwrap_or_else(|_| HeaderValue::from_static(""))
}

/// Whether two tokens are equal, compared by digest so the comparison's time says nothing
/// about how much of a guess was right.
fn same_token(a: &str, b: &str) -> bool {
    use sha2::Digest as _;
    sha2::Sha256::digest(a.as_bytes()) == sha2::Sha256::digest(b.as_bytes())
}

/// The cut-off for idle sessions: those last seen before it are over.
fn idle_since() -> DbTime {
    DbTime::from(chrono::Utc::now() - IDLE)
}

/// The rules every request passes: session, role, CSRF. See the module docs.
async fn guard(State(st): State<ConsoleState>, req: Request, next: Next) -> Response {
    let (mut parts, body) = req.into_parts();
    let path = parts.uri.path().to_owned();
    let ip = crate::web::client_ip(&parts, st.config.console.client_ip_header.as_deref());
    parts.extensions.insert(ClientIp(ip));
    let session_token = cookie(&parts.headers, SESSION_COOKIE).and_then(Token::parse);
    let session = match &session_token {
        Some(t) => match st.store.session(&t.hash(), idle_since()).await {
            Ok(s) => s,
            Err(e) => return pages::server_error("reading a console session failed", e),
        },
        None => None,
    };
    let access = access(&path);
    let mut new_pre_csrf = None;
    match access {
        Access::Signed(needed) => {
            let Some(s) = &session else {
                if parts.method == Method::GET || parts.method == Method::HEAD {
                    return Redirect::to("/login").into_response();
                }
                return pages::forbidden("Sign in first.");
            };
            if !s.user.role.allows(needed) {
                tracing::info!(role = %s.user.role, path, "console: refused by role");
                return pages::forbidden(&format!(
                    "This page is for {needed}s; you are signed in as an {}.",
                    s.user.role
                ));
            }
        }
        Access::Public => {
            let pre = match cookie(&parts.headers, PRE_CSRF_COOKIE).and_then(Token::parse) {
                Some(t) => t.as_str().to_owned(),
                None => {
                    let t = Token::generate().as_str().to_owned();
                    new_pre_csrf = Some(t.clone());
                    t
                }
            };
            parts.extensions.insert(PreCsrf(pre));
        }
    }
    let body = if parts.method == Method::POST {
        let Ok(bytes) = axum::body::to_bytes(body, BODY_LIMIT).await else {
            return pages::status_page(
                StatusCode::PAYLOAD_TOO_LARGE,
                "Too large",
                "The form is larger than the console accepts (2 MB).",
            );
        };
        let content_type = parts
            .headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok());
        let fields = match form::parse(content_type, &bytes) {
            Ok(f) => f,
            Err(e) if e.is_encoding() => {
                return pages::status_page(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    "Not UTF-8",
                    "The uploaded file is not UTF-8 text, so names in it would be garbled. \
                     Save it as CSV UTF-8 (in a spreadsheet: \"CSV UTF-8\" under Save As) and \
                     upload it again. Nothing was imported.",
                );
            }
            Err(_) => {
                return pages::status_page(
                    StatusCode::BAD_REQUEST,
                    "Bad form",
                    "The form could not be read; reload the page and try again.",
                );
            }
        };
        let sent = fields.get("csrf").unwrap_or("");
        let ok = match (&access, &session) {
            (Access::Signed(_), Some(s)) => same_token(sent, &s.csrf),
            (Access::Public, _) => parts
                .extensions
                .get::<PreCsrf>()
                .is_some_and(|p| new_pre_csrf.is_none() && same_token(sent, &p.0)),
            (Access::Signed(_), None) => false,
        };
        if !ok || sent.is_empty() {
            tracing::info!(path, "console: POST without a valid CSRF token");
            return pages::forbidden(
                "This form has expired or did not come from the console. Reload the page and try again.",
            );
        }
        parts.extensions.insert(Posted(fields));
        Body::from(bytes)
    } else {
        body
    };
    if let (Some(s), Some(t)) = (session, session_token) {
        parts.extensions.insert(Signed {
            user: s.user,
            csrf: s.csrf,
            session_hash: t.hash(),
        });
    }
    let mut res = next.run(Request::from_parts(parts, body)).await;
    if let Some(t) = new_pre_csrf {
        res.headers_mut().append(
            header::SET_COOKIE,
            set_cookie(&st.config, PRE_CSRF_COOKIE, &t, false),
        );
    }
    res
}

async fn not_found() -> Response {
    pages::status_page(
        StatusCode::NOT_FOUND,
        "Not found",
        "There is no such page in the console.",
    )
}

/// The common headers ([`crate::web::set_common_headers`]) with the console's policy:
/// scripts only our own, connections (live progress) only back to us.
async fn common_headers(mut res: Response) -> Response {
    crate::web::set_common_headers(
        &mut res,
        "default-src 'none'; style-src 'self' 'unsafe-inline'; script-src 'self'; connect-src 'self'; img-src 'self' data: https:; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
    );
    res
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_role_rule_covers_every_path() {
        assert_eq!(access("/login"), Access::Public);
        assert_eq!(access("/set-password/abc"), Access::Public);
        assert_eq!(access("/"), Access::Signed(Role::Editor));
        assert_eq!(access("/articles"), Access::Signed(Role::Editor));
        assert_eq!(access("/editions/3/pause"), Access::Signed(Role::Editor));
        assert_eq!(access("/subscribers"), Access::Signed(Role::Admin));
        assert_eq!(access("/users/1"), Access::Signed(Role::Admin));
        // A prefix is a whole path segment: "/listsfoo" is not "/lists".
        assert_eq!(access("/listsfoo"), Access::Signed(Role::Editor));
        assert_eq!(access("/loginx"), Access::Signed(Role::Editor));
    }

    #[test]
    fn cookies_are_read_by_name() {
        let mut h = HeaderMap::new();
        h.insert(
            header::COOKIE,
            HeaderValue::from_static("a=1; dispatch_session=xyz; b=2"),
        );
        assert_eq!(cookie(&h, SESSION_COOKIE), Some("xyz"));
        assert_eq!(cookie(&h, "c"), None);
    }
}
