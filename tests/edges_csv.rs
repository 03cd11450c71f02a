//! Subscriber CSV files and names at the edges, through the real `dispatch` binary and a real
//! SQLite file: broken quotes and old line endings are reported or read, formulas never
//! reach a spreadsheet, names never replay a control sequence, errors stay short.

mod support;

use serde_json::Value;
use support::cli::{Cli, code, show, stderr, stdout};

/// A sandbox with list `daily` (every category).
fn with_daily() -> Cli {
    let cli = Cli::new();
    cli.ok(["lists", "create", "daily"]);
    cli
}

/// (email, name) of every subscriber of `list`, sorted.
fn members(cli: &Cli, list: &str) -> Vec<(String, Option<String>)> {
    let v: Value = cli.json(["subscribers", "list", "--list", list, "--json"]);
    let mut out: Vec<(String, Option<String>)> = v
        .as_array()
        .expect("array")
        .iter()
        .map(|r| {
            (
                r["email"].as_str().unwrap().to_owned(),
                r["name"].as_str().map(str::to_owned),
            )
        })
        .collect();
    out.sort();
    out
}

fn member(email: &str, name: &str) -> (String, Option<String>) {
    (email.to_owned(), Some(name.to_owned()))
}

#[test]
fn an_unterminated_quote_is_reported_by_line_and_the_rows_after_it_import() {
    let cli = with_daily();
    let file = cli.write(
        "quote.csv",
        "email,name\nun4@example.org,\"Foo\nun5@example.org,Bar\nun6@example.org,Baz\n",
    );
    let out = cli.run([
        "subscribers",
        "import",
        file.to_str().unwrap(),
        "--list",
        "daily",
    ]);
    assert_eq!(
        code(&out),
        1,
        "a rejected row makes the status 1\n{}",
        show(&out)
    );
    let err = stderr(&out);
    assert!(
        err.contains(
            "quote.csv:2: unterminated quote: the quoted cell opened here is never closed"
        ),
        "{err}"
    );
    assert!(
        stdout(&out).contains("2 added, 0 updated, 0 unchanged, 1 skipped, 1 rejected"),
        "{}",
        show(&out)
    );
    assert_eq!(
        members(&cli, "daily"),
        [
            member("un5@example.org", "Bar"),
            member("un6@example.org", "Baz")
        ],
        "no line was merged into a name"
    );
}

#[test]
fn a_quote_closed_lines_later_does_not_swallow_the_rows_between() {
    let cli = with_daily();
    let file = cli.write(
        "stray.csv",
        "email,name\r\na@example.org,\"Ann\r\nb@example.org,Bob\r\nc@example.org,\"Cy\"\r\n",
    );
    let out = cli.run([
        "subscribers",
        "import",
        file.to_str().unwrap(),
        "--list",
        "daily",
    ]);
    assert_eq!(code(&out), 1, "{}", show(&out));
    assert!(
        stderr(&out).contains(
            "stray.csv:2: unterminated quote: the quoted cell opened here spans to line 4"
        ),
        "{}",
        show(&out)
    );
    assert_eq!(
        members(&cli, "daily"),
        [
            member("b@example.org", "Bob"),
            member("c@example.org", "Cy")
        ]
    );
}

#[test]
fn cr_only_line_endings_import_every_row() {
    let cli = with_daily();
    let file = cli.write(
        "mac.csv",
        "email,name\rmac1@example.org,Mac One\rmac2@example.org,\"Two, Mac\"\r\rbad-address,X\r",
    );
    let out = cli.run([
        "subscribers",
        "import",
        file.to_str().unwrap(),
        "--list",
        "daily",
    ]);
    assert_eq!(code(&out), 1, "{}", show(&out));
    assert!(stdout(&out).contains("2 added"), "{}", show(&out));
    assert!(
        stderr(&out).contains("mac.csv:5: invalid email address \"bad-address\""),
        "lines count CRs: {}",
        show(&out)
    );
    assert_eq!(
        members(&cli, "daily"),
        [
            member("mac1@example.org", "Mac One"),
            member("mac2@example.org", "Two, Mac")
        ]
    );
}

#[test]
fn a_header_without_rows_says_so() {
    let cli = with_daily();
    let file = cli.write("empty.csv", "email,name\n");
    let out = cli.run([
        "subscribers",
        "import",
        file.to_str().unwrap(),
        "--list",
        "daily",
    ]);
    assert_eq!(code(&out), 0, "{}", show(&out));
    assert!(
        stderr(&out).contains("empty.csv: warning: the file has a header row but no rows after it"),
        "{}",
        show(&out)
    );
}

