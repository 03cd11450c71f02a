//! An Urdu list's email: every fixed word from the Urdu catalogue, right to left throughout,
//! Latin names isolated, dates in either digit system.

use chrono::{TimeZone, Utc};
use chrono_tz::Asia::Karachi;

use super::*;
use crate::config::Publication;
use crate::digest::{self, ArticleView, Section};
use crate::domain::Category;
use crate::i18n::{Catalogue, Digits, Language};

const TOKEN: &str = "AAAAAAAAAAAAAAAAAAAAAA";

struct Urdu {
    publication: Publication,
    catalogue: Catalogue,
    public_url: WebUrl,
    site_url: WebUrl,
}

impl Urdu {
    fn new(digits: Digits) -> Self {
        let publication = Publication {
            language: Language::Ur,
            digits,
            ..Default::default()
        };
        Self {
            publication,
            catalogue: Catalogue::shipped(digits),
            public_url: WebUrl::parse("https://lists.news.example.com/").unwrap(),
            site_url: WebUrl::parse("https://news.example.com").unwrap(),
        }
    }

    fn ctx(&self, kind: EditionKind) -> EditionContext<'_> {
        EditionContext {
            publication: &self.publication,
            strings: self.catalogue.strings(Language::Ur),
            public_url: &self.public_url,
            site_url: &self.site_url,
            list_name: "روزانہ خلاصہ",
            list_description: "پاکستان اور دنیا کی اہم خبریں، ہر صبح سات بجے۔",
            kind,
            date: Karachi.with_ymd_and_hms(2026, 12, 1, 7, 0, 0).unwrap(),
            web_view_url: Some("https://news.example.com/ur/newsletters/2026-12-01".into()),
        }
    }

    fn sections(&self) -> Vec<Section> {
        let order = [Category::parse("قومی خبریں").unwrap()];
        digest::group(stories(), &order, 2, &self.site_url)
    }

    fn digest(&self) -> Rendered {
        let sections = self.sections();
        let refs: Vec<&Section> = sections.iter().collect();
        render_digest(&self.ctx(EditionKind::Digest), &refs)
    }
}

/// A story published at `hour`:15 UTC on `day` (30 = 30 November, else December).
fn story(id: i64, category: &str, day: u32, hour: u32, title: &str, summary: &str) -> ArticleView {
    let month = if day == 30 { 11 } else { 12 };
    ArticleView {
        id,
        url: format!("https://news.example.com/ur/{id}"),
        title: title.into(),
        summary: summary.into(),
        author: None,
        category: Category::parse(category).unwrap(),
        language: Some("ur".into()),
        image_url: None,
        published_at: Utc.with_ymd_and_hms(2026, month, day, hour, 15, 0).unwrap(),
        was_breaking: false,
    }
}

fn stories() -> Vec<ArticleView> {
    let mut budget = story(
        1,
        "قومی خبریں",
        1,
        0,
        "قومی اسمبلی نے نظرثانی شدہ بجٹ منظور کر لیا",
        "ایوان نے رات گئے اجلاس میں مالیاتی بل کثرت رائے سے منظور کر لیا۔",
    );
    budget.author = Some("Ayesha Khan".into());
    budget.was_breaking = true;
    let mut wheat = story(
        2,
        "قومی خبریں",
        30,
        16,
        "گندم کی درآمد کی تحقیقات، وزیر خوراک مستعفی",
        "<p>تحقیقاتی رپورٹ ایوان میں پیش ہونے کے چند گھنٹے بعد وزیر نے استعفیٰ دے دیا۔</p>",
    );
    wheat.author = Some("بلال احمد".into());
    let third = story(
        3,
        "قومی خبریں",
        30,
        9,
        "کراچی میں ہفتے کے آخر میں بارش کا امکان",
        "محکمہ موسمیات نے اتوار کو ہلکی بارش کی پیش گوئی کی ہے۔",
    );
    let cricket = story(
        4,
        "کھیل",
        1,
        1,
        "پاکستان نے نیوزی لینڈ کو چھ وکٹوں سے ہرا دیا",
        "راولپنڈی میں بابر اعظم نے ناقابل شکست اٹھاسی رنز بنائے۔",
    );
    let mut english = story(
        5,
        "کھیل",
        1,
        0,
        "Shaheen Afridi ruled out of the final",
        "The fast bowler has a hamstring strain.",
    );
    english.language = Some("en".into());
    vec![budget, wheat, third, cricket, english]
}

fn fill(t: &Template, name: &str) -> String {
    t.fill(|h| match h {
        Hole::Token => TOKEN.to_owned(),
        Hole::Name => name.to_owned(),
    })
}

/// The visible text of an HTML part: tags dropped, entities left (none of the checked words
/// has one).
fn visible(html: &str) -> String {
    let mut out = String::new();
    let mut in_tag = false;
    for c in html.chars() {
        match c {
            '<' => in_tag = true,
            '>' => {
                in_tag = false;
                out.push(' ');
            }
            c if !in_tag => out.push(c),
            _ => {}
        }
    }
    // The stylesheet and the title are not prose a reader sees in the body.
    out
}

fn has_word(haystack: &str, phrase: &str) -> bool {
    haystack.match_indices(phrase).any(|(i, _)| {
        let before = haystack[..i].chars().next_back();
        let after = haystack[i + phrase.len()..].chars().next();
        !before.is_some_and(char::is_alphanumeric) && !after.is_some_and(char::is_alphanumeric)
    })
}

