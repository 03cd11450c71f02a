use chrono::{TimeZone, Utc};
use chrono_tz::Asia::Karachi;

use super::*;
use crate::config::Publication;
use crate::digest::{self, ArticleView, Section};
use crate::domain::{Category, CategorySet};
use crate::i18n::{Catalogue, Language};

const TOKEN: &str = "AAAAAAAAAAAAAAAAAAAAAA";

struct Fixture {
    publication: Publication,
    catalogue: Catalogue,
    language: Language,
    public_url: WebUrl,
    site_url: WebUrl,
}

impl Fixture {
    fn new() -> Self {
        Self {
            publication: Publication::default(),
            catalogue: Catalogue::default(),
            language: Language::En,
            public_url: WebUrl::parse("https://lists.news.example.com/").unwrap(),
            site_url: WebUrl::parse("https://news.example.com").unwrap(),
        }
    }

    fn ctx(&self, kind: EditionKind) -> EditionContext<'_> {
        EditionContext {
            publication: &self.publication,
            strings: self.catalogue.strings(self.language),
            public_url: &self.public_url,
            site_url: &self.site_url,
            list_name: "Daily Digest",
            list_description: "The morning's news from Pakistan, at 07:00.",
            kind,
            date: Karachi.with_ymd_and_hms(2026, 11, 28, 7, 0, 0).unwrap(),
            web_view_url: Some("https://news.example.com/newsletters/daily/2026-11-28".into()),
        }
    }
}

fn article(id: i64, category: &str, hour: u32, title: &str, summary: &str) -> ArticleView {
    ArticleView {
        id,
        url: format!("https://news.example.com/{id}/story"),
        title: title.into(),
        summary: summary.into(),
        author: None,
        category: Category::parse(category).unwrap(),
        language: Some("en".into()),
        image_url: None,
        published_at: Utc.with_ymd_and_hms(2026, 11, 27, hour, 15, 0).unwrap(),
        was_breaking: false,
    }
}

fn articles() -> Vec<ArticleView> {
    let mut minister = article(
        1,
        "Politics",
        20,
        "Food minister resigns over wheat import inquiry",
        "The minister stepped down hours after the <b>inquiry report</b> was tabled in the National Assembly.",
    );
    minister.was_breaking = true;
    minister.author = Some("Ayesha Khan".into());
    let mut budget = article(
        2,
        "Politics",
        23,
        "Senate passes supplementary budget after late sitting",
        "<p>The bill now goes to the President.</p><p>Read the <a href=\"https://news.example.com/budget-explainer\">explainer</a>.</p>",
    );
    budget.author = Some("Bilal Ahmed".into());
    let mut stocks = article(
        4,
        "Business",
        22,
        "Rupee & stocks rally as IMF tranche is approved",
        "The KSE-100 index closed 2.1% higher; the rupee gained against the dollar.",
    );
    stocks.image_url = Some("https://news.example.com/img/kse.jpg".into());
    let mut cricket = article(
        5,
        "Sport",
        21,
        "پاکستان نے سیریز جیت لی",
        "کراچی میں کھیلے گئے آخری میچ میں پاکستان نے پانچ وکٹوں سے کامیابی حاصل کی۔",
    );
    cricket.language = Some("ur".into());
    vec![
        minister,
        budget,
        article(
            3,
            "Politics",
            10,
            "Opposition calls for early polls",
            "A joint statement was issued in Lahore.",
        ),
        stocks,
        cricket,
        article(
            6,
            "General News",
            10,
            "Rain expected in Karachi this weekend",
            "The Met Office forecasts light showers on Sunday.",
        ),
    ]
}

fn sections(f: &Fixture) -> Vec<Section> {
    let order = [
        Category::parse("General News").unwrap(),
        Category::parse("Politics").unwrap(),
    ];
    digest::group(articles(), &order, 2, &f.site_url)
}

