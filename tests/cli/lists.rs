//! `dispatch lists`: create, list, show, update and delete a list, and no deleting a list
//! that still has subscribers unless forced.

use crate::support::cli::{Cli, code, show, stderr};
use crate::with_daily;
use serde_json::Value;

#[test]
fn lists_create_list_show_update_delete() {
    let cli = Cli::new();
    let out = cli.ok([
        "lists",
        "create",
        "daily",
        "--name",
        "Daily Digest",
        "--description",
        "The morning's news",
        "--schedule",
        "0 7 * * *",
        "--timezone",
        "Asia/Karachi",
        "--categories",
        "Politics, Business",
        "--breaking",
    ]);
    assert!(out.contains("created list daily"), "{out}");
    assert!(out.contains("next sends:"), "{out}");
    cli.ok(["lists", "create", "weekly"]);

    let e = cli.fail(["lists", "create", "daily"]);
    assert!(
        e.contains("a list with slug \"daily\" already exists"),
        "{e}"
    );
    let e = cli.fail(["lists", "create", "Daily News"]);
    assert!(
        e.contains("\"Daily News\"") && e.contains("lowercase"),
        "{e}"
    );

    let lists = cli.json(["lists", "list", "--json"]);
    let lists = lists.as_array().unwrap();
    assert_eq!(lists.len(), 2);
    let daily = &lists[0];
    assert_eq!(daily["slug"], "daily");
    assert_eq!(daily["name"], "Daily Digest");
    assert_eq!(daily["description"], "The morning's news");
    assert_eq!(daily["schedule"], "0 7 * * *");
    assert_eq!(daily["timezone"], "Asia/Karachi");
    assert_eq!(daily["categories"], "Business;Politics");
    assert_eq!(daily["sends_breaking"], true);
    assert_eq!(daily["send_empty"], false);
    assert_eq!(daily["double_opt_in"], false);
    let weekly = &lists[1];
    assert_eq!(weekly["slug"], "weekly");
    assert_eq!(weekly["name"], "weekly", "name defaults to the slug");
    assert_eq!(weekly["schedule"], Value::Null);
    assert_eq!(weekly["timezone"], "UTC");
    assert_eq!(weekly["categories"], Value::Null);

    let table = cli.ok(["lists", "list"]);
    assert!(table.starts_with("SLUG"), "{table}");
    assert!(
        table.contains("Daily Digest") && table.contains("breaking"),
        "{table}"
    );

    let shown = cli.json(["lists", "show", "daily", "--json"]);
    assert_eq!(shown["name"], "Daily Digest");
    assert_eq!(
        shown["subscribers"],
        serde_json::json!({"pending": 0, "active": 0, "unsubscribed": 0})
    );
    assert_eq!(shown["next_slots"].as_array().unwrap().len(), 5);
    let text = cli.ok(["lists", "show", "daily"]);
    assert!(text.contains("categories  Business, Politics"), "{text}");

    let out = cli.ok([
        "lists",
        "update",
        "daily",
        "--name",
        "Morning Digest",
        "--no-schedule",
        "--all-categories",
        "--double-opt-in",
        "--breaking",
        "false",
    ]);
    assert!(out.contains("updated list daily"), "{out}");
    let shown = cli.json(["lists", "show", "daily", "--json"]);
    assert_eq!(shown["name"], "Morning Digest");
    assert_eq!(shown["description"], "The morning's news", "unchanged");
    assert_eq!(shown["timezone"], "Asia/Karachi", "unchanged");
    assert_eq!(shown["schedule"], Value::Null);
    assert_eq!(shown["categories"], Value::Null);
    assert_eq!(shown["double_opt_in"], true);
    assert_eq!(shown["sends_breaking"], false);
    assert_eq!(shown["next_slots"], serde_json::json!([]));

    let e = cli.fail(["lists", "update", "nope", "--name", "x"]);
    assert!(e.contains("list \"nope\" not found"), "{e}");

    let out = cli.ok(["lists", "delete", "weekly"]);
    assert!(out.contains("deleted list weekly"), "{out}");
    let slugs: Vec<Value> = cli
        .json(["lists", "list", "--json"])
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["slug"].clone())
        .collect();
    assert_eq!(slugs, ["daily"]);
    let e = cli.fail(["lists", "show", "weekly"]);
    assert!(e.contains("list \"weekly\" not found"), "{e}");
}

#[test]
fn lists_delete_refuses_while_the_list_has_subscribers_unless_forced() {
    let cli = with_daily();
    cli.ok(["lists", "create", "weekly"]);
    cli.ok(["subscribers", "add", "a@example.pk", "--list", "daily"]);
    cli.ok(["subscribers", "add", "a@example.pk", "--list", "weekly"]);
    cli.ok(["subscribers", "add", "b@example.pk", "--list", "daily"]);

    let out = cli.run(["lists", "delete", "daily"]);
    assert_eq!(code(&out), 1, "{}", show(&out));
    let e = stderr(&out);
    assert!(
        e.contains("\"daily\"") && e.contains("2 subscriber(s)") && e.contains("--force"),
        "{e}"
    );
    assert_eq!(
        cli.json(["lists", "show", "daily", "--json"])["subscribers"]["active"],
        2
    );

    let out = cli.ok(["lists", "delete", "daily", "--force"]);
    assert!(
        out.contains("deleted list daily and its 2 subscription(s)"),
        "{out}"
    );
    let e = cli.fail(["lists", "show", "daily"]);
    assert!(e.contains("not found"), "{e}");
    // Subscribers stay, with their other lists.
    let s = cli.json(["subscribers", "show", "a@example.pk", "--json"]);
    let lists: Vec<&str> = s["subscriptions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x["list"].as_str().unwrap())
        .collect();
    assert_eq!(lists, ["weekly"]);
    cli.ok(["subscribers", "show", "b@example.pk"]);

    // A list whose subscribers have all left can be deleted without --force.
    cli.ok([
        "subscribers",
        "unsubscribe",
        "a@example.pk",
        "--list",
        "weekly",
    ]);
    let out = cli.ok(["lists", "delete", "weekly"]);
    assert!(out.contains("deleted list weekly"), "{out}");
}
