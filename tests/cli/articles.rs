//! `dispatch articles`: add and list by hand, and imports from RSS, Atom and JSON Lines that
//! count what they did, locate what they skipped, and change nothing the second time.

use std::collections::BTreeMap;

use crate::support::cli::{Cli, code, show, stderr, stdout};
use crate::{map, repo};
use serde_json::Value;

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
