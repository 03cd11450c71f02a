//! `dispatch status` counts lists, subscribers and articles.

use crate::support::cli::Cli;
use serde_json::Value;

#[test]
fn status_counts_lists_subscribers_and_articles() {
    let cli = Cli::new();
    let empty = cli.json(["status", "--json"]);
    assert_eq!(empty["lists"], serde_json::json!([]));
    assert_eq!(empty["articles"]["total"], 0);

    cli.ok([
        "lists",
        "create",
        "daily",
        "--schedule",
        "0 7 * * *",
        "--timezone",
        "Asia/Karachi",
    ]);
    cli.ok(["lists", "create", "weekly"]);
    for email in ["a@example.pk", "b@example.pk", "c@example.pk"] {
        cli.ok(["subscribers", "add", email, "--list", "daily"]);
    }
    cli.ok([
        "subscribers",
        "unsubscribe",
        "c@example.pk",
        "--list",
        "daily",
    ]);
    cli.ok([
        "articles",
        "add",
        "--title",
        "Now",
        "--url",
        "https://news.example.pk/now",
        "--category",
        "Politics",
        "--breaking",
    ]);
    cli.ok([
        "articles",
        "add",
        "--title",
        "Old",
        "--url",
        "https://news.example.pk/old",
        "--category",
        "Sport",
        "--published-at",
        "2020-01-01T00:00:00Z",
    ]);

    let s = cli.json(["status", "--json"]);
    assert_eq!(
        s["articles"],
        serde_json::json!({"total": 2, "breaking": 1, "last_24h": 1})
    );
    let lists = s["lists"].as_array().unwrap();
    assert_eq!(lists.len(), 2);
    assert_eq!(lists[0]["list"], "daily");
    assert_eq!(lists[0]["schedule"], "0 7 * * *");
    assert_eq!(lists[0]["timezone"], "Asia/Karachi");
    assert_eq!(lists[0]["active"], 2);
    assert_eq!(lists[0]["pending"], 0);
    assert_eq!(lists[0]["unsubscribed"], 1);
    assert_eq!(lists[0]["last_edition"], Value::Null);
    assert_eq!(lists[1]["list"], "weekly");
    assert_eq!(lists[1]["active"], 0);

    let text = cli.ok(["status"]);
    let daily = text
        .lines()
        .find(|l| l.starts_with("daily"))
        .unwrap_or_else(|| panic!("{text}"));
    let cells: Vec<&str> = daily.split("  ").filter(|c| !c.is_empty()).collect();
    assert_eq!(
        cells.iter().map(|c| c.trim()).collect::<Vec<_>>(),
        ["daily", "0 7 * * * Asia/Karachi", "2", "0", "1", "never"],
        "{text}"
    );
    assert!(
        text.contains("articles: 2 stored, 1 breaking, 1 published in the last 24 hours"),
        "{text}"
    );
}
