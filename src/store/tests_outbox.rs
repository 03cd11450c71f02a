//! Tests of the outbox promises at the store level: one edition per slot, contiguous windows,
//! the recipient snapshot, unsubscribe-before-claim, leases and bounces.

use chrono::{Duration, Utc};

use super::subscribers::NewSubscription;
use super::testutil::temp_store;
use super::*;
use crate::domain::{CategorySet, EmailAddress, ListSlug, db_time, parse_timestamp};

async fn setup(n: usize) -> (Store, tempfile::TempDir, i64) {
    let (store, dir) = temp_store().await;
    let list = store
        .create_list(&ListSlug::parse("daily").unwrap(), &ListSpec::default())
        .await
        .unwrap();
    let rows: Vec<NewSubscription> = (0..n)
        .map(|i| NewSubscription {
            email: EmailAddress::parse(&format!("reader{i}@example.com")).unwrap(),
            name: None,
            categories: (i % 2 == 1).then(|| CategorySet::parse_list("Sport").unwrap()),
        })
        .collect();
    store
        .subscribe_batch(list.id, &rows, "test", false)
        .await
        .unwrap();
    (store, dir, list.id)
}

fn edition(list_id: i64, start: &str, end: &str, slot: Option<&str>) -> NewEdition {
    NewEdition {
        list_id,
        kind: EditionKind::Digest,
        slot: slot.map(|s| parse_timestamp(s).unwrap()),
        breaking_article_id: None,
        window_start: parse_timestamp(start).unwrap(),
        window_end: parse_timestamp(end).unwrap(),
        subject: "Daily".into(),
        articles: vec![],
        skip_reason: None,
        empty_variants: vec![],
    }
}

/// Records the list's first digest (a day's window, no slot) and returns its id.
async fn first_edition(store: &Store, list: i64) -> i64 {
    match store
        .create_edition(&edition(
            list,
            "2026-11-27T02:00:00Z",
            "2026-11-28T02:00:00Z",
            None,
        ))
        .await
        .unwrap()
    {
        Created::New { id, .. } => id,
        other => panic!("expected a new edition, got {other:?}"),
    }
}

#[tokio::test]
async fn one_edition_per_slot_and_contiguous_windows() {
    let (store, _d, list) = setup(4).await;
    let e1 = edition(
        list,
        "2026-11-27T02:00:00Z",
        "2026-11-28T02:00:00Z",
        Some("2026-11-28T02:00:00Z"),
    );
    let Created::New { id, queued, .. } = store.create_edition(&e1).await.unwrap() else {
        panic!()
    };
    assert_eq!(queued, 4);
    // The same slot again (a restarted daemon) gets the existing edition and writes nothing.
    let again = edition(
        list,
        "2026-11-28T02:00:00Z",
        "2026-11-28T02:00:05Z",
        Some("2026-11-28T02:00:00Z"),
    );
    assert_eq!(
        store.create_edition(&again).await.unwrap(),
        Created::Existing { id }
    );
    assert_eq!(
        store.create_edition(&e1).await.unwrap(),
        Created::Existing { id }
    );
    // A window that does not start where the last one ended is refused.
    let gap = edition(
        list,
        "2026-11-28T03:00:00Z",
        "2026-11-29T02:00:00Z",
        Some("2026-11-29T02:00:00Z"),
    );
    assert!(matches!(
        store.create_edition(&gap).await,
        Err(StoreError::Conflict(_))
    ));
    assert_eq!(
        store.last_digest_end(list).await.unwrap(),
        Some(parse_timestamp("2026-11-28T02:00:00Z").unwrap())
    );
    let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM deliveries")
        .fetch_one(store.pool())
        .await
        .unwrap();
    assert_eq!(n, 4);
}

