//! Faults that are worth another try: transient replies (greylisting), a connection dropped
//! in the middle of DATA and a server that stops answering are retried, and every reader gets
//! exactly one copy.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::support::smtp_server::{Action, Event, ServerConfig, SmtpServer};
use crate::{assert_each_once, fixture, index_of, reader};

/// Whether the first attempt for this address has been seen (and records it).
fn first_time(seen: &Mutex<HashSet<String>>, addr: &str) -> bool {
    seen.lock().unwrap().insert(addr.to_owned())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transient_replies_are_retried_and_every_reader_gets_one_copy() {
    let seen = Arc::new(Mutex::new(HashSet::new()));
    let s = seen.clone();
    // Greylisting: readers 0, 4, 8, … refused at RCPT, 1, 5, 9, … after the data, the first
    // time only.
    let server = SmtpServer::start(ServerConfig::with_policy(move |e| match e {
        Event::Rcpt(a) if index_of(a).is_multiple_of(4) && first_time(&s, a) => {
            Action::Reply("451 4.7.1 Greylisted, please try again later".into())
        }
        Event::DataEnd(r) if index_of(&r.to[0]) % 4 == 1 && first_time(&s, &r.to[0]) => {
            Action::Reply("451 4.7.1 Service unavailable, try again".into())
        }
        _ => Action::Default,
    }))
    .await;
    let n = 24;
    let f = fixture(&server, n, |_| {}).await;
    let id = f.digest().await;
    let report = f.run(Some(HashSet::from([id]))).await;

    assert_each_once(&server.received(), n, &[]);
    let greylisted: Vec<usize> = (0..n).filter(|i| i % 4 <= 1).collect();
    assert_eq!(report.sent, n as u64, "{report:?}");
    assert_eq!(report.retry_later, greylisted.len() as u64, "{report:?}");
    assert_eq!((report.failed, report.bounced), (0, 0), "{report:?}");
    for (email, (status, attempts, reply)) in f.deliveries(id).await {
        let want = if greylisted.contains(&index_of(&email)) {
            2
        } else {
            1
        };
        assert_eq!(
            (status.as_str(), attempts),
            ("sent", want),
            "{email}: {reply:?}"
        );
    }
    assert_eq!(f.status(id).await.0, "sent");
    assert!(
        server.connections() <= 3,
        "a 451 resets the transaction and keeps the connection: {} connections",
        server.connections()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_dropped_in_the_middle_of_data_is_retried_and_nothing_is_lost() {
    // The server hangs up right after the first line of three readers' first message: the
    // data was half sent and never acknowledged. Chosen by reader, not by arrival order, so a
    // retry that happens to arrive 11th is not dropped a second time.
    let broken = [
        "reader002@example.org",
        "reader010@example.org",
        "reader016@example.org",
    ];
    let seen = Arc::new(Mutex::new(HashSet::new()));
    let s = seen.clone();
    let server = SmtpServer::start(ServerConfig::with_policy(move |e| match e {
        Event::DataStarted(to) if broken.contains(&to[0].as_str()) && first_time(&s, &to[0]) => {
            Action::Drop
        }
        _ => Action::Default,
    }))
    .await;
    let n = 20;
    let f = fixture(&server, n, |_| {}).await;
    let id = f.digest().await;
    let report = f.run(Some(HashSet::from([id]))).await;

    assert_each_once(&server.received(), n, &[]);
    assert_eq!((report.sent, report.retry_later), (20, 3), "{report:?}");
    let rows = f.deliveries(id).await;
    assert!(rows.values().all(|(s, ..)| s == "sent"), "{rows:?}");
    let retried = rows.values().filter(|(_, a, _)| *a == 2).count();
    assert_eq!(
        retried, 3,
        "the three broken transactions were tried twice: {rows:?}"
    );
    assert!(
        server.connections() > 3,
        "each dropped connection was replaced: {} connections",
        server.connections()
    );
    assert_eq!(f.status(id).await.0, "sent");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_that_stops_answering_times_out_and_the_message_is_retried() {
    let seen = Arc::new(Mutex::new(HashSet::new()));
    let s = seen.clone();
    // After reader 6's data the server never answers (the first time).
    let server = SmtpServer::start(ServerConfig::with_policy(move |e| match e {
        Event::DataEnd(r) if index_of(&r.to[0]) == 6 && first_time(&s, &r.to[0]) => Action::Stall,
        _ => Action::Default,
    }))
    .await;
    let n = 12;
    let f = fixture(&server, n, |c| c.smtp.timeout_secs = 1).await;
    let id = f.digest().await;
    let start = Instant::now();
    let report = f.run(Some(HashSet::from([id]))).await;
    let took = start.elapsed();
    eprintln!("12 messages with one 1 s timeout: {took:?}");

    assert_each_once(&server.received(), n, &[]);
    assert_eq!((report.sent, report.retry_later), (12, 1), "{report:?}");
    let rows = f.deliveries(id).await;
    assert_eq!(rows[&reader(6)].0, "sent");
    assert_eq!(rows[&reader(6)].1, 2, "timed out once, then sent");
    assert!(
        rows.iter()
            .filter(|(e, _)| **e != reader(6))
            .all(|(_, (s, a, _))| s == "sent" && *a == 1),
        "{rows:?}"
    );
    assert!(
        took >= Duration::from_millis(900),
        "the timeout was waited for"
    );
    assert_eq!(f.status(id).await.0, "sent");
}
