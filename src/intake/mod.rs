//! Newsroom intake: articles that arrive without anyone at a shell.
//!
//! - [`store_records`]: the one storing path for parsed feed items, shared by
//!   `articles import` and polled feeds (idempotent on the item's GUID or URL).
//! - [`fetch`]: the HTTP client feeds are fetched with (limits, conditional GET).
//! - [`feeds`]: the `[[feeds]]` poller the daemon runs, and `feeds poll`.
//! - [`sql`]: the `[[sql_sources]]` poller: a CMS's own SQLite file, read-only.
//! - [`subscribers`]: subscriber CSV imports (the CLI's and the console's), stored in batches.

use crate::import::feeds::{ArticleRecord, ItemError};
use crate::store::{NewArticle, Revision, Store, Upserted};

pub mod feeds;
pub mod fetch;
pub mod sql;
pub mod subscribers;

/// What storing a feed's items did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Stored {
    /// New articles.
    pub added: u64,
    /// Items already stored (same GUID or URL) and left as they were.
    pub existing: u64,
    /// Items already stored that changed them ([`Write::Revise`], [`Write::Upsert`]).
    pub updated: u64,
    /// Items already stored that differ, left as they were because the article has gone out
    /// ([`crate::store::Store::article_gone_out`]), by external id.
    pub kept_as_sent: Vec<String>,
    /// Items that could not become articles, with their positions.
    pub rejected: Vec<ItemError>,
}

/// What to do with an item whose article is stored already.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Write {
    /// Leave it (`articles import`: idempotent on the GUID or URL).
    New,
    /// Polled feeds: an item that carries its `updated` time revises the stored article
    /// ([`Revision::Poll`]: unless it has gone out); one without is left, as with `New`.
    Revise,
    /// SQL sources: every row read revises its article ([`Revision::Poll`]), since a row is
    /// read again only when its cursor moved.
    Upsert,
}

/// Stores parsed items as articles. `breaking` marks every new article as breaking news (on
/// top of what the item itself says).
pub async fn store_records(
    store: &Store,
    items: Vec<Result<ArticleRecord, ItemError>>,
    breaking: bool,
    write: Write,
) -> crate::store::Result<Stored> {
    let mut out = Stored::default();
    for item in items {
        match item {
            Ok(a) => {
                let revise = match write {
                    Write::New => false,
                    Write::Revise => a.updated.is_some(),
                    Write::Upsert => true,
                };
                let article = NewArticle {
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
                };
                if !revise {
                    let (_, new) = store.insert_article(&article).await?;
                    if new {
                        out.added += 1;
                    } else {
                        out.existing += 1;
                    }
                    continue;
                }
                match store.upsert_article(&article, Revision::Poll).await? {
                    Upserted::Created(_) => out.added += 1,
                    Upserted::Updated(_) => out.updated += 1,
                    Upserted::Unchanged(_) => out.existing += 1,
                    Upserted::KeptAsSent(_) => out.kept_as_sent.push(article.external_id),
                }
            }
            Err(e) => out.rejected.push(e),
        }
    }
    Ok(out)
}
