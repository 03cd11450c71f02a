//! `dispatch subscribers import` and `export`: every defect of a CSV file reported with its
//! line while the good rows go in, summaries that count what changed, idempotent re-imports
//! and an export that imports back unchanged.

use std::collections::BTreeMap;

use crate::support::cli::{Cli, code, show, stderr, stdout};
use crate::{CATEGORIES, export_rows, listed_emails, repo, with_daily};

#[test]
fn subscribers_import_and_export() {
    let cli = with_daily();
    let out = cli.ok([
        "subscribers",
        "import",
        &repo("subscribers/sample.csv"),
        "--list",
        "daily",
    ]);
    assert!(
        out.contains(
            "imported into daily: 12 added, 0 updated, 0 unchanged, 0 skipped, 0 rejected"
        ),
        "{out}"
    );

    let exported = cli.ok(["subscribers", "export", "--list", "daily"]);
    let rows = export_rows(&exported);
    assert_eq!(rows.len(), 12);
    let row = |email: &str| rows.iter().find(|r| r[0] == email).cloned().unwrap();
    assert_eq!(
        row("ayesha.khan@example.pk"),
        [
            "ayesha.khan@example.pk",
            "Ayesha Khan",
            "Business;Politics",
            "active",
            "daily"
        ]
    );
    assert_eq!(row("hamza.sheikh@example.org")[1], "Sheikh, Hamza");
    assert_eq!(row("zainab.raza@example.pk")[1], "Zainab \"Zee\" Raza");
    assert_eq!(row("fatima.zahra@example.pk")[1], "فاطمہ زہرا");
    assert_eq!(
        row("sana.malik@example.pk")[2],
        "",
        "empty = all categories"
    );
    assert_eq!(row("mehwish.iqbal@example.pk")[1], "", "no name");
    // Lower-case categories in the file are stored in the list's spelling.
    assert_eq!(row("kamran.butt@example.com")[2], "Business;General News");

    // --output writes the same CSV to a file and says so on stderr.
    let out = cli.run([
        "subscribers",
        "export",
        "--list",
        "daily",
        "--output",
        "daily.csv",
    ]);
    assert!(out.status.success(), "{}", show(&out));
    assert!(
        stderr(&out).contains("exported 12 subscription(s) to daily.csv"),
        "{}",
        show(&out)
    );
    assert_eq!(stdout(&out), "");
    assert_eq!(cli.read("daily.csv"), exported);

    // Without --list every list is exported.
    cli.ok(["lists", "create", "weekly"]);
    cli.ok(["subscribers", "add", "new@example.com", "--list", "weekly"]);
    let all = export_rows(&cli.ok(["subscribers", "export"]));
    assert_eq!(all.len(), 13);
    assert_eq!(all[12][0], "new@example.com");
    assert_eq!(all[12][4], "weekly");

    // --dry-run reports what would happen and changes nothing.
    let out = cli.ok([
        "subscribers",
        "import",
        &repo("subscribers/sample.csv"),
        "--list",
        "weekly",
        "--dry-run",
    ]);
    assert!(
        out.contains("would import into weekly: 12 added, 0 updated, 0 unchanged"),
        "{out}"
    );
    let weekly = cli.json(["subscribers", "list", "--list", "weekly", "--json"]);
    assert_eq!(listed_emails(&weekly), ["new@example.com"]);

    let e = cli.fail(["subscribers", "import", "missing.csv", "--list", "daily"]);
    assert!(e.contains("missing.csv"), "{e}");
    let e = cli.fail([
        "subscribers",
        "import",
        &repo("subscribers/sample.csv"),
        "--list",
        "nope",
    ]);
    assert!(e.contains("list \"nope\" not found"), "{e}");
}

