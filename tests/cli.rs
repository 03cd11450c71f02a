//! End-to-end tests of the `dispatch` command line: the real binary, a real SQLite file in a
//! temporary directory, the sample CSV files and the fixture feeds.

mod support;

use std::collections::BTreeMap;

use chrono::{DateTime, Datelike, FixedOffset, Timelike, Utc, Weekday};
use serde_json::Value;
use support::cli::{Cli, code, repo_path, show, stderr, stdout};

/// The path of a file in the repository as a string argument.
fn repo(rel: &str) -> String {
    repo_path(rel).display().to_string()
}

/// A list carrying the four categories the sample files use.
const CATEGORIES: &str = "Politics,Business,Sport,General News";

/// A sandbox with list `daily` carrying [`CATEGORIES`].
fn with_daily() -> Cli {
    let cli = Cli::new();
    cli.ok(["lists", "create", "daily", "--categories", CATEGORIES]);
    cli
}

/// `subscribers export` rows as (email, name, categories, status, list).
fn export_rows(csv_text: &str) -> Vec<[String; 5]> {
    let mut r = csv::Reader::from_reader(csv_text.as_bytes());
    assert_eq!(
        r.headers().unwrap(),
        vec!["email", "name", "categories", "status", "list"],
        "export header"
    );
    r.records()
        .map(|rec| {
            let rec = rec.unwrap();
            std::array::from_fn(|i| rec[i].to_owned())
        })
        .collect()
}

/// The emails in `subscribers list --json` output, in order.
fn listed_emails(v: &Value) -> Vec<String> {
    v.as_array()
        .expect("array")
        .iter()
        .map(|r| r["email"].as_str().unwrap().to_owned())
        .collect()
}

/// `articles list --json` as external_id → article.
fn articles_by_id(cli: &Cli) -> BTreeMap<String, Value> {
    cli.json(["articles", "list", "--json"])
        .as_array()
        .expect("array")
        .iter()
        .map(|a| (a["external_id"].as_str().unwrap().to_owned(), a.clone()))
        .collect()
}

