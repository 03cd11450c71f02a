//! Articles from RSS 2.0 (and 0.9x/1.0), Atom and JSON Lines, as plain [`ArticleRecord`]s.
//!
//! The format is detected from the content, never from a file name ([`detect`]). Each item is
//! mapped on its own: an item that cannot become an article (no link, no title, a bad URL or
//! timestamp) is an [`ItemError`] naming its position, and the other items still come through.
//!
//! Text from feeds is hostile until cleaned: HTML is reduced to its text (by ammonia with no
//! tags allowed, so scripts and styles vanish with their content), control characters are
//! removed, line breaks and whitespace runs become one space, and lengths are capped.

use chrono::{DateTime, Utc};
use feed_rs::model::{Entry, Feed, FeedType, Text};
use serde::Deserialize;

use crate::domain::{Category, WebUrl, parse_timestamp};

/// The longest title kept, in characters.
pub const MAX_TITLE_CHARS: usize = 500;
/// The longest summary kept, in characters; longer ones are cut and end with `…`.
pub const MAX_SUMMARY_CHARS: usize = 1000;
/// The longest author name kept, in characters.
pub const MAX_AUTHOR_CHARS: usize = 200;
/// The longest external id accepted, in bytes. Ids are unique keys in the store; a feed
/// sending kilobytes of id is broken, not generous.
pub const MAX_EXTERNAL_ID_LEN: usize = 2048;

/// One article ready for the store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArticleRecord {
    /// The feed's id for the item (GUID, Atom id, JSON `id`), else its URL: the dedup key.
    pub external_id: String,
    /// Where the article is read.
    pub url: WebUrl,
    /// The headline, plain text, at most [`MAX_TITLE_CHARS`].
    pub title: String,
    /// A plain-text summary, possibly empty, at most [`MAX_SUMMARY_CHARS`].
    pub summary: String,
    /// The first named author.
    pub author: Option<String>,
    /// The item's first valid category, else the default given to [`parse`].
    pub category: Category,
    /// A language tag such as `en` or `ur`, lower-cased, from the item or else the feed.
    pub language: Option<String>,
    /// An `https` image for the item, if the feed offers one.
    pub image_url: Option<WebUrl>,
    /// When it was published (else updated, else the import time).
    pub published_at: DateTime<Utc>,
    /// Whether it is breaking news (only JSON Lines can say so).
    pub breaking: bool,
}

/// An item that was skipped, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ItemError {
    /// The 1-based position of the item in an RSS/Atom feed, or the line in a JSON Lines file.
    pub item: usize,
    /// What is wrong, for a person.
    pub reason: String,
}

impl ItemError {
    /// The error with its file: `file:line: reason` for JSON Lines (the form editors link to),
    /// `file: item N: reason` for XML feeds.
    pub fn located(&self, file: &str, format: FeedFormat) -> String {
        match format {
            FeedFormat::JsonLines => format!("{file}:{}: {}", self.item, self.reason),
            FeedFormat::Rss | FeedFormat::Atom => {
                format!("{file}: item {}: {}", self.item, self.reason)
            }
        }
    }
}

impl std::fmt::Display for ItemError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "item {}: {}", self.item, self.reason)
    }
}

impl std::error::Error for ItemError {}

/// The formats [`parse`] reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FeedFormat {
    /// RSS 2.0, and the older 0.9x and 1.0 (RDF) flavours.
    Rss,
    /// Atom 1.0 (a feed, or a lone entry).
    Atom,
    /// One JSON object per line.
    JsonLines,
}

impl std::fmt::Display for FeedFormat {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Rss => "RSS",
            Self::Atom => "Atom",
            Self::JsonLines => "JSON Lines",
        })
    }
}

/// A document that is not a feed at all (as opposed to a bad item, see [`ItemError`]).
#[derive(Debug, thiserror::Error)]
pub enum FeedError {
    /// Neither XML with an `rss`/`RDF`/`feed` root nor JSON.
    #[error(
        "not a feed: expected RSS or Atom (XML with an <rss> or <feed> root) or JSON Lines (one {{...}} object per line)"
    )]
    Unrecognised,
    /// The XML could not be parsed.
    #[error("cannot parse the {0} feed: {1}")]
    Xml(FeedFormat, String),
    /// A JSON Feed (jsonfeed.org) document, which looks like JSON Lines but is not.
    #[error(
        "this is a JSON Feed (jsonfeed.org) document, which is not supported; write JSON Lines instead, one article object per line"
    )]
    JsonFeed,
}

