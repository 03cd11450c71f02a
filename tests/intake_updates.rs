//! A story that changes after it was stored: a feed item whose `updated` moved, an SQL row
//! whose cursor moved. Both revise the stored article until an edition with it has gone out
//! (a delivery of it was sent); from then on the article keeps what readers got, and the poll
//! says so in its counters.

mod support;

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::get;
use dispatch::config::{Feed, SqlSource};
use dispatch::domain::{Category, EditionKind, EmailAddress, ListSlug, WebUrl, parse_timestamp};
use dispatch::intake::Stored;
use dispatch::intake::feeds::{PollOutcome, Poller};
use dispatch::intake::fetch::FetchLimits;
use dispatch::intake::sql::{SourceOutcome, SqlPoller};
use dispatch::store::subscribers::NewSubscription;
use dispatch::store::{Created, LeaseHolder, ListSpec, NewEdition, SenderIdentity, Store};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions};
use support::db::{TempDb, raw_pool};

fn holder() -> LeaseHolder {
    LeaseHolder::of(&SenderIdentity {
        host: "test-host".into(),
        pid: 1,
        started: "test".into(),
        node: "test-1".into(),
    })
}

/// A list with one reader, and a digest of it listing `article` (its one delivery queued).
async fn digest_with(store: &Store, article: i64) -> i64 {
    let list = store
        .create_list(&ListSlug::parse("daily").unwrap(), &ListSpec::default())
        .await
        .unwrap();
    let reader = NewSubscription {
        email: EmailAddress::parse("reader@example.com").unwrap(),
        name: None,
        categories: None,
    };
    store
        .subscribe_batch(list.id, &[reader], "test", false)
        .await
        .unwrap();
    let e = NewEdition {
        list_id: list.id,
        kind: EditionKind::Digest,
        slot: None,
        breaking_article_id: None,
        window_start: parse_timestamp("2026-11-27T00:00:00Z").unwrap(),
        window_end: parse_timestamp("2026-11-28T00:00:00Z").unwrap(),
        subject: "Daily".into(),
        articles: vec![(article, false)],
        skip_reason: None,
        empty_variants: vec![],
    };
    match store.create_edition(&e).await.unwrap() {
        Created::New { id, .. } => id,
        other => panic!("{other:?}"),
    }
}

/// Marks the edition's deliveries sent, as the sender does once the relay took them.
async fn send(db: &Path, edition: i64) {
    sqlx::query("UPDATE deliveries SET status = 'sent', sent_at = '2026-11-28T00:00:01Z' WHERE edition_id = $1")
        .bind(edition)
        .execute(&raw_pool(db).await)
        .await
        .unwrap();
}

async fn title(store: &Store, external_id: &str) -> String {
    store
        .article_by_external_id(external_id)
        .await
        .unwrap()
        .unwrap()
        .title
}

/// (added, updated, unchanged, kept as sent)
fn counts(s: &Stored) -> (u64, u64, u64, Vec<String>) {
    (s.added, s.updated, s.existing, s.kept_as_sent.clone())
}

/// An Atom feed whose one entry is revised at every version: a new title and `<updated>`.
/// A second entry carries no `<updated>` and changes its title too: without a version it is
/// never revised.
async fn atom(State(v): State<Arc<AtomicUsize>>) -> impl IntoResponse {
    let v = v.load(Ordering::SeqCst);
    let body = format!(
        r#"<?xml version="1.0" encoding="utf-8"?>
<feed xmlns="http://www.w3.org/2005/Atom"><title>Ghost</title><id>https://ghost.example.com/</id>
<updated>2026-11-28T0{v}:00:00Z</updated>
<entry><id>ghost-1</id><title>Story, version {v}</title>
<link rel="alternate" href="https://ghost.example.com/story-1/"/><category term="Business"/>
<published>2026-11-28T00:00:00Z</published><updated>2026-11-28T0{v}:00:00Z</updated></entry>
<entry><id>ghost-2</id><title>Undated story, version {v}</title>
<link rel="alternate" href="https://ghost.example.com/story-2/"/><category term="Business"/>
<published>2026-11-28T00:00:00Z</published></entry>
</feed>"#
    );
    ([(header::CONTENT_TYPE, "application/atom+xml")], body)
}

