//! Unit tests of the feed readers over the fixtures in `tests/fixtures/feeds`.

use super::*;
use crate::domain::{clean_text, html_text, parse_timestamp};

const RSS: &[u8] = include_bytes!("../../../tests/fixtures/feeds/sample.rss");
const ATOM: &[u8] = include_bytes!("../../../tests/fixtures/feeds/sample.atom");
const JSONL: &[u8] = include_bytes!("../../../tests/fixtures/feeds/sample.jsonl");

fn general() -> Category {
    Category::parse("General News").unwrap()
}

fn now() -> DateTime<Utc> {
    parse_timestamp("2026-11-28T02:00:00Z").unwrap()
}

fn split(items: Vec<Result<ArticleRecord, ItemError>>) -> (Vec<ArticleRecord>, Vec<ItemError>) {
    let mut good = Vec::new();
    let mut bad = Vec::new();
    for item in items {
        match item {
            Ok(a) => good.push(a),
            Err(e) => bad.push(e),
        }
    }
    (good, bad)
}

#[test]
fn detects_format_from_content() {
    assert_eq!(detect(RSS), Some(FeedFormat::Rss));
    assert_eq!(detect(ATOM), Some(FeedFormat::Atom));
    assert_eq!(detect(JSONL), Some(FeedFormat::JsonLines));
    assert_eq!(
        detect(b"\xEF\xBB\xBF \r\n<!-- hi --><!DOCTYPE x><rdf:RDF>"),
        Some(FeedFormat::Rss)
    );
    assert_eq!(detect(b"\n\t{\"url\":1}"), Some(FeedFormat::JsonLines));
    assert_eq!(detect(b"<html><body>"), None);
    assert_eq!(detect(b"email,name"), None);
    assert_eq!(detect(b""), None);
    assert!(matches!(
        parse(b"<html></html>", &general(), now()),
        Err(FeedError::Unrecognised)
    ));
}

#[test]
fn rss_items_are_mapped_and_bad_ones_reported() {
    let (format, items) = parse(RSS, &general(), now()).unwrap();
    assert_eq!(format, FeedFormat::Rss);
    let (good, bad) = split(items);
    assert_eq!(good.len(), 4, "{bad:?}");

    let cabinet = &good[0];
    assert_eq!(
        cabinet.external_id,
        "https://news.example.pk/2026/11/cabinet-approves-budget"
    );
    assert_eq!(
        cabinet.title,
        "Federal cabinet approves revised budget & relief package"
    );
    assert_eq!(
        cabinet.summary,
        "The cabinet met in Islamabad on Thursday and approved a Rs 120 billion relief package. Details “to follow” next week."
    );
    assert_eq!(cabinet.author.as_deref(), Some("Ayesha Khan"));
    assert_eq!(cabinet.category.as_str(), "Politics");
    assert_eq!(cabinet.language.as_deref(), Some("en"));
    assert_eq!(
        cabinet.image_url.as_ref().map(WebUrl::as_str),
        Some("https://img.example.pk/cabinet.jpg")
    );
    assert_eq!(
        cabinet.published_at,
        parse_timestamp("2026-11-27T09:30:00Z").unwrap()
    );
    assert!(!cabinet.breaking);

    // No GUID: the URL is the id. No date: the import time.
    let kse = &good[1];
    assert_eq!(kse.external_id, kse.url.as_str());
    assert_eq!(kse.published_at, now());
    assert_eq!(kse.category, Category::parse("Business").unwrap());
    assert_eq!(kse.image_url, None, "http images are not used");

    // RSS has no per-item language, so the channel's applies.
    let urdu = good
        .iter()
        .find(|a| a.url.host() == "urdu.example.pk")
        .unwrap();
    assert_eq!(urdu.title, "کراچی میں بارش، شہری سیلاب کا خدشہ");
    assert_eq!(urdu.category, general());
    assert_eq!(urdu.language.as_deref(), Some("en"));
    assert_eq!(urdu.external_id, "urdu-5521");

    let mut reasons: Vec<(usize, &str)> = bad.iter().map(|e| (e.item, e.reason.as_str())).collect();
    reasons.sort();
    assert_eq!(
        reasons,
        [
            (3, "\"Senate session adjourned without quorum\" has no link"),
            (
                4,
                "the item linking to https://news.example.pk/2026/11/untitled has no title"
            ),
            (
                6,
                "link: invalid URL \"javascript:alert(1)\": it must start with http:// or https://"
            ),
        ]
    );
    assert_eq!(
        bad[0].located("sample.rss", format),
        format!("sample.rss: item {}: {}", bad[0].item, bad[0].reason)
    );
}

