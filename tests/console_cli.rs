//! `dispatch users …` and `dispatch audit` as a user runs them: the real binary, a real
//! SQLite file.

mod support;

use support::cli::Cli;

#[test]
fn users_add_prints_a_one_time_link_and_list_disable_reset_are_audited() {
    let cli = Cli::new();
    let link = cli.ok(["users", "add", "Ed@Example.com", "--role", "editor"]);
    let link = link.trim();
    assert!(
        link.starts_with("http://127.0.0.1:8081/set-password/") && link.len() > 40,
        "{link}"
    );
    let list = cli.ok(["users", "list"]);
    assert!(
        list.contains("ed@example.com") && list.contains("link sent"),
        "{list}"
    );
    let again = cli.fail(["users", "add", "ed@example.com", "--role", "admin"]);
    assert!(again.contains("exists"), "{again}");
    cli.ok(["users", "disable", "ed@example.com"]);
    assert!(cli.ok(["users", "list"]).contains("disabled"));
    let fresh = cli.ok(["users", "reset", "ed@example.com"]);
    assert_ne!(fresh.trim(), link, "a new link");
    let unknown = cli.fail(["users", "reset", "nobody@example.com"]);
    assert!(unknown.contains("no console user"), "{unknown}");
    let audit = cli.ok(["audit"]);
    for action in ["user.add", "user.disable", "user.reset"] {
        assert!(audit.contains(action), "{action} in {audit}");
    }
    let json = cli.json(["audit", "--json", "--since", "2000-01-01T00:00:00Z"]);
    assert_eq!(json.as_array().unwrap().len(), 3);
    let bad = cli.fail(["audit", "--since", "yesterday"]);
    assert!(bad.contains("RFC 3339"), "{bad}");
    let bad_role = cli.fail(["users", "add", "x@example.com", "--role", "owner"]);
    assert!(bad_role.contains("editor"), "{bad_role}");
}
