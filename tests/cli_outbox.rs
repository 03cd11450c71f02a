//! Storage grows with readers, not with messages sent, through the CLI: every message of a
//! subscription carries the same link until `subscribers rotate-token`, and `editions compact`
//! frees the rows of old editions while `editions show` keeps reporting them.

mod support;

use support::cli::Cli;

/// A list of three readers with one story, sent once through the file transport; returns the
/// CLI and the links (one per `.eml` written).
fn sent_once(cli: &Cli) {
    cli.ok(["lists", "create", "daily", "--name", "Daily"]);
    for r in ["a@example.com", "b@example.com", "c@example.com"] {
        cli.ok(["subscribers", "add", r, "--list", "daily"]);
    }
    cli.ok([
        "articles",
        "add",
        "--title",
        "A story",
        "--url",
        "https://news.example.com/1",
        "--category",
        "Politics",
    ]);
    cli.ok(["send", "digest", "daily"]);
}

/// The unsubscribe link of every message in the outbox whose `To:` is `to`.
fn links_to(cli: &Cli, to: &str) -> Vec<String> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(cli.path("outbox")).unwrap() {
        let text = std::fs::read_to_string(e.unwrap().path()).unwrap();
        if !text.contains(&format!("To: {to}")) && !text.contains(&format!("<{to}>")) {
            continue;
        }
        let start = text.find("/unsubscribe/").expect("a link");
        out.push(text[start..start + "/unsubscribe/".len() + 22].to_owned());
    }
    out
}

#[test]
fn every_message_of_a_subscription_carries_the_same_link_until_rotated() {
    let cli = Cli::new();
    sent_once(&cli);
    // A second digest, after a new story.
    cli.ok([
        "articles",
        "add",
        "--title",
        "Another story",
        "--url",
        "https://news.example.com/2",
        "--category",
        "Politics",
    ]);
    cli.ok(["send", "digest", "daily"]);
    let before = links_to(&cli, "a@example.com");
    assert_eq!(before.len(), 2, "two digests to a@");
    assert_eq!(before[0], before[1], "the same link in both");

    let out = cli.ok(["subscribers", "rotate-token", "a@example.com"]);
    assert!(out.contains("no longer work"), "{out}");
    let err = cli.fail(["subscribers", "rotate-token", "nobody@example.com"]);
    assert!(err.contains("not found"), "{err}");
}

#[test]
fn compaction_keeps_what_editions_show_reports() {
    let cli = Cli::new();
    sent_once(&cli);
    let shown = cli.json(["editions", "show", "1", "--json"]);
    let out = cli.ok(["editions", "compact", "--older-than-days", "0"]);
    assert!(
        out.contains("compacted 1 edition(s)") && out.contains("3 delivery row(s) removed"),
        "{out}"
    );
    assert_eq!(
        cli.json(["editions", "show", "1", "--json"]),
        shown,
        "the same report after compaction"
    );
    let again = cli.ok(["editions", "compact", "--older-than-days", "0"]);
    assert!(again.contains("compacted 0 edition(s)"), "{again}");
}