const BOM: &[u8] = b"\xEF\xBB\xBF";

/// Tells the format from the content: after a byte-order mark and whitespace, `<` is XML
/// (the root element tells RSS from Atom) and `{` is JSON Lines. `None` for anything else,
/// including XML whose root is not a feed.
pub fn detect(bytes: &[u8]) -> Option<FeedFormat> {
    let s = bytes.strip_prefix(BOM).unwrap_or(bytes).trim_ascii_start();
    match s.first()? {
        b'{' => Some(FeedFormat::JsonLines),
        b'<' => {
            let root = xml_root_name(s)?;
            // Ignore a namespace prefix such as `rdf:RDF` or `atom:feed`.
            let local = root.rsplit(|b| *b == b':').next().unwrap_or(root);
            match local {
                b"rss" | b"RDF" => Some(FeedFormat::Rss),
                b"feed" | b"entry" => Some(FeedFormat::Atom),
                _ => None,
            }
        }
        _ => None,
    }
}

/// The name of the first element, skipping the XML declaration, processing instructions,
/// comments and a DOCTYPE.
fn xml_root_name(mut s: &[u8]) -> Option<&[u8]> {
    fn after<'a>(s: &'a [u8], end: &[u8]) -> Option<&'a [u8]> {
        let at = s.windows(end.len()).position(|w| w == end)?;
        Some(&s[at + end.len()..])
    }
    loop {
        s = s.trim_ascii_start();
        if s.starts_with(b"<?") {
            s = after(s, b"?>")?;
        } else if s.starts_with(b"<!--") {
            s = after(s, b"-->")?;
        } else if s.starts_with(b"<!") {
            s = after(s, b">")?;
        } else if let Some(rest) = s.strip_prefix(b"<") {
            let end = rest
                .iter()
                .position(|b| b.is_ascii_whitespace() || *b == b'>' || *b == b'/')
                .unwrap_or(rest.len());
            return Some(&rest[..end]);
        } else {
            return None;
        }
    }
}

/// Parses a feed into one result per item, in feed order.
///
/// `default_category` is used for items without a usable category; `now` stands in for a
/// missing publication time. JSON Lines objects have the keys `id` (else the URL is used),
/// `url`, `title`, `summary` (plain text), `author`, `category`, `language`, `image_url`
/// (https), `published_at` (RFC 3339) and `breaking`; blank lines are skipped and unknown keys
/// ignored. Present-but-invalid values are errors for the line, because a CMS writing JSON can
/// be fixed, whereas third-party RSS quirks (a category with a comma, an `http` image) are
/// tolerated by falling back.
pub fn parse(
    bytes: &[u8],
    default_category: &Category,
    now: DateTime<Utc>,
) -> Result<(FeedFormat, Vec<Result<ArticleRecord, ItemError>>), FeedError> {
    match detect(bytes).ok_or(FeedError::Unrecognised)? {
        FeedFormat::JsonLines => Ok((
            FeedFormat::JsonLines,
            parse_json_lines(bytes, default_category, now)?,
        )),
        detected @ (FeedFormat::Rss | FeedFormat::Atom) => {
            parse_xml(bytes, detected, default_category, now)
        }
    }
}

fn parse_xml(
    bytes: &[u8],
    detected: FeedFormat,
    default_category: &Category,
    now: DateTime<Utc>,
) -> Result<(FeedFormat, Vec<Result<ArticleRecord, ItemError>>), FeedError> {
    let parser = feed_rs::parser::Builder::new()
        // feed-rs would invent an id (a hash of link and title, or a random UUID) for items
        // without one; a random id would import the same story again on every run, so leave
        // it empty and fall back to the URL ourselves.
        .id_generator(|_, _, _| String::new())
        .build();
    let feed = parser
        .parse(bytes)
        .map_err(|e| FeedError::Xml(detected, e.to_string()))?;
    let format = match feed.feed_type {
        FeedType::Atom => FeedFormat::Atom,
        FeedType::RSS0 | FeedType::RSS1 | FeedType::RSS2 => FeedFormat::Rss,
        // Only reachable if feed-rs's own sniffing disagreed with ours; trust the root we saw.
        FeedType::JSON => detected,
    };
    let html = HtmlToText::new();
    let items = feed
        .entries
        .iter()
        .enumerate()
        .map(|(i, entry)| {
            entry_to_record(entry, &feed, &html, default_category, now).map_err(|reason| {
                ItemError {
                    item: i + 1,
                    reason,
                }
            })
        })
        .collect();
    Ok((format, items))
}

