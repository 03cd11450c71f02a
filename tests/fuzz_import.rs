//! Fuzz targets for the subscriber CSV reader and the feed reader, with proptest.
//!
//! Each target generates inputs for `DISPATCH_FUZZ_SECS` seconds (default 3; CI sets 60) and
//! fails on a panic or a broken property, printing the smallest input proptest shrinks it
//! to. Arbitrary bytes must never panic; structured inputs that mix well-formed rows or items
//! with garbage must deliver every well-formed one, at its own line or position.
//! `PROPTEST_RNG_SEED=N` replays a run.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use dispatch::domain::{Category, CategorySet, clean_text};
use dispatch::import::feeds::{self, ArticleRecord, FeedFormat};
use dispatch::import::subscribers_csv::{CsvReader, ExportRow, write_export};
use proptest::prelude::*;
use proptest::test_runner::{Config, TestCaseError, TestRunner};

/// How long each target runs.
fn budget() -> Duration {
    let secs = std::env::var("DISPATCH_FUZZ_SECS")
        .ok()
        .and_then(|s| s.parse::<f64>().ok())
        .filter(|s| s.is_finite() && *s >= 0.0)
        .unwrap_or(3.0);
    Duration::from_secs_f64(secs)
}

/// Runs `test` on values of `strategy` until the budget is spent (at least one round), and
/// panics with the shrunk failing input if it ever fails or panics.
fn fuzz<S: Strategy>(name: &str, strategy: S, test: impl Fn(S::Value) -> Result<(), TestCaseError>)
where
    S::Value: std::fmt::Debug,
{
    let config = Config {
        cases: 32,
        failure_persistence: None,
        ..Config::default()
    };
    // A runner stops after `cases` successes, so each round gets a fresh one, seeded from
    // one master generator (which PROPTEST_RNG_SEED fixes).
    let mut master = TestRunner::new(config.clone());
    let deadline = Instant::now() + budget();
    let mut rounds = 0u64;
    loop {
        let mut runner = TestRunner::new_with_rng(config.clone(), master.new_rng());
        if let Err(e) = runner.run(&strategy, &test) {
            panic!("{name}: {e}");
        }
        rounds += 1;
        if Instant::now() >= deadline {
            break;
        }
    }
    eprintln!("{name}: {} cases", rounds * 32);
}

/// Bytes weighted towards what CSV and XML readers branch on.
fn tricky_bytes(max: usize) -> impl Strategy<Value = Vec<u8>> {
    let interesting = prop_oneof![
        4 => any::<u8>(),
        2 => prop::sample::select(b"\",\n\r';=+-@\t <>/&![]{}:#x".to_vec()),
        1 => prop::sample::select(vec![0xEF, 0xBB, 0xBF, 0xFF, 0x00, 0xC3, 0xA9]),
    ];
    prop::collection::vec(interesting, 0..max)
}

// ---------------------------------------------------------------- CSV

/// Reads every row, checking that lines only go forward.
fn read_csv(bytes: &[u8], list: Option<CategorySet>) -> Result<Vec<(u64, bool)>, TestCaseError> {
    let Ok(reader) = CsvReader::new(bytes, list) else {
        return Ok(Vec::new());
    };
    let _ = reader.warnings();
    let mut seen = Vec::new();
    let mut last = 0;
    for row in reader {
        let line = match &row {
            Ok(r) => r.line,
            Err(e) => e.line,
        };
        prop_assert!(line > last, "line {line} after line {last}");
        last = line;
        seen.push((line, row.is_ok()));
    }
    Ok(seen)
}

#[test]
fn csv_reader_never_panics_on_arbitrary_bytes() {
    let list = CategorySet::parse_list("Politics;Sport").unwrap();
    fuzz("csv bytes", tricky_bytes(4096), |bytes| {
        read_csv(&bytes, None)?;
        read_csv(&bytes, Some(list.clone()))?;
        // The same bytes after a header, so the row paths get them.
        let mut with_header = b"email,name,categories,status\n".to_vec();
        with_header.extend_from_slice(&bytes);
        read_csv(&with_header, None)?;
        Ok(())
    });
}

/// One line of a generated file.
#[derive(Debug, Clone)]
enum CsvLine {
    /// A well-formed row: its address number and name.
    Good(String),
    /// Bytes without quotes, line breaks or `@`: never a valid row, never a quote.
    Garbage(Vec<u8>),
    /// A quote that opens and is never closed properly.
    OpenQuote(Vec<u8>),
}

