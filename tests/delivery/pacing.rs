//! Which messages go first and how fast: breaking news overtakes a digest that is still
//! sending, and `rate_per_second` caps the sending rate.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::support::smtp_server::{Action, Event, Received, ServerConfig, SmtpServer};
use crate::{assert_each_once, fixture, header, run_engine};
use chrono::Utc;
use dispatch::edition;
use dispatch::store::{Created, NewArticle};

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