#[tokio::test]
async fn a_feed_item_whose_updated_moved_revises_its_article_until_its_digest_is_sent() {
    let db = TempDb::new();
    let store = db.store().await;
    let version = Arc::new(AtomicUsize::new(1));
    let app = Router::new()
        .route("/atom", get(atom))
        .with_state(Arc::clone(&version));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    let mut feed = Feed::new(WebUrl::parse(&format!("http://{addr}/atom")).unwrap());
    feed.poll_secs = 30;
    let limits = FetchLimits {
        timeout: Duration::from_secs(5),
        ..FetchLimits::default()
    };
    let poller = Poller::new(store.clone(), limits, holder()).unwrap();
    let poll = async |p: &Poller| match p.poll(&feed, true).await.unwrap().outcome {
        PollOutcome::Stored { stored, .. } => counts(&stored),
        other => panic!("expected a read feed, got {other:?}"),
    };

    assert_eq!(poll(&poller).await, (2, 0, 0, vec![]));
    version.store(2, Ordering::SeqCst);
    // The dated entry is revised; the undated one is left as first stored.
    assert_eq!(poll(&poller).await, (0, 1, 1, vec![]));
    assert_eq!(title(&store, "ghost-1").await, "Story, version 2");
    assert_eq!(title(&store, "ghost-2").await, "Undated story, version 1");

    // A digest with it is made but not yet sent: still revised.
    let id = store
        .article_by_external_id("ghost-1")
        .await
        .unwrap()
        .unwrap()
        .id;
    let edition = digest_with(&store, id).await;
    version.store(3, Ordering::SeqCst);
    assert_eq!(poll(&poller).await, (0, 1, 1, vec![]));
    assert_eq!(title(&store, "ghost-1").await, "Story, version 3");

    // Sent: readers have version 3, and so does the archive, whatever the feed says now.
    send(db.path(), edition).await;
    version.store(4, Ordering::SeqCst);
    assert_eq!(poll(&poller).await, (0, 0, 1, vec!["ghost-1".to_owned()]));
    assert_eq!(title(&store, "ghost-1").await, "Story, version 3");
}

#[tokio::test]
async fn an_sql_row_whose_cursor_moved_revises_its_article_until_its_digest_is_sent() {
    let db = TempDb::new();
    let store = db.store().await;
    let cms_path = db.dir().join("cms.db");
    let cms = SqlitePoolOptions::new()
        .max_connections(1)
        .connect_with(
            SqliteConnectOptions::new()
                .filename(&cms_path)
                .create_if_missing(true)
                .journal_mode(SqliteJournalMode::Wal),
        )
        .await
        .unwrap();
    sqlx::query("CREATE TABLE posts (id INTEGER PRIMARY KEY, title TEXT, rev TEXT)")
        .execute(&cms)
        .await
        .unwrap();
    let write = async |title: &str, rev: &str| {
        sqlx::query(
            "INSERT INTO posts (id, title, rev) VALUES (1, $1, $2)
             ON CONFLICT (id) DO UPDATE SET title = $1, rev = $2",
        )
        .bind(title)
        .bind(rev)
        .execute(&cms)
        .await
        .unwrap();
    };
    let src = SqlSource {
        path: cms_path.clone(),
        query: "SELECT id AS external_id, title, 'https://cms.example.com/' || id AS url,
                       '2026-11-28T00:00:00Z' AS published_at, rev AS cursor
                FROM posts WHERE rev > :since ORDER BY rev"
            .into(),
        poll_secs: 10,
        default_category: Category::parse("General News").unwrap(),
    };
    let poller = SqlPoller::new(store.clone(), holder());
    let read = async || match poller.poll(&src, true).await.unwrap().outcome {
        SourceOutcome::Read { stored, .. } => counts(&stored),
        other => panic!("expected a read, got {other:?}"),
    };

    write("Budget passed", "r1").await;
    assert_eq!(read().await, (1, 0, 0, vec![]));
    let id = store.article_by_external_id("1").await.unwrap().unwrap().id;
    let edition = digest_with(&store, id).await;
    write("Budget passed after all-night session", "r2").await;
    assert_eq!(read().await, (0, 1, 0, vec![]));

    send(db.path(), edition).await;
    write("Budget passed (headline rewritten)", "r3").await;
    assert_eq!(read().await, (0, 0, 0, vec!["1".to_owned()]));
    assert_eq!(
        title(&store, "1").await,
        "Budget passed after all-night session"
    );
    // The cursor moved on: the kept row is not read again at every poll.
    assert_eq!(read().await, (0, 0, 0, vec![]));
}
