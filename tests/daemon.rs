//! The daemon: scheduled digests, breaking news and shutdown.
//!
//! Library-level tests drive `schedule_tick` / `breaking_tick` with an explicit `now` against a
//! real SQLite file, so days of schedule pass in milliseconds; "restarts" re-open the file
//! with a fresh `reported` set. The last tests run the real `dispatch run` binary: breaking
//! news from another process, `/healthz` over HTTP, and SIGTERM in the middle of a send to a
//! slow SMTP server.

mod support;

#[path = "support/smtp_server.rs"]
mod smtp_server;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::io::{Read as _, Write as _};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration as StdDuration, Instant};

use chrono::{DateTime, Duration, Utc};
use dispatch::config::Config;
use dispatch::daemon::{breaking_tick, schedule_tick};
use dispatch::domain::{EmailAddress, ListSlug, Timezone};
use dispatch::schedule::Schedule;
use dispatch::store::subscribers::NewSubscription;
use dispatch::store::{EditionRow, ListRow, ListSpec, NewArticle, Store};
use sqlx::SqlitePool;
use sqlx::sqlite::{SqliteConnectOptions, SqlitePoolOptions};
use support::cli::Cli;
use tempfile::TempDir;

// ---------------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------------

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
    _dir: TempDir,
    path: PathBuf,
    store: Store,
    raw: SqlitePool,
}

