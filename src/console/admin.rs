//! The admins' users and API-keys pages: add a user (the one-time set-password link is shown
//! on the page), disable, reset; create an API key (shown once), revoke. The same store calls
//! as `dispatch users` and `dispatch api-keys`, each action audited.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use maud::{Markup, html};

use super::editorial::{csrf_field, page};
use super::{ClientIp, ConsoleState, Posted, Signed, pages};
use crate::domain::{ApiKey, DbTime, EmailAddress, Role, clean_text};
use crate::store::StoreError;

/// The role picker of the add-user and create-key forms.
fn role_select(id: &str) -> Markup {
    html! {
        label for=(id) { "Role" }
        select id=(id) name="role" {
            @for r in Role::ALL { option value=(r.as_str()) { (r) } }
        }
    }
}

/// A page with `note` (the outcome of an action) above the users.
async fn users_page(
    st: &ConsoleState,
    signed: &Signed,
    note: Option<Markup>,
    status: StatusCode,
) -> Response {
    let rows = match st.store.users().await {
        Ok(r) => r,
        Err(e) => return pages::server_error("reading users failed", e),
    };
    let mut res = page(
        signed,
        "Users",
        false,
        html! {
            h1 { "Users" }
            @if let Some(n) = note { (n) }
            table {
                thead { tr { th { "Address" } th { "Role" } th { "State" } th.hide-phone { "Added" } th { "Actions" } } }
                tbody {
                    @for u in &rows {
                        tr { td { (u.email) } td { (u.role) }
                             td { @if u.disabled_at.is_some() { "disabled" } @else if u.has_password { "active" } @else { "link sent" } }
                             td.hide-phone { (u.created_at) }
                             td {
                                 (row_action(signed, "/users/reset", ("email", &u.email), Style::Quiet, "Reset"))
                                 @if u.disabled_at.is_none() {
                                     " "
                                     (row_action(signed, "/users/disable", ("email", &u.email), Style::Danger, "Disable"))
                                 }
                             } }
                    }
                }
            }
            form.card method="post" action="/users/add" {
                h2 { "Add a user" }
                (csrf_field(signed))
                div.row {
                    div { label for="email" { "Email address" } input #email type="email" name="email" required; }
                    div { (role_select("role")) }
                    button type="submit" { "Add user" }
                }
                p.muted { "The page then shows a link, valid 24 hours and once, where they set their password. Reset gives a new one and signs them out." }
            }
        },
    );
    *res.status_mut() = status;
    res
}

/// `GET /users` (admin).
pub(super) async fn users(State(st): State<ConsoleState>, signed: Signed) -> Response {
    users_page(&st, &signed, None, StatusCode::OK).await
}

fn link_note(email: &EmailAddress, what: &str, url: &str) -> Markup {
    html! {
        div.note role="status" {
            p { (email) ": " (what) ". Send them this link (valid 24 hours, once); it is not shown again:" }
            p { code { (url) } }
        }
    }
}

fn err_note(text: &str) -> Markup {
    html! { p.err role="alert" { (text) } }
}

/// `POST /users/{add|disable|reset}` (admin).
pub(super) async fn user_action(
    State(st): State<ConsoleState>,
    signed: Signed,
    ClientIp(ip): ClientIp,
    Path(action): Path<String>,
    Posted(f): Posted,
) -> Response {
    let raw = f.get("email").unwrap_or("");
    let email = match EmailAddress::parse(raw) {
        Ok(e) => e,
        Err(e) => {
            return users_page(
                &st,
                &signed,
                Some(err_note(&format!("Email address: {e}"))),
                StatusCode::UNPROCESSABLE_ENTITY,
            )
            .await;
        }
    };
    let subject = format!("user:{email}");
    let actor = signed.user.email.clone();
    match action.as_str() {
        "add" => {
            let role = match Role::parse(f.get("role").unwrap_or("")) {
                Ok(r) => r,
                Err(e) => {
                    return users_page(
                        &st,
                        &signed,
                        Some(err_note(&format!("Role: {e}"))),
                        StatusCode::UNPROCESSABLE_ENTITY,
                    )
                    .await;
                }
            };
            let (url, hash, expires) = super::setup_link(st.base());
            match st.store.create_user(&email, role, &hash, expires).await {
                Ok(_) => {
                    st.audit(&actor, ip, "user.add", &subject, role.as_str())
                        .await;
                    users_page(
                        &st,
                        &signed,
                        Some(link_note(&email, &format!("added as {role}"), &url)),
                        StatusCode::OK,
                    )
                    .await
                }
                Err(StoreError::Conflict(e)) => {
                    users_page(&st, &signed, Some(err_note(&e)), StatusCode::CONFLICT).await
                }
                Err(e) => pages::server_error("adding a console user failed", e),
            }
        }
        "disable" => {
            if signed.user.email.eq_ignore_ascii_case(&email.canonical()) {
                return users_page(
                    &st,
                    &signed,
                    Some(err_note("You cannot disable yourself; ask another admin.")),
                    StatusCode::CONFLICT,
                )
                .await;
            }
            match st.store.disable_user(&email).await {
                Ok(true) => {
                    st.audit(&actor, ip, "user.disable", &subject, "").await;
                    let note =
                        html! { p.note role="status" { (email) ": disabled and signed out." } };
                    users_page(&st, &signed, Some(note), StatusCode::OK).await
                }
                Ok(false) => {
                    users_page(
                        &st,
                        &signed,
                        Some(err_note("No enabled user has that address.")),
                        StatusCode::NOT_FOUND,
                    )
                    .await
                }
                Err(e) => pages::server_error("disabling a console user failed", e),
            }
        }
        "reset" => {
            let (url, hash, expires) = super::setup_link(st.base());
            match st.store.reset_user(&email, &hash, expires).await {
                Ok(true) => {
                    st.audit(&actor, ip, "user.reset", &subject, "").await;
                    users_page(
                        &st,
                        &signed,
                        Some(link_note(&email, "password cleared and signed out", &url)),
                        StatusCode::OK,
                    )
                    .await
                }
                Ok(false) => {
                    users_page(
                        &st,
                        &signed,
                        Some(err_note("No user has that address.")),
                        StatusCode::NOT_FOUND,
                    )
                    .await
                }
                Err(e) => pages::server_error("resetting a console user failed", e),
            }
        }
        _ => pages::status_page(
            StatusCode::NOT_FOUND,
            "Not found",
            "There is no such action.",
        ),
    }
}

async fn keys_page(
    st: &ConsoleState,
    signed: &Signed,
    note: Option<Markup>,
    status: StatusCode,
) -> Response {
    let keys = match st.store.api_keys().await {
        Ok(k) => k,
        Err(e) => return pages::server_error("reading API keys failed", e),
    };
    let mut res = page(
        signed,
        "API keys",
        false,
        html! {
            h1 { "API keys" }
            @if let Some(n) = note { (n) }
            table {
                thead { tr { th { "Name" } th { "Role" } th { "Created" } th { "Revoked" } th { "Actions" } } }
                tbody {
                    @for k in &keys {
                        tr { td { (k.name) } td { (k.role) } td { (k.created_at) }
                             td { (k.revoked_at.map_or_else(|| "–".to_owned(), |t: DbTime| t.to_string())) }
                             td {
                                 @if k.revoked_at.is_none() {
                                     (row_action(signed, "/api-keys/revoke", ("name", &k.name), Style::Danger, "Revoke"))
                                 }
                             } }
                    }
                }
            }
            form.card method="post" action="/api-keys/create" {
                h2 { "Create a key" }
                (csrf_field(signed))
                div.row {
                    div { label for="name" { "Who uses it" } input #name type="text" name="name" maxlength="64" required; }
                    div { (role_select("key-role")) }
                    button type="submit" { "Create key" }
                }
                p.muted { "The key is shown once; only its hash is stored." }
            }
        },
    );
    *res.status_mut() = status;
    res
}

/// `GET /api-keys` (admin).
pub(super) async fn api_keys(State(st): State<ConsoleState>, signed: Signed) -> Response {
    keys_page(&st, &signed, None, StatusCode::OK).await
}

/// `POST /api-keys/{create|revoke}` (admin).
pub(super) async fn api_key_action(
    State(st): State<ConsoleState>,
    signed: Signed,
    ClientIp(ip): ClientIp,
    Path(action): Path<String>,
    Posted(f): Posted,
) -> Response {
    let name = f.get("name").unwrap_or("").trim();
    let actor = signed.user.email.clone();
    match action.as_str() {
        "create" => {
            // The CLI's rule for `--name`: one clean line of 1–64 characters.
            let clean = clean_text(name, 64);
            if clean.is_empty() || clean != name {
                return keys_page(
                    &st,
                    &signed,
                    Some(err_note(
                        "Who uses it: 1–64 characters on one line, without control characters.",
                    )),
                    StatusCode::UNPROCESSABLE_ENTITY,
                )
                .await;
            }
            let role = match Role::parse(f.get("role").unwrap_or("")) {
                Ok(r) => r,
                Err(e) => {
                    return keys_page(
                        &st,
                        &signed,
                        Some(err_note(&format!("Role: {e}"))),
                        StatusCode::UNPROCESSABLE_ENTITY,
                    )
                    .await;
                }
            };
            let key = ApiKey::generate();
            match st.store.create_api_key(&clean, role, &key).await {
                Ok(_) => {
                    st.audit(
                        &actor,
                        ip,
                        "api_key.create",
                        &format!("api_key:{clean}"),
                        role.as_str(),
                    )
                    .await;
                    let note = html! {
                        div.note role="status" {
                            p { "Key " (clean) " (" (role) ") created. It is shown only now; store it in the CMS:" }
                            p { code { (key.expose()) } }
                        }
                    };
                    keys_page(&st, &signed, Some(note), StatusCode::OK).await
                }
                Err(StoreError::Conflict(e)) => {
                    keys_page(&st, &signed, Some(err_note(&e)), StatusCode::CONFLICT).await
                }
                Err(e) => pages::server_error("creating an API key failed", e),
            }
        }
        "revoke" => match st.store.revoke_api_key(name).await {
            Ok(true) => {
                st.audit(&actor, ip, "api_key.revoke", &format!("api_key:{name}"), "")
                    .await;
                let note = html! { p.note role="status" { "Key " (name) " revoked; it stopped working now." } };
                keys_page(&st, &signed, Some(note), StatusCode::OK).await
            }
            Ok(false) => {
                keys_page(
                    &st,
                    &signed,
                    Some(err_note("No active key has that name.")),
                    StatusCode::NOT_FOUND,
                )
                .await
            }
            Err(e) => pages::server_error("revoking an API key failed", e),
        },
        _ => pages::status_page(
            StatusCode::NOT_FOUND,
            "Not found",
            "There is no such action.",
        ),
    }
}

/// How a row's action button looks: a quiet one, or one that warns.
#[derive(Clone, Copy)]
enum Style {
    Quiet,
    Danger,
}

/// One row's action: a small form posting `field` (the row's key) to `action`, whose button
/// says `label` and, for screen readers, which row it acts on.
fn row_action(
    signed: &Signed,
    action: &str,
    (name, value): (&str, &str),
    style: Style,
    label: &str,
) -> Markup {
    let class = match style {
        Style::Quiet => "quiet",
        Style::Danger => "danger",
    };
    html! {
        form.inline method="post" action=(action) {
            (csrf_field(signed))
            input type="hidden" name=(name) value=(value);
            button class=(class) type="submit" aria-label={ (label) " " (value) } { (label) }
        }
    }
}