/// `articles list --json` as title → category.
fn titles_and_categories(cli: &Cli) -> BTreeMap<String, String> {
    articles_by_id(cli)
        .into_values()
        .map(|a| {
            (
                a["title"].as_str().unwrap().to_owned(),
                a["category"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

fn map(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

// ---------------------------------------------------------------------------------------------
// 1. Happy paths
// ---------------------------------------------------------------------------------------------

#[test]
fn init_writes_the_starter_config_once_and_creates_the_database() {
    let cli = Cli::new();
    let out = cli.ok(["init"]);
    assert!(
        out.contains("wrote starter config config/dispatch.toml"),
        "{out}"
    );
    assert!(out.contains("database ready at"), "{out}");
    let starter = std::fs::read_to_string(repo_path("config/dispatch.toml")).unwrap();
    assert_eq!(cli.read("config/dispatch.toml"), starter);
    assert!(cli.db().is_file(), "database file not created");

    // A second run leaves an edited config alone (and still opens the database).
    let edited = format!("{starter}\n# edited by the newsroom\n");
    cli.write("config/dispatch.toml", &edited);
    let out = cli.ok(["init"]);
    assert!(out.contains("already exists; left as it is"), "{out}");
    assert_eq!(cli.read("config/dispatch.toml"), edited);

    // The database works: a list can be created in it.
    cli.ok(["lists", "create", "daily"]);
    assert_eq!(cli.json(["lists", "list", "--json"])[0]["slug"], "daily");

    // Without DISPATCH_DATABASE_PATH the starter config's own path is used, folder created.
    let fresh = Cli::new();
    let out = fresh
        .command()
        .env_remove("DISPATCH_DATABASE_PATH")
        .args(["init", "--path", "etc/dispatch.toml"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", show(&out));
    assert!(fresh.path("etc/dispatch.toml").is_file());
    // The config was written to etc/, so the built-in default path data/dispatch.db applies.
    assert!(fresh.path("data/dispatch.db").is_file(), "{}", show(&out));
}

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
fn articles_add_and_list() {
    let cli = Cli::new();
    let id = cli.ok([
        "articles",
        "add",
        "--title",
        "Federal minister\nresigns",
        "--url",
        "https://news.example.pk/2026/11/minister",
        "--category",
        "Politics",
        "--summary",
        "  He sent his resignation on Saturday.  ",
        "--author",
        "Nadia Hussain",
        "--published-at",
        "2026-11-28T09:30:00+05:00",
        "--language",
        "en",
        "--breaking",
    ]);
    let id: i64 = id.trim().parse().expect("prints the id");
    let id2: i64 = cli
        .ok([
            "articles",
            "add",
            "--title",
            "KSE-100 at a record high",
            "--url",
            "https://news.example.pk/2026/11/kse",
            "--category",
            "Business",
            "--id",
            "cms-1041",
            "--published-at",
            "2026-11-27T16:05:00Z",
        ])
        .trim()
        .parse()
        .unwrap();
    assert_ne!(id, id2);

    // The same id (the URL by default) again changes nothing and prints the same id.
    let out = cli.run([
        "articles",
        "add",
        "--title",
        "Something else",
        "--url",
        "https://news.example.pk/2026/11/minister",
        "--category",
        "Sport",
    ]);
    assert!(out.status.success(), "{}", show(&out));
    assert_eq!(stdout(&out).trim(), id.to_string());
    assert!(stderr(&out).contains("already exists; nothing changed"));

    let list = cli.json(["articles", "list", "--json"]);
    let list = list.as_array().unwrap();
    assert_eq!(list.len(), 2);
    let a = &list[0]; // newest first
    assert_eq!(a["id"], id);
    assert_eq!(a["external_id"], "https://news.example.pk/2026/11/minister");
    assert_eq!(a["title"], "Federal minister resigns", "line break cleaned");
    assert_eq!(a["summary"], "He sent his resignation on Saturday.");
    assert_eq!(a["author"], "Nadia Hussain");
    assert_eq!(a["category"], "Politics");
    assert_eq!(a["language"], "en");
    assert_eq!(a["published_at"], "2026-11-28T04:30:00Z", "stored in UTC");
    assert_eq!(a["breaking"], true);
    assert_eq!(list[1]["external_id"], "cms-1041");
    assert_eq!(list[1]["breaking"], false);

    let politics = cli.json(["articles", "list", "--category", "politics", "--json"]);
    assert_eq!(politics.as_array().unwrap().len(), 1);
    let since = cli.json([
        "articles",
        "list",
        "--since",
        "2026-11-28T00:00:00Z",
        "--json",
    ]);
    assert_eq!(since.as_array().unwrap().len(), 1);
    let limited = cli.json(["articles", "list", "--limit", "1", "--json"]);
    assert_eq!(limited[0]["id"], id);
    let table = cli.ok(["articles", "list"]);
    assert!(table.starts_with("ID"), "{table}");
    assert!(table.contains("Federal minister resigns") && table.contains("breaking"));

    let e = cli.fail([
        "articles",
        "add",
        "--title",
        "   ",
        "--url",
        "https://news.example.pk/a",
        "--category",
        "Politics",
    ]);
    assert!(e.contains("--title"), "{e}");
    let e = cli.fail([
        "articles",
        "add",
        "--title",
        "Free data",
        "--url",
        "javascript:alert(1)",
        "--category",
        "Politics",
    ]);
    assert!(
        e.contains("javascript:alert(1)") && e.contains("--url"),
        "{e}"
    );
}

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

// ---------------------------------------------------------------------------------------------
// 2. CSV defects, located
// ---------------------------------------------------------------------------------------------

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

// ---------------------------------------------------------------------------------------------
// 3-5. Re-import, unsubscribes, round trip
// ---------------------------------------------------------------------------------------------

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

// ---------------------------------------------------------------------------------------------
// 6. Config errors
// ---------------------------------------------------------------------------------------------

#[test]
fn config_errors_name_the_file_and_the_key() {
    let cli = Cli::new();
    let cases: [(&str, &str, &[&str]); 4] = [
        (
            "bad-port.toml",
            "[smtp]\nport = \"x\"\n",
            &["port", "line 2", "expected u16"],
        ),
        (
            "unknown.toml",
            "[smtp]\nprot = 25\n",
            &["prot", "unknown field", "line 2"],
        ),
        (
            "url.toml",
            "[web]\npublic_url = \"ftp://news.example.pk\"\n",
            &["[web] public_url", "ftp://news.example.pk"],
        ),
        (
            "port0.toml",
            "[smtp]\nport = 0\n",
            &["[smtp] port", "1-65535"],
        ),
    ];
    for (name, text, needles) in cases {
        let path = cli.write(name, text);
        let out = cli
            .command()
            .arg("--config")
            .arg(&path)
            .arg("status")
            .output()
            .unwrap();
        assert_eq!(code(&out), 2, "{name}\n{}", show(&out));
        let e = stderr(&out);
        assert!(e.contains(&path.display().to_string()), "{name}: {e}");
        for n in needles {
            assert!(e.contains(n), "{name}: expected {n:?} in\n{e}");
        }
    }
    // Nothing was opened or created.
    assert!(!cli.db().exists());

    // DISPATCH_CONFIG is honoured, and the message names that file.
    let out = cli
        .command()
        .env("DISPATCH_CONFIG", cli.path("unknown.toml"))
        .arg("status")
        .output()
        .unwrap();
    assert_eq!(code(&out), 2);
    assert!(stderr(&out).contains("unknown.toml") && stderr(&out).contains("prot"));

    let e = Cli::new().with_config("missing.toml").fail(["status"]);
    assert!(
        e.contains("cannot read config file") && e.contains("missing.toml"),
        "{e}"
    );
}

#[test]
fn config_errors_from_the_environment_name_the_variable() {
    let cli = Cli::new().with_env("DISPATCH_SMTP_PORT", "abc");
    let out = cli.run(["status"]);
    assert_eq!(code(&out), 2, "{}", show(&out));
    let e = stderr(&out);
    assert!(
        e.contains("environment variable DISPATCH_SMTP_PORT") && e.contains("\"abc\""),
        "{e}"
    );
    let e = Cli::new()
        .with_env("DISPATCH_SMTP_COLOUR", "red")
        .fail(["status"]);
    assert!(
        e.contains("DISPATCH_SMTP_COLOUR") && e.contains("no setting"),
        "{e}"
    );
    let e = Cli::new()
        .with_env("DISPATCH_WEB_PUBLIC_URL", "news.example.pk")
        .fail(["status"]);
    assert!(
        e.contains("[web] public_url") && e.contains("news.example.pk"),
        "{e}"
    );

    // A valid override applies: the database goes where the variable says.
    let cli = Cli::new();
    let db = cli.path("elsewhere/x.db");
    let out = cli
        .command()
        .env("DISPATCH_DATABASE_PATH", &db)
        .arg("init")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", show(&out));
    assert!(db.is_file());
}

#[test]
fn a_valid_config_file_is_used() {
    // The config's database path is overridden by DISPATCH_DATABASE_PATH (set by the
    // harness), so use a file that differs from the defaults only in what the CLI can show.
    let cli = Cli::new().with_config("dispatch.toml");
    cli.write(
        "dispatch.toml",
        "[publication]\nname = \"The Example Pakistan Times\"\n[smtp]\nport = 2525\n",
    );
    cli.ok(["init", "--path", "dispatch.toml"]);
    assert!(cli.db().is_file());
    assert!(cli.read("dispatch.toml").contains("2525"), "left alone");

    // And without DISPATCH_DATABASE_PATH the file's [database] path is used.
    let cli = Cli::new();
    cli.write("c.toml", "[database]\npath = \"from-config.db\"\n");
    let out = cli
        .command()
        .env_remove("DISPATCH_DATABASE_PATH")
        .args(["--config", "c.toml", "lists", "create", "daily"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", show(&out));
    assert!(cli.path("from-config.db").is_file());
}

// ---------------------------------------------------------------------------------------------
// 7. Schedules
// ---------------------------------------------------------------------------------------------

fn next_slots(cli: &Cli, slug: &str) -> Vec<DateTime<FixedOffset>> {
    cli.json(["lists", "show", slug, "--json"])["next_slots"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| DateTime::parse_from_rfc3339(s.as_str().unwrap()).unwrap())
        .collect()
}

#[test]
fn weekday_schedule_in_karachi_gives_weekday_slots_at_seven() {
    let cli = Cli::new();
    let out = cli.ok([
        "lists",
        "create",
        "daily",
        "--schedule",
        "0 7 * * 1-5",
        "--timezone",
        "Asia/Karachi",
    ]);
    assert!(
        out.contains("next sends:") && out.contains("07:00"),
        "{out}"
    );
    let shown = cli.json(["lists", "show", "daily", "--json"]);
    assert_eq!(shown["schedule"], "0 7 * * 1-5");
    for s in shown["next_slots"].as_array().unwrap() {
        assert!(s.as_str().unwrap().ends_with("T07:00:00+05:00"), "{s}");
    }
    let slots = next_slots(&cli, "daily");
    assert_eq!(slots.len(), 5);
    let now = Utc::now();
    let mut days = Vec::new();
    for (i, t) in slots.iter().enumerate() {
        assert_eq!(t.offset().local_minus_utc(), 5 * 3600, "{t}");
        assert_eq!((t.hour(), t.minute(), t.second()), (7, 0, 0), "{t}");
        assert!(
            !matches!(t.weekday(), Weekday::Sat | Weekday::Sun),
            "{t} is a weekend"
        );
        assert!(*t > now, "{t} is not in the future");
        if i > 0 {
            assert!(*t > slots[i - 1], "slots in order");
            assert!((*t - slots[i - 1]).num_days() <= 3, "no weekday skipped");
        }
        days.push(t.weekday());
    }
    // Five consecutive weekday slots cover each of Monday to Friday once.
    days.sort_by_key(|d| d.num_days_from_monday());
    assert_eq!(
        days,
        [
            Weekday::Mon,
            Weekday::Tue,
            Weekday::Wed,
            Weekday::Thu,
            Weekday::Fri
        ]
    );
}

#[test]
fn invalid_schedules_are_rejected_with_what_is_wrong() {
    let cli = Cli::new();
    let e = cli.fail(["lists", "create", "daily", "--schedule", "0 7 * *"]);
    assert!(
        e.contains("\"0 7 * *\"") && e.contains("expected 5 fields") && e.contains("found 4"),
        "{e}"
    );
    let e = cli.fail(["lists", "create", "daily", "--schedule", "61 7 * * *"]);
    assert!(
        e.contains("\"61 7 * * *\"") && e.contains("the minute field allows 0-59, not 61"),
        "{e}"
    );
    let e = cli.fail(["lists", "create", "daily", "--timezone", "Asia/Karach"]);
    assert!(e.contains("unknown time zone \"Asia/Karach\""), "{e}");
    assert_eq!(cli.json(["lists", "list", "--json"]), serde_json::json!([]));

    // An update with a bad schedule leaves the list as it was.
    cli.ok(["lists", "create", "daily", "--schedule", "0 7 * * *"]);
    let e = cli.fail(["lists", "update", "daily", "--schedule", "0 25 * * *"]);
    assert!(e.contains("\"0 25 * * *\""), "{e}");
    assert_eq!(
        cli.json(["lists", "show", "daily", "--json"])["schedule"],
        "0 7 * * *"
    );
}

#[test]
fn zero_and_seven_both_mean_sunday() {
    let cli = Cli::new();
    for (slug, line) in [("sun0", "0 7 * * 0"), ("sun7", "0 7 * * 7")] {
        cli.ok([
            "lists",
            "create",
            slug,
            "--schedule",
            line,
            "--timezone",
            "Asia/Karachi",
        ]);
    }
    let zero = next_slots(&cli, "sun0");
    let seven = next_slots(&cli, "sun7");
    assert_eq!(zero.len(), 5);
    assert_eq!(zero, seven);
    for t in &zero {
        assert_eq!(t.weekday(), Weekday::Sun, "{t}");
        assert_eq!((t.hour(), t.minute()), (7, 0), "{t}");
    }
    for w in zero.windows(2) {
        assert_eq!((w[1] - w[0]).num_days(), 7);
    }
}

// ---------------------------------------------------------------------------------------------
// 8. Feeds
// ---------------------------------------------------------------------------------------------

#[test]
fn rss_import_counts_skips_located_items_and_is_idempotent() {
    let cli = Cli::new();
    let file = repo("tests/fixtures/feeds/sample.rss");
    let out = cli.run(["articles", "import", &file]);
    assert_eq!(
        code(&out),
        1,
        "skipped items make the exit status 1\n{}",
        show(&out)
    );
    assert!(
        stdout(&out).contains(&format!(
            "{file}: RSS: 4 added, 0 already stored, 3 skipped"
        )),
        "{}",
        show(&out)
    );
    let err = stderr(&out);
    let lines: Vec<&str> = err.lines().collect();
    assert_eq!(lines.len(), 3, "{err}");
    assert!(
        lines[0].starts_with(&format!("{file}: item 3: "))
            && lines[0].contains("Senate session adjourned without quorum")
            && lines[0].contains("has no link"),
        "{err}"
    );
    assert!(
        lines[1].starts_with(&format!("{file}: item 4: ")) && lines[1].contains("has no title"),
        "{err}"
    );
    assert!(
        lines[2].starts_with(&format!("{file}: item 6: ")) && lines[2].contains("javascript:"),
        "{err}"
    );

    assert_eq!(
        titles_and_categories(&cli),
        map(&[
            (
                "Federal cabinet approves revised budget & relief package",
                "Politics"
            ),
            ("KSE-100 gains 900 points in early trade", "Business"),
            // "Cricket, T20" is not a valid category; the next one is used.
            (
                "Pakistan level T20 series against New Zealand <2-2>",
                "Sport"
            ),
            // No category: the default.
            ("کراچی میں بارش، شہری سیلاب کا خدشہ", "General News"),
        ])
    );
    let by_id = articles_by_id(&cli);
    let cabinet = &by_id["https://news.example.pk/2026/11/cabinet-approves-budget"];
    assert_eq!(cabinet["published_at"], "2026-11-27T09:30:00Z");
    assert_eq!(cabinet["author"], "Ayesha Khan");
    assert_eq!(cabinet["image_url"], "https://img.example.pk/cabinet.jpg");
    let t20 = &by_id["sport-77120"];
    let summary = t20["summary"].as_str().unwrap();
    assert!(
        !summary.contains('<') && !summary.contains("alert"),
        "{summary}"
    );

    let before = cli.ok(["articles", "list", "--json"]);
    let out = cli.run(["articles", "import", &file]);
    assert!(
        stdout(&out).contains("0 added, 4 already stored, 3 skipped"),
        "{}",
        show(&out)
    );
    assert_eq!(cli.ok(["articles", "list", "--json"]), before);
}

#[test]
fn atom_import_counts_and_is_idempotent() {
    let cli = Cli::new();
    let file = repo("tests/fixtures/feeds/sample.atom");
    let out = cli.ok(["articles", "import", &file]);
    assert!(
        out.contains(&format!(
            "{file}: Atom: 3 added, 0 already stored, 0 skipped"
        )),
        "{out}"
    );
    assert_eq!(
        titles_and_categories(&cli),
        map(&[
            ("KSE-100 index closes at a record high", "Business"),
            // type="html" title: the markup is removed.
            ("PCB names squad for Australia tour", "Sport"),
            ("وزیراعظم کا قوم سے خطاب آج رات", "General News"),
        ])
    );
    let by_id = articles_by_id(&cli);
    let pcb = &by_id["tag:news.example.pk,2026:article-1042"];
    assert_eq!(
        pcb["url"],
        "https://news.example.pk/2026/11/pcb-squad-australia"
    );
    assert_eq!(pcb["published_at"], "2026-11-27T11:00:00Z");
    let kse = &by_id["tag:news.example.pk,2026:article-1041"];
    assert_eq!(
        kse["published_at"], "2026-11-27T11:05:00Z",
        "from <updated>"
    );
    assert_eq!(
        by_id["tag:news.example.pk,2026:article-1043"]["language"],
        "ur"
    );

    let before = cli.ok(["articles", "list", "--json"]);
    let out = cli.ok(["articles", "import", &file]);
    assert!(
        out.contains("0 added, 3 already stored, 0 skipped"),
        "{out}"
    );
    assert_eq!(cli.ok(["articles", "list", "--json"]), before);

    // RSS into the same database adds only its own items.
    let out = cli.run([
        "articles",
        "import",
        &repo("tests/fixtures/feeds/sample.rss"),
    ]);
    assert!(stdout(&out).contains("4 added"), "{}", show(&out));
    assert_eq!(articles_by_id(&cli).len(), 7);
}

#[test]
fn json_lines_import_reports_lines_and_is_idempotent() {
    let cli = Cli::new();
    let file = repo("tests/fixtures/feeds/sample.jsonl");
    let out = cli.run([
        "articles",
        "import",
        &file,
        "--default-category",
        "Pakistan",
    ]);
    assert_eq!(code(&out), 1, "{}", show(&out));
    assert!(
        stdout(&out).contains(&format!(
            "{file}: JSON Lines: 3 added, 0 already stored, 6 skipped"
        )),
        "{}",
        show(&out)
    );
    let err = stderr(&out);
    // Line 4 is blank and skipped silently; 5-10 are each wrong in their own way.
    for (line, reason) in [
        (5, "bad JSON"),
        (6, "missing \"url\""),
        (7, "invalid timestamp \"yesterday\""),
        (8, "expected a boolean"),
        (9, "must use https"),
        (10, "missing \"title\""),
    ] {
        let prefix = format!("{file}:{line}: ");
        assert!(
            err.lines()
                .any(|l| l.starts_with(&prefix) && l.contains(reason)),
            "expected `{prefix}…{reason}` in\n{err}"
        );
    }
    assert_eq!(err.lines().count(), 6, "{err}");

    assert_eq!(
        titles_and_categories(&cli),
        map(&[
            ("Federal minister for water resigns", "Politics"),
            ("پیٹرول کی قیمت میں کمی کا اعلان", "Business"),
            ("Gas supply to be restored in Quetta by evening", "Pakistan"),
        ])
    );
    let by_id = articles_by_id(&cli);
    let minister = &by_id["cms-88121"];
    assert_eq!(minister["breaking"], true);
    assert_eq!(minister["published_at"], "2026-11-28T01:40:00Z");
    assert_eq!(minister["image_url"], "https://img.example.pk/minister.jpg");
    assert_eq!(by_id["cms-88122"]["language"], "ur");
    let gas = &by_id["https://news.example.pk/2026/11/quetta-gas"];
    assert_eq!(
        gas["summary"],
        "SSGC said repairs to the main pipeline were almost complete."
    );

    let out = cli.run(["articles", "import", &file]);
    assert!(
        stdout(&out).contains("0 added, 3 already stored, 6 skipped"),
        "{}",
        show(&out)
    );
    assert_eq!(articles_by_id(&cli).len(), 3);

    cli.write("not-a-feed.txt", "hello\n");
    let e = cli.fail(["articles", "import", "not-a-feed.txt"]);
    assert!(e.contains("not-a-feed.txt: not a feed"), "{e}");
}

// ---------------------------------------------------------------------------------------------
// 9-10. Refusals
// ---------------------------------------------------------------------------------------------

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