#[test]
fn hostile_html_becomes_plain_text() {
    let (_, items) = parse(RSS, &general(), now()).unwrap();
    let (good, _) = split(items);
    let cricket = good.iter().find(|a| a.title.contains("series")).unwrap();
    assert_eq!(
        cricket.title,
        "Pakistan level T20 series against New Zealand <2-2>"
    );
    assert_eq!(
        cricket.summary,
        "Babar Azam scored 78 as Pakistan won by 6 wickets in Rawalpindi. Series decider on Sunday."
    );
}

#[test]
fn atom_entries_are_mapped() {
    let (format, items) = parse(ATOM, &general(), now()).unwrap();
    assert_eq!(format, FeedFormat::Atom);
    let (good, bad) = split(items);
    assert!(bad.is_empty(), "{bad:?}");
    assert_eq!(good.len(), 3);
    let first = &good[0];
    assert_eq!(first.external_id, "tag:news.example.pk,2026:article-1041");
    assert_eq!(
        first.url.as_str(),
        "https://news.example.pk/2026/11/kse-100-record"
    );
    assert_eq!(first.title, "KSE-100 index closes at a record high");
    assert_eq!(
        first.summary,
        "Banks and fertiliser stocks led the rally; volumes rose 14%."
    );
    assert_eq!(first.author.as_deref(), Some("Bilal Ahmed"));
    assert_eq!(first.category.as_str(), "Business");
    // Updated only: used as the publication time.
    assert_eq!(
        first.published_at,
        parse_timestamp("2026-11-27T16:05:00+05:00").unwrap()
    );
    assert_eq!(
        first.image_url.as_ref().map(WebUrl::as_str),
        Some("https://img.example.pk/kse.png")
    );
    // Summary missing: taken from the HTML content.
    assert_eq!(
        good[1].summary,
        "The PCB named a 15-member squad for the Test series in Australia. Two uncapped pace bowlers were included."
    );
    assert_eq!(good[2].language.as_deref(), Some("ur"));
    assert_eq!(good[2].title, "وزیراعظم کا قوم سے خطاب آج رات");
    assert_eq!(
        good[2].summary,
        "وزیراعظم آج رات نو بجے قوم سے خطاب کریں گے۔"
    );
}

