//! Articles from RSS 2.0 (and 0.9x/1.0), Atom, JSON Feed 1.1 and JSON Lines, as plain [`ArticleRecord`]s.
//!
//! The format is detected from the content, never from a file name ([`detect`]). Each item is
//! mapped on its own: an item that cannot become an article (no link, no title, a bad URL, a
//! date that cannot be read or stored) is an [`ItemError`] naming its position, and the other
//! items still come through.
//!
//! Text from feeds is hostile until cleaned: HTML is reduced to its text in one linear pass
//! (scripts and styles vanish with their content), then [`crate::domain::clean_text`] makes
//! one line of it within the limits every other path uses ([`MAX_TITLE_CHARS`] and so on),
//! cutting longer text with `…`. Feeds are read by feed-rs, whose XML reader does not expand
//! entities declared in a DTD (so an internal subset is read, and XXE stays impossible).
//!
//! - [`detect`]: which format a document is.
//! - `xml`: RSS and Atom items mapped from feed-rs's model; `dates` reads their dates.
//! - `jsonl`: JSON Lines.
//! - `fields`: the id and language rules both share.

use chrono::{DateTime, Utc};

use crate::domain::{Category, WebUrl};

mod dates;
mod detect;
mod fields;
mod jsonl;
mod xml;

pub use crate::domain::{MAX_AUTHOR_CHARS, MAX_SUMMARY_CHARS, MAX_TITLE_CHARS};
pub use detect::detect;
pub use fields::MAX_EXTERNAL_ID_LEN;

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
    /// The first named author, at most [`MAX_AUTHOR_CHARS`].
    pub author: Option<String>,
    /// The item's first valid category, else the default given to [`parse`].
    pub category: Category,
    /// A language tag such as `en` or `ur`, lower-cased, from the item or else the feed.
    pub language: Option<String>,
    /// An `https` image for the item, if the feed offers one.
    pub image_url: Option<WebUrl>,
    /// When it was published (else updated, else the import time); always within the years
    /// the store can hold ([`crate::domain::storable_time`]).
    pub published_at: DateTime<Utc>,
    /// Whether it is breaking news (only JSON Lines can say so).
    pub breaking: bool,
    /// When the feed says the item last changed (as feed-rs reads it: Atom `<updated>`,
    /// JSON Feed `date_modified`), if it says so: a polled feed revises a stored
    /// article only for an item that carries it.
    pub updated: Option<DateTime<Utc>>,
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
            FeedFormat::Rss | FeedFormat::Atom | FeedFormat::JsonFeed => {
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
    /// JSON Feed 1.0/1.1 (jsonfeed.org): one JSON object with an `items` array.
    JsonFeed,
}

impl std::fmt::Display for FeedFormat {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Rss => "RSS",
            Self::Atom => "Atom",
            Self::JsonLines => "JSON Lines",
            Self::JsonFeed => "JSON Feed",
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
    /// The XML (or JSON Feed document) could not be parsed.
    #[error("cannot parse the {0} feed: {1}")]
    Xml(FeedFormat, String),
}

/// How a feed's items become ours: the default category, the feed's category names mapped
/// to ours (`[feeds.category_map]`), and a language for items that carry none.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mapping {
    /// For items without a usable (or mapped) category.
    pub default_category: Category,
    /// The feed's category names, lower-cased, to ours.
    pub category_map: std::collections::BTreeMap<String, Category>,
    /// For items whose feed names no language either; a tag such as `ur`.
    pub language: Option<String>,
}

impl Mapping {
    /// Only a default category: what `articles import` uses.
    pub fn new(default_category: Category) -> Self {
        Self {
            default_category,
            category_map: Default::default(),
            language: None,
        }
    }

    /// The category an item with these category terms gets: the first that maps, else the
    /// first our rules accept, else the default.
    pub(crate) fn category<'a>(&self, terms: impl Iterator<Item = &'a str> + Clone) -> Category {
        terms
            .clone()
            .find_map(|t| self.category_map.get(&t.trim().to_lowercase()).cloned())
            .or_else(|| terms.into_iter().find_map(|t| Category::parse(t).ok()))
            .unwrap_or_else(|| self.default_category.clone())
    }
}

/// The UTF-8 byte-order mark, skipped before detection.
const BOM: &[u8] = b"\xEF\xBB\xBF";

/// Parses a feed into one result per item, in feed order.
///
/// `default_category` is used for items without a usable category; `now` stands in for a
/// missing publication time (a present one that cannot be read rejects the item instead: a
/// story from last year must not reach today's digest as news). JSON Lines objects have the
/// keys `id` (else the URL is used), `url`, `title`, `summary` (plain text), `author`,
/// `category`, `language`, `image_url` (https), `published_at` (RFC 3339) and `breaking`;
/// blank lines are skipped and unknown keys ignored. Present-but-invalid values are errors
/// for the line, because a CMS writing JSON can be fixed, whereas third-party RSS quirks (a
/// category with a comma, an `http` image) are tolerated by falling back.
pub fn parse(
    bytes: &[u8],
    default_category: &Category,
    now: DateTime<Utc>,
) -> Result<(FeedFormat, Vec<Result<ArticleRecord, ItemError>>), FeedError> {
    parse_with(bytes, &Mapping::new(default_category.clone()), now)
}

/// [`parse`] with a feed's [`Mapping`]: the one parser of `articles import` and polled feeds.
pub fn parse_with(
    bytes: &[u8],
    mapping: &Mapping,
    now: DateTime<Utc>,
) -> Result<(FeedFormat, Vec<Result<ArticleRecord, ItemError>>), FeedError> {
    let (format, mut items) = parse_detected(bytes, mapping, now)?;
    if let Some(lang) = &mapping.language {
        for item in items.iter_mut().flatten() {
            item.language.get_or_insert_with(|| lang.clone());
        }
    }
    Ok((format, items))
}

fn parse_detected(
    bytes: &[u8],
    mapping: &Mapping,
    now: DateTime<Utc>,
) -> Result<(FeedFormat, Vec<Result<ArticleRecord, ItemError>>), FeedError> {
    let default_category = &mapping.default_category;
    match detect(bytes).ok_or(FeedError::Unrecognised)? {
        // A JSON Feed document starts with `{` too; feed-rs reads it like RSS and Atom.
        FeedFormat::JsonLines if jsonl::is_json_feed(bytes) => {
            xml::parse(bytes, FeedFormat::JsonFeed, mapping, now)
        }
        FeedFormat::JsonLines => Ok((
            FeedFormat::JsonLines,
            jsonl::parse(bytes, default_category, now)?,
        )),
        detected @ (FeedFormat::Rss | FeedFormat::Atom | FeedFormat::JsonFeed) => {
            xml::parse(bytes, detected, mapping, now)
        }
    }
}

#[cfg(test)]
mod tests;