#[test]
fn bad_example_csv_reports_each_defect_with_its_line_and_imports_the_good_rows() {
    let cli = with_daily();
    let file = repo("subscribers/bad-example.csv");
    let out = cli.run(["subscribers", "import", &file, "--list", "daily"]);
    assert_eq!(
        code(&out),
        1,
        "rejected rows make the exit status 1\n{}",
        show(&out)
    );
    let err = stderr(&out);
    let expected = [
        (
            4,
            "invalid email address \"shahid.example.pk\": it has no '@'",
        ),
        (
            5,
            "category \"Cricket\" is not carried by list daily (it carries: Business, General News, Politics, Sport)",
        ),
        (6, "duplicate of line 3"),
        (7, "column \"name\" is not valid UTF-8"),
        (
            8,
            "email address is 261 bytes long; at most 254 are allowed",
        ),
        (9, "name is 225 characters long; at most 200 are allowed"),
        (
            10,
            "categories cell is 1080 characters long; at most 1000 are allowed",
        ),
        (11, "missing email address"),
        (12, "expected 4 fields as in the header, found 5"),
    ];
    let located: Vec<&str> = err.lines().filter(|l| l.starts_with(&file)).collect();
    for (line, reason) in expected {
        let prefix = format!("{file}:{line}: ");
        assert!(
            located
                .iter()
                .any(|l| l.starts_with(&prefix) && l.contains(reason)),
            "expected `{prefix}{reason}` in\n{err}"
        );
    }
    // One warning for the unknown column, plus one line per rejected row, nothing else.
    assert!(
        err.contains(&format!(
            "{file}: warning: ignoring unknown column \"city\""
        )),
        "{err}"
    );
    assert_eq!(located.len(), 1 + expected.len(), "{err}");
    assert!(
        stdout(&out).contains(
            "imported into daily: 2 added, 0 updated, 0 unchanged, 9 skipped, 9 rejected"
        ),
        "{}",
        show(&out)
    );

    let rows = export_rows(&cli.ok(["subscribers", "export"]));
    let emails: Vec<&str> = rows.iter().map(|r| r[0].as_str()).collect();
    assert_eq!(
        emails,
        ["rabia.anwar@example.pk", "tariq.mehmood@example.com"]
    );
    assert_eq!(
        rows[1][1], "Tariq Mehmood",
        "the duplicate row changed nothing"
    );
}

#[test]
fn csv_with_bom_crlf_and_multiline_quoted_fields_keeps_line_numbers() {
    let cli = Cli::new();
    cli.ok([
        "lists",
        "create",
        "weekly",
        "--categories",
        "Politics,Sport",
    ]);
    // Physical lines: 1 header, 2 a, 3-4 b (a quoted break), 5 bad address, 6 c, 7 blank,
    // 8 uncarried category, 9 duplicate of 2, 10-12 e (two quoted breaks), 13 extra field,
    // 14 g (after everything, still counted right).
    let csv = "\u{feff}Email , Name,CATEGORIES\r\n\
        a@example.pk,\"Khan, Ayesha\",Politics\r\n\
        b@example.pk,\"Bilal\r\nAhmed, Jr\",Sport;politics\r\n\
        bad-address,X,\r\n\
        \"c@example.pk\",\"Chaudhry, \"\"C\"\"\",\r\n\
        \r\n\
        d@example.pk,D,Cricket\r\n\
        A@EXAMPLE.PK,dup,\r\n\
        e@example.pk,\"multi\r\nline\r\nname\",Sport\r\n\
        f@example.pk,F,Politics,extra\r\n\
        g@example.pk,\"Gul, G\",\"Sport, Politics\"\r\n";
    cli.write("in.csv", csv);
    let out = cli.run(["subscribers", "import", "in.csv", "--list", "weekly"]);
    assert_eq!(code(&out), 1, "{}", show(&out));
    let err = stderr(&out);
    let located: Vec<&str> = err.lines().collect();
    assert_eq!(
        located.len(),
        4,
        "no header warning (the BOM and spaces are handled), 4 bad rows:\n{err}"
    );
    assert!(
        located[0].starts_with("in.csv:5: invalid email address \"bad-address\""),
        "{err}"
    );
    assert!(
        located[1].starts_with("in.csv:8: category \"Cricket\" is not carried by list weekly"),
        "{err}"
    );
    assert_eq!(located[2], "in.csv:9: duplicate of line 2", "{err}");
    assert!(
        located[3].starts_with("in.csv:13: expected 3 fields as in the header, found 4"),
        "{err}"
    );
    assert!(
        stdout(&out).contains("5 added, 0 updated, 0 unchanged, 4 skipped, 4 rejected"),
        "{}",
        show(&out)
    );

    let rows = export_rows(&cli.ok(["subscribers", "export"]));
    let got: Vec<[&str; 3]> = rows
        .iter()
        .map(|r| [r[0].as_str(), r[1].as_str(), r[2].as_str()])
        .collect();
    assert_eq!(
        got,
        [
            ["a@example.pk", "Khan, Ayesha", "Politics"],
            ["b@example.pk", "Bilal Ahmed, Jr", "Politics;Sport"],
            ["c@example.pk", "Chaudhry, \"C\"", ""],
            ["e@example.pk", "multi line name", "Sport"],
            ["g@example.pk", "Gul, G", "Politics;Sport"],
        ]
    );
}

