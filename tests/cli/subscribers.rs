//! `dispatch subscribers` one address at a time: add, show, list, unsubscribe and remove, and
//! an add refused with the category the list does not carry or the address that is invalid.

use crate::support::cli::{Cli, code, show, stderr};
use crate::{listed_emails, with_daily};
use serde_json::Value;

#[test]
fn subscribers_add_show_list_unsubscribe_remove() {
    let cli = with_daily();
    cli.ok(["lists", "create", "weekly"]);

    // The domain is lower-cased, the local part kept as written.
    let out = cli.ok([
        "subscribers",
        "add",
        "Ayesha.Khan@Example.PK",
        "--list",
        "daily",
        "--name",
        "Ayesha Khan",
        "--categories",
        "politics, business",
    ]);
    assert!(
        out.contains("subscribed Ayesha.Khan@example.pk to daily"),
        "{out}"
    );
    cli.ok([
        "subscribers",
        "add",
        "ayesha.khan@example.pk",
        "--list",
        "weekly",
    ]);
    cli.ok(["subscribers", "add", "bilal@example.com", "--list", "daily"]);

    // Again with the same details (any case): unchanged; with a new name: updated.
    let out = cli.ok([
        "subscribers",
        "add",
        "AYESHA.KHAN@example.pk",
        "--list",
        "daily",
    ]);
    assert!(out.contains("already subscribed to daily"), "{out}");
    let out = cli.ok([
        "subscribers",
        "add",
        "bilal@example.com",
        "--list",
        "daily",
        "--name",
        "Bilal Ahmed",
    ]);
    assert!(out.contains("updated bilal@example.com on daily"), "{out}");

    let s = cli.json(["subscribers", "show", "ayesha.khan@example.pk", "--json"]);
    assert_eq!(s["email"], "Ayesha.Khan@example.pk");
    assert_eq!(s["name"], "Ayesha Khan");
    assert_eq!(s["status"], "active");
    assert_eq!(s["consent_source"], "cli");
    let subs = s["subscriptions"].as_array().unwrap();
    assert_eq!(subs.len(), 2);
    assert_eq!(subs[0]["list"], "daily");
    assert_eq!(subs[0]["status"], "active");
    assert_eq!(
        subs[0]["categories"], "Business;Politics",
        "list's spelling"
    );
    assert_eq!(subs[1]["list"], "weekly");
    assert_eq!(subs[1]["categories"], Value::Null);
    let text = cli.ok(["subscribers", "show", "ayesha.khan@example.pk"]);
    assert!(text.contains("Business, Politics"), "{text}");

    let all = cli.json(["subscribers", "list", "--json"]);
    assert_eq!(all.as_array().unwrap().len(), 3);
    let daily = cli.json(["subscribers", "list", "--list", "daily", "--json"]);
    assert_eq!(
        listed_emails(&daily),
        ["Ayesha.Khan@example.pk", "bilal@example.com"]
    );
    assert_eq!(daily[1]["name"], "Bilal Ahmed");
    let table = cli.ok(["subscribers", "list", "--list", "daily"]);
    assert!(table.starts_with("EMAIL"), "{table}");
    assert!(table.contains("bilal@example.com"), "{table}");

    // Unsubscribe from one list.
    let out = cli.ok([
        "subscribers",
        "unsubscribe",
        "ayesha.khan@example.pk",
        "--list",
        "daily",
    ]);
    assert!(
        out.contains("unsubscribed ayesha.khan@example.pk from daily"),
        "{out}"
    );
    let s = cli.json(["subscribers", "show", "ayesha.khan@example.pk", "--json"]);
    assert_eq!(s["subscriptions"][0]["status"], "unsubscribed");
    assert!(s["subscriptions"][0]["unsubscribed_at"].is_string());
    assert_eq!(s["subscriptions"][1]["status"], "active");
    let active = cli.json([
        "subscribers",
        "list",
        "--list",
        "daily",
        "--status",
        "active",
        "--json",
    ]);
    assert_eq!(listed_emails(&active), ["bilal@example.com"]);
    let unsub = cli.json(["subscribers", "list", "--status", "unsubscribed", "--json"]);
    assert_eq!(listed_emails(&unsub), ["Ayesha.Khan@example.pk"]);
    assert_eq!(unsub[0]["list"], "daily");

    // Again: nothing to change. Without --list: every remaining list.
    let out = cli.ok([
        "subscribers",
        "unsubscribe",
        "ayesha.khan@example.pk",
        "--list",
        "daily",
    ]);
    assert!(
        out.contains("had no active subscription to change"),
        "{out}"
    );
    let out = cli.ok(["subscribers", "unsubscribe", "ayesha.khan@example.pk"]);
    assert!(out.contains("from 1 list(s)"), "{out}");

    // Remove someone who never unsubscribed: nothing of them is kept.
    let out = cli.ok(["subscribers", "remove", "bilal@example.com"]);
    assert!(out.contains("nothing of them is kept"), "{out}");
    let e = cli.fail(["subscribers", "show", "bilal@example.com"]);
    assert!(e.contains("not found"), "{e}");
    let all = cli.json(["subscribers", "list", "--json"]);
    assert!(!listed_emails(&all).contains(&"bilal@example.com".to_owned()));
    // Remove someone who unsubscribed: only a hash is kept, so no address is listed.
    let out = cli.ok(["subscribers", "remove", "ayesha.khan@example.pk"]);
    assert!(out.contains("a hash of the address is kept"), "{out}");
    let all = cli.ok(["subscribers", "list", "--json"]);
    assert!(!all.to_lowercase().contains("ayesha"), "{all}");

    let e = cli.fail(["subscribers", "unsubscribe", "nobody@example.pk"]);
    assert!(e.contains("not found"), "{e}");
}

#[test]
fn subscribers_add_names_the_uncarried_category_and_the_invalid_address() {
    let cli = Cli::new();
    cli.ok(["lists", "create", "daily", "--categories", "Politics,Sport"]);
    let e = cli.fail([
        "subscribers",
        "add",
        "a@example.pk",
        "--list",
        "daily",
        "--categories",
        "Sport,Cricket",
    ]);
    assert!(
        e.contains("category \"Cricket\" is not carried by list daily")
            && e.contains("Politics, Sport"),
        "{e}"
    );
    for bad in ["notanaddress", "a@@example.pk", "a@example"] {
        let out = cli.run(["subscribers", "add", bad, "--list", "daily"]);
        assert_ne!(code(&out), 0, "{bad} accepted\n{}", show(&out));
        let e = stderr(&out);
        assert!(
            e.contains(&format!("invalid email address \"{bad}\"")),
            "{e}"
        );
    }
    let e = cli.fail(["subscribers", "add", "a@example.pk", "--list", "nope"]);
    assert!(e.contains("list \"nope\" not found"), "{e}");
    // Nothing was stored by the failed commands.
    assert_eq!(
        cli.json(["subscribers", "list", "--json"]),
        serde_json::json!([])
    );
}