fn csv_line() -> impl Strategy<Value = CsvLine> {
    let clean = |b: &u8| !matches!(*b, b'"' | b'\n' | b'\r' | b'@');
    prop_oneof![
        3 => "[A-Za-z][A-Za-z .'-]{0,30}".prop_map(CsvLine::Good),
        2 => prop::collection::vec(any::<u8>(), 0..60)
            .prop_map(move |v| CsvLine::Garbage(v.into_iter().filter(clean).collect())),
        1 => prop::collection::vec(any::<u8>(), 0..40)
            .prop_map(move |v| CsvLine::OpenQuote(v.into_iter().filter(clean).collect())),
    ]
}

#[test]
fn every_well_formed_csv_row_among_garbage_arrives_at_its_line() {
    let strategy = (
        prop::collection::vec(csv_line(), 0..60),
        prop::sample::select(vec!["\n", "\r\n", "\r"]),
        any::<bool>(),
    );
    fuzz("csv rows among garbage", strategy, |(lines, end, bom)| {
        let mut file = Vec::new();
        if bom {
            file.extend_from_slice(b"\xEF\xBB\xBF");
        }
        file.extend_from_slice(b"email,name");
        file.extend_from_slice(end.as_bytes());
        let mut want = BTreeMap::new();
        for (i, line) in lines.iter().enumerate() {
            let number = i as u64 + 2;
            match line {
                CsvLine::Good(name) => {
                    let email = format!("reader{i}@example.org");
                    file.extend_from_slice(format!("{email},{name}").as_bytes());
                    want.insert(number, (email, clean_text(name, 200)));
                }
                CsvLine::Garbage(bytes) => file.extend_from_slice(bytes),
                // `Q` after the quote: were a later quote to close this one, the text after
                // it makes the close improper, so the rows between are never swallowed.
                CsvLine::OpenQuote(bytes) => {
                    file.extend_from_slice(b"x,\"Q");
                    file.extend_from_slice(bytes);
                }
            }
            file.extend_from_slice(end.as_bytes());
        }
        let reader = CsvReader::new(&file[..], None)
            .map_err(|e| TestCaseError::fail(format!("header refused: {e}")))?;
        let mut got = BTreeMap::new();
        for row in reader.flatten() {
            let name = row.name.unwrap_or_default();
            got.insert(row.line, (row.email.to_string(), name));
        }
        prop_assert_eq!(got, want);
        Ok(())
    });
}

#[test]
fn an_export_imports_back_to_the_same_values() {
    let local = "[=+@'a-z0-9-][=+'a-z0-9._-]{0,15}";
    let text = "[=+@'\\-\t ;a-zA-Z0-9\u{600}-\u{605}]{0,40}";
    let category = "[=+@'\\-a-zA-Z][=+@'\\-a-zA-Z ]{0,10}";
    let row = (
        local,
        prop::option::of(text),
        prop::option::of(prop::collection::vec(category, 1..4)),
    );
    fuzz(
        "export round trip",
        prop::collection::vec(row, 0..20),
        |rows| {
            let mut exported = Vec::new();
            let mut want = Vec::new();
            let mut seen = std::collections::HashSet::new();
            for (i, (local, name, categories)) in rows.into_iter().enumerate() {
                let email = format!("{local}{i}@example.org");
                if dispatch::domain::EmailAddress::parse(&email).is_err()
                    || !seen.insert(email.to_lowercase())
                {
                    continue;
                }
                // Stored names and categories are already clean.
                let name = name.map(|n| clean_text(&n, 200)).filter(|n| !n.is_empty());
                let categories = categories
                    .map(|c| {
                        CategorySet::new(c.iter().filter_map(|c| Category::parse(c).ok()).collect())
                    })
                    .filter(|c| !c.is_empty());
                want.push((email.clone(), name.clone(), categories.clone()));
                exported.push(ExportRow {
                    email,
                    name,
                    categories,
                    status: "active".into(),
                    list: "daily".into(),
                });
            }
            let mut out = Vec::new();
            write_export(&mut out, exported.into_iter())
                .map_err(|e| TestCaseError::fail(e.to_string()))?;
            let text = String::from_utf8(out.clone()).unwrap();
            for cell in text.split([',', ';', '\n']) {
                let cell = cell.trim_start_matches('"');
                prop_assert!(
                    !cell.starts_with(['=', '+', '-', '@', '\t', '\r']),
                    "formula cell {:?}",
                    cell
                );
            }
            let got: Vec<_> = CsvReader::new(&out[..], None)
                .map_err(|e| TestCaseError::fail(e.to_string()))?
                .map(|r| r.map(|r| (r.email.to_string(), r.name, r.categories)))
                .collect::<Result<_, _>>()
                .map_err(|e| TestCaseError::fail(e.to_string()))?;
            prop_assert_eq!(got, want);
            Ok(())
        },
    );
}