#[tokio::test]
async fn empty_variants_are_skipped_and_skipped_editions_keep_the_window() {
    let (store, _d, list) = setup(4).await;
    let mut e = edition(list, "2026-11-27T02:00:00Z", "2026-11-28T02:00:00Z", None);
    e.empty_variants = vec![Some("Sport".into())];
    let Created::New {
        id,
        queued,
        skipped,
    } = store.create_edition(&e).await.unwrap()
    else {
        panic!()
    };
    assert_eq!((queued, skipped), (2, 2));
    assert_eq!(
        store.delivery_counts(id).await.unwrap().get("skipped"),
        Some(&2)
    );
    let mut empty = edition(list, "2026-11-28T02:00:00Z", "2026-11-29T02:00:00Z", None);
    empty.skip_reason = Some("no stories".into());
    let Created::New {
        id: sid, queued, ..
    } = store.create_edition(&empty).await.unwrap()
    else {
        panic!()
    };
    assert_eq!(queued, 0);
    assert_eq!(store.edition(sid).await.unwrap().status, "skipped");
    assert_eq!(
        store.last_digest_end(list).await.unwrap(),
        Some(parse_timestamp("2026-11-29T02:00:00Z").unwrap())
    );
}

#[tokio::test]
async fn unsubscribe_after_snapshot_stops_the_delivery() {
    let (store, _d, list) = setup(3).await;
    let id = first_edition(&store, list).await;
    store
        .unsubscribe_email(
            &EmailAddress::parse("reader1@example.com").unwrap(),
            Some(list),
        )
        .await
        .unwrap();
    let (claimed, skipped) = store
        .claim_deliveries(id, list, 10, Duration::minutes(5))
        .await
        .unwrap();
    assert_eq!(skipped, 1);
    let emails: Vec<&str> = claimed.iter().map(|c| c.email.as_str()).collect();
    assert_eq!(emails, ["reader0@example.com", "reader2@example.com"]);
    // Each claim stores only the token's hash.
    let stored: Vec<Vec<u8>> = sqlx::query_scalar("SELECT hash FROM tokens")
        .fetch_all(store.pool())
        .await
        .unwrap();
    assert_eq!(stored.len(), 2);
    assert!(stored.contains(&claimed[0].token.hash()));
    // Claimed rows are leased: a second claim finds nothing.
    let (again, _) = store
        .claim_deliveries(id, list, 10, Duration::minutes(5))
        .await
        .unwrap();
    assert!(again.is_empty());
}

