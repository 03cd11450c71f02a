//! Pages opened with a reader's token: unsubscribe (RFC 8058) and preferences.

use axum::body::Bytes;
use axum::extract::rejection::PathRejection;
use axum::extract::{Path, State};
use axum::http::header::CONTENT_TYPE;
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;

use super::{AppState, ClientIp, form, pages, token_of};
use crate::domain::{Category, CategorySet, SubscriptionStatus, Token};
use crate::store::PreferenceChange;
use crate::store::tokens::READER_PURPOSES;

impl AppState {
    fn preferences_url(&self, token: &Token) -> String {
        format!("{}/preferences/{}", self.base(), token.as_str())
    }
}

/// `GET /unsubscribe/{token}`: a page with the buttons; changes nothing, because mail
/// software and link scanners fetch URLs found in messages (RFC 8058 §1).
pub(super) async fn unsubscribe_page(
    State(st): State<AppState>,
    path: Result<Path<String>, PathRejection>,
) -> Response {
    let Some(token) = token_of(path) else {
        return st.not_found();
    };
    match st.store.token_target(&token, READER_PURPOSES).await {
        Ok(Some(t)) => st.page(
            StatusCode::OK,
            pages::unsubscribe_ask(
                &st.chrome_in(t.list_language.as_deref()),
                &t.list_name,
                t.status == SubscriptionStatus::Unsubscribed,
                &st.preferences_url(&token),
            ),
        ),
        Ok(None) => st.not_found(),
        Err(e) => st.server_error("looking up an unsubscribe token failed", e),
    }
}

/// `POST /unsubscribe/{token}`: unsubscribes at once and answers 200 with a short page.
///
/// RFC 8058 §3.1: the receiver POSTs `List-Unsubscribe=One-Click`, as `multipart/form-data`
/// (SHOULD) or `application/x-www-form-urlencoded` (MAY), with no cookies or credentials,
/// and the sender "MUST NOT return an HTTPS redirect". The POST to the token's URL is itself
/// the request, so the body is only read for our own page's `scope=all`; an empty or
/// unreadable body still unsubscribes from the token's list. Repeating it is harmless.
pub(super) async fn unsubscribe_now(
    State(st): State<AppState>,
    path: Result<Path<String>, PathRejection>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let Some(token) = token_of(path) else {
        return st.not_found();
    };
    let content_type = headers.get(CONTENT_TYPE).and_then(|v| v.to_str().ok());
    let fields = form::parse(content_type, &body).unwrap_or_default();
    let all = fields.get("scope") == Some("all");
    match st.store.unsubscribe_by_token(&token, all).await {
        Ok(Some(u)) => {
            tracing::info!(
                list = %u.target.list_slug,
                domain = %u.target.email_domain(),
                all,
                changed = u.changed,
                one_click = fields.get("List-Unsubscribe") == Some("One-Click"),
                "unsubscribed through the web"
            );
            st.page(
                StatusCode::OK,
                pages::unsubscribed(
                    &st.chrome_in(u.target.list_language.as_deref()),
                    &u.target.list_name,
                    all,
                    &st.preferences_url(&token),
                ),
            )
        }
        Ok(None) => st.not_found(),
        Err(e) => st.server_error("unsubscribing failed", e),
    }
}

/// `GET /preferences/{token}`.
pub(super) async fn preferences_page(
    State(st): State<AppState>,
    path: Result<Path<String>, PathRejection>,
) -> Response {
    let Some(token) = token_of(path) else {
        return st.not_found();
    };
    match st.store.preferences(&token).await {
        Ok(Some(p)) => st.page(
            StatusCode::OK,
            pages::preferences(
                &st.chrome_in(p.target.list_language.as_deref()),
                &p.subscriptions,
                &st.config.digest.category_order,
                false,
                None,
            ),
        ),
        Ok(None) => st.not_found(),
        Err(e) => st.server_error("reading preferences failed", e),
    }
}

/// `POST /preferences/{token}`: our own form. Fields: `list` (each list shown), `subscribed`
/// (each list ticked), `cat.<list id>` (each topic ticked), `action` (`save` or
/// `unsubscribe-all`). Ticking every topic stores "all" (NULL), so topics added to the list
/// later reach the reader too.
pub(super) async fn save_preferences(
    State(st): State<AppState>,
    ClientIp(ip): ClientIp,
    path: Result<Path<String>, PathRejection>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let Some(token) = token_of(path) else {
        return st.not_found();
    };
    let current = match st.store.preferences(&token).await {
        Ok(Some(p)) => p,
        Ok(None) => return st.not_found(),
        Err(e) => return st.server_error("reading preferences failed", e),
    };
    let content_type = headers.get(CONTENT_TYPE).and_then(|v| v.to_str().ok());
    let Ok(fields) = form::parse(content_type, &body) else {
        return st.bad_request("page-form-unreadable");
    };
    let configured = &st.config.digest.category_order;
    // The page in the language of the list whose link the reader followed.
    let chrome = st.chrome_in(current.target.list_language.as_deref());

    if fields.get("action") == Some("unsubscribe-all") {
        return match st.store.unsubscribe_by_token(&token, true).await {
            Ok(Some(u)) => {
                tracing::info!(domain = %u.target.email_domain(), changed = u.changed, "unsubscribed from everything through preferences");
                st.page(
                    StatusCode::OK,
                    pages::unsubscribed(
                        &chrome,
                        &u.target.list_name,
                        true,
                        &st.preferences_url(&token),
                    ),
                )
            }
            Ok(None) => st.not_found(),
            Err(e) => st.server_error("unsubscribing failed", e),
        };
    }

    let shown: Vec<&str> = fields.all("list").collect();
    let ticked: Vec<&str> = fields.all("subscribed").collect();
    let mut changes = Vec::new();
    for row in &current.subscriptions {
        let id = row.list_id.to_string();
        if !shown.contains(&id.as_str()) {
            continue;
        }
        let subscribed = ticked.contains(&id.as_str());
        let offered = pages::offered_categories(row, configured);
        let chosen = CategorySet::new(
            fields
                .all(&format!("cat.{id}"))
                .filter_map(|c| Category::parse(c).ok())
                .filter_map(|c| offered.find(&c).cloned())
                .collect(),
        );
        let categories = if offered.len() <= 1 || chosen.len() == offered.len() {
            None
        } else if chosen.is_empty() {
            if subscribed {
                let msg = chrome.strings.format(
                    "page-tick-a-topic",
                    &[("list", crate::i18n::Arg::Str(&row.name))],
                );
                return st.page(
                    StatusCode::BAD_REQUEST,
                    pages::preferences(
                        &chrome,
                        &current.subscriptions,
                        configured,
                        false,
                        Some(&msg),
                    ),
                );
            }
            None
        } else {
            Some(chosen)
        };
        // Leaving the box unticked on a sign-up that was never confirmed leaves it alone:
        // only an active subscription is ended by unticking.
        if !subscribed && row.status != SubscriptionStatus::Active {
            continue;
        }
        changes.push(PreferenceChange {
            list_id: row.list_id,
            subscribed,
            categories,
        });
    }

    match st
        .store
        .save_preferences(&token, &changes, &ip.to_string())
        .await
    {
        Ok(Some(p)) => {
            tracing::info!(domain = %p.target.email_domain(), lists = changes.len(), "preferences saved");
            st.page(
                StatusCode::OK,
                pages::preferences(&chrome, &p.subscriptions, configured, true, None),
            )
        }
        Ok(None) => st.not_found(),
        Err(e) => st.server_error("saving preferences failed", e),
    }
}
