//! Tests of the outbox promises at the store level: one edition per slot, contiguous windows,
//! the recipient snapshot, unsubscribe-before-claim, leases and bounces.

use chrono::{Duration, Utc};

use super::subscribers::NewSubscription;
use super::testutil::{sender, store_test, temp_store_on};
use super::*;
use crate::domain::{CategorySet, EmailAddress, ListSlug, db_time, parse_timestamp};

async fn setup(backend: Backend, n: usize) -> (Store, testutil::Guard, i64) {
    let (store, dir) = temp_store_on(backend).await;
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

fn outcome(c: &Claimed, verdict: Verdict) -> Outcome {
    Outcome {
        item: Item::Delivery {
            id: c.delivery_id,
            subscriber_id: c.subscriber_id,
        },
        verdict,
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

store_test!(one_edition_per_slot_and_contiguous_windows);
async fn one_edition_per_slot_and_contiguous_windows(backend: Backend) {
    let (store, _d, list) = setup(backend, 4).await;
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
    let n: i64 = db!(store.pool(), |conn| {
        sqlx::query_scalar("SELECT COUNT(*) FROM deliveries")
            .fetch_one(conn)
            .await
    })
    .unwrap();
    assert_eq!(n, 4);
}

store_test!(empty_variants_are_skipped_and_skipped_editions_keep_the_window);
async fn empty_variants_are_skipped_and_skipped_editions_keep_the_window(backend: Backend) {
    let (store, _d, list) = setup(backend, 4).await;
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
        store
            .delivery_counts(id)
            .await
            .unwrap()
            .get(&DeliveryStatus::Skipped),
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
    assert_eq!(
        store.edition(sid).await.unwrap().status,
        EditionStatus::Skipped
    );
    assert_eq!(
        store.last_digest_end(list).await.unwrap(),
        Some(parse_timestamp("2026-11-29T02:00:00Z").unwrap())
    );
}

store_test!(unsubscribe_after_snapshot_stops_the_delivery);
async fn unsubscribe_after_snapshot_stops_the_delivery(backend: Backend) {
    let (store, _d, list) = setup(backend, 3).await;
    let id = first_edition(&store, list).await;
    let me = sender(&store).await;
    store
        .unsubscribe_email(
            &EmailAddress::parse("reader1@example.com").unwrap(),
            Some(list),
        )
        .await
        .unwrap();
    let (claimed, skipped) = store
        .claim_deliveries(id, list, 10, Duration::minutes(5), me)
        .await
        .unwrap();
    assert_eq!(skipped.unwanted, 1);
    let emails: Vec<&str> = claimed.iter().map(|c| c.email.as_str()).collect();
    assert_eq!(emails, ["reader0@example.com", "reader2@example.com"]);
    // A subscription's first message makes its token; only the hash is stored.
    let stored: Vec<Vec<u8>> = db!(store.pool(), |conn| {
        sqlx::query_scalar("SELECT hash FROM tokens")
            .fetch_all(conn)
            .await
    })
    .unwrap();
    assert_eq!(stored.len(), 2);
    assert!(stored.contains(&claimed[0].token.hash()));
    // Claimed rows are leased: a second claim finds nothing.
    let (again, _) = store
        .claim_deliveries(id, list, 10, Duration::minutes(5), me)
        .await
        .unwrap();
    assert!(again.is_empty());
}

store_test!(expired_leases_are_reclaimed_and_outcomes_recorded);
async fn expired_leases_are_reclaimed_and_outcomes_recorded(backend: Backend) {
    let (store, _d, list) = setup(backend, 3).await;
    let id = first_edition(&store, list).await;
    let me = sender(&store).await;
    let (claimed, _) = store
        .claim_deliveries(id, list, 10, Duration::seconds(-1), me)
        .await
        .unwrap();
    assert_eq!(claimed.len(), 3);
    // The lease is already over (a crashed sender): the rows come back, attempt 2.
    let (again, _) = store
        .claim_deliveries(id, list, 10, Duration::minutes(5), me)
        .await
        .unwrap();
    assert_eq!(again.len(), 3);
    assert!(again.iter().all(|c| c.attempt == 2));
    store
        .record_outcomes(
            &[
                outcome(&again[0], Verdict::Sent),
                outcome(
                    &again[1],
                    Verdict::Retry {
                        reply: "451 later".into(),
                        at: Utc::now() + Duration::hours(1),
                    },
                ),
                outcome(
                    &again[2],
                    Verdict::Bounced {
                        reply: "550 5.1.1 no such user".into(),
                    },
                ),
            ],
            1,
        )
        .await
        .unwrap();
    let counts = store.delivery_counts(id).await.unwrap();
    assert_eq!(
        (
            counts[&DeliveryStatus::Sent],
            counts[&DeliveryStatus::Queued],
            counts[&DeliveryStatus::Failed]
        ),
        (1, 1, 1)
    );
    let (sent_at, lease, owner): (Option<String>, Option<String>, Option<i64>) =
        db!(store.pool(), |conn| {
            sqlx::query_as("SELECT sent_at, lease_until, lease_owner FROM deliveries WHERE id = $1")
                .bind(again[0].delivery_id)
                .fetch_one(conn)
                .await
        })
        .unwrap();
    assert!(sent_at.is_some() && lease.is_none() && owner.is_none());
    let status: String = db!(store.pool(), |conn| {
        sqlx::query_scalar("SELECT status FROM subscribers WHERE id = $1")
            .bind(again[2].subscriber_id)
            .fetch_one(conn)
            .await
    })
    .unwrap();
    assert_eq!(status, "bounced");
    assert!(!store.finish_edition_if_done(id).await.unwrap());
    assert!(store.next_due(id).await.unwrap().unwrap() > Utc::now());
    // Retry later succeeds: the edition is then finished.
    db!(store.pool(), |conn| {
        sqlx::query("UPDATE deliveries SET next_attempt_at = $1")
            .bind(db_time(Utc::now() - Duration::seconds(1)))
            .execute(conn)
            .await
            .affected()
    })
    .unwrap();
    let (last, _) = store
        .claim_deliveries(id, list, 10, Duration::minutes(5), me)
        .await
        .unwrap();
    assert_eq!(last.len(), 1);
    let attempt = last[0].attempt;
    store
        .record_outcomes(&[outcome(&last[0], Verdict::Released)], 3)
        .await
        .unwrap();
    assert_eq!(store.pending_deliveries(Some(id)).await.unwrap(), 1);
    let (last, _) = store
        .claim_deliveries(id, list, 10, Duration::minutes(5), me)
        .await
        .unwrap();
    assert_eq!(
        last[0].attempt, attempt,
        "a released claim does not count as an attempt"
    );
    store
        .record_outcomes(&[outcome(&last[0], Verdict::Sent)], 3)
        .await
        .unwrap();
    assert_eq!(
        store.pending_deliveries(Some(id)).await.unwrap(),
        0,
        "{:?}",
        store.delivery_counts(id).await.unwrap()
    );
    assert!(store.finish_edition_if_done(id).await.unwrap());
    assert_eq!(store.edition(id).await.unwrap().status, EditionStatus::Sent);
}

store_test!(cancel_skips_the_rest);
async fn cancel_skips_the_rest(backend: Backend) {
    let (store, _d, list) = setup(backend, 2).await;
    let id = first_edition(&store, list).await;
    store
        .set_edition_status(id, EditionStatus::Cancelled, Some("by editor"))
        .await
        .unwrap();
    assert_eq!(
        store.delivery_counts(id).await.unwrap()[&DeliveryStatus::Skipped],
        2
    );
    store
        .set_edition_status(id, EditionStatus::Sending, None)
        .await
        .unwrap_err();
}

store_test!(
    concurrent_one_click_unsubscribes_are_batched_and_each_answered,
    multi_thread
);
async fn concurrent_one_click_unsubscribes_are_batched_and_each_answered(backend: Backend) {
    let (store, _d, list) = setup(backend, 60).await;
    let id = first_edition(&store, list).await;
    let me = sender(&store).await;
    let (claimed, _) = store
        .claim_deliveries(id, list, 100, Duration::minutes(5), me)
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

/// Marks every pending delivery of `id` sent, as a sender would after a successful run.
async fn send_all(store: &Store, id: i64, list: i64, me: SenderId) -> Vec<Claimed> {
    let (claimed, _) = store
        .claim_deliveries(id, list, 1000, Duration::minutes(5), me)
        .await
        .unwrap();
    let outcomes: Vec<Outcome> = claimed.iter().map(|c| outcome(c, Verdict::Sent)).collect();
    store.record_outcomes(&outcomes, 3).await.unwrap();
    assert!(store.finish_edition_if_done(id).await.unwrap());
    claimed
}

async fn next_edition(store: &Store, list: i64, day: u32) -> i64 {
    let day0 = parse_timestamp("2026-11-28T02:00:00Z").unwrap();
    let start = db_time(day0 + Duration::days(i64::from(day) - 1));
    let end = db_time(day0 + Duration::days(i64::from(day)));
    match store
        .create_edition(&edition(list, &start, &end, None))
        .await
        .unwrap()
    {
        Created::New { id, .. } => id,
        other => panic!("expected a new edition, got {other:?}"),
    }
}

async fn count(store: &Store, sql: &'static str) -> i64 {
    db!(store.pool(), |conn| {
        sqlx::query_scalar(sql).fetch_one(conn).await
    })
    .unwrap()
}

store_test!(one_reader_token_per_subscription_reused_by_every_edition);
async fn one_reader_token_per_subscription_reused_by_every_edition(backend: Backend) {
    let (store, _d, list) = setup(backend, 5).await;
    let me = sender(&store).await;
    let first = first_edition(&store, list).await;
    let a = send_all(&store, first, list, me).await;
    for day in 1..30 {
        let id = next_edition(&store, list, day).await;
        let b = send_all(&store, id, list, me).await;
        for (x, y) in a.iter().zip(&b) {
            assert_eq!(x.subscriber_id, y.subscriber_id);
            assert_eq!(x.token, y.token, "the same link in every message");
        }
    }
    assert_eq!(
        count(&store, "SELECT COUNT(*) FROM tokens").await,
        5,
        "after 30 editions, token rows equal subscriptions"
    );
    // The token opens the reader's pages.
    let t = store
        .token_target(&a[0].token, tokens::READER_PURPOSES)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(t.subscriber_id, a[0].subscriber_id);

    // Rotating gives a new token and invalidates the old one.
    let email = a[0].email.clone();
    assert_eq!(store.rotate_tokens(&email).await.unwrap(), 1);
    assert!(
        store
            .token_target(&a[0].token, tokens::READER_PURPOSES)
            .await
            .unwrap()
            .is_none()
    );
    let id = next_edition(&store, list, 30).await;
    let c = send_all(&store, id, list, me).await;
    let rotated = c
        .iter()
        .find(|c| c.subscriber_id == a[0].subscriber_id)
        .unwrap();
    assert_ne!(rotated.token, a[0].token);
    assert!(
        store
            .token_target(&rotated.token, tokens::READER_PURPOSES)
            .await
            .unwrap()
            .is_some()
    );
    assert_eq!(count(&store, "SELECT COUNT(*) FROM tokens").await, 5);
}

store_test!(a_dead_senders_leases_are_taken_over_and_a_live_ones_kept);
async fn a_dead_senders_leases_are_taken_over_and_a_live_ones_kept(backend: Backend) {
    let (store, _d, list) = setup(backend, 4).await;
    let id = first_edition(&store, list).await;
    let dead = sender(&store).await;
    let live = sender(&store).await;
    let (d, _) = store
        .claim_deliveries(id, list, 2, Duration::minutes(5), dead)
        .await
        .unwrap();
    let (l, _) = store
        .claim_deliveries(id, list, 2, Duration::minutes(5), live)
        .await
        .unwrap();
    assert_eq!((d.len(), l.len()), (2, 2));
    let me = sender(&store).await;
    let (none, _) = store
        .claim_deliveries(id, list, 10, Duration::minutes(5), me)
        .await
        .unwrap();
    assert!(none.is_empty(), "every row is leased");

    let freed = store.take_over(dead).await.unwrap();
    assert_eq!(freed.deliveries, 2);
    let (taken, _) = store
        .claim_deliveries(id, list, 10, Duration::minutes(5), me)
        .await
        .unwrap();
    let mut ids: Vec<i64> = taken.iter().map(|c| c.delivery_id).collect();
    ids.sort();
    let mut expected: Vec<i64> = d.iter().map(|c| c.delivery_id).collect();
    expected.sort();
    assert_eq!(
        ids, expected,
        "exactly the dead sender's rows, not the live one's"
    );
    assert!(taken.iter().all(|c| c.attempt == 2));
    assert_eq!(
        store.senders().await.unwrap().len(),
        2,
        "the dead sender's registration is gone"
    );

    // A heartbeat renews a live sender's leases; deregistering gives them back.
    db!(store.writer(), |conn| {
        sqlx::query(
            "UPDATE deliveries SET lease_until = '2000-01-01T00:00:00Z' WHERE lease_owner = $1",
        )
        .bind(live.0)
        .execute(conn)
        .await
        .affected()
    })
    .unwrap();
    assert!(store.heartbeat(live, Duration::minutes(5)).await.unwrap());
    let (none, _) = store
        .claim_deliveries(id, list, 10, Duration::minutes(5), me)
        .await
        .unwrap();
    assert!(none.is_empty(), "renewed leases hold");
    let back = store.deregister_sender(live).await.unwrap();
    assert_eq!(back.deliveries, 2);
    assert_eq!(
        store.pending_deliveries(Some(id)).await.unwrap(),
        4,
        "the given-back rows still wait"
    );
}

store_test!(compaction_keeps_counts_and_failures_and_frees_the_rows);
async fn compaction_keeps_counts_and_failures_and_frees_the_rows(backend: Backend) {
    let (store, _d, list) = setup(backend, 6).await;
    let me = sender(&store).await;
    let id = first_edition(&store, list).await;
    let (claimed, _) = store
        .claim_deliveries(id, list, 10, Duration::minutes(5), me)
        .await
        .unwrap();
    let mut outcomes: Vec<Outcome> = claimed[..4]
        .iter()
        .map(|c| outcome(c, Verdict::Sent))
        .collect();
    outcomes.push(outcome(
        &claimed[4],
        Verdict::Failed {
            reply: "554 5.7.1 rejected".into(),
        },
    ));
    outcomes.push(outcome(
        &claimed[5],
        Verdict::Skipped {
            reason: "test".into(),
        },
    ));
    store.record_outcomes(&outcomes, 3).await.unwrap();
    assert!(store.finish_edition_if_done(id).await.unwrap());
    let before = store.delivery_counts(id).await.unwrap();

    // Not old enough: nothing happens.
    let none = store
        .compact_editions(Utc::now() - Duration::days(1))
        .await
        .unwrap();
    assert_eq!(none.editions, 0);
    let done = store
        .compact_editions(Utc::now() + Duration::seconds(1))
        .await
        .unwrap();
    assert_eq!((done.editions, done.deliveries), (1, 5));
    assert_eq!(store.delivery_counts(id).await.unwrap(), before);
    assert_eq!(
        count(&store, "SELECT COUNT(*) FROM deliveries").await,
        1,
        "only the failure is kept"
    );
    let again = store
        .compact_editions(Utc::now() + Duration::seconds(1))
        .await
        .unwrap();
    assert_eq!(again.editions, 0, "compaction is done once");
    assert_eq!(store.delivery_counts(id).await.unwrap(), before);
}

store_test!(a_confirmation_is_queued_once_claimed_with_a_fresh_token_and_skipped_when_moot);
async fn a_confirmation_is_queued_once_claimed_with_a_fresh_token_and_skipped_when_moot(
    backend: Backend,
) {
    let (store, _d) = temp_store_on(backend).await;
    let list = store
        .create_list(
            &ListSlug::parse("daily").unwrap(),
            &ListSpec {
                double_opt_in: Some(true),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    let email = EmailAddress::parse("new@example.com").unwrap();
    let signup = WebSignup {
        email: &email,
        list_id: list.id,
        categories: None,
        ip: "192.0.2.9",
        name: None,
    };
    assert_eq!(
        store.web_subscribe(&signup).await.unwrap(),
        SignupOutcome::ConfirmationQueued
    );
    assert!(store.mail_due().await.unwrap());
    let me = sender(&store).await;
    let claimed = store
        .claim_mail(10, Duration::minutes(5), me)
        .await
        .unwrap();
    assert_eq!(claimed.len(), 1);
    assert_eq!(claimed[0].to, email);
    assert!(!store.mail_due().await.unwrap(), "leased");
    // The token it carries confirms.
    let c = store
        .confirm_by_token(&claimed[0].token, "192.0.2.9")
        .await
        .unwrap()
        .unwrap();
    assert!(c.activated);
    // A retry of that message after confirming is skipped, not sent.
    store
        .record_outcomes(
            &[Outcome {
                item: Item::Mail { id: claimed[0].id },
                verdict: Verdict::Retry {
                    reply: "451 later".into(),
                    at: Utc::now() - Duration::seconds(1),
                },
            }],
            3,
        )
        .await
        .unwrap();
    assert!(store.mail_due().await.unwrap());
    assert!(
        store
            .claim_mail(10, Duration::minutes(5), me)
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(
        store.mail_counts().await.unwrap(),
        vec![("skipped".to_owned(), 1)]
    );
}
