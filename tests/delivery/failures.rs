//! Faults that are not: a hard bounce fails one reader and suppresses the address, other
//! rejections fail without a bounce, and refused authentication pauses the whole edition
//! until it is resumed (each reader then gets one copy).

use std::collections::HashSet;

use crate::support::smtp_server::{Action, Event, ServerConfig, SmtpServer};
use crate::{assert_each_once, fixture, index_of, reader};
use dispatch::config::Secret;
use dispatch::domain::EmailAddress;

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
    let f = fixture(&server, n, |c| c.bounces.hard_threshold = 1).await;
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
    let f = fixture(&server, n, |c| c.bounces.hard_threshold = 1).await;
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
        .set_edition_status(id, dispatch::store::EditionStatus::Sending, None)
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
