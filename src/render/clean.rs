//! Turning stored text (CMS input, possibly hostile) into what the templates may show.
//!
//! Every string from the database or the config passes through here before it reaches a
//! template. Removing control characters does two jobs: it keeps CR/LF out of anything that
//! may end up in a header (the subject), and it guarantees that the hole markers, which are
//! built from a control character, can only come from the templates themselves.
//!
//! HTML is read in time linear in its length, whatever its shape. An HTML tree builder does
//! work proportional to the depth of the open elements for many tags (the "has an element in
//! scope" checks of the HTML standard, §13.2.4.2), so 40,000 nested `<div>`s cost it ~10⁹
//! steps. So [`summary`] first reads HTML with html5ever's *tokenizer* alone, which keeps no
//! tree ([`crate::domain::html`]), and hands the tree builder (ammonia) only the tags its
//! whitelist keeps, at most [`MAX_SUMMARY_TAGS`] of them and never more than
//! [`MAX_SUMMARY_DEPTH`] open at once.

use std::borrow::Cow;
use std::sync::LazyLock;

use html5ever::{LocalName, local_name};

use crate::domain::WebUrl;
use crate::domain::html::{Piece, walk_html};

/// Characters dropped from all text: bidi embeddings, overrides and isolates (an unbalanced
/// U+202E in a headline would reverse the rest of a subject line or text paragraph), and the
/// byte-order mark. Directional *marks* (U+200E/U+200F) and ZWJ/ZWNJ stay: Urdu needs them.
fn is_dropped(c: char) -> bool {
    matches!(c, '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}' | '\u{FEFF}')
}

/// Characters that break a line somewhere: C0/C1 controls (CR, LF, TAB, NEL, …) and the
/// Unicode line and paragraph separators.
fn is_breaking(c: char) -> bool {
    c.is_control() || matches!(c, '\u{2028}' | '\u{2029}')
}

/// One line of display text, cleaned by the same rule as text entering the store
/// ([`crate::domain::clean_text`]): line breaks and whitespace runs become one space, ESC a
/// word break, other control characters and bidi overrides go, and the ends are trimmed.
/// Stored text passes again because a CMS may write rows directly.
pub(crate) fn inline(s: &str) -> String {
    crate::domain::clean_text(s, usize::MAX)
}

/// [`inline`], capped at `max` characters: longer text is cut at a word boundary when one is
/// near, and ends with an ellipsis.
pub(crate) fn capped(s: &str, max: usize) -> String {
    let s = inline(s);
    if s.chars().count() <= max {
        return s;
    }
    let keep: String = s.chars().take(max.saturating_sub(1)).collect();
    // Prefer a word boundary, unless that throws away more than a fifth of the text.
    let cut = match keep.rfind(' ') {
        Some(i) if keep[..i].chars().count() >= max * 4 / 5 => &keep[..i],
        _ => keep.as_str(),
    };
    format!("{}…", cut.trim_end())
}

/// An absolute http(s) URL fit to link to, or `None`.
pub(crate) fn web_url(raw: &str) -> Option<String> {
    let s: String = raw
        .chars()
        .filter(|c| !is_breaking(*c) && !is_dropped(*c))
        .collect();
    WebUrl::parse(&s).ok().map(|u| u.as_str().to_owned())
}

/// An `https` URL, the only kind of image we load (mixed content is blocked by some clients
/// and leaks the reader's IP in clear).
pub(crate) fn https_url(raw: &str) -> Option<String> {
    web_url(raw).filter(|u| {
        u.get(..8)
            .is_some_and(|p| p.eq_ignore_ascii_case("https://"))
    })
}

/// A BCP 47-shaped language tag (`en`, `ur-PK`), or `None` for anything else.
pub(crate) fn lang_tag(raw: &str) -> Option<String> {
    let s = raw.trim();
    let ok = !s.is_empty()
        && s.len() <= 35
        && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
        && s.split('-').all(|p| !p.is_empty());
    ok.then(|| s.to_owned())
}

/// Whether a language is written right to left.
pub(crate) fn is_rtl(lang: &str) -> bool {
    let primary = lang.split('-').next().unwrap_or("").to_ascii_lowercase();
    matches!(
        primary.as_str(),
        "ar" | "fa" | "he" | "iw" | "ur" | "ps" | "sd" | "ug" | "yi" | "dv" | "ckb"
    )
}

