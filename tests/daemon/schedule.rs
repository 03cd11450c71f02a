//! A slot gives one edition, however often the daemon ticks or restarts and however many
//! processes share the file (Asia/Karachi); one edition a day over both 2026 DST transitions
//! in Europe/London; schedule changes and new lists apply on the next tick.

use std::collections::HashSet;

use crate::{Db, config, dbt, slots, t};
use chrono::{DateTime, Duration, Utc};
use dispatch::config::Config;
use dispatch::daemon::schedule_tick;
use dispatch::domain::Timezone;
use dispatch::schedule::Schedule;
use dispatch::store::ListSpec;

#[tokio::test]
async fn karachi_slot_gives_one_edition_across_repeated_ticks_restarts_and_two_processes() {
    let cfg = config();
    let mut db = Db::new().await;
    let list = db
        .list(
            "daily",
            "0 7 * * *",
            "Asia/Karachi",
            t("2026-06-01T00:00:00Z"),
        )
        .await;
    db.subscribe(&list, "reader", 3).await;
    let a = db
        .article("a", t("2026-06-09T20:00:00Z"), "Politics", false)
        .await;
    let b = db
        .article("b", t("2026-06-10T01:00:00Z"), "Business", false)
        .await;

    // Just before 07:00 PKT the latest slot is yesterday's, a day old: too late, nothing built.
    let mut reported = HashSet::new();
    let before = schedule_tick(&db.store, &cfg, t("2026-06-10T01:59:00Z"), &mut reported)
        .await
        .unwrap();
    assert!(before.is_empty(), "{before:?}");

    // 07:00:30 PKT = 02:00:30 UTC: the 07:00 slot is 02:00 UTC.
    let now = t("2026-06-10T02:00:30Z");
    let created = schedule_tick(&db.store, &cfg, now, &mut reported)
        .await
        .unwrap();
    assert_eq!(created.len(), 1, "one edition at the slot");
    let e = db.store.edition(created[0]).await.unwrap();
    assert_eq!(
        e.slot.map(dispatch::domain::DbTime::to_text).as_deref(),
        Some("2026-06-10T02:00:00Z")
    );
    assert_eq!(e.window_end.to_text(), dbt(now));
    assert_eq!(e.status.as_str(), "sending");
    assert_eq!(db.article_ids(e.id).await, HashSet::from([a, b]));
    assert_eq!(db.delivery_count(e.id).await, 3);

    // The same process ticking again at 07:05 PKT: nothing new.
    let again = schedule_tick(&db.store, &cfg, t("2026-06-10T02:05:00Z"), &mut reported)
        .await
        .unwrap();
    assert!(again.is_empty(), "{again:?}");

    // Another process on the same file (e.g. a second daemon started by mistake) at 07:05.
    let other = db.second_process().await;
    let again = schedule_tick(&other, &cfg, t("2026-06-10T02:05:00Z"), &mut HashSet::new())
        .await
        .unwrap();
    assert!(again.is_empty(), "{again:?}");
    other.close().await;

    // Restarts at the slot and after it (08:00 PKT, and late in the evening): still one.
    for at in [
        "2026-06-10T02:00:30Z",
        "2026-06-10T03:00:00Z",
        "2026-06-10T20:00:00Z",
    ] {
        db.restart().await;
        let again = schedule_tick(&db.store, &cfg, t(at), &mut HashSet::new())
            .await
            .unwrap();
        assert!(again.is_empty(), "restart at {at}: {again:?}");
    }
    let editions = db.editions(&list).await;
    assert_eq!(slots(&editions), ["2026-06-10T02:00:00Z"]);
    assert_eq!(
        db.delivery_count(editions[0].id).await,
        3,
        "no second snapshot"
    );

    // Two processes racing at the next slot: exactly one of them builds it.
    db.article("c", t("2026-06-10T12:00:00Z"), "Sport", false)
        .await;
    let other = db.second_process().await;
    let now = t("2026-06-11T02:00:10Z");
    let (mut r1, mut r2) = (HashSet::new(), HashSet::new());
    let (x, y) = tokio::join!(
        schedule_tick(&db.store, &cfg, now, &mut r1),
        schedule_tick(&other, &cfg, now, &mut r2)
    );
    let (x, y) = (x.unwrap(), y.unwrap());
    assert_eq!(x.len() + y.len(), 1, "{x:?} {y:?}");
    other.close().await;
    let editions = db.editions(&list).await;
    assert_eq!(
        slots(&editions),
        ["2026-06-10T02:00:00Z", "2026-06-11T02:00:00Z"]
    );
    assert_eq!(editions[1].window_start, editions[0].window_end);
}

