//! `dispatch subscribers import` at scale and `--dry-run`: the dry run reports, line for line,
//! what the real import then does, without writing a byte to the database; a 50,000-row
//! import counts every row and its memory does not grow with the file.

mod support;

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use support::cli::{Cli, show, stderr, stdout};

/// The categories every list here carries.
const CATEGORIES: &str = "Politics,Business,Sport,General News";

/// A database with a subscriber in each state a CSV row can meet: subscribed, to be renamed,
/// unsubscribed, erased after unsubscribing, erased after leaving another list only, and
/// subscribed to another list only.
fn cli_with_every_kind_of_subscriber() -> Cli {
    let cli = Cli::new();
    for list in ["daily", "weekly"] {
        cli.ok(["lists", "create", list, "--categories", CATEGORIES]);
    }
    let add = |email: &str, list: &str, name: &str| {
        cli.ok(["subscribers", "add", email, "--list", list, "--name", name]);
    };
    add("kept@example.com", "daily", "Kept");
    add("renamed@example.com", "daily", "Old Name");
    add("left@example.com", "daily", "Left");
    add("gone@example.com", "daily", "Gone");
    add("back@example.com", "weekly", "Back");
    add("other@example.com", "weekly", "Other");
    cli.ok([
        "subscribers",
        "unsubscribe",
        "left@example.com",
        "--list",
        "daily",
    ]);
    cli.ok([
        "subscribers",
        "unsubscribe",
        "gone@example.com",
        "--list",
        "daily",
    ]);
    cli.ok(["subscribers", "remove", "gone@example.com"]);
    cli.ok([
        "subscribers",
        "unsubscribe",
        "back@example.com",
        "--list",
        "weekly",
    ]);
    cli.ok(["subscribers", "remove", "back@example.com"]);
    cli
}

/// One row of every kind: new, unchanged, updated, unsubscribed, erased after an unsubscribe
/// (in another case), erased and coming back, known from another list, a duplicate in the
/// file, an invalid address, a category the list does not carry, and an exported
/// unsubscription.
const EVERY_KIND: &str = "email,name,categories,status
new@example.com,New,Politics,
kept@example.com,,,
renamed@example.com,New Name,,
left@example.com,,,
GONE@example.com,,,
back@example.com,Back Again,Sport,
other@example.com,,,
NEW@example.com,,,
not-an-address,,,
bad-category@example.com,,Cooking,
exported@example.com,,,unsubscribed
";

/// Runs `dispatch subscribers import FILE --list daily [--dry-run]`; returns (stdout, stderr).
fn import(cli: &Cli, file: &Path, dry_run: bool) -> (String, String) {
    let file = file.display().to_string();
    let mut args = vec!["subscribers", "import", file.as_str(), "--list", "daily"];
    if dry_run {
        args.push("--dry-run");
    }
    let out = cli.run(&args);
    assert!(
        out.status.code().is_some(),
        "the import was killed\n{}",
        show(&out)
    );
    (stdout(&out), stderr(&out))
}

#[test]
fn dry_run_reports_line_for_line_what_the_import_then_does() {
    let cli = cli_with_every_kind_of_subscriber();
    let file = cli.write("every-kind.csv", EVERY_KIND);

    let (dry_out, dry_err) = import(&cli, &file, true);
    let (real_out, real_err) = import(&cli, &file, false);

    assert_eq!(dry_err, real_err, "the same per-line report");
    assert_eq!(
        dry_out.replace("would import into", "imported into"),
        real_out,
        "the same summary"
    );
    assert!(
        real_out.contains(
            "imported into daily: 3 added, 1 updated, 1 unchanged, 6 skipped, 3 rejected"
        ),
        "{real_out}"
    );
    for expected in [
        ":5: skipped: the address unsubscribed from this list",
        ":6: skipped: the address unsubscribed from this list",
        ":9: duplicate of line 2",
        ":10: ",
        ":11: category \"Cooking\" is not carried by list daily",
        ":12: skipped: exported as unsubscribed",
    ] {
        assert!(real_err.contains(expected), "{expected:?} in\n{real_err}");
    }

    // What the report promised is what the database holds now.
    let active = cli.json([
        "subscribers",
        "list",
        "--list",
        "daily",
        "--status",
        "active",
        "--json",
    ]);
    let mut emails: Vec<&str> = active
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["email"].as_str().unwrap())
        .collect();
    emails.sort_unstable();
    assert_eq!(
        emails,
        [
            "back@example.com",
            "kept@example.com",
            "new@example.com",
            "other@example.com",
            "renamed@example.com"
        ]
    );

    // Run again, the dry run and the import still agree (nothing left to add).
    let (dry_out, dry_err) = import(&cli, &file, true);
    let (real_out, real_err) = import(&cli, &file, false);
    assert_eq!(dry_err, real_err);
    assert_eq!(
        dry_out.replace("would import into", "imported into"),
        real_out
    );
    assert!(
        real_out.contains("0 added, 0 updated, 5 unchanged, 6 skipped, 3 rejected"),
        "{real_out}"
    );
}