/// The one sanitiser for CMS HTML in summaries: an explicit whitelist, built once.
static SUMMARY_SANITIZER: LazyLock<ammonia::Builder<'static>> = LazyLock::new(|| {
    let mut b = ammonia::Builder::default();
    b.tags(["b", "strong", "i", "em", "br", "p", "a"].into())
        .tag_attributes([("a", ["href"].into())].into())
        .generic_attributes(Default::default())
        .tag_attribute_values(Default::default())
        .allowed_classes(Default::default())
        .url_schemes(["http", "https"].into())
        .url_relative(ammonia::UrlRelative::Deny)
        .link_rel(Some("noopener noreferrer"))
        .strip_comments(true)
        .clean_content_tags(
            [
                "script", "style", "title", "noscript", "template", "svg", "math",
            ]
            .into(),
        )
        // Paragraph margins differ between clients; pin them, and give links the same colour
        // as the rest of the message.
        .set_tag_attribute_value("p", "style", "margin:0 0 8px")
        .set_tag_attribute_value("a", "style", "color:#0b57d0");
    b
});

/// A summary made safe for both parts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Summary {
    /// Sanitised HTML, fit to splice into the HTML part unescaped.
    pub html: String,
    /// The same words as plain-text paragraphs; a link's URL follows its text in `<…>`.
    pub paragraphs: Vec<String>,
}

/// Sanitises a summary (plain text or CMS HTML) for the HTML part and derives the text part's
/// paragraphs from the *sanitised* HTML, so both parts carry the same words.
pub(crate) fn summary(raw: &str) -> Summary {
    let pre: String = raw
        .chars()
        .map(|c| if is_breaking(c) { ' ' } else { c })
        .filter(|c| !is_dropped(*c))
        .collect();
    let cleaned = SUMMARY_SANITIZER
        .clean(&bounded_summary_html(&pre))
        .to_string();
    // The HTML parser decodes character references, so `&#1;` in the input is a raw U+0001
    // again by now: strip controls once more, after sanitising.
    let html: String = cleaned
        .chars()
        .filter(|c| !is_breaking(*c) && !is_dropped(*c))
        .collect();
    let paragraphs = html_to_paragraphs(&html);
    let html = if paragraphs.is_empty() {
        String::new()
    } else {
        html
    };
    Summary { html, paragraphs }
}

/// The most whitelisted tags of one summary that reach the tree builder; later ones are
/// dropped and their text kept. Far above what a summary carries, and low enough that even
/// the builder's worst case over them is a few million steps.
pub(crate) const MAX_SUMMARY_TAGS: usize = 2_000;

/// The most elements of one summary open at once; deeper start tags are dropped and their
/// text kept. Real summaries nest two or three deep.
pub(crate) const MAX_SUMMARY_DEPTH: usize = 32;

/// Re-writes a summary as the HTML [`SUMMARY_SANITIZER`] would keep, in one linear pass: only
/// its tags (`a` with its `href` only), no comments, text escaped, and within
/// [`MAX_SUMMARY_TAGS`] and [`MAX_SUMMARY_DEPTH`]. The sanitiser still checks the result; this
/// only guarantees its tree builder a small, shallow input.
fn bounded_summary_html(html: &str) -> String {
    let mut out = String::with_capacity(html.len().min(64 * 1024));
    // Our model of the open elements: close enough to the HTML standard's that what it
    // counts bounds the builder's stack (the tag cap is the backstop where it is not).
    let mut open: Vec<LocalName> = Vec::new();
    let mut tags = 0usize;
    walk_html(html, |piece| match piece {
        Piece::Text(t) => push_escaped(&mut out, t, false),
        Piece::Start(tag) => {
            let name = &tag.name;
            let kept = matches!(&**name, "b" | "strong" | "i" | "em" | "a" | "p" | "br");
            if !kept || tags >= MAX_SUMMARY_TAGS {
                return;
            }
            if *name == local_name!("br") {
                tags += 1;
                out.push_str("<br>");
                return;
            }
            if *name == local_name!("p") {
                // A new paragraph closes the open one and whatever is open inside it.
                if let Some(at) = open.iter().rposition(|n| *n == local_name!("p")) {
                    open.truncate(at);
                }
            }
            if open.len() >= MAX_SUMMARY_DEPTH {
                return;
            }
            tags += 1;
            open.push(name.clone());
            out.push('<');
            out.push_str(name);
            if *name == local_name!("a")
                && let Some(href) = tag
                    .attrs
                    .iter()
                    .find(|a| a.name.local == local_name!("href"))
            {
                out.push_str(" href=\"");
                push_escaped(&mut out, &href.value, true);
                out.push('"');
            }
            out.push('>');
        }
        Piece::End(name) => {
            if tags >= MAX_SUMMARY_TAGS {
                return;
            }
            // An end tag without its start tag open is dropped, as the builder would mostly
            // ignore it; `</p>` alone still ends a paragraph there, so it passes.
            match open.iter().rposition(|n| n == name) {
                Some(at) => open.truncate(at),
                None if *name == local_name!("p") => {}
                None => return,
            }
            tags += 1;
            out.push_str("</");
            out.push_str(name);
            out.push('>');
        }
    });
    out
}

