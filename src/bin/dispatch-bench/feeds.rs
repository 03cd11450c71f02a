//! `feeds`: what polling 200 feeds every 30 s costs the daemon when nothing changed.
//!
//! The parent serves the feeds (one Atom document each, with an ETag; 304 Not Modified to a
//! matching `If-None-Match`, RFC 9110 §13.1.2) from its own process, so serving them is not
//! charged to the daemon. The child runs the daemon itself ([`dispatch::daemon::run`], its
//! scheduler and sender roles; no web server, which would need a port) with the 200 feeds
//! configured. After the first round of polls (200 full documents, parsed and stored), the
//! child reads its own CPU time (`/proc/self/stat` utime + stime) at the start and the end
//! of a measured window in which every poll is a 304.
//!
//! Target: at most 2% of one core over the window. Beside it, the 304s and full answers the
//! server gave, so a window without polls cannot pass.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use anyhow::{Context as _, Result};
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};

use dispatch::config::Feed;
use dispatch::domain::WebUrl;
use dispatch::store::Store;

use crate::Ctx;
use crate::child::{self, Step};
use crate::setup::{Language, bench_config};
use crate::table::{Row, Verdict};

/// Feeds at full scale.
const FEEDS: u64 = 200;
/// Seconds between polls of each feed (the shortest `poll_secs` allowed).
const POLL_SECS: u64 = 30;
/// The measured window at full scale: four rounds of 304s.
const WINDOW_SECS: u64 = 120;
/// The target, in percent of one core.
const TARGET_PERCENT: f64 = 2.0;
/// Stories in each feed.
const STORIES: usize = 20;

/// Runs the daemon on `db` with `feeds` feeds under `base` until their first round is stored,
/// then measures `window_secs`.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct FeedsStep {
    db: PathBuf,
    base: String,
    feeds: u64,
    window_secs: u64,
}

#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct FeedsOutput {
    /// CPU seconds the daemon used in the window.
    window_cpu_secs: f64,
    window_secs: f64,
    /// Articles stored by the first round.
    articles: i64,
}

impl Step for FeedsStep {
    const NAME: &'static str = "feeds";
    type Output = FeedsOutput;

    async fn run(self) -> Result<FeedsOutput> {
        let store = Store::open(&self.db).await?;
        let mut config = bench_config(&self.db, Language::English, None);
        for i in 0..self.feeds {
            let mut f = Feed::new(WebUrl::parse(&format!("{}/feed/{i}", self.base))?);
            f.poll_secs = POLL_SECS;
            config.feeds.push(f);
        }
        let roles = dispatch::daemon::Roles {
            web: false,
            ..dispatch::daemon::Roles::ALL
        };
        let (stop, shutdown) = tokio::sync::watch::channel(false);
        let daemon = tokio::spawn(dispatch::daemon::run(
            store.clone(),
            Arc::new(config),
            roles,
            shutdown,
        ));
        // The first round: every feed fetched in full, parsed and stored.
        let expected = i64::try_from(self.feeds * STORIES as u64)?;
        let warm = async {
            while store.article_counts().await?.0 < expected {
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            anyhow::Ok(())
        };
        tokio::time::timeout(Duration::from_secs(300), warm)
            .await
            .context("the first round of polls did not store every story in 5 minutes")??;
        // Let the last poll's bookkeeping finish before the window opens.
        tokio::time::sleep(Duration::from_secs(2)).await;
        let (cpu0, t0) = (child::cpu_secs()?, std::time::Instant::now());
        tokio::time::sleep(Duration::from_secs(self.window_secs)).await;
        let (cpu1, window) = (child::cpu_secs()?, t0.elapsed());
        let (articles, _, _) = store.article_counts().await?;
        // The daemon closes the store as it stops.
        let _ = stop.send(true);
        daemon.await.context("the daemon task")??;
        Ok(FeedsOutput {
            window_cpu_secs: cpu1 - cpu0,
            window_secs: window.as_secs_f64(),
            articles,
        })
    }
}

/// What the feed server answered.
#[derive(Debug, Default)]
struct Served {
    full: AtomicU64,
    not_modified: AtomicU64,
}

/// A WordPress-sized Atom feed: `STORIES` entries with summaries.
fn atom(i: u64) -> String {
    let entries: String = (0..STORIES)
        .map(|n| {
            format!(
                r#"<entry><id>feed-{i}-story-{n}</id><title>Story {n} of feed {i}</title>
<link rel="alternate" href="https://news{i}.example.com/story-{n}/"/><category term="Politics"/>
<published>2026-11-28T0{}:00:00Z</published><updated>2026-11-28T0{}:00:00Z</updated>
<summary>{}</summary></entry>"#,
                n % 10,
                n % 10,
                "A paragraph of the story's summary. ".repeat(8)
            )
        })
        .collect();
    format!(
        r#"<?xml version="1.0" encoding="utf-8"?><feed xmlns="http://www.w3.org/2005/Atom"><title>Feed {i}</title><id>https://news{i}.example.com/</id><updated>2026-11-28T00:00:00Z</updated>{entries}</feed>"#
    )
}

async fn serve_feed(
    State(served): State<Arc<Served>>,
    Path(i): Path<u64>,
    headers: HeaderMap,
) -> Response {
    let etag = format!("\"feed-{i}-v1\"");
    let matches = headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|t| t.trim() == etag));
    if matches {
        served.not_modified.fetch_add(1, Ordering::Relaxed);
        return (StatusCode::NOT_MODIFIED, [(header::ETAG, etag)]).into_response();
    }
    served.full.fetch_add(1, Ordering::Relaxed);
    (
        [
            (header::CONTENT_TYPE, "application/atom+xml".to_owned()),
            (header::ETAG, etag),
        ],
        atom(i),
    )
        .into_response()
}

