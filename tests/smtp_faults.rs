//! SMTP fault handling against a scripted server: transient and permanent replies, broken
//! connections, silence, refused authentication, and throughput over one connection.

mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use dispatch::config::{self, Secret, Security};
use dispatch::domain::EmailAddress;
use dispatch::mail::{SendError, SmtpConnector};
use support::smtp_server::{Action, Event, ServerConfig, SmtpServer};

fn addr(s: &str) -> EmailAddress {
    EmailAddress::parse(s).unwrap()
}

fn smtp_cfg(server: &SmtpServer) -> config::Smtp {
    config::Smtp {
        host: "127.0.0.1".into(),
        port: server.addr.port(),
        security: Security::None,
        timeout_secs: 1,
        ..config::Smtp::default()
    }
}

fn connector(server: &SmtpServer) -> SmtpConnector {
    SmtpConnector::new(&smtp_cfg(server), "news.example.com").unwrap()
}

/// A message of about `size` bytes with CRLF lines, including a line that needs dot-stuffing.
fn message(i: usize, size: usize) -> Vec<u8> {
    let mut m = format!(
        "From: digest@news.example.com\r\nTo: r{i}@example.org\r\nSubject: test {i}\r\n\
         Message-ID: <e1.s{i}.x@news.example.com>\r\nMIME-Version: 1.0\r\n\r\n.leading dot\r\n"
    )
    .into_bytes();
    while m.len() < size {
        m.extend_from_slice(
            b"Lorem ipsum dolor sit amet, consectetur adipiscing elit, sed do eiusmod tempor.\r\n",
        );
    }
    m
}

fn bounce() -> EmailAddress {
    addr("bounces@news.example.com")
}

#[tokio::test]
async fn a_transient_rcpt_reply_then_success_on_retry() {
    let rcpts = Arc::new(AtomicUsize::new(0));
    let r = rcpts.clone();
    let server = SmtpServer::start(ServerConfig::with_policy(move |e| match e {
        Event::Rcpt(_) if r.fetch_add(1, Ordering::SeqCst) == 0 => {
            Action::Reply("451 4.3.0 Try again later".into())
        }
        _ => Action::Default,
    }))
    .await;
    let mut s = connector(&server).connect().await.unwrap();
    let to = addr("reader@example.org");
    let msg = message(1, 2000);
    let err = s.send(&bounce(), &to, &msg).await.unwrap_err();
    assert!(
        matches!(&err, SendError::Transient { reply } if reply.starts_with("451 4.3.0")),
        "{err:?}"
    );
    assert!(err.is_retryable() && !err.is_hard_bounce());
    s.send(&bounce(), &to, &msg).await.unwrap();
    let got = server.received();
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].data, msg);
    assert_eq!(
        (got[0].from.as_str(), got[0].to.as_slice()),
        (
            "bounces@news.example.com",
            &["reader@example.org".to_owned()][..]
        )
    );
    assert_eq!(server.connections(), 1, "RSET kept the connection");
    s.quit().await;
}

#[tokio::test]
async fn b_a_permanent_rcpt_reply_fails_only_that_reader() {
    let server = SmtpServer::start(ServerConfig::with_policy(|e| match e {
        Event::Rcpt(a) if a.starts_with("gone@") => Action::Reply(format!(
            "550 5.1.1 <{a}>: Recipient address rejected: User unknown"
        )),
        _ => Action::Default,
    }))
    .await;
    let mut s = connector(&server).connect().await.unwrap();
    let mut results = Vec::new();
    for (i, to) in ["one@example.org", "gone@example.org", "three@example.org"]
        .iter()
        .enumerate()
    {
        results.push(s.send(&bounce(), &addr(to), &message(i, 3000)).await);
    }
    assert!(results[0].is_ok() && results[2].is_ok(), "{results:?}");
    let err = results[1].as_ref().unwrap_err();
    assert!(
        matches!(err, SendError::Permanent { .. }) && err.is_hard_bounce() && !err.is_retryable(),
        "{err:?}"
    );
    let got = server.received();
    assert_eq!(
        got.iter().map(|r| r.to[0].as_str()).collect::<Vec<_>>(),
        ["one@example.org", "three@example.org"]
    );
    assert_eq!(server.connections(), 1);
}

