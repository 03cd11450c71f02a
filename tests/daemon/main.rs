//! The daemon: scheduled digests, breaking news and shutdown.
//!
//! Library-level tests drive `schedule_tick` / `breaking_tick` with an explicit `now` against a
//! real SQLite file, so days of schedule pass in milliseconds; "restarts" re-open the file
//! with a fresh `reported` set. The tests in [`run`] and [`signals`] run the real
//! `dispatch run` binary: breaking news from another process, `/healthz` over HTTP, and
//! SIGTERM or SIGKILL in the middle of a send to a slow SMTP server.

#[path = "../support/mod.rs"]
mod support;

mod breaking;
mod lateness;
mod run;
mod schedule;
mod signals;
mod windows;

use std::collections::{BTreeMap, HashSet};
use std::io::{Read as _, Write as _};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration as StdDuration, Instant};

use chrono::{DateTime, Duration, Utc};
use dispatch::config::Config;
use dispatch::domain::{EmailAddress, ListSlug, Timezone};
use dispatch::schedule::Schedule;
use dispatch::store::subscribers::NewSubscription;
use dispatch::store::{EditionRow, ListRow, ListSpec, NewArticle, Store};
use sqlx::SqlitePool;
use support::cli::Cli;
use support::db::{TempDb, raw_pool};

/// A UTC instant from RFC 3339.
fn t(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s)
        .unwrap_or_else(|e| panic!("bad test time {s:?}: {e}"))
        .with_timezone(&Utc)
}

/// The stored form of an instant (what `editions.slot` and `window_*` hold).
fn dbt(t: DateTime<Utc>) -> String {
    dispatch::domain::db_time(t)
}

/// The defaults, i.e. `[schedule] max_lateness = "6h"`, checked the way the binary checks.
fn config() -> Config {
    let cfg = Config::from_parts(
        "test",
        "[schedule]\nmax_lateness = \"6h\"\n",
        &BTreeMap::new(),
    )
    .unwrap();
    assert_eq!(cfg.schedule.max_lateness.to_chrono(), Duration::hours(6));
    cfg
}

/// A database file in a temp dir, the store on it, and a raw pool for what tests do behind
/// the store's back (backdating rows, reading statuses).
struct Db {
    file: TempDb,
    store: Store,
    raw: SqlitePool,
}

impl Db {
    async fn new() -> Self {
        let file = TempDb::new();
        let store = file.store().await;
        let raw = raw_pool(file.path()).await;
        Self { file, store, raw }
    }

    /// Simulates a restart: closes the store and opens the file again.
    async fn restart(&mut self) {
        self.store.close().await;
        self.store = self.file.store().await;
    }

    /// Another process on the same database file.
    async fn second_process(&self) -> Store {
        self.file.store().await
    }

    /// A list `slug` with this schedule and zone, created (backdated) at `created`.
    async fn list(&self, slug: &str, schedule: &str, tz: &str, created: DateTime<Utc>) -> ListRow {
        let spec = ListSpec {
            schedule: Some(Some(Schedule::parse(schedule).unwrap())),
            timezone: Some(Timezone::parse(tz).unwrap()),
            ..Default::default()
        };
        self.store
            .create_list(&ListSlug::parse(slug).unwrap(), &spec)
            .await
            .unwrap();
        self.backdate_list(slug, created).await;
        self.store.list_by_slug(slug).await.unwrap()
    }

    /// Sets the list's `created_at`: slots before it are ignored by the scheduler.
    async fn backdate_list(&self, slug: &str, created: DateTime<Utc>) {
        let n = sqlx::query("UPDATE lists SET created_at = $1 WHERE slug = $2")
            .bind(dbt(created))
            .bind(slug)
            .execute(&self.raw)
            .await
            .unwrap()
            .rows_affected();
        assert_eq!(n, 1, "no list {slug}");
    }

    /// Subscribes `n` readers `<prefix>N@example.org` to the list.
    async fn subscribe(&self, list: &ListRow, prefix: &str, n: usize) {
        let rows: Vec<NewSubscription> = (0..n)
            .map(|i| NewSubscription {
                email: EmailAddress::parse(&format!("{prefix}{i}@example.org")).unwrap(),
                name: None,
                categories: None,
            })
            .collect();
        self.store
            .subscribe_batch(list.id, &rows, "test", false)
            .await
            .unwrap();
    }

    /// Stores an article published at `at`; returns its id.
    async fn article(&self, ext: &str, at: DateTime<Utc>, category: &str, breaking: bool) -> i64 {
        let (id, new) = self
            .store
            .insert_article(&NewArticle {
                external_id: ext.into(),
                url: format!("https://news.example.com/{ext}"),
                title: format!("Story {ext}"),
                summary: format!("What happened in {ext}."),
                author: None,
                category: category.into(),
                language: None,
                image_url: None,
                published_at: at,
                breaking,
            })
            .await
            .unwrap();
        assert!(new, "article {ext} stored twice");
        // A CMS writes the row when it publishes the story: the simulated clock, not the
        // wall clock, is when it reached the database.
        sqlx::query("UPDATE articles SET created_at = $1 WHERE id = $2")
            .bind(dbt(at))
            .bind(id)
            .execute(&self.raw)
            .await
            .unwrap();
        id
    }