/// The database file's bytes once every committed change is in it: a `TRUNCATE` checkpoint
/// first moves whatever an earlier process left in the WAL (a process that exits before its
/// pool has closed leaves the checkpoint to the next one to close, which would change the
/// file's bytes without writing anything new). What a dry run wrote would still show here.
fn checkpointed_bytes(db: &Path) -> Vec<u8> {
    use sqlx::Connection as _;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let options = sqlx::sqlite::SqliteConnectOptions::new().filename(db);
        let mut c = sqlx::SqliteConnection::connect_with(&options)
            .await
            .unwrap();
        sqlx::query("PRAGMA wal_checkpoint(TRUNCATE)")
            .execute(&mut c)
            .await
            .unwrap();
        c.close().await.unwrap();
    });
    std::fs::read(db).unwrap()
}

#[test]
fn dry_run_leaves_the_database_file_byte_for_byte_unchanged() {
    let cli = cli_with_every_kind_of_subscriber();
    let file = cli.write("every-kind.csv", EVERY_KIND);
    let before = checkpointed_bytes(cli.db());
    let (out, _) = import(&cli, &file, true);
    assert!(out.contains("would import into daily: 3 added"), "{out}");
    assert!(
        before == checkpointed_bytes(cli.db()),
        "the dry run changed the database file"
    );
}

/// Writes `rows` CSV rows with long (190-letter Urdu) names: a file whose size is mostly
/// names, so an import that held it would show in its memory.
fn write_big_csv(path: &Path, rows: u64) -> u64 {
    use std::io::Write as _;
    let name: String = "ع".repeat(190);
    let mut w = std::io::BufWriter::new(std::fs::File::create(path).unwrap());
    writeln!(w, "email,name,categories").unwrap();
    for i in 0..rows {
        writeln!(w, "reader{i}@example{}.org,{name},Politics;Sport", i % 97).unwrap();
    }
    w.flush().unwrap();
    std::fs::metadata(path).unwrap().len()
}

/// The peak resident memory (`VmHWM`) of `cmd` in KiB, polled until it exits (the last
/// value read before its exit, which is at most a few milliseconds short of the end), and
/// its stdout.
fn run_watching_memory(mut cmd: Command) -> (u64, String) {
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let status_file = format!("/proc/{}/status", child.id());
    let mut peak = 0;
    while child.try_wait().unwrap().is_none() {
        if let Ok(status) = std::fs::read_to_string(&status_file)
            && let Some(kb) = status
                .lines()
                .find_map(|l| l.strip_prefix("VmHWM:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        {
            peak = peak.max(kb);
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "the import failed");
    (peak, String::from_utf8_lossy(&out.stdout).into_owned())
}

#[test]
fn a_50000_row_import_counts_every_row_and_its_memory_does_not_grow_with_the_file() {
    let mut peaks = Vec::new();
    let mut sizes = Vec::new();
    for rows in [20_000u64, 50_000] {
        let cli = Cli::new();
        cli.ok(["lists", "create", "daily", "--categories", CATEGORIES]);
        let file = cli.path("big.csv");
        sizes.push(write_big_csv(&file, rows));
        let mut cmd = cli.command();
        cmd.args(["subscribers", "import"])
            .arg(&file)
            .args(["--list", "daily"]);
        let (peak_kb, out) = run_watching_memory(cmd);
        assert!(
            out.contains(&format!(
                "imported into daily: {rows} added, 0 updated, 0 unchanged, 0 skipped, 0 rejected"
            )),
            "{out}"
        );
        let again = cli.ok([
            "subscribers",
            "import",
            &file.display().to_string(),
            "--list",
            "daily",
            "--dry-run",
        ]);
        assert!(
            again.contains(&format!(
                "would import into daily: 0 added, 0 updated, {rows} unchanged"
            )),
            "{again}"
        );
        peaks.push(peak_kb);
    }
    let file_growth_kb = (sizes[1] - sizes[0]) / 1024;
    let memory_growth_kb = peaks[1].saturating_sub(peaks[0]);
    eprintln!(
        "peak RSS {} KiB for {} KiB of CSV, {} KiB for {} KiB",
        peaks[0],
        sizes[0] / 1024,
        peaks[1],
        sizes[1] / 1024
    );
    // Both files fill whole 10,000-row batches; 2.5 times the rows may cost a little more
    // memory (16 bytes per address for the duplicate check), never a share of the file.
    assert!(
        memory_growth_kb * 4 < file_growth_kb,
        "the import's peak memory grew by {memory_growth_kb} KiB for {file_growth_kb} KiB more CSV"
    );
}
