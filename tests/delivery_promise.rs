//! The delivery promise under restarts, with the real binary: a stop drains, a crash repeats
//! at most one message per connection, a dead process's leases are taken over at once and a
//! live one's are left alone, and a re-check that cannot read the database sends nothing.
//!
//! The relay is the scripted SMTP server of `support/smtp_server.rs`, in this process, so
//! every count below is what the relay received, not what our own rows say.

mod support;

use std::collections::{BTreeMap, HashSet};
use std::path::Path;
use std::process::{Child, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::Utc;
use dispatch::config::{Config, Security, TransportKind};
use dispatch::delivery::{Engine, Mode};
use dispatch::domain::{EmailAddress, ListSlug};
use dispatch::mail::transport::Transport;
use dispatch::store::subscribers::NewSubscription;
use dispatch::store::{Created, ListSpec, NewArticle, Store};
use support::cli::{Cli, show};
use support::smtp_server::{Action, Event, ServerConfig, SmtpServer};

fn reader(i: usize) -> String {
    format!("reader{i:05}@example.org")
}

/// List `daily` (which also carries breaking news) with `n` readers and three stories; with
/// `breaking`, the newest story is breaking news.
async fn seed(db: &Path, n: usize, breaking: bool) {
    let store = Store::open(db).await.unwrap();
    let list = store
        .create_list(
            &ListSlug::parse("daily").unwrap(),
            &ListSpec {
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
    for chunk in rows.chunks(500) {
        store
            .subscribe_batch(list.id, chunk, "test", false)
            .await
            .unwrap();
    }
    for (i, cat) in ["Politics", "Business", "Sport"].iter().enumerate() {
        store
            .insert_article(&NewArticle {
                external_id: format!("story-{i}"),
                url: format!("https://news.example.com/story/{i}"),
                title: format!("{cat} story {i}"),
                summary: format!("What happened in {cat} today."),
                author: None,
                category: (*cat).into(),
                language: Some("en".into()),
                image_url: None,
                published_at: Utc::now() - chrono::Duration::hours(i as i64 + 1),
                breaking: breaking && i == 0,
            })
            .await
            .unwrap();
    }
    store.close().await;
}

/// A config file for the binary: SMTP to `port`, the given connections and timeout.
fn config(cli: Cli, port: u16, connections: u32, timeout_secs: u64) -> Cli {
    let db = cli.db().display().to_string();
    cli.write(
        "dispatch.toml",
        format!(
            "[database]\npath = {db:?}\n\n\
             [web]\nbind = \"127.0.0.1:0\"\n\n\
             [delivery]\ntransport = \"smtp\"\n\n\
             [smtp]\nhost = \"127.0.0.1\"\nport = {port}\nsecurity = \"none\"\n\
             connections = {connections}\ntimeout_secs = {timeout_secs}\n\n\
             [sending]\nlease_secs = 300\nretry_base_secs = 1\n\n\
             [schedule]\nbreaking_poll_secs = 1\n\n\
             [log]\nlevel = \"warn\"\n",
        ),
    );
    cli.with_config("dispatch.toml")
}

/// (address, status) of every delivery, read with a plain connection.
async fn deliveries(db: &Path) -> BTreeMap<String, String> {
    let opts = sqlx::sqlite::SqliteConnectOptions::new()
        .filename(db)
        .busy_timeout(Duration::from_secs(15));
    let pool = sqlx::SqlitePool::connect_with(opts).await.unwrap();
    let rows: Vec<(String, String)> = sqlx::query_as(
        "SELECT p.email, d.status FROM deliveries d JOIN subscribers p ON p.id = d.subscriber_id",
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    pool.close().await;
    rows.into_iter().collect()
}

/// How many copies each address received at the relay.
fn per_reader(server: &SmtpServer) -> BTreeMap<String, usize> {
    let mut per = BTreeMap::new();
    for r in server.received() {
        *per.entry(r.to[0].clone()).or_insert(0) += 1;
    }
    per
}

fn signal(child: &Child, sig: &str) {
    let st = std::process::Command::new("kill")
        .args([sig, &child.id().to_string()])
        .status()
        .unwrap();
    assert!(st.success(), "kill {sig} failed");
}

/// Waits for `child` to exit within `limit`; returns its output and how long it took.
async fn wait_exit(child: Child, limit: Duration) -> (std::process::Output, Duration) {
    let t = Instant::now();
    let out = tokio::time::timeout(
        limit,
        tokio::task::spawn_blocking(move || child.wait_with_output().unwrap()),
    )
    .await
    .unwrap_or_else(|_| panic!("the process did not exit within {limit:?} of the signal"))
    .unwrap();
    (out, t.elapsed())
}

/// Waits until `cond` holds on the server (or fails after 60 s, showing the child's output).
async fn until(server: &SmtpServer, child: &mut Child, cond: impl Fn(&SmtpServer) -> bool) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while !cond(server) {
        if let Some(status) = child.try_wait().unwrap() {
            panic!("dispatch exited early with {status}");
        }
        assert!(Instant::now() < deadline, "no progress");
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

/// SIGTERM while messages are in flight at a slow relay: the process stops claiming, lets
/// the transactions finish, records them and exits 0 within `timeout_secs` + 2 s.
async fn sigterm_drains(args: &[&str], breaking: bool) {
    const TIMEOUT: u64 = 4;
    // A relay that takes 1.5 s to accept each message.
    let server = SmtpServer::start(ServerConfig::with_policy(|e| match e {
        Event::DataEnd(_) => Action::Delay(Duration::from_millis(1500)),
        _ => Action::Default,
    }))
    .await;
    let cli = config(Cli::new(), server.addr.port(), 4, TIMEOUT);
    seed(cli.db(), 12, breaking).await;
    let mut child = cli
        .command()
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Four messages (one per connection) are at the relay, waiting for its answer.
    until(&server, &mut child, |s| s.received().len() >= 4).await;
    signal(&child, "-TERM");
    let (out, took) = wait_exit(child, Duration::from_secs(TIMEOUT + 2)).await;
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    let accepted: HashSet<String> = server
        .received()
        .into_iter()
        .map(|r| r.to[0].clone())
        .collect();
    let rows = deliveries(cli.db()).await;
    assert_eq!(rows.len(), 12);
    for (to, status) in &rows {
        if accepted.contains(to) {
            assert_eq!(status, "sent", "{to} reached the relay but is {status}");
        } else {
            assert_eq!(
                status, "queued",
                "{to} never reached the relay but is {status}"
            );
        }
    }
    assert!(
        accepted.len() < 12,
        "the stop came before everything was sent"
    );
    eprintln!(
        "{args:?}: exited {took:?} after SIGTERM; {} accepted and recorded",
        accepted.len()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_during_send_digest_drains_and_exits_zero() {
    sigterm_drains(&["send", "digest", "daily"], false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_during_run_drains_and_exits_zero() {
    sigterm_drains(&["run"], true).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_with_nothing_to_send_exits_zero() {
    let server = SmtpServer::start(ServerConfig::default()).await;
    let cli = config(Cli::new(), server.addr.port(), 2, 4);
    seed(cli.db(), 3, false).await;
    let child = cli
        .command()
        .arg("run")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    signal(&child, "-TERM");
    let (out, _) = wait_exit(child, Duration::from_secs(6)).await;
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    assert!(server.received().is_empty());
}

/// SIGKILL at full speed (8 connections, no rate cap), then `editions resume` at once: every
/// reader has the edition, and no more than one per connection got it twice.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_at_full_speed_repeats_at_most_one_message_per_connection() {
    const READERS: usize = 3000;
    const CONNECTIONS: usize = 8;
    let server = SmtpServer::start(ServerConfig::default()).await;
    let cli = config(Cli::new(), server.addr.port(), CONNECTIONS as u32, 5);
    seed(cli.db(), READERS, false).await;
    let mut child = cli
        .command()
        .args(["send", "digest", "daily"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    until(&server, &mut child, |s| s.received().len() >= READERS / 3).await;
    signal(&child, "-KILL");
    let _ = child.wait();
    tokio::time::sleep(Duration::from_millis(200)).await;
    let at_kill = server.received().len();

    let edition: i64 = {
        let store = Store::open(cli.db()).await.unwrap();
        let e = store.editions(None, 10).await.unwrap();
        store.close().await;
        e[0].id
    };
    let out = tokio::time::timeout(
        Duration::from_secs(120),
        tokio::process::Command::from(cli.command())
            .args(["editions", "resume", &edition.to_string()])
            .output(),
    )
    .await
    .expect("resume finishes without waiting out the leases")
    .unwrap();
    assert!(out.status.success(), "{}", show(&out));
    let per = per_reader(&server);
    assert_eq!(per.len(), READERS, "every reader has the edition");
    let duplicates: usize = per.values().map(|n| n - 1).sum();
    assert!(
        duplicates <= CONNECTIONS,
        "{duplicates} duplicates; the bound is {CONNECTIONS} (one per connection)"
    );
    let rows = deliveries(cli.db()).await;
    assert!(
        rows.values().all(|s| s == "sent"),
        "every delivery recorded sent"
    );
    eprintln!(
        "killed after {at_kill} of {READERS} at the relay; {duplicates} duplicates (bound {CONNECTIONS})"
    );
}

/// A second sender started while the first still runs takes none of its work: no reader
/// gets two copies, and the two finish the edition between them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_live_senders_leases_are_left_alone() {
    const READERS: usize = 40;
    let server = SmtpServer::start(ServerConfig::with_policy(|e| match e {
        Event::DataEnd(_) => Action::Delay(Duration::from_millis(100)),
        _ => Action::Default,
    }))
    .await;
    let cli = config(Cli::new(), server.addr.port(), 1, 5);
    seed(cli.db(), READERS, false).await;
    let mut first = cli
        .command()
        .args(["send", "digest", "daily"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    until(&server, &mut first, |s| s.received().len() >= 3).await;
    let edition: i64 = {
        let store = Store::open(cli.db()).await.unwrap();
        let e = store.editions(None, 10).await.unwrap();
        store.close().await;
        e[0].id
    };
    let second = tokio::process::Command::from(cli.command())
        .args(["editions", "resume", &edition.to_string()])
        .output()
        .await
        .unwrap();
    assert!(second.status.success(), "{}", show(&second));
    let (out, _) = wait_exit(first, Duration::from_secs(60)).await;
    assert!(out.status.success(), "{}", show(&out));
    let per = per_reader(&server);
    assert_eq!(per.len(), READERS);
    assert!(
        per.values().all(|n| *n == 1),
        "a live sender's claims were taken: {:?}",
        per.iter().filter(|(_, n)| **n > 1).collect::<Vec<_>>()
    );
}

/// When the pre-send re-check cannot read the database, the message is not sent.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_recheck_that_cannot_read_the_database_sends_nothing() {
    let server = SmtpServer::start(ServerConfig::default()).await;
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("dispatch.db");
    seed(&db, 6, false).await;
    let store = Store::open(&db).await.unwrap();
    let mut config = Config::default();
    config.database.path = db.clone();
    config.delivery.transport = TransportKind::Smtp;
    config.smtp.host = "127.0.0.1".into();
    config.smtp.port = server.addr.port();
    config.smtp.security = Security::None;
    config.smtp.connections = 1;
    // Two a second: every message after the first waits behind the cap, so it is checked
    // again right before it is sent.
    config.sending.rate_per_second = 2;
    let list = store.list_by_slug("daily").await.unwrap();
    let Created::New { id, .. } =
        dispatch::edition::create_digest(&store, &config, &list, Utc::now(), None)
            .await
            .unwrap()
    else {
        panic!("a new edition")
    };
    let engine = Engine::new(
        store.clone(),
        Arc::new(config.clone()),
        Transport::from_config(&config).unwrap(),
    )
    .unwrap();
    let (_stop, rx) = tokio::sync::watch::channel(false);
    let run = tokio::spawn(async move {
        engine
            .run(
                Some(HashSet::from([id])),
                Mode::UntilIdle {
                    wait_for_retries: Duration::from_secs(1),
                },
                rx,
            )
            .await
    });
    let deadline = Instant::now() + Duration::from_secs(30);
    while server.received().is_empty() {
        assert!(Instant::now() < deadline, "nothing sent");
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    // The database goes away between two messages.
    store.close().await;
    let at_close = server.received().len();
    let result = tokio::time::timeout(Duration::from_secs(30), run)
        .await
        .expect("the run ends")
        .unwrap();
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert_eq!(
        server.received().len(),
        at_close,
        "nothing is sent once the subscription cannot be checked"
    );
    assert!(
        result.is_err(),
        "a run without its database ends with an error"
    );
}