#[tokio::test]
async fn c_a_connection_dropped_during_data_is_a_retryable_network_error() {
    let dropped = Arc::new(AtomicUsize::new(0));
    let d = dropped.clone();
    let server = SmtpServer::start(ServerConfig::with_policy(move |e| match e {
        Event::DataStarted(_) if d.fetch_add(1, Ordering::SeqCst) == 0 => Action::Drop,
        _ => Action::Default,
    }))
    .await;
    let mut s = connector(&server).connect().await.unwrap();
    let to = addr("reader@example.org");
    let msg = message(1, 200_000);
    let err = s.send(&bounce(), &to, &msg).await.unwrap_err();
    assert!(matches!(err, SendError::Network { .. }), "{err:?}");
    assert!(err.is_retryable());
    // The same session reconnects by itself.
    s.send(&bounce(), &to, &msg).await.unwrap();
    assert_eq!(server.received().len(), 1);
    assert_eq!(server.connections(), 2);
}

#[tokio::test]
async fn d_a_silent_server_times_out_within_the_configured_timeout() {
    let server = SmtpServer::start(ServerConfig::with_policy(|e| match e {
        Event::Mail(_) => Action::Stall,
        _ => Action::Default,
    }))
    .await;
    let mut s = connector(&server).connect().await.unwrap();
    let start = Instant::now();
    let err = s
        .send(&bounce(), &addr("reader@example.org"), &message(1, 1000))
        .await
        .unwrap_err();
    let took = start.elapsed();
    assert_eq!(err, SendError::Timeout);
    assert!(err.is_retryable());
    assert!(
        took >= Duration::from_millis(900) && took < Duration::from_millis(2500),
        "took {took:?}"
    );

    // A server that never greets: the connect times out too.
    let silent = SmtpServer::start(ServerConfig::with_policy(|e| match e {
        Event::Connect { .. } => Action::Stall,
        _ => Action::Default,
    }))
    .await;
    let start = Instant::now();
    let err = connector(&silent).connect().await.unwrap_err();
    assert_eq!(err, SendError::Timeout);
    assert!(start.elapsed() < Duration::from_millis(2500));
}

#[tokio::test]
async fn e_refused_authentication_is_fatal() {
    let server = SmtpServer::start(ServerConfig {
        auth: Some(("mailer".into(), "right horse battery".into())),
        ..ServerConfig::default()
    })
    .await;
    let mut cfg = smtp_cfg(&server);
    cfg.username = Some("mailer".into());
    cfg.password = Some(Secret::new("wrong"));
    let err = SmtpConnector::new(&cfg, "news.example.com")
        .unwrap()
        .connect()
        .await
        .unwrap_err();
    assert!(err.is_fatal() && !err.is_retryable(), "{err:?}");
    assert!(err.to_string().contains("535"), "{err}");
    assert!(
        !err.to_string().contains("wrong"),
        "the password must not show up: {err}"
    );

    cfg.password = Some(Secret::new("right horse battery"));
    let mut s = SmtpConnector::new(&cfg, "news.example.com")
        .unwrap()
        .connect()
        .await
        .unwrap();
    s.send(&bounce(), &addr("reader@example.org"), &message(1, 1000))
        .await
        .unwrap();
    assert_eq!(server.received().len(), 1);
}

#[tokio::test]
async fn f_many_messages_over_one_connection_do_not_wait_for_delayed_acks() {
    let server = SmtpServer::start(ServerConfig::default()).await;
    let mut s = connector(&server).connect().await.unwrap();
    let to = addr("reader@example.org");
    let msgs: Vec<Vec<u8>> = (0..200).map(|i| message(i, 30_000)).collect();
    let start = Instant::now();
    for m in &msgs {
        s.send(&bounce(), &to, m).await.unwrap();
    }
    let took = start.elapsed();
    s.quit().await;
    eprintln!("200 messages of 30 KB over one connection: {took:?}");
    // With Nagle on, each message waits ~40 ms for the delayed ACK: 8 s in all.
    assert!(
        took < Duration::from_secs(4),
        "took {took:?}: is TCP_NODELAY set?"
    );
    let got = server.received();
    assert_eq!(got.len(), 200);
    assert_eq!(server.connections(), 1);
    assert!(
        got.iter().zip(&msgs).all(|(r, m)| r.data == *m),
        "data arrives byte for byte"
    );
}

