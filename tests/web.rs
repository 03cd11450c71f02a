//! The web endpoints over real HTTP: the real router served on a loopback port by
//! `web::serve`, a real SQLite file, and reqwest as the client (no cookies, no redirects
//! followed, exactly like a mailbox provider's one-click POST).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::num::NonZeroU32;
use std::sync::{Arc, Mutex};
use std::time::Duration as StdDuration;

use chrono::{Duration, Utc};
use dispatch::config::Config;
use dispatch::domain::{CategorySet, EmailAddress, ListSlug, Token, WebUrl};
use dispatch::store::subscribers::NewSubscription;
use dispatch::store::{Created, EditionKind, ListSpec, NewEdition, Store};
use dispatch::web::{self, AppState, ConfirmationSender, RateLimits};
use futures_util::future::BoxFuture;
use governor::Quota;
use reqwest::StatusCode;
use reqwest::header::{CONTENT_TYPE, LOCATION};

/// Records confirmation emails instead of sending them.
#[derive(Default)]
struct Recorder {
    sent: Mutex<Vec<(String, String, String)>>,
}

impl ConfirmationSender for Recorder {
    fn send(
        &self,
        to: &EmailAddress,
        list_name: &str,
        confirm_url: &str,
    ) -> BoxFuture<'_, anyhow::Result<()>> {
        let item = (to.to_string(), list_name.to_owned(), confirm_url.to_owned());
        Box::pin(async move {
            self.sent.lock().unwrap().push(item);
            Ok(())
        })
    }
}

struct App {
    base: String,
    store: Store,
    recorder: Arc<Recorder>,
    http: reqwest::Client,
    _shutdown: tokio::sync::oneshot::Sender<()>,
    _dir: tempfile::TempDir,
}

async fn spawn_app() -> App {
    spawn_app_with(RateLimits::default()).await
}

async fn spawn_app_with(limits: RateLimits) -> App {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("web.db")).await.unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr: SocketAddr = listener.local_addr().unwrap();
    let mut config = Config::default();
    config.web.public_url = WebUrl::parse(&format!("http://{addr}")).unwrap();
    config.digest.category_order = vec!["Politics".into(), "Business".into(), "Sport".into()];
    let recorder = Arc::new(Recorder::default());
    let mut state = AppState::new(store.clone(), Arc::new(config), recorder.clone());
    state.limits = Arc::new(limits);
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(web::serve(listener, state, async move {
        let _ = rx.await;
    }));
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    App {
        base: format!("http://{addr}"),
        store,
        recorder,
        http,
        _shutdown: tx,
        _dir: dir,
    }
}

impl App {
    async fn list(&self, slug: &str, double_opt_in: bool, categories: Option<&str>) -> i64 {
        self.store
            .create_list(
                &ListSlug::parse(slug).unwrap(),
                &ListSpec {
                    name: Some(format!("The {slug} list")),
                    double_opt_in: Some(double_opt_in),
                    categories: categories.map(|c| Some(CategorySet::parse_list(c).unwrap())),
                    ..Default::default()
                },
            )
            .await
            .unwrap()
            .id
    }

    async fn subscribe(&self, list_id: i64, emails: &[&str]) {
        let rows: Vec<NewSubscription> = emails
            .iter()
            .map(|e| NewSubscription {
                email: EmailAddress::parse(e).unwrap(),
                name: None,
                categories: None,
            })
            .collect();
        self.store
            .subscribe_batch(list_id, &rows, "test", false)
            .await
            .unwrap();
    }

    /// Makes a new edition of the list (windows follow on) and returns its id.
    async fn edition(&self, list_id: i64) -> i64 {
        let start = self
            .store
            .last_digest_end(list_id)
            .await
            .unwrap()
            .unwrap_or_else(|| Utc::now() - Duration::days(30));
        let e = NewEdition {
            list_id,
            kind: EditionKind::Digest,
            slot: None,
            breaking_article_id: None,
            window_start: start,
            window_end: start + Duration::hours(1),
            subject: "Digest".into(),
            articles: vec![],
            skip_reason: None,
            empty_variants: vec![],
        };
        match self.store.create_edition(&e).await.unwrap() {
            Created::New { id, .. } => id,
            Created::Existing { id } => id,
        }
    }