#[test]
fn snapshot_urdu_digest() {
    let u = Urdu::new(Digits::Latn);
    let r = u.digest();
    assert_eq!(r.subject, "روزانہ خلاصہ — 1 دسمبر 2026 — 4 خبریں");
    insta::assert_snapshot!("urdu_digest_html", fill(&r.html, " Ayesha"));
    insta::assert_snapshot!("urdu_digest_text", fill(&r.text, " Ayesha"));
}

#[test]
fn an_urdu_email_has_no_english_fixed_word() {
    let u = Urdu::new(Digits::Latn);
    let r = u.digest();
    let the_story = &stories()[0];
    let breaking = render_breaking(&u.ctx(EditionKind::Breaking), the_story);
    // The English story's own words are content, not fixed words: leave its row out.
    let html: String = fill(&r.html, "")
        .lines()
        .filter(|l| !l.contains("Shaheen"))
        .collect::<Vec<_>>()
        .join("\n");
    let text = fill(&r.text, "");
    let text: String = text
        .split("\n\n")
        .filter(|p| !p.contains("Shaheen"))
        .collect::<Vec<_>>()
        .join("\n\n");
    let outputs = [
        ("digest subject", r.subject.clone()),
        ("digest preheader", r.preheader.clone()),
        ("digest html", visible(&html)),
        ("digest text", text),
        ("breaking subject", breaking.subject.clone()),
        ("breaking html", visible(&fill(&breaking.html, ""))),
        ("breaking text", fill(&breaking.text, "")),
    ];
    let mut english = Catalogue::shipped_words(Language::En);
    // Dates come from CLDR, not the catalogue: no English month or weekday either.
    english.extend(
        [
            "December", "November", "Dec", "Nov", "Tuesday", "Monday", "PKT",
        ]
        .map(String::from),
    );
    assert!(english.len() > 15, "{english:?}");
    for (what, out) in &outputs {
        // URLs are data (a web-view address may well say "newsletters").
        let out: String = out
            .split(' ')
            .flat_map(|w| w.split('\n'))
            .filter(|w| !w.trim_start_matches('\u{200F}').starts_with("http"))
            .collect::<Vec<_>>()
            .join(" ");
        for word in &english {
            assert!(
                !has_word(&out, word),
                "{what} has the English {word:?}:\n{out}"
            );
        }
    }
}

#[test]
fn urdu_email_is_right_to_left_with_latin_isolated() {
    let u = Urdu::new(Digits::Latn);
    let html = fill(&u.digest().html, " Ayesha");
    assert!(html.contains(r#"<html lang="ur" dir="rtl">"#), "{html}");
    assert!(html.contains("السلام علیکم<bdi> Ayesha</bdi>،"), "{html}");
    assert!(html.contains("تحریر: <bdi>Ayesha Khan</bdi>"), "{html}");
    assert!(html.contains("<bdi>The Daily Ledger</bdi>"), "{html}");
    // The English story inside keeps its own language and direction; its byline line is the
    // list's, right to left.
    let english = html.lines().find(|l| l.contains("Shaheen")).unwrap();
    assert!(english.contains(r#"lang="en" dir="ltr""#), "{english}");
    assert!(english.contains(r#"<p class="mu" dir="rtl""#), "{english}");
    // Every cell declares its direction and the right-aligned Nastaliq/Naskh stack.
    for cell in html.lines().filter(|l| l.starts_with("<tr><td")) {
        assert!(
            cell.contains("dir=\"rtl\"") || cell.contains("dir=\"ltr\""),
            "{cell}"
        );
    }
    assert!(html.contains("'Noto Nastaliq Urdu'"));
}

#[test]
fn urdu_text_part_marks_lines_that_start_with_latin() {
    let u = Urdu::new(Digits::Latn);
    let text = fill(&u.digest().text, "");
    let mut urls = 0;
    for line in text.lines() {
        let bare = line.trim_start_matches('\u{200F}');
        if bare.starts_with("https://") {
            urls += 1;
            assert!(line.starts_with('\u{200F}'), "{line:?}");
        }
        if bare.starts_with('ا') || bare.starts_with('ق') {
            assert!(!line.starts_with('\u{200F}'), "{line:?}");
        }
    }
    assert!(urls >= 5, "{text}");
    assert!(
        text.contains("\u{200F}https://lists.news.example.com/unsubscribe/AAAA"),
        "{text}"
    );
}

#[test]
fn urdu_dates_and_counts_in_either_digit_system() {
    let latn = Urdu::new(Digits::Latn).digest();
    assert!(latn.subject.contains("1 دسمبر 2026"), "{}", latn.subject);
    let text = fill(&latn.text, "");
    assert!(text.contains("منگل، 1 دسمبر 2026"), "{text}");
    assert!(text.contains("30 نومبر، 21:15"), "{text}");

    let arabext = Urdu::new(Digits::Arabext).digest();
    assert_eq!(arabext.subject, "روزانہ خلاصہ — ۱ دسمبر ۲۰۲۶ — ۴ خبریں");
    let text = fill(&arabext.text, "");
    assert!(text.contains("منگل، ۱ دسمبر ۲۰۲۶"), "{text}");
    assert!(text.contains("قومی خبریں کی ایک اور خبر"), "{text}");
    assert!(text.contains("۰۵:۱۵"), "{text}");
}