fn entry_to_record(
    entry: &Entry,
    feed: &Feed,
    html: &HtmlToText,
    default_category: &Category,
    now: DateTime<Utc>,
) -> Result<ArticleRecord, String> {
    let title = entry
        .title
        .as_ref()
        .map(|t| clean_text(&html.text_of(t), MAX_TITLE_CHARS))
        .unwrap_or_default();
    // Prefer the link to the article itself over enclosures, comments or `self` links.
    let link = entry
        .links
        .iter()
        .find(|l| matches!(l.rel.as_deref(), None | Some("alternate")))
        .or_else(|| entry.links.first())
        .map(|l| l.href.trim())
        .filter(|href| !href.is_empty());
    let Some(link) = link else {
        return Err(if title.is_empty() {
            "the item has neither a link nor a title".to_owned()
        } else {
            format!("{title:?} has no link")
        });
    };
    let url = WebUrl::parse(link).map_err(|e| format!("link: {e}"))?;
    if title.is_empty() {
        return Err(format!("the item linking to {url} has no title"));
    }
    let external_id = external_id(&entry.id, &url)?;

    let summary = entry
        .summary
        .as_ref()
        .map(|t| clean_text(&html.text_of(t), MAX_SUMMARY_CHARS))
        .filter(|s| !s.is_empty())
        .or_else(|| {
            let content = entry.content.as_ref()?;
            let body = content.body.as_deref()?;
            let text = if is_html(content.content_type.as_str()) {
                html.strip(body)
            } else {
                body.to_owned()
            };
            Some(clean_text(&text, MAX_SUMMARY_CHARS))
        })
        .unwrap_or_default();

    let author = entry
        .authors
        .iter()
        .filter_map(|p| p.name.as_deref())
        .map(|n| clean_text(unparenthesise(n), MAX_AUTHOR_CHARS))
        .find(|n| !n.is_empty());

    // The first category our rules accept: feeds send terms like "Pakistan, World" that a
    // Category cannot hold, and one odd term should not cost the story its section.
    let category = entry
        .categories
        .iter()
        .find_map(|c| Category::parse(&c.term).ok())
        .unwrap_or_else(|| default_category.clone());

    let language = entry
        .language
        .as_deref()
        .or(feed.language.as_deref())
        .and_then(language_tag);

    Ok(ArticleRecord {
        external_id,
        url,
        title,
        summary,
        author,
        category,
        language,
        image_url: entry_image(entry),
        published_at: entry.published.or(entry.updated).unwrap_or(now),
        breaking: false,
    })
}

/// `(Ayesha Khan)` → `Ayesha Khan`: feed-rs leaves the parentheses of RSS's
/// `email (Name)` author form around the name.
fn unparenthesise(name: &str) -> &str {
    let t = name.trim();
    t.strip_prefix('(')
        .and_then(|r| r.strip_suffix(')'))
        .unwrap_or(t)
}

/// The item's id, or its URL when it has none.
fn external_id(id: &str, url: &WebUrl) -> Result<String, String> {
    let id = id.trim();
    if id.len() > MAX_EXTERNAL_ID_LEN {
        return Err(format!(
            "the id is {} bytes long; at most {MAX_EXTERNAL_ID_LEN} are allowed",
            id.len()
        ));
    }
    Ok(if id.is_empty() {
        url.as_str().to_owned()
    } else {
        id.to_owned()
    })
}