#[test]
fn a_formula_address_from_the_cli_is_neutralised_on_export_and_imports_back_unchanged() {
    let cli = with_daily();
    let address = "=cmd|'/Ccalc'!A0@example.org";
    cli.ok([
        "subscribers",
        "add",
        address,
        "--list",
        "daily",
        "--name",
        "@SUM(1+1)*cmd|' /C calc'!A0",
        "--categories",
        "Politics,-Sport",
    ]);
    cli.ok([
        "subscribers",
        "add",
        "plain@example.org",
        "--list",
        "daily",
        "--name",
        "O'Brien",
    ]);
    cli.ok([
        "subscribers",
        "export",
        "--list",
        "daily",
        "--output",
        "out.csv",
    ]);
    let exported = cli.read("out.csv");
    // However a spreadsheet splits the file (`,` or, in many locales, `;`), no cell starts
    // with a formula character.
    for cell in exported.split([',', ';', '\n']) {
        let cell = cell.trim_start_matches('"');
        assert!(
            !cell.starts_with(['=', '+', '-', '@', '\t', '\r']),
            "{cell:?} in\n{exported}"
        );
    }
    assert!(
        exported.contains("\n'=cmd|'/Ccalc'!A0@example.org,'@SUM(1+1)*cmd|' /C calc'!A0,'-Sport;Politics,active,daily\n"),
        "{exported}"
    );
    assert!(
        exported.contains("\nplain@example.org,O'Brien,,active,daily\n"),
        "{exported}"
    );

    // Into a fresh database: every value comes back as it was.
    let other = Cli::new();
    other.ok(["lists", "create", "daily"]);
    let file = other.write("in.csv", &exported);
    other.ok([
        "subscribers",
        "import",
        file.to_str().unwrap(),
        "--list",
        "daily",
    ]);
    let again = other.ok(["subscribers", "export", "--list", "daily"]);
    assert_eq!(again, exported);
    let v: Value = other.json(["subscribers", "show", address, "--json"]);
    assert_eq!(v["email"], address);
    assert_eq!(v["name"], "@SUM(1+1)*cmd|' /C calc'!A0");
    assert_eq!(v["subscriptions"][0]["categories"], "-Sport;Politics");
}

#[test]
fn control_characters_in_names_never_reach_the_store_or_the_terminal() {
    let cli = with_daily();
    cli.ok([
        "subscribers",
        "add",
        "bob@example.org",
        "--list",
        "daily",
        "--name",
        "Bob\u{1b}[2J\r\nBcc: x\u{7}",
    ]);
    let file = cli.write(
        "names.csv",
        "email,name\ncsv@example.org,\"Eve\u{1b}]0;owned\u{7}\r\nBcc: y\"\n",
    );
    cli.ok([
        "subscribers",
        "import",
        file.to_str().unwrap(),
        "--list",
        "daily",
    ]);
    assert_eq!(
        members(&cli, "daily"),
        [
            member("bob@example.org", "Bob [2J Bcc: x"),
            member("csv@example.org", "Eve ]0;owned Bcc: y")
        ],
        "the CLI and CSV clean names the same way"
    );
    for args in [
        vec!["subscribers", "show", "bob@example.org"],
        vec!["subscribers", "show", "csv@example.org"],
        vec!["subscribers", "list"],
    ] {
        let out = cli.ok(&args);
        assert!(
            !out.chars().any(|c| c.is_control() && c != '\n'),
            "{args:?} printed a control character: {out:?}"
        );
    }
    let long = "n".repeat(201);
    let err = cli.fail([
        "subscribers",
        "add",
        "long@example.org",
        "--list",
        "daily",
        "--name",
        &long,
    ]);
    assert!(
        err.contains("--name is 201 characters long; at most 200 are allowed"),
        "{err}"
    );
}

#[test]
fn a_thousand_character_address_is_echoed_once_and_cut() {
    let cli = with_daily();
    let address = format!("{}@example.org", "a".repeat(1000));
    let out = cli.run(["subscribers", "add", &address, "--list", "daily"]);
    assert!(!out.status.success());
    let err = stderr(&out);
    assert_eq!(err.matches(&"a".repeat(60)).count(), 1, "{err}");
    assert!(!err.contains(&"a".repeat(61)), "{err}");
    assert!(err.len() < 400, "{} bytes: {err}", err.len());
    assert!(err.contains("<EMAIL>"), "names the argument: {err}");
    assert!(err.contains("(1012 characters)"), "{err}");

    // In a CSV file it is reported by length, without quoting it back.
    let file = cli.write("long.csv", format!("email\n{address}\n"));
    let out = cli.run([
        "subscribers",
        "import",
        file.to_str().unwrap(),
        "--list",
        "daily",
    ]);
    let err = stderr(&out);
    assert!(
        err.contains("long.csv:2: email address is 1012 bytes long"),
        "{err}"
    );
    assert!(!err.contains(&"a".repeat(60)), "{err}");
}

#[test]
fn a_hundred_thousand_column_header_warns_in_one_short_line() {
    let cli = with_daily();
    let mut header = String::from("email");
    for i in 0..100_000 {
        header.push_str(&format!(",column{i}"));
    }
    let file = cli.write("wide.csv", format!("{header}\nwide@example.org\n"));
    let out = cli.run([
        "subscribers",
        "import",
        file.to_str().unwrap(),
        "--list",
        "daily",
    ]);
    assert_eq!(code(&out), 0, "{}", show(&out));
    let err = stderr(&out);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.len() < 400, "{} bytes", err.len());
    assert!(
        err.contains("ignoring unknown columns \"column0\", \"column1\"")
            && err.contains("and 99990 more"),
        "{err}"
    );
    assert_eq!(
        members(&cli, "daily"),
        [("wide@example.org".to_owned(), None)]
    );

    // Without an email column the refusal is as short.
    let file = cli.write("noemail.csv", format!("{}\n", &header[6..]));
    let err = cli.fail([
        "subscribers",
        "import",
        file.to_str().unwrap(),
        "--list",
        "daily",
    ]);
    assert!(err.len() < 600, "{} bytes: {err}", err.len());
    assert!(err.contains("and 99990 more"), "{err}");
}
