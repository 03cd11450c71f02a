//! The sending engine against real SMTP conversations: a temporary SQLite file, a recorded
//! edition, `Engine::run`, and the scripted server in `support/smtp_server.rs` with a fault
//! script per test. Each test checks both sides: what the database says happened and what
//! the server actually accepted.

#[path = "../support/mod.rs"]
mod support;

mod failures;
mod messages;
mod pacing;
mod retries;
mod unsubscribes;

use std::collections::{BTreeMap, HashSet};
use std::path::Path;
use std::time::Duration;

use dispatch::config::Config;
use dispatch::delivery::{Engine, Mode, Report};
use dispatch::store::{ListRow, Store};
use support::db::{TempDb, raw_pool};
use support::newsroom::{self, index_of, reader};
use support::smtp_server::{Received, SmtpServer};
use tokio::sync::watch;

/// A database with list `daily`, `n` readers and three stories from the last hours.
struct Fixture {
    file: TempDb,
    store: Store,
    config: Config,
    list: ListRow,
}

fn base_config(server: &SmtpServer, db: &Path) -> Config {
    newsroom::smtp_config(server.addr.port(), db)
}

async fn fixture(server: &SmtpServer, n: usize, tweak: impl FnOnce(&mut Config)) -> Fixture {
    let file = TempDb::new();
    let store = file.store().await;
    let mut config = base_config(server, file.path());
    tweak(&mut config);
    let list = newsroom::seed_daily(&store, n).await;
    Fixture {
        file,
        store,
        config,
        list,
    }
}

impl Fixture {
    /// Records the digest and returns its id.
    async fn digest(&self) -> i64 {
        newsroom::digest(&self.store, &self.config, &self.list).await
    }

    fn engine(&self) -> Engine {
        newsroom::engine(&self.store, &self.config)
    }

    /// Runs the engine over `only` until idle; fails the test if it does not finish.
    async fn run(&self, only: Option<HashSet<i64>>) -> Report {
        newsroom::run_until_idle(&self.engine(), &self.store, only).await
    }

    /// (status, attempts, last_reply) of each delivery of `edition`, by address.
    async fn deliveries(&self, edition: i64) -> BTreeMap<String, (String, i64, Option<String>)> {
        delivery_rows(self.file.path(), edition).await
    }

    async fn status(&self, edition: i64) -> (String, Option<String>) {
        let e = self.store.edition(edition).await.unwrap();
        (e.status.to_string(), e.status_reason)
    }
}

async fn run_engine(engine: &Engine, only: Option<HashSet<i64>>) -> Report {
    let (_tx, rx) = watch::channel(false);
    tokio::time::timeout(
        Duration::from_secs(90),
        engine.run(
            only,
            Mode::UntilIdle {
                wait_for_retries: Duration::from_secs(10),
            },
            rx,
        ),
    )
    .await
    .expect("the run finishes")
    .expect("the run succeeds")
}

async fn delivery_rows(db: &Path, edition: i64) -> BTreeMap<String, (String, i64, Option<String>)> {
    let pool = raw_pool(db).await;
    let rows: Vec<(String, String, i64, Option<String>)> = sqlx::query_as(
        "SELECT p.email, d.status, d.attempts, d.last_reply
         FROM deliveries d JOIN subscribers p ON p.id = d.subscriber_id
         WHERE d.edition_id = $1",
    )
    .bind(edition)
    .fetch_all(&pool)
    .await
    .unwrap();
    pool.close().await;
    rows.into_iter()
        .map(|(e, s, a, r)| (e, (s, a, r)))
        .collect()
}

/// How many messages each envelope recipient received.
fn per_recipient(got: &[Received]) -> BTreeMap<String, usize> {
    let mut m = BTreeMap::new();
    for r in got {
        assert_eq!(r.to.len(), 1, "one recipient per transaction");
        *m.entry(r.to[0].clone()).or_insert(0) += 1;
    }
    m
}

/// Asserts that readers `0..n` except `missing` received exactly one message each, and
/// nobody else received anything.
fn assert_each_once(got: &[Received], n: usize, missing: &[usize]) {
    let counts = per_recipient(got);
    let expected: BTreeMap<String, usize> = (0..n)
        .filter(|i| !missing.contains(i))
        .map(|i| (reader(i), 1))
        .collect();
    assert_eq!(counts, expected, "each reader exactly once");
}

fn header(data: &[u8], name: &str) -> Option<String> {
    let text = String::from_utf8_lossy(data);
    let head = text.split("\r\n\r\n").next().unwrap_or("").to_owned();
    let unfolded = head.replace("\r\n ", " ").replace("\r\n\t", " ");
    unfolded.split("\r\n").find_map(|l| {
        let (k, v) = l.split_once(':')?;
        k.eq_ignore_ascii_case(name).then(|| v.trim().to_owned())
    })
}
