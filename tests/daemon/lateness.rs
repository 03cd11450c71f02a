//! The lateness policy both ways, with `max_lateness = "6h"`: a slot missed by 2 hours is
//! built once for that slot; one missed by 7 hours is skipped (and logged) and its stories go
//! in the next digest.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};

use crate::{Db, config, dbt, slots, t};
use dispatch::daemon::schedule_tick;

/// Captures what the code logs on this thread (the tests run on a current-thread runtime).
#[derive(Clone, Default)]
struct LogBuf(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for LogBuf {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl LogBuf {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }

    fn install(&self) -> tracing::subscriber::DefaultGuard {
        let me = self.clone();
        let sub = tracing_subscriber::fmt()
            .with_ansi(false)
            .with_max_level(tracing::Level::INFO)
            .with_writer(move || me.clone())
            .finish();
        tracing::subscriber::set_default(sub)
    }
}

#[tokio::test]
async fn a_slot_missed_by_2h_is_built_once_for_that_slot() {
    let cfg = config();
    let mut db = Db::new().await;
    let list = db
        .list(
            "daily",
            "0 7 * * *",
            "Asia/Karachi",
            t("2026-07-01T00:00:00Z"),
        )
        .await;
    db.subscribe(&list, "reader", 2).await;
    let first = schedule_tick(
        &db.store,
        &cfg,
        t("2026-07-10T02:00:20Z"),
        &mut HashSet::new(),
    )
    .await
    .unwrap();
    assert_eq!(first.len(), 1);
    let a = db
        .article("a", t("2026-07-10T05:00:00Z"), "Politics", false)
        .await;
    let b = db
        .article("b", t("2026-07-11T01:30:00Z"), "Sport", false)
        .await;

    // Down over the 2026-07-11 02:00Z slot; back two hours later.
    db.restart().await;
    let now = t("2026-07-11T04:00:00Z");
    let late = schedule_tick(&db.store, &cfg, now, &mut HashSet::new())
        .await
        .unwrap();
    assert_eq!(late.len(), 1, "built late");
    let e = db.store.edition(late[0]).await.unwrap();
    assert_eq!(
        e.slot.map(dispatch::domain::DbTime::to_text).as_deref(),
        Some("2026-07-11T02:00:00Z"),
        "the missed slot"
    );
    assert_eq!(
        e.window_start,
        db.store.edition(first[0]).await.unwrap().window_end
    );
    assert_eq!(e.window_end.to_text(), dbt(now));
    assert_eq!(db.article_ids(e.id).await, HashSet::from([a, b]));
    assert_eq!(db.delivery_count(e.id).await, 2);

    // Once: neither the next tick nor another restart builds it again.
    assert!(
        schedule_tick(
            &db.store,
            &cfg,
            t("2026-07-11T04:00:15Z"),
            &mut HashSet::new()
        )
        .await
        .unwrap()
        .is_empty()
    );
    db.restart().await;
    assert!(
        schedule_tick(
            &db.store,
            &cfg,
            t("2026-07-11T07:59:00Z"),
            &mut HashSet::new()
        )
        .await
        .unwrap()
        .is_empty()
    );
    assert_eq!(
        slots(&db.editions(&list).await),
        ["2026-07-10T02:00:00Z", "2026-07-11T02:00:00Z"]
    );
}

#[tokio::test]
async fn a_slot_missed_by_7h_is_skipped_and_its_stories_go_in_the_next_digest() {
    let logs = LogBuf::default();
    let _guard = logs.install();
    let cfg = config();
    let mut db = Db::new().await;
    let list = db
        .list(
            "daily",
            "0 7 * * *",
            "Asia/Karachi",
            t("2026-07-01T00:00:00Z"),
        )
        .await;
    db.subscribe(&list, "reader", 2).await;
    let first = schedule_tick(
        &db.store,
        &cfg,
        t("2026-07-10T02:00:20Z"),
        &mut HashSet::new(),
    )
    .await
    .unwrap();
    assert_eq!(first.len(), 1);
    let first = db.store.edition(first[0]).await.unwrap();

    // Stories before the missed slot, and while the daemon was down after it.
    let mut skipped_period = HashSet::new();
    for (ext, at) in [
        ("before-slot", "2026-07-10T05:00:00Z"),
        ("just-before-slot", "2026-07-11T01:59:59Z"),
        ("at-slot", "2026-07-11T02:00:00Z"),
        ("while-down", "2026-07-11T06:00:00Z"),
    ] {
        skipped_period.insert(db.article(ext, t(at), "Politics", false).await);
    }

    // Back seven hours after the 2026-07-11 slot: too late, skipped and said so once.
    db.restart().await;
    let missed = t("2026-07-11T02:00:00Z");
    let mut reported = HashSet::new();
    let late = schedule_tick(&db.store, &cfg, t("2026-07-11T09:00:00Z"), &mut reported)
        .await
        .unwrap();
    assert!(late.is_empty(), "a 7 h late slot is not sent: {late:?}");
    assert!(reported.contains(&(list.id, missed)), "{reported:?}");
    for at in ["2026-07-11T09:00:15Z", "2026-07-11T20:00:00Z"] {
        assert!(
            schedule_tick(&db.store, &cfg, t(at), &mut reported)
                .await
                .unwrap()
                .is_empty()
        );
    }
    let log = logs.text();
    assert_eq!(
        log.matches("skipping a slot missed by more than [schedule] max_lateness")
            .count(),
        1,
        "{log}"
    );
    assert!(log.contains("2026-07-11 02:00:00 UTC"), "{log}");
    assert!(
        db.store
            .edition_for_slot(list.id, missed)
            .await
            .unwrap()
            .is_none()
    );

    // Stories after the restart, then the next slot.
    let after = db
        .article("after-restart", t("2026-07-11T10:00:00Z"), "Sport", false)
        .await;
    let now = t("2026-07-12T02:00:30Z");
    let next = schedule_tick(&db.store, &cfg, now, &mut reported)
        .await
        .unwrap();
    assert_eq!(next.len(), 1);
    let next = db.store.edition(next[0]).await.unwrap();
    assert_eq!(
        next.slot.map(dispatch::domain::DbTime::to_text).as_deref(),
        Some("2026-07-12T02:00:00Z")
    );
    assert_eq!(
        next.window_start, first.window_end,
        "the window starts where the last edition ended, not at the skipped slot"
    );
    let carried = db.article_ids(next.id).await;
    assert!(
        skipped_period.is_subset(&carried),
        "stories of the skipped period are in the next digest"
    );
    assert!(carried.contains(&after));
    assert_eq!(carried.len(), 5);
    assert_eq!(
        slots(&db.editions(&list).await),
        ["2026-07-10T02:00:00Z", "2026-07-12T02:00:00Z"]
    );
}
