//! An import reads the next batch while the one before it is written (issue 17). Its report
//! still names every left-out row exactly once and goes down the file, whichever side left
//! the row out: the reader (a bad address, a row exported as unsubscribed) or the store (an
//! address that unsubscribed from the list), in the same batch or across batches, and with a
//! run of bad rows longer than one batch holds back. The dry run reports what the import does.

mod support;

use std::collections::BTreeSet;
use std::fmt::Write as _;

use support::cli::{Cli, show, stderr, stdout};

/// Rows in the file: three batches of 10,000 and part of a fourth.
const ROWS: u64 = 32_500;

/// Whether row `i` holds an invalid address: a few in every batch, and a run of 11,000 (more
/// than a batch holds back while it waits for the store) after the second.
fn invalid(i: u64) -> bool {
    i.is_multiple_of(997) || (20_001..=31_000).contains(&i)
}

/// Whether row `i` comes from an export where it was unsubscribed.
fn exported_unsubscribed(i: u64) -> bool {
    !invalid(i) && i.is_multiple_of(1009)
}

/// Rows whose address unsubscribes between the two imports: early in the first batch
/// (before its first bad row), in the middle, just after the run of bad rows and at the end.
const UNSUBSCRIBED: [u64; 4] = [5, 15_005, 31_500, 32_499];

fn csv() -> String {
    let mut s = String::from("email,name,status\n");
    for i in 1..=ROWS {
        if invalid(i) {
            writeln!(s, "not-an-address-{i},,").unwrap();
        } else if exported_unsubscribed(i) {
            writeln!(s, "reader{i}@example.org,Reader {i},unsubscribed").unwrap();
        } else {
            writeln!(s, "reader{i}@example.org,Reader {i},active").unwrap();
        }
    }
    s
}

/// The line numbers the report names (`FILE:LINE: …`), in the order it names them.
fn reported_lines(err: &str) -> Vec<u64> {
    err.lines()
        .filter_map(|l| l.split(':').nth(1)?.parse().ok())
        .collect()
}

fn import(cli: &Cli, file: &str, dry_run: bool) -> (String, String) {
    let mut args = vec!["subscribers", "import", file, "--list", "daily"];
    if dry_run {
        args.push("--dry-run");
    }
    let out = cli.run(&args);
    assert!(out.status.code().is_some(), "killed\n{}", show(&out));
    (stdout(&out), stderr(&out))
}

#[test]
fn a_report_across_batches_names_every_left_out_line_once_in_file_order() {
    let cli = Cli::new();
    cli.ok(["lists", "create", "daily"]);
    let file = cli.write("readers.csv", csv());
    let file = file.display().to_string();
    // The header is line 1, so row `i` is on line `i + 1`.
    let line_of = |i: u64| i + 1;

    let rejected = (1..=ROWS).filter(|&i| invalid(i)).count() as u64;
    let exported = (1..=ROWS).filter(|&i| exported_unsubscribed(i)).count() as u64;
    let added = ROWS - rejected - exported;
    let (out, err) = import(&cli, &file, false);
    assert!(
        out.contains(&format!(
            "{added} added, 0 updated, 0 unchanged, {} skipped, {rejected} rejected",
            exported + rejected
        )),
        "{out}"
    );
    let lines = reported_lines(&err);
    assert!(
        lines.windows(2).all(|w| w[0] < w[1]),
        "the first import's report goes down the file"
    );

    for i in UNSUBSCRIBED {
        let email = format!("reader{i}@example.org");
        cli.ok(["subscribers", "unsubscribe", &email, "--list", "daily"]);
    }
    let (dry_out, dry_err) = import(&cli, &file, true);
    let (out, err) = import(&cli, &file, false);
    assert_eq!(dry_err, err, "the dry run's report is the import's");
    assert_eq!(dry_out.replace("would import into", "imported into"), out);
    let store_skipped = UNSUBSCRIBED.len() as u64;
    assert!(
        out.contains(&format!(
            "0 added, 0 updated, {} unchanged, {} skipped, {rejected} rejected",
            added - store_skipped,
            exported + rejected + store_skipped
        )),
        "{out}"
    );

    let lines = reported_lines(&err);
    assert!(
        lines.windows(2).all(|w| w[0] < w[1]),
        "the report goes down the file, each line once"
    );
    let expected: BTreeSet<u64> = (1..=ROWS)
        .filter(|&i| invalid(i) || exported_unsubscribed(i) || UNSUBSCRIBED.contains(&i))
        .map(line_of)
        .collect();
    assert_eq!(lines.into_iter().collect::<BTreeSet<_>>(), expected);
    for i in UNSUBSCRIBED {
        let line = format!("{file}:{}: skipped: the address unsubscribed", line_of(i));
        assert!(err.contains(&line), "{line} missing");
    }
}
