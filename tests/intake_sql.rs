//! A CMS's own SQLite database as a source: a real second SQLite file (WAL, as a CMS would
//! run it) written by the test while dispatch reads it.

mod support;

use std::path::{Path, PathBuf};
use std::time::Duration;

use dispatch::config::SqlSource;
use dispatch::domain::Category;
use dispatch::intake::sql::{SourceOutcome, SqlPoller};
use dispatch::store::{LeaseHolder, SenderIdentity, SqlValue, Store};
use sqlx::SqlitePool;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions};
use support::cli::Cli;
use support::db::TempDb;

/// A lease holder named `node`, as a dispatch process on another node would be.
fn holder(node: &str) -> LeaseHolder {
    LeaseHolder::of(&SenderIdentity {
        host: "test-host".into(),
        pid: 1,
        started: "test".into(),
        node: node.into(),
    })
}

/// The CMS's side: its own file in WAL mode; `busy_ms` is how long its writes wait for a lock.
async fn cms(path: &Path, busy_ms: u64) -> SqlitePool {
    SqlitePoolOptions::new()
        .max_connections(1)
        .connect_with(
            SqliteConnectOptions::new()
                .filename(path)
                .create_if_missing(true)
                .journal_mode(SqliteJournalMode::Wal)
                .busy_timeout(Duration::from_millis(busy_ms)),
        )
        .await
        .unwrap()
}

async fn create_posts(cms: &SqlitePool) {
    sqlx::query(
        "CREATE TABLE posts (id INTEGER PRIMARY KEY, title TEXT, url TEXT, excerpt TEXT, author TEXT,
             section TEXT, lang TEXT, published TEXT, updated TEXT, rev INTEGER, status TEXT)",
    )
    .execute(cms)
    .await
    .unwrap();
}

async fn post(cms: &SqlitePool, id: i64, title: &str, url: &str, updated: &str, status: &str) {
    sqlx::query(
        "INSERT INTO posts (id, title, url, excerpt, author, section, lang, published, updated, rev, status)
         VALUES ($1, $2, $3, 'Short.', 'Ayesha Khan', 'Politics', 'ur', '2026-11-28T09:30:00+05:00', $4, $1, $5)
         ON CONFLICT (id) DO UPDATE SET title = $2, url = $3, updated = $4, status = $5",
    )
    .bind(id)
    .bind(title)
    .bind(url)
    .bind(updated)
    .bind(status)
    .execute(cms)
    .await
    .unwrap();
}

/// The query of the example.
const QUERY: &str =
    "SELECT id AS external_id, title, url, excerpt AS summary, author, section AS category,
       lang AS language, published AS published_at, updated AS cursor FROM posts
       WHERE status = 'published' AND updated > :since ORDER BY updated";

fn source(path: PathBuf, query: &str) -> SqlSource {
    SqlSource {
        path,
        query: query.into(),
        poll_secs: 10,
        default_category: Category::parse("General News").unwrap(),
    }
}

async fn read(p: &SqlPoller, s: &SqlSource) -> (usize, u64, u64, usize) {
    match p.poll(s, true).await.unwrap().outcome {
        SourceOutcome::Read { rows, stored } => {
            (rows, stored.added, stored.updated, stored.rejected.len())
        }
        other => panic!("expected a read, got {other:?}"),
    }
}

