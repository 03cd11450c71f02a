//! JSON Lines: one article object per line, written by a CMS.

use chrono::{DateTime, Utc};
use serde::Deserialize;

use super::fields::{external_id, language_tag};
use super::{ArticleRecord, BOM, FeedError, ItemError};
use crate::domain::{
    Category, MAX_AUTHOR_CHARS, MAX_SUMMARY_CHARS, MAX_TITLE_CHARS, WebUrl, clean_text,
    parse_timestamp,
};

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

pub(super) fn parse(
    bytes: &[u8],
    default_category: &Category,
    now: DateTime<Utc>,
) -> Result<Vec<Result<ArticleRecord, ItemError>>, FeedError> {
    let bytes = bytes.strip_prefix(BOM).unwrap_or(bytes);
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

/// Whether the whole document is one JSON Feed object: it starts with `{` too, and read as
/// JSON Lines would produce a page of baffling per-line errors.
pub(super) fn is_json_feed(bytes: &[u8]) -> bool {
    let bytes = bytes.strip_prefix(BOM).unwrap_or(bytes);
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
        updated: None,
    })
}
