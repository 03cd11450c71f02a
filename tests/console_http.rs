//! The newsroom console over real HTTP: the real router on 127.0.0.1, a real SQLite file.
//! Every role rule, CSRF, sign-in limits, set-password links, sessions and logout, and
//! breaking news sent once per article per list.

mod support;

use std::sync::Arc;

use chrono::Utc;
use dispatch::config::Config;
use dispatch::console::{ADMIN_PATHS, ConsoleState, PRE_CSRF_COOKIE, SESSION_COOKIE};
use dispatch::domain::{DbTime, EmailAddress, ListSlug, Role, Token};
use dispatch::store::{ListSpec, NewArticle, Store};
use reqwest::StatusCode;
use reqwest::header::{CONTENT_TYPE, COOKIE, LOCATION, SET_COOKIE};
use support::db::TempDb;

const PASSWORD: &str = "a minister resigns at dawn";

struct Console {
    base: String,
    store: Store,
    http: reqwest::Client,
    /// The file transport's outbox ("Send test to me" writes there).
    outbox: tempfile::TempDir,
    _db: TempDb,
}

/// A signed-in browser: its session cookie and the CSRF token of its forms.
struct Session {
    cookie: String,
    csrf: String,
}

async fn start() -> Console {
    start_with(None).await
}

/// The console, stopping (live streams and the server) when `stop` turns `true`.
async fn start_with(stop: Option<tokio::sync::watch::Receiver<bool>>) -> Console {
    let db = TempDb::new();
    let store = db.store().await;
    store
        .create_list(
            &ListSlug::parse("daily").unwrap(),
            &ListSpec {
                name: Some("The daily".into()),
                sends_breaking: Some(true),
                ..ListSpec::default()
            },
        )
        .await
        .unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let outbox = tempfile::tempdir().unwrap();
    let mut config = Config::default();
    config.delivery.outbox = outbox.path().to_path_buf();
    let mut state = ConsoleState::new(store.clone(), Arc::new(config));
    if let Some(stop) = &stop {
        state = state.with_shutdown(stop.clone());
    }
    tokio::spawn(dispatch::console::serve(listener, state, async move {
        match stop {
            Some(mut stop) => {
                let _ = stop.wait_for(|s| *s).await;
            }
            None => std::future::pending().await,
        }
    }));
    // reqwest is built with "rustls-no-provider"; this plain-HTTP client needs a provider.
    let _ = rustls::crypto::ring::default_provider().install_default();
    Console {
        base: format!("http://{addr}"),
        store,
        http: reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap(),
        outbox,
        _db: db,
    }
}