impl Db {
    async fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("dispatch.db");
        let store = Store::open(&path).await.unwrap();
        let raw = raw_pool(&path).await;
        Self {
            _dir: dir,
            path,
            store,
            raw,
        }
    }

    /// Simulates a restart: closes the store and opens the file again.
    async fn restart(&mut self) {
        self.store.close().await;
        self.store = Store::open(&self.path).await.unwrap();
    }

    /// Another process on the same database file.
    async fn second_process(&self) -> Store {
        Store::open(&self.path).await.unwrap()
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

async fn raw_pool(path: &Path) -> SqlitePool {
    SqlitePoolOptions::new()
        .max_connections(1)
        .connect_with(
            SqliteConnectOptions::new()
                .filename(path)
                .busy_timeout(StdDuration::from_secs(15)),
        )
        .await
        .unwrap()
}

/// Slots of a list's editions, oldest first.
fn slots(editions: &[EditionRow]) -> Vec<String> {
    editions
        .iter()
        .map(|e| e.slot.clone().unwrap_or_else(|| "-".into()))
        .collect()
}

/// Captures what the code logs on this thread (the tests run on a current-thread runtime).
#[derive(Clone, Default)]
struct LogBuf(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for LogBuf {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl LogBuf {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }

    fn install(&self) -> tracing::subscriber::DefaultGuard {
        let me = self.clone();
        let sub = tracing_subscriber::fmt()
            .with_ansi(false)
            .with_max_level(tracing::Level::INFO)
            .with_writer(move || me.clone())
            .finish();
        tracing::subscriber::set_default(sub)
    }
}

// ---------------------------------------------------------------------------------------------
// 1. A slot in Asia/Karachi gives one edition, however often the daemon restarts (promise 3)
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn karachi_slot_gives_one_edition_across_repeated_ticks_restarts_and_two_processes() {
    let cfg = config();
    let mut db = Db::new().await;
    let list = db
        .list(
            "daily",
            "0 7 * * *",
            "Asia/Karachi",
            t("2026-06-01T00:00:00Z"),
        )
        .await;
    db.subscribe(&list, "reader", 3).await;
    let a = db
        .article("a", t("2026-06-09T20:00:00Z"), "Politics", false)
        .await;
    let b = db
        .article("b", t("2026-06-10T01:00:00Z"), "Business", false)
        .await;

    // Just before 07:00 PKT the latest slot is yesterday's, a day old: too late, nothing built.
    let mut reported = HashSet::new();
    let before = schedule_tick(&db.store, &cfg, t("2026-06-10T01:59:00Z"), &mut reported)
        .await
        .unwrap();
    assert!(before.is_empty(), "{before:?}");

    // 07:00:30 PKT = 02:00:30 UTC: the 07:00 slot is 02:00 UTC.
    let now = t("2026-06-10T02:00:30Z");
    let created = schedule_tick(&db.store, &cfg, now, &mut reported)
        .await
        .unwrap();
    assert_eq!(created.len(), 1, "one edition at the slot");
    let e = db.store.edition(created[0]).await.unwrap();
    assert_eq!(e.slot.as_deref(), Some("2026-06-10T02:00:00Z"));
    assert_eq!(e.window_end, dbt(now));
    assert_eq!(e.status, "sending");
    assert_eq!(db.article_ids(e.id).await, HashSet::from([a, b]));
    assert_eq!(db.delivery_count(e.id).await, 3);

    // The same process ticking again at 07:05 PKT: nothing new.
    let again = schedule_tick(&db.store, &cfg, t("2026-06-10T02:05:00Z"), &mut reported)
        .await
        .unwrap();
    assert!(again.is_empty(), "{again:?}");

    // Another process on the same file (e.g. a second daemon started by mistake) at 07:05.
    let other = db.second_process().await;
    let again = schedule_tick(&other, &cfg, t("2026-06-10T02:05:00Z"), &mut HashSet::new())
        .await
        .unwrap();
    assert!(again.is_empty(), "{again:?}");
    other.close().await;

    // Restarts at the slot and after it (08:00 PKT, and late in the evening): still one.
    for at in [
        "2026-06-10T02:00:30Z",
        "2026-06-10T03:00:00Z",
        "2026-06-10T20:00:00Z",
    ] {
        db.restart().await;
        let again = schedule_tick(&db.store, &cfg, t(at), &mut HashSet::new())
            .await
            .unwrap();
        assert!(again.is_empty(), "restart at {at}: {again:?}");
    }
    let editions = db.editions(&list).await;
    assert_eq!(slots(&editions), ["2026-06-10T02:00:00Z"]);
    assert_eq!(
        db.delivery_count(editions[0].id).await,
        3,
        "no second snapshot"
    );

    // Two processes racing at the next slot: exactly one of them builds it.
    db.article("c", t("2026-06-10T12:00:00Z"), "Sport", false)
        .await;
    let other = db.second_process().await;
    let now = t("2026-06-11T02:00:10Z");
    let (mut r1, mut r2) = (HashSet::new(), HashSet::new());
    let (x, y) = tokio::join!(
        schedule_tick(&db.store, &cfg, now, &mut r1),
        schedule_tick(&other, &cfg, now, &mut r2)
    );
    let (x, y) = (x.unwrap(), y.unwrap());
    assert_eq!(x.len() + y.len(), 1, "{x:?} {y:?}");
    other.close().await;
    let editions = db.editions(&list).await;
    assert_eq!(
        slots(&editions),
        ["2026-06-10T02:00:00Z", "2026-06-11T02:00:00Z"]
    );
    assert_eq!(editions[1].window_start, editions[0].window_end);
}

// ---------------------------------------------------------------------------------------------
// 2. DST in Europe/London: one edition per day on both 2026 transitions
// ---------------------------------------------------------------------------------------------

/// Ticks every 10 minutes over `[from, to)`; returns the slots of the editions built.
async fn tick_every_10_minutes(
    db: &Db,
    cfg: &Config,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> Vec<(DateTime<Utc>, String)> {
    let mut reported = HashSet::new();
    let mut out = Vec::new();
    let mut now = from;
    while now < to {
        for id in schedule_tick(&db.store, cfg, now, &mut reported)
            .await
            .unwrap()
        {
            let e = db.store.edition(id).await.unwrap();
            out.push((now, e.slot.unwrap_or_default()));
        }
        now += Duration::minutes(10);
    }
    out
}

#[tokio::test]
async fn london_0130_runs_once_a_day_over_both_2026_dst_transitions() {
    let cfg = config();
    let db = Db::new().await;
    let list = db
        .list(
            "london",
            "30 1 * * *",
            "Europe/London",
            t("2026-03-01T00:00:00Z"),
        )
        .await;

    // Spring forward, Sunday 2026-03-29: 01:00 GMT becomes 02:00 BST, so 01:30 never
    // happens; the job runs once that day at the first valid time after the gap (02:00 BST =
    // 01:00 UTC).
    let built = tick_every_10_minutes(
        &db,
        &cfg,
        t("2026-03-27T12:03:00Z"),
        t("2026-03-31T12:03:00Z"),
    )
    .await;
    let got: Vec<&str> = built.iter().map(|(_, s)| s.as_str()).collect();
    assert_eq!(
        got,
        [
            "2026-03-28T01:30:00Z", // 01:30 GMT
            "2026-03-29T01:00:00Z", // the gap: 02:00 BST
            "2026-03-30T00:30:00Z", // 01:30 BST
            "2026-03-31T00:30:00Z",
        ],
        "{built:?}"
    );
    // Each was built at the first tick after its slot.
    for (now, slot) in &built {
        let late = *now - t(slot);
        assert!(late < Duration::minutes(10), "{now} for {slot}");
    }

    // Fall back, Sunday 2026-10-25: 01:00-02:00 happens twice (BST, then GMT); the job runs
    // once, at the first 01:30 (BST, 00:30 UTC), not again an hour later.
    let built = tick_every_10_minutes(
        &db,
        &cfg,
        t("2026-10-23T12:03:00Z"),
        t("2026-10-27T12:03:00Z"),
    )
    .await;
    let got: Vec<&str> = built.iter().map(|(_, s)| s.as_str()).collect();
    assert_eq!(
        got,
        [
            "2026-10-24T00:30:00Z", // 01:30 BST
            "2026-10-25T00:30:00Z", // the first 01:30 (BST)
            "2026-10-26T01:30:00Z", // 01:30 GMT
            "2026-10-27T01:30:00Z",
        ],
        "{built:?}"
    );

    // Between the two runs the daemon was "down" for months: only the latest slot counted
    // and it was too late, so the first October edition's window starts where March ended.
    let editions = db.editions(&list).await;
    assert_eq!(editions.len(), 8);
    for w in editions.windows(2) {
        assert_eq!(w[1].window_start, w[0].window_end, "windows contiguous");
    }
}

// ---------------------------------------------------------------------------------------------
// 3. Lateness policy, both ways, with max_lateness = 6h (promises 3 and 4)
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn a_slot_missed_by_2h_is_built_once_for_that_slot() {
    let cfg = config();
    let mut db = Db::new().await;
    let list = db
        .list(
            "daily",
            "0 7 * * *",
            "Asia/Karachi",
            t("2026-07-01T00:00:00Z"),
        )
        .await;
    db.subscribe(&list, "reader", 2).await;
    let first = schedule_tick(
        &db.store,
        &cfg,
        t("2026-07-10T02:00:20Z"),
        &mut HashSet::new(),
    )
    .await
    .unwrap();
    assert_eq!(first.len(), 1);
    let a = db
        .article("a", t("2026-07-10T05:00:00Z"), "Politics", false)
        .await;
    let b = db
        .article("b", t("2026-07-11T01:30:00Z"), "Sport", false)
        .await;

    // Down over the 2026-07-11 02:00Z slot; back two hours later.
    db.restart().await;
    let now = t("2026-07-11T04:00:00Z");
    let late = schedule_tick(&db.store, &cfg, now, &mut HashSet::new())
        .await
        .unwrap();
    assert_eq!(late.len(), 1, "built late");
    let e = db.store.edition(late[0]).await.unwrap();
    assert_eq!(
        e.slot.as_deref(),
        Some("2026-07-11T02:00:00Z"),
        "the missed slot"
    );
    assert_eq!(
        e.window_start,
        db.store.edition(first[0]).await.unwrap().window_end
    );
    assert_eq!(e.window_end, dbt(now));
    assert_eq!(db.article_ids(e.id).await, HashSet::from([a, b]));
    assert_eq!(db.delivery_count(e.id).await, 2);

    // Once: neither the next tick nor another restart builds it again.
    assert!(
        schedule_tick(
            &db.store,
            &cfg,
            t("2026-07-11T04:00:15Z"),
            &mut HashSet::new()
        )
        .await
        .unwrap()
        .is_empty()
    );
    db.restart().await;
    assert!(
        schedule_tick(
            &db.store,
            &cfg,
            t("2026-07-11T07:59:00Z"),
            &mut HashSet::new()
        )
        .await
        .unwrap()
        .is_empty()
    );
    assert_eq!(
        slots(&db.editions(&list).await),
        ["2026-07-10T02:00:00Z", "2026-07-11T02:00:00Z"]
    );
}

#[tokio::test]
async fn a_slot_missed_by_7h_is_skipped_and_its_stories_go_in_the_next_digest() {
    let logs = LogBuf::default();
    let _guard = logs.install();
    let cfg = config();
    let mut db = Db::new().await;
    let list = db
        .list(
            "daily",
            "0 7 * * *",
            "Asia/Karachi",
            t("2026-07-01T00:00:00Z"),
        )
        .await;
    db.subscribe(&list, "reader", 2).await;
    let first = schedule_tick(
        &db.store,
        &cfg,
        t("2026-07-10T02:00:20Z"),
        &mut HashSet::new(),
    )
    .await
    .unwrap();
    assert_eq!(first.len(), 1);
    let first = db.store.edition(first[0]).await.unwrap();

    // Stories before the missed slot, and while the daemon was down after it.
    let mut skipped_period = HashSet::new();
    for (ext, at) in [
        ("before-slot", "2026-07-10T05:00:00Z"),
        ("just-before-slot", "2026-07-11T01:59:59Z"),
        ("at-slot", "2026-07-11T02:00:00Z"),
        ("while-down", "2026-07-11T06:00:00Z"),
    ] {
        skipped_period.insert(db.article(ext, t(at), "Politics", false).await);
    }

    // Back seven hours after the 2026-07-11 slot: too late, skipped and said so once.
    db.restart().await;
    let missed = t("2026-07-11T02:00:00Z");
    let mut reported = HashSet::new();
    let late = schedule_tick(&db.store, &cfg, t("2026-07-11T09:00:00Z"), &mut reported)
        .await
        .unwrap();
    assert!(late.is_empty(), "a 7 h late slot is not sent: {late:?}");
    assert!(reported.contains(&(list.id, missed)), "{reported:?}");
    for at in ["2026-07-11T09:00:15Z", "2026-07-11T20:00:00Z"] {
        assert!(
            schedule_tick(&db.store, &cfg, t(at), &mut reported)
                .await
                .unwrap()
                .is_empty()
        );
    }
    let log = logs.text();
    assert_eq!(
        log.matches("skipping a slot missed by more than [schedule] max_lateness")
            .count(),
        1,
        "{log}"
    );
    assert!(log.contains("2026-07-11 02:00:00 UTC"), "{log}");
    assert!(
        db.store
            .edition_for_slot(list.id, missed)
            .await
            .unwrap()
            .is_none()
    );

    // Stories after the restart, then the next slot.
    let after = db
        .article("after-restart", t("2026-07-11T10:00:00Z"), "Sport", false)
        .await;
    let now = t("2026-07-12T02:00:30Z");
    let next = schedule_tick(&db.store, &cfg, now, &mut reported)
        .await
        .unwrap();
    assert_eq!(next.len(), 1);
    let next = db.store.edition(next[0]).await.unwrap();
    assert_eq!(next.slot.as_deref(), Some("2026-07-12T02:00:00Z"));
    assert_eq!(
        next.window_start, first.window_end,
        "the window starts where the last edition ended, not at the skipped slot"
    );
    let carried = db.article_ids(next.id).await;
    assert!(
        skipped_period.is_subset(&carried),
        "stories of the skipped period are in the next digest"
    );
    assert!(carried.contains(&after));
    assert_eq!(carried.len(), 5);
    assert_eq!(
        slots(&db.editions(&list).await),
        ["2026-07-10T02:00:00Z", "2026-07-12T02:00:00Z"]
    );
}

// ---------------------------------------------------------------------------------------------
// 4. Contiguous windows: every article is in exactly one digest (promise 4)
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn every_article_lands_in_exactly_one_digest_over_several_days() {
    let cfg = config();
    let mut db = Db::new().await;
    let list = db
        .list("morning", "0 6 * * *", "UTC", t("2026-08-01T00:00:00Z"))
        .await;
    db.subscribe(&list, "reader", 1).await;

    // The daemon ticks every 20 minutes for four days (restarting once a day); the CMS
    // publishes every 70 minutes, plus a story exactly at each slot instant and one at the
    // very second of the tick that builds the edition.
    let start = t("2026-08-01T00:10:00Z");
    let end = t("2026-08-05T00:10:00Z");
    let categories = ["General News", "Politics", "Business", "Sport"];
    let mut published: Vec<(i64, DateTime<Utc>)> = Vec::new();
    let mut next_story = t("2026-07-31T00:00:00Z");
    let mut n = 0;
    let mut now = start;
    let mut reported = HashSet::new();
    let mut built = Vec::new();
    while now < end {
        while next_story <= now {
            let cat = categories[n % categories.len()];
            published.push((
                db.article(&format!("s{n}"), next_story, cat, false).await,
                next_story,
            ));
            n += 1;
            next_story += Duration::minutes(70);
        }
        if now.format("%H:%M").to_string() == "06:10" {
            let slot = now - Duration::minutes(10);
            published.push((
                db.article(&format!("slot{n}"), slot, "Politics", false)
                    .await,
                slot,
            ));
            published.push((
                db.article(&format!("tick{n}"), now, "Sport", false).await,
                now,
            ));
            n += 1;
        }
        built.extend(
            schedule_tick(&db.store, &cfg, now, &mut reported)
                .await
                .unwrap(),
        );
        if now.format("%H:%M").to_string() == "12:10" {
            db.restart().await;
            reported.clear();
        }
        now += Duration::minutes(20);
    }
    assert_eq!(built.len(), 4, "one per day");

    let editions = db.editions(&list).await;
    assert_eq!(
        slots(&editions),
        [
            "2026-08-01T06:00:00Z",
            "2026-08-02T06:00:00Z",
            "2026-08-03T06:00:00Z",
            "2026-08-04T06:00:00Z",
        ]
    );
    for w in editions.windows(2) {
        assert_eq!(w[1].window_start, w[0].window_end, "contiguous windows");
    }
    let mut seen: HashMap<i64, Vec<i64>> = HashMap::new();
    for e in &editions {
        let ids = db.article_ids(e.id).await;
        assert_eq!(ids.len() as i64, e.article_count);
        for a in ids {
            seen.entry(a).or_default().push(e.id);
        }
    }
    let first_start = t(&editions[0].window_start);
    let last_end = t(&editions[editions.len() - 1].window_end);
    let mut covered = 0;
    for (id, at) in &published {
        let in_editions = seen.get(id).cloned().unwrap_or_default();
        if *at > first_start && *at <= last_end {
            covered += 1;
            assert_eq!(
                in_editions.len(),
                1,
                "article {id} at {at}: {in_editions:?}"
            );
        } else {
            assert!(
                in_editions.is_empty(),
                "article {id} at {at} outside every window"
            );
        }
    }
    assert!(covered > 60, "{covered}");
    assert_eq!(seen.len(), covered);
}

// ---------------------------------------------------------------------------------------------
// 5. Breaking news: once per article per list, only to breaking lists, never stale
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn breaking_news_goes_once_to_each_breaking_list_and_never_when_stale() {
    let cfg = config();
    let mut db = Db::new().await;
    let mk = |breaking: bool, categories: Option<&str>| ListSpec {
        sends_breaking: Some(breaking),
        categories: categories.map(|c| Some(dispatch::domain::CategorySet::parse_list(c).unwrap())),
        ..Default::default()
    };
    let mut lists = HashMap::new();
    for (slug, spec, readers) in [
        ("alerts", mk(true, None), 3),
        ("politics-alerts", mk(true, Some("Politics")), 2),
        ("daily", mk(false, None), 4),
    ] {
        let l = db
            .store
            .create_list(&ListSlug::parse(slug).unwrap(), &spec)
            .await
            .unwrap();
        db.subscribe(&l, slug, readers).await;
        lists.insert(slug, l);
    }
    let breaking_lists_of = |db: &Db, article: i64| {
        let raw = db.raw.clone();
        async move {
            let rows: Vec<(String, i64)> = sqlx::query_as(
                "SELECT l.slug, COUNT(d.id) FROM editions e JOIN lists l ON l.id = e.list_id
                 LEFT JOIN deliveries d ON d.edition_id = e.id
                 WHERE e.breaking_article_id = $1 GROUP BY e.id ORDER BY l.slug",
            )
            .bind(article)
            .fetch_all(&raw)
            .await
            .unwrap();
            rows
        }
    };

    // A non-breaking story is not breaking news.
    db.article("calm", Utc::now(), "Politics", false).await;
    assert!(
        breaking_tick(&db.store, &cfg, Utc::now())
            .await
            .unwrap()
            .is_empty()
    );

    // A minister resigns.
    let resign = db.article("resigns", Utc::now(), "Politics", true).await;
    let created = breaking_tick(&db.store, &cfg, Utc::now()).await.unwrap();
    assert_eq!(created.len(), 2, "one edition per breaking list");
    assert_eq!(
        breaking_lists_of(&db, resign).await,
        [("alerts".to_owned(), 3), ("politics-alerts".to_owned(), 2)],
        "the daily list (no breaking news) gets none"
    );

    // Polled again, and after a restart: nothing new.
    assert!(
        breaking_tick(&db.store, &cfg, Utc::now())
            .await
            .unwrap()
            .is_empty()
    );
    db.restart().await;
    assert!(
        breaking_tick(&db.store, &cfg, Utc::now())
            .await
            .unwrap()
            .is_empty()
    );

    // A sport story only reaches the list that carries sport; repeated polls stay quiet even
    // though the politics-only list never gets an edition of it.
    let sport = db.article("final", Utc::now(), "Sport", true).await;
    assert_eq!(
        breaking_tick(&db.store, &cfg, Utc::now())
            .await
            .unwrap()
            .len(),
        1
    );
    for _ in 0..3 {
        assert!(
            breaking_tick(&db.store, &cfg, Utc::now())
                .await
                .unwrap()
                .is_empty()
        );
    }
    assert_eq!(
        breaking_lists_of(&db, sport).await,
        [("alerts".to_owned(), 3)]
    );

    // A breaking story stored more than max_lateness ago (the daemon was down) is old news.
    let stale = db.article("stale", Utc::now(), "Politics", true).await;
    sqlx::query("UPDATE articles SET created_at = $1 WHERE id = $2")
        .bind(dbt(Utc::now() - Duration::hours(7)))
        .bind(stale)
        .execute(&db.raw)
        .await
        .unwrap();
    db.restart().await;
    assert!(
        breaking_tick(&db.store, &cfg, Utc::now())
            .await
            .unwrap()
            .is_empty()
    );
    assert!(breaking_lists_of(&db, stale).await.is_empty());

    // Neither the daily list nor anyone else got a breaking edition by another route.
    let daily = db.editions(&lists["daily"]).await;
    assert!(daily.is_empty(), "{daily:?}");
    let total: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM editions")
        .fetch_one(&db.raw)
        .await
        .unwrap();
    assert_eq!(total, 3);
}

// ---------------------------------------------------------------------------------------------
// 6. Lists changed or added while the daemon runs take effect
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn schedule_changes_and_new_lists_apply_on_the_next_tick() {
    let cfg = config();
    let db = Db::new().await;
    let list = db
        .list("daily", "0 7 * * *", "UTC", t("2026-09-01T00:00:00Z"))
        .await;
    let mut reported = HashSet::new();
    let mut tick = async |at: &str| {
        schedule_tick(&db.store, &cfg, t(at), &mut reported)
            .await
            .unwrap()
            .len()
    };
    assert_eq!(tick("2026-09-10T07:00:30Z").await, 1);

    // The editor moves the digest to 08:30 while the daemon runs.
    let spec = ListSpec {
        schedule: Some(Some(Schedule::parse("30 8 * * *").unwrap())),
        ..Default::default()
    };
    db.store.update_list("daily", &spec).await.unwrap();
    assert_eq!(tick("2026-09-10T08:30:30Z").await, 1, "new schedule used");
    assert_eq!(tick("2026-09-11T07:00:30Z").await, 0, "old schedule gone");
    assert_eq!(tick("2026-09-11T08:30:30Z").await, 1);

    // ... then to Karachi time: 08:30 PKT is 03:30 UTC.
    let spec = ListSpec {
        timezone: Some(Timezone::parse("Asia/Karachi").unwrap()),
        ..Default::default()
    };
    db.store.update_list("daily", &spec).await.unwrap();
    assert_eq!(tick("2026-09-12T03:30:30Z").await, 1, "new time zone used");

    // A list created at 09:30 with a 09:00 schedule: today's slot predates it.
    let fresh = db
        .list("evening", "0 9 * * *", "UTC", t("2026-09-12T09:30:00Z"))
        .await;
    assert_eq!(
        tick("2026-09-12T09:30:30Z").await,
        0,
        "slot before creation"
    );
    assert_eq!(tick("2026-09-13T03:30:30Z").await, 1, "daily");
    assert_eq!(
        tick("2026-09-13T09:00:30Z").await,
        1,
        "new list's first slot"
    );

    // Removing the schedule stops the digests.
    let spec = ListSpec {
        schedule: Some(None),
        ..Default::default()
    };
    db.store.update_list("daily", &spec).await.unwrap();
    assert_eq!(
        tick("2026-09-14T03:30:30Z").await,
        0,
        "no schedule, no digest"
    );

    assert_eq!(
        slots(&db.editions(&list).await),
        [
            "2026-09-10T07:00:00Z",
            "2026-09-10T08:30:00Z",
            "2026-09-11T08:30:00Z",
            "2026-09-12T03:30:00Z",
            "2026-09-13T03:30:00Z",
        ]
    );
    assert_eq!(slots(&db.editions(&fresh).await), ["2026-09-13T09:00:00Z"]);
}

// ---------------------------------------------------------------------------------------------
// 7. The real binary: `dispatch run`, breaking news from another process, /healthz, SIGTERM
// ---------------------------------------------------------------------------------------------

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
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

/// The recipients of the deliveries with this status.
fn delivered_to(rt: &tokio::runtime::Runtime, path: &Path, status: &str) -> Vec<String> {
    rt.block_on(async {
        let pool = raw_pool(path).await;
        let rows: Vec<String> = sqlx::query_scalar(
            "SELECT s.email FROM deliveries d JOIN subscribers s ON s.id = d.subscriber_id
             WHERE d.status = $1 ORDER BY s.email",
        )
        .bind(status)
        .fetch_all(&pool)
        .await
        .unwrap();
        pool.close().await;
        rows
    })
}

/// The `.eml` files in the outbox (not the temporary ones being written).
fn outbox_messages(dir: &Path) -> Vec<String> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut out: Vec<String> = entries
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().ends_with(".eml"))
        .filter(|e| !e.file_name().to_string_lossy().starts_with('.'))
        .map(|e| std::fs::read_to_string(e.path()).unwrap())
        .collect();
    out.sort();
    out
}

/// The address in a message's `To:` header.
fn to_header(msg: &str) -> String {
    let line = msg
        .lines()
        .find(|l| l.to_ascii_lowercase().starts_with("to:"))
        .unwrap_or_else(|| panic!("no To header:\n{msg}"));
    let v = line[3..].trim();
    match (v.rfind('<'), v.rfind('>')) {
        (Some(a), Some(b)) if a < b => v[a + 1..b].to_owned(),
        _ => v.to_owned(),
    }
}

#[test]
fn run_sends_breaking_news_added_by_another_process_serves_healthz_and_stops_on_sigterm() {
    let port = free_port();
    let cli = sandbox(port, |cli| {
        format!(
            "[delivery]\ntransport = \"file\"\noutbox = {:?}\n",
            cli.path("outbox").display().to_string()
        )
    });
    cli.ok(["lists", "create", "alerts", "--breaking"]);
    cli.ok(["lists", "create", "daily", "--schedule", "0 7 * * *"]);
    let alerts = ["ayesha@example.pk", "bilal@example.com", "sana@example.org"];
    for a in alerts {
        cli.ok(["subscribers", "add", a, "--list", "alerts"]);
    }
    for a in ["daily-only@example.org", "also-daily@example.org"] {
        cli.ok(["subscribers", "add", a, "--list", "daily"]);
    }

    let mut daemon = Daemon::start(&cli, 1);
    let health = wait_healthy(port, &daemon);
    assert!(health.starts_with("HTTP/1.1 200"), "{health}");
    assert!(health.ends_with("ok\n"), "{health}");

    // An editor adds breaking news from another process while the daemon runs.
    cli.ok([
        "articles",
        "add",
        "--breaking",
        "--title",
        "Finance minister resigns",
        "--url",
        "https://news.example.com/politics/finance-minister-resigns",
        "--category",
        "Politics",
    ]);
    let outbox = cli.path("outbox");
    let msgs = wait_for(
        StdDuration::from_secs(20),
        "three breaking messages",
        || {
            let m = outbox_messages(&outbox);
            (m.len() >= alerts.len()).then_some(m)
        },
    );
    // A few more polls: nothing is sent twice, nothing goes to the digest-only list.
    std::thread::sleep(StdDuration::from_millis(2500));
    let msgs_later = outbox_messages(&outbox);
    assert_eq!(msgs_later, msgs, "no further messages");
    let mut to: Vec<String> = msgs.iter().map(|m| to_header(m)).collect();
    to.sort();
    assert_eq!(
        to, alerts,
        "one message per subscriber of the breaking list"
    );
    assert!(msgs.iter().all(|m| m.contains("Finance minister resigns")));

    // Still healthy while idle; then SIGTERM stops it cleanly.
    let health = http_get(port, "/healthz").unwrap();
    assert!(health.starts_with("HTTP/1.1 200"), "{health}");
    let status = daemon.terminate(StdDuration::from_secs(15));
    assert!(status.success(), "exit {status}\n{}", daemon.log());

    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    assert_eq!(
        delivery_statuses(&rt, cli.db()),
        BTreeMap::from([("sent".to_owned(), 3)]),
        "{}",
        daemon.log()
    );
}

/// A relay that takes 25 ms to accept each message, and a sandbox with a breaking-news list
/// of [`READERS`] readers sending to it over 2 connections: the send takes about 2.5 s, so a
/// signal can land in the middle of it.
struct SlowRelay {
    rt: tokio::runtime::Runtime,
    server: smtp_server::SmtpServer,
    cli: Cli,
    port: u16,
    everyone: Vec<String>,
}

const READERS: usize = 200;

impl SlowRelay {
    fn new(extra_config: &str) -> Self {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(4)
            .enable_all()
            .build()
            .unwrap();
        let server = rt.block_on(smtp_server::SmtpServer::start(
            smtp_server::ServerConfig::with_policy(|e| {
                if let smtp_server::Event::DataEnd(_) = e {
                    std::thread::sleep(StdDuration::from_millis(25));
                }
                smtp_server::Action::Default
            }),
        ));
        let port = free_port();
        let smtp_port = server.addr.port();
        let cli = sandbox(port, |_| {
            format!(
                "[delivery]\ntransport = \"smtp\"\n\n[smtp]\nhost = \"127.0.0.1\"\nport = {smtp_port}\n\
                 security = \"none\"\nconnections = 2\ntimeout_secs = 5\n\n{extra_config}"
            )
        });
        cli.ok(["lists", "create", "alerts", "--breaking"]);
        let mut csv = String::from("email,name,categories\n");
        let everyone: Vec<String> = (0..READERS)
            .map(|i| format!("reader{i:03}@example.org"))
            .collect();
        for a in &everyone {
            csv.push_str(&format!("{a},,\n"));
        }
        let file = cli.write("readers.csv", csv);
        cli.ok([
            "subscribers",
            "import",
            file.to_str().unwrap(),
            "--list",
            "alerts",
        ]);
        Self {
            rt,
            server,
            cli,
            port,
            everyone,
        }
    }

    /// Starts the daemon, adds breaking news from another process, and returns once the
    /// relay has accepted some of the messages.
    fn start_sending(&self) -> Daemon {
        let daemon = Daemon::start(&self.cli, 1);
        wait_healthy(self.port, &daemon);
        self.cli.ok([
            "articles",
            "add",
            "--breaking",
            "--title",
            "Earthquake in the north",
            "--url",
            "https://news.example.com/quake",
            "--category",
            "General News",
        ]);
        wait_for(StdDuration::from_secs(20), "the send to start", || {
            (self.server.received().len() >= 20).then_some(())
        });
        daemon
    }

    /// Every recipient the relay accepted, sorted, with repeats.
    fn accepted(&self) -> Vec<String> {
        let mut a: Vec<String> = self
            .server
            .received()
            .into_iter()
            .flat_map(|r| r.to)
            .collect();
        a.sort();
        a
    }

    /// Restarts the daemon and waits until every delivery is recorded sent, then stops it.
    fn restart_until_all_sent(&self, n: usize) {
        let mut daemon = Daemon::start(&self.cli, n);
        wait_for(StdDuration::from_secs(25), "every delivery sent", || {
            let s = delivery_statuses(&self.rt, self.cli.db());
            (s.get("sent") == Some(&(READERS as i64))).then_some(())
        });
        let status = daemon.terminate(StdDuration::from_secs(15));
        assert!(status.success(), "exit {status}\n{}", daemon.log());
        assert_eq!(
            delivery_statuses(&self.rt, self.cli.db()),
            BTreeMap::from([("sent".to_owned(), READERS as i64)])
        );
    }
}

#[test]
fn sigterm_mid_send_leaves_every_delivery_sent_or_queued_and_a_restart_finishes_once() {
    let relay = SlowRelay::new("");
    let (rt, cli) = (&relay.rt, &relay.cli);
    let mut daemon = relay.start_sending();
    let status = daemon.terminate(StdDuration::from_secs(15));
    assert!(status.success(), "exit {status}\n{}", daemon.log());

    // Every delivery is sent or queued: none left claimed ('sending') by the stopped process.
    let statuses = delivery_statuses(rt, cli.db());
    let sent = statuses.get("sent").copied().unwrap_or(0);
    let queued = statuses.get("queued").copied().unwrap_or(0);
    assert_eq!(
        sent + queued,
        READERS as i64,
        "{statuses:?}\n{}",
        daemon.log()
    );
    assert!(
        queued > 0,
        "SIGTERM came after the send finished: {statuses:?}"
    );
    // What the relay accepted is exactly what is recorded sent: nothing it accepted was
    // left queued to be sent again.
    assert_eq!(relay.accepted(), delivered_to(rt, cli.db(), "sent"));

    // A restart sends the rest, and every reader has the message exactly once (promise 1).
    relay.restart_until_all_sent(2);
    assert_eq!(relay.accepted(), relay.everyone, "each reader exactly once");
}

#[test]
fn sigkill_mid_send_duplicates_at_most_the_messages_in_flight() {
    let relay = SlowRelay::new("");
    let (rt, cli) = (&relay.rt, &relay.cli);
    let mut daemon = relay.start_sending();
    daemon.child.kill().unwrap();
    daemon.child.wait().unwrap();

    let statuses = delivery_statuses(rt, cli.db());
    assert_eq!(
        statuses.values().sum::<i64>(),
        READERS as i64,
        "{statuses:?}"
    );
    let in_flight: HashSet<String> = delivered_to(rt, cli.db(), "sending").into_iter().collect();
    let sent_before: HashSet<String> = delivered_to(rt, cli.db(), "sent").into_iter().collect();
    let accepted_before: HashSet<String> = relay.accepted().into_iter().collect();
    assert!(
        sent_before.is_subset(&accepted_before),
        "recorded sent only after the relay accepted"
    );
    assert!(
        accepted_before
            .difference(&sent_before)
            .all(|a| in_flight.contains(a)),
        "accepted but unrecorded messages are among the claimed ones"
    );

    // Let the dead process's leases run out (instead of waiting [sending] lease_secs).
    rt.block_on(async {
        let pool = raw_pool(cli.db()).await;
        sqlx::query("UPDATE deliveries SET lease_until = $1 WHERE status = 'sending'")
            .bind(dbt(Utc::now() - Duration::seconds(1)))
            .execute(&pool)
            .await
            .unwrap();
        pool.close().await;
    });
    relay.restart_until_all_sent(2);
    let mut copies: BTreeMap<String, usize> = BTreeMap::new();
    for a in relay.accepted() {
        *copies.entry(a).or_default() += 1;
    }
    assert_eq!(copies.len(), READERS, "everyone got the message");
    let dupes: Vec<&String> = copies
        .iter()
        .filter(|(_, n)| **n > 1)
        .map(|(a, _)| a)
        .collect();
    assert!(
        dupes
            .iter()
            .all(|a| in_flight.contains(*a) && copies[*a] == 2),
        "only messages in flight at the crash are repeated, once: {dupes:?}"
    );
}
