//! Rendering an edition: Maud HTML, plain text, subject and preheader.
//!
//! An edition is rendered once per category variant. The two bodies come back as
//! [`Template`]s whose only per-reader parts are [`Hole::Token`] (unsubscribe and preference
//! links) and [`Hole::Name`] (the greeting), so the sender personalises by splicing.
//!
//! Both parts are built from one prepared model of the message (cleaned, escaped-once text),
//! which is how the HTML and the plain text come to carry the same words, as SpamAssassin's
//! `MPART_ALT_DIFF` wants.

pub(crate) mod clean;
mod html;
mod text;

/// What rendering produces; defined in [`crate::domain`] so that `mail` can consume it without
/// depending on `render`.
pub use crate::domain::{Hole, Segment, Template};

use chrono::{DateTime, Utc};
use chrono_tz::Tz;

use crate::digest::{ArticleView, Section};
use crate::domain::WebUrl;
use crate::i18n::{Arg, Strings};

/// Stands for [`Hole::Token`] in Maud's output. Built from U+0001, which [`clean`] removes
/// from every stored string before rendering, so no article text can forge a hole.
const TOKEN_MARKER: &str = "\u{1}TOKEN\u{1}";
/// Stands for [`Hole::Name`] in Maud's output; see [`TOKEN_MARKER`].
const NAME_MARKER: &str = "\u{1}NAME\u{1}";

/// Longest subject, in characters, before it is cut with an ellipsis.
const SUBJECT_MAX: usize = 200;
/// Longest preheader, in characters (inbox previews show about 90–140).
const PREHEADER_MAX: usize = 140;

pub use crate::domain::EditionKind;

/// Everything about an edition that is not its articles.
#[derive(Debug, Clone)]
pub struct EditionContext<'a> {
    /// The publication: its name and postal address.
    pub publication: &'a crate::config::Publication,
    /// The list's language: every fixed word, the dates, `<html lang>` and the direction.
    pub strings: Strings<'a>,
    /// The daemon's public base URL; unsubscribe and preference links hang off it.
    pub public_url: &'a WebUrl,
    /// The news site itself.
    pub site_url: &'a WebUrl,
    /// The list's display name, e.g. `Daily Digest`.
    pub list_name: &'a str,
    /// The list's one-line description, shown under the header when not empty.
    pub list_description: &'a str,
    /// Which kind of edition this is. The render function called decides the layout; this is
    /// carried so callers can keep one context per edition.
    pub kind: EditionKind,
    /// The edition's date and time in the list's time zone; story times use the same zone.
    pub date: DateTime<Tz>,
    /// Where the edition can be read on the web, if anywhere.
    pub web_view_url: Option<String>,
}

/// A rendered edition variant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rendered {
    /// One line, no control characters, at most 200 characters; not yet RFC 2047 encoded.
    pub subject: String,
    /// The inbox preview text (also hidden at the top of the HTML), under 150 characters.
    pub preheader: String,
    /// The `text/html` part.
    pub html: Template,
    /// The `text/plain` part, lines ending in `\n`, wrapped at 72 columns except for URLs.
    pub text: Template,
}

/// Renders a digest of `sections` (one variant of an edition).
///
/// The subject reads `{list name} — {d Month YYYY} — {N} stories` in the list's language
/// (catalogue message `subject-digest`), where N counts the stories shown in this message.
///
/// # Holes
///
/// - [`Hole::Token`] is the reader's token; each occurrence follows a static
///   `<public_url>/unsubscribe/` or `<public_url>/preferences/` prefix, in both parts.
/// - [`Hole::Name`] occurs once per part, in the greeting `Hello{Name},` (catalogue message
///   `greeting`). Fill it with the empty string for a reader without a name, otherwise with a
///   space followed by the name: HTML-escaped (at least `&`, `<`, `>`, `"`) for the HTML part
///   and with control characters removed for both parts. So `Hello,` or `Hello Ayesha,`. In a
///   right-to-left HTML part the hole sits inside `<bdi>`, so a Latin name keeps its order.
pub fn render_digest(ctx: &EditionContext<'_>, sections: &[&Section]) -> Rendered {
    let groups: Vec<Group> = sections.iter().map(|s| Group::new(ctx, s)).collect();
    let count: usize = groups.iter().map(|g| g.stories.len()).sum();
    let st = &ctx.strings;
    let subject = clean::capped(
        &st.format(
            "subject-digest",
            &[
                ("list", Arg::Str(&clean::inline(ctx.list_name))),
                ("date", Arg::Str(&st.date_long(ctx.date.date_naive()))),
                ("count", Arg::Num(count)),
            ],
        ),
        SUBJECT_MAX,
    );
    // Each section's lead story first, then the rest, so the preview spans the edition.
    let leads = groups.iter().filter_map(|g| g.stories.first());
    let rest = groups.iter().flat_map(|g| g.stories.iter().skip(1));
    let preheader = join_capped(leads.chain(rest).map(|s| s.title.as_str()), PREHEADER_MAX);
    let page = Page::new(ctx, subject, preheader);
    Rendered {
        html: html::digest(&page, &groups),
        text: text::digest(&page, &groups),
        subject: page.subject,
        preheader: page.preheader,
    }
}

