//! One round trip per message: our SMTP session against the scripted server, counting the
//! round trips the server sees. With PIPELINING a message's content carries the next
//! message's envelope (RFC 2920 §3.1); with CHUNKING the content is `BDAT n LAST` with the
//! message (RFC 3030); without PIPELINING nothing is grouped. Refusals inside a
//! group belong to the message they answer, and an envelope sent ahead delivers nothing
//! until its content follows.

mod support;

use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::sync::atomic::Ordering::SeqCst;

use dispatch::config::{self, Security};
use dispatch::domain::EmailAddress;
use dispatch::mail::{Outgoing, SendError, SmtpConnector, SmtpSession};
use support::smtp_server::{Action, Event, ServerConfig, SmtpServer};

/// Round trips of a session besides one per message: after the greeting, after our first
/// EHLO (the second reads the extensions lettre does not keep), before the first message's
/// content, and QUIT. Four, and one to spare.
const SETUP_ROUND_TRIPS: usize = 5;

fn addr(s: &str) -> EmailAddress {
    EmailAddress::parse(s).unwrap()
}

fn reader(i: usize) -> EmailAddress {
    addr(&format!("reader{i}@example.org"))
}

fn bounce() -> EmailAddress {
    addr("bounces@news.example.com")
}

async fn session(server: &SmtpServer) -> SmtpSession {
    let cfg = config::Smtp {
        host: "127.0.0.1".into(),
        port: server.addr.port(),
        security: Security::None,
        timeout_secs: 5,
        ..config::Smtp::default()
    };
    SmtpConnector::new(&cfg, "news.example.com")
        .unwrap()
        .connect()
        .await
        .unwrap()
}

/// Message `i` of about 2 KB with CRLF lines, one of which needs dot-stuffing.
fn message(i: usize) -> Vec<u8> {
    let mut m = format!(
        "From: digest@news.example.com\r\nTo: reader{i}@example.org\r\nSubject: test {i}\r\n\
         Message-ID: <e1.s{i}.x@news.example.com>\r\nMIME-Version: 1.0\r\n\r\n.leading dot\r\n"
    )
    .into_bytes();
    while m.len() < 2000 {
        m.extend_from_slice(b"Lorem ipsum dolor sit amet, consectetur adipiscing elit.\r\n");
    }
    m
}

/// Sends messages `0..n` as the delivery worker does: each with the next one named, so that
/// its envelope can go ahead. Returns each message's result.
async fn send_all(s: &mut SmtpSession, n: usize) -> Vec<Result<(), SendError>> {
    let from = bounce();
    let to: Vec<EmailAddress> = (0..n).map(reader).collect();
    let bodies: Vec<Vec<u8>> = (0..n).map(message).collect();
    let out = |i: usize| Outgoing {
        from: &from,
        to: &to[i],
        bytes: &bodies[i],
    };
    let mut results = Vec::new();
    for i in 0..n {
        let next = (i + 1 < n).then(|| out(i + 1));
        results.push(s.send_then(out(i), next).await);
    }
    results
}

/// The readers (by index) whose messages the server accepted, in order, checking each
/// arrived byte for byte.
fn accepted(server: &SmtpServer) -> Vec<usize> {
    server
        .received()
        .iter()
        .map(|r| {
            let i: usize = r.to[0]
                .trim_start_matches("reader")
                .split('@')
                .next()
                .unwrap()
                .parse()
                .unwrap();
            assert_eq!(r.data, message(i), "message {i} arrived changed");
            i
        })
        .collect()
}

#[tokio::test]
async fn with_pipelining_each_message_takes_one_round_trip() {
    const N: usize = 50;
    let server = SmtpServer::start(ServerConfig::default()).await;
    let mut s = session(&server).await;
    let results = send_all(&mut s, N).await;
    s.quit().await;
    assert!(results.iter().all(Result::is_ok), "{results:?}");
    assert_eq!(accepted(&server), (0..N).collect::<Vec<_>>());
    assert!(server.received().iter().all(|r| !r.chunked));

    assert_eq!(server.connections(), 1);
    // Two per message without the envelopes going ahead.
    assert!(
        server.round_trips() <= N + SETUP_ROUND_TRIPS,
        "{} round trips for {N} messages",
        server.round_trips()
    );
}

