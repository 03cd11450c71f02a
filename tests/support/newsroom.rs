//! A newsroom for the sending tests that run the engine in-process: list `daily` with `n`
//! readers and three stories, a config sending to a test relay, the digest, and a run that
//! fails the test instead of hanging. Used by `tests/delivery/` and `tests/relay_limits.rs`.

use std::collections::HashSet;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::time::Duration;

use chrono::Utc;
use dispatch::config::{Config, Security, TransportKind};
use dispatch::delivery::{Engine, Mode, Report};
use dispatch::domain::{EmailAddress, ListSlug};
use dispatch::edition;
use dispatch::store::subscribers::NewSubscription;
use dispatch::store::{Created, ListRow, ListSpec, NewArticle, Store};
use tokio::sync::watch;

/// The address of reader `i`.
pub fn reader(i: usize) -> String {
    format!("reader{i:03}@example.org")
}

/// Reader `i`'s index from an address made by [`reader`].
pub fn index_of(addr: &str) -> usize {
    addr.trim_start_matches("reader")
        .split('@')
        .next()
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("not a reader address: {addr}"))
}

/// SMTP without TLS to 127.0.0.1:`port`, 3 connections, 2 s timeouts, retries due at once.
pub fn smtp_config(port: u16, db: &Path) -> Config {
    let mut c = Config::default();
    c.database.path = db.to_owned();
    c.web.public_url = dispatch::domain::WebUrl::parse("https://news.example.com").unwrap();
    c.delivery.transport = TransportKind::Smtp;
    c.smtp.host = "127.0.0.1".into();
    c.smtp.port = port;
    c.smtp.security = Security::None;
    c.smtp.timeout_secs = 2;
    c.smtp.connections = 3;
    c.sending.retry_base_secs = 0;
    c
}

/// List `daily` (which carries breaking news too) with `n` readers named "Reader {i}", and
/// three stories from the last hours (Politics, Business, Sport).
pub async fn seed_daily(store: &Store, n: usize) -> ListRow {
    let list = store
        .create_list(
            &ListSlug::parse("daily").unwrap(),
            &ListSpec {
                name: Some("Daily Digest".into()),
                description: Some("The day's news".into()),
                sends_breaking: Some(true),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    let rows: Vec<NewSubscription> = (0..n)
        .map(|i| NewSubscription {
            email: EmailAddress::parse(&reader(i)).unwrap(),
            name: Some(format!("Reader {i}")),
            categories: None,
        })
        .collect();
    for chunk in rows.chunks(200) {
        store
            .subscribe_batch(list.id, chunk, "test", false)
            .await
            .unwrap();
    }
    let now = Utc::now();
    for (i, cat) in ["Politics", "Business", "Sport"].iter().enumerate() {
        store
            .insert_article(&NewArticle {
                external_id: format!("story-{i}"),
                url: format!("https://news.example.com/story/{i}"),
                title: format!("{cat} story {i}"),
                summary: format!("What happened in {cat} today."),
                author: Some("Staff".into()),
                category: (*cat).into(),
                language: Some("en".into()),
                image_url: None,
                published_at: now - chrono::Duration::hours(i as i64 + 1),
                breaking: false,
            })
            .await
            .unwrap();
    }
    list
}

/// Records the list's digest and returns its id.
pub async fn digest(store: &Store, config: &Config, list: &ListRow) -> i64 {
    match edition::create_digest(store, config, list, Utc::now(), None)
        .await
        .unwrap()
    {
        Created::New { id, .. } => id,
        other => panic!("expected a new edition, got {other:?}"),
    }
}

/// Runs `engine` over `only` until nothing is due within 10 s. A run that has not finished
/// after 90 s fails the test with what the engine had committed by then, and what the
/// database still holds, so a hang says where it stood.
pub async fn run_until_idle(engine: &Engine, store: &Store, only: Option<HashSet<i64>>) -> Report {
    let (_tx, rx) = watch::channel(false);
    let progress = engine.progress();
    let run = engine.run(
        only,
        Mode::UntilIdle {
            wait_for_retries: Duration::from_secs(10),
        },
        rx,
    );
    match tokio::time::timeout(Duration::from_secs(90), run).await {
        Ok(report) => report.expect("the run succeeds"),
        Err(_) => {
            let pending = store.pending_deliveries(None).await;
            panic!(
                "the run did not finish in 90 s: {} sent and {} failed committed, \
                 {pending:?} deliveries queued or sending",
                progress.sent.load(Relaxed),
                progress.failed.load(Relaxed),
            )
        }
    }
}

/// An engine sending with `config`.
pub fn engine(store: &Store, config: &Config) -> Engine {
    let transport = dispatch::mail::transport::Transport::from_config(config).unwrap();
    Engine::new(store.clone(), Arc::new(config.clone()), transport).unwrap()
}