// ---------------------------------------------------------------- feeds

fn general() -> Category {
    Category::parse("General News").unwrap()
}

fn now() -> DateTime<Utc> {
    DateTime::parse_from_rfc3339("2026-11-28T02:00:00Z")
        .unwrap()
        .with_timezone(&Utc)
}

/// Parses and walks every item; only a panic fails.
fn parse_feed(bytes: &[u8]) -> usize {
    match feeds::parse(bytes, &general(), now()) {
        Ok((format, items)) => {
            for item in &items {
                if let Err(e) = item {
                    let _ = e.located("fuzz", format);
                }
            }
            items.len()
        }
        Err(e) => e.to_string().len(),
    }
}

#[test]
fn feed_reader_never_panics_on_arbitrary_bytes() {
    let xml_token = prop_oneof![
        Just("<?xml version=\"1.0\"?>".to_owned()),
        Just("<rss version=\"2.0\">".to_owned()),
        Just("<feed xmlns=\"http://www.w3.org/2005/Atom\">".to_owned()),
        Just("<channel>".to_owned()),
        Just("<item>".to_owned()),
        Just("</item>".to_owned()),
        Just("<entry>".to_owned()),
        Just("<title>".to_owned()),
        Just("</title>".to_owned()),
        Just("<link>https://news.example.pk/x</link>".to_owned()),
        Just("<description>".to_owned()),
        Just("</description>".to_owned()),
        Just("<pubDate>".to_owned()),
        Just("</pubDate>".to_owned()),
        Just("&lt;div&gt;".to_owned()),
        Just("&lt;script&gt;".to_owned()),
        Just("<![CDATA[<p>x".to_owned()),
        Just("]]>".to_owned()),
        Just("<!DOCTYPE rss [ <!ENTITY x \"a>b\"> ]>".to_owned()),
        Just("&x;".to_owned()),
        Just("{\"url\": \"https://news.example.pk/j\", \"title\": \"J\"}\n".to_owned()),
        "[^<>&]{0,20}",
    ];
    let structured = prop::collection::vec(xml_token, 0..60).prop_map(|t| t.concat().into_bytes());
    fuzz(
        "feed bytes",
        prop_oneof![tricky_bytes(4096), structured],
        |bytes| {
            let _ = feeds::detect(&bytes);
            parse_feed(&bytes);
            Ok(())
        },
    );
}

/// One generated RSS item.
#[derive(Debug, Clone)]
enum FeedItem {
    /// A well-formed item; `noise` is arbitrary text (maybe HTML) in its description.
    Good {
        date: i64,
        noise: String,
    },
    NoLink,
    BadLink,
    BadDate(String),
    FarFuture,
    DeepHtml(usize),
}

/// Text that is valid in an XML document, escaped.
fn xml_text(s: &str) -> String {
    s.chars()
        .filter(
            |c| matches!(*c, '\t' | '\n' | '\r' | '\u{20}'..='\u{D7FF}' | '\u{E000}'..='\u{FFFD}'),
        )
        .map(|c| match c {
            '&' => "&amp;".to_owned(),
            '<' => "&lt;".to_owned(),
            '>' => "&gt;".to_owned(),
            c => c.to_string(),
        })
        .collect()
}

fn feed_item() -> impl Strategy<Value = FeedItem> {
    prop_oneof![
        4 => (0i64..4_000_000_000, any::<String>()).prop_map(|(date, noise)| FeedItem::Good { date, noise }),
        1 => Just(FeedItem::NoLink),
        1 => Just(FeedItem::BadLink),
        1 => "[a-z][a-z ]{0,19}".prop_map(FeedItem::BadDate),
        1 => Just(FeedItem::FarFuture),
        1 => (1usize..2000).prop_map(FeedItem::DeepHtml),
    ]
}

fn rfc2822(secs: i64) -> String {
    DateTime::from_timestamp(secs, 0).unwrap().to_rfc2822()
}