/// Renders a breaking-news message for one article: a banner, the story, the footer.
///
/// The subject reads `Breaking: {title}` (catalogue message `subject-breaking`). Holes are as for [`render_digest`], except that
/// there is no greeting, so no [`Hole::Name`].
pub fn render_breaking(ctx: &EditionContext<'_>, article: &ArticleView) -> Rendered {
    let page_lang = page_lang(ctx);
    let mut story = Story::new(ctx, &page_lang, article);
    // The mark tells digest readers they have seen a story; here it is the news itself.
    story.was_breaking = false;
    let subject = clean::capped(
        &ctx.strings
            .format("subject-breaking", &[("title", Arg::Str(&story.title))]),
        SUBJECT_MAX,
    );
    let preheader = match story.summary.paragraphs.first() {
        Some(p) => clean::capped(p, PREHEADER_MAX),
        None => clean::capped(&story.title, PREHEADER_MAX),
    };
    let page = Page::new(ctx, subject, preheader);
    Rendered {
        html: html::breaking(&page, &story),
        text: text::breaking(&page, &story),
        subject: page.subject,
        preheader: page.preheader,
    }
}

/// Joins items with ` · ` while they fit in `max` characters; a first item that alone is too
/// long is cut.
fn join_capped<'a>(items: impl Iterator<Item = &'a str>, max: usize) -> String {
    let mut out = String::new();
    for item in items {
        if out.is_empty() {
            out = clean::capped(item, max);
            continue;
        }
        if out.chars().count() + 3 + item.chars().count() > max {
            break;
        }
        out.push_str(" · ");
        out.push_str(item);
    }
    out
}

/// The text direction a table cell declares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Dir {
    /// Same as the document, which is left to right: no markup needed.
    Inherit,
    /// Right to left: declared on every such cell, as some clients ignore `<html dir>`.
    Rtl,
    /// Left to right inside a right-to-left document.
    Ltr,
}

/// The list's language as `(tag, right-to-left?)`.
fn page_lang(ctx: &EditionContext<'_>) -> (String, bool) {
    let lang = ctx.strings.language();
    (lang.tag().to_owned(), lang.is_rtl())
}

/// A translated sentence for both parts: `text` as it is, `html` escaped with the values named
/// in `isolate` wrapped in `<bdi>` when the page is right to left, so that a Latin name or
/// URL inside Urdu keeps its own order (Unicode bidi algorithm, UAX #9 §2.4 isolates).
#[derive(Debug, Clone, Default)]
struct Words {
    text: String,
    html: String,
}

