//! `dispatch articles …`

use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use chrono::{DateTime, Utc};
use clap::Subcommand;

use super::{Ctx, JsonFlag, Outcome, Table};
use crate::domain::{Category, WebUrl, parse_timestamp};
use crate::store::NewArticle;

/// Article commands.
#[derive(Debug, Subcommand)]
pub enum ArticlesCmd {
    /// Add one article; prints its id.
    Add {
        #[arg(long)]
        title: String,
        #[arg(long, value_parser = WebUrl::parse)]
        url: WebUrl,
        #[arg(long, value_parser = Category::parse)]
        category: Category,
        #[arg(long, default_value = "")]
        summary: String,
        #[arg(long)]
        author: Option<String>,
        /// RFC 3339, e.g. 2026-11-28T09:30:00+05:00 [default: now]
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

/// Cleans a line of text from the command line or a feed: control characters become spaces.
pub(crate) fn clean_line(s: &str) -> String {
    s.chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect::<String>()
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
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
            let title = clean_line(&title);
            if title.is_empty() {
                bail!("--title: must not be empty");
            }
            if let Some(l) = &language
                && (l.is_empty()
                    || l.len() > 35
                    || !l.chars().all(|c| c.is_ascii_alphanumeric() || c == '-'))
            {
                bail!("--language: expected a BCP 47 tag such as en or ur, got {l:?}");
            }
            let a = NewArticle {
                external_id: id.unwrap_or_else(|| url.to_string()),
                url: url.to_string(),
                title,
                summary: summary.trim().to_owned(),
                author: author.map(|a| clean_line(&a)).filter(|a| !a.is_empty()),
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
                    let title: String = if a.title.chars().count() > 60 {
                        a.title.chars().take(59).chain(['…']).collect()
                    } else {
                        a.title
                    };
                    t.row([
                        a.id.to_string(),
                        a.published_at,
                        a.category,
                        title,
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