/// Appends `text` with `&`, `<`, `>` (and in attribute values `"`) escaped.
fn push_escaped(out: &mut String, text: &str, attribute: bool) {
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' if attribute => out.push_str("&quot;"),
            // The tokenizer reports NUL separately; any left would only be replaced later.
            '\0' => {}
            c => out.push(c),
        }
    }
}

/// Plain text of sanitiser output. Relies on its shape: well-formed tags from the whitelist,
/// attribute values in double quotes, and only `&amp; &lt; &gt; &quot; &nbsp;` as references.
fn html_to_paragraphs(html: &str) -> Vec<String> {
    let mut paragraphs = Vec::new();
    let mut current = String::new();
    let mut link: Option<(String, usize)> = None;
    let mut rest = html;
    while let Some(c) = rest.chars().next() {
        if c == '<' {
            let end = tag_end(rest);
            let whole = &rest[..end];
            let tag = whole
                .strip_prefix('<')
                .map(|t| t.strip_suffix('>').unwrap_or(t))
                .unwrap_or(whole);
            rest = &rest[end..];
            let closing = tag.starts_with('/');
            let name: String = tag
                .trim_start_matches('/')
                .chars()
                .take_while(char::is_ascii_alphanumeric)
                .collect::<String>()
                .to_ascii_lowercase();
            match (name.as_str(), closing) {
                ("br", _) => current.push('\n'),
                ("p", _) => flush(&mut current, &mut paragraphs),
                ("a", false) => link = href(tag).map(|h| (h, current.len())),
                ("a", true) => {
                    if let Some((url, start)) = link.take() {
                        let text = current.get(start..).unwrap_or("").trim();
                        if text != url {
                            current.push_str(&format!(" <{url}>"));
                        }
                    }
                }
                _ => {}
            }
        } else if c == '&' {
            let (decoded, len) = entity(rest);
            current.push_str(decoded);
            rest = &rest[len..];
        } else {
            current.push(c);
            rest = &rest[c.len_utf8()..];
        }
    }
    flush(&mut current, &mut paragraphs);
    paragraphs
}

/// Byte index just past the `>` closing the tag that starts `s`, skipping quoted values
/// (the serialiser leaves `>` unescaped inside attributes).
fn tag_end(s: &str) -> usize {
    let mut quote = None;
    for (i, c) in s.char_indices() {
        match (c, quote) {
            ('"' | '\'', None) => quote = Some(c),
            (q, Some(open)) if q == open => quote = None,
            ('>', None) => return i + 1,
            _ => {}
        }
    }
    s.len()
}

/// The `href` value of an `<a …>` tag's inside, decoded.
fn href(tag: &str) -> Option<String> {
    let start = tag.find("href=\"")? + "href=\"".len();
    let len = tag[start..].find('"')?;
    Some(decode(&tag[start..start + len]).into_owned())
}

fn decode(s: &str) -> Cow<'_, str> {
    if !s.contains('&') {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(i) = rest.find('&') {
        out.push_str(&rest[..i]);
        let (d, len) = entity(&rest[i..]);
        out.push_str(d);
        rest = &rest[i + len..];
    }
    out.push_str(rest);
    Cow::Owned(out)
}

/// Decodes the reference at the start of `s` (which starts with `&`): the text and how many
/// bytes it used. Anything unknown stays literal.
fn entity(s: &str) -> (&'static str, usize) {
    for (name, text) in [
        ("&amp;", "&"),
        ("&lt;", "<"),
        ("&gt;", ">"),
        ("&quot;", "\""),
        ("&nbsp;", " "),
    ] {
        if s.starts_with(name) {
            return (text, name.len());
        }
    }
    ("&", 1)
}

