//! An unsubscribe sticks: an import or an admin does not reactivate it, removing the
//! address still blocks a re-import, and an export carries it into another list.

use crate::support::cli::{code, show, stderr, stdout};
use crate::{export_rows, listed_emails, repo, with_daily};

#[test]
fn an_unsubscribed_address_is_not_reactivated_by_an_import_or_an_admin() {
    let cli = with_daily();
    let sample = repo("subscribers/sample.csv");
    cli.ok(["subscribers", "import", &sample, "--list", "daily"]);
    cli.ok([
        "subscribers",
        "unsubscribe",
        "ayesha.khan@example.pk",
        "--list",
        "daily",
    ]);

    let out = cli.run(["subscribers", "import", &sample, "--list", "daily"]);
    assert_eq!(code(&out), 0, "{}", show(&out));
    assert!(
        stdout(&out).contains("0 added, 0 updated, 11 unchanged, 1 skipped, 0 rejected"),
        "{}",
        show(&out)
    );
    assert!(
        stderr(&out).contains(&format!(
            "{sample}:2: skipped: the address unsubscribed from this list"
        )),
        "{}",
        show(&out)
    );
    // In another spelling too.
    cli.write("upper.csv", "email,name\nAYESHA.KHAN@EXAMPLE.PK,Ayesha K\n");
    let out = cli.ok(["subscribers", "import", "upper.csv", "--list", "daily"]);
    assert!(
        out.contains("0 added, 0 updated, 0 unchanged, 1 skipped"),
        "{out}"
    );
    let e = cli.fail([
        "subscribers",
        "add",
        "ayesha.khan@example.pk",
        "--list",
        "daily",
    ]);
    assert!(e.contains("unsubscribed from this list"), "{e}");

    let s = cli.json(["subscribers", "show", "ayesha.khan@example.pk", "--json"]);
    assert_eq!(s["name"], "Ayesha Khan", "the skipped rows changed nothing");
    assert_eq!(s["subscriptions"][0]["status"], "unsubscribed");
    let active = cli.json([
        "subscribers",
        "list",
        "--list",
        "daily",
        "--status",
        "active",
        "--json",
    ]);
    assert_eq!(active.as_array().unwrap().len(), 11);
    assert!(!listed_emails(&active).contains(&"ayesha.khan@example.pk".to_owned()));
}

#[test]
fn removing_an_unsubscribed_address_still_blocks_reimport_but_removing_others_does_not() {
    let cli = with_daily();
    let sample = repo("subscribers/sample.csv");
    cli.ok(["subscribers", "import", &sample, "--list", "daily"]);
    cli.ok(["subscribers", "unsubscribe", "ayesha.khan@example.pk"]);
    let out = cli.ok(["subscribers", "remove", "ayesha.khan@example.pk"]);
    assert!(out.contains("a hash of the address is kept"), "{out}");
    let out = cli.ok(["subscribers", "remove", "bilal.ahmed@example.com"]);
    assert!(out.contains("nothing of them is kept"), "{out}");

    let exported = cli.ok(["subscribers", "export"]);
    assert!(
        !exported.contains("ayesha") && !exported.contains("bilal"),
        "{exported}"
    );

    let out = cli.run(["subscribers", "import", &sample, "--list", "daily"]);
    assert_eq!(code(&out), 0, "{}", show(&out));
    assert!(
        stdout(&out).contains("1 added, 0 updated, 10 unchanged, 1 skipped, 0 rejected"),
        "{}",
        show(&out)
    );
    assert!(
        stderr(&out).contains(&format!("{sample}:2: skipped: the address unsubscribed")),
        "{}",
        show(&out)
    );
    let rows = export_rows(&cli.ok(["subscribers", "export"]));
    assert!(!rows.iter().any(|r| r[0] == "ayesha.khan@example.pk"));
    let bilal = rows
        .iter()
        .find(|r| r[0] == "bilal.ahmed@example.com")
        .expect("re-imported");
    assert_eq!(bilal[1..], ["Bilal Ahmed", "Sport", "active", "daily"]);
    let e = cli.fail(["subscribers", "show", "ayesha.khan@example.pk"]);
    assert!(e.contains("not found"), "{e}");
}

#[test]
fn an_unsubscribe_travels_with_an_export_into_another_list() {
    let cli = with_daily();
    cli.ok(["subscribers", "add", "stay@example.pk", "--list", "daily"]);
    cli.ok(["subscribers", "add", "gone@example.pk", "--list", "daily"]);
    cli.ok([
        "subscribers",
        "unsubscribe",
        "gone@example.pk",
        "--list",
        "daily",
    ]);
    cli.ok([
        "subscribers",
        "export",
        "--list",
        "daily",
        "--output",
        "daily.csv",
    ]);
    assert!(
        cli.read("daily.csv")
            .contains("gone@example.pk,,,unsubscribed,daily")
    );

    cli.ok(["lists", "create", "fresh"]);
    let out = cli.run(["subscribers", "import", "daily.csv", "--list", "fresh"]);
    assert!(out.status.success(), "{}", show(&out));
    assert!(
        stderr(&out).contains("daily.csv:3: skipped: exported as unsubscribed"),
        "{}",
        show(&out)
    );
    assert!(stdout(&out).contains("1 added, 0 updated, 0 unchanged, 1 skipped, 0 rejected"));
    let fresh = export_rows(&cli.ok(["subscribers", "export", "--list", "fresh"]));
    assert_eq!(fresh.len(), 1);
    assert_eq!(fresh[0][0], "stay@example.pk");
}
