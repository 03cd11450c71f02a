//! A reader who unsubscribes after the edition is made, or after their message is claimed
//! but before it is sent, gets nothing.

use std::collections::HashSet;
use std::time::Duration;

use crate::support::smtp_server::{ServerConfig, SmtpServer};
use crate::{assert_each_once, fixture, reader, run_engine};
use dispatch::domain::EmailAddress;

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