    /// Claims every due delivery of the edition: email → that message's token.
    async fn claim(&self, edition: i64, list_id: i64) -> (HashMap<String, Token>, u64) {
        let (claimed, skipped) = self
            .store
            .claim_deliveries(edition, list_id, 1000, Duration::minutes(5))
            .await
            .unwrap();
        (
            claimed.into_iter().map(|c| (c.email, c.token)).collect(),
            skipped,
        )
    }

    /// A new edition claimed at once: each current reader's unsubscribe token.
    async fn tokens(&self, list_id: i64) -> HashMap<String, Token> {
        let e = self.edition(list_id).await;
        self.claim(e, list_id).await.0
    }

    /// The address's subscription status on a list (by slug), if it has one.
    async fn status(&self, email: &str, slug: &str) -> Option<String> {
        let sub = self
            .store
            .subscriber_by_email(&EmailAddress::parse(email).unwrap())
            .await
            .ok()?;
        self.store
            .subscriptions_of(sub.id)
            .await
            .unwrap()
            .into_iter()
            .find(|s| s.list == slug)
            .map(|s| s.status)
    }

    async fn categories(&self, email: &str, slug: &str) -> Option<String> {
        let sub = self
            .store
            .subscriber_by_email(&EmailAddress::parse(email).unwrap())
            .await
            .unwrap();
        self.store
            .subscriptions_of(sub.id)
            .await
            .unwrap()
            .into_iter()
            .find(|s| s.list == slug)
            .unwrap()
            .categories
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    async fn get(&self, path: &str) -> reqwest::Response {
        self.http.get(self.url(path)).send().await.unwrap()
    }

    async fn post_form(&self, path: &str, body: &str) -> reqwest::Response {
        self.http
            .post(self.url(path))
            .header(CONTENT_TYPE, "application/x-www-form-urlencoded")
            .body(body.to_owned())
            .send()
            .await
            .unwrap()
    }

    /// Waits for the background confirmation mail to `to`, returning its URL.
    async fn confirmation_url(&self, to: &str) -> String {
        for _ in 0..200 {
            if let Some((_, _, url)) = self
                .recorder
                .sent
                .lock()
                .unwrap()
                .iter()
                .rev()
                .find(|(t, _, _)| t == to)
            {
                return url.clone();
            }
            tokio::time::sleep(StdDuration::from_millis(10)).await;
        }
        panic!("no confirmation mail to {to}");
    }

    fn mails_to(&self, to: &str) -> usize {
        self.recorder
            .sent
            .lock()
            .unwrap()
            .iter()
            .filter(|(t, _, _)| t == to)
            .count()
    }
}

fn assert_no_redirect(r: &reqwest::Response) {
    assert!(!r.status().is_redirection(), "{}", r.status());
    assert!(r.headers().get(LOCATION).is_none());
}

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

    // Promise 2: the edition made before the unsubscribes skips them when claimed.
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