#[test]
fn import_summary_counts_added_updated_unchanged_and_skipped() {
    let cli = with_daily();
    cli.ok([
        "subscribers",
        "add",
        "same@example.pk",
        "--list",
        "daily",
        "--name",
        "Same",
    ]);
    cli.ok([
        "subscribers",
        "add",
        "renamed@example.pk",
        "--list",
        "daily",
        "--name",
        "Old",
    ]);
    cli.ok(["subscribers", "add", "recat@example.pk", "--list", "daily"]);
    cli.ok(["subscribers", "add", "gone@example.pk", "--list", "daily"]);
    cli.ok(["subscribers", "unsubscribe", "gone@example.pk"]);
    cli.write(
        "mixed.csv",
        "email,name,categories\n\
         same@example.pk,Same,\n\
         renamed@example.pk,New,\n\
         recat@example.pk,,Sport\n\
         gone@example.pk,Gone,\n\
         fresh@example.pk,Fresh,Politics\n\
         broken,Broken,\n",
    );
    let out = cli.run(["subscribers", "import", "mixed.csv", "--list", "daily"]);
    assert_eq!(code(&out), 1, "{}", show(&out));
    assert!(
        stdout(&out).contains(
            "mixed.csv: imported into daily: 1 added, 2 updated, 1 unchanged, 2 skipped, 1 rejected"
        ),
        "{}",
        show(&out)
    );
    let err = stderr(&out);
    assert!(
        err.contains("mixed.csv:5: skipped: the address unsubscribed"),
        "{err}"
    );
    assert!(
        err.contains("mixed.csv:7: invalid email address \"broken\""),
        "{err}"
    );

    let rows = export_rows(&cli.ok(["subscribers", "export"]));
    let by_email: BTreeMap<&str, &[String; 5]> = rows.iter().map(|r| (r[0].as_str(), r)).collect();
    assert_eq!(by_email["renamed@example.pk"][1], "New");
    assert_eq!(by_email["recat@example.pk"][2], "Sport");
    assert_eq!(by_email["gone@example.pk"][3], "unsubscribed");
    assert_eq!(
        by_email["gone@example.pk"][1], "",
        "a skipped row changes nothing"
    );
    assert_eq!(by_email["fresh@example.pk"][3], "active");

    // A file whose rows were all accepted exits 0 even if some were skipped by policy.
    cli.write("only-gone.csv", "email\ngone@example.pk\nsame@example.pk\n");
    let out = cli.run(["subscribers", "import", "only-gone.csv", "--list", "daily"]);
    assert_eq!(code(&out), 0, "{}", show(&out));
    assert!(
        stdout(&out).contains("0 added, 0 updated, 1 unchanged, 1 skipped, 0 rejected"),
        "{}",
        show(&out)
    );
}

