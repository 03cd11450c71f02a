//! `dispatch demo`: from a fresh clone to a delivered digest and a working unsubscribe page.
//!
//! Seeds two lists, the sample subscribers (`subscribers/sample.csv`) and a day of sample
//! stories (`config/demo-articles.jsonl`, dated relative to now), sends the daily digest to the
//! outbox folder with the configured transport, then runs the daemon so the links in the
//! messages work. Running it again adds nothing twice.

use std::collections::HashSet;
use std::sync::Arc;

use anyhow::{Context, Result};
use chrono::{Duration, Utc};

use super::{Ctx, Outcome};
use crate::domain::{CategorySet, ListSlug, Timezone};
use crate::import::subscribers_csv::CsvReader;
use crate::schedule::Schedule;
use crate::store::EditionStatus;
use crate::store::subscribers::NewSubscription;
use crate::store::{Created, ListSpec, NewArticle, Store};

const SAMPLE_SUBSCRIBERS: &str = include_str!("../../subscribers/sample.csv");
const SAMPLE_ARTICLES: &str = include_str!("../../config/demo-articles.jsonl");

/// Options of `demo`.
#[derive(Debug, clap::Args)]
pub struct DemoArgs {
    /// Stop after sending instead of running the daemon.
    #[arg(long)]
    no_serve: bool,
}

async fn seed(store: &Store) -> Result<()> {
    let daily = ListSlug::parse("daily")?;
    if store.list_by_slug("daily").await.is_err() {
        store
            .create_list(
                &daily,
                &ListSpec {
                    name: Some("Daily Digest".into()),
                    description: Some("The day's news every morning at 7, by section.".into()),
                    schedule: Some(Some(Schedule::parse("0 7 * * *")?)),
                    timezone: Some(Timezone::parse("Asia/Karachi")?),
                    sends_breaking: Some(true),
                    ..Default::default()
                },
            )
            .await?;
        store
            .create_list(
                &ListSlug::parse("business")?,
                &ListSpec {
                    name: Some("Business Brief".into()),
                    description: Some("Markets and the economy, weekday mornings.".into()),
                    schedule: Some(Some(Schedule::parse("30 8 * * 1-5")?)),
                    timezone: Some(Timezone::parse("Asia/Karachi")?),
                    categories: Some(Some(CategorySet::parse_list("Business")?)),
                    ..Default::default()
                },
            )
            .await?;
        println!(
            "created lists daily (07:00 Asia/Karachi, breaking news) and business (08:30 weekdays)"
        );
    }
    let list = store.list_by_slug("daily").await?;
    let mut reader = CsvReader::new(SAMPLE_SUBSCRIBERS.as_bytes(), list.category_set())
        .map_err(|e| anyhow::anyhow!("sample subscribers: {e}"))?;
    let mut rows = Vec::new();
    while let Some(r) = reader.next_row() {
        let r = r.map_err(|e| anyhow::anyhow!("{}", e.located("subscribers/sample.csv")))?;
        rows.push(NewSubscription {
            email: r.email,
            name: r.name,
            categories: r.categories,
        });
    }
    let added = store
        .subscribe_batch(list.id, &rows, "demo", false)
        .await?
        .iter()
        .filter(|o| **o == crate::store::ImportOutcome::Added)
        .count();
    if added > 0 {
        println!("subscribed {added} sample readers to daily");
    }
    let now = Utc::now();
    let mut new = 0;
    for line in SAMPLE_ARTICLES.lines().filter(|l| !l.trim().is_empty()) {
        let v: serde_json::Value =
            serde_json::from_str(line).context("config/demo-articles.jsonl")?;
        let s = |k: &str| v[k].as_str().map(str::to_owned);
        let ago: i64 = s("published_at")
            .and_then(|p| p.trim_start_matches('-').trim_end_matches('h').parse().ok())
            .unwrap_or(1);
        let a = NewArticle {
            external_id: s("id").context("demo article without id")?,
            url: s("url").context("demo article without url")?,
            title: s("title").unwrap_or_default(),
            summary: s("summary").unwrap_or_default(),
            author: s("author"),
            category: s("category").unwrap_or_else(|| "General News".into()),
            language: s("language"),
            image_url: None,
            published_at: now - Duration::hours(ago),
            breaking: false,
        };
        if store.insert_article(&a).await?.1 {
            new += 1;
        }
    }
    if new > 0 {
        println!("stored {new} sample stories from the last 14 hours");
    }
    Ok(())
}

pub(super) async fn run(args: DemoArgs, ctx: &Ctx) -> Result<Outcome> {
    let store = ctx.store().await?;
    seed(&store).await?;
    let list = store.list_by_slug("daily").await?;
    let engine = super::send::engine(&store, ctx)?;
    match crate::edition::create_digest(&store, &ctx.config, &list, Utc::now(), None).await? {
        Created::New { id, queued, .. } => {
            let e = store.edition(id).await?;
            if e.status == EditionStatus::Skipped {
                println!("no new stories since the last demo digest; nothing to send this time");
            } else {
                println!("edition #{id}: \"{}\" to {queued} readers", e.subject);
                let report = super::send::deliver(&store, &engine, HashSet::from([id])).await?;
                println!("sent {} message(s)", report.sent);
            }
        }
        Created::Existing { .. } => {}
    }
    let outbox = &ctx.config.delivery.outbox;
    if ctx.config.delivery.transport == crate::config::TransportKind::File {
        if let Some((path, link)) = first_message(outbox) {
            println!("\none message:      {}", path.display());
            println!("unsubscribe page: {link}");
        }
        println!("preview the HTML: dispatch preview daily --open");
    }
    if args.no_serve {
        return Ok(Outcome::Ok);
    }
    println!(
        "\nserving the reader pages on http://{} (Ctrl-C to stop)",
        ctx.config.web.bind
    );
    crate::daemon::run(
        store,
        Arc::new(ctx.config.clone()),
        crate::daemon::Roles::ALL,
        crate::daemon::shutdown_on_signals(),
    )
    .await?;
    Ok(Outcome::Ok)
}

/// The newest `.eml` in the outbox and its https unsubscribe link.
fn first_message(outbox: &std::path::Path) -> Option<(std::path::PathBuf, String)> {
    let newest = std::fs::read_dir(outbox)
        .ok()?
        .filter_map(std::result::Result::ok)
        .filter(|e| e.path().extension().is_some_and(|x| x == "eml"))
        .max_by_key(|e| e.metadata().and_then(|m| m.modified()).ok())?
        .path();
    let text = std::fs::read_to_string(&newest).ok()?;
    let start = text.find("List-Unsubscribe: <")? + "List-Unsubscribe: <".len();
    let end = start + text[start..].find('>')?;
    Some((newest, text[start..end].to_owned()))
}