pub(crate) async fn run(ctx: &Ctx) -> Result<Vec<Row>> {
    let feeds = ctx.scale.count(FEEDS);
    // --quick: a tenth of the feeds, and one round of 304s.
    let window_secs = if ctx.scale.is_quick() {
        POLL_SECS + 5
    } else {
        WINDOW_SECS
    };
    let served = Arc::new(Served::default());
    let app = axum::Router::new()
        .route("/feed/{i}", axum::routing::get(serve_feed))
        .with_state(Arc::clone(&served));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let base = format!("http://{}", listener.local_addr()?);
    let server = tokio::spawn(async move { axum::serve(listener, app).await });

    let db = ctx.dir.join("feeds.db");
    Store::open(&db).await?.close().await;
    let step = FeedsStep {
        db,
        base,
        feeds,
        window_secs,
    };
    // The child blocks this thread; the feed server runs on the runtime's others.
    let report = tokio::task::spawn_blocking(move || child::spawn(&step)).await??;
    server.abort();
    let o = &report.output;
    let (full, not_modified) = (
        served.full.load(Ordering::Relaxed),
        served.not_modified.load(Ordering::Relaxed),
    );
    let percent = 100.0 * o.window_cpu_secs / o.window_secs;
    // Every feed polled once in full, then at least once per whole interval of the window.
    let rounds = window_secs / POLL_SECS;
    let expected_304 = feeds * rounds;
    eprintln!(
        "{feeds} feeds every {POLL_SECS} s: {full} full answers, {not_modified} × 304; {} articles; daemon CPU {:.2} s in a {:.0} s window = {percent:.2}% of one core (whole child: {:.1} s CPU, {:.0} MB peak)",
        o.articles, o.window_cpu_secs, o.window_secs, report.cpu_secs, report.rss_mb
    );
    Ok(vec![Row::new(
        "feeds",
        format!("≤ {TARGET_PERCENT}% of a core, {feeds} feeds all 304"),
        format!(
            "{percent:.2}% ({:.2} s CPU in {:.0} s; {not_modified} × 304, {full} full)",
            o.window_cpu_secs, o.window_secs
        ),
        Verdict::of(
            percent <= TARGET_PERCENT
                && full == feeds
                && not_modified >= expected_304
                && o.articles == i64::try_from(feeds * STORIES as u64)?,
        ),
    )])
}
