//! Several `dispatch run` nodes sharing one PostgreSQL database, as real processes: two nodes
//! split one edition and every reader gets it exactly once; SIGKILL one node mid-send and the
//! other finishes, with at most one duplicate per connection the dead node had open; both
//! nodes' schedulers racing for the same slot, restarted again and again, build one edition.
//!
//! The relay is Python's aiosmtpd (`tests/interop/sink.py`), which we did not write; the
//! database a throwaway PostgreSQL cluster (`tests/support/postgres.rs`).

mod support;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use support::cli::{Cli, show};
use support::sink::Sink;
use support::{free_port, postgres, tools};

/// Readers of the edition two nodes share: the 20,000, past the 10,000 a snapshot
/// writes at once, so the nodes write every delivery as they go, from the recorded audience
/// (`store::audience`), racing for its rows.
const READERS: usize = 20_000;

/// SMTP connections per node.
const CONNECTIONS: usize = 2;

/// One `dispatch run` node, its log in `<name>.log` in the sandbox.
struct Node {
    child: Child,
    log: PathBuf,
}

impl Node {
    fn start(cli: &Cli, name: &str, only: Option<&str>) -> Self {
        let log = cli.path(format!("{name}.log"));
        let mut cmd = cli.command();
        cmd.arg("--config").arg(cli.path(format!("{name}.toml")));
        cmd.arg("run");
        if let Some(roles) = only {
            cmd.args(["--only", roles]);
        }
        let child = cmd
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .expect("spawn dispatch run");
        Self { child, log }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    fn kill(&mut self) {
        // std's kill is SIGKILL: no shutdown code runs.
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }

    /// SIGTERM, then waits for a clean exit.
    fn terminate(&mut self) {
        let pid = self.child.id().to_string();
        assert!(
            Command::new("kill")
                .args(["-TERM", &pid])
                .status()
                .unwrap()
                .success()
        );
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                assert!(status.success(), "{status}\n{}", self.log());
                return;
            }
            assert!(
                Instant::now() < deadline,
                "no exit after SIGTERM\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// How many messages this node's sender reported sent when it stopped.
    fn sent(&self) -> usize {
        let log = self.log();
        let line = log
            .lines()
            .find(|l| l.contains("sender stopped"))
            .unwrap_or_else(|| panic!("no 'sender stopped' line\n{log}"));
        let n = line
            .split("sent=")
            .nth(1)
            .unwrap_or_else(|| panic!("{line}"));
        n.split(|c: char| !c.is_ascii_digit())
            .next()
            .unwrap()
            .parse()
            .unwrap()
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        // Only after a failed assertion: never leave a node running.
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Polls `f` every 100 ms until it returns `Some`, for at most `within`.
fn wait_for<T>(within: Duration, what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + within;
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// A fresh database on the test cluster, or `None` after a SKIP notice.
fn database(rt: &tokio::runtime::Runtime) -> Option<String> {
    let server = postgres::server()?;
    Some(rt.block_on(server.fresh_database()))
}

/// Writes `<name>.toml`: the shared database, this node's name and web port, the relay.
fn node_config(cli: &Cli, name: &str, url: &str, smtp_port: u16, rate: u32) {
    let port = free_port();
    cli.write(
        format!("{name}.toml"),
        format!(
            "[database]\nurl = \"{url}\"\n\n[node]\nname = \"{name}\"\n\n\
             [web]\nbind = \"127.0.0.1:{port}\"\npublic_url = \"https://news.example.com\"\n\n\
             [schedule]\nbreaking_poll_secs = 1\n\n\
             [delivery]\ntransport = \"smtp\"\n\n\
             [smtp]\nhost = \"127.0.0.1\"\nport = {smtp_port}\nsecurity = \"none\"\n\
             connections = {CONNECTIONS}\ntimeout_secs = 5\n\n\
             [sending]\nrate_per_second = {rate}\nlease_secs = 10\n"
        ),
    );
}

/// `dispatch --config a.toml ARGS`, which must succeed.
fn dispatch(cli: &Cli, args: &[&str]) -> String {
    let out = cli
        .command()
        .arg("--config")
        .arg(cli.path("a.toml"))
        .args(args)
        .output()
        .unwrap();
    assert!(out.status.success(), "dispatch {args:?}: {}", show(&out));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A breaking list of [`READERS`] readers `r<N>@example.org`.
fn breaking_list(cli: &Cli) {
    dispatch(cli, &["lists", "create", "alerts", "--breaking"]);
    let csv: String = std::iter::once("email\n".to_owned())
        .chain((0..READERS).map(|i| format!("r{i}@example.org\n")))
        .collect();
    let file = cli.write("readers.csv", csv);
    dispatch(
        cli,
        &[
            "subscribers",
            "import",
            &file.display().to_string(),
            "--list",
            "alerts",
        ],
    );
}

fn add_breaking_story(cli: &Cli) {
    dispatch(
        cli,
        &[
            "articles",
            "add",
            "--breaking",
            "--title",
            "Finance minister resigns",
            "--url",
            "https://news.example.com/resigns",
            "--category",
            "Politics",
        ],
    );
}

/// Deliveries by status, and the number of editions.
fn db_state(rt: &tokio::runtime::Runtime, url: &str) -> (BTreeMap<String, i64>, i64) {
    rt.block_on(async {
        let pool = sqlx::PgPool::connect(url).await.unwrap();
        let rows: Vec<(String, i64)> =
            sqlx::query_as("SELECT status, COUNT(*) FROM deliveries GROUP BY status")
                .fetch_all(&pool)
                .await
                .unwrap();
        let editions: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM editions")
            .fetch_one(&pool)
            .await
            .unwrap();
        pool.close().await;
        (rows.into_iter().collect(), editions)
    })
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

/// Waits until every delivery is recorded sent.
fn wait_all_sent(rt: &tokio::runtime::Runtime, url: &str, nodes: &[&Node]) {
    let deadline = Instant::now() + Duration::from_secs(600);
    loop {
        let (statuses, _) = db_state(rt, url);
        if statuses.get("sent").copied() == Some(READERS as i64) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "not all sent: {statuses:?}\n{}",
            nodes
                .iter()
                .map(|n| n.log())
                .collect::<Vec<_>>()
                .join("\n---\n")
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn two_nodes_share_one_edition_and_every_reader_gets_it_exactly_once() {
    let Some(_) = tools::require(tools::KILL) else {
        return;
    };
    let rt = runtime();
    let Some(url) = database(&rt) else { return };
    let Some(sink) = Sink::start_counting() else {
        return;
    };
    let cli = Cli::new();
    // Slow enough per node that the other node's sender claims its share meanwhile.
    node_config(&cli, "a", &url, sink.port, 1500);
    node_config(&cli, "b", &url, sink.port, 1500);
    breaking_list(&cli);

    let mut a = Node::start(&cli, "a", None);
    let mut b = Node::start(&cli, "b", Some("sender,scheduler"));
    wait_for(Duration::from_secs(30), "both nodes up", || {
        (a.log().contains("starting") && b.log().contains("starting")).then_some(())
    });
    // Both schedulers see the story: one edition.
    add_breaking_story(&cli);
    wait_all_sent(&rt, &url, &[&a, &b]);
    a.terminate();
    b.terminate();

    let copies = sink.copies();
    assert_eq!(copies.len(), READERS, "every reader got the story");
    let twice: Vec<_> = copies.iter().filter(|(_, n)| **n > 1).collect();
    assert!(twice.is_empty(), "sent more than once: {twice:?}");
    let (_, editions) = db_state(&rt, &url);
    assert_eq!(editions, 1, "one edition however many schedulers");
    let (sent_a, sent_b) = (a.sent(), b.sent());
    assert_eq!(sent_a + sent_b, READERS);
    assert!(
        sent_a > 0 && sent_b > 0,
        "both nodes sent: a {sent_a}, b {sent_b}"
    );
    assert!(
        !b.log().contains("web pages up"),
        "--only sender,scheduler serves no web pages"
    );
}

#[test]
fn when_one_node_is_killed_mid_send_the_other_finishes_with_bounded_duplicates() {
    let Some(_) = tools::require(tools::KILL) else {
        return;
    };
    let rt = runtime();
    let Some(url) = database(&rt) else { return };
    let Some(sink) = Sink::start_counting() else {
        return;
    };
    let cli = Cli::new();
    node_config(&cli, "a", &url, sink.port, 1000);
    node_config(&cli, "b", &url, sink.port, 1000);
    breaking_list(&cli);

    let mut a = Node::start(&cli, "a", None);
    let mut b = Node::start(&cli, "b", None);
    wait_for(Duration::from_secs(30), "both nodes up", || {
        (a.log().contains("starting") && b.log().contains("starting")).then_some(())
    });
    add_breaking_story(&cli);
    wait_for(Duration::from_secs(60), "a quarter sent", || {
        (sink.recipients().len() >= READERS / 4).then_some(())
    });
    a.kill();
    // b takes a's claimed rows over (same host, its process is gone) and sends the rest.
    wait_all_sent(&rt, &url, &[&b]);
    b.terminate();
    assert!(
        b.log()
            .contains("took over the work of a sender that is gone"),
        "{}",
        b.log()
    );

    let copies = sink.copies();
    assert_eq!(copies.len(), READERS, "every reader got the story");
    let duplicates: usize = copies.values().map(|n| n - 1).sum();
    assert!(
        duplicates <= CONNECTIONS,
        "{duplicates} duplicates; the bound is 1 per connection of the dead node ({CONNECTIONS})"
    );
}

#[test]
fn racing_schedulers_restarted_twenty_times_build_one_edition_per_slot() {
    let Some(_) = tools::require(tools::KILL) else {
        return;
    };
    let rt = runtime();
    let Some(url) = database(&rt) else { return };
    let cli = Cli::new();
    // No relay: these nodes only schedule (`--only scheduler`).
    node_config(&cli, "a", &url, 9, 10);
    node_config(&cli, "b", &url, 9, 10);
    // A daily slot two minutes ago, on a list that existed before it.
    let slot = chrono::Utc::now() - chrono::Duration::minutes(2);
    let cron = format!("{} {} * * *", slot.format("%M"), slot.format("%H"));
    dispatch(
        &cli,
        &[
            "lists",
            "create",
            "daily",
            "--schedule",
            &cron,
            "--timezone",
            "UTC",
        ],
    );
    for i in 0..3 {
        dispatch(
            &cli,
            &[
                "subscribers",
                "add",
                &format!("d{i}@example.org"),
                "--list",
                "daily",
            ],
        );
    }
    rt.block_on(async {
        let pool = sqlx::PgPool::connect(&url).await.unwrap();
        sqlx::query("UPDATE lists SET created_at = '2020-01-01T00:00:00Z'")
            .execute(&pool)
            .await
            .unwrap();
        pool.close().await;
    });

    let mut built = 0;
    for round in 0..20 {
        let mut a = Node::start(&cli, "a", Some("scheduler"));
        let mut b = Node::start(&cli, "b", Some("scheduler"));
        // Each node's first scheduler pass runs as it starts (SIGTERM is handled from then
        // on); the edition of round 0 is there once one of them built it.
        wait_for(Duration::from_secs(30), "both nodes up", || {
            (a.log().contains("starting") && b.log().contains("starting")).then_some(())
        });
        wait_for(Duration::from_secs(30), "the edition", || {
            (db_state(&rt, &url).1 >= 1).then_some(())
        });
        // Time for the slower node's pass to meet the edition the other built.
        std::thread::sleep(Duration::from_millis(500));
        a.terminate();
        b.terminate();
        for n in [&a, &b] {
            let log = n.log();
            assert!(
                !log.contains("could not build") && !log.contains("pass failed"),
                "round {round}:\n{log}"
            );
            built += log.matches("digest built").count();
        }
        assert_eq!(db_state(&rt, &url).1, 1, "round {round}: one edition");
    }
    assert_eq!(built, 1, "one node built it, once");
    let slots: Vec<Option<String>> = rt.block_on(async {
        let pool = sqlx::PgPool::connect(&url).await.unwrap();
        let s = sqlx::query_scalar("SELECT slot FROM editions")
            .fetch_all(&pool)
            .await
            .unwrap();
        pool.close().await;
        s
    });
    assert_eq!(slots, [Some(slot.format("%Y-%m-%dT%H:%M:00Z").to_string())]);
}