#[tokio::test]
async fn rows_are_read_from_the_cursor_on_and_a_row_seen_again_updates_its_article() {
    let db = TempDb::new();
    let store = db.store().await;
    let cms_path = db.dir().join("cms.db");
    let cms = cms(&cms_path, 5000).await;
    create_posts(&cms).await;
    post(
        &cms,
        1,
        "Budget passed",
        "https://cms.example.com/1",
        "2026-11-28T10:00:00Z",
        "published",
    )
    .await;
    post(
        &cms,
        2,
        "Draft",
        "https://cms.example.com/2",
        "2026-11-28T10:01:00Z",
        "draft",
    )
    .await;
    post(
        &cms,
        3,
        "Bad link",
        "not a url",
        "2026-11-28T10:02:00Z",
        "published",
    )
    .await;
    let src = source(cms_path.clone(), QUERY);
    let p = SqlPoller::new(store.clone(), holder("test-1"));

    // The bad row is skipped (and logged with its id); the draft is not selected.
    assert_eq!(read(&p, &src).await, (2, 1, 0, 1));
    let s = store
        .source_state(&cms_path.display().to_string())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        s.cursor,
        Some(SqlValue::Text("2026-11-28T10:02:00Z".into()))
    );
    // Nothing after the cursor: nothing read.
    assert_eq!(read(&p, &src).await, (0, 0, 0, 0));

    // The CMS corrects a story and publishes another.
    post(
        &cms,
        1,
        "Budget passed after all-night session",
        "https://cms.example.com/1",
        "2026-11-28T11:00:00Z",
        "published",
    )
    .await;
    post(
        &cms,
        4,
        "Minister resigns",
        "https://cms.example.com/4",
        "2026-11-28T11:01:00Z",
        "published",
    )
    .await;
    assert_eq!(read(&p, &src).await, (2, 1, 1, 0));

    // A restart reads on from the stored cursor.
    let restarted = SqlPoller::new(store.clone(), holder("test-2"));
    assert_eq!(read(&restarted, &src).await, (0, 0, 0, 0));

    let articles = store.list_articles(None, None, 10).await.unwrap();
    assert_eq!(articles.len(), 2);
    let one = articles.iter().find(|a| a.external_id == "1").unwrap();
    assert_eq!(one.title, "Budget passed after all-night session");
    assert_eq!(
        (
            one.category.as_str(),
            one.language.as_deref(),
            one.author.as_deref()
        ),
        ("Politics", Some("ur"), Some("Ayesha Khan"))
    );
    assert_eq!(one.published_at, "2026-11-28T04:30:00Z");
    let s = store
        .source_state(&cms_path.display().to_string())
        .await
        .unwrap()
        .unwrap();
    assert_eq!((s.items_stored, s.items_updated, s.polls_ok), (2, 1, 4));

    // A query that fails is recorded, and the cursor kept.
    let broken = source(cms_path.clone(), "SELECT * FROM nope WHERE x > :since");
    match p.poll(&broken, true).await.unwrap().outcome {
        SourceOutcome::Failed(e) => assert!(e.contains("no such table"), "{e}"),
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn the_cms_keeps_writing_while_a_poll_reads_and_a_poll_reads_while_the_cms_writes() {
    let db = TempDb::new();
    let store = db.store().await;
    let cms_path = db.dir().join("cms.db");
    // The CMS's writes do not wait at all: a lock held by our reader would fail them at once.
    let cms = cms(&cms_path, 0).await;
    create_posts(&cms).await;
    post(
        &cms,
        1,
        "First",
        "https://cms.example.com/1",
        "2026-11-28T10:00:00Z",
        "published",
    )
    .await;
    let p = SqlPoller::new(store.clone(), holder("test-1"));

    // The CMS is mid-transaction (holding SQLite's write lock): the poll still reads.
    let mut tx = cms.begin_with("BEGIN IMMEDIATE").await.unwrap();
    sqlx::query("INSERT INTO posts (id, title, url, updated, status) VALUES (2, 'Second', 'https://cms.example.com/2', '2026-11-28T10:05:00Z', 'published')")
        .execute(&mut *tx)
        .await
        .unwrap();
    assert_eq!(
        read(&p, &source(cms_path.clone(), QUERY)).await,
        (1, 1, 0, 0)
    );
    tx.commit().await.unwrap();

    // A slow poll (the query counts three million generated rows first) while the CMS writes
    // with no patience at all: every write succeeds.
    let slow = "WITH RECURSIVE n(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM n WHERE x < 3000000)
        SELECT id AS external_id, title, url, updated AS cursor FROM posts, (SELECT COUNT(*) AS c FROM n)
        WHERE status = 'published' AND updated > :since ORDER BY updated";
    let poll = tokio::spawn({
        let p = p.clone();
        let src = source(cms_path.clone(), slow);
        async move { read(&p, &src).await }
    });
    let mut during = 0;
    let mut id = 100;
    while !poll.is_finished() {
        id += 1;
        sqlx::query("INSERT INTO posts (id, title, url, updated, status) VALUES ($1, 'Later', 'https://cms.example.com/later', '2026-11-28T12:00:00Z', 'draft')")
            .bind(id)
            .execute(&cms)
            .await
            .unwrap_or_else(|e| panic!("the CMS was locked out: {e}"));
        during += 1;
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert_eq!(
        poll.await.unwrap(),
        (1, 1, 0, 0),
        "the committed second story"
    );
    assert!(during > 0, "the CMS wrote while the poll ran");
}

#[test]
fn numeric_cursors_are_bound_as_numbers_and_sources_show_in_the_cli() {
    let cli = Cli::new();
    let cms_path = cli.path("cms.db");
    let rt = tokio::runtime::Runtime::new().unwrap();
    let pool = rt.block_on(async {
        let pool = cms(&cms_path, 5000).await;
        create_posts(&pool).await;
        for n in 1..=3 {
            post(
                &pool,
                n,
                &format!("Story {n}"),
                &format!("https://cms.example.com/{n}"),
                "x",
                "published",
            )
            .await;
        }
        pool
    });
    cli.write(
        "dispatch.toml",
        format!(
            "[[sql_sources]]\npath = {:?}\nquery = \"SELECT id AS external_id, title, url, rev AS cursor FROM posts WHERE :since = '' OR rev > :since ORDER BY rev\"\npoll_secs = 10\n",
            cms_path.display().to_string()
        ),
    );
    let cli = cli.with_config("dispatch.toml");
    let out = cli.ok(["sources", "poll"]);
    assert!(out.contains("3 rows: 3 added"), "{out}");
    rt.block_on(post(
        &pool,
        4,
        "Story 4",
        "https://cms.example.com/4",
        "x",
        "published",
    ));
    // An integer cursor bound as text would select nothing (SQLite orders numbers first).
    let out = cli.ok(["sources", "poll"]);
    assert!(out.contains("1 rows: 1 added"), "{out}");
    let rows = cli.json(["sources", "list", "--json"]);
    assert_eq!(rows[0]["cursor"], "4", "{rows}");
    assert_eq!(rows[0]["items_stored"], 4);
    let table = cli.ok(["sources", "list"]);
    assert!(
        table.contains("cms.db") && table.contains("CURSOR"),
        "{table}"
    );
    let e = cli.fail(["sources", "poll", "/elsewhere.db"]);
    assert!(e.contains("is not a configured source"), "{e}");
    let store = rt.block_on(Store::open(cli.db())).unwrap();
    assert_eq!(
        rt.block_on(store.list_articles(None, None, 10))
            .unwrap()
            .len(),
        4
    );
}