fn digest_of(f: &Fixture, sections: &[Section]) -> Rendered {
    let refs: Vec<&Section> = sections.iter().collect();
    render_digest(&f.ctx(EditionKind::Digest), &refs)
}

fn fill(t: &Template, name: &str) -> String {
    t.fill(|h| match h {
        Hole::Token => TOKEN.to_owned(),
        Hole::Name => name.to_owned(),
    })
}

fn holes(t: &Template, which: Hole) -> usize {
    t.segments()
        .iter()
        .filter(|s| **s == Segment::Hole(which))
        .count()
}

/// Whitespace collapsed, so assertions on prose survive wrapping in the text part.
fn squash(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// The table row (one line of output) holding `needle` in its visible text.
fn row<'a>(html: &'a str, needle: &str) -> &'a str {
    html.lines()
        .find(|l| l.starts_with("<tr><td") && l.contains(needle))
        .unwrap_or_else(|| panic!("no row with {needle:?}"))
}

/// Every tag's inside (`<…>`), where an injected element or attribute would show up.
fn tags(html: &str) -> Vec<&str> {
    html.split('<')
        .skip(1)
        .filter_map(|t| t.split_once('>').map(|(tag, _)| tag))
        .collect()
}

fn escape(s: &str) -> String {
    maud::html! { (s) }.into_string()
}

#[test]
fn snapshot_digest() {
    let f = Fixture::new();
    let r = digest_of(&f, &sections(&f));
    assert_eq!(r.subject, "Daily Digest — 28 November 2026 — 5 stories");
    insta::assert_snapshot!("digest_html", fill(&r.html, " Ayesha"));
    insta::assert_snapshot!("digest_text", fill(&r.text, " Ayesha"));
}

#[test]
fn snapshot_breaking() {
    let f = Fixture::new();
    let a = &articles()[0];
    let r = render_breaking(&f.ctx(EditionKind::Breaking), a);
    assert_eq!(
        r.subject,
        "Breaking: Food minister resigns over wheat import inquiry"
    );
    assert_eq!(holes(&r.html, Hole::Name), 0);
    insta::assert_snapshot!("breaking_html", fill(&r.html, ""));
    insta::assert_snapshot!("breaking_text", fill(&r.text, ""));
}

#[test]
fn subject_counts_shown_stories_with_singular() {
    let f = Fixture::new();
    let one = digest::group(vec![articles().remove(5)], &[], 8, &f.site_url);
    assert_eq!(
        digest_of(&f, &one).subject,
        "Daily Digest — 28 November 2026 — 1 story"
    );
}

