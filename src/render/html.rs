//! The `text/html` part, written for email clients as they are.
//!
//! Table layout 600px wide, every essential style inline, no flex/grid/positioning. The
//! `<style>` sheet (`templates/email.css`) only narrows the layout on phones and darkens it
//! where `prefers-color-scheme` works; clients that drop it still get a readable message.
//! Rows end in a newline so that no line gets near RFC 5322's 998-character limit from the
//! markup alone, and so that snapshots diff by row.

use maud::{DOCTYPE, Markup, PreEscaped, html};

use super::{Dir, Group, Hole, NAME_MARKER, Page, Story, TOKEN_MARKER, Template};

/// Progressive enhancement only; see the module comment.
const CSS: &str = include_str!("../../templates/email.css");

// Colours: text and links keep at least 4.5:1 contrast on white, and nothing relies on
// transparency, so clients that force-invert for dark mode still produce legible output.
const PAGE_BG: &str = "background:#eef0f3";
const FONT: &str = "font-family:Arial,Helvetica,sans-serif";
/// Nastaliq where installed (Apple Mail, some Android), otherwise a Naskh system face.
const RTL_FONT: &str = "font-family:'Noto Nastaliq Urdu','Jameel Noori Nastaleeq',Tahoma,'Segoe UI',Arial,sans-serif;line-height:1.9";
const TEXT: &str = "color:#1f1f1f";
const MUTED: &str = "color:#5f6368";
const LINK: &str = "color:#0b57d0;text-decoration:none";
const ACCENT: &str = "#b3261e";

/// The digest body.
pub(super) fn digest(page: &Page, groups: &[Group]) -> Template {
    frame(
        page,
        html! {
            tr { td.p.fg dir=[dir_attr(page.dir)] align=[align(page.dir)]
                style=(cell("padding:20px 24px 0;font-size:16px", page.dir, TEXT)) {
                (PreEscaped(&page.greeting.html))
            } } "\n"
            @for g in groups { (section(page, g)) }
        },
    )
}

/// The breaking-news body: banner and one story.
pub(super) fn breaking(page: &Page, story: &Story) -> Template {
    frame(
        page,
        html! {
            tr { td.bn dir=[dir_attr(page.dir)] align=[align(page.dir)]
                style={ "padding:10px 24px;background:" (ACCENT) ";color:#ffffff;" (FONT)
                    ";font-size:14px;font-weight:bold;letter-spacing:1px;text-transform:uppercase" } {
                (page.breaking_banner)
            } } "\n"
            (story_row(story, true))
        },
    )
}

/// The document around `body` rows: head, preheader, centred card, header, footer.
fn frame(page: &Page, body: Markup) -> Template {
    let rtl = page.dir == Dir::Rtl;
    let markup = html! {
        (DOCTYPE) "\n"
        html lang=(page.lang) dir=[rtl.then_some("rtl")] {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width,initial-scale=1";
                meta name="color-scheme" content="light dark";
                meta name="supported-color-schemes" content="light dark";
                title { (page.subject) }
                style { (PreEscaped(CSS)) }
            } "\n"
            body.bg style={ "margin:0;padding:0;" (PAGE_BG) } {
                div style="display:none;max-height:0;overflow:hidden;mso-hide:all" { (page.preheader) } "\n"
                table.bg role="presentation" width="100%" cellpadding="0" cellspacing="0" border="0"
                    style=(PAGE_BG) {
                    tr { td align="center" style="padding:16px 8px" { "\n"
                        table.w.cd role="presentation" width="600" cellpadding="0" cellspacing="0"
                            border="0" style="width:600px;max-width:600px;background:#ffffff" { "\n"
                            (header(page))
                            (body)
                            (footer(page))
                        } "\n"
                    } }
                } "\n"
            }
        } "\n"
    };
    Template::from_marked(
        &markup.into_string(),
        &[(TOKEN_MARKER, Hole::Token), (NAME_MARKER, Hole::Name)],
    )
}

fn header(page: &Page) -> Markup {
    html! {
        tr { td.p.fg dir=[dir_attr(page.dir)] align=[align(page.dir)]
            style=(cell(&format!("padding:24px 24px 16px;border-bottom:3px solid {ACCENT}"), page.dir, TEXT)) {
            h1 style="margin:0;font-size:26px;line-height:1.2;font-family:Georgia,'Times New Roman',serif" {
                (page.publication)
            }
            p.mu style={ "margin:6px 0 0;font-size:14px;" (MUTED) } {
                (page.list_name) " · " (page.date)
            }
            @if let Some(d) = &page.description {
                p.mu style={ "margin:4px 0 0;font-size:14px;" (MUTED) } { (d) }
            }
        } } "\n"
    }
}

