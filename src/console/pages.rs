//! The console's Maud pages: one stylesheet of our own, no external resources, a layout that
//! works on a desktop and a phone. Maud escapes every interpolated value.

use axum::http::StatusCode;
use axum::http::header::CONTENT_TYPE;
use axum::response::{IntoResponse, Response};
use maud::{DOCTYPE, Markup, html};

use crate::domain::Role;
use crate::store::UserRow;

const CSS: &str = r#"
*{box-sizing:border-box}
body{margin:0;background:#f4f5f7;color:#1f1f1f;font:16px/1.5 system-ui,-apple-system,"Segoe UI",Roboto,Arial,sans-serif}
header{background:#1f2937;color:#fff;padding:.5rem 1rem;display:flex;flex-wrap:wrap;gap:.25rem 1rem;align-items:center}
header a{color:#fff;text-decoration:none;padding:.5rem .25rem;display:inline-block}
header a:hover,header a:focus{text-decoration:underline}
header .brand{font-weight:bold;margin-right:auto}
header form{margin:0}
header button{background:none;border:1px solid #9ca3af;color:#fff;padding:.35rem .75rem;width:auto}
main{max-width:64rem;margin:0 auto;padding:1rem}
h1{font-size:1.5rem;margin:.5rem 0 1rem}
a{color:#0b57d0}
table{border-collapse:collapse;width:100%;background:#fff}
th,td{text-align:left;padding:.5rem;border-bottom:1px solid #e5e7eb;vertical-align:top}
th{background:#f9fafb}
.card{background:#fff;border-radius:8px;padding:1rem;margin:0 0 1rem;box-shadow:0 1px 2px rgba(0,0,0,.08)}
.narrow{max-width:26rem;margin:2rem auto}
.muted{color:#4b5563}
.note{background:#e8f0fe;border-radius:6px;padding:.75rem 1rem}
.err{background:#fce8e6;border-radius:6px;padding:.75rem 1rem}
label{display:block;font-weight:bold;margin:.75rem 0 .25rem}
label.check{display:flex;gap:.5rem;align-items:center;font-weight:normal}
input[type=text],input[type=email],input[type=password],input[type=search],input[type=file],textarea,select{width:100%;padding:.6rem;border:1px solid #6b7280;border-radius:6px;font:inherit;background:#fff;color:inherit}
button{padding:.6rem 1rem;border:0;border-radius:6px;background:#0b57d0;color:#fff;font:inherit;font-weight:bold;cursor:pointer;margin-top:1rem}
button.danger{background:#b3261e}
button.quiet{background:#fff;color:#0b57d0;border:1px solid #0b57d0}
.row{display:flex;flex-wrap:wrap;gap:.5rem 1rem;align-items:flex-end}
.row>*{flex:1 1 10rem}
.row>button{flex:0 0 auto}
iframe{width:100%;height:28rem;border:1px solid #d1d5db;border-radius:6px;background:#fff}
pre{white-space:pre-wrap;background:#f9fafb;padding:.75rem;border-radius:6px;overflow:auto}
form.inline{display:inline}form.inline button{margin-top:0;padding:.35rem .75rem}
ol.times{margin:0;padding-left:1.25rem}
caption{text-align:left;padding:.5rem 0}
.progress dt{font-weight:bold}.progress dd{margin:0 0 .5rem}
@media (max-width:40rem){th,td{padding:.4rem .3rem;font-size:.95rem}.hide-phone{display:none}}
"#;

/// `GET /assets/console.css`.
pub(super) async fn css() -> Response {
    ([(CONTENT_TYPE, "text/css; charset=utf-8")], CSS).into_response()
}

/// The document around `content`; with a user, the navigation for their role and logout.
pub(super) fn layout(
    title: &str,
    signed: Option<(&UserRow, &str)>,
    script: bool,
    content: Markup,
) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width,initial-scale=1";
                meta name="robots" content="noindex";
                title { (title) " · dispatch console" }
                link rel="stylesheet" href="/assets/console.css";
                @if script { script src="/assets/console.js" defer {} }
            }
            body {
                header {
                    a.brand href="/" { "dispatch console" }
                    @if let Some((user, csrf)) = signed {
                        nav aria-label="Main" {
                            a href="/articles" { "Articles" } " "
                            a href="/editions" { "Editions" } " "
                            a href="/schedule" { "Schedule" } " "
                            @if user.role.allows(Role::Admin) {
                                a href="/lists" { "Lists" } " "
                                a href="/subscribers" { "Subscribers" } " "
                                a href="/users" { "Users" } " "
                                a href="/api-keys" { "API keys" } " "
                                a href="/audit" { "Audit" }
                            }
                        }
                        form method="post" action="/logout" {
                            input type="hidden" name="csrf" value=(csrf);
                            button type="submit" { "Sign out " span.hide-phone { (user.email) } }
                        }
                    }
                }
                main { (content) }
            }
        }
    }
}

/// A page with a title and a sentence, at `status`.
pub(super) fn status_page(status: StatusCode, title: &str, text: &str) -> Response {
    let body = layout(
        title,
        None,
        false,
        html! {
            div.card.narrow {
                h1 { (title) }
                p { (text) }
                p { a href="/" { "Back to the console" } }
            }
        },
    );
    (status, body).into_response()
}

/// 403 with the reason.
pub(super) fn forbidden(text: &str) -> Response {
    status_page(StatusCode::FORBIDDEN, "Not allowed", text)
}

/// Logs the cause (never shown) and answers 500.
pub(super) fn server_error(what: &str, e: impl std::fmt::Display) -> Response {
    tracing::error!(error = %e, "{what}");
    status_page(
        StatusCode::INTERNAL_SERVER_ERROR,
        "Something went wrong",
        "Nothing was changed. Try again in a minute; the server log has the details.",
    )
}

/// The sign-in form, with an error when the last try failed.
pub(super) fn login(csrf: &str, error: Option<&str>) -> Markup {
    layout(
        "Sign in",
        None,
        false,
        html! {
            div.card.narrow {
                h1 { "Sign in" }
                @if let Some(e) = error { p.err role="alert" { (e) } }
                form method="post" action="/login" {
                    input type="hidden" name="csrf" value=(csrf);
                    label for="email" { "Email address" }
                    input #email type="email" name="email" autocomplete="username" required;
                    label for="password" { "Password" }
                    input #password type="password" name="password" autocomplete="current-password" required;
                    button type="submit" { "Sign in" }
                }
            }
        },
    )
}

/// The set-password form of a live link.
pub(super) fn set_password(csrf: &str, email: &str, error: Option<&str>) -> Markup {
    layout(
        "Set your password",
        None,
        false,
        html! {
            div.card.narrow {
                h1 { "Set your password" }
                p.muted { "For " (email) ". At least 12 characters; a few words make a good one." }
                @if let Some(e) = error { p.err role="alert" { (e) } }
                form method="post" {
                    input type="hidden" name="csrf" value=(csrf);
                    label for="password" { "New password" }
                    input #password type="password" name="password" autocomplete="new-password" minlength="12" required;
                    label for="repeat" { "The same again" }
                    input #repeat type="password" name="repeat" autocomplete="new-password" minlength="12" required;
                    button type="submit" { "Set password" }
                }
            }
        },
    )
}
