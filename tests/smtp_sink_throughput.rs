//! Measures SMTP throughput against Postfix's `smtp-sink`, next to Postfix's own
//! `smtp-source` in the same run (ARCHITECTURE.md, "Measure, don't guess").
//!
//! Ignored by default; run it with an optimised build:
//!
//! ```text
//! cargo test --release --test smtp_sink_throughput -- --ignored --nocapture
//! ```

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use dispatch::config::{self, Security};
use dispatch::domain::EmailAddress;
use dispatch::mail::SmtpConnector;

const SESSIONS: usize = 8;
const MESSAGES: usize = 4000;
const SIZE: usize = 30_000;

/// The smtp-sink process, killed by its own pid when dropped.
struct Sink(Child);

impl Drop for Sink {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
}

fn message(size: usize) -> Vec<u8> {
    let mut m = b"From: digest@news.example.com\r\nTo: reader@example.org\r\nSubject: load\r\n\
                  Message-ID: <load@news.example.com>\r\nMIME-Version: 1.0\r\n\r\n"
        .to_vec();
    while m.len() < size {
        m.extend_from_slice(
            b"Lorem ipsum dolor sit amet, consectetur adipiscing elit, sed do eiusmod tempor.\r\n",
        );
    }
    m
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a measurement; run with --release -- --ignored --nocapture"]
async fn throughput_against_smtp_sink() {
    let (sink, source) = ("/usr/sbin/smtp-sink", "/usr/sbin/smtp-source");
    if !std::path::Path::new(sink).exists() || !std::path::Path::new(source).exists() {
        eprintln!("SKIP throughput_against_smtp_sink: needs postfix's smtp-sink and smtp-source");
        return;
    }
    let port = free_port();
    let _sink = Sink(
        Command::new(sink)
            .args(["-u", "nobody", &format!("127.0.0.1:{port}"), "256"])
            .stdout(Stdio::null())
            .spawn()
            .unwrap(),
    );
    // Wait for it to listen.
    let deadline = Instant::now() + Duration::from_secs(5);
    while tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .is_err()
    {
        assert!(Instant::now() < deadline, "smtp-sink did not start");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    let cfg = config::Smtp {
        host: "127.0.0.1".into(),
        port,
        security: Security::None,
        timeout_secs: 10,
        ..config::Smtp::default()
    };
    let connector = SmtpConnector::new(&cfg, "news.example.com").unwrap();
    let msg = std::sync::Arc::new(message(SIZE));
    let start = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..SESSIONS {
        let (c, m) = (connector.clone(), msg.clone());
        tasks.push(tokio::spawn(async move {
            let mut s = c.connect().await.unwrap();
            let from = EmailAddress::parse("bounces@news.example.com").unwrap();
            let to = EmailAddress::parse("reader@example.org").unwrap();
            for _ in 0..MESSAGES / SESSIONS {
                s.send(&from, &to, &m).await.unwrap();
            }
            s.quit().await;
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let ours = start.elapsed().as_secs_f64();

    let start = Instant::now();
    let st = Command::new(source)
        .args([
            "-s",
            &SESSIONS.to_string(),
            "-m",
            &MESSAGES.to_string(),
            "-l",
            &SIZE.to_string(),
            "-d",
        ])
        .arg(format!("127.0.0.1:{port}"))
        .status()
        .unwrap();
    let theirs = start.elapsed().as_secs_f64();
    assert!(st.success());
    let (a, b) = (MESSAGES as f64 / ours, MESSAGES as f64 / theirs);
    eprintln!(
        "{MESSAGES} messages of {} KB over {SESSIONS} connections: dispatch {a:.0}/s, smtp-source {b:.0}/s ({:.2}x)",
        SIZE / 1000,
        a / b
    );
}
