//! The Maud pages: one small stylesheet inline, no JavaScript, no external resources, large
//! touch targets, and the email's colours (light and dark).
//!
//! Interpolated values are HTML-escaped by Maud. Pages never show a reader's address, nor
//! echo a token except in links to the reader's own pages.

use maud::{DOCTYPE, Markup, PreEscaped, html};

use crate::domain::{Category, CategorySet, SubscriptionStatus};
use crate::i18n::{Arg, Strings};
use crate::store::PreferenceRow;

const CSS: &str = r#"
body{margin:0;background:#eef0f3;color:#1f1f1f;font:17px/1.5 system-ui,-apple-system,"Segoe UI",Roboto,Arial,sans-serif}
html[dir=rtl] body{font-family:"Noto Nastaliq Urdu","Jameel Noori Nastaleeq","Noto Naskh Arabic",Tahoma,"Segoe UI",Arial,sans-serif;line-height:1.9}
html[dir=rtl] .cats{margin:0 1.9rem .5rem 0}
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
    /// The page's language: the list's when the page is about one, else `[publication]
    /// language`. Every fixed word, `<html lang>` and the direction come from it.
    pub strings: Strings<'a>,
    /// `[web] public_url` without a trailing `/`, for links between our pages.
    pub base: &'a str,
}

impl Chrome<'_> {
    fn t(&self, id: &str) -> String {
        self.strings.get(id)
    }

    /// A sentence naming a list (`$list`, isolated in right-to-left pages).
    fn list(&self, id: &str, list: &str) -> PreEscaped<String> {
        PreEscaped(
            self.strings
                .format_html(id, &[("list", Arg::Str(list))], &["list"]),
        )
    }

    /// A sentence naming the publication (`$publication`, isolated likewise).
    fn publication(&self, id: &str) -> PreEscaped<String> {
        PreEscaped(self.strings.format_html(
            id,
            &[("publication", Arg::Str(self.publication))],
            &["publication"],
        ))
    }
}