#[tokio::test]
async fn expired_leases_are_reclaimed_and_outcomes_recorded() {
    let (store, _d, list) = setup(3).await;
    let id = first_edition(&store, list).await;
    let (claimed, _) = store
        .claim_deliveries(id, list, 10, Duration::seconds(-1))
        .await
        .unwrap();
    assert_eq!(claimed.len(), 3);
    // The lease is already over (a crashed sender): the rows come back, attempt 2.
    let (again, _) = store
        .claim_deliveries(id, list, 10, Duration::minutes(5))
        .await
        .unwrap();
    assert_eq!(again.len(), 3);
    assert!(again.iter().all(|c| c.attempt == 2));
    store
        .record_outcomes(
            &[
                Outcome::Sent {
                    delivery_id: again[0].delivery_id,
                    message_id: "<a@x>".into(),
                    reply: "250 ok".into(),
                },
                Outcome::Retry {
                    delivery_id: again[1].delivery_id,
                    reply: "451 later".into(),
                    next_attempt_at: Some(Utc::now() + Duration::hours(1)),
                },
                Outcome::Bounced {
                    delivery_id: again[2].delivery_id,
                    subscriber_id: again[2].subscriber_id,
                    reply: "550 5.1.1 no such user".into(),
                },
            ],
            1,
        )
        .await
        .unwrap();
    let counts = store.delivery_counts(id).await.unwrap();
    assert_eq!(
        (counts["sent"], counts["queued"], counts["failed"]),
        (1, 1, 1)
    );
    let (mid, reply, sent_at, lease): (String, String, Option<String>, Option<String>) =
        sqlx::query_as(
            "SELECT message_id, last_reply, sent_at, lease_until FROM deliveries WHERE id = $1",
        )
        .bind(again[0].delivery_id)
        .fetch_one(store.pool())
        .await
        .unwrap();
    assert_eq!((mid.as_str(), reply.as_str()), ("<a@x>", "250 ok"));
    assert!(sent_at.is_some() && lease.is_none());
    let status: String = sqlx::query_scalar("SELECT status FROM subscribers WHERE id = $1")
        .bind(again[2].subscriber_id)
        .fetch_one(store.pool())
        .await
        .unwrap();
    assert_eq!(status, "bounced");
    assert!(!store.finish_edition_if_done(id).await.unwrap());
    assert!(store.next_due(id).await.unwrap().unwrap() > Utc::now());
    // Retry later succeeds: the edition is then finished.
    sqlx::query("UPDATE deliveries SET next_attempt_at = $1")
        .bind(db_time(Utc::now() - Duration::seconds(1)))
        .execute(store.pool())
        .await
        .unwrap();
    let (last, _) = store
        .claim_deliveries(id, list, 10, Duration::minutes(5))
        .await
        .unwrap();
    assert_eq!(last.len(), 1);
    let attempt = last[0].attempt;
    store
        .record_outcomes(
            &[Outcome::Released {
                delivery_id: last[0].delivery_id,
            }],
            3,
        )
        .await
        .unwrap();
    assert_eq!(store.pending_deliveries(Some(id)).await.unwrap(), 1);
    let (last, _) = store
        .claim_deliveries(id, list, 10, Duration::minutes(5))
        .await
        .unwrap();
    assert_eq!(
        last[0].attempt, attempt,
        "a released claim does not count as an attempt"
    );
    store
        .record_outcomes(
            &[Outcome::Sent {
                delivery_id: last[0].delivery_id,
                message_id: "<b@x>".into(),
                reply: "250".into(),
            }],
            3,
        )
        .await
        .unwrap();
    assert_eq!(
        store.pending_deliveries(Some(id)).await.unwrap(),
        0,
        "{:?}",
        store.delivery_counts(id).await.unwrap()
    );
    assert!(store.finish_edition_if_done(id).await.unwrap());
    assert_eq!(store.edition(id).await.unwrap().status, "sent");
}

#[tokio::test]
async fn cancel_skips_the_rest() {
    let (store, _d, list) = setup(2).await;
    let id = first_edition(&store, list).await;
    store
        .set_edition_status(id, "cancelled", Some("by editor"))
        .await
        .unwrap();
    assert_eq!(store.delivery_counts(id).await.unwrap()["skipped"], 2);
    store
        .set_edition_status(id, "sending", None)
        .await
        .unwrap_err();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_one_click_unsubscribes_are_batched_and_each_answered() {
    let (store, _d, list) = setup(60).await;
    let id = first_edition(&store, list).await;
    let (claimed, _) = store
        .claim_deliveries(id, list, 100, Duration::minutes(5))
        .await
        .unwrap();
    assert_eq!(claimed.len(), 60);
    // Every click at once, each twice, plus unknown tokens: each gets its own answer.
    let mut tasks = Vec::new();
    for c in claimed.iter().chain(claimed.iter()) {
        let (store, token) = (store.clone(), c.token.clone());
        tasks.push(tokio::spawn(async move {
            store.unsubscribe_by_token(&token, false).await
        }));
    }
    for _ in 0..5 {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            store
                .unsubscribe_by_token(&crate::domain::Token::generate(), false)
                .await
        }));
    }
    let mut changed = 0;
    let mut unknown = 0;
    for t in tasks {
        match t.await.unwrap().unwrap() {
            Some(u) => changed += u.changed,
            None => unknown += 1,
        }
    }
    assert_eq!(
        (changed, unknown),
        (60, 5),
        "each subscription changes once"
    );
    assert_eq!(store.subscription_counts(list).await.unwrap(), (0, 0, 60));
}