/// The first https image among the item's media contents (enclosures included), then its
/// thumbnails. Plain http images are skipped: mail clients warn about or block them.
fn entry_image(entry: &Entry) -> Option<WebUrl> {
    let contents = entry.media.iter().flat_map(|m| &m.content).filter_map(|c| {
        let url = c.url.as_ref()?.as_str();
        let is_image = match &c.content_type {
            Some(t) => t.ty().as_str() == "image",
            // MediaRSS often omits the type; judge by the file name then.
            None => {
                let path = url
                    .split(['?', '#'])
                    .next()
                    .unwrap_or(url)
                    .to_ascii_lowercase();
                [".jpg", ".jpeg", ".png", ".webp", ".gif"]
                    .iter()
                    .any(|ext| path.ends_with(ext))
            }
        };
        is_image.then_some(url)
    });
    let thumbnails = entry
        .media
        .iter()
        .flat_map(|m| &m.thumbnails)
        .map(|t| t.image.uri.as_str());
    contents
        .chain(thumbnails)
        .filter(|u| u.starts_with("https://"))
        .find_map(|u| WebUrl::parse(u).ok())
}

/// A BCP 47-shaped language tag, lower-cased (`en`, `ur`, `en-gb`), or `None` for junk.
fn language_tag(raw: &str) -> Option<String> {
    let tag = raw.trim();
    let ok = !tag.is_empty()
        && tag.len() <= 35
        && tag.split('-').all(|part| {
            !part.is_empty() && part.len() <= 8 && part.bytes().all(|b| b.is_ascii_alphanumeric())
        });
    ok.then(|| tag.to_ascii_lowercase())
}

fn is_html(content_type: &str) -> bool {
    content_type.contains("html")
}

/// Reduces HTML to text. Holds one ammonia configuration for a whole feed.
struct HtmlToText {
    cleaner: ammonia::Builder<'static>,
}

impl HtmlToText {
    fn new() -> Self {
        Self {
            // No tags allowed: every element is dropped and its text kept, except script and
            // style (ammonia's default clean-content tags), whose text goes too.
            cleaner: ammonia::Builder::empty(),
        }
    }

    /// A feed text field as plain text: HTML types are stripped, plain text is kept.
    fn text_of(&self, text: &Text) -> String {
        if is_html(text.content_type.as_str()) {
            self.strip(&text.content)
        } else {
            text.content.clone()
        }
    }

    /// HTML to text. Entities are decoded; block elements become word breaks.
    fn strip(&self, html: &str) -> String {
        let spaced = space_block_tags(html);
        let cleaned = self.cleaner.clean(&spaced).to_string();
        unescape_serialised(&cleaned)
    }
}

/// Puts a space before each block-level tag so `<p>One</p><p>Two</p>` reads "One Two" rather
/// than "OneTwo" once the tags are gone. Inline tags (`<b>`, `<a>`) get none, so that
/// `<b>Pak</b>istan` stays one word.
fn space_block_tags(html: &str) -> String {
    const BLOCK: [&str; 24] = [
        "p",
        "br",
        "div",
        "li",
        "ul",
        "ol",
        "h1",
        "h2",
        "h3",
        "h4",
        "h5",
        "h6",
        "tr",
        "td",
        "th",
        "table",
        "blockquote",
        "section",
        "article",
        "header",
        "footer",
        "figure",
        "figcaption",
        "hr",
    ];
    let mut out = String::with_capacity(html.len() + 16);
    let mut rest = html;
    while let Some(at) = rest.find('<') {
        out.push_str(&rest[..at]);
        let tag = &rest[at + 1..];
        let tag = tag.strip_prefix('/').unwrap_or(tag);
        let name_len = tag
            .find(|c: char| !c.is_ascii_alphanumeric())
            .unwrap_or(tag.len());
        if BLOCK
            .iter()
            .any(|b| b.eq_ignore_ascii_case(&tag[..name_len]))
        {
            out.push(' ');
        }
        out.push('<');
        rest = &rest[at + 1..];
    }
    out.push_str(rest);
    out
}

/// Undoes the escaping html5ever's serialiser applies to text (`&amp;`, `&lt;`, `&gt;`,
/// `&quot;`, `&nbsp;`), in one pass so `&amp;lt;` becomes `&lt;` and not `<`.
fn unescape_serialised(s: &str) -> String {
    const ENTITIES: [(&str, char); 6] = [
        ("&amp;", '&'),
        ("&lt;", '<'),
        ("&gt;", '>'),
        ("&quot;", '"'),
        ("&#39;", '\''),
        ("&nbsp;", '\u{a0}'),
    ];
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(at) = rest.find('&') {
        out.push_str(&rest[..at]);
        rest = &rest[at..];
        match ENTITIES.iter().find(|(e, _)| rest.starts_with(e)) {
            Some((e, c)) => {
                out.push(*c);
                rest = &rest[e.len()..];
            }
            None => {
                out.push('&');
                rest = &rest[1..];
            }
        }
    }
    out.push_str(rest);
    out
}

