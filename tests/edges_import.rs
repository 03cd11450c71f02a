//! Hostile and careless input at the import edges, through the real `dispatch` binary and a
//! real SQLite file: each bad row or item is reported where it is, the others arrive, nothing
//! panics, and no raw database error reaches a person.

mod support;

use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use dispatch::store::{NewArticle, Store};
use serde_json::Value;
use support::cli::{Cli, code, show, stderr, stdout};

/// An RSS document with these `<item>` bodies.
fn rss(items: &[String]) -> String {
    let mut s = String::from(
        "<?xml version=\"1.0\"?>\n<rss version=\"2.0\"><channel><title>Edges</title>\n",
    );
    for item in items {
        s.push_str("<item>");
        s.push_str(item);
        s.push_str("</item>\n");
    }
    s.push_str("</channel></rss>\n");
    s
}

/// An item with a title, a link and optionally a `pubDate`.
fn item(slug: &str, date: Option<&str>) -> String {
    let date = date.map_or(String::new(), |d| format!("<pubDate>{d}</pubDate>"));
    format!("<title>Story {slug}</title><link>https://news.example.pk/{slug}</link>{date}")
}

/// Stored articles as (title, published_at), from `articles list --json`.
fn articles(cli: &Cli) -> Vec<(String, String)> {
    let v = cli.json(["articles", "list", "--json"]);
    let mut rows: Vec<(String, String)> = v
        .as_array()
        .expect("array")
        .iter()
        .map(|a| {
            (
                a["title"].as_str().unwrap().to_owned(),
                a["published_at"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    rows.sort();
    rows
}

/// Runs the command, killing it if it has not finished after `limit`. Only a guard against a
/// hang: what a test asserts is the output.
fn run_with_watchdog(mut cmd: Command, limit: Duration) -> Output {
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn dispatch");
    let started = Instant::now();
    loop {
        if child.try_wait().expect("poll child").is_some() {
            return child.wait_with_output().expect("collect output");
        }
        if started.elapsed() > limit {
            let _ = child.kill();
            let out = child.wait_with_output().expect("collect output");
            panic!("`dispatch` did not finish within {limit:?}\n{}", show(&out));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn an_out_of_range_or_unreadable_feed_date_rejects_only_its_item() {
    let cli = Cli::new();
    let feed = cli.write(
        "feed.rss",
        rss(&[
            item("first", Some("Fri, 27 Nov 2026 14:30:00 +0500")),
            item("far-future", Some("Fri, 31 Dec 9999 23:59:59 -2359")),
            item("garbage", Some("the day after tomorrow")),
            item("undated", None),
            item("last", Some("2026-11-27T10:00:00Z")),
        ]),
    );
    let out = cli.run(["articles", "import", feed.to_str().unwrap()]);
    assert_eq!(
        code(&out),
        1,
        "a rejected item makes the status 1\n{}",
        show(&out)
    );
    let err = stderr(&out);
    assert!(!err.contains("CHECK"), "no raw database error: {err}");
    assert_eq!(err.lines().count(), 2, "one line per rejected item: {err}");
    assert!(
        err.contains("feed.rss: item 2: the date \"Fri, 31 Dec 9999 23:59:59 -2359\" is +10000-01-01T23:58:59Z in UTC, outside the years 0000 to 9999 that can be stored"),
        "{err}"
    );
    assert!(
        err.contains("feed.rss: item 3: the date \"the day after tomorrow\" cannot be read"),
        "{err}"
    );
    assert!(
        stdout(&out).contains("3 added, 0 already stored, 2 skipped"),
        "{}",
        show(&out)
    );
    let stored = articles(&cli);
    let titles: Vec<&str> = stored.iter().map(|(t, _)| t.as_str()).collect();
    assert_eq!(titles, ["Story first", "Story last", "Story undated"]);
    assert!(stored.contains(&("Story first".to_owned(), "2026-11-27T09:30:00Z".to_owned())));
}

#[test]
fn an_out_of_range_json_lines_date_rejects_only_its_line() {
    let cli = Cli::new();
    let feed = cli.write(
        "feed.jsonl",
        concat!(
            r#"{"url": "https://news.example.pk/a", "title": "A", "published_at": "2026-11-27T10:00:00Z"}"#,
            "\n",
            r#"{"url": "https://news.example.pk/b", "title": "B", "published_at": "9999-12-31T23:59:59-23:59"}"#,
            "\n",
            r#"{"url": "https://news.example.pk/c", "title": "C", "published_at": "0000-01-01T00:00:00+23:59"}"#,
            "\n",
            r#"{"url": "https://news.example.pk/d", "title": "D", "published_at": "0000-01-01T00:00:00Z"}"#,
            "\n",
        ),
    );
    let out = cli.run(["articles", "import", feed.to_str().unwrap()]);
    assert_eq!(code(&out), 1, "{}", show(&out));
    let err = stderr(&out);
    assert!(!err.contains("CHECK"), "{err}");
    assert!(
        err.contains("feed.jsonl:2: \"published_at\": timestamp \"9999-12-31T23:59:59-23:59\" is +10000-01-01T23:58:59Z in UTC, outside the years 0000 to 9999"),
        "{err}"
    );
    assert!(err.contains("feed.jsonl:3: \"published_at\""), "{err}");
    let titles: Vec<String> = articles(&cli).into_iter().map(|(t, _)| t).collect();
    assert_eq!(titles, ["A", "D"]);
}

#[test]
fn articles_add_refuses_an_unstorable_time_naming_published_at() {
    let cli = Cli::new();
    let out = cli.run([
        "articles",
        "add",
        "--title",
        "Too early",
        "--url",
        "https://news.example.pk/early",
        "--category",
        "Politics",
        "--published-at",
        "0000-01-01T00:00:00+23:59",
    ]);
    assert!(!out.status.success(), "{}", show(&out));
    let err = stderr(&out);
    assert!(err.contains("--published-at"), "{err}");
    assert!(err.contains("outside the years 0000 to 9999"), "{err}");
    assert!(!err.contains("CHECK"), "{err}");
    assert!(articles(&cli).is_empty());
}

#[test]
fn a_feed_with_an_internal_dtd_subset_is_read_without_expanding_entities() {
    let cli = Cli::new();
    let feed = cli.write(
        "dtd.rss",
        r#"<?xml version="1.0"?>
<!DOCTYPE rss [
  <!ENTITY xxe SYSTEM "file:///etc/passwd">
  <!ENTITY greeting "expanded">
  <!ENTITY lol "lol>lol">
]>
<rss version="2.0"><channel><title>DTD</title>
<item><title>Hello &greeting; &xxe;</title><link>https://news.example.pk/dtd</link></item>
</channel></rss>
"#,
    );
    let out = cli.run(["articles", "import", feed.to_str().unwrap()]);
    assert_eq!(code(&out), 0, "{}", show(&out));
    assert!(
        stdout(&out).contains("dtd.rss: RSS: 1 added"),
        "{}",
        show(&out)
    );
    let titles: Vec<String> = articles(&cli).into_iter().map(|(t, _)| t).collect();
    assert_eq!(
        titles,
        ["Hello &greeting; &xxe;"],
        "entities are left as written"
    );
}

#[test]
fn two_hundred_thousand_nested_divs_import_as_their_text() {
    const DEPTH: usize = 200_000;
    let cli = Cli::new();
    let description = format!(
        "{}deep{}",
        "&lt;div&gt;".repeat(DEPTH),
        "&lt;/div&gt;".repeat(DEPTH)
    );
    let feed = cli.write(
        "deep.rss",
        rss(&[
            format!(
                "{}<description>{description}</description>",
                item("deep", None)
            ),
            item("after", None),
        ]),
    );
    let mut cmd = cli.command();
    cmd.args(["articles", "import", feed.to_str().unwrap()]);
    // Minutes if cleaning were quadratic in the depth, as it was (40,000 took 8 s).
    let out = run_with_watchdog(cmd, Duration::from_secs(120));
    assert_eq!(code(&out), 0, "{}", show(&out));
    let v: Value = cli.json(["articles", "list", "--json"]);
    let deep = v
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["title"] == "Story deep")
        .expect("stored");
    assert_eq!(deep["summary"], "deep");
    assert!(stdout(&out).contains("2 added"), "{}", show(&out));
}

#[test]
fn a_summary_of_two_hundred_thousand_nested_tags_renders_in_a_preview() {
    const DEPTH: usize = 200_000;
    let cli = Cli::new();
    cli.ok(["lists", "create", "daily"]);
    // A CMS writes summaries straight into the database, where no length limit applies.
    let summary = format!(
        "{}<b>bold</b> words{}",
        "<div><b>".repeat(DEPTH),
        "</b></div>".repeat(DEPTH)
    );
    tokio::runtime::Runtime::new().unwrap().block_on(async {
        let store = Store::open(cli.db()).await.unwrap();
        store
            .insert_article(&NewArticle {
                external_id: "nested".into(),
                url: "https://news.example.pk/nested".into(),
                title: "Nested".into(),
                summary,
                author: None,
                category: "Politics".into(),
                language: None,
                image_url: None,
                published_at: chrono::Utc::now(),
                breaking: false,
            })
            .await
            .unwrap();
        store.close().await;
    });
    let mut cmd = cli.command();
    cmd.args(["preview", "daily", "--out", "preview"]);
    let out = run_with_watchdog(cmd, Duration::from_secs(120));
    assert_eq!(code(&out), 0, "{}", show(&out));
    let text = cli.read("preview/digest.txt");
    assert!(text.contains("bold words"), "{text}");
    let html = cli.read("preview/digest.html");
    assert!(html.contains("bold"), "the summary is in the HTML part");
    assert!(
        !html.contains("<div><b><div>"),
        "the nesting does not survive"
    );
}

#[test]
fn articles_add_has_the_feed_limits_and_cleaning() {
    let cli = Cli::new();
    let add = |title: &str, extra: &[&str]| {
        let mut args = vec![
            "articles",
            "add",
            "--title",
            title,
            "--url",
            "https://news.example.pk/limits",
            "--category",
            "Politics",
        ];
        args.extend_from_slice(extra);
        cli.run(args)
    };
    let long = "t".repeat(501);
    let err = stderr(&add(&long, &[]));
    assert!(
        err.contains("--title is 501 characters long; at most 500 are allowed"),
        "{err}"
    );
    let long_summary = "s".repeat(1001);
    let err = stderr(&add("Fine", &["--summary", &long_summary]));
    assert!(
        err.contains("--summary is 1001 characters long; at most 1000"),
        "{err}"
    );
    let long_author = "a".repeat(201);
    let err = stderr(&add("Fine", &["--author", &long_author]));
    assert!(
        err.contains("--author is 201 characters long; at most 200"),
        "{err}"
    );
    assert!(
        articles(&cli).is_empty(),
        "nothing stored by refused commands"
    );

    let ok = add(
        &"t".repeat(500),
        &[
            "--summary",
            "Line one\r\nline\u{1b}[2J two",
            "--author",
            "Ayesha\tKhan",
        ],
    );
    assert!(ok.status.success(), "{}", show(&ok));
    let v = cli.json(["articles", "list", "--json"]);
    assert_eq!(v[0]["title"].as_str().unwrap().chars().count(), 500);
    assert_eq!(v[0]["summary"], "Line one line [2J two");
    assert_eq!(v[0]["author"], "Ayesha Khan");

    // A feed's longer title is cut to the same limit.
    let feed = cli.write(
        "long.rss",
        rss(&[format!(
            "<title>{}</title><link>https://news.example.pk/long</link>",
            "w".repeat(600)
        )]),
    );
    cli.ok(["articles", "import", feed.to_str().unwrap()]);
    let v = cli.json(["articles", "list", "--json"]);
    let cut = v
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["url"] == "https://news.example.pk/long")
        .unwrap();
    let title = cut["title"].as_str().unwrap();
    assert_eq!(title.chars().count(), 500);
    assert!(title.ends_with('…'));
}
