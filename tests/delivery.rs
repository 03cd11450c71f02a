//! The sending engine against real SMTP conversations: a temporary SQLite file, a recorded
//! edition, `Engine::run`, and the scripted server in `support/smtp_server.rs` with a fault
//! script per test. Each test checks both sides: what the database says happened and what
//! the server actually accepted.

#[path = "support/smtp_server.rs"]
mod smtp_server;

use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use base64::Engine as _;
use chrono::Utc;
use dispatch::config::{self, Config, Secret, Security, TransportKind};
use dispatch::domain::{EmailAddress, ListSlug, Token, WebUrl};
use dispatch::edition;
use dispatch::mail::sender::{Engine, Mode, Report};
use dispatch::mail::transport::Transport;
use dispatch::store::subscribers::NewSubscription;
use dispatch::store::tokens::READER_PURPOSES;
use dispatch::store::{Created, ListRow, ListSpec, NewArticle, Store};
use smtp_server::{Action, Event, Received, ServerConfig, SmtpServer};
use tempfile::TempDir;
use tokio::sync::watch;

const PY: &str = "/usr/bin/python3";

/// The address of reader `i`.
fn reader(i: usize) -> String {
    format!("reader{i:03}@example.org")
}

/// Reader `i`'s index from an address made by [`reader`].
fn index_of(addr: &str) -> usize {
    addr.trim_start_matches("reader")
        .split('@')
        .next()
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("not a reader address: {addr}"))
}

/// A database with list `daily`, `n` readers and three stories from the last hours.
struct Fixture {
    _dir: TempDir,
    db: PathBuf,
    store: Store,
    config: Config,
    list: ListRow,
}

fn base_config(server: &SmtpServer, db: &Path) -> Config {
    let mut c = Config::default();
    c.database.path = db.to_owned();
    c.web.public_url = WebUrl::parse("https://news.example.com").unwrap();
    c.delivery.transport = TransportKind::Smtp;
    c.smtp.host = "127.0.0.1".into();
    c.smtp.port = server.addr.port();
    c.smtp.security = Security::None;
    c.smtp.timeout_secs = 2;
    c.smtp.connections = 3;
    c.sending.retry_base_secs = 0;
    c
}

