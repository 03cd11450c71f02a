//! `dispatch articles …`

use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use chrono::{DateTime, Utc};
use clap::Subcommand;

use super::{Ctx, JsonFlag, Outcome, Table};
use crate::domain::{
    Category, MAX_AUTHOR_CHARS, MAX_SUMMARY_CHARS, MAX_TITLE_CHARS, WebUrl, clean_text,
    clean_text_within, parse_timestamp,
};
use crate::import::feeds::MAX_EXTERNAL_ID_LEN;
use crate::store::NewArticle;

/// Article commands.
#[derive(Debug, Subcommand)]
pub enum ArticlesCmd {
    /// Add one article; prints its id.
    Add {
        /// The headline, at most 500 characters.
        #[arg(long)]
        title: String,
        #[arg(long, value_parser = WebUrl::parse)]
        url: WebUrl,
        #[arg(long, value_parser = Category::parse)]
        category: Category,
        /// Plain text (or CMS HTML, sanitised when rendered), at most 1000 characters.
        #[arg(long, default_value = "")]
        summary: String,
        /// At most 200 characters.
        #[arg(long)]
        author: Option<String>,
        /// RFC 3339, e.g. 2026-11-28T09:30:00+05:00, in the years 0000-9999 UTC [default: now]
        #[arg(long, value_parser = parse_timestamp)]
        published_at: Option<DateTime<Utc>>,
        /// BCP 47 language of the article, e.g. ur.
        #[arg(long)]
        language: Option<String>,
        #[arg(long, value_parser = WebUrl::parse)]
        image_url: Option<WebUrl>,
        /// The CMS's id for the article [default: the URL]; adding the same id again changes nothing.
        #[arg(long)]
        id: Option<String>,
        /// Breaking news: sent at once to every list that carries breaking news.
        #[arg(long)]
        breaking: bool,
    },
    /// Import articles from an RSS 2.0, Atom or JSON Lines file (detected from the content).
    Import {
        file: PathBuf,
        /// Category for items that name none.
        #[arg(long, value_parser = Category::parse, default_value = "General News")]
        default_category: Category,
    },
    /// List articles, newest first.
    List {
        /// Only articles published at or after this RFC 3339 time.
        #[arg(long, value_parser = parse_timestamp)]
        since: Option<DateTime<Utc>>,
        #[arg(long)]
        category: Option<String>,
        #[arg(long, default_value_t = 50)]
        limit: i64,
        #[command(flatten)]
        json: JsonFlag,
    },
}

/// `raw` cleaned like the same field from a feed or CSV file; too long is an error naming
/// `flag` (an admin can shorten it, and a stored text that differs from the typed one would
/// surprise).
fn cleaned(flag: &str, raw: &str, max_chars: usize) -> Result<String> {
    clean_text_within(raw, max_chars).map_err(|e| anyhow::anyhow!("{flag} {e}"))
}

pub(super) async fn run(cmd: ArticlesCmd, ctx: &Ctx) -> Result<Outcome> {
    let store = ctx.store().await?;
    match cmd {
        ArticlesCmd::Add {
            title,
            url,
            category,
            summary,
            author,
            published_at,
            language,
            image_url,
            id,
            breaking,
        } => {
            let title = cleaned("--title", &title, MAX_TITLE_CHARS)?;
            if title.is_empty() {
                bail!("--title: must not be empty");
            }
            let summary = cleaned("--summary", &summary, MAX_SUMMARY_CHARS)?;
            let author = match author {
                Some(a) => Some(cleaned("--author", &a, MAX_AUTHOR_CHARS)?),
                None => None,
            };
            if let Some(id) = &id
                && id.trim().len() > MAX_EXTERNAL_ID_LEN
            {
                bail!(
                    "--id is {} bytes long; at most {MAX_EXTERNAL_ID_LEN} are allowed",
                    id.trim().len()
                );
            }
            if let Some(l) = &language
                && (l.is_empty()
                    || l.len() > 35
                    || !l.chars().all(|c| c.is_ascii_alphanumeric() || c == '-'))
            {
                bail!("--language: expected a BCP 47 tag such as en or ur, got {l:?}");
            }
            let a = NewArticle {
                external_id: id
                    .map(|i| i.trim().to_owned())
                    .filter(|i| !i.is_empty())
                    .unwrap_or_else(|| url.to_string()),
                url: url.to_string(),
                title,
                summary,
                author: author.filter(|a| !a.is_empty()),
                category: category.to_string(),
                language,
                image_url: image_url.map(|u| u.to_string()),
                published_at: published_at.unwrap_or_else(Utc::now),
                breaking,
            };
            let (id, new) = store.insert_article(&a).await?;
            if new {
                println!("{id}");
            } else {
                eprintln!(
                    "an article with id {:?} already exists; nothing changed",
                    a.external_id
                );
                println!("{id}");
            }
        }
        ArticlesCmd::Import {
            file,
            default_category,
        } => {
            let bytes =
                std::fs::read(&file).with_context(|| format!("reading {}", file.display()))?;
            return super::articles_import::import(&store, &file, &bytes, &default_category).await;
        }
        ArticlesCmd::List {
            since,
            category,
            limit,
            json,
        } => {
            let rows = store
                .list_articles(since, category.as_deref(), limit)
                .await?;
            if json.json {
                println!("{}", serde_json::to_string_pretty(&rows)?);
            } else {
                let mut t = Table::new(["ID", "PUBLISHED", "CATEGORY", "TITLE", "FLAGS"]);
                for a in rows {
                    // Cleaned again for the terminal: rows written by a CMS, or stored before
                    // cleaning existed, could hold escape sequences.
                    t.row([
                        a.id.to_string(),
                        a.published_at,
                        clean_text(&a.category, 64),
                        clean_text(&a.title, 60),
                        if a.breaking {
                            "breaking".into()
                        } else {
                            String::new()
                        },
                    ]);
                }
                t.print();
            }
        }
    }
    Ok(Outcome::Ok)
}
