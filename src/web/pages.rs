//! The Maud pages: one small stylesheet inline, no JavaScript, no external resources, large
//! touch targets, and the email's colours (light and dark).
//!
//! Interpolated values are HTML-escaped by Maud. Pages never show a reader's address, nor
//! echo a token except in links to the reader's own pages.

use maud::{DOCTYPE, Markup, PreEscaped, html};

use crate::domain::{Category, CategorySet, SubscriptionStatus};
use crate::store::PreferenceRow;

const CSS: &str = r#"
body{margin:0;background:#eef0f3;color:#1f1f1f;font:17px/1.5 system-ui,-apple-system,"Segoe UI",Roboto,Arial,sans-serif}
main{box-sizing:border-box;max-width:34rem;min-height:100vh;margin:0 auto;padding:1.25rem;background:#fff}
@media (min-width:36rem){main{min-height:0;margin:2rem auto;padding:2rem;border-radius:8px}}
h1{font-size:1.5rem;line-height:1.25;margin:.5rem 0 1rem}
a{color:#0b57d0}
.pub{margin:0;font-weight:bold}.pub a{color:#b3261e;text-decoration:none}
.muted{color:#5f6368;font-size:.95rem}
.note{background:#e8f0fe;border-radius:6px;padding:.75rem 1rem}
.err{background:#fce8e6}
form{margin:1.25rem 0}
button{display:block;width:100%;padding:.85rem 1rem;border:0;border-radius:6px;background:#0b57d0;color:#fff;font:inherit;font-weight:bold;cursor:pointer}
button.danger{background:#b3261e}
button.quiet{background:none;color:#0b57d0;border:1px solid #0b57d0}
fieldset{border:1px solid #d5d8dc;border-radius:6px;margin:0 0 1rem;padding:.5rem 1rem}
legend{font-weight:bold;padding:0 .25rem}
label{display:flex;gap:.6rem;align-items:center;min-height:2.75rem}
label.field{display:block;min-height:0;margin:0 0 .35rem;font-weight:bold}
input[type=checkbox]{flex:none;width:1.3rem;height:1.3rem;margin:0}
input[type=email]{box-sizing:border-box;width:100%;margin:0 0 1rem;padding:.75rem;border:1px solid #9aa0a6;border-radius:6px;font:inherit}
.cats{margin:0 0 .5rem 1.9rem}
@media (prefers-color-scheme:dark){
body{background:#111418;color:#e8eaed}main{background:#1c1f24}a{color:#9cc3ff}.pub a{color:#ff9a90}
.muted{color:#b4b8be}.note{background:#263244}.err{background:#4a2523}fieldset{border-color:#3c4043}
button{background:#8ab4f8;color:#111418}button.danger{background:#f28b82}button.quiet{background:none;color:#9cc3ff;border-color:#9cc3ff}
input[type=email]{background:#111418;color:#e8eaed}}
"#;

/// What every page shows around its content.
pub(super) struct Chrome<'a> {
    pub publication: &'a str,
    pub site_url: &'a str,
    pub lang: &'a str,
    pub rtl: bool,
    /// `[web] public_url` without a trailing `/`, for links between our pages.
    pub base: &'a str,
}

/// The document around `content`.
pub(super) fn layout(c: &Chrome<'_>, title: &str, content: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang=(c.lang) dir=[c.rtl.then_some("rtl")] {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width,initial-scale=1";
                meta name="robots" content="noindex";
                meta name="color-scheme" content="light dark";
                title { (title) " · " (c.publication) }
                style { (PreEscaped(CSS)) }
            }
            body {
                main {
                    p.pub { a href=(c.site_url) { (c.publication) } }
                    (content)
                }
            }
        }
    }
}

/// The one page for every bad, unknown or expired token and unknown path: it says nothing
/// about what was asked for.
pub(super) fn not_found(c: &Chrome<'_>) -> Markup {
    layout(
        c,
        "Link not found",
        html! {
            h1 { "This link does not work" }
            p { "It may be mistyped, or it has expired." }
            p.muted { "If it came in one of our emails, use the links in the newest one." }
        },
    )
}

/// A short page with a heading and a sentence (errors, rate limits).
pub(super) fn message(c: &Chrome<'_>, title: &str, text: &str) -> Markup {
    layout(
        c,
        title,
        html! {
            h1 { (title) }
            p { (text) }
        },
    )
}

/// `GET /unsubscribe/{token}`: asks; changes nothing.
pub(super) fn unsubscribe_ask(
    c: &Chrome<'_>,
    list: &str,
    already: bool,
    preferences_url: &str,
) -> Markup {
    layout(
        c,
        "Unsubscribe",
        html! {
            @if already {
                h1 { "You are unsubscribed from " (list) }
                p.note { "Nothing more to do: you will not receive it." }
            } @else {
                h1 { "Unsubscribe from " (list) "?" }
                p { "You will stop receiving " (list) " straight away." }
                form method="post" {
                    button.danger type="submit" { "Unsubscribe from " (list) }
                }
            }
            form method="post" {
                input type="hidden" name="scope" value="all";
                button.quiet type="submit" { "Unsubscribe from all " (c.publication) " newsletters" }
            }
            p.muted {
                "Would you rather get fewer emails? "
                a href=(preferences_url) { "Choose your newsletters and topics" } "."
            }
        },
    )
}

/// `POST /unsubscribe/{token}`: done.
pub(super) fn unsubscribed(c: &Chrome<'_>, list: &str, all: bool, preferences_url: &str) -> Markup {
    layout(
        c,
        "Unsubscribed",
        html! {
            h1 { "You are unsubscribed" }
            @if all {
                p { "You will not receive any more newsletters from " (c.publication) "." }
            } @else {
                p { "You will not receive " (list) " any more." }
            }
            p.muted {
                "Unsubscribed by mistake? "
                a href=(preferences_url) { "Manage your newsletters" } "."
            }
        },
    )
}

/// The categories a reader can choose from on a list: the list's own, or, for a list that
/// carries every category, the configured category order.
pub(super) fn offered_categories(row: &PreferenceRow, configured: &[String]) -> CategorySet {
    match row.list_categories.as_deref() {
        Some(c) => CategorySet::from_stored(c),
        None => CategorySet::new(
            configured
                .iter()
                .filter_map(|c| Category::parse(c).ok())
                .collect(),
        ),
    }
}

/// How one subscription reads in the "saved" summary.
fn summary(row: &PreferenceRow) -> String {
    match row.status.as_str() {
        "active" => match row.categories.as_deref() {
            None => "receiving, all topics".to_owned(),
            Some(c) => format!("receiving: {}", CategorySet::from_stored(c)),
        },
        "pending" => "waiting for you to confirm the sign-up".to_owned(),
        _ => "not receiving".to_owned(),
    }
}

/// `GET`/`POST /preferences/{token}`.
pub(super) fn preferences(
    c: &Chrome<'_>,
    rows: &[PreferenceRow],
    configured: &[String],
    saved: bool,
    error: Option<&str>,
) -> Markup {
    layout(
        c,
        "Your newsletters",
        html! {
            h1 { "Your newsletters" }
            @if saved {
                div.note role="status" {
                    p { strong { "Saved." } }
                    ul { @for r in rows { li { (r.name) ": " (summary(r)) } } }
                }
            }
            @if let Some(e) = error {
                p.note.err role="alert" { (e) }
            }
            @if rows.is_empty() {
                p { "You are not signed up for any newsletter." }
            } @else {
                form method="post" {
                    @for r in rows {
                        @let offered = offered_categories(r, configured);
                        @let chosen = r.categories.as_deref().map(CategorySet::from_stored);
                        fieldset {
                            legend { (r.name) }
                            input type="hidden" name="list" value=(r.list_id);
                            label {
                                input type="checkbox" name="subscribed" value=(r.list_id)
                                    checked[r.status == SubscriptionStatus::Active];
                                @if r.status == SubscriptionStatus::Pending {
                                    "Receive " (r.name) " (tick to confirm your sign-up)"
                                } @else {
                                    "Receive " (r.name)
                                }
                            }
                            @if !r.description.is_empty() { p.muted { (r.description) } }
                            @if offered.len() > 1 {
                                div.cats {
                                    @for cat in offered.iter() {
                                        label {
                                            input type="checkbox" name={ "cat." (r.list_id) } value=(cat)
                                                checked[chosen.as_ref().is_none_or(|ch| ch.contains(cat))];
                                            (cat)
                                        }
                                    }
                                }
                            }
                        }
                    }
                    button type="submit" name="action" value="save" { "Save my choices" }
                }
                form method="post" {
                    input type="hidden" name="action" value="unsubscribe-all";
                    button.danger type="submit" { "Unsubscribe from everything" }
                }
            }
        },
    )
}

/// `GET /subscribe?list=…`: the sign-up form.
pub(super) fn signup_form(
    c: &Chrome<'_>,
    slug: &str,
    name: &str,
    description: &str,
    categories: Option<&CategorySet>,
) -> Markup {
    layout(
        c,
        name,
        html! {
            h1 { "Sign up for " (name) }
            @if !description.is_empty() { p { (description) } }
            form method="post" action={ (c.base) "/subscribe" } {
                input type="hidden" name="list" value=(slug);
                label.field for="email" { "Your email address" }
                input #email type="email" name="email" required autocomplete="email" inputmode="email";
                @if let Some(cats) = categories.filter(|c| c.len() > 1) {
                    fieldset {
                        legend { "Topics (leave all unticked for every topic)" }
                        @for cat in cats.iter() {
                            label { input type="checkbox" name="categories" value=(cat); (cat) }
                        }
                    }
                }
                button type="submit" { "Sign up" }
            }
            p.muted { "We use your address only to send you this newsletter. Every email has a one-click unsubscribe link." }
        },
    )
}

/// `POST /subscribe`: one page whatever the address's state, and it does not repeat the
/// address, so known and unknown addresses get byte-identical answers (no enumeration).
pub(super) fn signup_done(c: &Chrome<'_>, list: &str, double_opt_in: bool) -> Markup {
    layout(
        c,
        "Check your inbox",
        html! {
            @if double_opt_in {
                h1 { "Check your inbox" }
                p {
                    "If your address is not subscribed to " (list)
                    " yet, we have sent it a link to confirm. Nothing is sent until that link is used."
                }
                p.muted { "The link works for 7 days. No email? Look in your spam folder, or try again in a few minutes." }
            } @else {
                h1 { "Thank you" }
                p { "Your address is subscribed to " (list) "." }
                p.muted {
                    "If it had unsubscribed from it before, we have instead emailed it a link to confirm: "
                    "nothing is sent until that link is used."
                }
            }
        },
    )
}

/// `GET /confirm/{token}`: asks, with a button. A GET never confirms: mail security scanners
/// open every link in a message, and would otherwise confirm addresses nobody confirmed.
pub(super) fn confirm_ask(c: &Chrome<'_>, list: &str) -> Markup {
    layout(
        c,
        "Confirm your subscription",
        html! {
            h1 { "Confirm your subscription to " (list) }
            p { "Press the button to start receiving " (list) "." }
            form method="post" {
                button type="submit" { "Yes, subscribe me" }
            }
            p.muted { "If you did not ask for this, close this page: you will not be subscribed." }
        },
    )
}

/// `POST /confirm/{token}`.
pub(super) fn confirmed(c: &Chrome<'_>, list: &str) -> Markup {
    layout(
        c,
        "Subscribed",
        html! {
            h1 { "You are subscribed" }
            p { "Thank you for confirming. You will receive " (list) " from its next edition." }
            p.muted { "Every email has a link to unsubscribe or change what you receive." }
        },
    )
}