/// Ends the current paragraph: each `<br>`-separated line is collapsed to single spaces.
fn flush(current: &mut String, paragraphs: &mut Vec<String>) {
    let lines: Vec<String> = current
        .split('\n')
        .map(inline)
        .filter(|l| !l.is_empty())
        .collect();
    if !lines.is_empty() {
        paragraphs.push(lines.join("\n"));
    }
    current.clear();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inline_kills_line_breaks_controls_and_overrides() {
        assert_eq!(
            inline("  x\r\nBcc: victim@example.com\t\u{1}y "),
            "x Bcc: victim@example.com y"
        );
        assert_eq!(inline("a\u{202E}b\u{2028}c"), "ab c");
        assert_eq!(inline("نیا\u{200C}سال"), "نیا\u{200C}سال", "ZWNJ stays");
    }

    #[test]
    fn capped_cuts_at_a_word_with_ellipsis() {
        assert_eq!(capped("short", 10), "short");
        let long = "word ".repeat(100);
        let c = capped(&long, 50);
        assert!(c.chars().count() <= 50, "{c}");
        assert!(c.ends_with("word…"), "{c}");
        let c = capped(&"x".repeat(300), 200);
        assert_eq!(c.chars().count(), 200);
    }

    #[test]
    fn urls_and_languages() {
        assert_eq!(web_url(" https://x.pk/a "), Some("https://x.pk/a".into()));
        assert_eq!(web_url("javascript:alert(1)"), None);
        assert_eq!(web_url("https://x.pk/\"><script>"), None);
        assert_eq!(https_url("http://x.pk/a.jpg"), None);
        assert_eq!(
            https_url("https://x.pk/a.jpg"),
            Some("https://x.pk/a.jpg".into())
        );
        assert_eq!(lang_tag("ur-PK"), Some("ur-PK".into()));
        assert_eq!(lang_tag("en\" onload=\"x"), None);
        assert!(is_rtl("ur") && is_rtl("AR-eg") && is_rtl("fa") && is_rtl("he"));
        assert!(!is_rtl("en") && !is_rtl("urd-x") && !is_rtl(""));
    }

    #[test]
    fn summary_whitelist_and_text() {
        let s = summary(
            "<p onclick=\"x()\">Rain <b>finally</b> &amp; <script>alert(1)</script>arrives</p>\
             <p>See <a href=\"https://x.pk/a?b=1&amp;c=2\" onclick=\"y\" target=_blank>the map</a>\
             <a href=\"javascript:alert(1)\"> bad</a><img src=x onerror=alert(1)><br>line two</p>",
        );
        assert!(
            !s.html.contains("script")
                && !s.html.contains("onclick")
                && !s.html.contains("onerror")
        );
        assert!(
            !s.html.contains("javascript") && !s.html.contains("<img"),
            "{}",
            s.html
        );
        assert!(s.html.contains("rel=\"noopener noreferrer\""), "{}", s.html);
        assert_eq!(
            s.paragraphs,
            [
                "Rain finally & arrives",
                "See the map <https://x.pk/a?b=1&c=2> bad\nline two"
            ]
        );
    }

    #[test]
    fn summary_plain_text_escapes_and_keeps_words() {
        let s = summary("Prices up 5% <b>today</b> & tomorrow > yesterday");
        assert_eq!(s.paragraphs, ["Prices up 5% today & tomorrow > yesterday"]);
        assert!(
            s.html.contains("&amp; tomorrow &gt; yesterday"),
            "{}",
            s.html
        );
        assert_eq!(summary("<script>x</script>").html, "");
    }

    #[test]
    fn deep_nesting_is_capped_and_the_text_kept() {
        let deep = format!(
            "{}<p>words</p>{}",
            "<b><i>".repeat(50_000),
            "</i></b>".repeat(50_000)
        );
        let s = summary(&deep);
        assert_eq!(s.paragraphs, ["words"]);
        assert!(
            s.html.matches("<b>").count() <= MAX_SUMMARY_DEPTH,
            "{}",
            s.html
        );
        let divs = format!(
            "{}deep{}",
            "<div>".repeat(200_000),
            "</div>".repeat(200_000)
        );
        assert_eq!(summary(&divs).paragraphs, ["deep"]);
        assert_eq!(crate::domain::html_text(&divs).trim(), "deep");
        // Past the tag cap, tags go and words stay.
        let many = "<b>w</b> ".repeat(MAX_SUMMARY_TAGS);
        let s = summary(&many);
        assert_eq!(s.paragraphs[0].split(' ').count(), MAX_SUMMARY_TAGS);
        assert!(s.html.matches("<b>").count() <= MAX_SUMMARY_TAGS / 2);
    }

    proptest::proptest! {
        #[test]
        fn any_text_cleans_without_panic_and_without_controls(raw in ".{0,400}") {
            let s = summary(&raw);
            proptest::prop_assert!(!s.html.chars().any(char::is_control));
            let _ = crate::domain::html_text(&raw);
        }
    }

    #[test]
    fn character_references_cannot_smuggle_controls() {
        let s = summary("a&#1;TOKEN&#1;b &#13;&#10;Bcc: x");
        assert!(!s.html.chars().any(char::is_control), "{:?}", s.html);
        assert!(
            !s.paragraphs
                .concat()
                .chars()
                .any(|c| c.is_control() && c != '\n')
        );
    }
}
