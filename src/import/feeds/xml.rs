//! RSS and Atom items, mapped from feed-rs's model.

use chrono::{DateTime, Utc};
use feed_rs::model::{Entry, Feed, FeedType, Text};

use super::dates::DateReader;
use super::fields::{external_id, language_tag};
use super::{ArticleRecord, FeedError, FeedFormat, ItemError, Mapping};
use crate::domain::{
    MAX_AUTHOR_CHARS, MAX_SUMMARY_CHARS, MAX_TITLE_CHARS, WebUrl, clean_text, html_text,
};

/// Parses an RSS or Atom document; `detected` is what [`super::detect`] saw.
pub(super) fn parse(
    bytes: &[u8],
    detected: FeedFormat,
    mapping: &Mapping,
    now: DateTime<Utc>,
) -> Result<(FeedFormat, Vec<Result<ArticleRecord, ItemError>>), FeedError> {
    let dates = DateReader::default();
    let parser = feed_rs::parser::Builder::new()
        // feed-rs would invent an id (a hash of link and title, or a random UUID) for items
        // without one; a random id would import the same story again on every run, so leave
        // it empty and fall back to the URL ourselves.
        .id_generator(|_, _, _| String::new())
        .timestamp_parser(dates.parser())
        .build();
    let feed = parser
        .parse(bytes)
        .map_err(|e| FeedError::Xml(detected, e.to_string()))?;
    let format = match feed.feed_type {
        FeedType::Atom => FeedFormat::Atom,
        FeedType::RSS0 | FeedType::RSS1 | FeedType::RSS2 => FeedFormat::Rss,
        FeedType::JSON => FeedFormat::JsonFeed,
    };
    let items = feed
        .entries
        .iter()
        .enumerate()
        .map(|(i, entry)| {
            entry_to_record(entry, &feed, &dates, mapping, now).map_err(|reason| ItemError {
                item: i + 1,
                reason,
            })
        })
        .collect();
    Ok((format, items))
}

fn entry_to_record(
    entry: &Entry,
    feed: &Feed,
    dates: &DateReader,
    mapping: &Mapping,
    now: DateTime<Utc>,
) -> Result<ArticleRecord, String> {
    let title = entry
        .title
        .as_ref()
        .map(|t| clean_text(&text_of(t), MAX_TITLE_CHARS))
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
    // The publication time, else the update time; a present one that cannot be used
    // rejects the item rather than dating an old story now.
    let published_at = match dates.resolve(entry.published)? {
        Some(t) => t,
        None => dates.resolve(entry.updated)?.unwrap_or(now),
    };

    let summary = entry
        .summary
        .as_ref()
        .map(|t| clean_text(&text_of(t), MAX_SUMMARY_CHARS))
        .filter(|s| !s.is_empty())
        .or_else(|| {
            let content = entry.content.as_ref()?;
            let body = content.body.as_deref()?;
            let text = if is_html(content.content_type.as_str()) {
                html_text(body)
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

    // The first category that maps, else the first our rules accept: feeds send terms like
    // "Pakistan, World" that a Category cannot hold, and one odd term should not cost the
    // story its section.
    let category = mapping.category(entry.categories.iter().map(|c| c.term.as_str()));

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
        published_at,
        breaking: false,
        // Unusable as a version: then the item is simply not revised.
        updated: dates.resolve(entry.updated).ok().flatten(),
    })
}

/// A feed text field as plain text: HTML types are reduced to their text, plain text is kept.
fn text_of(text: &Text) -> String {
    if is_html(text.content_type.as_str()) {
        html_text(&text.content)
    } else {
        text.content.clone()
    }
}

fn is_html(content_type: &str) -> bool {
    content_type.contains("html")
}

/// `(Ayesha Khan)` → `Ayesha Khan`: feed-rs leaves the parentheses of RSS's
/// `email (Name)` author form around the name.
fn unparenthesise(name: &str) -> &str {
    let t = name.trim();
    t.strip_prefix('(')
        .and_then(|r| r.strip_suffix(')'))
        .unwrap_or(t)
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