#[tokio::test]
async fn with_chunking_each_message_goes_by_bdat_in_one_round_trip() {
    const N: usize = 50;
    let server = SmtpServer::start(ServerConfig {
        chunking: true,
        ..ServerConfig::default()
    })
    .await;
    let mut s = session(&server).await;
    let results = send_all(&mut s, N).await;
    s.quit().await;
    assert!(results.iter().all(Result::is_ok), "{results:?}");
    assert_eq!(accepted(&server), (0..N).collect::<Vec<_>>());
    assert!(
        server.received().iter().all(|r| r.chunked),
        "every message came by BDAT"
    );
    assert!(
        server.round_trips() <= N + SETUP_ROUND_TRIPS,
        "{} round trips for {N} messages",
        server.round_trips()
    );
}

#[tokio::test]
async fn without_pipelining_every_command_waits_for_its_reply() {
    const N: usize = 10;
    for chunking in [false, true] {
        let server = SmtpServer::start(ServerConfig {
            pipelining: false,
            chunking,
            ..ServerConfig::default()
        })
        .await;
        let mut s = session(&server).await;
        let results = send_all(&mut s, N).await;
        s.quit().await;
        assert!(results.iter().all(Result::is_ok), "{results:?}");
        assert_eq!(accepted(&server), (0..N).collect::<Vec<_>>());
        assert!(server.received().iter().all(|r| r.chunked == chunking));
        // MAIL, RCPT, DATA, content; or MAIL, RCPT, BDAT with the content.
        let per_message = if chunking { 3 } else { 4 };
        assert!(
            server.round_trips() >= per_message * N,
            "chunking {chunking}: {} round trips for {N} messages: commands were grouped although PIPELINING was not offered",
            server.round_trips()
        );
    }
}

/// Readers refused at RCPT (3 for good, 5 the first time) and after the data (7), with every
/// envelope going ahead of its message: each answer belongs to its own message.
#[tokio::test]
async fn refusals_inside_a_pipelined_group_belong_to_the_message_they_answer() {
    for chunking in [false, true] {
        let greylisted = Arc::new(AtomicBool::new(false));
        let server = SmtpServer::start(ServerConfig {
            chunking,
            ..ServerConfig::with_policy(move |e| match e {
                Event::Rcpt(a) if a.starts_with("reader3@") => Action::Reply(format!(
                    "550 5.1.1 <{a}>: Recipient address rejected: User unknown"
                )),
                Event::Rcpt(a) if a.starts_with("reader5@") && !greylisted.swap(true, SeqCst) => {
                    Action::Reply("451 4.7.1 Greylisted, try again later".into())
                }
                Event::DataEnd(r) if r.to[0].starts_with("reader7@") => {
                    Action::Reply("552 5.3.4 Message size exceeds fixed limit".into())
                }
                _ => Action::Default,
            })
        })
        .await;
        let mut s = session(&server).await;
        let results = send_all(&mut s, 10).await;
        for (i, r) in results.iter().enumerate() {
            match i {
                3 => assert!(
                    matches!(r, Err(e @ SendError::Permanent { reply }) if e.is_hard_bounce() && reply.contains("reader3@")),
                    "chunking {chunking}, reader 3: {r:?}"
                ),
                5 => assert!(
                    matches!(r, Err(SendError::Transient { reply }) if reply.starts_with("451")),
                    "chunking {chunking}, reader 5: {r:?}"
                ),
                7 => assert!(
                    matches!(r, Err(e @ SendError::Permanent { reply }) if !e.is_hard_bounce() && reply.starts_with("552")),
                    "chunking {chunking}, reader 7: {r:?}"
                ),
                _ => assert!(r.is_ok(), "chunking {chunking}, reader {i}: {r:?}"),
            }
        }
        assert_eq!(accepted(&server), [0, 1, 2, 4, 6, 8, 9]);
        assert_eq!(server.connections(), 1, "refusals keep the connection");
        // Retried as before: the greylisted reader goes through the second time.
        s.send(&bounce(), &reader(5), &message(5)).await.unwrap();
        s.quit().await;
        assert_eq!(accepted(&server).last(), Some(&5));
    }
}