    let path = url.strip_prefix(&app.base).unwrap().to_owned();
    for _ in 0..2 {
        let r = app.get(&path).await;
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
    let r = app.get(url.strip_prefix(&app.base).unwrap()).await;
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

#[tokio::test]
async fn preferences_choose_categories_and_leave_everything() {
    let app = spawn_app().await;
    let daily = app
        .list("daily", false, Some("Politics,Business,Sport"))
        .await;
    let weekly = app.list("weekly", false, None).await;
    app.subscribe(daily, &["r@example.com"]).await;
    app.subscribe(weekly, &["r@example.com"]).await;
    let token = app.tokens(daily).await["r@example.com"].as_str().to_owned();
    let path = format!("/preferences/{token}");

    let page = app.get(&path).await;
    assert_eq!(page.status(), StatusCode::OK);
    let page = page.text().await.unwrap();
    assert!(page.contains(&format!("name=\"cat.{daily}\" value=\"Sport\"")));
    assert!(page.contains("The weekly list"));

    // A subset of topics is stored in canonical form; the weekly list (every topic ticked,
    // as the page shows it) keeps "all".
    let all_weekly = format!("cat.{weekly}=Politics&cat.{weekly}=Business&cat.{weekly}=Sport");
    let body = format!(
        "list={daily}&subscribed={daily}&cat.{daily}=sport&cat.{daily}=Politics&list={weekly}&subscribed={weekly}&{all_weekly}&action=save"
    );
    let r = app.post_form(&path, &body).await;
    assert_eq!(r.status(), StatusCode::OK);
    let text = r.text().await.unwrap();
    assert!(text.contains("Saved."), "{text}");
    assert_eq!(
        app.categories("r@example.com", "daily").await.as_deref(),
        Some("Politics;Sport")
    );
    assert_eq!(app.categories("r@example.com", "weekly").await, None);

    // Every topic ticked means all (NULL); unticking a list leaves it.
    let body = format!(
        "list={daily}&subscribed={daily}&cat.{daily}=Sport&cat.{daily}=Politics&cat.{daily}=Business&list={weekly}"
    );
    let r = app.post_form(&path, &body).await;
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(app.categories("r@example.com", "daily").await, None);
    assert_eq!(
        app.status("r@example.com", "weekly").await.as_deref(),
        Some("unsubscribed")
    );
    // No topic at all while staying is refused, and nothing changes.
    let r = app
        .post_form(&path, &format!("list={daily}&subscribed={daily}"))
        .await;
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    assert_eq!(
        app.status("r@example.com", "daily").await.as_deref(),
        Some("active")
    );
    // Rejoining a list they had is allowed from their own preferences page.
    let r = app
        .post_form(
            &path,
            &format!("list={weekly}&subscribed={weekly}&{all_weekly}"),
        )
        .await;
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(
        app.status("r@example.com", "weekly").await.as_deref(),
        Some("active")
    );

    let r = app.post_form(&path, "action=unsubscribe-all").await;
    assert_no_redirect(&r);
    assert_eq!(r.status(), StatusCode::OK);
    for slug in ["daily", "weekly"] {
        assert_eq!(
            app.status("r@example.com", slug).await.as_deref(),
            Some("unsubscribed")
        );
    }
}

#[tokio::test]
async fn healthz_and_metrics() {
    let app = spawn_app().await;
    let r = app.get("/healthz").await;
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(r.text().await.unwrap().trim(), "ok");

    let list = app.list("daily", false, None).await;
    app.subscribe(list, &["a@example.com", "b@example.com"])
        .await;
    let tokens = app.tokens(list).await;
    app.post_form(
        &format!("/unsubscribe/{}", tokens["a@example.com"].as_str()),
        "",
    )
    .await;

    let r = app.get("/metrics").await;
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(
        r.headers()[CONTENT_TYPE].to_str().unwrap(),
        "text/plain; version=0.0.4; charset=utf-8"
    );
    let text = r.text().await.unwrap();
    for name in [
        "dispatch_messages_total",
        "dispatch_retries_total",
        "dispatch_queue_depth",
        "dispatch_last_edition_timestamp_seconds",
        "dispatch_last_edition_lateness_seconds",
        "dispatch_subscribers",
    ] {
        assert!(text.contains(&format!("# TYPE {name} ")), "{name}");
    }
    // Every sample line is `name{labels} value`.
    let mut samples = HashMap::new();
    for line in text.lines().filter(|l| !l.starts_with('#')) {
        let (series, value) = line.rsplit_once(' ').expect(line);
        let open = series.find('{').expect(line);
        assert!(series.ends_with('}'), "{line}");
        assert!(
            series[..open]
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_'),
            "{line}"
        );
        for pair in series[open + 1..series.len() - 1].split(',') {
            let (k, v) = pair.split_once('=').expect(line);
            assert!(
                !k.is_empty() && v.starts_with('"') && v.ends_with('"'),
                "{line}"
            );
        }
        value.parse::<f64>().expect(line);
        samples.insert(series.to_owned(), value.to_owned());
    }
    assert_eq!(samples["dispatch_queue_depth{list=\"daily\"}"], "2");
    assert_eq!(
        samples["dispatch_subscribers{list=\"daily\",status=\"unsubscribed\"}"],
        "1"
    );
    assert_eq!(
        samples["dispatch_subscribers{list=\"daily\",status=\"active\"}"],
        "1"
    );
    assert_ne!(
        samples["dispatch_last_edition_timestamp_seconds{list=\"daily\"}"],
        "0"
    );
}