#[test]
fn a_file_that_cannot_be_imported_at_all_names_the_file_and_the_problem() {
    let cli = with_daily();
    cli.write("noemail.csv", "name,categories\nAyesha,Politics\n");
    let e = cli.fail(["subscribers", "import", "noemail.csv", "--list", "daily"]);
    assert!(
        e.contains("noemail.csv") && e.contains("no `email` column"),
        "{e}"
    );
    cli.write("empty.csv", "");
    let e = cli.fail(["subscribers", "import", "empty.csv", "--list", "daily"]);
    assert!(e.contains("empty.csv") && e.contains("empty"), "{e}");
    assert!(export_rows(&cli.ok(["subscribers", "export"])).is_empty());
}

#[test]
fn importing_the_same_file_twice_changes_nothing_the_second_time() {
    let cli = with_daily();
    let sample = repo("subscribers/sample.csv");
    cli.ok(["subscribers", "import", &sample, "--list", "daily"]);
    let before = cli.ok(["subscribers", "export"]);
    let out = cli.ok(["subscribers", "import", &sample, "--list", "daily"]);
    assert!(
        out.contains("0 added, 0 updated, 12 unchanged, 0 skipped, 0 rejected"),
        "{out}"
    );
    assert_eq!(cli.ok(["subscribers", "export"]), before);

    // The same holds for a file with bad rows: its good rows are unchanged the second time.
    let bad = repo("subscribers/bad-example.csv");
    cli.run(["subscribers", "import", &bad, "--list", "daily"]);
    let before = cli.ok(["subscribers", "export"]);
    let out = cli.run(["subscribers", "import", &bad, "--list", "daily"]);
    assert_eq!(code(&out), 1);
    assert!(
        stdout(&out).contains("0 added, 0 updated, 2 unchanged, 9 skipped, 9 rejected"),
        "{}",
        show(&out)
    );
    assert_eq!(cli.ok(["subscribers", "export"]), before);
}

#[test]
fn export_then_import_into_a_fresh_list_round_trips() {
    let cli = with_daily();
    cli.ok([
        "subscribers",
        "import",
        &repo("subscribers/sample.csv"),
        "--list",
        "daily",
    ]);
    // A name with a line break and a comma, added the other way.
    cli.write(
        "extra.csv",
        "email,name,categories\nx@example.pk,\"Line\nBreak, Esq.\",General News;Sport\n",
    );
    cli.ok(["subscribers", "import", "extra.csv", "--list", "daily"]);
    cli.ok([
        "subscribers",
        "export",
        "--list",
        "daily",
        "--output",
        "daily.csv",
    ]);
    let original = export_rows(&cli.read("daily.csv"));
    assert_eq!(original.len(), 13);

    // Same database, a fresh list with the same categories.
    cli.ok(["lists", "create", "fresh", "--categories", CATEGORIES]);
    let out = cli.run(["subscribers", "import", "daily.csv", "--list", "fresh"]);
    assert!(out.status.success(), "{}", show(&out));
    assert_eq!(
        stderr(&out),
        "",
        "status and list columns are ignored silently"
    );
    assert!(stdout(&out).contains("13 added, 0 updated, 0 unchanged, 0 skipped, 0 rejected"));
    let copy = export_rows(&cli.ok(["subscribers", "export", "--list", "fresh"]));

    // A fresh database, a list carrying every category.
    let other = Cli::new();
    other.ok(["lists", "create", "fresh"]);
    other.write("daily.csv", cli.read("daily.csv"));
    other.ok(["subscribers", "import", "daily.csv", "--list", "fresh"]);
    let other_copy = export_rows(&other.ok(["subscribers", "export", "--list", "fresh"]));

    let key = |rows: &[[String; 5]]| -> Vec<[String; 4]> {
        rows.iter()
            .map(|r| [r[0].clone(), r[1].clone(), r[2].clone(), r[3].clone()])
            .collect()
    };
    assert_eq!(key(&copy), key(&original));
    assert_eq!(key(&other_copy), key(&original));
    assert!(copy.iter().all(|r| r[4] == "fresh"));
    assert!(original.iter().any(|r| r[1] == "Line Break, Esq."));
}