/// The document around `content`.
pub(super) fn layout(c: &Chrome<'_>, title: &str, content: Markup) -> Markup {
    let lang = c.strings.language();
    html! {
        (DOCTYPE)
        html lang=(lang.tag()) dir=[lang.is_rtl().then_some("rtl")] {
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
                    p.pub { a href=(c.site_url) {
                        @if lang.is_rtl() { bdi { (c.publication) } } @else { (c.publication) }
                    } }
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
        &c.t("page-not-found-title"),
        html! {
            h1 { (c.t("page-not-found-heading")) }
            p { (c.t("page-not-found-text")) }
            p.muted { (c.t("page-not-found-hint")) }
        },
    )
}

/// A short page with a heading and a sentence (errors, rate limits): catalogue message ids.
pub(super) fn message(c: &Chrome<'_>, title_id: &str, text_id: &str) -> Markup {
    let title = c.t(title_id);
    layout(
        c,
        &title,
        html! {
            h1 { (title) }
            p { (c.t(text_id)) }
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
        &c.t("page-unsubscribe-title"),
        html! {
            @if already {
                h1 { (c.list("page-unsubscribed-already", list)) }
                p.note { (c.t("page-unsubscribed-nothing")) }
            } @else {
                h1 { (c.list("page-unsubscribe-ask", list)) }
                p { (c.list("page-unsubscribe-explain", list)) }
                form method="post" {
                    button.danger type="submit" { (c.list("page-unsubscribe-button", list)) }
                }
            }
            form method="post" {
                input type="hidden" name="scope" value="all";
                button.quiet type="submit" { (c.publication("page-unsubscribe-all-button")) }
            }
            p.muted {
                (c.t("page-fewer-emails")) " "
                a href=(preferences_url) { (c.t("page-choose-newsletters")) } "."
            }
        },
    )
}

/// `POST /unsubscribe/{token}`: done.
pub(super) fn unsubscribed(c: &Chrome<'_>, list: &str, all: bool, preferences_url: &str) -> Markup {
    layout(
        c,
        &c.t("page-unsubscribed-title"),
        html! {
            h1 { (c.t("page-unsubscribed-heading")) }
            @if all {
                p { (c.publication("page-unsubscribed-all")) }
            } @else {
                p { (c.list("page-unsubscribed-one", list)) }
            }
            p.muted {
                (c.t("page-by-mistake")) " "
                a href=(preferences_url) { (c.t("page-manage")) } "."
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
fn summary(c: &Chrome<'_>, row: &PreferenceRow) -> String {
    match row.status.as_str() {
        "active" => match row.categories.as_deref() {
            None => c.t("page-summary-all"),
            Some(cats) => c.strings.format(
                "page-summary-some",
                &[(
                    "topics",
                    Arg::Str(&CategorySet::from_stored(cats).to_string()),
                )],
            ),
        },
        "pending" => c.t("page-summary-pending"),
        _ => c.t("page-summary-off"),
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
    let title = c.t("page-preferences-title");
    layout(
        c,
        &title,
        html! {
            h1 { (title) }
            @if saved {
                div.note role="status" {
                    p { strong { (c.t("page-saved")) } }
                    ul { @for r in rows { li { bdi { (r.name) } ": " (summary(c, r)) } } }
                }
            }
            @if let Some(e) = error {
                p.note.err role="alert" { (e) }
            }
            @if rows.is_empty() {
                p { (c.t("page-no-subscriptions")) }
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
                                    (c.list("page-receive-pending", &r.name))
                                } @else {
                                    (c.list("page-receive", &r.name))
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
                    button type="submit" name="action" value="save" { (c.t("page-save")) }
                }
                form method="post" {
                    input type="hidden" name="action" value="unsubscribe-all";
                    button.danger type="submit" { (c.t("page-unsubscribe-everything")) }
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
            h1 { (c.list("page-signup-heading", name)) }
            @if !description.is_empty() { p { (description) } }
            form method="post" action={ (c.base) "/subscribe" } {
                input type="hidden" name="list" value=(slug);
                label.field for="email" { (c.t("page-email-label")) }
                // An address is left to right whatever the page.
                input #email type="email" name="email" dir="ltr" required autocomplete="email" inputmode="email";
                @if let Some(cats) = categories.filter(|c| c.len() > 1) {
                    fieldset {
                        legend { (c.t("page-topics-legend")) }
                        @for cat in cats.iter() {
                            label { input type="checkbox" name="categories" value=(cat); (cat) }
                        }
                    }
                }
                button type="submit" { (c.t("page-signup-button")) }
            }
            p.muted { (c.t("page-signup-privacy")) }
        },
    )
}

/// `POST /subscribe`: one page whatever the address's state, and it does not repeat the
/// address, so known and unknown addresses get byte-identical answers (no enumeration).
pub(super) fn signup_done(c: &Chrome<'_>, list: &str, double_opt_in: bool) -> Markup {
    layout(
        c,
        &c.t("page-check-inbox"),
        html! {
            @if double_opt_in {
                h1 { (c.t("page-check-inbox")) }
                p { (c.list("page-check-inbox-text", list)) }
                p.muted { (c.strings.format("page-check-inbox-hint", &[("days", Arg::Num(7))])) }
            } @else {
                h1 { (c.t("page-thank-you")) }
                p { (c.list("page-subscribed-text", list)) }
                p.muted { (c.t("page-resubscribe-hint")) }
            }
        },
    )
}

/// `GET /confirm/{token}`: asks, with a button. A GET never confirms: mail security scanners
/// open every link in a message, and would otherwise confirm addresses nobody confirmed.
pub(super) fn confirm_ask(c: &Chrome<'_>, list: &str) -> Markup {
    layout(
        c,
        &c.t("page-confirm-title"),
        html! {
            h1 { (c.list("page-confirm-heading", list)) }
            p { (c.list("page-confirm-text", list)) }
            form method="post" {
                button type="submit" { (c.t("page-confirm-button")) }
            }
            p.muted { (c.t("page-confirm-ignore")) }
        },
    )
}

/// `POST /confirm/{token}`.
pub(super) fn confirmed(c: &Chrome<'_>, list: &str) -> Markup {
    layout(
        c,
        &c.t("page-subscribed-title"),
        html! {
            h1 { (c.t("page-subscribed-heading")) }
            p { (c.list("page-confirmed-text", list)) }
            p.muted { (c.t("page-every-email")) }
        },
    )
}