async fn fixture(server: &SmtpServer, n: usize, tweak: impl FnOnce(&mut Config)) -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("dispatch.db");
    let store = Store::open(&db).await.unwrap();
    let mut config = base_config(server, &db);
    tweak(&mut config);
    let list = store
        .create_list(
            &ListSlug::parse("daily").unwrap(),
            &ListSpec {
                name: Some("Daily Digest".into()),
                description: Some("The day's news".into()),
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
    for chunk in rows.chunks(200) {
        store
            .subscribe_batch(list.id, chunk, "test", false)
            .await
            .unwrap();
    }
    let now = Utc::now();
    for (i, cat) in ["Politics", "Business", "Sport"].iter().enumerate() {
        store
            .insert_article(&NewArticle {
                external_id: format!("story-{i}"),
                url: format!("https://news.example.com/story/{i}"),
                title: format!("{cat} story {i}"),
                summary: format!("What happened in {cat} today."),
                author: Some("Staff".into()),
                category: (*cat).into(),
                language: Some("en".into()),
                image_url: None,
                published_at: now - chrono::Duration::hours(i as i64 + 1),
                breaking: false,
            })
            .await
            .unwrap();
    }
    Fixture {
        _dir: dir,
        db,
        store,
        config,
        list,
    }
}

impl Fixture {
    /// Records the digest and returns its id.
    async fn digest(&self) -> i64 {
        match edition::create_digest(&self.store, &self.config, &self.list, Utc::now(), None)
            .await
            .unwrap()
        {
            Created::New { id, .. } => id,
            other => panic!("expected a new edition, got {other:?}"),
        }
    }

    fn engine(&self) -> Engine {
        let transport = Transport::from_config(&self.config).unwrap();
        Engine::new(self.store.clone(), Arc::new(self.config.clone()), transport).unwrap()
    }

    /// Runs the engine over `only` until idle; fails the test if it does not finish.
    async fn run(&self, only: Option<HashSet<i64>>) -> Report {
        run_engine(&self.engine(), only).await
    }

    /// (status, attempts, last_reply) of each delivery of `edition`, by address.
    async fn deliveries(&self, edition: i64) -> BTreeMap<String, (String, i64, Option<String>)> {
        delivery_rows(&self.db, edition).await
    }

    async fn status(&self, edition: i64) -> (String, Option<String>) {
        let e = self.store.edition(edition).await.unwrap();
        (e.status, e.status_reason)
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
    let opts = sqlx::sqlite::SqliteConnectOptions::new()
        .filename(db)
        .busy_timeout(Duration::from_secs(15));
    let pool = sqlx::SqlitePool::connect_with(opts).await.unwrap();
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

/// Whether the first attempt for this address has been seen (and records it).
fn first_time(seen: &Mutex<HashSet<String>>, addr: &str) -> bool {
    seen.lock().unwrap().insert(addr.to_owned())
}

// ---------------------------------------------------------------------------------------------

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
async fn a_hard_bounce_fails_one_reader_and_suppresses_the_address() {
    let server = SmtpServer::start(ServerConfig::with_policy(|e| match e {
        Event::Rcpt(a) if index_of(a) == 7 => Action::Reply(format!(
            "550 5.1.1 <{a}>: Recipient address rejected: User unknown in virtual mailbox table"
        )),
        _ => Action::Default,
    }))
    .await;
    let n = 20;
    let f = fixture(&server, n, |c| c.sending.bounce_threshold = 1).await;
    let id = f.digest().await;
    let report = f.run(Some(HashSet::from([id]))).await;

    assert_each_once(&server.received(), n, &[7]);
    assert_eq!((report.sent, report.bounced), (19, 1), "{report:?}");
    let rows = f.deliveries(id).await;
    let (status, attempts, reply) = &rows[&reader(7)];
    assert_eq!((status.as_str(), *attempts), ("failed", 1));
    let reply = reply.as_deref().unwrap_or("");
    assert!(
        reply.contains("550") && reply.contains("5.1.1") && reply.contains("User unknown"),
        "the server's reply is stored: {reply:?}"
    );
    assert_eq!(
        rows.values().filter(|(s, ..)| s == "sent").count(),
        19,
        "{rows:?}"
    );
    let sub = f
        .store
        .subscriber_by_email(&EmailAddress::parse(&reader(7)).unwrap())
        .await
        .unwrap();
    assert_eq!((sub.hard_bounces, sub.status.as_str()), (1, "bounced"));
    let other = f
        .store
        .subscriber_by_email(&EmailAddress::parse(&reader(8)).unwrap())
        .await
        .unwrap();
    assert_eq!((other.hard_bounces, other.status.as_str()), (0, "active"));
    assert_eq!(
        f.status(id).await.0,
        "sent",
        "a failed delivery does not hold the edition open"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rejections_that_are_not_about_the_mailbox_fail_without_a_bounce() {
    // Reader 3: a bare 550 at RCPT (no enhanced code: could be anything).
    // Reader 5: a per-recipient policy refusal at RCPT (5.7.1).
    // Reader 9: a bare 554 after the data (a content filter without an enhanced code).
    let server = SmtpServer::start(ServerConfig::with_policy(|e| match e {
        Event::Rcpt(a) if index_of(a) == 3 => Action::Reply("550 Rejected".into()),
        Event::Rcpt(a) if index_of(a) == 5 => {
            Action::Reply("550 5.7.1 Recipient rejected by policy: message looks like spam".into())
        }
        Event::DataEnd(r) if index_of(&r.to[0]) == 9 => {
            Action::Reply("554 Transaction failed: content rejected".into())
        }
        _ => Action::Default,
    }))
    .await;
    let n = 12;
    let f = fixture(&server, n, |c| c.sending.bounce_threshold = 1).await;
    let id = f.digest().await;
    let report = f.run(Some(HashSet::from([id]))).await;

    assert_each_once(&server.received(), n, &[3, 5, 9]);
    assert_eq!(
        (report.sent, report.failed, report.bounced),
        (9, 3, 0),
        "{report:?}"
    );
    assert!(report.paused.is_empty(), "{report:?}");
    let rows = f.deliveries(id).await;
    for (i, code) in [(3, "550 Rejected"), (5, "5.7.1"), (9, "554")] {
        let (status, attempts, reply) = &rows[&reader(i)];
        assert_eq!((status.as_str(), *attempts), ("failed", 1), "reader {i}");
        assert!(
            reply.as_deref().unwrap_or("").contains(code),
            "reader {i}: {reply:?}"
        );
        let sub = f
            .store
            .subscriber_by_email(&EmailAddress::parse(&reader(i)).unwrap())
            .await
            .unwrap();
        assert_eq!(
            (sub.hard_bounces, sub.status.as_str()),
            (0, "active"),
            "reader {i} is not suppressed for a rejection that is not about the mailbox"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_dropped_in_the_middle_of_data_is_retried_and_nothing_is_lost() {
    // The server hangs up right after the first line of the 3rd, 11th and 17th message: the
    // data was half sent and never acknowledged.
    let started = Arc::new(AtomicUsize::new(0));
    let st = started.clone();
    let server = SmtpServer::start(ServerConfig::with_policy(move |e| match e {
        Event::DataStarted if [3, 11, 17].contains(&(st.fetch_add(1, Ordering::SeqCst) + 1)) => {
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_authentication_pauses_the_edition_and_resuming_sends_each_once() {
    let server = SmtpServer::start(ServerConfig {
        auth: Some(("mailer".into(), "right horse battery".into())),
        ..ServerConfig::default()
    })
    .await;
    let n = 15;
    let mut f = fixture(&server, n, |c| {
        c.smtp.username = Some("mailer".into());
        c.smtp.password = Some(Secret::new("wrong"));
    })
    .await;
    let id = f.digest().await;
    let report = f.run(Some(HashSet::from([id]))).await;

    assert!(server.received().is_empty());
    assert_eq!(
        (report.sent, report.failed, report.bounced),
        (0, 0, 0),
        "{report:?}"
    );
    assert_eq!(report.paused.len(), 1, "{report:?}");
    let (status, reason) = f.status(id).await;
    let reason = reason.unwrap_or_default();
    assert_eq!(status, "paused");
    assert_eq!(report.paused[0], (id, reason.clone()));
    assert!(
        reason.contains("authentication refused")
            && reason.contains("535")
            && reason.contains(&format!("dispatch editions resume {id}")),
        "the reason names the cause and the way out: {reason:?}"
    );
    assert!(!reason.contains("wrong"), "no password in {reason:?}");
    let rows = f.deliveries(id).await;
    assert_eq!(rows.len(), n);
    assert!(
        rows.values().all(|(s, a, _)| s == "queued" && *a == 0),
        "nothing failed, nothing counted as an attempt: {rows:?}"
    );

    // The operator fixes the password and resumes.
    f.config.smtp.password = Some(Secret::new("right horse battery"));
    f.store
        .set_edition_status(id, "sending", None)
        .await
        .unwrap();
    let report = f.run(Some(HashSet::from([id]))).await;
    assert_eq!(report.sent, n as u64, "{report:?}");
    assert_each_once(&server.received(), n, &[]);
    let rows = f.deliveries(id).await;
    assert!(
        rows.values().all(|(s, a, _)| s == "sent" && *a == 1),
        "{rows:?}"
    );
    assert_eq!(f.status(id).await, ("sent".to_owned(), None));
}

/// Parses messages with Python's `email` package (an independent parser) and returns, per
/// message, its headers, parts and defects as JSON.
const PARSE: &str = r#"
import sys, json, email, email.policy, email.utils
out = []
for path in sys.argv[1:]:
    raw = open(path, 'rb').read()
    m = email.message_from_bytes(raw, policy=email.policy.default)
    defects = [type(d).__name__ for part in m.walk() for d in part.defects]
    for k, v in m.items():
        defects += [k + ':' + type(d).__name__ for d in getattr(v, 'defects', ())]
    out.append({
        "headers": [[k, str(v)] for k, v in m.items()],
        "type": m.get_content_type(),
        "parts": [{"type": p.get_content_type(), "charset": p.get_content_charset(),
                   "cte": p.get("Content-Transfer-Encoding"), "body": p.get_content()}
                  for p in m.iter_parts()],
        "defects": defects,
        "date": email.utils.parsedate_to_datetime(str(m["Date"])).timestamp(),
        "from": [[a.display_name, a.addr_spec] for a in m["From"].addresses],
        "to": [[a.display_name, a.addr_spec] for a in m["To"].addresses],
    })
print(json.dumps(out))
"#;

fn python_has(module: &str) -> bool {
    Command::new(PY)
        .args(["-c", &format!("import {module}")])
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_message_carries_the_headers_and_parts_it_must() {
    if !python_has("email.policy") {
        eprintln!("SKIP headers: needs /usr/bin/python3 with the email package");
        return;
    }
    let server = SmtpServer::start(ServerConfig::default()).await;
    let f = fixture(&server, 3, |_| {}).await;
    f.store
        .subscribe_batch(
            f.list.id,
            &[
                NewSubscription {
                    email: EmailAddress::parse("ayesha@example.pk").unwrap(),
                    name: Some("عائشہ خان".into()),
                    categories: None,
                },
                NewSubscription {
                    email: EmailAddress::parse("noname@example.org").unwrap(),
                    name: None,
                    categories: None,
                },
            ],
            "test",
            false,
        )
        .await
        .unwrap();
    let id = f.digest().await;
    let report = f.run(Some(HashSet::from([id]))).await;
    assert_eq!(report.sent, 5, "{report:?}");
    let subject = f.store.edition(id).await.unwrap().subject;

    let got = server.received();
    assert_eq!(got.len(), 5);
    let dir = tempfile::tempdir().unwrap();
    let mut paths = Vec::new();
    for (i, r) in got.iter().enumerate() {
        // On the wire: CRLF only, 7-bit, no line over 998 octets (RFC 5322 §2.1.1).
        let text = std::str::from_utf8(&r.data).expect("utf-8");
        assert!(text.is_ascii(), "7-bit message for {}", r.to[0]);
        assert!(text.ends_with("\r\n"));
        for line in text.split("\r\n") {
            assert!(!line.contains('\n') && !line.contains('\r'), "bare CR/LF");
            assert!(line.len() <= 998, "long line: {line:?}");
        }
        assert!(
            text.contains("\r\nList-Unsubscribe-Post: List-Unsubscribe=One-Click\r\n"),
            "exact List-Unsubscribe-Post line"
        );
        assert_eq!(r.from, "digest@news.example.com", "envelope sender");
        let p = dir.path().join(format!("{i}.eml"));
        std::fs::write(&p, &r.data).unwrap();
        paths.push(p);
    }
    let out = Command::new(PY)
        .arg("-c")
        .arg(PARSE)
        .args(&paths)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let parsed: Vec<serde_json::Value> = serde_json::from_slice(&out.stdout).unwrap();

    let names: BTreeMap<&str, &str> = [
        ("reader000@example.org", "Reader 0"),
        ("reader001@example.org", "Reader 1"),
        ("reader002@example.org", "Reader 2"),
        ("ayesha@example.pk", "عائشہ خان"),
        ("noname@example.org", ""),
    ]
    .into();
    let mut message_ids = HashSet::new();
    let mut tokens = HashSet::new();
    for (r, m) in got.iter().zip(&parsed) {
        let to = r.to[0].as_str();
        let name = names[to];
        assert_eq!(m["defects"], serde_json::json!([]), "{to}: parser defects");
        let headers: Vec<(String, String)> = m["headers"]
            .as_array()
            .unwrap()
            .iter()
            .map(|h| {
                (
                    h[0].as_str().unwrap().to_owned(),
                    h[1].as_str().unwrap().to_owned(),
                )
            })
            .collect();
        let one = |n: &str| -> String {
            let v: Vec<&String> = headers
                .iter()
                .filter(|(k, _)| k.eq_ignore_ascii_case(n))
                .map(|(_, v)| v)
                .collect();
            assert_eq!(v.len(), 1, "{to}: {n} once, got {v:?}");
            v[0].clone()
        };
        assert_eq!(
            m["from"],
            serde_json::json!([["The Daily Ledger", "digest@news.example.com"]])
        );
        assert_eq!(
            m["to"],
            serde_json::json!([[name, to]]),
            "To: with the name"
        );
        assert_eq!(one("Subject"), subject);
        let date = m["date"].as_f64().unwrap();
        let now = Utc::now().timestamp() as f64;
        assert!((now - date).abs() < 900.0, "{to}: Date {date} vs now {now}");
        assert!(one("Date").ends_with("+0000"), "numeric UTC zone");
        let mid = one("Message-ID");
        let inner = mid
            .strip_prefix('<')
            .and_then(|s| s.strip_suffix('>'))
            .unwrap_or_else(|| panic!("{to}: Message-ID {mid:?}"));
        let (left, right) = inner.split_once('@').unwrap();
        assert!(
            !left.is_empty()
                && right == "news.example.com"
                && !inner[left.len() + 1..].contains('@')
                && !inner.contains(|c: char| c.is_whitespace() || c == '<' || c == '>'),
            "{mid}"
        );
        assert!(message_ids.insert(mid.clone()), "Message-ID unique: {mid}");
        assert_eq!(one("MIME-Version"), "1.0");
        assert_eq!(one("List-Id"), "Daily Digest <daily.news.example.com>");
        assert_eq!(one("List-Unsubscribe-Post"), "List-Unsubscribe=One-Click");
        // <https://…/unsubscribe/TOKEN>, <mailto:unsubscribe@…?subject=unsubscribe%20TOKEN>
        let lu: String = one("List-Unsubscribe").split_whitespace().collect();
        let uris: Vec<&str> = lu
            .split(',')
            .map(|u| {
                u.strip_prefix('<')
                    .and_then(|u| u.strip_suffix('>'))
                    .unwrap_or_else(|| panic!("{to}: List-Unsubscribe {lu:?}"))
            })
            .collect();
        assert_eq!(uris.len(), 2, "{lu}");
        let token = uris[0]
            .strip_prefix("https://news.example.com/unsubscribe/")
            .unwrap_or_else(|| panic!("one https URI first: {lu}"));
        assert_eq!(
            uris[1],
            format!("mailto:unsubscribe@news.example.com?subject=unsubscribe%20{token}")
        );
        assert!(!lu.contains("http://"));
        assert!(tokens.insert(token.to_owned()), "token per message");
        // The token is the reader's own: it unsubscribes this reader from this list.
        let target = f
            .store
            .token_target(&Token::parse(token).unwrap(), READER_PURPOSES)
            .await
            .unwrap()
            .expect("the token is stored");
        let sub = f
            .store
            .subscriber_by_email(&EmailAddress::parse(to).unwrap())
            .await
            .unwrap();
        assert_eq!((target.subscriber_id, target.list_id), (sub.id, f.list.id));

        assert_eq!(m["type"], "multipart/alternative");
        let parts = m["parts"].as_array().unwrap();
        let kinds: Vec<(&str, &str)> = parts
            .iter()
            .map(|p| (p["type"].as_str().unwrap(), p["charset"].as_str().unwrap()))
            .collect();
        assert_eq!(
            kinds,
            [("text/plain", "utf-8"), ("text/html", "utf-8")],
            "text first, then HTML"
        );
        let greeting = if name.is_empty() {
            "Hello,".to_owned()
        } else {
            format!("Hello {name},")
        };
        for p in parts {
            let body = p["body"].as_str().unwrap();
            assert!(
                body.contains(&greeting),
                "{to}: {} greets with {greeting:?}",
                p["type"]
            );
            assert!(!body.contains("Hello ,") && !body.contains("Hello{"));
            assert!(
                body.contains(token),
                "{to}: the body links the reader's token"
            );
        }
    }
}

/// Checks DKIM signatures with dkimpy; the DNS lookup returns `argv[2]`'s record.
const VERIFY: &str = r#"
import sys, dkim
txt = open(sys.argv[1], 'rb').read()
def dnsfunc(name, timeout=5):
    assert name in (b'digest2026._domainkey.news.example.com.', 'digest2026._domainkey.news.example.com.'), name
    return txt
for path in sys.argv[2:]:
    print('PASS' if dkim.verify(open(path, 'rb').read(), dnsfunc=dnsfunc) else 'FAIL')
"#;

fn openssl(args: &[&str]) -> Option<Vec<u8>> {
    let o = Command::new("openssl").args(args).output().ok()?;
    o.status.success().then_some(o.stdout)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn messages_sent_by_the_engine_carry_a_valid_dkim_signature() {
    if !python_has("dkim") || openssl(&["version"]).is_none() {
        eprintln!("SKIP dkim: needs openssl and /usr/bin/python3 with the dkim module");
        return;
    }
    let keys = tempfile::tempdir().unwrap();
    let key = keys.path().join("k.pem");
    let k = key.to_str().unwrap();
    openssl(&["genrsa", "-traditional", "-out", k, "2048"]).expect("openssl genrsa");
    let spki = openssl(&["pkey", "-in", k, "-pubout", "-outform", "DER"]).unwrap();
    let record = format!(
        "v=DKIM1; k=rsa; p={}",
        base64::engine::general_purpose::STANDARD.encode(spki)
    );

    let server = SmtpServer::start(ServerConfig::default()).await;
    let n = 4;
    let f = fixture(&server, n, |c| {
        c.dkim = Some(config::Dkim {
            domain: "news.example.com".into(),
            selector: "digest2026".into(),
            private_key_path: key.clone(),
        })
    })
    .await;
    let id = f.digest().await;
    let report = f.run(Some(HashSet::from([id]))).await;
    assert_eq!(report.sent, n as u64, "{report:?}");
    let got = server.received();
    assert_each_once(&got, n, &[]);

    let rec = keys.path().join("record.txt");
    std::fs::write(&rec, &record).unwrap();
    let mut paths = Vec::new();
    for (i, r) in got.iter().enumerate() {
        let sig = header(&r.data, "DKIM-Signature").expect("signed");
        assert!(
            r.data.starts_with(b"DKIM-Signature: "),
            "the signature is the first header"
        );
        let tags: String = sig.split_whitespace().collect();
        let h: Vec<String> = tags
            .split(';')
            .find_map(|t| t.strip_prefix("h="))
            .unwrap()
            .split(':')
            .map(str::to_ascii_lowercase)
            .collect();
        for want in [
            "from",
            "to",
            "subject",
            "date",
            "message-id",
            "list-id",
            "list-unsubscribe",
            "list-unsubscribe-post",
        ] {
            assert!(h.iter().any(|x| x == want), "h= lacks {want}: {h:?}");
        }
        assert!(tags.contains("d=news.example.com;") && tags.contains("s=digest2026;"));
        let p = keys.path().join(format!("{i}.eml"));
        std::fs::write(&p, &r.data).unwrap();
        paths.push(p);
        // A copy with a second List-Unsubscribe added in transit must fail (oversigning).
        let mut forged = b"List-Unsubscribe: <https://evil.example/x>\r\n".to_vec();
        let sig_end = r.data.windows(2).enumerate().skip(1).find_map(|(j, w)| {
            (w == b"\r\n" && r.data.get(j + 2).is_some_and(|b| *b != b' ' && *b != b'\t'))
                .then_some(j + 2)
        });
        let sig_end = sig_end.unwrap();
        let mut copy = r.data[..sig_end].to_vec();
        copy.append(&mut forged);
        copy.extend_from_slice(&r.data[sig_end..]);
        let p = keys.path().join(format!("{i}-forged.eml"));
        std::fs::write(&p, copy).unwrap();
        paths.push(p);
    }
    let out = Command::new(PY)
        .arg("-c")
        .arg(VERIFY)
        .arg(&rec)
        .args(&paths)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let verdicts: Vec<String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_owned)
        .collect();
    let want: Vec<&str> = (0..n).flat_map(|_| ["PASS", "FAIL"]).collect();
    assert_eq!(verdicts, want, "genuine copies verify, forged ones do not");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reader_who_unsubscribes_after_the_edition_is_made_gets_nothing() {
    let server = SmtpServer::start(ServerConfig::default()).await;
    let n = 10;
    let f = fixture(&server, n, |_| {}).await;
    let id = f.digest().await;
    assert_eq!(
        f.deliveries(id).await[&reader(4)].0,
        "queued",
        "in the snapshot"
    );
    let changed = f
        .store
        .unsubscribe_email(&EmailAddress::parse(&reader(4)).unwrap(), Some(f.list.id))
        .await
        .unwrap();
    assert_eq!(changed, 1);
    let report = f.run(Some(HashSet::from([id]))).await;

    assert_each_once(&server.received(), n, &[4]);
    assert_eq!((report.sent, report.skipped), (9, 1), "{report:?}");
    let (status, attempts, reply) = &f.deliveries(id).await[&reader(4)];
    assert_eq!((status.as_str(), *attempts), ("skipped", 0));
    assert_eq!(reply.as_deref(), Some("unsubscribed before sending"));
    assert_eq!(f.status(id).await.0, "sent");
}

/// The edition a message belongs to, from its Message-ID `<e{edition}.s{subscriber}.…>`.
fn edition_of(r: &Received) -> i64 {
    let mid = header(&r.data, "Message-ID").unwrap();
    mid.trim_start_matches("<e")
        .split('.')
        .next()
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("{mid}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn breaking_news_overtakes_a_digest_that_is_still_sending() {
    // A relay that takes 5 ms per message: 300 digests over 2 connections take ~1 s or more.
    let server = SmtpServer::start(ServerConfig::with_policy(|e| match e {
        Event::DataEnd(_) => Action::Delay(Duration::from_millis(5)),
        _ => Action::Default,
    }))
    .await;
    let n = 300;
    let f = fixture(&server, n, |c| c.smtp.connections = 2).await;
    let digest = f.digest().await;
    let engine = Arc::new(f.engine());
    let e = engine.clone();
    // Like the daemon: every edition that is sending, including ones made during the run.
    let run = tokio::spawn(async move { run_engine(&e, None).await });

    let deadline = Instant::now() + Duration::from_secs(60);
    while server.received().len() < 40 {
        assert!(Instant::now() < deadline, "the digest did not start");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let (article, _) = f
        .store
        .insert_article(&NewArticle {
            external_id: "breaking-1".into(),
            url: "https://news.example.com/story/breaking-1".into(),
            title: "Minister resigns".into(),
            summary: "The finance minister resigned this morning.".into(),
            author: None,
            category: "Politics".into(),
            language: Some("en".into()),
            image_url: None,
            published_at: Utc::now(),
            breaking: true,
        })
        .await
        .unwrap();
    let at_breaking = server.received().len();
    let created = edition::create_breaking(&f.store, &f.config, article, Some(&f.list))
        .await
        .unwrap();
    let breaking = match created.as_slice() {
        [(_, Created::New { id, queued, .. })] => {
            assert_eq!(*queued, n as u64);
            *id
        }
        other => panic!("{other:?}"),
    };
    let report = run.await.unwrap();
    assert_eq!(report.sent, 2 * n as u64, "{report:?}");

    let got = server.received();
    let order: Vec<i64> = got.iter().map(edition_of).collect();
    let last_breaking = order.iter().rposition(|e| *e == breaking).unwrap();
    let last_digest = order.iter().rposition(|e| *e == digest).unwrap();
    let digest_after = order[last_breaking..]
        .iter()
        .filter(|e| **e == digest)
        .count();
    eprintln!(
        "breaking made after {at_breaking} digests arrived; its last copy arrived at #{last_breaking}; \
         {digest_after} digests arrived after it"
    );
    assert!(
        last_breaking < last_digest,
        "every breaking copy arrived before the digest's last copies"
    );
    // Only the digests already claimed when the breaking edition appeared may go before it.
    assert!(
        digest_after >= n / 2,
        "the digest waited for the breaking news: only {digest_after} digests after it"
    );
    for ed in [digest, breaking] {
        let per: Vec<Received> = got
            .iter()
            .filter(|r| edition_of(r) == ed)
            .cloned()
            .collect();
        assert_each_once(&per, n, &[]);
        assert_eq!(f.status(ed).await.0, "sent");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rate_per_second_caps_the_sending_rate() {
    let server = SmtpServer::start(ServerConfig::default()).await;
    let n = 20;
    let f = fixture(&server, n, |c| {
        c.sending.rate_per_second = 10;
        c.smtp.connections = 4;
    })
    .await;
    let id = f.digest().await;
    let start = Instant::now();
    let report = f.run(Some(HashSet::from([id]))).await;
    let took = start.elapsed();
    eprintln!("{n} messages at 10/s: {took:?}");
    assert_eq!(report.sent, n as u64);
    assert_each_once(&server.received(), n, &[]);
    // 20 messages at 10 per second: the last may leave 1.9 s after the first.
    assert!(
        took >= Duration::from_millis(1500),
        "{n} messages at 10/s took only {took:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unsubscribe_after_the_claim_but_before_the_send_stops_the_message() {
    // At 4 messages a second over one connection, the engine holds claims for seconds before
    // it sends them: the reader unsubscribes in that gap.
    let server = SmtpServer::start(ServerConfig::default()).await;
    let n = 8;
    let f = fixture(&server, n, |c| {
        c.sending.rate_per_second = 4;
        c.smtp.connections = 1;
    })
    .await;
    let id = f.digest().await;
    let engine = f.engine();
    let run = run_engine(&engine, Some(HashSet::from([id])));
    let unsubscribe = async {
        // Wait until the last reader's delivery is claimed, then unsubscribe them.
        let last = reader(n - 1);
        for _ in 0..200 {
            if f.deliveries(id).await[&last].0 == "sending" {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert_eq!(
            f.deliveries(id).await[&last].0,
            "sending",
            "claimed before the send"
        );
        f.store
            .unsubscribe_email(&EmailAddress::parse(&last).unwrap(), Some(f.list.id))
            .await
            .unwrap();
    };
    let (report, ()) = tokio::join!(run, unsubscribe);
    assert_each_once(&server.received(), n, &[n - 1]);
    assert_eq!(
        (report.sent, report.skipped),
        (n as u64 - 1, 1),
        "{report:?}"
    );
    assert_eq!(f.deliveries(id).await[&reader(n - 1)].0, "skipped");
}
