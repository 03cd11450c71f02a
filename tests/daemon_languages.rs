//! One daemon, two lists in two languages: the scheduler builds the Urdu list's digest at its
//! own 06:00 and the English list's at its 07:00 (Asia/Karachi), each with its subject in its
//! own language from the same store and configuration.

mod support;

use std::collections::{BTreeMap, HashSet};

use chrono::{DateTime, Utc};
use dispatch::config::Config;
use dispatch::daemon::schedule_tick;
use dispatch::domain::{EmailAddress, ListSlug, Timezone};
use dispatch::i18n::Language;
use dispatch::schedule::Schedule;
use dispatch::store::subscribers::NewSubscription;
use dispatch::store::{ListSpec, NewArticle, Store};
use support::db::{TempDb, raw_pool};

fn t(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
}

async fn list(
    store: &Store,
    raw: &sqlx::SqlitePool,
    slug: &str,
    name: &str,
    at: &str,
    lang: Language,
) -> i64 {
    let spec = ListSpec {
        name: Some(name.into()),
        schedule: Some(Some(Schedule::parse(at).unwrap())),
        timezone: Some(Timezone::parse("Asia/Karachi").unwrap()),
        language: Some(lang),
        ..Default::default()
    };
    let l = store
        .create_list(&ListSlug::parse(slug).unwrap(), &spec)
        .await
        .unwrap();
    // Slots before a list's creation are ignored: backdate it.
    sqlx::query("UPDATE lists SET created_at = '2026-11-01T00:00:00Z' WHERE id = $1")
        .bind(l.id)
        .execute(raw)
        .await
        .unwrap();
    let reader = NewSubscription {
        email: EmailAddress::parse(&format!("reader@{slug}.example.org")).unwrap(),
        name: None,
        categories: None,
    };
    store
        .subscribe_batch(l.id, &[reader], "test", false)
        .await
        .unwrap();
    l.id
}

async fn article(
    store: &Store,
    raw: &sqlx::SqlitePool,
    ext: &str,
    title: &str,
    lang: &str,
    at: DateTime<Utc>,
) {
    let (id, _) = store
        .insert_article(&NewArticle {
            external_id: ext.into(),
            url: format!("https://news.example.com/{ext}"),
            title: title.into(),
            summary: String::new(),
            author: None,
            category: "Politics".into(),
            language: Some(lang.into()),
            image_url: None,
            published_at: at,
            breaking: false,
        })
        .await
        .unwrap();
    sqlx::query("UPDATE articles SET created_at = $1 WHERE id = $2")
        .bind(dispatch::domain::db_time(at))
        .bind(id)
        .execute(raw)
        .await
        .unwrap();
}

#[tokio::test]
async fn one_daemon_sends_an_english_and_an_urdu_list_at_their_own_times() {
    let cfg = Config::from_parts("test", "", &BTreeMap::new()).unwrap();
    let db = TempDb::new();
    let store = db.store().await;
    let raw = raw_pool(db.path()).await;
    let urdu = list(
        &store,
        &raw,
        "urdu",
        "روزانہ خلاصہ",
        "0 6 * * *",
        Language::Ur,
    )
    .await;
    let english = list(
        &store,
        &raw,
        "daily",
        "Daily Digest",
        "0 7 * * *",
        Language::En,
    )
    .await;
    let night = t("2026-11-30T20:00:00Z");
    article(
        &store,
        &raw,
        "a",
        "قومی اسمبلی نے بجٹ منظور کر لیا",
        "ur",
        night,
    )
    .await;
    article(&store, &raw, "b", "Senate passes the budget", "en", night).await;

    let mut reported = HashSet::new();
    // 06:00:30 PKT = 01:00:30 UTC: the Urdu list's slot only.
    let first = schedule_tick(&store, &cfg, t("2026-12-01T01:00:30Z"), &mut reported)
        .await
        .unwrap();
    assert_eq!(first.len(), 1, "{first:?}");
    let e = store.edition(first[0]).await.unwrap();
    assert_eq!(e.list_id, urdu);
    assert_eq!(e.subject, "روزانہ خلاصہ — 1 دسمبر 2026 — 2 خبریں");

    // 07:00:30 PKT: the English list's.
    let second = schedule_tick(&store, &cfg, t("2026-12-01T02:00:30Z"), &mut reported)
        .await
        .unwrap();
    assert_eq!(second.len(), 1, "{second:?}");
    let e = store.edition(second[0]).await.unwrap();
    assert_eq!(e.list_id, english);
    assert_eq!(e.subject, "Daily Digest — 1 December 2026 — 2 stories");
}