/// Ticks every 10 minutes over `[from, to)`; returns the slots of the editions built.
async fn tick_every_10_minutes(
    db: &Db,
    cfg: &Config,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> Vec<(DateTime<Utc>, String)> {
    let mut reported = HashSet::new();
    let mut out = Vec::new();
    let mut now = from;
    while now < to {
        for id in schedule_tick(&db.store, cfg, now, &mut reported)
            .await
            .unwrap()
        {
            let e = db.store.edition(id).await.unwrap();
            out.push((
                now,
                e.slot
                    .map(dispatch::domain::DbTime::to_text)
                    .unwrap_or_default(),
            ));
        }
        now += Duration::minutes(10);
    }
    out
}

#[tokio::test]
async fn london_0130_runs_once_a_day_over_both_2026_dst_transitions() {
    let cfg = config();
    let db = Db::new().await;
    let list = db
        .list(
            "london",
            "30 1 * * *",
            "Europe/London",
            t("2026-03-01T00:00:00Z"),
        )
        .await;

    // Spring forward, Sunday 2026-03-29: 01:00 GMT becomes 02:00 BST, so 01:30 never
    // happens; the job runs once that day at the first valid time after the gap (02:00 BST =
    // 01:00 UTC).
    let built = tick_every_10_minutes(
        &db,
        &cfg,
        t("2026-03-27T12:03:00Z"),
        t("2026-03-31T12:03:00Z"),
    )
    .await;
    let got: Vec<&str> = built.iter().map(|(_, s)| s.as_str()).collect();
    assert_eq!(
        got,
        [
            "2026-03-28T01:30:00Z", // 01:30 GMT
            "2026-03-29T01:00:00Z", // the gap: 02:00 BST
            "2026-03-30T00:30:00Z", // 01:30 BST
            "2026-03-31T00:30:00Z",
        ],
        "{built:?}"
    );
    // Each was built at the first tick after its slot.
    for (now, slot) in &built {
        let late = *now - t(slot);
        assert!(late < Duration::minutes(10), "{now} for {slot}");
    }

    // Fall back, Sunday 2026-10-25: 01:00-02:00 happens twice (BST, then GMT); the job runs
    // once, at the first 01:30 (BST, 00:30 UTC), not again an hour later.
    let built = tick_every_10_minutes(
        &db,
        &cfg,
        t("2026-10-23T12:03:00Z"),
        t("2026-10-27T12:03:00Z"),
    )
    .await;
    let got: Vec<&str> = built.iter().map(|(_, s)| s.as_str()).collect();
    assert_eq!(
        got,
        [
            "2026-10-24T00:30:00Z", // 01:30 BST
            "2026-10-25T00:30:00Z", // the first 01:30 (BST)
            "2026-10-26T01:30:00Z", // 01:30 GMT
            "2026-10-27T01:30:00Z",
        ],
        "{built:?}"
    );

    // Between the two runs the daemon was "down" for months: only the latest slot counted
    // and it was too late, so the first October edition's window starts where March ended.
    let editions = db.editions(&list).await;
    assert_eq!(editions.len(), 8);
    for w in editions.windows(2) {
        assert_eq!(w[1].window_start, w[0].window_end, "windows contiguous");
    }
}

#[tokio::test]
async fn schedule_changes_and_new_lists_apply_on_the_next_tick() {
    let cfg = config();
    let db = Db::new().await;
    let list = db
        .list("daily", "0 7 * * *", "UTC", t("2026-09-01T00:00:00Z"))
        .await;
    let mut reported = HashSet::new();
    let mut tick = async |at: &str| {
        schedule_tick(&db.store, &cfg, t(at), &mut reported)
            .await
            .unwrap()
            .len()
    };
    assert_eq!(tick("2026-09-10T07:00:30Z").await, 1);

    // The editor moves the digest to 08:30 while the daemon runs.
    let spec = ListSpec {
        schedule: Some(Some(Schedule::parse("30 8 * * *").unwrap())),
        ..Default::default()
    };
    db.store.update_list("daily", &spec).await.unwrap();
    assert_eq!(tick("2026-09-10T08:30:30Z").await, 1, "new schedule used");
    assert_eq!(tick("2026-09-11T07:00:30Z").await, 0, "old schedule gone");
    assert_eq!(tick("2026-09-11T08:30:30Z").await, 1);

    // ... then to Karachi time: 08:30 PKT is 03:30 UTC.
    let spec = ListSpec {
        timezone: Some(Timezone::parse("Asia/Karachi").unwrap()),
        ..Default::default()
    };
    db.store.update_list("daily", &spec).await.unwrap();
    assert_eq!(tick("2026-09-12T03:30:30Z").await, 1, "new time zone used");

    // A list created at 09:30 with a 09:00 schedule: today's slot predates it.
    let fresh = db
        .list("evening", "0 9 * * *", "UTC", t("2026-09-12T09:30:00Z"))
        .await;
    assert_eq!(
        tick("2026-09-12T09:30:30Z").await,
        0,
        "slot before creation"
    );
    assert_eq!(tick("2026-09-13T03:30:30Z").await, 1, "daily");
    assert_eq!(
        tick("2026-09-13T09:00:30Z").await,
        1,
        "new list's first slot"
    );

    // Removing the schedule stops the digests.
    let spec = ListSpec {
        schedule: Some(None),
        ..Default::default()
    };
    db.store.update_list("daily", &spec).await.unwrap();
    assert_eq!(
        tick("2026-09-14T03:30:30Z").await,
        0,
        "no schedule, no digest"
    );

    assert_eq!(
        slots(&db.editions(&list).await),
        [
            "2026-09-10T07:00:00Z",
            "2026-09-10T08:30:00Z",
            "2026-09-11T08:30:00Z",
            "2026-09-12T03:30:00Z",
            "2026-09-13T03:30:00Z",
        ]
    );
    assert_eq!(slots(&db.editions(&fresh).await), ["2026-09-13T09:00:00Z"]);
}