#[test]
fn json_lines_report_bad_lines_by_number() {
    let (format, items) = parse(JSONL, &general(), now()).unwrap();
    assert_eq!(format, FeedFormat::JsonLines);
    let (good, bad) = split(items);
    assert_eq!(good.len(), 3, "{bad:?}");
    let breaking = good.iter().find(|a| a.breaking).unwrap();
    assert_eq!(breaking.external_id, "cms-88121");
    assert_eq!(breaking.category.as_str(), "Politics");
    assert_eq!(
        breaking.published_at,
        parse_timestamp("2026-11-28T06:40:00+05:00").unwrap()
    );
    assert_eq!(
        breaking.image_url.as_ref().map(WebUrl::as_str),
        Some("https://img.example.pk/minister.jpg")
    );
    let defaulted = good
        .iter()
        .find(|a| a.external_id == a.url.as_str())
        .unwrap();
    assert_eq!(defaulted.category, general());
    assert_eq!(defaulted.published_at, now());
    assert_eq!(
        defaulted.title,
        "Gas supply to be restored in Quetta by evening"
    );
    assert!(good.iter().any(|a| a.language.as_deref() == Some("ur")));

    let got: Vec<(usize, String)> = bad.iter().map(|e| (e.item, e.reason.clone())).collect();
    let want_prefixes = [
        (5, "bad JSON: "),
        (6, "missing \"url\""),
        (7, "\"published_at\": invalid timestamp \"yesterday\""),
        (
            8,
            "bad JSON: invalid type: string \"yes\", expected a boolean (column ",
        ),
        (
            9,
            "\"image_url\": http://img.example.pk/x.jpg must use https",
        ),
        (10, "missing \"title\""),
    ];
    assert_eq!(got.len(), want_prefixes.len(), "{got:#?}");
    for ((line, reason), (want_line, want)) in got.iter().zip(want_prefixes) {
        assert_eq!(*line, want_line, "{reason}");
        assert!(reason.starts_with(want), "{reason:?} vs {want:?}");
    }
    assert_eq!(
        bad[0].located("sample.jsonl", format),
        format!("sample.jsonl:5: {}", bad[0].reason)
    );
}

#[test]
fn json_ids_may_be_numbers() {
    let line = br#"{"id": 88123, "url": "https://news.example.pk/a", "title": "A"}
{"id": ["x"], "url": "https://news.example.pk/b", "title": "B"}"#;
    let (_, items) = parse(line, &general(), now()).unwrap();
    assert_eq!(items[0].as_ref().unwrap().external_id, "88123");
    assert_eq!(
        items[1].as_ref().unwrap_err().reason,
        "\"id\": expected a string or a number, got an array"
    );
}

#[test]
fn json_feed_items_are_read_with_their_tags_authors_and_images() {
    let doc = br#"{
        "version": "https://jsonfeed.org/version/1.1",
        "title": "News",
        "language": "ur",
        "items": [
            {"id": "jf-1", "url": "https://news.example.com/a", "title": "First <b>story</b>",
             "summary": "Short.", "authors": [{"name": "Ayesha Khan"}], "tags": ["Pakistan", "Politics"],
             "image": "https://news.example.com/a.jpg", "date_published": "2026-11-28T09:30:00+05:00"},
            {"id": "jf-2", "title": "No link"}
        ]
    }"#;
    let mut mapping = Mapping::new(general());
    mapping
        .category_map
        .insert("politics".into(), Category::parse("Politics").unwrap());
    let (format, items) = parse_with(doc, &mapping, now()).unwrap();
    assert_eq!(format, FeedFormat::JsonFeed);
    let a = items[0].as_ref().unwrap();
    assert_eq!(a.external_id, "jf-1");
    assert_eq!(a.author.as_deref(), Some("Ayesha Khan"));
    assert_eq!(
        a.category.as_str(),
        "Politics",
        "the first tag that maps wins"
    );
    assert_eq!(a.language.as_deref(), Some("ur"));
    assert_eq!(a.published_at.to_rfc3339(), "2026-11-28T04:30:00+00:00");
    assert!(items[1].is_err());
}

#[test]
fn malformed_xml_is_a_feed_error() {
    let err = parse(
        b"<rss version=\"2.0\"><channel><item><title>x</ti",
        &general(),
        now(),
    );
    assert!(
        matches!(err, Err(FeedError::Xml(FeedFormat::Rss, _))),
        "{err:?}"
    );
}

#[test]
fn entities_and_tags() {
    assert_eq!(
        clean_text(
            &html_text(
                "<p>Tom &amp; Jerry&nbsp;&#8217;s</p><p>&amp;lt;b&gt;</p><script>x()</script><b>Pak</b>istan"
            ),
            100
        ),
        "Tom & Jerry ’s &lt;b> Pakistan"
    );
}
