//! Signing in and out, and setting a password from a one-time link.

use std::time::Instant;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::http::header;
use axum::response::{IntoResponse, Redirect, Response};

use super::{
    ClientIp, ConsoleState, Posted, PreCsrf, SESSION_COOKIE, Signed, idle_since, pages, password,
    set_cookie,
};
use crate::domain::{EmailAddress, Token};

/// The one answer to a failed sign-in, whatever failed (RFC-free, but the rule of the issue:
/// nobody learns which addresses have accounts).
const WRONG: &str = "That address and password do not match an account.";

/// `GET /login`.
pub(super) async fn login_page(
    State(_): State<ConsoleState>,
    signed: Option<axum::Extension<Signed>>,
    PreCsrf(csrf): PreCsrf,
) -> Response {
    if signed.is_some() {
        return Redirect::to("/").into_response();
    }
    pages::login(&csrf, None).into_response()
}

/// `POST /login`: 303 to `/` with a session cookie, 401 with the form again, or 429 when
/// the account or the IP has failed too often lately.
pub(super) async fn login(
    State(st): State<ConsoleState>,
    ClientIp(ip): ClientIp,
    PreCsrf(csrf): PreCsrf,
    Posted(fields): Posted,
) -> Response {
    let typed = fields.get("email").unwrap_or("").trim().to_owned();
    let pass = fields.get("password").unwrap_or("").to_owned();
    if !st.limits.allowed(ip, &typed, Instant::now()) {
        tracing::warn!(%ip, "console sign-in refused: too many failures");
        return (
            StatusCode::TOO_MANY_REQUESTS,
            [(header::RETRY_AFTER, "900")],
            pages::login(
                &csrf,
                Some("Too many failed sign-ins. Wait 15 minutes and try again."),
            ),
        )
            .into_response();
    }
    let login = match EmailAddress::parse(&typed) {
        Ok(email) => match st.store.user_login(&email).await {
            Ok(found) => found,
            Err(e) => return pages::server_error("reading a console user failed", e),
        },
        Err(_) => None,
    };
    let stored = login
        .as_ref()
        .filter(|l| l.user.disabled_at.is_none())
        .and_then(|l| l.password_hash.clone());
    let check_pass = pass.clone();
    let ok = tokio::task::spawn_blocking(move || match stored {
        Some(hash) => password::verify(&hash, &check_pass),
        None => {
            password::verify_nothing(&check_pass);
            false
        }
    })
    .await
    .unwrap_or(false);
    let (Some(login), true) = (login, ok) else {
        st.limits.failed(ip, &typed, Instant::now());
        tracing::info!(%ip, "console sign-in failed");
        return (StatusCode::UNAUTHORIZED, pages::login(&csrf, Some(WRONG))).into_response();
    };
    st.limits.succeeded(&typed);
    let session = Token::generate();
    let session_csrf = Token::generate();
    if let Err(e) = st
        .store
        .create_session(&session.hash(), login.user.id, session_csrf.as_str())
        .await
    {
        return pages::server_error("storing a console session failed", e);
    }
    st.audit(&login.user.email, ip, "session.sign_in", "session", "")
        .await;
    tracing::info!(role = %login.user.role, "console sign-in");
    let mut res = Redirect::to("/").into_response();
    res.headers_mut().append(
        header::SET_COOKIE,
        set_cookie(&st.config, SESSION_COOKIE, session.as_str(), false),
    );
    res
}

/// `POST /logout`: ends the session and clears the cookie.
pub(super) async fn logout(State(st): State<ConsoleState>, signed: Signed, _: Posted) -> Response {
    if let Err(e) = st
        .store
        .end_session(&signed.session_hash, idle_since())
        .await
    {
        return pages::server_error("ending a console session failed", e);
    }
    let mut res = Redirect::to("/login").into_response();
    res.headers_mut().append(
        header::SET_COOKIE,
        set_cookie(&st.config, SESSION_COOKIE, "", true),
    );
    res
}

fn dead_link() -> Response {
    pages::status_page(
        StatusCode::NOT_FOUND,
        "This link does not work",
        "It was used already, has expired (links last 24 hours), or was replaced by a newer one. Ask an admin for a new link (dispatch users reset).",
    )
}

/// `GET /set-password/{token}`.
pub(super) async fn set_password_page(
    State(st): State<ConsoleState>,
    Path(raw): Path<String>,
    PreCsrf(csrf): PreCsrf,
) -> Response {
    let Some(token) = Token::parse(&raw) else {
        return dead_link();
    };
    match st.store.user_by_setup(&token.hash()).await {
        Ok(Some(user)) => pages::set_password(&csrf, &user.email, None).into_response(),
        Ok(None) => dead_link(),
        Err(e) => pages::server_error("reading a set-password link failed", e),
    }
}

/// `POST /set-password/{token}`: checks the rules, stores the Argon2id hash, uses the link.
pub(super) async fn set_password(
    State(st): State<ConsoleState>,
    Path(raw): Path<String>,
    ClientIp(ip): ClientIp,
    PreCsrf(csrf): PreCsrf,
    Posted(fields): Posted,
) -> Response {
    let Some(token) = Token::parse(&raw) else {
        return dead_link();
    };
    let user = match st.store.user_by_setup(&token.hash()).await {
        Ok(Some(user)) => user,
        Ok(None) => return dead_link(),
        Err(e) => return pages::server_error("reading a set-password link failed", e),
    };
    let pass = fields.get("password").unwrap_or("").to_owned();
    let repeat = fields.get("repeat").unwrap_or("");
    if let Err(e) = password::check(&pass, repeat, &user.email) {
        return (
            StatusCode::UNPROCESSABLE_ENTITY,
            pages::set_password(&csrf, &user.email, Some(&e.to_string())),
        )
            .into_response();
    }
    let hashed = match tokio::task::spawn_blocking(move || password::hash(&pass)).await {
        Ok(Ok(h)) => h,
        Ok(Err(e)) => return pages::server_error("hashing a password failed", e),
        Err(e) => return pages::server_error("hashing a password failed", e),
    };
    match st.store.set_password(&token.hash(), &hashed).await {
        Ok(Some(user)) => {
            st.audit(
                &user.email,
                ip,
                "user.set_password",
                &format!("user:{}", user.email),
                "",
            )
            .await;
            pages::status_page(
                StatusCode::OK,
                "Password set",
                "You can sign in now with your address and the new password.",
            )
        }
        Ok(None) => dead_link(),
        Err(e) => pages::server_error("storing a password failed", e),
    }
}