#[test]
fn layout_rules_for_email_clients() {
    let f = Fixture::new();
    let html = fill(&digest_of(&f, &sections(&f)).html, "");
    assert!(html.starts_with("<!DOCTYPE html>"));
    assert!(
        html.contains("<html lang=\"en\">"),
        "English publication is LTR"
    );
    assert!(html.contains("<meta name=\"color-scheme\" content=\"light dark\">"));
    assert!(html.contains("<table class=\"w cd\" role=\"presentation\" width=\"600\""));
    for banned in [
        "<script",
        "<form",
        "<iframe",
        "<object",
        "<embed",
        "display:flex",
        "display:grid",
        "position:",
        "<svg",
        "@font-face",
    ] {
        assert!(!html.contains(banned), "{banned}");
    }
    // Every image has alt text; the only image is the article's, alt = title.
    assert_eq!(html.matches("<img").count(), 1);
    assert!(html.contains(r#"alt="Rupee &amp; stocks rally as IMF tranche is approved""#));
    assert_eq!(
        html.matches("<img").count(),
        html.matches(" alt=\"").count()
    );
    // The header: publication and the edition's date in the list's zone.
    assert!(html.contains("The Daily Ledger"));
    assert!(html.contains("Daily Digest · Saturday, 28 November 2026"));
    assert!(html.contains("Hello,"));
    // Overflow link, breaking mark, local time in Karachi (20:15 UTC = 01:15 PKT next day).
    assert!(html.contains(r#"href="https://news.example.com/category/Politics""#));
    assert!(html.contains("1 more in Politics"));
    assert!(html.contains("Sent as breaking news"));
    assert!(html.contains("By Ayesha Khan · 01:15 PKT"), "{html}");
    assert!(
        html.contains(">27 Nov 15:15 PKT<"),
        "earlier days show the date"
    );
}

#[test]
fn non_https_images_are_not_loaded() {
    let f = Fixture::new();
    let mut a = articles().remove(3);
    a.image_url = Some("http://news.example.com/img/kse.jpg".into());
    let html = fill(&render_breaking(&f.ctx(EditionKind::Breaking), &a).html, "");
    assert!(!html.contains("<img"));
}

#[test]
fn footer_links_and_address_in_both_parts() {
    let f = Fixture::new();
    let r = digest_of(&f, &sections(&f));
    let html = fill(&r.html, "");
    let text = fill(&r.text, "");
    for body in [&html, &text] {
        assert!(body.contains(&format!(
            "https://lists.news.example.com/unsubscribe/{TOKEN}"
        )));
        assert!(body.contains(&format!(
            "https://lists.news.example.com/preferences/{TOKEN}"
        )));
        assert!(body.contains("https://news.example.com/newsletters/daily/2026-11-28"));
        assert!(body.contains("The Daily Ledger, 12 Mall Road, Lahore 54000, Pakistan"));
        assert!(squash(body).contains(
            "You receive this because you subscribed to Daily Digest from The Daily Ledger."
        ));
    }
    assert_eq!(holes(&r.html, Hole::Token), 2);
    assert_eq!(holes(&r.text, Hole::Token), 2);

    let mut no_web = f.ctx(EditionKind::Digest);
    no_web.web_view_url = None;
    let secs = sections(&f);
    let r = render_digest(&no_web, &secs.iter().collect::<Vec<_>>());
    assert!(!fill(&r.html, "").contains("View in your browser"));
    assert!(!fill(&r.text, "").contains("View in your browser"));
}

#[test]
fn greeting_name_contract() {
    let f = Fixture::new();
    let r = digest_of(&f, &sections(&f));
    assert_eq!(holes(&r.html, Hole::Name), 1);
    assert_eq!(holes(&r.text, Hole::Name), 1);
    assert!(fill(&r.html, " Ayesha &amp; co").contains("Hello Ayesha &amp; co,"));
    assert!(fill(&r.text, "").contains("\nHello,\n"));
    assert!(fill(&r.text, " Ayesha").contains("\nHello Ayesha,\n"));
}

#[test]
fn preheader_is_short_honest_and_hidden() {
    let f = Fixture::new();
    let r = digest_of(&f, &sections(&f));
    assert!(r.preheader.chars().count() < 150, "{}", r.preheader);
    assert!(
        r.preheader
            .starts_with("Rain expected in Karachi this weekend · Senate passes")
    );
    let html = fill(&r.html, "");
    assert!(html.contains(&format!(
        "<div style=\"display:none;max-height:0;overflow:hidden;mso-hide:all\">{}</div>",
        escape(&r.preheader)
    )));
    // Honest: every headline in it is a visible headline.
    for part in r.preheader.split(" · ") {
        assert!(html.matches(&escape(part)).count() >= 2, "{part}");
    }
    let b = render_breaking(&f.ctx(EditionKind::Breaking), &articles()[0]);
    assert!(
        b.preheader
            .starts_with("The minister stepped down hours after the inquiry report")
    );
}

#[test]
fn text_and_html_carry_the_same_stories() {
    let f = Fixture::new();
    let secs = sections(&f);
    let r = digest_of(&f, &secs);
    let html = fill(&r.html, "");
    let text = fill(&r.text, "");
    for s in &secs {
        assert!(html.contains(&escape(s.category.as_str())));
        assert!(text.contains(&format!("{}\n====", s.category.as_str())));
        for a in &s.articles {
            assert!(html.contains(&escape(&a.title)), "{}", a.title);
            assert!(text.contains(&a.title), "{}", a.title);
            assert!(html.contains(&format!("href=\"{}\"", a.url)));
            assert!(
                text.contains(&format!("\n{}\n", a.url)),
                "URL on its own line"
            );
        }
    }
    // Summaries: tags stripped in text, same words; summary links appear in both.
    assert!(text.contains("The minister stepped down hours after the inquiry report was tabled"));
    assert!(text.contains("The bill now goes to the President.\nRead the explainer <https://news.example.com/budget-explainer>."));
    assert!(html.contains("href=\"https://news.example.com/budget-explainer\""));
    for line in text.lines() {
        let w = textwrap::core::display_width(line);
        assert!(w <= 72 || !line.contains(' '), "over 72 columns: {line:?}");
    }
}

#[test]
fn hostile_article_text_is_neutralised() {
    let f = Fixture::new();
    let long: String = "Very long headline ".repeat(264);
    let mut hostile = vec![
        article(
            1,
            "Politics",
            20,
            "<script>alert(1)</script> and \"><img src=x onerror=alert(1)>",
            "<script>alert(2)</script><img src=x onerror=alert(3)><iframe src=https://evil.example></iframe><form action=https://evil.example><input></form>Still news",
        ),
        article(
            2,
            "Politics",
            21,
            "x\r\nBcc: victim@example.com",
            "line one\r\nBcc: victim@example.com",
        ),
        article(3, "Politics", 22, &long, "Long one."),
        article(
            4,
            "Sport",
            23,
            "🏏 Pakistan win 🎉 — پاکستان نے سیریز جیت لی",
            "Mixed English اور اردو text 👍",
        ),
    ];
    hostile[0].url = "javascript:alert(1)".into();
    hostile[1].author = Some("Eve\r\nX-Injected: yes".into());
    assert!(long.chars().count() >= 5000);
    let secs = digest::group(hostile.clone(), &[], 8, &f.site_url);
    let r = digest_of(&f, &secs);
    let html = fill(&r.html, "");
    let text = fill(&r.text, "");
    assert!(!html.contains("<script"), "{html}");
    for tag in tags(&html) {
        let lower = tag.to_ascii_lowercase();
        assert!(
            !lower.contains("onerror") && !lower.contains("script"),
            "{tag}"
        );
    }
    assert!(
        !html.contains("<img"),
        "no image came from the hostile text"
    );
    assert!(!html.contains("<iframe") && !html.contains("<form") && !html.contains("<input"));
    assert!(!html.contains("javascript:"));
    assert!(html.contains(
        "&lt;script&gt;alert(1)&lt;/script&gt; and &quot;&gt;&lt;img src=x onerror=alert(1)&gt;"
    ));
    assert!(html.contains("Still news"));
    assert!(html.contains("x Bcc: victim@example.com"));
    assert!(html.contains("By Eve X-Injected: yes"));
    assert!(html.contains("🏏 Pakistan win 🎉 — پاکستان نے سیریز جیت لی"));
    assert!(html.contains("Mixed English اور اردو text 👍"));
    assert!(
        text.contains("<script>alert(1)</script> and \"><img src=x onerror=alert(1)>"),
        "text part is not markup"
    );
    assert!(text.contains("x Bcc: victim@example.com"));
    assert!(!text.contains('\r') && !html.contains('\r'));
    assert!(!text.contains("\nBcc:") && !html.contains("\nBcc:"));
    assert!(!r.subject.contains(['\r', '\n']));

    for a in &hostile {
        let b = render_breaking(&f.ctx(EditionKind::Breaking), a);
        assert!(!b.subject.chars().any(char::is_control), "{:?}", b.subject);
        assert!(b.subject.chars().count() <= 200);
        assert!(!fill(&b.html, "").contains("<script"));
    }
    let b = render_breaking(&f.ctx(EditionKind::Breaking), &hostile[1]);
    assert_eq!(b.subject, "Breaking: x Bcc: victim@example.com");
    let b = render_breaking(&f.ctx(EditionKind::Breaking), &hostile[2]);
    assert!(b.subject.ends_with('…'));
}

#[test]
fn stored_text_cannot_forge_a_hole() {
    let f = Fixture::new();
    let mut a = article(
        1,
        "Politics",
        20,
        "\u{1}TOKEN\u{1} \u{1}NAME\u{1}",
        "&#1;TOKEN&#1; <b>\u{1}NAME\u{1}</b> <a href=\"https://x.pk/\u{1}TOKEN\u{1}\">l</a>",
    );
    a.author = Some("\u{1}TOKEN\u{1}".into());
    a.url = "https://news.example.com/\u{1}TOKEN\u{1}".into();
    let mut pub_cfg = f.publication.clone();
    pub_cfg.name = "\u{1}TOKEN\u{1}".into();
    pub_cfg.postal_address = "\u{1}NAME\u{1}".into();
    let mut ctx = f.ctx(EditionKind::Digest);
    ctx.publication = &pub_cfg;
    ctx.list_name = "\u{1}TOKEN\u{1}";
    ctx.list_description = "\u{1}NAME\u{1}";
    ctx.web_view_url = Some("https://x.pk/\u{1}TOKEN\u{1}".into());
    let secs = digest::group(vec![a.clone()], &[], 8, &f.site_url);
    let r = render_digest(&ctx, &secs.iter().collect::<Vec<_>>());
    for t in [&r.html, &r.text] {
        assert_eq!(holes(t, Hole::Token), 2, "only the two footer links");
        assert_eq!(holes(t, Hole::Name), 1, "only the greeting");
        assert!(!fill(t, "").contains('\u{1}'));
    }
    let b = render_breaking(&ctx, &a);
    assert_eq!(holes(&b.html, Hole::Token), 2);
    assert_eq!(holes(&b.html, Hole::Name), 0);
    assert_eq!(holes(&b.text, Hole::Name), 0);
}

/// A realistic 300-character summary.
fn summary_300(i: i64) -> String {
    let s = format!(
        "Officials said on Friday that the provincial government would review the proposal \
         (item {i}) before the next session, after traders, farmers' groups and opposition \
         lawmakers raised concerns about prices, supply and the timeline. A final decision is \
         expected within the coming two weeks, they added."
    );
    s.chars().take(300).collect()
}

#[test]
fn forty_article_digest_stays_under_gmail_clipping() {
    let f = Fixture::new();
    let cats = ["General News", "Politics", "Business", "Sport", "World"];
    let many: Vec<ArticleView> = (0..40)
        .map(|i| {
            let mut a = article(
                100 + i,
                cats[(i % 5) as usize],
                (i % 24) as u32,
                &format!("Provincial cabinet approves revised plan for wheat procurement and flour prices, item {i}"),
                &summary_300(i),
            );
            a.url = format!("https://news.example.com/2026/11/27/provincial-cabinet-approves-revised-plan-{i}");
            a.author = Some("Staff Reporter".into());
            if i % 4 == 0 {
                a.image_url = Some(format!("https://news.example.com/images/2026/11/27/story-{i}-960x540.jpg"));
            }
            a
        })
        .collect();
    let secs = digest::group(many, &[], 8, &f.site_url);
    assert_eq!(secs.iter().map(|s| s.articles.len()).sum::<usize>(), 40);
    let r = digest_of(&f, &secs);
    let html = fill(&r.html, " Muhammad Abdullah Khan");
    assert!(html.len() < 100_000, "{} bytes", html.len());
    eprintln!("40-article digest: {} bytes of HTML", html.len());
    assert!(r.subject.ends_with("40 stories"));
}

#[test]
fn urdu_story_reads_right_to_left_in_an_english_digest() {
    let f = Fixture::new();
    let html = fill(&digest_of(&f, &sections(&f)).html, "");
    let cell = row(&html, "پاکستان نے سیریز جیت لی");
    assert!(
        cell.contains(r#"lang="ur" dir="rtl" align="right""#),
        "{cell}"
    );
    assert!(cell.contains("direction:rtl;text-align:right"), "{cell}");
    let english = row(&html, "Rain expected");
    assert!(!english.contains("dir="), "{english}");
}

#[test]
fn urdu_publication_is_rtl_throughout() {
    let mut f = Fixture::new();
    f.language = Language::Ur;
    let r = digest_of(&f, &sections(&f));
    let html = fill(&r.html, "");
    assert!(html.contains(r#"<html lang="ur" dir="rtl">"#));
    let cells: Vec<&str> = html.lines().filter(|l| l.starts_with("<tr><td")).collect();
    assert!(cells.len() > 5);
    for c in cells {
        assert!(
            c.contains("dir=\"rtl\"") || c.contains("dir=\"ltr\""),
            "{c}"
        );
    }
    // English stories keep their direction inside the Urdu document.
    let english = row(&html, "Rain expected");
    assert!(english.contains(r#"lang="en" dir="ltr""#), "{english}");
    assert!(english.contains("direction:ltr;text-align:left"));
    let urdu = row(&html, "سیریز");
    assert!(!urdu.contains("lang="), "same as the document: {urdu}");
    assert!(urdu.contains("dir=\"rtl\""));
}

#[test]
fn variant_renders_only_chosen_sections() {
    let f = Fixture::new();
    let secs = sections(&f);
    let chosen = CategorySet::parse_list("sport, business").unwrap();
    let picked = digest::variant(&secs, Some(&chosen));
    let r = render_digest(&f.ctx(EditionKind::Digest), &picked);
    let html = fill(&r.html, "");
    let text = fill(&r.text, "");
    assert_eq!(r.subject, "Daily Digest — 28 November 2026 — 2 stories");
    for body in [&html, &text] {
        assert!(body.contains("Sport") && body.contains("Business"));
        assert!(!body.contains("Politics") && !body.contains("General News"));
        assert!(!body.contains("Food minister"));
    }
}

/// Words a reader sees, lower-cased, without punctuation or URLs.
fn words(s: &str) -> std::collections::BTreeSet<String> {
    s.split_whitespace()
        .filter(|w| !w.contains("://"))
        .map(|w| {
            w.trim_matches(|c: char| !c.is_alphanumeric())
                .to_lowercase()
        })
        .filter(|w| !w.is_empty())
        .collect()
}

/// The visible text of our HTML: no head, no hidden preheader, no tags, entities decoded.
fn visible_text(html: &str) -> String {
    let body = html.split("</head>").nth(1).unwrap();
    let body = match body.split_once("mso-hide:all\">") {
        Some((_, rest)) => rest.split_once("</div>").unwrap().1,
        None => body,
    };
    let mut out = String::new();
    let mut in_tag = false;
    for c in body.chars() {
        match c {
            '<' => in_tag = true,
            '>' if in_tag => {
                in_tag = false;
                out.push(' ');
            }
            _ if !in_tag => out.push(c),
            _ => {}
        }
    }
    out.replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&amp;", "&")
}

#[test]
fn both_parts_say_the_same_words() {
    let f = Fixture::new();
    let digest = digest_of(&f, &sections(&f));
    let breaking = render_breaking(&f.ctx(EditionKind::Breaking), &articles()[1]);
    for r in [digest, breaking] {
        let html = words(&visible_text(&fill(&r.html, " Ayesha")));
        let text = words(&fill(&r.text, " Ayesha"));
        let only_html: Vec<_> = html.difference(&text).collect();
        let only_text: Vec<_> = text.difference(&html).collect();
        assert!(
            only_html.is_empty() && only_text.is_empty(),
            "{only_html:?} {only_text:?}"
        );
    }
}