#[tokio::test]
async fn a_421_after_the_data_refuses_the_connection_and_the_next_message_goes_on_a_new_one() {
    let server = SmtpServer::start(ServerConfig::with_policy(|e| match e {
        Event::DataEnd(r) if r.to[0].starts_with("reader4@") => {
            Action::ReplyAndClose("421 4.7.0 Too many messages, closing connection".into())
        }
        _ => Action::Default,
    }))
    .await;
    let mut s = session(&server).await;
    let results = send_all(&mut s, 8).await;
    s.quit().await;
    for (i, r) in results.iter().enumerate() {
        if i == 4 {
            assert!(
                matches!(r, Err(e) if e.is_refusal() && e.is_retryable()),
                "reader 4: {r:?}"
            );
        } else {
            assert!(r.is_ok(), "reader {i}: {r:?}");
        }
    }
    // Reader 5's envelope went ahead on the closed connection; it was sent on the next one.
    assert_eq!(accepted(&server), [0, 1, 2, 3, 5, 6, 7]);
    assert_eq!(server.connections(), 2);
}

#[tokio::test]
async fn an_envelope_sent_ahead_delivers_nothing_when_its_message_does_not_follow() {
    let server = SmtpServer::start(ServerConfig::default()).await;
    let (from, body) = (bounce(), message(1));
    let (to1, to2) = (reader(1), reader(2));
    let out = |to| Outgoing {
        from: &from,
        to,
        bytes: &body,
    };
    // Reader 2 announced, then the caller sends reader 3 instead (a shutdown, a pause).
    let mut s = session(&server).await;
    s.send_then(out(&to1), Some(out(&to2))).await.unwrap();
    s.send(&from, &reader(3), &message(3)).await.unwrap();
    // Reader 4 announced, then the session closes.
    s.send_then(
        Outgoing {
            from: &from,
            to: &reader(0),
            bytes: &message(0),
        },
        Some(out(&reader(4))),
    )
    .await
    .unwrap();
    s.quit().await;
    // Give the server a moment to see the closed connections end their DATA.
    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    assert_eq!(accepted(&server), [1, 3, 0]);
}

#[tokio::test]
async fn a_relay_turning_connections_away_is_a_refusal_not_a_failure() {
    let server = SmtpServer::start(ServerConfig {
        max_connections: Some(1),
        ..ServerConfig::default()
    })
    .await;
    let first = session(&server).await;
    let cfg = config::Smtp {
        host: "127.0.0.1".into(),
        port: server.addr.port(),
        security: Security::None,
        timeout_secs: 2,
        ..config::Smtp::default()
    };
    let err = SmtpConnector::new(&cfg, "news.example.com")
        .unwrap()
        .connect()
        .await
        .unwrap_err();
    assert!(
        err.is_refusal() && err.is_retryable() && !err.is_fatal(),
        "{err:?}"
    );
    assert!(err.to_string().contains("421"), "{err}");
    assert_eq!(server.refused(), 1);
    first.quit().await;

    // Nothing listening: the TCP connection itself is refused.
    let port = support::free_port();
    let err = SmtpConnector::new(
        &config::Smtp {
            port,
            ..cfg.clone()
        },
        "news.example.com",
    )
    .unwrap()
    .connect()
    .await
    .unwrap_err();
    assert!(err.is_refusal() && err.is_retryable(), "{err:?}");
}
