//! Signals in the middle of a send to a slow relay: after SIGTERM every delivery is sent or
//! queued and a restart finishes each reader once; after SIGKILL only the messages in flight
//! may be repeated, once.

use std::collections::{BTreeMap, HashSet};
use std::path::Path;
use std::time::Duration as StdDuration;

use crate::support::cli::Cli;
use crate::support::db::raw_pool;
use crate::support::free_port;
use crate::support::smtp_server;
use crate::support::tools;
use crate::{Daemon, dbt, delivery_statuses, sandbox, wait_for, wait_healthy};
use chrono::{Duration, Utc};

/// The recipients of the deliveries with this status.
fn delivered_to(rt: &tokio::runtime::Runtime, path: &Path, status: &str) -> Vec<String> {
    rt.block_on(async {
        let pool = raw_pool(path).await;
        let rows: Vec<String> = sqlx::query_scalar(
            "SELECT s.email FROM deliveries d JOIN subscribers s ON s.id = d.subscriber_id
             WHERE d.status = $1 ORDER BY s.email",
        )
        .bind(status)
        .fetch_all(&pool)
        .await
        .unwrap();
        pool.close().await;
        rows
    })
}

/// A relay that takes 25 ms to accept each message, and a sandbox with a breaking-news list
/// of [`READERS`] readers sending to it over 2 connections: the send takes about 2.5 s, so a
/// signal can land in the middle of it.
struct SlowRelay {
    rt: tokio::runtime::Runtime,
    server: smtp_server::SmtpServer,
    cli: Cli,
    port: u16,
    everyone: Vec<String>,
}

const READERS: usize = 200;

impl SlowRelay {
    fn new(extra_config: &str) -> Self {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(4)
            .enable_all()
            .build()
            .unwrap();
        let server = rt.block_on(smtp_server::SmtpServer::start(
            smtp_server::ServerConfig::with_policy(|e| {
                if let smtp_server::Event::DataEnd(_) = e {
                    std::thread::sleep(StdDuration::from_millis(25));
                }
                smtp_server::Action::Default
            }),
        ));
        let port = free_port();
        let smtp_port = server.addr.port();
        let cli = sandbox(port, |_| {
            format!(
                "[delivery]\ntransport = \"smtp\"\n\n[smtp]\nhost = \"127.0.0.1\"\nport = {smtp_port}\n\
                 security = \"none\"\nconnections = 2\ntimeout_secs = 5\n\n{extra_config}"
            )
        });
        cli.ok(["lists", "create", "alerts", "--breaking"]);
        let mut csv = String::from("email,name,categories\n");
        let everyone: Vec<String> = (0..READERS)
            .map(|i| format!("reader{i:03}@example.org"))
            .collect();
        for a in &everyone {
            csv.push_str(&format!("{a},,\n"));
        }
        let file = cli.write("readers.csv", csv);
        cli.ok([
            "subscribers",
            "import",
            file.to_str().unwrap(),
            "--list",
            "alerts",
        ]);
        Self {
            rt,
            server,
            cli,
            port,
            everyone,
        }
    }

    /// Starts the daemon, adds breaking news from another process, and returns once the
    /// relay has accepted some of the messages.
    fn start_sending(&self) -> Daemon {
        let daemon = Daemon::start(&self.cli, 1);
        wait_healthy(self.port, &daemon);
        self.cli.ok([
            "articles",
            "add",
            "--breaking",
            "--title",
            "Earthquake in the north",
            "--url",
            "https://news.example.com/quake",
            "--category",
            "General News",
        ]);
        wait_for(StdDuration::from_secs(20), "the send to start", || {
            (self.server.received().len() >= 20).then_some(())
        });
        daemon
    }

    /// Every recipient the relay accepted, sorted, with repeats.
    fn accepted(&self) -> Vec<String> {
        let mut a: Vec<String> = self
            .server
            .received()
            .into_iter()
            .flat_map(|r| r.to)
            .collect();
        a.sort();
        a
    }

