//! Unsubscribing: a GET only asks, the RFC 8058 one-click POST works urlencoded, multipart
//! and empty, `scope=all` leaves every list, and a bad token gets one plain 404 and changes
//! nothing.

use crate::{assert_no_redirect, spawn_app};
use dispatch::domain::Token;
use reqwest::StatusCode;
use reqwest::header::CONTENT_TYPE;

#[tokio::test]
async fn get_unsubscribe_asks_and_changes_nothing() {
    let app = spawn_app().await;
    let list = app.list("daily", false, None).await;
    app.subscribe(list, &["ayesha@example.pk"]).await;
    let tokens = app.tokens(list).await;
    let token = tokens["ayesha@example.pk"].as_str();

    let r = app.get(&format!("/unsubscribe/{token}")).await;
    assert_eq!(r.status(), StatusCode::OK);
    assert!(r.headers().get("set-cookie").is_none());
    let body = r.text().await.unwrap();
    assert!(body.contains("<form method=\"post\""), "{body}");
    assert!(body.contains("The daily list"));
    assert!(body.contains("name=\"scope\" value=\"all\""));
    assert!(
        !body.contains("ayesha"),
        "the page must not show the address"
    );
    // HEAD (link checkers) must not unsubscribe either.
    let r = app
        .http
        .head(app.url(&format!("/unsubscribe/{token}")))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(
        app.status("ayesha@example.pk", "daily").await.as_deref(),
        Some("active")
    );
}

#[tokio::test]
async fn one_click_post_urlencoded_multipart_and_empty() {
    let app = spawn_app().await;
    let list = app.list("daily", false, None).await;
    let readers = [
        "url@example.com",
        "multi@example.com",
        "empty@example.com",
        "stays@example.com",
    ];
    app.subscribe(list, &readers).await;
    let tokens = app.tokens(list).await;
    // The next edition's snapshot is taken now, before the unsubscribes: they must still
    // stop those deliveries.
    let next = app.edition(list).await;

    let boundary = "----dispatchTestBoundary7MA4YWxkTrZu0gW";
    let multipart = format!(
        "--{boundary}\r\nContent-Disposition: form-data; name=\"List-Unsubscribe\"\r\n\r\nOne-Click\r\n--{boundary}--\r\n"
    );
    for (reader, content_type, body) in [
        (
            "url@example.com",
            Some("application/x-www-form-urlencoded".to_owned()),
            "List-Unsubscribe=One-Click".to_owned(),
        ),
        (
            "multi@example.com",
            Some(format!("multipart/form-data; boundary={boundary}")),
            multipart,
        ),
        ("empty@example.com", None, String::new()),
    ] {
        let path = format!("/unsubscribe/{}", tokens[reader].as_str());
        for attempt in 0..2 {
            let mut req = app.http.post(app.url(&path)).body(body.clone());
            if let Some(ct) = &content_type {
                req = req.header(CONTENT_TYPE, ct);
            }
            let r = req.send().await.unwrap();
            assert_no_redirect(&r);
            assert_eq!(r.status(), StatusCode::OK, "{reader} attempt {attempt}");
            assert!(r.headers().get("set-cookie").is_none());
            let text = r.text().await.unwrap();
            assert!(text.contains("You are unsubscribed"), "{text}");
            assert_eq!(
                app.status(reader, "daily").await.as_deref(),
                Some("unsubscribed"),
                "{reader}"
            );
        }
    }
    assert_eq!(
        app.status("stays@example.com", "daily").await.as_deref(),
        Some("active")
    );

    // Nobody gets mail after they said stop: the edition made before the unsubscribes skips
    // them when claimed.
    let (claimed, skipped) = app.claim(next, list).await;
    assert_eq!(skipped, 3);
    assert_eq!(
        claimed.keys().collect::<Vec<_>>(),
        ["stays@example.com"],
        "only the reader who stayed"
    );
    // And a later edition does not even queue them.
    let (later, skipped) = app.claim(app.edition(list).await, list).await;
    assert_eq!((later.len(), skipped), (1, 0));
}

#[tokio::test]
async fn scope_all_unsubscribes_every_list() {
    let app = spawn_app().await;
    let daily = app.list("daily", false, None).await;
    let breaking = app.list("breaking", false, None).await;
    app.subscribe(daily, &["a@example.com", "b@example.com"])
        .await;
    app.subscribe(breaking, &["a@example.com", "b@example.com"])
        .await;
    let tokens = app.tokens(daily).await;

    let r = app
        .post_form(
            &format!("/unsubscribe/{}", tokens["a@example.com"].as_str()),
            "scope=all",
        )
        .await;
    assert_no_redirect(&r);
    assert_eq!(r.status(), StatusCode::OK);
    for slug in ["daily", "breaking"] {
        assert_eq!(
            app.status("a@example.com", slug).await.as_deref(),
            Some("unsubscribed")
        );
        assert_eq!(
            app.status("b@example.com", slug).await.as_deref(),
            Some("active")
        );
    }
}

#[tokio::test]
async fn bad_tokens_get_one_plain_404_and_change_nothing() {
    let app = spawn_app().await;
    let list = app.list("daily", true, None).await;
    app.subscribe(list, &["a@example.com"]).await;
    let good = app.tokens(list).await;
    assert_eq!(good.len(), 1);

    // A confirmation token is not an unsubscribe token, and vice versa.
    let r = app
        .post_form("/subscribe", "email=new%40example.com&list=daily")
        .await;
    assert_eq!(r.status(), StatusCode::OK);
    let confirm_url = app.confirmation_url("new@example.com").await;
    let confirm_token = confirm_url.rsplit('/').next().unwrap().to_owned();

    let random = Token::generate();
    let inputs = [
        random.as_str().to_owned(),
        "..%2F..%2Fetc%2Fpasswd".to_owned(),
        "short".to_owned(),
        format!("{}x", good["a@example.com"].as_str()),
        "%FF%FE".to_owned(),
    ];
    let mut bodies = Vec::new();
    for raw in &inputs {
        for path in [
            format!("/unsubscribe/{raw}"),
            format!("/preferences/{raw}"),
            format!("/confirm/{raw}"),
        ] {
            for post in [false, true] {
                if post && path.starts_with("/confirm") {
                    continue;
                }
                let r = if post {
                    app.post_form(&path, "List-Unsubscribe=One-Click&scope=all")
                        .await
                } else {
                    app.get(&path).await
                };
                assert_eq!(r.status(), StatusCode::NOT_FOUND, "{path} post={post}");
                let body = r.text().await.unwrap();
                assert!(!body.contains(raw.as_str()), "{path} echoed its input");
                assert!(!body.contains("passwd") && !body.contains("short"));
                bodies.push(body);
            }
        }
    }
    let r = app.get(&format!("/unsubscribe/{confirm_token}")).await;
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    bodies.push(r.text().await.unwrap());
    let r = app
        .get(&format!("/confirm/{}", good["a@example.com"].as_str()))
        .await;
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    bodies.push(r.text().await.unwrap());
    // A path outside the routes (the client resolves `..` itself) gets the same page.
    let r = app.get("/unsubscribe/../etc/passwd").await;
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    bodies.push(r.text().await.unwrap());
    assert!(bodies.windows(2).all(|w| w[0] == w[1]), "404 pages differ");

    assert_eq!(
        app.status("a@example.com", "daily").await.as_deref(),
        Some("active")
    );
    assert_eq!(
        app.status("new@example.com", "daily").await.as_deref(),
        Some("pending")
    );
}
