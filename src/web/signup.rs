//! Sign-up from the web (`/subscribe`) and double opt-in confirmation (`/confirm/{token}`).
//!
//! The answer to a sign-up never depends on whether the address was known: same status,
//! same page, and the confirmation mail is queued for the sender (signed, retried, kept across
//! restarts) so that not even the response time tells (an active address gets no mail).
//! Confirming takes a POST: `GET /confirm/{token}` only shows the button.

use axum::body::Bytes;
use axum::extract::rejection::PathRejection;
use axum::extract::{Path, Query, State};
use axum::http::header::CONTENT_TYPE;
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use serde::Deserialize;

use super::{AppState, ClientIp, form, pages, token_of};
use crate::domain::TokenPurpose;
use crate::domain::{CategorySet, EmailAddress};
use crate::store::{SignupOutcome, StoreError, WebSignup};

/// `GET /subscribe?list=slug`.
#[derive(Debug, Deserialize)]
pub(super) struct FormQuery {
    list: Option<String>,
}

/// `GET /subscribe?list=slug`: the sign-up form for one list.
pub(super) async fn form(State(st): State<AppState>, Query(q): Query<FormQuery>) -> Response {
    let Some(slug) = q.list else {
        return st.not_found();
    };
    match st.store.list_by_slug(&slug).await {
        Ok(l) => st.page(
            StatusCode::OK,
            pages::signup_form(
                &st.chrome_in(l.language.as_deref()),
                &l.slug,
                &l.name,
                &l.description,
                l.category_set().as_ref(),
            ),
        ),
        Err(StoreError::NotFound(_)) => st.not_found(),
        Err(e) => st.server_error("reading a list failed", e),
    }
}

/// `POST /subscribe`: fields `email`, `list` (slug), `categories` (repeated or
/// comma-separated; none = all).
pub(super) async fn subscribe(
    State(st): State<AppState>,
    ClientIp(ip): ClientIp,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if !st.limits.allow_ip(ip) {
        return too_many(&st);
    }
    let content_type = headers.get(CONTENT_TYPE).and_then(|v| v.to_str().ok());
    let Ok(fields) = form::parse(content_type, &body) else {
        return st.bad_request("page-form-unreadable");
    };
    let Ok(email) = EmailAddress::parse(fields.get("email").unwrap_or("")) else {
        return st.bad_request("page-bad-email");
    };
    let list = match st
        .store
        .list_by_slug(fields.get("list").unwrap_or(""))
        .await
    {
        Ok(l) => l,
        Err(StoreError::NotFound(_)) => return st.not_found(),
        Err(e) => return st.server_error("reading a list failed", e),
    };
    let mut wanted = Vec::new();
    for raw in fields.all("categories") {
        match CategorySet::parse_list(raw) {
            Ok(set) => wanted.extend(set.iter().cloned()),
            Err(_) => return st.bad_request("page-bad-topic"),
        }
    }
    let wanted = CategorySet::new(wanted);
    let categories = match list.category_set() {
        _ if wanted.is_empty() => None,
        Some(carried) => {
            if wanted.iter().any(|c| !carried.contains(c)) {
                return st.bad_request("page-topic-not-here");
            }
            // Every topic ticked means "all", so topics added later reach the reader too.
            (wanted.len() < carried.len()).then_some(wanted)
        }
        None => Some(wanted),
    };
    // Counted after validation so typos do not use up a reader's attempts.
    if !st.limits.allow_address(&email.canonical()) {
        return too_many(&st);
    }

    let ip_text = ip.to_string();
    let outcome = st
        .store
        .web_subscribe(&WebSignup {
            email: &email,
            list_id: list.id,
            categories,
            ip: &ip_text,
            // Our page asks for no name.
            name: None,
        })
        .await;
    match outcome {
        Ok(SignupOutcome::ConfirmationQueued) => {
            tracing::info!(list = %list.slug, domain = %email.domain(), "web sign-up awaiting confirmation");
        }
        Ok(o) => {
            tracing::info!(list = %list.slug, domain = %email.domain(), outcome = ?o, "web sign-up");
        }
        Err(e) => return st.server_error("recording a sign-up failed", e),
    }
    st.page(
        StatusCode::OK,
        pages::signup_done(
            &st.chrome_in(list.language.as_deref()),
            &list.name,
            list.double_opt_in,
        ),
    )
}

fn too_many(st: &AppState) -> Response {
    st.page(
        StatusCode::TOO_MANY_REQUESTS,
        pages::message(&st.chrome(), "page-too-many-title", "page-too-many-text"),
    )
}

/// `GET /confirm/{token}`: the page with the button; changes nothing. Unknown or expired
/// tokens get the 404 page.
pub(super) async fn confirm_page(
    State(st): State<AppState>,
    path: Result<Path<String>, PathRejection>,
) -> Response {
    let Some(token) = token_of(path) else {
        return st.not_found();
    };
    match st
        .store
        .token_target(&token, &[TokenPurpose::Confirm])
        .await
    {
        Ok(Some(t)) => st.page(
            StatusCode::OK,
            pages::confirm_ask(&st.chrome_in(t.list_language.as_deref()), &t.list_name),
        ),
        Ok(None) => st.not_found(),
        Err(e) => st.server_error("looking up a confirmation token failed", e),
    }
}

/// `POST /confirm/{token}`: activates the pending subscription and records the consent.
/// Idempotent; unknown or expired tokens get the 404 page.
pub(super) async fn confirm(
    State(st): State<AppState>,
    ClientIp(ip): ClientIp,
    path: Result<Path<String>, PathRejection>,
) -> Response {
    let Some(token) = token_of(path) else {
        return st.not_found();
    };
    match st.store.confirm_by_token(&token, &ip.to_string()).await {
        Ok(Some(c)) => {
            tracing::info!(list = %c.list_slug, domain = %c.email_domain, activated = c.activated, "sign-up confirmed");
            st.page(
                StatusCode::OK,
                pages::confirmed(&st.chrome_in(c.list_language.as_deref()), &c.list_name),
            )
        }
        Ok(None) => st.not_found(),
        Err(e) => st.server_error("confirming a sign-up failed", e),
    }
}
