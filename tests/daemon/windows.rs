//! Contiguous windows: over several days of ticks, every article lands in exactly one digest.

use std::collections::{HashMap, HashSet};

use crate::{Db, config, slots, t};
use chrono::{DateTime, Duration, Utc};
use dispatch::daemon::schedule_tick;

#[tokio::test]
async fn every_article_lands_in_exactly_one_digest_over_several_days() {
    let cfg = config();
    let mut db = Db::new().await;
    let list = db
        .list("morning", "0 6 * * *", "UTC", t("2026-08-01T00:00:00Z"))
        .await;
    db.subscribe(&list, "reader", 1).await;

    // The daemon ticks every 20 minutes for four days (restarting once a day); the CMS
    // publishes every 70 minutes, plus a story exactly at each slot instant and one at the
    // very second of the tick that builds the edition.
    let start = t("2026-08-01T00:10:00Z");
    let end = t("2026-08-05T00:10:00Z");
    let categories = ["General News", "Politics", "Business", "Sport"];
    let mut published: Vec<(i64, DateTime<Utc>)> = Vec::new();
    let mut next_story = t("2026-07-31T00:00:00Z");
    let mut n = 0;
    let mut now = start;
    let mut reported = HashSet::new();
    let mut built = Vec::new();
    while now < end {
        while next_story <= now {
            let cat = categories[n % categories.len()];
            published.push((
                db.article(&format!("s{n}"), next_story, cat, false).await,
                next_story,
            ));
            n += 1;
            next_story += Duration::minutes(70);
        }
        if now.format("%H:%M").to_string() == "06:10" {
            let slot = now - Duration::minutes(10);
            published.push((
                db.article(&format!("slot{n}"), slot, "Politics", false)
                    .await,
                slot,
            ));
            published.push((
                db.article(&format!("tick{n}"), now, "Sport", false).await,
                now,
            ));
            n += 1;
        }
        built.extend(
            schedule_tick(&db.store, &cfg, now, &mut reported)
                .await
                .unwrap(),
        );
        if now.format("%H:%M").to_string() == "12:10" {
            db.restart().await;
            reported.clear();
        }
        now += Duration::minutes(20);
    }
    assert_eq!(built.len(), 4, "one per day");

    let editions = db.editions(&list).await;
    assert_eq!(
        slots(&editions),
        [
            "2026-08-01T06:00:00Z",
            "2026-08-02T06:00:00Z",
            "2026-08-03T06:00:00Z",
            "2026-08-04T06:00:00Z",
        ]
    );
    for w in editions.windows(2) {
        assert_eq!(w[1].window_start, w[0].window_end, "contiguous windows");
    }
    let mut seen: HashMap<i64, Vec<i64>> = HashMap::new();
    for e in &editions {
        let ids = db.article_ids(e.id).await;
        assert_eq!(ids.len() as i64, e.article_count);
        for a in ids {
            seen.entry(a).or_default().push(e.id);
        }
    }
    let first_start = editions[0].window_start.utc();
    let last_end = editions[editions.len() - 1].window_end.utc();
    let mut covered = 0;
    for (id, at) in &published {
        let in_editions = seen.get(id).cloned().unwrap_or_default();
        if *at > first_start && *at <= last_end {
            covered += 1;
            assert_eq!(
                in_editions.len(),
                1,
                "article {id} at {at}: {in_editions:?}"
            );
        } else {
            assert!(
                in_editions.is_empty(),
                "article {id} at {at} outside every window"
            );
        }
    }
    assert!(covered > 60, "{covered}");
    assert_eq!(seen.len(), covered);
}
