//! The real `dispatch run`: breaking news added by another process is sent once to each
//! reader of the breaking list, `/healthz` answers, and SIGTERM stops it cleanly.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration as StdDuration;

use crate::support::free_port;
use crate::support::tools;
use crate::{Daemon, delivery_statuses, http_get, sandbox, wait_for, wait_healthy};

/// The `.eml` files in the outbox (not the temporary ones being written).
fn outbox_messages(dir: &Path) -> Vec<String> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut out: Vec<String> = entries
        .filter_map(Result::ok)
        .filter(|e| e.file_name().to_string_lossy().ends_with(".eml"))
        .filter(|e| !e.file_name().to_string_lossy().starts_with('.'))
        .map(|e| std::fs::read_to_string(e.path()).unwrap())
        .collect();
    out.sort();
    out
}

/// The address in a message's `To:` header.
fn to_header(msg: &str) -> String {
    let line = msg
        .lines()
        .find(|l| l.to_ascii_lowercase().starts_with("to:"))
        .unwrap_or_else(|| panic!("no To header:\n{msg}"));
    let v = line[3..].trim();
    match (v.rfind('<'), v.rfind('>')) {
        (Some(a), Some(b)) if a < b => v[a + 1..b].to_owned(),
        _ => v.to_owned(),
    }
}

#[test]
fn run_sends_breaking_news_added_by_another_process_serves_healthz_and_stops_on_sigterm() {
    // Daemon::terminate sends SIGTERM with `kill`.
    let Some(_) = tools::require(tools::KILL) else {
        return;
    };
    let port = free_port();
    let cli = sandbox(port, |cli| {
        format!(
            "[delivery]\ntransport = \"file\"\noutbox = {:?}\n",
            cli.path("outbox").display().to_string()
        )
    });
    cli.ok(["lists", "create", "alerts", "--breaking"]);
    cli.ok(["lists", "create", "daily", "--schedule", "0 7 * * *"]);
    let alerts = ["ayesha@example.pk", "bilal@example.com", "sana@example.org"];
    for a in alerts {
        cli.ok(["subscribers", "add", a, "--list", "alerts"]);
    }
    for a in ["daily-only@example.org", "also-daily@example.org"] {
        cli.ok(["subscribers", "add", a, "--list", "daily"]);
    }

    let mut daemon = Daemon::start(&cli, 1);
    let health = wait_healthy(port, &daemon);
    assert!(health.starts_with("HTTP/1.1 200"), "{health}");
    // The body's first line says ok; the next name the database kind and the node.
    assert!(health.contains("\r\n\r\nok\n"), "{health}");
    assert!(health.contains("\ndatabase: sqlite\n"), "{health}");

    // An editor adds breaking news from another process while the daemon runs.
    cli.ok([
        "articles",
        "add",
        "--breaking",
        "--title",
        "Finance minister resigns",
        "--url",
        "https://news.example.com/politics/finance-minister-resigns",
        "--category",
        "Politics",
    ]);
    let outbox = cli.path("outbox");
    let msgs = wait_for(
        StdDuration::from_secs(20),
        "three breaking messages",
        || {
            let m = outbox_messages(&outbox);
            (m.len() >= alerts.len()).then_some(m)
        },
    );
    // A few more polls: nothing is sent twice, nothing goes to the digest-only list.
    std::thread::sleep(StdDuration::from_millis(2500));
    let msgs_later = outbox_messages(&outbox);
    assert_eq!(msgs_later, msgs, "no further messages");
    let mut to: Vec<String> = msgs.iter().map(|m| to_header(m)).collect();
    to.sort();
    assert_eq!(
        to, alerts,
        "one message per subscriber of the breaking list"
    );
    assert!(msgs.iter().all(|m| m.contains("Finance minister resigns")));

    // Still healthy while idle; then SIGTERM stops it cleanly.
    let health = http_get(port, "/healthz").unwrap();
    assert!(health.starts_with("HTTP/1.1 200"), "{health}");
    let status = daemon.terminate(StdDuration::from_secs(15));
    assert!(status.success(), "exit {status}\n{}", daemon.log());

    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    assert_eq!(
        delivery_statuses(&rt, cli.db()),
        BTreeMap::from([("sent".to_owned(), 3)]),
        "{}",
        daemon.log()
    );
}
