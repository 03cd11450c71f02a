//! The sending engine against relays that limit us, and pipelined refusals recorded against
//! the right reader: a relay that turns away connections beyond a number, one that closes
//! with a 421 after a message, one that refuses every connection, and refusals inside
//! pipelined groups (DATA and BDAT). Each test checks the relay's side and the database's.

mod support;

use std::collections::{BTreeMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering::SeqCst};
use std::sync::{Arc, Mutex};

use dispatch::config::Config;
use dispatch::delivery::Report;
use dispatch::store::Store;
use support::db::{TempDb, raw_pool};
use support::newsroom::{self, index_of};
use support::smtp_server::{Action, Event, ServerConfig, SmtpServer};

/// A database with `n` readers of list `daily`, three stories and their digest recorded,
/// and a config sending to `port` over `connections`.
struct Setup {
    file: TempDb,
    store: Store,
    config: Config,
    edition: i64,
}

async fn setup(port: u16, n: usize, connections: u32) -> Setup {
    let file = TempDb::new();
    let store = file.store().await;
    let mut config = newsroom::smtp_config(port, file.path());
    config.smtp.timeout_secs = 5;
    config.smtp.connections = connections;
    let list = newsroom::seed_daily(&store, n).await;
    let edition = newsroom::digest(&store, &config, &list).await;
    Setup {
        file,
        store,
        config,
        edition,
    }
}

impl Setup {
    /// Sends the edition until nothing is due within 10 s.
    async fn run(&self) -> Report {
        let engine = newsroom::engine(&self.store, &self.config);
        newsroom::run_until_idle(&engine, &self.store, Some(HashSet::from([self.edition]))).await
    }

    /// (status, attempts) of each delivery, by reader index.
    async fn rows(&self) -> BTreeMap<usize, (String, i64)> {
        let pool = raw_pool(self.file.path()).await;
        let rows: Vec<(String, String, i64)> = sqlx::query_as(
            "SELECT p.email, d.status, d.attempts
             FROM deliveries d JOIN subscribers p ON p.id = d.subscriber_id
             WHERE d.edition_id = $1",
        )
        .bind(self.edition)
        .fetch_all(&pool)
        .await
        .unwrap();
        pool.close().await;
        rows.into_iter()
            .map(|(e, s, a)| (index_of(&e), (s, a)))
            .collect()
    }

    async fn edition_status(&self) -> String {
        self.store
            .edition(self.edition)
            .await
            .unwrap()
            .status
            .to_string()
    }
}

/// Copies each reader got at the relay.
fn copies(server: &SmtpServer) -> BTreeMap<usize, usize> {
    let mut m = BTreeMap::new();
    for r in server.received() {
        *m.entry(index_of(&r.to[0])).or_insert(0) += 1;
    }
    m
}

