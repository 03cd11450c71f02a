//! Breaking news goes once per article to each breaking list, never to digest-only lists,
//! and never when it is stale.

use std::collections::HashMap;

use crate::{Db, config, dbt};
use chrono::{Duration, Utc};
use dispatch::daemon::breaking_tick;
use dispatch::domain::ListSlug;
use dispatch::store::ListSpec;

#[tokio::test]
async fn breaking_news_goes_once_to_each_breaking_list_and_never_when_stale() {
    let cfg = config();
    let mut db = Db::new().await;
    let mk = |breaking: bool, categories: Option<&str>| ListSpec {
        sends_breaking: Some(breaking),
        categories: categories.map(|c| Some(dispatch::domain::CategorySet::parse_list(c).unwrap())),
        ..Default::default()
    };
    let mut lists = HashMap::new();
    for (slug, spec, readers) in [
        ("alerts", mk(true, None), 3),
        ("politics-alerts", mk(true, Some("Politics")), 2),
        ("daily", mk(false, None), 4),
    ] {
        let l = db
            .store
            .create_list(&ListSlug::parse(slug).unwrap(), &spec)
            .await
            .unwrap();
        db.subscribe(&l, slug, readers).await;
        lists.insert(slug, l);
    }
    let breaking_lists_of = |db: &Db, article: i64| {
        let raw = db.raw.clone();
        async move {
            let rows: Vec<(String, i64)> = sqlx::query_as(
                "SELECT l.slug, COUNT(d.id) FROM editions e JOIN lists l ON l.id = e.list_id
                 LEFT JOIN deliveries d ON d.edition_id = e.id
                 WHERE e.breaking_article_id = $1 GROUP BY e.id ORDER BY l.slug",
            )
            .bind(article)
            .fetch_all(&raw)
            .await
            .unwrap();
            rows
        }
    };

    // A non-breaking story is not breaking news.
    db.article("calm", Utc::now(), "Politics", false).await;
    assert!(
        breaking_tick(&db.store, &cfg, Utc::now())
            .await
            .unwrap()
            .is_empty()
    );

    // A minister resigns.
    let resign = db.article("resigns", Utc::now(), "Politics", true).await;
    let created = breaking_tick(&db.store, &cfg, Utc::now()).await.unwrap();
    assert_eq!(created.len(), 2, "one edition per breaking list");
    assert_eq!(
        breaking_lists_of(&db, resign).await,
        [("alerts".to_owned(), 3), ("politics-alerts".to_owned(), 2)],
        "the daily list (no breaking news) gets none"
    );

    // Polled again, and after a restart: nothing new.
    assert!(
        breaking_tick(&db.store, &cfg, Utc::now())
            .await
            .unwrap()
            .is_empty()
    );
    db.restart().await;
    assert!(
        breaking_tick(&db.store, &cfg, Utc::now())
            .await
            .unwrap()
            .is_empty()
    );

    // A sport story only reaches the list that carries sport; repeated polls stay quiet even
    // though the politics-only list never gets an edition of it.
    let sport = db.article("final", Utc::now(), "Sport", true).await;
    assert_eq!(
        breaking_tick(&db.store, &cfg, Utc::now())
            .await
            .unwrap()
            .len(),
        1
    );
    for _ in 0..3 {
        assert!(
            breaking_tick(&db.store, &cfg, Utc::now())
                .await
                .unwrap()
                .is_empty()
        );
    }
    assert_eq!(
        breaking_lists_of(&db, sport).await,
        [("alerts".to_owned(), 3)]
    );

    // A breaking story stored more than max_lateness ago (the daemon was down) is old news.
    let stale = db.article("stale", Utc::now(), "Politics", true).await;
    sqlx::query("UPDATE articles SET created_at = $1 WHERE id = $2")
        .bind(dbt(Utc::now() - Duration::hours(7)))
        .bind(stale)
        .execute(&db.raw)
        .await
        .unwrap();
    db.restart().await;
    assert!(
        breaking_tick(&db.store, &cfg, Utc::now())
            .await
            .unwrap()
            .is_empty()
    );
    assert!(breaking_lists_of(&db, stale).await.is_empty());

    // Neither the daily list nor anyone else got a breaking edition by another route.
    let daily = db.editions(&lists["daily"]).await;
    assert!(daily.is_empty(), "{daily:?}");
    let total: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM editions")
        .fetch_one(&db.raw)
        .await
        .unwrap();
    assert_eq!(total, 3);
}