    /// Restarts the daemon and waits until every delivery is recorded sent, then stops it.
    fn restart_until_all_sent(&self, n: usize) {
        let mut daemon = Daemon::start(&self.cli, n);
        wait_for(StdDuration::from_secs(25), "every delivery sent", || {
            let s = delivery_statuses(&self.rt, self.cli.db());
            (s.get("sent") == Some(&(READERS as i64))).then_some(())
        });
        let status = daemon.terminate(StdDuration::from_secs(15));
        assert!(status.success(), "exit {status}\n{}", daemon.log());
        assert_eq!(
            delivery_statuses(&self.rt, self.cli.db()),
            BTreeMap::from([("sent".to_owned(), READERS as i64)])
        );
    }
}

#[test]
fn sigterm_mid_send_leaves_every_delivery_sent_or_queued_and_a_restart_finishes_once() {
    // Daemon::terminate sends SIGTERM with `kill`.
    let Some(_) = tools::require(tools::KILL) else {
        return;
    };
    let relay = SlowRelay::new("");
    let (rt, cli) = (&relay.rt, &relay.cli);
    let mut daemon = relay.start_sending();
    let status = daemon.terminate(StdDuration::from_secs(15));
    assert!(status.success(), "exit {status}\n{}", daemon.log());

    // Every delivery is sent or queued: none left claimed ('sending') by the stopped process.
    let statuses = delivery_statuses(rt, cli.db());
    let sent = statuses.get("sent").copied().unwrap_or(0);
    let queued = statuses.get("queued").copied().unwrap_or(0);
    assert_eq!(
        sent + queued,
        READERS as i64,
        "{statuses:?}\n{}",
        daemon.log()
    );
    assert!(
        queued > 0,
        "SIGTERM came after the send finished: {statuses:?}"
    );
    // What the relay accepted is exactly what is recorded sent: nothing it accepted was
    // left queued to be sent again.
    assert_eq!(relay.accepted(), delivered_to(rt, cli.db(), "sent"));

    // A restart sends the rest, and every reader has the message exactly once.
    relay.restart_until_all_sent(2);
    assert_eq!(relay.accepted(), relay.everyone, "each reader exactly once");
}

#[test]
fn sigkill_mid_send_duplicates_at_most_the_messages_in_flight() {
    // Daemon::terminate sends SIGTERM with `kill`.
    let Some(_) = tools::require(tools::KILL) else {
        return;
    };
    let relay = SlowRelay::new("");
    let (rt, cli) = (&relay.rt, &relay.cli);
    let mut daemon = relay.start_sending();
    daemon.child.kill().unwrap();
    daemon.child.wait().unwrap();

    let statuses = delivery_statuses(rt, cli.db());
    assert_eq!(
        statuses.values().sum::<i64>(),
        READERS as i64,
        "{statuses:?}"
    );
    let in_flight: HashSet<String> = delivered_to(rt, cli.db(), "sending").into_iter().collect();
    let sent_before: HashSet<String> = delivered_to(rt, cli.db(), "sent").into_iter().collect();
    let accepted_before: HashSet<String> = relay.accepted().into_iter().collect();
    assert!(
        sent_before.is_subset(&accepted_before),
        "recorded sent only after the relay accepted"
    );
    assert!(
        accepted_before
            .difference(&sent_before)
            .all(|a| in_flight.contains(a)),
        "accepted but unrecorded messages are among the claimed ones"
    );

    // Let the dead process's leases run out (instead of waiting [sending] lease_secs).
    rt.block_on(async {
        let pool = raw_pool(cli.db()).await;
        sqlx::query("UPDATE deliveries SET lease_until = $1 WHERE status = 'sending'")
            .bind(dbt(Utc::now() - Duration::seconds(1)))
            .execute(&pool)
            .await
            .unwrap();
        pool.close().await;
    });
    relay.restart_until_all_sent(2);
    let mut copies: BTreeMap<String, usize> = BTreeMap::new();
    for a in relay.accepted() {
        *copies.entry(a).or_default() += 1;
    }
    assert_eq!(copies.len(), READERS, "everyone got the message");
    let dupes: Vec<&String> = copies
        .iter()
        .filter(|(_, n)| **n > 1)
        .map(|(a, _)| a)
        .collect();
    assert!(
        dupes
            .iter()
            .all(|a| in_flight.contains(*a) && copies[*a] == 2),
        "only messages in flight at the crash are repeated, once: {dupes:?}"
    );
}
