//! Sign-up: confirmation by mail without telling who is already subscribed, a reader who
//! unsubscribed must confirm again even on a single opt-in list, and rate limits per IP and
//! per address.

use std::num::NonZeroU32;

use crate::{spawn_app, spawn_app_with};
use dispatch::domain::EmailAddress;
use dispatch::web::RateLimits;
use governor::Quota;
use reqwest::StatusCode;

#[tokio::test]
async fn signup_confirm_and_no_enumeration() {
    let app = spawn_app().await;
    let list = app.list("daily", true, None).await;
    app.subscribe(list, &["known@example.com"]).await;

    let known = app
        .post_form("/subscribe", "email=known%40example.com&list=daily")
        .await;
    let unknown = app
        .post_form("/subscribe", "email=Unknown%40Example.com&list=daily")
        .await;
    assert_eq!(known.status(), StatusCode::OK);
    assert_eq!(known.status(), unknown.status());
    assert_eq!(
        known.bytes().await.unwrap(),
        unknown.bytes().await.unwrap(),
        "known and unknown addresses must get identical answers"
    );

    let url = app.confirmation_url("Unknown@example.com").await;
    assert!(url.starts_with(&format!("{}/confirm/", app.base)), "{url}");
    assert_eq!(app.mails_to("known@example.com"), 0, "active: nothing sent");
    assert_eq!(
        app.status("unknown@example.com", "daily").await.as_deref(),
        Some("pending")
    );

    // A pending reader is not in an edition's snapshot.
    let (claimed, skipped) = app.claim(app.edition(list).await, list).await;
    assert_eq!(claimed.keys().collect::<Vec<_>>(), ["known@example.com"]);
    assert_eq!(skipped, 0);

    // Opening the link (a mail scanner does) confirms nobody: only the button does.
    let path = url.strip_prefix(&app.base).unwrap().to_owned();
    for _ in 0..2 {
        assert_eq!(app.get(&path).await.status(), StatusCode::OK);
    }
    assert_eq!(
        app.status("unknown@example.com", "daily").await.as_deref(),
        Some("pending"),
        "a GET on the confirmation link changes nothing"
    );
    for _ in 0..2 {
        let r = app.confirm(&url).await;
        assert_eq!(r.status(), StatusCode::OK);
        assert!(r.text().await.unwrap().contains("You are subscribed"));
        assert_eq!(
            app.status("unknown@example.com", "daily").await.as_deref(),
            Some("active")
        );
    }
    let sub = app
        .store
        .subscriber_by_email(&EmailAddress::parse("unknown@example.com").unwrap())
        .await
        .unwrap();
    assert_eq!(sub.consent_source.as_deref(), Some("web"));
    assert!(sub.consent_at.is_some());
    let info = app.store.subscriptions_of(sub.id).await.unwrap();
    assert!(info[0].confirmed_at.is_some());
    let (claimed, _) = app.claim(app.edition(list).await, list).await;
    assert!(claimed.contains_key("Unknown@example.com"));
}

#[tokio::test]
async fn unsubscribed_reader_must_confirm_again_even_on_single_opt_in() {
    let app = spawn_app().await;
    let list = app.list("daily", false, None).await;
    app.subscribe(list, &["gone@example.com"]).await;
    app.store
        .unsubscribe_email(&EmailAddress::parse("gone@example.com").unwrap(), None)
        .await
        .unwrap();

    let gone = app
        .post_form("/subscribe", "email=gone%40example.com&list=daily")
        .await;
    let fresh = app
        .post_form("/subscribe", "email=fresh%40example.com&list=daily")
        .await;
    assert_eq!(gone.status(), fresh.status());
    assert_eq!(gone.bytes().await.unwrap(), fresh.bytes().await.unwrap());
    // Single opt-in: the new address is active at once; the one that left is not.
    assert_eq!(
        app.status("fresh@example.com", "daily").await.as_deref(),
        Some("active")
    );
    assert_eq!(
        app.status("gone@example.com", "daily").await.as_deref(),
        Some("unsubscribed")
    );
    assert_eq!(app.mails_to("fresh@example.com"), 0);
    let url = app.confirmation_url("gone@example.com").await;
    let r = app.confirm(&url).await;
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(
        app.status("gone@example.com", "daily").await.as_deref(),
        Some("active")
    );
}

#[tokio::test]
async fn signup_rate_limits_per_ip_and_per_address() {
    let app = spawn_app().await;
    app.list("daily", true, None).await;
    // Per address: 3 an hour.
    for i in 0..4 {
        let r = app
            .post_form("/subscribe", "email=same%40example.com&list=daily")
            .await;
        let want = if i < 3 {
            StatusCode::OK
        } else {
            StatusCode::TOO_MANY_REQUESTS
        };
        assert_eq!(r.status(), want, "request {i}");
    }
    // Per IP: 5 a minute; 4 used above.
    let r = app
        .post_form("/subscribe", "email=other1%40example.com&list=daily")
        .await;
    assert_eq!(r.status(), StatusCode::OK);
    let r = app
        .post_form("/subscribe", "email=other2%40example.com&list=daily")
        .await;
    assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS);
    assert!(r.text().await.unwrap().contains("Too many"));

    // Invalid input is answered without state: 400, not 200.
    let generous = RateLimits::new(
        Quota::per_minute(NonZeroU32::new(100).unwrap()),
        Quota::per_hour(NonZeroU32::new(100).unwrap()),
    );
    let app = spawn_app_with(generous).await;
    app.list("daily", true, None).await;
    let r = app
        .post_form("/subscribe", "email=not-an-address&list=daily")
        .await;
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    let r = app
        .post_form("/subscribe", "email=a%40example.com&list=nope")
        .await;
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    let r = app.get("/subscribe?list=daily").await;
    assert_eq!(r.status(), StatusCode::OK);
    assert!(r.text().await.unwrap().contains("type=\"email\""));
}