/// One line of text: whitespace runs (line breaks included) become one space, other control
/// characters are dropped, the ends are trimmed, and anything past `max_chars` is cut at a
/// character boundary and marked with `…`.
fn clean_text(s: &str, max_chars: usize) -> String {
    let mut out = String::with_capacity(s.len().min(max_chars * 4));
    let mut chars = 0;
    let mut space = false;
    for c in s.chars() {
        if c.is_whitespace() {
            space = true;
            continue;
        }
        if c.is_control() || c == '\u{feff}' {
            continue;
        }
        let needed = if space && chars > 0 { 2 } else { 1 };
        if chars + needed > max_chars {
            // Leave room for the ellipsis within the cap.
            while chars >= max_chars {
                out.pop();
                chars -= 1;
            }
            let trimmed = out.trim_end().len();
            out.truncate(trimmed);
            out.push('…');
            return out;
        }
        if space && chars > 0 {
            out.push(' ');
            chars += 1;
        }
        space = false;
        out.push(c);
        chars += 1;
    }
    out
}

/// One JSON Lines object. Every key is optional here so that a missing one is reported by
/// name rather than as serde's generic "missing field".
#[derive(Deserialize)]
#[serde(expecting = "an article object")]
struct JsonItem {
    /// A string or a number: CMS ids are often integers.
    id: Option<serde_json::Value>,
    url: Option<String>,
    title: Option<String>,
    summary: Option<String>,
    author: Option<String>,
    category: Option<String>,
    language: Option<String>,
    image_url: Option<String>,
    published_at: Option<String>,
    breaking: Option<bool>,
}

fn parse_json_lines(
    bytes: &[u8],
    default_category: &Category,
    now: DateTime<Utc>,
) -> Result<Vec<Result<ArticleRecord, ItemError>>, FeedError> {
    let bytes = bytes.strip_prefix(BOM).unwrap_or(bytes);
    if is_json_feed(bytes) {
        return Err(FeedError::JsonFeed);
    }
    let mut items = Vec::new();
    for (i, line) in bytes.split(|b| *b == b'\n').enumerate() {
        if line.trim_ascii().is_empty() {
            continue;
        }
        items.push(
            json_line_to_record(line, default_category, now).map_err(|reason| ItemError {
                item: i + 1,
                reason,
            }),
        );
    }
    Ok(items)
}

/// Whether the whole document is one JSON Feed object: it starts with `{` too, and would
/// otherwise produce a page of baffling per-line errors.
fn is_json_feed(bytes: &[u8]) -> bool {
    #[derive(Deserialize)]
    struct Probe {
        version: Option<String>,
    }
    serde_json::from_slice::<Probe>(bytes)
        .ok()
        .and_then(|p| p.version)
        .is_some_and(|v| v.contains("jsonfeed.org"))
}

