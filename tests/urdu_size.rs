//! A 40-story Urdu digest as sent (encoded, headers included) stays under Gmail's ~102 KB
//! clip, its HTML part and so its unsubscribe link inside: the Urdu parts go base64.

use chrono::{TimeZone, Utc};
use chrono_tz::Asia::Karachi;
use dispatch::config::Publication;
use dispatch::digest::{self, ArticleView, Section};
use dispatch::domain::{Category, EmailAddress, WebUrl};
use dispatch::i18n::{Catalogue, Digits, Language};
use dispatch::mail::mime::{CommonHeaders, MessageTemplate, Recipient};
use dispatch::render::{EditionContext, EditionKind, render_digest};

/// Gmail clips past about 102 KB; budget on the encoded size, in decimal kilobytes.
const GMAIL_CLIP: usize = 102 * 1000;
const CATEGORIES: [&str; 4] = ["قومی خبریں", "کاروبار", "کھیل", "دنیا"];

/// 40 Urdu stories, 10 in each of four sections, each a 70-character headline and a
/// one-sentence (25-word) summary, as digests carry them.
fn forty_stories() -> Vec<ArticleView> {
    let sentence = "اسلام آباد: وزیر اعظم نے آج صدر کو اپنا استعفیٰ پیش کر دیا، جس کے بعد نئی حکومت کی تشکیل پر مشاورت شروع ہو گئی۔";
    (0..40)
        .map(|i| ArticleView {
            id: i + 1,
            url: format!(
                "https://news.example.com/2026/12/01/story-{i}-finance-minister-resigns-after-budget-talks"
            ),
            title: format!("وزیر اعظم نے استعفیٰ دے دیا، نئی حکومت کی تشکیل پر مشاورت شروع ({i})"),
            summary: sentence.into(),
            author: Some("اسٹاف رپورٹر".into()),
            category: Category::parse(CATEGORIES[i as usize % 4]).unwrap(),
            language: Some("ur".into()),
            image_url: None,
            published_at: Utc.with_ymd_and_hms(2026, 12, 1, 1, 15, 0).unwrap(),
            was_breaking: false,
        })
        .collect()
}

#[test]
fn a_40_story_urdu_digest_is_sent_under_gmails_clip_with_its_unsubscribe_link() {
    let publication = Publication {
        language: Language::Ur,
        ..Default::default()
    };
    let catalogue = Catalogue::shipped(Digits::Latn);
    let public_url = WebUrl::parse("https://lists.news.example.com/").unwrap();
    let site_url = WebUrl::parse("https://news.example.com").unwrap();
    let ctx = EditionContext {
        publication: &publication,
        strings: catalogue.strings(Language::Ur),
        public_url: &public_url,
        site_url: &site_url,
        list_name: "روزانہ خلاصہ",
        list_description: "پاکستان اور دنیا کی اہم خبریں، ہر صبح سات بجے۔",
        kind: EditionKind::Digest,
        date: Karachi.with_ymd_and_hms(2026, 12, 1, 7, 0, 0).unwrap(),
        web_view_url: None,
    };
    let order: Vec<Category> = CATEGORIES
        .iter()
        .map(|c| Category::parse(c).unwrap())
        .collect();
    let sections = digest::group(forty_stories(), &order, 10, &site_url);
    let refs: Vec<&Section> = sections.iter().collect();
    let r = render_digest(&ctx, &refs);
    assert!(r.subject.ends_with("40 خبریں"), "{}", r.subject);
    let headers = CommonHeaders {
        from: "The Daily Ledger <digest@news.example.com>"
            .parse()
            .unwrap(),
        reply_to: None,
        subject: r.subject.clone(),
        date: Utc::now(),
        list_id: "روزانہ خلاصہ <urdu.news.example.com>".into(),
        public_url: public_url.clone(),
        unsubscribe_mailbox: "unsubscribe@news.example.com".into(),
        message_id_domain: "news.example.com".into(),
        feedback_id: Some("urdu:digest:dailyledger".into()),
    };
    let mt = MessageTemplate::new(&headers, &r.text, &r.html);
    let to = EmailAddress::parse("ayesha.khan@example.pk").unwrap();
    let mut msg = Vec::new();
    mt.personalise(
        &Recipient {
            to: &to,
            name: Some("عائشہ خان"),
            token: "AAAAAAAAAAAAAAAAAAAAAA",
            message_id: "<e1.s1.x@news.example.com>",
        },
        &mut msg,
    );
    let s = String::from_utf8(msg).unwrap();
    assert_eq!(
        s.matches("Content-Transfer-Encoding: base64").count(),
        2,
        "the Urdu parts go base64"
    );
    assert!(
        s.len() < GMAIL_CLIP,
        "a 40-story Urdu digest is {} bytes as sent",
        s.len()
    );
    // The HTML part (which Gmail clips), footer and unsubscribe link included, ends inside
    // the limit: the closing boundary comes after it.
    let end = s.rfind("\r\n--=_dispatch_").unwrap();
    assert!(end < GMAIL_CLIP);
    println!("40-story Urdu digest: {} bytes as sent", s.len());
}
