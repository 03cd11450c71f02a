//! `articles import`: RSS 2.0, Atom or JSON Lines, detected from the content.

use std::path::Path;

use anyhow::Result;
use chrono::Utc;

use super::Outcome;
use crate::domain::Category;
use crate::import::feeds;
use crate::store::{NewArticle, Store};

/// Imports a feed file. Items are idempotent on their GUID (or URL); items that cannot be
/// used are reported as `FILE:ITEM: reason` and skipped.
pub(super) async fn import(
    store: &Store,
    file: &Path,
    bytes: &[u8],
    default: &Category,
) -> Result<Outcome> {
    let name = file.display().to_string();
    let (format, items) =
        feeds::parse(bytes, default, Utc::now()).map_err(|e| anyhow::anyhow!("{name}: {e}"))?;
    let (mut added, mut existing, mut rejected) = (0u64, 0u64, 0u64);
    for item in items {
        match item {
            Ok(a) => {
                let (_, new) = store
                    .insert_article(&NewArticle {
                        external_id: a.external_id,
                        url: a.url.to_string(),
                        title: a.title,
                        summary: a.summary,
                        author: a.author,
                        category: a.category.to_string(),
                        language: a.language,
                        image_url: a.image_url.map(|u| u.to_string()),
                        published_at: a.published_at,
                        breaking: a.breaking,
                    })
                    .await?;
                if new { added += 1 } else { existing += 1 }
            }
            Err(e) => {
                rejected += 1;
                eprintln!("{}", e.located(&name, format));
            }
        }
    }
    println!("{name}: {format:?}: {added} added, {existing} already stored, {rejected} skipped");
    Ok(if rejected > 0 {
        Outcome::Rejected
    } else {
        Outcome::Ok
    })
}