fn cookie_of(res: &reqwest::Response, name: &str) -> Option<String> {
    res.headers()
        .get_all(SET_COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find_map(|v| {
            let first = v.split(';').next()?;
            let (n, val) = first.split_once('=')?;
            (n == name).then(|| val.to_owned())
        })
}

/// The value of `<input type="hidden" name="csrf" value="…">` in a page.
fn csrf_in(html: &str) -> String {
    let at = html.find("name=\"csrf\" value=\"").expect("a CSRF field") + 19;
    html[at..].split('"').next().unwrap().to_owned()
}

fn form(fields: &[(&str, &str)]) -> String {
    form_urlencoded::Serializer::new(String::new())
        .extend_pairs(fields)
        .finish()
}

impl Console {
    async fn get(&self, path: &str, cookie: Option<&str>) -> reqwest::Response {
        let mut req = self.http.get(format!("{}{path}", self.base));
        if let Some(c) = cookie {
            req = req.header(COOKIE, c);
        }
        req.send().await.unwrap()
    }

    async fn post(
        &self,
        path: &str,
        cookie: Option<&str>,
        fields: &[(&str, &str)],
    ) -> reqwest::Response {
        let mut req = self
            .http
            .post(format!("{}{path}", self.base))
            .header(CONTENT_TYPE, "application/x-www-form-urlencoded")
            .body(form(fields));
        if let Some(c) = cookie {
            req = req.header(COOKIE, c);
        }
        req.send().await.unwrap()
    }

    /// Adds a user the way `dispatch users add` does and returns the set-password path.
    async fn add_user(&self, email: &str, role: Role) -> String {
        let token = Token::generate();
        let expires = DbTime::from(Utc::now() + chrono::Duration::hours(24));
        self.store
            .create_user(
                &EmailAddress::parse(email).unwrap(),
                role,
                &token.hash(),
                expires,
            )
            .await
            .unwrap();
        format!("/set-password/{}", token.as_str())
    }

    /// The public forms' CSRF cookie and token, as a browser gets them from `/login`.
    async fn pre(&self, path: &str) -> (String, String) {
        let res = self.get(path, None).await;
        assert_eq!(res.status(), StatusCode::OK, "{path}");
        let cookie = format!(
            "{PRE_CSRF_COOKIE}={}",
            cookie_of(&res, PRE_CSRF_COOKIE).unwrap()
        );
        let csrf = csrf_in(&res.text().await.unwrap());
        (cookie, csrf)
    }

    /// Adds a user, sets their password through the link, signs in.
    async fn user(&self, email: &str, role: Role) -> Session {
        let link = self.add_user(email, role).await;
        let (pre, csrf) = self.pre(&link).await;
        let res = self
            .post(
                &link,
                Some(&pre),
                &[
                    ("csrf", &csrf),
                    ("password", PASSWORD),
                    ("repeat", PASSWORD),
                ],
            )
            .await;
        assert_eq!(res.status(), StatusCode::OK);
        self.sign_in(email, PASSWORD).await.expect("signed in")
    }

    async fn try_sign_in(&self, email: &str, password: &str) -> reqwest::Response {
        let (pre, csrf) = self.pre("/login").await;
        self.post(
            "/login",
            Some(&pre),
            &[("csrf", &csrf), ("email", email), ("password", password)],
        )
        .await
    }

    async fn sign_in(&self, email: &str, password: &str) -> Option<Session> {
        let res = self.try_sign_in(email, password).await;
        if res.status() != StatusCode::SEE_OTHER {
            return None;
        }
        let set = res
            .headers()
            .get_all(SET_COOKIE)
            .iter()
            .map(|v| v.to_str().unwrap().to_owned())
            .find(|v| v.starts_with(SESSION_COOKIE))
            .unwrap();
        assert!(
            set.contains("HttpOnly") && set.contains("SameSite=Strict"),
            "{set}"
        );
        assert!(
            !set.contains("Secure"),
            "the console is on http here: {set}"
        );
        let cookie = format!(
            "{SESSION_COOKIE}={}",
            cookie_of(&res, SESSION_COOKIE).unwrap()
        );
        let page = self.get("/", Some(&cookie)).await;
        assert_eq!(page.status(), StatusCode::OK);
        let csrf = csrf_in(&page.text().await.unwrap());
        Some(Session { cookie, csrf })
    }
}

#[tokio::test]
async fn signed_out_pages_redirect_to_login_and_posts_are_forbidden() {
    let c = start().await;
    for path in ["/", "/articles", "/editions", "/subscribers", "/users"] {
        let res = c.get(path, None).await;
        assert_eq!(res.status(), StatusCode::SEE_OTHER, "{path}");
        assert_eq!(res.headers()[LOCATION], "/login", "{path}");
    }
    let res = c.post("/editions/1/cancel", None, &[("csrf", "x")]).await;
    assert_eq!(res.status(), StatusCode::FORBIDDEN);
    let forged = format!("{SESSION_COOKIE}={}", Token::generate().as_str());
    assert_eq!(
        c.get("/", Some(&forged)).await.status(),
        StatusCode::SEE_OTHER
    );
}

#[tokio::test]
async fn editors_get_403_on_every_admin_page_and_admins_reach_them() {
    let c = start().await;
    let editor = c.user("ed@example.com", Role::Editor).await;
    let admin = c.user("admin@example.com", Role::Admin).await;
    for path in ADMIN_PATHS {
        let res = c.get(path, Some(&editor.cookie)).await;
        assert_eq!(res.status(), StatusCode::FORBIDDEN, "editor on {path}");
        let res = c.get(path, Some(&admin.cookie)).await;
        assert_eq!(res.status(), StatusCode::OK, "admin on {path}");
    }
    for path in ["/", "/articles", "/editions"] {
        for s in [&editor, &admin] {
            assert_eq!(
                c.get(path, Some(&s.cookie)).await.status(),
                StatusCode::OK,
                "{path}"
            );
        }
    }
    // A POST under an admin path is refused by role too, even with a valid CSRF token.
    let res = c
        .post(
            "/subscribers/erase",
            Some(&editor.cookie),
            &[("csrf", &editor.csrf)],
        )
        .await;
    assert_eq!(res.status(), StatusCode::FORBIDDEN);
    // The editor's navigation does not offer what they cannot open.
    let home = c.get("/", Some(&editor.cookie)).await.text().await.unwrap();
    assert!(!home.contains("href=\"/subscribers\""));
}

#[tokio::test]
async fn a_post_without_the_csrf_token_is_403_and_changes_nothing() {
    let c = start().await;
    let s = c.user("ed@example.com", Role::Editor).await;
    for fields in [vec![], vec![("csrf", "wrong")]] {
        let res = c.post("/logout", Some(&s.cookie), &fields).await;
        assert_eq!(res.status(), StatusCode::FORBIDDEN);
    }
    assert_eq!(
        c.get("/", Some(&s.cookie)).await.status(),
        StatusCode::OK,
        "still signed in"
    );
    // The sign-in form needs its token too.
    let res = c
        .post(
            "/login",
            None,
            &[("email", "ed@example.com"), ("password", PASSWORD)],
        )
        .await;
    assert_eq!(res.status(), StatusCode::FORBIDDEN);
    // Another session's token is not this session's.
    let other = c.user("other@example.com", Role::Editor).await;
    let res = c
        .post("/logout", Some(&s.cookie), &[("csrf", &other.csrf)])
        .await;
    assert_eq!(res.status(), StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn logout_ends_the_session() {
    let c = start().await;
    let s = c.user("ed@example.com", Role::Editor).await;
    let res = c
        .post("/logout", Some(&s.cookie), &[("csrf", &s.csrf)])
        .await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    assert!(cookie_of(&res, SESSION_COOKIE).is_some_and(|v| v.is_empty()));
    let res = c.get("/", Some(&s.cookie)).await;
    assert_eq!(
        res.status(),
        StatusCode::SEE_OTHER,
        "the old cookie no longer works"
    );
}

#[tokio::test]
async fn wrong_password_and_unknown_address_get_the_same_answer_then_429() {
    let c = start().await;
    c.user("ed@example.com", Role::Editor).await;
    let wrong = c.try_sign_in("ed@example.com", "not the password").await;
    let unknown = c
        .try_sign_in("nobody@example.com", "not the password")
        .await;
    assert_eq!(wrong.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(unknown.status(), StatusCode::UNAUTHORIZED);
    let (a, b) = (wrong.text().await.unwrap(), unknown.text().await.unwrap());
    assert_eq!(
        a.replace(&csrf_in(&a), ""),
        b.replace(&csrf_in(&b), ""),
        "same page"
    );
    // 10 failures from this IP in 15 minutes: the next try is refused even with the right
    // password, and so is any other account from the same IP (the per-account rule is
    // proven in `console::limits`' unit tests, as both keys are counted alike).
    for _ in 2..10 {
        let res = c.try_sign_in("ed@example.com", "not the password").await;
        assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    }
    let res = c.try_sign_in("ed@example.com", PASSWORD).await;
    assert_eq!(res.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(res.headers()["retry-after"], "900");
    let res = c.try_sign_in("someone@example.com", PASSWORD).await;
    assert_eq!(res.status(), StatusCode::TOO_MANY_REQUESTS);
}

#[tokio::test]
async fn a_set_password_link_works_once_and_refuses_weak_passwords() {
    let c = start().await;
    let link = c.add_user("ed@example.com", Role::Editor).await;
    let (pre, csrf) = c.pre(&link).await;
    for (pass, repeat) in [
        ("short", "short"),
        ("password1234", "password1234"),
        (PASSWORD, "other"),
    ] {
        let res = c
            .post(
                &link,
                Some(&pre),
                &[("csrf", &csrf), ("password", pass), ("repeat", repeat)],
            )
            .await;
        assert_eq!(res.status(), StatusCode::UNPROCESSABLE_ENTITY, "{pass}");
    }
    assert!(
        c.sign_in("ed@example.com", PASSWORD).await.is_none(),
        "no password yet"
    );
    let ok = c
        .post(
            &link,
            Some(&pre),
            &[
                ("csrf", &csrf),
                ("password", PASSWORD),
                ("repeat", PASSWORD),
            ],
        )
        .await;
    assert_eq!(ok.status(), StatusCode::OK);
    assert_eq!(
        c.get(&link, None).await.status(),
        StatusCode::NOT_FOUND,
        "used up"
    );
    let stored = c
        .store
        .user_login(&EmailAddress::parse("ed@example.com").unwrap())
        .await
        .unwrap()
        .unwrap();
    assert!(stored.password_hash.unwrap().starts_with("$argon2id$"));
    assert!(c.sign_in("ed@example.com", PASSWORD).await.is_some());
}

#[tokio::test]
async fn a_disabled_user_is_signed_out_and_cannot_sign_in() {
    let c = start().await;
    let s = c.user("ed@example.com", Role::Editor).await;
    let email = EmailAddress::parse("ed@example.com").unwrap();
    assert!(c.store.disable_user(&email).await.unwrap());
    assert_eq!(
        c.get("/", Some(&s.cookie)).await.status(),
        StatusCode::SEE_OTHER
    );
    assert!(c.sign_in("ed@example.com", PASSWORD).await.is_none());
}

#[tokio::test]
async fn breaking_news_is_sent_once_and_the_second_send_names_who_sent_it() {
    let c = start().await;
    let (article, _) = c
        .store
        .insert_article(&NewArticle {
            external_id: "story-1".into(),
            url: "https://news.example/story-1".into(),
            title: "Minister resigns".into(),
            summary: "The minister resigned this morning.".into(),
            author: None,
            category: "General News".into(),
            language: None,
            image_url: None,
            published_at: Utc::now(),
            breaking: false,
        })
        .await
        .unwrap();
    let ed = c.user("ed@example.com", Role::Editor).await;
    let other = c.user("desk@example.com", Role::Editor).await;
    let path = format!("/articles/{article}/breaking");
    let page = c.get(&path, Some(&ed.cookie)).await.text().await.unwrap();
    assert!(page.contains("Minister resigns") && page.contains("value=\"daily\" checked"));
    assert!(
        page.contains("Subject: </strong>Breaking: Minister resigns"),
        "{page}"
    );
    assert!(
        page.contains("sandbox=\"\" srcdoc=\""),
        "the HTML part is sandboxed"
    );
    let res = c
        .post(
            &path,
            Some(&ed.cookie),
            &[("csrf", &ed.csrf), ("list", "daily"), ("action", "send")],
        )
        .await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    let edition = res.headers()[LOCATION].to_str().unwrap().to_owned();
    assert!(edition.starts_with("/editions/"), "{edition}");
    assert_eq!(
        c.get(&edition, Some(&ed.cookie)).await.status(),
        StatusCode::OK
    );
    let again = c
        .post(
            &path,
            Some(&other.cookie),
            &[("csrf", &other.csrf), ("list", "daily"), ("action", "send")],
        )
        .await;
    assert_eq!(again.status(), StatusCode::CONFLICT);
    assert!(
        again
            .text()
            .await
            .unwrap()
            .contains("already sent by ed@example.com")
    );
    assert_eq!(
        c.store.editions(None, 10).await.unwrap().len(),
        1,
        "one edition"
    );
    let log = c.store.audit_log(None, 10).await.unwrap();
    assert!(log.iter().any(|r| r.action == "breaking.send"
        && r.actor == "ed@example.com"
        && r.ip.as_deref() == Some("127.0.0.1")));
}

#[tokio::test]
async fn an_edition_is_paused_resumed_and_cancelled_only_with_confirmation() {
    let c = start().await;
    let (article, _) = c
        .store
        .insert_article(&NewArticle {
            external_id: "story-2".into(),
            url: "https://news.example/story-2".into(),
            title: "Storm".into(),
            summary: String::new(),
            author: None,
            category: "General News".into(),
            language: None,
            image_url: None,
            published_at: Utc::now(),
            breaking: false,
        })
        .await
        .unwrap();
    let ed = c.user("ed@example.com", Role::Editor).await;
    let res = c
        .post(
            &format!("/articles/{article}/breaking"),
            Some(&ed.cookie),
            &[("csrf", &ed.csrf), ("list", "daily")],
        )
        .await;
    let edition = res.headers()[LOCATION].to_str().unwrap().to_owned();
    let id: i64 = edition.rsplit('/').next().unwrap().parse().unwrap();
    let status = |c: &Console| {
        let store = c.store.clone();
        async move { store.edition(id).await.unwrap().status.to_string() }
    };
    let first = status(&c).await;
    if first == "sending" {
        let res = c
            .post(
                &format!("{edition}/pause"),
                Some(&ed.cookie),
                &[("csrf", &ed.csrf)],
            )
            .await;
        assert_eq!(res.status(), StatusCode::SEE_OTHER);
        assert_eq!(status(&c).await, "paused");
        let res = c
            .post(
                &format!("{edition}/resume"),
                Some(&ed.cookie),
                &[("csrf", &ed.csrf)],
            )
            .await;
        assert_eq!(res.status(), StatusCode::SEE_OTHER);
        assert_eq!(status(&c).await, "sending");
        let res = c
            .post(
                &format!("{edition}/cancel"),
                Some(&ed.cookie),
                &[("csrf", &ed.csrf)],
            )
            .await;
        assert_eq!(
            res.status(),
            StatusCode::UNPROCESSABLE_ENTITY,
            "no confirmation"
        );
        assert_eq!(status(&c).await, "sending");
        let res = c
            .post(
                &format!("{edition}/cancel"),
                Some(&ed.cookie),
                &[("csrf", &ed.csrf), ("confirm", "yes")],
            )
            .await;
        assert_eq!(res.status(), StatusCode::SEE_OTHER);
        assert_eq!(status(&c).await, "cancelled");
    } else {
        // No readers: the edition is finished at once and cannot be paused.
        let res = c
            .post(
                &format!("{edition}/pause"),
                Some(&ed.cookie),
                &[("csrf", &ed.csrf)],
            )
            .await;
        assert_eq!(res.status(), StatusCode::CONFLICT, "{first}");
    }
    let events = c.get(&format!("{edition}/events"), Some(&ed.cookie)).await;
    assert_eq!(events.headers()[CONTENT_TYPE], "text/event-stream");
    let body = events.text().await.unwrap();
    assert!(body.contains("\"final\":true"), "{body}");
}

#[tokio::test]
async fn an_admin_finds_a_subscriber_by_address_unsubscribes_and_erases_them() {
    use dispatch::store::subscribers::NewSubscription;
    let c = start().await;
    let list = c.store.list_by_slug("daily").await.unwrap();
    let email = EmailAddress::parse("Reader@Example.org").unwrap();
    c.store
        .subscribe_batch(
            list.id,
            &[NewSubscription {
                email: email.clone(),
                name: None,
                categories: None,
            }],
            "test",
            false,
        )
        .await
        .unwrap();
    let admin = c.user("admin@example.com", Role::Admin).await;
    let page = c
        .get(
            "/subscribers?email=reader%40example.org",
            Some(&admin.cookie),
        )
        .await
        .text()
        .await
        .unwrap();
    assert!(
        page.contains("<h2>reader@example.org</h2>") && page.contains("<td>active</td>"),
        "{page}"
    );
    let fields = [
        ("csrf", admin.csrf.as_str()),
        ("email", "reader@example.org"),
    ];
    let res = c
        .post("/subscribers/unsubscribe", Some(&admin.cookie), &fields)
        .await;
    assert_eq!(res.status(), StatusCode::OK);
    assert!(res.text().await.unwrap().contains("<td>unsubscribed</td>"));
    let res = c
        .post("/subscribers/erase", Some(&admin.cookie), &fields)
        .await;
    assert!(
        res.text()
            .await
            .unwrap()
            .contains("Tick the confirmation box")
    );
    assert!(
        c.store.subscriber_by_email(&email).await.is_ok(),
        "not erased without confirming"
    );
    let mut confirmed = fields.to_vec();
    confirmed.push(("confirm", "yes"));
    let res = c
        .post("/subscribers/erase", Some(&admin.cookie), &confirmed)
        .await;
    assert_eq!(res.status(), StatusCode::OK);
    assert!(c.store.subscriber_by_email(&email).await.is_err(), "erased");
    let log = c.store.audit_log(None, 10).await.unwrap();
    assert!(
        log.iter()
            .any(|r| r.action == "subscriber.erase" && r.subject == "subscriber:@example.org")
    );
    assert!(
        log.iter()
            .all(|r| !r.subject.contains("reader@") && !r.detail.contains("reader@")),
        "the audit log keeps no erased address"
    );
}

#[tokio::test]
async fn a_live_progress_stream_ends_when_the_daemon_stops() {
    use dispatch::store::subscribers::NewSubscription;
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let c = start_with(Some(stop_rx)).await;
    let list = c.store.list_by_slug("daily").await.unwrap();
    let reader = NewSubscription {
        email: EmailAddress::parse("reader@example.org").unwrap(),
        name: None,
        categories: None,
    };
    c.store
        .subscribe_batch(list.id, &[reader], "test", false)
        .await
        .unwrap();
    let (article, _) = c
        .store
        .insert_article(&NewArticle {
            external_id: "story-3".into(),
            url: "https://news.example/story-3".into(),
            title: "Flood".into(),
            summary: String::new(),
            author: None,
            category: "General News".into(),
            language: None,
            image_url: None,
            published_at: Utc::now(),
            breaking: false,
        })
        .await
        .unwrap();
    let ed = c.user("ed@example.com", Role::Editor).await;
    let res = c
        .post(
            &format!("/articles/{article}/breaking"),
            Some(&ed.cookie),
            &[("csrf", &ed.csrf), ("list", "daily")],
        )
        .await;
    let edition = res.headers()[LOCATION].to_str().unwrap().to_owned();
    // No sender runs here, so the edition stays "sending" and the stream would go on.
    let mut events = c.get(&format!("{edition}/events"), Some(&ed.cookie)).await;
    let first = events.chunk().await.unwrap().unwrap();
    assert!(String::from_utf8_lossy(&first).contains("\"status\":\"sending\""));
    stop_tx.send(true).unwrap();
    // A guard against a hang, not a timing assertion: the stream must end at all.
    let rest = tokio::time::timeout(std::time::Duration::from_secs(30), async {
        while events.chunk().await.unwrap().is_some() {}
    })
    .await;
    assert!(rest.is_ok(), "the stream ended when the daemon stopped");
}

#[tokio::test]
async fn send_test_to_me_sends_one_copy_to_the_signed_in_user_only() {
    let c = start().await;
    let (article, _) = c
        .store
        .insert_article(&NewArticle {
            external_id: "story-4".into(),
            url: "https://news.example/story-4".into(),
            title: "Budget passed".into(),
            summary: String::new(),
            author: None,
            category: "General News".into(),
            language: None,
            image_url: None,
            published_at: Utc::now(),
            breaking: false,
        })
        .await
        .unwrap();
    let ed = c.user("ed@example.com", Role::Editor).await;
    let res = c
        .post(
            &format!("/articles/{article}/breaking"),
            Some(&ed.cookie),
            &[("csrf", &ed.csrf), ("list", "daily"), ("action", "test")],
        )
        .await;
    assert_eq!(res.status(), StatusCode::OK);
    assert!(
        res.text()
            .await
            .unwrap()
            .contains("Test sent to ed@example.com")
    );
    let files: Vec<_> = std::fs::read_dir(c.outbox.path())
        .unwrap()
        .flatten()
        .collect();
    assert_eq!(files.len(), 1, "one message");
    let eml = std::fs::read_to_string(files[0].path()).unwrap();
    assert!(eml.contains("To: ed@example.com"), "{eml}");
    assert!(eml.contains("Subject: Breaking: Budget passed"), "{eml}");
    assert!(
        c.store.editions(None, 10).await.unwrap().is_empty(),
        "nothing recorded for readers"
    );
}

/// The admin pages added with the lists, users and keys forms, for the role table.
const ADMIN_PAGES: &[&str] = &[
    "/lists/new",
    "/lists/daily/edit",
    "/lists/next-sends?schedule=0+7+*+*+*&timezone=UTC",
    "/subscribers/export?list=daily",
];

/// Every admin POST with fields that would change something if it got through.
const ADMIN_POSTS: &[(&str, &[(&str, &str)])] = &[
    (
        "/lists/new",
        &[
            ("slug", "forged"),
            ("name", "Forged"),
            ("timezone", "UTC"),
            ("language", "en"),
            ("do", "save"),
        ],
    ),
    (
        "/lists/daily/edit",
        &[
            ("name", "Forged"),
            ("timezone", "UTC"),
            ("language", "en"),
            ("do", "save"),
        ],
    ),
    (
        "/users/add",
        &[("email", "forged@example.com"), ("role", "admin")],
    ),
    ("/users/disable", &[("email", "admin@example.com")]),
    ("/users/reset", &[("email", "admin@example.com")]),
    ("/api-keys/create", &[("name", "forged"), ("role", "admin")]),
    ("/api-keys/revoke", &[("name", "cms")]),
    (
        "/subscribers/import",
        &[("list", "daily"), ("pasted", "email\nforged@example.org\n")],
    ),
];

/// Nothing any [`ADMIN_POSTS`] entry would have changed has changed.
async fn nothing_forged(c: &Console) {
    assert!(
        c.store.list_by_slug("forged").await.is_err(),
        "no list made"
    );
    assert_eq!(
        c.store.list_by_slug("daily").await.unwrap().name,
        "The daily"
    );
    let users = c.store.users().await.unwrap();
    assert!(
        users
            .iter()
            .all(|u| u.email != "forged@example.com" && u.disabled_at.is_none())
    );
    let keys = c.store.api_keys().await.unwrap();
    assert!(
        keys.iter()
            .all(|k| k.name != "forged" && k.revoked_at.is_none()),
        "{keys:?}"
    );
}

async fn with_key(c: &Console) {
    c.store
        .create_api_key("cms", Role::Editor, &dispatch::domain::ApiKey::generate())
        .await
        .unwrap();
}

#[tokio::test]
async fn editors_get_403_on_every_new_admin_page_and_post_and_reach_the_schedule() {
    let c = start().await;
    with_key(&c).await;
    let editor = c.user("ed@example.com", Role::Editor).await;
    let admin = c.user("admin@example.com", Role::Admin).await;
    for path in ADMIN_PAGES {
        assert_eq!(
            c.get(path, Some(&editor.cookie)).await.status(),
            StatusCode::FORBIDDEN,
            "editor on {path}"
        );
        assert_eq!(
            c.get(path, Some(&admin.cookie)).await.status(),
            StatusCode::OK,
            "admin on {path}"
        );
    }
    for (path, fields) in ADMIN_POSTS {
        let mut with_csrf = fields.to_vec();
        with_csrf.push(("csrf", &editor.csrf));
        let res = c.post(path, Some(&editor.cookie), &with_csrf).await;
        assert_eq!(res.status(), StatusCode::FORBIDDEN, "editor posting {path}");
    }
    nothing_forged(&c).await;
    for s in [&editor, &admin] {
        assert_eq!(
            c.get("/schedule", Some(&s.cookie)).await.status(),
            StatusCode::OK
        );
    }
}

#[tokio::test]
async fn every_new_admin_post_without_its_csrf_token_is_403_and_changes_nothing() {
    let c = start().await;
    with_key(&c).await;
    let admin = c.user("admin@example.com", Role::Admin).await;
    for (path, fields) in ADMIN_POSTS {
        for csrf in [None, Some("wrong")] {
            let mut sent = fields.to_vec();
            if let Some(t) = csrf {
                sent.push(("csrf", t));
            }
            let res = c.post(path, Some(&admin.cookie), &sent).await;
            assert_eq!(
                res.status(),
                StatusCode::FORBIDDEN,
                "{path} with csrf {csrf:?}"
            );
        }
    }
    nothing_forged(&c).await;
}

#[tokio::test]
async fn the_schedule_page_shows_five_digests_in_the_lists_zone_and_previews_the_next() {
    let c = start().await;
    c.store
        .create_list(
            &ListSlug::parse("karachi").unwrap(),
            &ListSpec {
                name: Some("Karachi morning".into()),
                schedule: Some(Some(
                    dispatch::schedule::Schedule::parse("0 7 * * *").unwrap(),
                )),
                timezone: Some(dispatch::domain::Timezone::parse("Asia/Karachi").unwrap()),
                ..ListSpec::default()
            },
        )
        .await
        .unwrap();
    c.store
        .insert_article(&NewArticle {
            external_id: "story-s".into(),
            url: "https://news.example/story-s".into(),
            title: "Budget passes".into(),
            summary: "The budget passed tonight.".into(),
            author: None,
            category: "General News".into(),
            language: None,
            image_url: None,
            published_at: Utc::now(),
            breaking: false,
        })
        .await
        .unwrap();
    let ed = c.user("ed@example.com", Role::Editor).await;
    let page = c
        .get("/schedule?preview=karachi", Some(&ed.cookie))
        .await
        .text()
        .await
        .unwrap();
    let karachi = &page[page
        .find("Karachi morning (karachi)")
        .expect("the list's row")..];
    let row = &karachi[..karachi.find("</tr>").unwrap()];
    assert_eq!(row.matches("<time").count(), 5, "{row}");
    assert_eq!(
        row.matches(" 07:00 PKT</time>").count(),
        5,
        "07:00 Karachi time: {row}"
    );
    assert!(
        page.contains("The next digest of Karachi morning"),
        "{page}"
    );
    assert!(
        page.contains("sandbox=\"\" srcdoc=") && page.contains("Budget passes"),
        "{page}"
    );
    // The daily list has no schedule.
    assert!(page.contains("no schedule"), "{page}");
    assert!(
        c.store
            .last_digest_end(c.store.list_by_slug("karachi").await.unwrap().id)
            .await
            .unwrap()
            .is_none(),
        "nothing recorded"
    );
}

#[tokio::test]
async fn an_admin_creates_and_edits_a_list_with_plain_form_posts_and_errors_name_the_field() {
    let c = start().await;
    let admin = c.user("admin@example.com", Role::Admin).await;
    let form = |extra: &[(&'static str, &'static str)]| {
        let mut f = vec![
            ("slug", "evening"),
            ("name", "Evening briefing"),
            ("schedule", "30 18 * * 1-5"),
            ("timezone", "Europe/Berlin"),
            ("categories", "Politics, Sport"),
            ("language", "en"),
            ("breaking", "1"),
        ];
        f.extend_from_slice(extra);
        f
    };
    let post = |fields: Vec<(&'static str, &'static str)>, path: &'static str| {
        let mut fields: Vec<(&str, &str)> = fields;
        fields.push(("csrf", &admin.csrf));
        let c = &c;
        let cookie = admin.cookie.clone();
        async move { c.post(path, Some(&cookie), &fields).await }
    };
    // "Show next sends" saves nothing and lists the typed schedule's next five sends.
    let res = post(form(&[("do", "preview")]), "/lists/new").await;
    assert_eq!(res.status(), StatusCode::OK);
    let page = res.text().await.unwrap();
    assert_eq!(page.matches(" 18:30 CE").count(), 5, "{page}");
    assert!(c.store.list_by_slug("evening").await.is_err());
    // Each bad field is named.
    for (field, bad, named) in [
        ("schedule", "0 25 * * *", "schedule"),
        ("timezone", "Mars/Olympus", "timezone"),
        ("slug", "Evening News", "slug"),
        (
            "categories",
            "A category name far longer than the sixty-four characters allowed",
            "categories",
        ),
        ("language", "xx", "language"),
    ] {
        let mut f: Vec<(&'static str, &'static str)> = form(&[("do", "save")])
            .into_iter()
            .filter(|(n, _)| *n != field)
            .collect();
        f.push((field, bad));
        let res = post(f, "/lists/new").await;
        assert_eq!(res.status(), StatusCode::UNPROCESSABLE_ENTITY, "{field}");
        let page = res.text().await.unwrap();
        assert!(
            page.contains(&format!("href=\"#{named}\"")),
            "{field}: {page}"
        );
        assert!(
            c.store.list_by_slug("evening").await.is_err(),
            "{field}: nothing saved"
        );
    }
    let res = post(form(&[("do", "save")]), "/lists/new").await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    assert_eq!(res.headers()[LOCATION], "/lists/evening/edit");
    let l = c.store.list_by_slug("evening").await.unwrap();
    assert_eq!(
        (
            l.schedule.as_deref(),
            l.timezone.as_str(),
            l.sends_breaking,
            l.double_opt_in
        ),
        (Some("30 18 * * 1-5"), "Europe/Berlin", true, false)
    );
    assert_eq!(
        post(form(&[("do", "save")]), "/lists/new").await.status(),
        StatusCode::CONFLICT,
        "the slug is taken"
    );
    // Edit: every field as the form sends it; an unticked box is false.
    let page = c
        .get("/lists/evening/edit", Some(&admin.cookie))
        .await
        .text()
        .await
        .unwrap();
    assert!(
        page.contains("0 active, 0 pending, 0 unsubscribed")
            && page.contains("value=\"30 18 * * 1-5\""),
        "{page}"
    );
    let res = post(
        vec![
            ("name", "Evening"),
            ("schedule", ""),
            ("timezone", "UTC"),
            ("categories", ""),
            ("language", "ur"),
            ("double_opt_in", "1"),
            ("do", "save"),
        ],
        "/lists/evening/edit",
    )
    .await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    let l = c.store.list_by_slug("evening").await.unwrap();
    assert_eq!(
        (
            l.name.as_str(),
            l.schedule,
            l.categories,
            l.language.as_deref(),
            l.sends_breaking,
            l.double_opt_in
        ),
        ("Evening", None, None, Some("ur"), false, true)
    );
    let log = c.store.audit_log(None, 10).await.unwrap();
    for action in ["list.create", "list.update"] {
        assert!(
            log.iter().any(|r| r.action == action
                && r.subject == "list:evening"
                && r.actor == "admin@example.com"),
            "{action}: {log:?}"
        );
    }
    // The script's endpoint answers the same next sends.
    let frag = c
        .get(
            "/lists/next-sends?schedule=0+7+*+*+*&timezone=Asia%2FKarachi",
            Some(&admin.cookie),
        )
        .await
        .text()
        .await
        .unwrap();
    assert_eq!(frag.matches(" 07:00 PKT").count(), 5, "{frag}");
    let frag = c
        .get(
            "/lists/next-sends?schedule=nonsense&timezone=UTC",
            Some(&admin.cookie),
        )
        .await
        .text()
        .await
        .unwrap();
    assert!(frag.contains("Schedule:"), "{frag}");
}

#[tokio::test]
async fn an_admin_adds_resets_and_disables_users_and_creates_and_revokes_api_keys() {
    let c = start().await;
    let admin = c.user("admin@example.com", Role::Admin).await;
    let post = |path: &'static str, fields: Vec<(&'static str, &'static str)>| {
        let mut fields: Vec<(&str, &str)> = fields;
        fields.push(("csrf", &admin.csrf));
        let c = &c;
        let cookie = admin.cookie.clone();
        async move { c.post(path, Some(&cookie), &fields).await }
    };
    let link_in = |page: &str| {
        let at = page.find("/set-password/").expect("a set-password link");
        page[at..].split('<').next().unwrap().to_owned()
    };
    let res = post(
        "/users/add",
        vec![("email", "new@example.com"), ("role", "editor")],
    )
    .await;
    assert_eq!(res.status(), StatusCode::OK);
    let first = link_in(&res.text().await.unwrap());
    assert_eq!(
        c.get(&first, None).await.status(),
        StatusCode::OK,
        "the link works"
    );
    assert_eq!(
        post(
            "/users/add",
            vec![("email", "new@example.com"), ("role", "editor")]
        )
        .await
        .status(),
        StatusCode::CONFLICT
    );
    assert_eq!(
        post(
            "/users/add",
            vec![("email", "not an address"), ("role", "editor")]
        )
        .await
        .status(),
        StatusCode::UNPROCESSABLE_ENTITY
    );
    let res = post("/users/reset", vec![("email", "new@example.com")]).await;
    let second = link_in(&res.text().await.unwrap());
    assert_ne!(first, second);
    assert_eq!(
        c.get(&first, None).await.status(),
        StatusCode::NOT_FOUND,
        "the old link is over"
    );
    assert_eq!(
        post("/users/disable", vec![("email", "new@example.com")])
            .await
            .status(),
        StatusCode::OK
    );
    assert_eq!(
        post("/users/disable", vec![("email", "admin@example.com")])
            .await
            .status(),
        StatusCode::CONFLICT,
        "not oneself"
    );
    let users = c.store.users().await.unwrap();
    assert!(
        users
            .iter()
            .any(|u| u.email == "new@example.com" && u.disabled_at.is_some())
    );

    let res = post(
        "/api-keys/create",
        vec![("name", "cms"), ("role", "editor")],
    )
    .await;
    assert_eq!(res.status(), StatusCode::OK);
    let page = res.text().await.unwrap();
    let at = page.find("<code>dk_").expect("the key, once") + 6;
    let key = dispatch::domain::ApiKey::parse(page[at..].split('<').next().unwrap()).unwrap();
    assert!(c.store.api_key_by_key(&key).await.unwrap().is_some());
    let again = c
        .get("/api-keys", Some(&admin.cookie))
        .await
        .text()
        .await
        .unwrap();
    assert!(!again.contains(key.expose()), "shown only once");
    assert_eq!(
        post(
            "/api-keys/create",
            vec![("name", "two\nlines"), ("role", "editor")]
        )
        .await
        .status(),
        StatusCode::UNPROCESSABLE_ENTITY
    );
    assert_eq!(
        post("/api-keys/revoke", vec![("name", "cms")])
            .await
            .status(),
        StatusCode::OK
    );
    assert!(
        c.store
            .api_key_by_key(&key)
            .await
            .unwrap()
            .is_none_or(|k| k.revoked_at.is_some())
    );
    let log = c.store.audit_log(None, 20).await.unwrap();
    for action in [
        "user.add",
        "user.reset",
        "user.disable",
        "api_key.create",
        "api_key.revoke",
    ] {
        assert!(
            log.iter()
                .any(|r| r.action == action && r.actor == "admin@example.com"),
            "{action}: {log:?}"
        );
    }
}

/// Every `<form …>` opening tag in a page.
fn forms_of(page: &str) -> Vec<&str> {
    page.match_indices("<form")
        .map(|(at, _)| &page[at..at + page[at..].find('>').unwrap()])
        .collect()
}

#[tokio::test]
async fn every_page_works_without_javascript_its_forms_are_plain_and_posts_carry_csrf() {
    let c = start().await;
    let admin = c.user("admin@example.com", Role::Admin).await;
    for path in [
        "/",
        "/articles",
        "/editions",
        "/schedule",
        "/lists",
        "/lists/new",
        "/lists/daily/edit",
        "/subscribers",
        "/users",
        "/api-keys",
        "/audit",
    ] {
        let res = c.get(path, Some(&admin.cookie)).await;
        assert_eq!(res.status(), StatusCode::OK, "{path}");
        let page = res.text().await.unwrap();
        // No inline script and no handlers: the only script is /assets/console.js, which
        // the CSP allows and which only adds live updates.
        assert!(
            !page.contains("<script>")
                && !page.contains(" onclick=")
                && !page.contains(" onsubmit="),
            "{path}"
        );
        for f in forms_of(&page) {
            assert!(
                f.contains("method=\"post\"") || f.contains("method=\"get\""),
                "{path}: {f}"
            );
        }
        // Every POST form carries the session's token, so a plain submit gets through.
        let posts = page.matches("method=\"post\"").count();
        assert!(
            page.matches(&format!("name=\"csrf\" value=\"{}\"", admin.csrf))
                .count()
                >= posts,
            "{path}"
        );
    }
}

/// A multipart/form-data body (RFC 7578) with text fields and one file.
fn multipart(fields: &[(&str, &str)], file: (&str, &str)) -> (String, String) {
    let boundary = "----dispatch-test-boundary";
    let mut body = String::new();
    for (n, v) in fields {
        body.push_str(&format!(
            "--{boundary}\r\nContent-Disposition: form-data; name=\"{n}\"\r\n\r\n{v}\r\n"
        ));
    }
    body.push_str(&format!(
        "--{boundary}\r\nContent-Disposition: form-data; name=\"{}\"; filename=\"readers.csv\"\r\nContent-Type: text/csv\r\n\r\n{}\r\n--{boundary}--\r\n",
        file.0, file.1
    ));
    (format!("multipart/form-data; boundary={boundary}"), body)
}

#[tokio::test]
async fn an_admin_imports_a_csv_with_its_line_report_exports_it_streamed_and_sees_delivery_history()
{
    let c = start().await;
    let admin = c.user("admin@example.com", Role::Admin).await;
    // Upload: the CLI's reader and report, line numbers included.
    let csv = "email,name\nann@example.org,Ann\nnot-an-address,Bob\nbea@example.org,\n";
    let (ct, body) = multipart(&[("csrf", &admin.csrf), ("list", "daily")], ("file", csv));
    let res = c
        .http
        .post(format!("{}/subscribers/import", c.base))
        .header(COOKIE, &admin.cookie)
        .header(CONTENT_TYPE, ct)
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let page = res.text().await.unwrap();
    assert!(page.contains("upload.csv: imported into daily: 2 added, 0 updated, 0 unchanged, 1 skipped, 1 rejected"), "{page}");
    assert!(
        page.contains("upload.csv:3:"),
        "the bad line is named: {page}"
    );
    // A file saved in Latin-1 (a spreadsheet's default): refused whole, not garbled.
    let (ct, body) = multipart(
        &[("csrf", &admin.csrf), ("list", "daily")],
        ("file", "email,name\ndee@example.org,Jos\u{1}\n"),
    );
    let latin1: Vec<u8> = body
        .into_bytes()
        .into_iter()
        .map(|b| if b == 1 { 0xE9 } else { b })
        .collect();
    let res = c
        .http
        .post(format!("{}/subscribers/import", c.base))
        .header(COOKIE, &admin.cookie)
        .header(CONTENT_TYPE, ct)
        .body(latin1)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::UNPROCESSABLE_ENTITY);
    assert!(res.text().await.unwrap().contains("not UTF-8"));
    assert!(
        c.store
            .subscriber_by_email(&EmailAddress::parse("dee@example.org").unwrap())
            .await
            .is_err(),
        "nothing of it imported"
    );
    // Pasted text, checked only: nothing changes.
    let res = c
        .post(
            "/subscribers/import",
            Some(&admin.cookie),
            &[
                ("csrf", &admin.csrf),
                ("list", "daily"),
                ("pasted", "email\ncy@example.org\n"),
                ("dry_run", "1"),
            ],
        )
        .await;
    assert!(
        res.text()
            .await
            .unwrap()
            .contains("would import into daily: 1 added")
    );
    assert!(
        c.store
            .subscriber_by_email(&EmailAddress::parse("cy@example.org").unwrap())
            .await
            .is_err()
    );
    let res = c
        .post(
            "/subscribers/import",
            Some(&admin.cookie),
            &[
                ("csrf", &admin.csrf),
                ("list", "nope"),
                ("pasted", "email\ncy@example.org\n"),
            ],
        )
        .await;
    assert_eq!(res.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let res = c
        .post(
            "/subscribers/import",
            Some(&admin.cookie),
            &[
                ("csrf", &admin.csrf),
                ("list", "daily"),
                ("pasted", "name,city\nAnn,Lahore\n"),
            ],
        )
        .await;
    assert_eq!(res.status(), StatusCode::UNPROCESSABLE_ENTITY);
    // Export: the CLI's CSV, as a download.
    let res = c
        .get("/subscribers/export?list=daily", Some(&admin.cookie))
        .await;
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(res.headers()[CONTENT_TYPE], "text/csv; charset=utf-8");
    let out = res.text().await.unwrap();
    assert_eq!(
        out.lines().next(),
        Some("email,name,categories,status,list")
    );
    assert!(
        out.contains("ann@example.org,Ann,,active,daily") && out.contains("bea@example.org"),
        "{out}"
    );
    assert_eq!(out.lines().count(), 3, "{out}");
    assert_eq!(
        c.get("/subscribers/export?list=nope", Some(&admin.cookie))
            .await
            .status(),
        StatusCode::NOT_FOUND
    );
    let log = c.store.audit_log(None, 20).await.unwrap();
    for action in [
        "subscribers.import.start",
        "subscribers.import",
        "subscribers.export",
    ] {
        assert!(
            log.iter()
                .any(|r| r.action == action && r.subject == "list:daily"),
            "{action}: {log:?}"
        );
    }
    // Delivery history: a breaking story to the list, then Ann's page shows it.
    let article = c
        .store
        .insert_article(&NewArticle {
            external_id: "story-h".into(),
            url: "https://news.example/story-h".into(),
            title: "Flood warning".into(),
            summary: String::new(),
            author: None,
            category: "General News".into(),
            language: None,
            image_url: None,
            published_at: Utc::now(),
            breaking: false,
        })
        .await
        .unwrap()
        .0;
    let res = c
        .post(
            &format!("/articles/{article}/breaking"),
            Some(&admin.cookie),
            &[("csrf", &admin.csrf), ("list", "daily"), ("action", "send")],
        )
        .await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    let page = c
        .get("/subscribers?email=ann%40example.org", Some(&admin.cookie))
        .await
        .text()
        .await
        .unwrap();
    let history = &page[page.find("Recent deliveries").expect("a history")..];
    assert!(
        history.contains("Breaking: Flood warning") && history.contains("<td>queued</td>"),
        "{history}"
    );
}