#[tokio::test]
async fn starttls_required_but_not_offered_is_fatal() {
    let server = SmtpServer::start(ServerConfig::default()).await;
    let mut cfg = smtp_cfg(&server);
    cfg.security = Security::Starttls;
    let err = SmtpConnector::new(&cfg, "news.example.com")
        .unwrap()
        .connect()
        .await
        .unwrap_err();
    assert!(
        err.is_fatal() && err.to_string().contains("STARTTLS"),
        "{err:?}"
    );
    assert!(server.received().is_empty());
}

#[tokio::test]
async fn starttls_refused_by_the_server_is_not_a_plain_text_fallback() {
    let server = SmtpServer::start(ServerConfig {
        advertise_starttls: true,
        ..ServerConfig::default()
    })
    .await;
    let mut cfg = smtp_cfg(&server);
    cfg.security = Security::Starttls;
    let err = SmtpConnector::new(&cfg, "news.example.com")
        .unwrap()
        .connect()
        .await
        .unwrap_err();
    // 454 is a transient reply: try later, but never in plain text.
    assert!(
        matches!(&err, SendError::Transient { reply } if reply.starts_with("454")),
        "{err:?}"
    );
}

#[tokio::test]
async fn a_refused_sender_is_fatal() {
    let server = SmtpServer::start(ServerConfig::with_policy(|e| match e {
        Event::Mail(_) => Action::Reply(
            "553 5.7.1 <bounces@news.example.com>: Sender address rejected: not owned by user"
                .into(),
        ),
        _ => Action::Default,
    }))
    .await;
    let mut s = connector(&server).connect().await.unwrap();
    let err = s
        .send(&bounce(), &addr("reader@example.org"), &message(1, 1000))
        .await
        .unwrap_err();
    assert!(err.is_fatal(), "{err:?}");
}

#[tokio::test]
async fn content_rejected_by_policy_after_data_is_fatal_other_5xx_permanent() {
    let server = SmtpServer::start(ServerConfig::with_policy(|e| match e {
        Event::DataEnd(r) if r.to[0].starts_with("dmarc@") => {
            Action::Reply("550 5.7.26 Unauthenticated email is not accepted".into())
        }
        Event::DataEnd(r) if r.to[0].starts_with("big@") => {
            Action::Reply("552 5.3.4 Message size exceeds fixed limit".into())
        }
        _ => Action::Default,
    }))
    .await;
    let mut s = connector(&server).connect().await.unwrap();
    let e = s
        .send(&bounce(), &addr("dmarc@example.org"), &message(1, 1000))
        .await
        .unwrap_err();
    assert!(e.is_fatal(), "{e:?}");
    let e = s
        .send(&bounce(), &addr("big@example.org"), &message(2, 1000))
        .await
        .unwrap_err();
    assert!(
        matches!(e, SendError::Permanent { .. }) && !e.is_hard_bounce(),
        "{e:?}"
    );
    // A fatal reply drops the connection (the run pauses anyway); the next send reconnects.
    s.send(&bounce(), &addr("ok@example.org"), &message(3, 1000))
        .await
        .unwrap();
    assert_eq!(server.received().len(), 1);
}

#[tokio::test]
async fn a_connection_closed_by_the_server_between_messages_is_reopened_transparently() {
    let server = SmtpServer::start(ServerConfig::with_policy(|e| match e {
        // Like relays that allow a fixed number of messages per connection.
        Event::DataEnd(_) => Action::ReplyAndClose("250 2.0.0 Ok: queued".into()),
        _ => Action::Default,
    }))
    .await;
    let mut s = connector(&server).connect().await.unwrap();
    for i in 0..3 {
        s.send(&bounce(), &addr("reader@example.org"), &message(i, 1000))
            .await
            .unwrap();
    }
    assert_eq!(server.connections(), 3);
}

#[tokio::test]
async fn connection_refused_is_retryable_not_fatal() {
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let cfg = config::Smtp {
        host: "127.0.0.1".into(),
        port,
        security: Security::None,
        timeout_secs: 1,
        ..config::Smtp::default()
    };
    let err = SmtpConnector::new(&cfg, "news.example.com")
        .unwrap()
        .connect()
        .await
        .unwrap_err();
    assert!(
        // A relay that is down is retried; the sender pauses the edition only after
        // `[sending] pause_after_secs` of failures (tests/delivery.rs).
        !err.is_fatal() && err.is_retryable() && err.to_string().contains("cannot connect"),
        "{err:?}"
    );
}