fn once_each(n: usize) -> BTreeMap<usize, usize> {
    (0..n).map(|i| (i, 1)).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_relay_allowing_two_connections_gets_every_message_once_and_none_fails() {
    const N: usize = 150;
    let server = SmtpServer::start(ServerConfig {
        max_connections: Some(2),
        ..ServerConfig::default()
    })
    .await;
    let s = setup(server.addr.port(), N, 8).await;
    let report = s.run().await;

    assert_eq!(copies(&server), once_each(N));
    assert_eq!(
        (report.sent, report.failed, report.retry_later),
        (N as u64, 0, 0),
        "refused connections fail nothing and count no attempt: {report:?}"
    );
    let rows = s.rows().await;
    assert!(
        rows.values()
            .all(|(st, attempts)| st == "sent" && *attempts == 1),
        "{rows:?}"
    );
    assert_eq!(s.edition_status().await, "sent");
    eprintln!(
        "{} connections turned away, {} accepted, at most {} at once",
        server.refused(),
        server.connections(),
        server.peak_connections()
    );
    assert!(server.refused() > 0, "the relay's limit was reached");
    // Halving from 8 to 4 to 2 takes a few refusals, not one per message.
    assert!(
        server.refused() <= 16,
        "{} connections turned away: the sender kept knocking",
        server.refused()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_421_after_the_data_sends_the_message_again_without_counting_an_attempt() {
    const N: usize = 30;
    let refused: Arc<Mutex<HashSet<usize>>> = Arc::default();
    let r = refused.clone();
    // Readers 3, 13 and 23, the first time: "slow down", and the connection closes.
    let server = SmtpServer::start(ServerConfig::with_policy(move |e| match e {
        Event::DataEnd(m)
            if index_of(&m.to[0]) % 10 == 3 && r.lock().unwrap().insert(index_of(&m.to[0])) =>
        {
            Action::ReplyAndClose(
                "421 4.7.28 Our system has detected an unusual rate of mail, try later".into(),
            )
        }
        _ => Action::Default,
    }))
    .await;
    let s = setup(server.addr.port(), N, 3).await;
    let report = s.run().await;

    assert_eq!(copies(&server), once_each(N));
    assert_eq!(
        (report.sent, report.failed, report.retry_later),
        (N as u64, 0, 0),
        "{report:?}"
    );
    let rows = s.rows().await;
    assert!(
        rows.values()
            .all(|(st, attempts)| st == "sent" && *attempts == 1),
        "{rows:?}"
    );
    assert_eq!(refused.lock().unwrap().len(), 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_relay_refusing_every_connection_pauses_the_edition_after_pause_after_secs() {
    // Nothing listens on the port: every connect is refused.
    let port = support::free_port();
    let mut s = setup(port, 10, 4).await;
    s.config.sending.pause_after_secs = 1;
    let report = s.run().await;

    assert_eq!((report.sent, report.failed), (0, 0), "{report:?}");
    assert_eq!(report.paused.len(), 1, "{report:?}");
    assert!(
        report.paused[0].1.contains("refusing us"),
        "{:?}",
        report.paused
    );
    assert_eq!(s.edition_status().await, "paused");
    let rows = s.rows().await;
    assert!(
        rows.values()
            .all(|(st, attempts)| st == "queued" && *attempts == 0),
        "nothing failed, no attempt counted: {rows:?}"
    );
}

/// Over one connection, with every envelope going ahead of its message (or BDAT): a hard
/// bounce at RCPT (reader 4), a greylisting at RCPT (reader 6, the first time) and a refusal
/// of the data (reader 9) are recorded against those readers and nobody else.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refusals_inside_pipelined_groups_are_recorded_against_their_own_readers() {
    const N: usize = 14;
    for chunking in [false, true] {
        let greylisted = Arc::new(AtomicBool::new(false));
        let datas = Arc::new(AtomicUsize::new(0));
        let (g, d) = (greylisted.clone(), datas.clone());
        let server = SmtpServer::start(ServerConfig {
            chunking,
            ..ServerConfig::with_policy(move |e| match e {
                Event::Rcpt(a) if index_of(a) == 4 => Action::Reply(format!(
                    "550 5.1.1 <{a}>: Recipient address rejected: User unknown"
                )),
                Event::Rcpt(a) if index_of(a) == 6 && !g.swap(true, SeqCst) => {
                    Action::Reply("451 4.7.1 Greylisted, try again later".into())
                }
                Event::DataEnd(m) => {
                    d.fetch_add(1, SeqCst);
                    if index_of(&m.to[0]) == 9 {
                        Action::Reply("554 5.6.0 Message content rejected".into())
                    } else {
                        Action::Default
                    }
                }
                _ => Action::Default,
            })
        })
        .await;
        let s = setup(server.addr.port(), N, 1).await;
        let report = s.run().await;

        let want: BTreeMap<usize, usize> = (0..N)
            .filter(|i| ![4, 9].contains(i))
            .map(|i| (i, 1))
            .collect();
        assert_eq!(copies(&server), want, "chunking {chunking}");
        assert_eq!(
            (
                report.sent,
                report.bounced,
                report.failed,
                report.retry_later
            ),
            (N as u64 - 2, 1, 1, 1),
            "chunking {chunking}: {report:?}"
        );
        let rows = s.rows().await;
        for (i, (status, attempts)) in &rows {
            let want = match i {
                4 | 9 => ("failed", 1),
                6 => ("sent", 2),
                _ => ("sent", 1),
            };
            assert_eq!(
                (status.as_str(), *attempts),
                want,
                "chunking {chunking}, reader {i}"
            );
        }
        assert_eq!(server.connections(), 1, "chunking {chunking}");
        // Reader 4 never got to the data: N - 1 data transfers, reader 6's second included.
        assert_eq!(datas.load(SeqCst), N - 1, "chunking {chunking}");
    }
}