fn json_line_to_record(
    line: &[u8],
    default_category: &Category,
    now: DateTime<Utc>,
) -> Result<ArticleRecord, String> {
    let item: JsonItem = serde_json::from_slice(line).map_err(|e| {
        // The location serde appends says "line 1" of our one-line slice; give the column only.
        let message = e.to_string();
        let message = message
            .rsplit_once(" at line ")
            .map_or(message.as_str(), |(m, _)| m);
        format!("bad JSON: {message} (column {})", e.column())
    })?;
    let nonempty = |v: Option<String>| v.filter(|s| !s.trim().is_empty());

    let url = nonempty(item.url).ok_or("missing \"url\"")?;
    let url = WebUrl::parse(&url).map_err(|e| format!("\"url\": {e}"))?;
    let title = clean_text(item.title.as_deref().unwrap_or(""), MAX_TITLE_CHARS);
    if title.is_empty() {
        return Err("missing \"title\"".to_owned());
    }
    let id = match item.id {
        None | Some(serde_json::Value::Null) => String::new(),
        Some(serde_json::Value::String(s)) => s,
        Some(serde_json::Value::Number(n)) => n.to_string(),
        Some(other) => {
            // Name the type rather than echo the value, which could be a huge object.
            let kind = match other {
                serde_json::Value::Bool(_) => "a boolean",
                serde_json::Value::Array(_) => "an array",
                _ => "an object",
            };
            return Err(format!("\"id\": expected a string or a number, got {kind}"));
        }
    };
    let external_id = external_id(&id, &url)?;
    let category = match nonempty(item.category) {
        None => default_category.clone(),
        Some(c) => Category::parse(&c).map_err(|e| format!("\"category\": {e}"))?,
    };
    let language = match nonempty(item.language) {
        None => None,
        Some(l) => Some(language_tag(&l).ok_or_else(|| {
            format!("\"language\": {l:?} is not a language tag such as \"en\" or \"ur\"")
        })?),
    };
    let image_url = match nonempty(item.image_url) {
        None => None,
        Some(u) => {
            let u = WebUrl::parse(&u).map_err(|e| format!("\"image_url\": {e}"))?;
            if !u.as_str().starts_with("https://") {
                return Err(format!("\"image_url\": {u} must use https"));
            }
            Some(u)
        }
    };
    let published_at = match nonempty(item.published_at) {
        None => now,
        Some(t) => parse_timestamp(&t).map_err(|e| format!("\"published_at\": {e}"))?,
    };
    Ok(ArticleRecord {
        external_id,
        url,
        title,
        summary: clean_text(item.summary.as_deref().unwrap_or(""), MAX_SUMMARY_CHARS),
        author: nonempty(item.author)
            .map(|a| clean_text(&a, MAX_AUTHOR_CHARS))
            .filter(|a| !a.is_empty()),
        category,
        language,
        image_url,
        published_at,
        breaking: item.breaking.unwrap_or(false),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const RSS: &[u8] = include_bytes!("../../tests/fixtures/feeds/sample.rss");
    const ATOM: &[u8] = include_bytes!("../../tests/fixtures/feeds/sample.atom");
    const JSONL: &[u8] = include_bytes!("../../tests/fixtures/feeds/sample.jsonl");

    fn general() -> Category {
        Category::parse("General News").unwrap()
    }

    fn now() -> DateTime<Utc> {
        parse_timestamp("2026-11-28T02:00:00Z").unwrap()
    }

    fn split(items: Vec<Result<ArticleRecord, ItemError>>) -> (Vec<ArticleRecord>, Vec<ItemError>) {
        let mut good = Vec::new();
        let mut bad = Vec::new();
        for item in items {
            match item {
                Ok(a) => good.push(a),
                Err(e) => bad.push(e),
            }
        }
        (good, bad)
    }

    #[test]
    fn detects_format_from_content() {
        assert_eq!(detect(RSS), Some(FeedFormat::Rss));
        assert_eq!(detect(ATOM), Some(FeedFormat::Atom));
        assert_eq!(detect(JSONL), Some(FeedFormat::JsonLines));
        assert_eq!(
            detect(b"\xEF\xBB\xBF \r\n<!-- hi --><!DOCTYPE x><rdf:RDF>"),
            Some(FeedFormat::Rss)
        );
        assert_eq!(detect(b"\n\t{\"url\":1}"), Some(FeedFormat::JsonLines));
        assert_eq!(detect(b"<html><body>"), None);
        assert_eq!(detect(b"email,name"), None);
        assert_eq!(detect(b""), None);
        assert!(matches!(
            parse(b"<html></html>", &general(), now()),
            Err(FeedError::Unrecognised)
        ));
    }

    #[test]
    fn rss_items_are_mapped_and_bad_ones_reported() {
        let (format, items) = parse(RSS, &general(), now()).unwrap();
        assert_eq!(format, FeedFormat::Rss);
        let (good, bad) = split(items);
        assert_eq!(good.len(), 4, "{bad:?}");

        let cabinet = &good[0];
        assert_eq!(
            cabinet.external_id,
            "https://news.example.pk/2026/11/cabinet-approves-budget"
        );
        assert_eq!(
            cabinet.title,
            "Federal cabinet approves revised budget & relief package"
        );
        assert_eq!(
            cabinet.summary,
            "The cabinet met in Islamabad on Thursday and approved a Rs 120 billion relief package. Details “to follow” next week."
        );
        assert_eq!(cabinet.author.as_deref(), Some("Ayesha Khan"));
        assert_eq!(cabinet.category.as_str(), "Politics");
        assert_eq!(cabinet.language.as_deref(), Some("en"));
        assert_eq!(
            cabinet.image_url.as_ref().map(WebUrl::as_str),
            Some("https://img.example.pk/cabinet.jpg")
        );
        assert_eq!(
            cabinet.published_at,
            parse_timestamp("2026-11-27T09:30:00Z").unwrap()
        );
        assert!(!cabinet.breaking);

        // No GUID: the URL is the id. No date: the import time.
        let kse = &good[1];
        assert_eq!(kse.external_id, kse.url.as_str());
        assert_eq!(kse.published_at, now());
        assert_eq!(kse.category, Category::parse("Business").unwrap());
        assert_eq!(kse.image_url, None, "http images are not used");

        // RSS has no per-item language, so the channel's applies.
        let urdu = good
            .iter()
            .find(|a| a.url.host() == "urdu.example.pk")
            .unwrap();
        assert_eq!(urdu.title, "کراچی میں بارش، شہری سیلاب کا خدشہ");
        assert_eq!(urdu.category, general());
        assert_eq!(urdu.language.as_deref(), Some("en"));
        assert_eq!(urdu.external_id, "urdu-5521");

        let mut reasons: Vec<(usize, &str)> =
            bad.iter().map(|e| (e.item, e.reason.as_str())).collect();
        reasons.sort();
        assert_eq!(
            reasons,
            [
                (3, "\"Senate session adjourned without quorum\" has no link"),
                (
                    4,
                    "the item linking to https://news.example.pk/2026/11/untitled has no title"
                ),
                (
                    6,
                    "link: invalid URL \"javascript:alert(1)\": it must start with http:// or https://"
                ),
            ]
        );
        assert_eq!(
            bad[0].located("sample.rss", format),
            format!("sample.rss: item {}: {}", bad[0].item, bad[0].reason)
        );
    }

    #[test]
    fn hostile_html_becomes_plain_text() {
        let (_, items) = parse(RSS, &general(), now()).unwrap();
        let (good, _) = split(items);
        let cricket = good.iter().find(|a| a.title.contains("series")).unwrap();
        assert_eq!(
            cricket.title,
            "Pakistan level T20 series against New Zealand <2-2>"
        );
        assert_eq!(
            cricket.summary,
            "Babar Azam scored 78 as Pakistan won by 6 wickets in Rawalpindi. Series decider on Sunday."
        );
    }

    #[test]
    fn atom_entries_are_mapped() {
        let (format, items) = parse(ATOM, &general(), now()).unwrap();
        assert_eq!(format, FeedFormat::Atom);
        let (good, bad) = split(items);
        assert!(bad.is_empty(), "{bad:?}");
        assert_eq!(good.len(), 3);
        let first = &good[0];
        assert_eq!(first.external_id, "tag:news.example.pk,2026:article-1041");
        assert_eq!(
            first.url.as_str(),
            "https://news.example.pk/2026/11/kse-100-record"
        );
        assert_eq!(first.title, "KSE-100 index closes at a record high");
        assert_eq!(
            first.summary,
            "Banks and fertiliser stocks led the rally; volumes rose 14%."
        );
        assert_eq!(first.author.as_deref(), Some("Bilal Ahmed"));
        assert_eq!(first.category.as_str(), "Business");
        // Updated only: used as the publication time.
        assert_eq!(
            first.published_at,
            parse_timestamp("2026-11-27T16:05:00+05:00").unwrap()
        );
        assert_eq!(
            first.image_url.as_ref().map(WebUrl::as_str),
            Some("https://img.example.pk/kse.png")
        );
        // Summary missing: taken from the HTML content.
        assert_eq!(
            good[1].summary,
            "The PCB named a 15-member squad for the Test series in Australia. Two uncapped pace bowlers were included."
        );
        assert_eq!(good[2].language.as_deref(), Some("ur"));
        assert_eq!(good[2].title, "وزیراعظم کا قوم سے خطاب آج رات");
        assert_eq!(
            good[2].summary,
            "وزیراعظم آج رات نو بجے قوم سے خطاب کریں گے۔"
        );
    }

    #[test]
    fn json_lines_report_bad_lines_by_number() {
        let (format, items) = parse(JSONL, &general(), now()).unwrap();
        assert_eq!(format, FeedFormat::JsonLines);
        let (good, bad) = split(items);
        assert_eq!(good.len(), 3, "{bad:?}");
        let breaking = good.iter().find(|a| a.breaking).unwrap();
        assert_eq!(breaking.external_id, "cms-88121");
        assert_eq!(breaking.category.as_str(), "Politics");
        assert_eq!(
            breaking.published_at,
            parse_timestamp("2026-11-28T06:40:00+05:00").unwrap()
        );
        assert_eq!(
            breaking.image_url.as_ref().map(WebUrl::as_str),
            Some("https://img.example.pk/minister.jpg")
        );
        let defaulted = good
            .iter()
            .find(|a| a.external_id == a.url.as_str())
            .unwrap();
        assert_eq!(defaulted.category, general());
        assert_eq!(defaulted.published_at, now());
        assert_eq!(
            defaulted.title,
            "Gas supply to be restored in Quetta by evening"
        );
        assert!(good.iter().any(|a| a.language.as_deref() == Some("ur")));

        let got: Vec<(usize, String)> = bad.iter().map(|e| (e.item, e.reason.clone())).collect();
        let want_prefixes = [
            (5, "bad JSON: "),
            (6, "missing \"url\""),
            (7, "\"published_at\": invalid timestamp \"yesterday\""),
            (
                8,
                "bad JSON: invalid type: string \"yes\", expected a boolean (column ",
            ),
            (
                9,
                "\"image_url\": http://img.example.pk/x.jpg must use https",
            ),
            (10, "missing \"title\""),
        ];
        assert_eq!(got.len(), want_prefixes.len(), "{got:#?}");
        for ((line, reason), (want_line, want)) in got.iter().zip(want_prefixes) {
            assert_eq!(*line, want_line, "{reason}");
            assert!(reason.starts_with(want), "{reason:?} vs {want:?}");
        }
        assert_eq!(
            bad[0].located("sample.jsonl", format),
            format!("sample.jsonl:5: {}", bad[0].reason)
        );
    }

    #[test]
    fn json_ids_may_be_numbers() {
        let line = br#"{"id": 88123, "url": "https://news.example.pk/a", "title": "A"}
{"id": ["x"], "url": "https://news.example.pk/b", "title": "B"}"#;
        let (_, items) = parse(line, &general(), now()).unwrap();
        assert_eq!(items[0].as_ref().unwrap().external_id, "88123");
        assert_eq!(
            items[1].as_ref().unwrap_err().reason,
            "\"id\": expected a string or a number, got an array"
        );
    }

    #[test]
    fn json_feed_is_refused_with_a_reason() {
        let doc = br#"{
            "version": "https://jsonfeed.org/version/1.1",
            "title": "News",
            "items": []
        }"#;
        assert!(matches!(
            parse(doc, &general(), now()),
            Err(FeedError::JsonFeed)
        ));
    }

    #[test]
    fn malformed_xml_is_a_feed_error() {
        let err = parse(
            b"<rss version=\"2.0\"><channel><item><title>x</ti",
            &general(),
            now(),
        );
        assert!(
            matches!(err, Err(FeedError::Xml(FeedFormat::Rss, _))),
            "{err:?}"
        );
    }

    #[test]
    fn clean_text_caps_at_a_char_boundary() {
        let long = "ب".repeat(1200);
        let s = clean_text(&long, MAX_SUMMARY_CHARS);
        assert_eq!(s.chars().count(), MAX_SUMMARY_CHARS);
        assert!(s.ends_with('…'));
        assert_eq!(clean_text("  a\r\n\tb\u{7}c  ", 10), "a bc");
        assert_eq!(clean_text("abcdef", 6), "abcdef");
        assert_eq!(clean_text("abc defg", 6), "abc d…");
    }

    #[test]
    fn entities_and_tags() {
        let h = HtmlToText::new();
        assert_eq!(
            clean_text(&h.strip("<p>Tom &amp; Jerry&nbsp;&#8217;s</p><p>&amp;lt;b&gt;</p><script>x()</script><b>Pak</b>istan"), 100),
            "Tom & Jerry ’s &lt;b> Pakistan"
        );
    }
}