impl Words {
    fn new(
        strings: &Strings<'_>,
        id: &str,
        args: &[(&str, Arg<'_>)],
        isolate: &[&str],
        rtl: bool,
    ) -> Self {
        let text = strings.format(id, args);
        let html = if rtl {
            strings.format_html(id, args, isolate)
        } else {
            maud::html! { (text) }.into_string()
        };
        Self { text, html }
    }
}

/// The parts of the message around the stories, cleaned.
struct Page {
    lang: String,
    /// Direction of the header, greeting, headings and footer cells.
    dir: Dir,
    /// `Hello{Name},` with [`NAME_MARKER`] for the hole.
    greeting: Words,
    breaking_banner: String,
    footer_reason: Words,
    unsubscribe_label: String,
    preferences_label: String,
    view_label: String,
    subject: String,
    preheader: String,
    publication: String,
    list_name: String,
    date: String,
    description: Option<String>,
    postal_address: String,
    /// `<public_url>/unsubscribe/`, to be followed by the token.
    unsubscribe: String,
    /// `<public_url>/preferences/`, to be followed by the token.
    preferences: String,
    web_view: Option<String>,
}

impl Page {
    fn new(ctx: &EditionContext<'_>, subject: String, preheader: String) -> Self {
        let (lang, rtl) = page_lang(ctx);
        let st = &ctx.strings;
        let base = clean::inline(ctx.public_url.base());
        let description = clean::inline(ctx.list_description);
        let publication = clean::inline(&ctx.publication.name);
        let list_name = clean::inline(ctx.list_name);
        Self {
            lang,
            dir: if rtl { Dir::Rtl } else { Dir::Inherit },
            greeting: Words::new(
                st,
                "greeting",
                &[("name", Arg::Str(NAME_MARKER))],
                &["name"],
                rtl,
            ),
            breaking_banner: st.get("breaking-banner"),
            footer_reason: Words::new(
                st,
                "footer-reason",
                &[
                    ("list", Arg::Str(&list_name)),
                    ("publication", Arg::Str(&publication)),
                ],
                &["list", "publication"],
                rtl,
            ),
            unsubscribe_label: st.get("unsubscribe"),
            preferences_label: st.get("change-preferences"),
            view_label: st.get("view-in-browser"),
            subject,
            preheader,
            publication,
            list_name,
            date: st.date_with_weekday(ctx.date.date_naive()),
            description: (!description.is_empty()).then_some(description),
            postal_address: clean::inline(&ctx.publication.postal_address),
            unsubscribe: format!("{base}/unsubscribe/"),
            preferences: format!("{base}/preferences/"),
            web_view: ctx.web_view_url.as_deref().and_then(clean::web_url),
        }
    }
}

/// One story, cleaned; both parts render exactly these strings.
struct Story {
    title: String,
    url: Option<String>,
    summary: clean::Summary,
    /// `By {author}`, the author isolated in HTML.
    byline: Option<Words>,
    /// Direction of the byline line, which is in the list's language, not the story's.
    meta_dir: Dir,
    sent_as_breaking: String,
    read_full_story: String,
    /// Publication time in the edition's zone.
    time: String,
    /// Set only when it differs from the document's language.
    lang: Option<String>,
    dir: Dir,
    image: Option<String>,
    was_breaking: bool,
}

impl Story {
    fn new(
        ctx: &EditionContext<'_>,
        (page_lang, page_rtl): &(String, bool),
        a: &ArticleView,
    ) -> Self {
        let title = clean::inline(&a.title);
        let st = &ctx.strings;
        let title = if title.is_empty() {
            st.get("untitled-story")
        } else {
            title
        };
        let lang = a.language.as_deref().and_then(clean::lang_tag);
        let rtl = lang.as_deref().map_or(*page_rtl, clean::is_rtl);
        let dir = match (rtl, page_rtl) {
            (true, _) => Dir::Rtl,
            (false, true) => Dir::Ltr,
            (false, false) => Dir::Inherit,
        };
        let author = a
            .author
            .as_deref()
            .map(clean::inline)
            .filter(|s| !s.is_empty());
        Self {
            title,
            url: clean::web_url(&a.url),
            summary: clean::summary(&a.summary),
            byline: author.map(|s| {
                Words::new(
                    st,
                    "byline",
                    &[("author", Arg::Str(&s))],
                    &["author"],
                    *page_rtl,
                )
            }),
            // Only a story of the other direction needs the byline's own declared.
            meta_dir: match (rtl, *page_rtl) {
                (false, true) => Dir::Rtl,
                (true, false) => Dir::Ltr,
                _ => Dir::Inherit,
            },
            sent_as_breaking: st.get("sent-as-breaking"),
            read_full_story: st.get("read-full-story"),
            time: local_time(st, a.published_at, &ctx.date),
            lang: lang.filter(|l| !l.eq_ignore_ascii_case(page_lang)),
            dir,
            image: a.image_url.as_deref().and_then(clean::https_url),
            was_breaking: a.was_breaking,
        }
    }

    /// The byline and time, as one line of text.
    fn meta(&self) -> String {
        match &self.byline {
            Some(b) => format!("{} · {}", b.text, self.time),
            None => self.time.clone(),
        }
    }

    /// [`Self::meta`] as HTML.
    fn meta_html(&self) -> String {
        let time = maud::html! { (self.time) }.into_string();
        match &self.byline {
            Some(b) => format!("{} · {time}", b.html),
            None => time,
        }
    }
}

/// `07:30 PKT` on the edition's day, `27 Nov 21:10 PKT` before it (catalogue messages
/// `story-time-today` and `story-time-earlier`; Urdu leaves out the zone).
fn local_time(st: &Strings<'_>, t: DateTime<Utc>, edition: &DateTime<Tz>) -> String {
    let local = t.with_timezone(&edition.timezone());
    let time = st.time(local.time());
    let zone = local.format("%Z").to_string();
    if local.date_naive() == edition.date_naive() {
        st.format(
            "story-time-today",
            &[("time", Arg::Str(&time)), ("zone", Arg::Str(&zone))],
        )
    } else {
        let date = st.day_month(local.date_naive());
        st.format(
            "story-time-earlier",
            &[
                ("date", Arg::Str(&date)),
                ("time", Arg::Str(&time)),
                ("zone", Arg::Str(&zone)),
            ],
        )
    }
}

/// A section of a digest, cleaned.
struct Group {
    heading: String,
    stories: Vec<Story>,
    /// `N more in {category}` and the category page, when stories were left out.
    more: Option<(Words, Option<String>)>,
}

impl Group {
    fn new(ctx: &EditionContext<'_>, s: &Section) -> Self {
        let lang = page_lang(ctx);
        let heading = clean::inline(s.category.as_str());
        let more = (s.more > 0).then(|| {
            (
                Words::new(
                    &ctx.strings,
                    "more-in",
                    &[
                        ("count", Arg::Num(s.more)),
                        ("category", Arg::Str(&heading)),
                    ],
                    &["category"],
                    lang.1,
                ),
                clean::web_url(&s.more_url),
            )
        });
        Self {
            stories: s
                .articles
                .iter()
                .map(|a| Story::new(ctx, &lang, a))
                .collect(),
            heading,
            more,
        }
    }
}

#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_urdu;