fn section(page: &Page, g: &Group) -> Markup {
    html! {
        tr { td.p dir=[dir_attr(page.dir)] align=[align(page.dir)]
            style=(cell("padding:24px 24px 4px", page.dir, TEXT)) {
            h2.bk style={ "margin:0;padding-bottom:6px;border-bottom:1px solid #dadce0;font-size:14px;letter-spacing:1px;text-transform:uppercase;color:" (ACCENT) } {
                (g.heading)
            }
        } } "\n"
        @for s in &g.stories { (story_row(s, false)) }
        @if let Some((label, url)) = &g.more {
            tr { td.p dir=[dir_attr(page.dir)] align=[align(page.dir)]
                style=(cell("padding:0 24px 12px;font-size:14px;font-weight:bold", page.dir, TEXT)) {
                @if let Some(url) = url {
                    a.lk href=(url) style=(LINK) { (PreEscaped(&label.html)) }
                } @else {
                    (PreEscaped(&label.html))
                }
            } } "\n"
        }
    }
}

/// One story as a table row; `lead` is the larger single-story layout of breaking news.
fn story_row(s: &Story, lead: bool) -> Markup {
    let (pad, title_size, body_size) = if lead {
        ("padding:20px 24px", "24px", "16px")
    } else {
        ("padding:10px 24px 14px", "18px", "15px")
    };
    // Nastaliq's tall ascenders and deep descenders need more room between lines.
    let (title_lh, body_lh) = if s.dir == Dir::Rtl {
        ("1.8", "1.9")
    } else {
        ("1.3", "1.5")
    };
    html! {
        tr { td.p.fg lang=[s.lang.as_deref()] dir=[dir_attr(s.dir)] align=[align(s.dir)]
            style=(cell(pad, s.dir, TEXT)) {
            @if let Some(src) = &s.image {
                img.im src=(src) alt=(s.title) width="552"
                    style="display:block;width:100%;max-width:552px;height:auto;border:0;margin:0 0 10px";
            }
            h3 style={ "margin:0 0 6px;font-size:" (title_size) ";line-height:" (title_lh) } {
                @if let Some(url) = &s.url {
                    a.lk href=(url) style="color:#0b3d91;text-decoration:none" { (s.title) }
                } @else {
                    (s.title)
                }
            }
            @if !s.summary.html.is_empty() {
                div style={ "margin:0 0 6px;font-size:" (body_size) ";line-height:" (body_lh) } {
                    (PreEscaped(&s.summary.html))
                }
            }
            // The byline and time are in the list's language, not the story's: inside a story
            // of the other direction they keep the list's, or "By Ali · 07:30 PKT" comes out
            // reversed.
            p.mu dir=[dir_attr(s.meta_dir)] style={ "margin:0;font-size:13px;" (MUTED) (dir_style(s.meta_dir)) } {
                (PreEscaped(s.meta_html()))
                @if s.was_breaking {
                    " · " span.bk style={ "color:" (ACCENT) ";font-weight:bold" } { (s.sent_as_breaking) }
                }
            }
            @if lead {
                @if let Some(url) = &s.url {
                    p style="margin:16px 0 0" {
                        a.lk href=(url) style="color:#0b57d0;font-weight:bold;text-decoration:underline" {
                            (s.read_full_story)
                        }
                    }
                }
            }
        } } "\n"
    }
}

fn footer(page: &Page) -> Markup {
    let token = PreEscaped(TOKEN_MARKER);
    html! {
        tr { td.p.mu dir=[dir_attr(page.dir)] align=[align(page.dir)]
            style=(cell("padding:24px;border-top:1px solid #dadce0;font-size:13px;line-height:1.5", page.dir, MUTED)) {
            p style="margin:0 0 8px" { (PreEscaped(&page.footer_reason.html)) }
            p style="margin:0 0 8px" { (page.postal_address) }
            p style="margin:0" {
                a.lk href={ (page.unsubscribe) (token) } style=(LINK) { (page.unsubscribe_label) }
                " · "
                a.lk href={ (page.preferences) (token) } style=(LINK) { (page.preferences_label) }
                @if let Some(w) = &page.web_view {
                    " · " a.lk href=(w) style=(LINK) { (page.view_label) }
                }
            }
        } } "\n"
    }
}

/// A cell's inline style: padding etc., then font, colour and, for declared directions,
/// `direction`/`text-align` (the CSS property works in clients where `dir` is buggy).
fn cell(base: &str, dir: Dir, colour: &str) -> String {
    match dir {
        Dir::Inherit => format!("{base};{FONT};{colour}"),
        Dir::Rtl => format!("{base};{RTL_FONT};{colour};direction:rtl;text-align:right"),
        Dir::Ltr => format!("{base};{FONT};{colour};direction:ltr;text-align:left"),
    }
}

/// `direction`/`text-align` for an element inside a cell of the other direction.
fn dir_style(dir: Dir) -> &'static str {
    match dir {
        Dir::Inherit => "",
        Dir::Rtl => ";direction:rtl;text-align:right",
        Dir::Ltr => ";direction:ltr;text-align:left",
    }
}

fn dir_attr(dir: Dir) -> Option<&'static str> {
    match dir {
        Dir::Inherit => None,
        Dir::Rtl => Some("rtl"),
        Dir::Ltr => Some("ltr"),
    }
}

fn align(dir: Dir) -> Option<&'static str> {
    match dir {
        Dir::Inherit => None,
        Dir::Rtl => Some("right"),
        Dir::Ltr => Some("left"),
    }
}