    /// The list's editions, oldest first.
    async fn editions(&self, list: &ListRow) -> Vec<EditionRow> {
        let mut e = self.store.editions(Some(list.id), 1000).await.unwrap();
        e.reverse();
        e
    }

    /// The article ids an edition carries.
    async fn article_ids(&self, edition: i64) -> HashSet<i64> {
        self.store
            .edition_articles(edition)
            .await
            .unwrap()
            .into_iter()
            .map(|(a, _)| a.id)
            .collect()
    }

    /// Number of deliveries of an edition.
    async fn delivery_count(&self, edition: i64) -> i64 {
        sqlx::query_scalar("SELECT COUNT(*) FROM deliveries WHERE edition_id = $1")
            .bind(edition)
            .fetch_one(&self.raw)
            .await
            .unwrap()
    }
}

/// Slots of a list's editions, oldest first.
fn slots(editions: &[EditionRow]) -> Vec<String> {
    editions
        .iter()
        .map(|e| {
            e.slot
                .map_or_else(|| "-".into(), dispatch::domain::DbTime::to_text)
        })
        .collect()
}

/// `dispatch run` in the sandbox, its log going to `daemon-N.log` there.
struct Daemon {
    child: Child,
    log: PathBuf,
}

impl Daemon {
    fn start(cli: &Cli, n: usize) -> Self {
        let log = cli.path(format!("daemon-{n}.log"));
        let child = cli
            .command()
            .arg("run")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .expect("spawn dispatch run");
        Self { child, log }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Sends SIGTERM and waits up to `within` for the exit.
    fn terminate(&mut self, within: StdDuration) -> ExitStatus {
        let pid = self.child.id().to_string();
        let ok = Command::new("kill").args(["-TERM", &pid]).status().unwrap();
        assert!(ok.success(), "kill -TERM {pid}");
        let deadline = Instant::now() + within;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "dispatch run did not exit within {within:?} of SIGTERM\n{}",
                self.log()
            );
            std::thread::sleep(StdDuration::from_millis(50));
        }
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        // Only after a failed assertion: never leave the daemon running.
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Polls `f` every 100 ms until it returns `Some`, for at most `within`.
fn wait_for<T>(within: StdDuration, what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + within;
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(StdDuration::from_millis(100));
    }
}

/// `GET path` over a plain TCP socket with a hand-written HTTP/1.1 request; the response.
fn http_get(port: u16, path: &str) -> std::io::Result<String> {
    let mut s = TcpStream::connect(("127.0.0.1", port))?;
    s.set_read_timeout(Some(StdDuration::from_secs(5)))?;
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n\r\n"
    )?;
    let mut out = String::new();
    s.read_to_string(&mut out)?;
    Ok(out)
}

/// A sandbox whose config puts the daemon's web pages on `port`, polls for breaking news
/// every second, and has the `[delivery]`/`[smtp]` sections `delivery` writes for it.
fn sandbox(port: u16, delivery: impl FnOnce(&Cli) -> String) -> Cli {
    let cli = Cli::new();
    let delivery = delivery(&cli);
    cli.write(
        "dispatch.toml",
        format!(
            "[web]\nbind = \"127.0.0.1:{port}\"\npublic_url = \"http://127.0.0.1:{port}\"\n\n\
             [schedule]\nbreaking_poll_secs = 1\n\n{delivery}"
        ),
    );
    cli.with_config("dispatch.toml")
}

/// Waits until `/healthz` answers; returns the response.
fn wait_healthy(port: u16, daemon: &Daemon) -> String {
    let deadline = Instant::now() + StdDuration::from_secs(20);
    loop {
        if let Ok(r) = http_get(port, "/healthz") {
            return r;
        }
        assert!(
            Instant::now() < deadline,
            "the daemon's web pages never came up\n{}",
            daemon.log()
        );
        std::thread::sleep(StdDuration::from_millis(100));
    }
}

/// Deliveries of the database by status.
fn delivery_statuses(rt: &tokio::runtime::Runtime, path: &Path) -> BTreeMap<String, i64> {
    rt.block_on(async {
        let pool = raw_pool(path).await;
        let rows: Vec<(String, i64)> =
            sqlx::query_as("SELECT status, COUNT(*) FROM deliveries GROUP BY status")
                .fetch_all(&pool)
                .await
                .unwrap();
        pool.close().await;
        rows.into_iter().collect()
    })
}
