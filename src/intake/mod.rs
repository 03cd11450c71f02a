//! Newsroom intake: articles that arrive without anyone at a shell.
//!
//! - [`store_records`]: the one storing path for parsed feed items, shared by
//!   `articles import` and polled feeds (idempotent on the item's GUID or URL).
//! - [`fetch`]: the HTTP client feeds are fetched with (limits, conditional GET).
//! - [`feeds`]: the `[[feeds]]` poller the daemon runs, and `feeds poll`.

use crate::import::feeds::{ArticleRecord, ItemError};
use crate::store::{NewArticle, Store};

pub mod feeds;
pub mod fetch;

/// What storing a feed's items did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Stored {
    /// New articles.
    pub added: u64,
    /// Items already stored (same GUID or URL): nothing changed.
    pub existing: u64,
    /// Items that could not become articles, with their positions.
    pub rejected: Vec<ItemError>,
}

/// Stores parsed items as articles, skipping the ones already stored. `breaking` marks
/// every new article as breaking news (on top of what the item itself says).
pub async fn store_records(
    store: &Store,
    items: Vec<Result<ArticleRecord, ItemError>>,
    breaking: bool,
) -> crate::store::Result<Stored> {
    let mut out = Stored::default();
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
                        breaking: a.breaking || breaking,
                    })
                    .await?;
                if new {
                    out.added += 1
                } else {
                    out.existing += 1
                }
            }
            Err(e) => out.rejected.push(e),
        }
    }
    Ok(out)
}