#[test]
fn every_well_formed_feed_item_among_garbage_arrives_at_its_position() {
    fuzz(
        "feed items among garbage",
        prop::collection::vec(feed_item(), 0..25),
        |items| {
            let mut doc = String::from(
                "<?xml version=\"1.0\"?><rss version=\"2.0\"><channel><title>F</title>",
            );
            let mut want: BTreeMap<usize, (String, i64)> = BTreeMap::new();
            let mut bad = Vec::new();
            for (i, item) in items.iter().enumerate() {
                let n = i + 1;
                let link = format!("<link>https://news.example.pk/{n}</link>");
                let title = format!("<title>Story {n}</title>");
                doc.push_str("<item>");
                match item {
                    FeedItem::Good { date, noise } => {
                        doc.push_str(&format!(
                            "{title}{link}<pubDate>{}</pubDate><description>{}</description>",
                            rfc2822(*date),
                            xml_text(noise)
                        ));
                        want.insert(n, (format!("Story {n}"), *date));
                    }
                    FeedItem::NoLink => doc.push_str(&title),
                    FeedItem::BadLink => doc.push_str(&format!("{title}<link>javascript:alert({n})</link>")),
                    FeedItem::BadDate(d) => doc.push_str(&format!("{title}{link}<pubDate>{d}</pubDate>")),
                    FeedItem::FarFuture => doc.push_str(&format!(
                        "{title}{link}<pubDate>Fri, 31 Dec 9999 23:59:59 -2359</pubDate>"
                    )),
                    FeedItem::DeepHtml(depth) => doc.push_str(&format!(
                        "{title}{link}<pubDate>Mon, 30 Nov 2026 10:00:00 +0000</pubDate><description>{}x{}</description>",
                        "&lt;div&gt;&lt;b&gt;".repeat(*depth),
                        "&lt;/b&gt;&lt;/div&gt;".repeat(*depth)
                    )),
                }
                if !matches!(item, FeedItem::Good { .. } | FeedItem::DeepHtml(_)) {
                    bad.push(n);
                }
                if let FeedItem::DeepHtml(_) = item {
                    let at =
                        DateTime::parse_from_rfc2822("Mon, 30 Nov 2026 10:00:00 +0000").unwrap();
                    want.insert(n, (format!("Story {n}"), at.timestamp()));
                }
                doc.push_str("</item>");
            }
            doc.push_str("</channel></rss>");
            let (format, parsed) = feeds::parse(doc.as_bytes(), &general(), now())
                .map_err(|e| TestCaseError::fail(format!("feed refused: {e}")))?;
            prop_assert_eq!(format, FeedFormat::Rss);
            let mut got = BTreeMap::new();
            let mut rejected = Vec::new();
            for (i, item) in parsed.into_iter().enumerate() {
                match item {
                    Ok(ArticleRecord {
                        title,
                        published_at,
                        ..
                    }) => {
                        got.insert(i + 1, (title, published_at.timestamp()));
                    }
                    Err(e) => {
                        prop_assert_eq!(e.item, i + 1);
                        rejected.push(e.item);
                    }
                }
            }
            prop_assert_eq!(got, want);
            prop_assert_eq!(rejected, bad);
            Ok(())
        },
    );
}

#[test]
fn every_well_formed_json_line_among_garbage_arrives() {
    let line = prop_oneof![
        3 => (0i64..250_000_000_000).prop_map(Some),
        2 => Just(None),
    ];
    let garbage = prop::collection::vec(any::<u8>(), 0..80)
        .prop_map(|v| v.into_iter().filter(|b| *b != b'\n').collect::<Vec<u8>>());
    fuzz(
        "json lines among garbage",
        prop::collection::vec((line, garbage), 0..40),
        |lines| {
            // The first line is good, so the document is detected as JSON Lines.
            let mut doc = br#"{"url": "https://news.example.pk/0", "title": "Line 1"}"#.to_vec();
            doc.push(b'\n');
            let mut want = BTreeMap::new();
            want.insert(1usize, "Line 1".to_owned());
            for (i, (good, garbage)) in lines.iter().enumerate() {
                let n = i + 2;
                match good {
                    // Seconds up to year ~9900: storable.
                    Some(secs) => {
                        let at = DateTime::from_timestamp(*secs, 0).unwrap().to_rfc3339();
                        doc.extend_from_slice(
                            format!(
                                r#"{{"url": "https://news.example.pk/{n}", "title": "Line {n}", "published_at": "{at}"}}"#
                            )
                            .as_bytes(),
                        );
                        want.insert(n, format!("Line {n}"));
                    }
                    None => doc.extend_from_slice(garbage),
                }
                doc.push(b'\n');
            }
            let (_, parsed) = feeds::parse(&doc, &general(), now())
                .map_err(|e| TestCaseError::fail(format!("refused: {e}")))?;
            let mut got = BTreeMap::new();
            // Each good line's title names its line.
            for a in parsed.into_iter().flatten() {
                let n: usize = a
                    .title
                    .strip_prefix("Line ")
                    .and_then(|n| n.parse().ok())
                    .unwrap_or(0);
                if want.contains_key(&n) {
                    got.insert(n, a.title);
                }
            }
            prop_assert_eq!(got, want);
            Ok(())
        },
    );
}
