//! The CMS API over real HTTP: the real router on 127.0.0.1, a real SQLite file, keys of each
//! role, wrong and revoked keys, malformed and oversized bodies, idempotent writes.

mod support;

use std::sync::Arc;

use dispatch::config::Config;
use dispatch::domain::{ApiKey, ListSlug, Role};
use dispatch::store::{ListSpec, Store};
use reqwest::StatusCode;
use serde_json::{Value, json};
use support::cli::Cli;
use support::db::TempDb;

struct Api {
    base: String,
    store: Store,
    http: reqwest::Client,
    editor: String,
    admin: String,
    revoked: String,
    _db: TempDb,
}

async fn start() -> Api {
    let db = TempDb::new();
    let store = db.store().await;
    for (slug, double_opt_in) in [("daily", false), ("weekly", true)] {
        store
            .create_list(
                &ListSlug::parse(slug).unwrap(),
                &ListSpec {
                    name: Some(format!("The {slug}")),
                    sends_breaking: Some(true),
                    double_opt_in: Some(double_opt_in),
                    ..ListSpec::default()
                },
            )
            .await
            .unwrap();
    }
    let key = |name: &'static str, role| {
        let store = store.clone();
        async move {
            let k = ApiKey::generate();
            store.create_api_key(name, role, &k).await.unwrap();
            k.expose().to_owned()
        }
    };
    let editor = key("cms", Role::Editor).await;
    let admin = key("site", Role::Admin).await;
    let revoked = key("old", Role::Admin).await;
    assert!(store.revoke_api_key("old").await.unwrap());

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let state = dispatch::web::AppState::new(store.clone(), Arc::new(Config::default()));
    tokio::spawn(dispatch::web::serve(
        listener,
        state,
        std::future::pending(),
    ));
    // reqwest is built with "rustls-no-provider"; this plain-HTTP client needs a provider.
    let _ = rustls::crypto::ring::default_provider().install_default();
    Api {
        base: format!("http://{addr}/api/v1"),
        store,
        http: reqwest::Client::new(),
        editor,
        admin,
        revoked,
        _db: db,
    }
}

impl Api {
    /// Sends a request with `key` (none when `None`) and a JSON body; returns the status
    /// and the parsed body (`Null` when empty).
    async fn call(
        &self,
        method: &str,
        path: &str,
        key: Option<&str>,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let mut req = self
            .http
            .request(method.parse().unwrap(), format!("{}{path}", self.base));
        if let Some(k) = key {
            req = req.header("authorization", format!("Bearer {k}"));
        }
        if let Some(b) = body {
            req = req
                .header("content-type", "application/json")
                .body(b.to_string());
        }
        let res = req.send().await.unwrap();
        let status = res.status();
        let ctype = res
            .headers()
            .get("content-type")
            .map(|v| v.to_str().unwrap().to_owned())
            .unwrap_or_default();
        let text = res.text().await.unwrap();
        if !status.is_success() {
            assert_eq!(ctype, "application/problem+json", "{status}: {text}");
        }
        let v = if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).unwrap_or_else(|e| panic!("{e}: {text}"))
        };
        if !status.is_success() {
            assert_eq!(v["status"], status.as_u16(), "{v}");
            assert!(v["detail"].is_string(), "{v}");
        }
        (status, v)
    }

    /// Sends `method path` with `key`, `ctype` and `body` as given; returns the status, the
    /// response's Content-Type and Allow headers, and the parsed body (`Null` when not JSON).
    async fn request(
        &self,
        method: &str,
        path: &str,
        key: Option<&str>,
        ctype: Option<&str>,
        body: Vec<u8>,
    ) -> (StatusCode, String, Option<String>, Value) {
        let mut req = self
            .http
            .request(method.parse().unwrap(), format!("{}{path}", self.base))
            .body(body);
        if let Some(k) = key {
            req = req.header("authorization", format!("Bearer {k}"));
        }
        if let Some(c) = ctype {
            req = req.header("content-type", c);
        }
        let res = req.send().await.unwrap();
        let header = |name: &str| {
            res.headers()
                .get(name)
                .map(|v| v.to_str().unwrap().to_owned())
        };
        let (status, ctype, allow) = (res.status(), header("content-type"), header("allow"));
        let v = serde_json::from_str(&res.text().await.unwrap()).unwrap_or(Value::Null);
        (status, ctype.unwrap_or_default(), allow, v)
    }
}

fn article(title: &str) -> Value {
    json!({
        "title": title,
        "url": "https://news.example.com/2026/11/minister-resigns/",
        "category": "Politics",
        "summary": "<p>The minister   resigned.</p>",
        "author": "Ayesha Khan",
        "published_at": "2026-11-28T09:30:00+05:00",
        "language": "UR",
        "image_url": "https://news.example.com/a.jpg"
    })
}

/// Every endpoint, with a body where it takes one.
fn endpoints() -> Vec<(&'static str, &'static str, Option<Value>)> {
    vec![
        ("PUT", "/articles/cms-1", Some(article("A story"))),
        ("POST", "/articles/cms-1/breaking", None),
        ("GET", "/editions", None),
        ("GET", "/editions/1", None),
        ("GET", "/lists", None),
        (
            "POST",
            "/lists/daily/subscribers",
            Some(json!({"email": "reader@example.com"})),
        ),
        (
            "DELETE",
            "/lists/daily/subscribers/reader@example.com",
            None,
        ),
    ]
}

#[tokio::test]
async fn every_endpoint_answers_401_to_a_missing_malformed_unknown_or_revoked_key() {
    let api = start().await;
    let unknown = ApiKey::generate();
    for (method, path, body) in endpoints() {
        for key in [
            None,
            Some("not-a-key"),
            Some(unknown.expose()),
            Some(api.revoked.as_str()),
        ] {
            let (status, v) = api.call(method, path, key, body.clone()).await;
            assert_eq!(
                status,
                StatusCode::UNAUTHORIZED,
                "{method} {path} {key:?}: {v}"
            );
        }
    }
    // A Basic header is no bearer key either.
    let res = api
        .http
        .get(format!("{}/lists", api.base))
        .header("authorization", format!("Basic {}", api.admin))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    assert!(
        res.headers()["www-authenticate"]
            .to_str()
            .unwrap()
            .starts_with("Bearer")
    );
    assert_eq!(
        api.store.list_articles(None, None, 10).await.unwrap().len(),
        0
    );
}

#[tokio::test]
async fn editors_write_articles_and_read_editions_but_only_admins_manage_subscribers() {
    let api = start().await;
    let ed = Some(api.editor.as_str());
    let adm = Some(api.admin.as_str());
    for (method, path, body) in endpoints() {
        let (status, v) = api.call(method, path, ed, body.clone()).await;
        if path.contains("subscribers") {
            assert_eq!(status, StatusCode::FORBIDDEN, "{method} {path}: {v}");
            assert!(v["detail"].as_str().unwrap().contains("needs admin"), "{v}");
        } else {
            assert!(
                status.is_success() || status == StatusCode::NOT_FOUND,
                "{method} {path}: {status} {v}"
            );
        }
    }
    // The editor's 403s changed nothing.
    let (_, lists) = api.call("GET", "/lists", ed, None).await;
    assert_eq!(lists[0]["subscribers"]["active"], 0, "{lists}");

    let (status, v) = api
        .call(
            "POST",
            "/lists/daily/subscribers",
            adm,
            Some(json!({"email": "Reader@Example.com", "name": "Reader", "categories": []})),
        )
        .await;
    assert_eq!(
        (status, v["status"].as_str()),
        (StatusCode::CREATED, Some("active")),
        "{v}"
    );
    let (status, v) = api
        .call(
            "POST",
            "/lists/weekly/subscribers",
            adm,
            Some(json!({"email": "reader@example.com"})),
        )
        .await;
    assert_eq!(
        (status, v["status"].as_str()),
        (StatusCode::ACCEPTED, Some("confirmation_sent")),
        "double opt-in applies: {v}"
    );
    let (_, lists) = api.call("GET", "/lists", ed, None).await;
    assert_eq!(lists[0]["slug"], "daily");
    assert_eq!(lists[0]["subscribers"]["active"], 1, "{lists}");
    assert_eq!(lists[1]["subscribers"]["pending"], 1, "{lists}");

    let (status, v) = api
        .call(
            "DELETE",
            "/lists/daily/subscribers/reader@example.com",
            adm,
            None,
        )
        .await;
    assert_eq!((status, &v["unsubscribed"]), (StatusCode::OK, &json!(true)));
}

#[tokio::test]
async fn an_api_signup_stores_the_name_and_categories_and_double_opt_in_applies() {
    let api = start().await;
    let adm = Some(api.admin.as_str());
    let signup = async |list: &str, body: Value| {
        let (status, v) = api
            .call(
                "POST",
                &format!("/lists/{list}/subscribers"),
                adm,
                Some(body),
            )
            .await;
        (status, v["status"].as_str().unwrap_or_default().to_owned())
    };
    let reader = |email: &str| {
        let email = email.to_owned();
        let path = api._db.path().to_owned();
        async move {
            let row: (Option<String>, String, Option<String>, i64) = sqlx::query_as(
                "SELECT s.name, sub.status, sub.categories,
                        (SELECT COUNT(*) FROM mail_queue q WHERE q.subscription_id = sub.id AND q.kind = 'confirm')
                 FROM subscribers s JOIN subscriptions sub ON sub.subscriber_id = s.id
                 JOIN lists l ON l.id = sub.list_id
                 WHERE s.email_key = $1 ORDER BY l.slug",
            )
            .bind(email)
            .fetch_one(&support::db::raw_pool(&path).await)
            .await
            .unwrap();
            row
        }
    };

    // Double opt-in (weekly): pending with its name and topics, and a confirmation queued.
    assert_eq!(
        signup(
            "weekly",
            json!({"email": "ayesha@example.com", "name": "  Ayesha   Khan ", "categories": ["Sport", "Politics"]}),
        )
        .await,
        (StatusCode::ACCEPTED, "confirmation_sent".to_owned())
    );
    let (name, status, cats, confirmations) = reader("ayesha@example.com").await;
    assert_eq!(
        (name.as_deref(), status.as_str(), confirmations),
        (Some("Ayesha Khan"), "pending", 1)
    );
    let cats = cats.unwrap_or_default();
    assert!(
        cats.contains("Sport") && cats.contains("Politics"),
        "{cats}"
    );

    // Single opt-in (daily): active at once, no confirmation; the name is kept.
    assert_eq!(
        signup(
            "daily",
            json!({"email": "bilal@example.com", "name": "Bilal"})
        )
        .await,
        (StatusCode::CREATED, "active".to_owned())
    );
    assert_eq!(
        reader("bilal@example.com").await,
        (Some("Bilal".to_owned()), "active".to_owned(), None, 0)
    );
    // A later form never replaces a stored name, and a repeat changes nothing.
    assert_eq!(
        signup(
            "daily",
            json!({"email": "bilal@example.com", "name": "Someone else"})
        )
        .await,
        (StatusCode::OK, "already_active".to_owned())
    );
    assert_eq!(
        reader("bilal@example.com").await.0.as_deref(),
        Some("Bilal")
    );
}

#[tokio::test]
async fn put_creates_then_updates_and_a_repeat_changes_nothing() {
    let api = start().await;
    let ed = Some(api.editor.as_str());
    let (status, v) = api
        .call(
            "PUT",
            "/articles/cms-42",
            ed,
            Some(article("Minister resigns")),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{v}");
    let id = v["id"].as_i64().unwrap();
    // Cleaned like every other path (clean_text): one line, the language lower-cased.
    assert_eq!(
        v["summary"], "<p>The minister resigned.</p>",
        "HTML is kept, as by the CLI"
    );
    assert_eq!(v["language"], "ur");
    assert_eq!(v["published_at"], "2026-11-28T04:30:00Z");

    let (status, again) = api
        .call(
            "PUT",
            "/articles/cms-42",
            ed,
            Some(article("Minister resigns")),
        )
        .await;
    assert_eq!((status, &again), (StatusCode::OK, &v));

    let mut changed = article("Minister resigns, aide says");
    changed.as_object_mut().unwrap().remove("published_at");
    let (status, v2) = api.call("PUT", "/articles/cms-42", ed, Some(changed)).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(v2["id"], id);
    assert_eq!(v2["title"], "Minister resigns, aide says");
    assert_eq!(v2["published_at"], v["published_at"], "no time given: kept");
    assert_eq!(
        api.store.list_articles(None, None, 10).await.unwrap().len(),
        1
    );
}

/// Who sends a request in the error table.
#[derive(Debug, Clone, Copy)]
enum Who {
    Nobody,
    Editor,
    Admin,
}

/// One row of the error table: a request and the problem it must get.
struct Bad {
    what: &'static str,
    method: &'static str,
    path: &'static str,
    who: Who,
    /// Content-Type and body; `None`: neither.
    body: Option<(&'static str, Vec<u8>)>,
    status: StatusCode,
    /// The `field` member the problem must name.
    field: Option<&'static str>,
    /// Words `detail` must contain.
    detail: &'static str,
}

fn json_body(v: &Value) -> Option<(&'static str, Vec<u8>)> {
    Some(("application/json", v.to_string().into_bytes()))
}

fn bad_article(f: &str, v: Value) -> Option<(&'static str, Vec<u8>)> {
    let mut a = article("A story");
    a[f] = v;
    json_body(&a)
}

/// Every way a request can be wrong, and the RFC 9457 problem it gets.
fn bad_requests() -> Vec<Bad> {
    use Who::{Admin, Editor, Nobody};
    let row = |what, method, path, who, body, status, field, detail| Bad {
        what,
        method,
        path,
        who,
        body,
        status,
        field,
        detail,
    };
    let mut no_url = article("A story");
    no_url.as_object_mut().unwrap().remove("url");
    let (put, a) = ("PUT", "/articles/x");
    let unprocessable = StatusCode::UNPROCESSABLE_ENTITY;
    let mut rows = vec![
        // Routing: unknown paths and wrong methods, with or without a key.
        row(
            "unknown path",
            "GET",
            "/no/such/endpoint",
            Editor,
            None,
            StatusCode::NOT_FOUND,
            None,
            "no such API endpoint",
        ),
        row(
            "unknown path, no key",
            "GET",
            "/no/such/endpoint",
            Nobody,
            None,
            StatusCode::NOT_FOUND,
            None,
            "no such API endpoint",
        ),
        row(
            "the API root",
            "GET",
            "/",
            Editor,
            None,
            StatusCode::NOT_FOUND,
            None,
            "no such API endpoint",
        ),
        row(
            "the API root, no slash",
            "GET",
            "",
            Nobody,
            None,
            StatusCode::NOT_FOUND,
            None,
            "no such API endpoint",
        ),
        row(
            "GET of a PUT endpoint",
            "GET",
            a,
            Editor,
            None,
            StatusCode::METHOD_NOT_ALLOWED,
            None,
            "method",
        ),
        row(
            "DELETE of a PUT endpoint",
            "DELETE",
            a,
            Admin,
            None,
            StatusCode::METHOD_NOT_ALLOWED,
            None,
            "method",
        ),
        // The key is checked first: without one, an endpoint's methods are not told.
        row(
            "wrong method, no key",
            "DELETE",
            a,
            Nobody,
            None,
            StatusCode::UNAUTHORIZED,
            None,
            "API key",
        ),
        row(
            "PUT of a GET endpoint",
            "PUT",
            "/lists",
            Admin,
            json_body(&json!({})),
            StatusCode::METHOD_NOT_ALLOWED,
            None,
            "method",
        ),
        // Path segments that do not decode, or are not of the parameter's type.
        row(
            "undecodable id",
            put,
            "/articles/%FF%FE",
            Editor,
            json_body(&article("A")),
            StatusCode::BAD_REQUEST,
            None,
            "UTF-8",
        ),
        row(
            "undecodable address",
            "DELETE",
            "/lists/daily/subscribers/%C3%28",
            Admin,
            None,
            StatusCode::BAD_REQUEST,
            None,
            "UTF-8",
        ),
        row(
            "undecodable slug",
            "POST",
            "/lists/%E2%82/subscribers",
            Admin,
            json_body(&json!({"email": "a@example.com"})),
            StatusCode::BAD_REQUEST,
            None,
            "UTF-8",
        ),
        row(
            "edition id not a number",
            "GET",
            "/editions/abc",
            Editor,
            None,
            unprocessable,
            Some("id"),
            "edition number",
        ),
        row(
            "no such edition",
            "GET",
            "/editions/999",
            Editor,
            None,
            StatusCode::NOT_FOUND,
            None,
            "edition 999",
        ),
        // Media type and JSON syntax: 415 and 400, before any field is looked at.
        row(
            "text/plain body",
            put,
            a,
            Editor,
            Some(("text/plain", article("A").to_string().into_bytes())),
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            None,
            "application/json",
        ),
        row(
            "body without a Content-Type",
            put,
            a,
            Editor,
            Some(("", article("A").to_string().into_bytes())),
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            None,
            "application/json",
        ),
        row(
            "truncated JSON",
            put,
            a,
            Editor,
            Some(("application/json", b"{\"title\": ".to_vec())),
            StatusCode::BAD_REQUEST,
            None,
            "malformed JSON",
        ),
        row(
            "JSON with trailing data",
            put,
            a,
            Editor,
            Some((
                "application/json",
                format!("{} {{}}", article("A")).into_bytes(),
            )),
            StatusCode::BAD_REQUEST,
            None,
            "malformed JSON",
        ),
        row(
            "not UTF-8",
            put,
            a,
            Editor,
            Some(("application/json", b"{\"title\": \"\xff\"}".to_vec())),
            StatusCode::BAD_REQUEST,
            None,
            "malformed JSON",
        ),
        row(
            "an array, not an object",
            put,
            a,
            Editor,
            json_body(&json!(["A story"])),
            unprocessable,
            None,
            "JSON object",
        ),
        row(
            "a malformed array",
            put,
            a,
            Editor,
            Some(("application/json", b"[1,".to_vec())),
            StatusCode::BAD_REQUEST,
            None,
            "malformed JSON",
        ),
        // Fields: 422 naming the field.
        row(
            "missing url",
            put,
            a,
            Editor,
            json_body(&no_url),
            unprocessable,
            Some("url"),
            "url",
        ),
        row(
            "title of the wrong type",
            put,
            a,
            Editor,
            bad_article("title", json!(42)),
            unprocessable,
            Some("title"),
            "title",
        ),
        row(
            "blank title",
            put,
            a,
            Editor,
            bad_article("title", json!("  ")),
            unprocessable,
            Some("title"),
            "title",
        ),
        row(
            "title too long",
            put,
            a,
            Editor,
            bad_article("title", json!("x".repeat(501))),
            unprocessable,
            Some("title"),
            "title",
        ),
        row(
            "script url",
            put,
            a,
            Editor,
            bad_article("url", json!("javascript:alert(1)")),
            unprocessable,
            Some("url"),
            "url",
        ),
        row(
            "bad category",
            put,
            a,
            Editor,
            bad_article("category", json!("a;b")),
            unprocessable,
            Some("category"),
            "category",
        ),
        row(
            "bad time",
            put,
            a,
            Editor,
            bad_article("published_at", json!("yesterday")),
            unprocessable,
            Some("published_at"),
            "published_at",
        ),
        row(
            "http image",
            put,
            a,
            Editor,
            bad_article("image_url", json!("http://insecure.example.com/a.jpg")),
            unprocessable,
            Some("image_url"),
            "image_url",
        ),
        row(
            "bad language",
            put,
            a,
            Editor,
            bad_article("language", json!("not a tag")),
            unprocessable,
            Some("language"),
            "language",
        ),
        row(
            "unknown field",
            put,
            a,
            Editor,
            bad_article("colour", json!("red")),
            unprocessable,
            Some("colour"),
            "colour",
        ),
        // Just under 1 MB is read, and refused for the summary's length, not the body's.
        row(
            "summary too long",
            put,
            a,
            Editor,
            bad_article("summary", json!("x".repeat(1000 * 1000))),
            unprocessable,
            Some("summary"),
            "summary",
        ),
        row(
            "body over 1 MB",
            put,
            a,
            Editor,
            bad_article("summary", json!("x".repeat(1024 * 1024))),
            StatusCode::PAYLOAD_TOO_LARGE,
            None,
            "larger than",
        ),
        row(
            "breaking for an unknown article",
            "POST",
            "/articles/x/breaking",
            Editor,
            json_body(&json!({"lists": ["daily"]})),
            StatusCode::NOT_FOUND,
            None,
            "article",
        ),
        row(
            "edition list filter unknown",
            "GET",
            "/editions?list=nope",
            Editor,
            None,
            unprocessable,
            Some("list"),
            "nope",
        ),
        row(
            "edition limit 0",
            "GET",
            "/editions?limit=0",
            Editor,
            None,
            unprocessable,
            Some("limit"),
            "limit",
        ),
        row(
            "edition unknown parameter",
            "GET",
            "/editions?colour=red",
            Editor,
            None,
            unprocessable,
            Some("colour"),
            "colour",
        ),
    ];
    // Sign-ups (admin).
    let subscribers = "/lists/daily/subscribers";
    rows.extend([
        row(
            "not an address",
            "POST",
            subscribers,
            Admin,
            json_body(&json!({"email": "not an address"})),
            unprocessable,
            Some("email"),
            "email",
        ),
        row(
            "no address",
            "POST",
            subscribers,
            Admin,
            json_body(&json!({"name": "A"})),
            unprocessable,
            Some("email"),
            "required",
        ),
        row(
            "name too long",
            "POST",
            subscribers,
            Admin,
            json_body(&json!({"email": "a@example.com", "name": "n".repeat(500)})),
            unprocessable,
            Some("name"),
            "name",
        ),
        row(
            "bad category",
            "POST",
            subscribers,
            Admin,
            json_body(&json!({"email": "a@example.com", "categories": ["ok", "a;b"]})),
            unprocessable,
            Some("categories[1]"),
            "categories[1]",
        ),
        row(
            "categories not a list",
            "POST",
            subscribers,
            Admin,
            json_body(&json!({"email": "a@example.com", "categories": "Sport"})),
            unprocessable,
            Some("categories"),
            "categories",
        ),
        row(
            "unknown list",
            "POST",
            "/lists/nope/subscribers",
            Admin,
            json_body(&json!({"email": "a@example.com"})),
            StatusCode::NOT_FOUND,
            None,
            "nope",
        ),
        row(
            "unsubscribe an unknown address",
            "DELETE",
            "/lists/daily/subscribers/nobody@example.com",
            Admin,
            None,
            StatusCode::NOT_FOUND,
            None,
            "subscriber",
        ),
        row(
            "unsubscribe a non-address",
            "DELETE",
            "/lists/daily/subscribers/nobody",
            Admin,
            None,
            unprocessable,
            Some("email"),
            "email",
        ),
    ]);
    rows
}

#[tokio::test]
async fn every_error_is_a_problem_document_with_the_right_status_and_field() {
    let api = start().await;
    for bad in bad_requests() {
        let key = match bad.who {
            Who::Nobody => None,
            Who::Editor => Some(api.editor.as_str()),
            Who::Admin => Some(api.admin.as_str()),
        };
        let (ctype, body) = match &bad.body {
            Some((c, b)) => ((!c.is_empty()).then_some(*c), b.clone()),
            None => (None, Vec::new()),
        };
        let (status, got_ctype, allow, v) =
            api.request(bad.method, bad.path, key, ctype, body).await;
        let what = format!("{} ({} {})", bad.what, bad.method, bad.path);
        assert_eq!(status, bad.status, "{what}: {v}");
        assert_eq!(got_ctype, "application/problem+json", "{what}");
        assert_eq!(v["status"], bad.status.as_u16(), "{what}: {v}");
        assert_eq!(v["type"], "about:blank", "{what}: {v}");
        assert_eq!(v["field"].as_str(), bad.field, "{what}: {v}");
        let detail = v["detail"].as_str().unwrap_or_default();
        assert!(
            detail.contains(bad.detail),
            "{what}: {detail:?} lacks {:?}",
            bad.detail
        );
        if status == StatusCode::METHOD_NOT_ALLOWED {
            assert!(
                allow.is_some_and(|a| !a.is_empty()),
                "{what}: no Allow header"
            );
        }
    }
    assert_eq!(
        api.store.list_articles(None, None, 10).await.unwrap().len(),
        0,
        "no bad request stored anything"
    );
    let (_, lists) = api.call("GET", "/lists", Some(&api.editor), None).await;
    assert_eq!(lists[0]["subscribers"]["active"], 0, "{lists}");
}

#[tokio::test]
async fn breaking_news_is_recorded_once_per_list_and_a_repeat_returns_the_same_editions() {
    let api = start().await;
    let (ed, adm) = (Some(api.editor.as_str()), Some(api.admin.as_str()));
    for n in 0..3 {
        let (status, _) = api
            .call(
                "POST",
                "/lists/daily/subscribers",
                adm,
                Some(json!({"email": format!("r{n}@example.com")})),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED);
    }
    let (status, _) = api
        .call("PUT", "/articles/cms-7", ed, Some(article("Breaking")))
        .await;
    assert_eq!(status, StatusCode::CREATED);

    let (status, v) = api
        .call(
            "POST",
            "/articles/cms-7/breaking",
            ed,
            Some(json!({"lists": ["daily"]})),
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{v}");
    let editions = v["editions"].as_array().unwrap().clone();
    assert_eq!(editions.len(), 1, "{v}");
    assert_eq!(
        (&editions[0]["list"], &editions[0]["created"]),
        (&json!("daily"), &json!(true))
    );
    let id = editions[0]["id"].as_i64().unwrap();

    let (status, again) = api
        .call(
            "POST",
            "/articles/cms-7/breaking",
            ed,
            Some(json!({"lists": ["daily"]})),
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED);
    assert_eq!(again["editions"][0]["id"], id);
    assert_eq!(again["editions"][0]["created"], false);
    // Without a list: every breaking list; daily's edition is found, not made again.
    let (_, all) = api.call("POST", "/articles/cms-7/breaking", ed, None).await;
    let daily: Vec<_> = all["editions"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["list"] == "daily")
        .collect();
    assert_eq!(
        (daily.len(), &daily[0]["id"], &daily[0]["created"]),
        (1, &json!(id), &json!(false))
    );

    let (status, e) = api.call("GET", &format!("/editions/{id}"), ed, None).await;
    assert_eq!(status, StatusCode::OK, "{e}");
    assert_eq!(
        (&e["list"], &e["kind"]),
        (&json!("daily"), &json!("breaking"))
    );
    assert_eq!(
        e["deliveries"]["queued"], 3,
        "queued once, not once per call: {e}"
    );
    let (_, listed) = api
        .call("GET", "/editions?list=daily&limit=5", ed, None)
        .await;
    assert_eq!(listed.as_array().unwrap().len(), 1, "{listed}");

    let (status, v) = api
        .call(
            "POST",
            "/articles/cms-7/breaking",
            ed,
            Some(json!({"lists": ["daily", "nope"]})),
        )
        .await;
    assert_eq!(
        (status, v["field"].as_str()),
        (StatusCode::UNPROCESSABLE_ENTITY, Some("lists[1]"))
    );
    let (status, _) = api
        .call("POST", "/articles/unknown/breaking", ed, None)
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

#[test]
fn api_keys_are_printed_once_listed_without_secrets_and_revoked_by_name() {
    let cli = Cli::new();
    let out = cli.ok(["api-keys", "create", "--name", "cms", "--role", "editor"]);
    let key = out.trim().to_owned();
    let parsed = ApiKey::parse(&key).unwrap_or_else(|| panic!("not a key: {out:?}"));
    let e = cli.fail(["api-keys", "create", "--name", "cms", "--role", "admin"]);
    assert!(e.contains("exists"), "{e}");
    let e = cli.fail(["api-keys", "create", "--name", "x", "--role", "root"]);
    assert!(e.contains("editor") && e.contains("admin"), "{e}");
    cli.ok(["api-keys", "create", "--name", "site", "--role", "admin"]);

    let list = cli.ok(["api-keys", "list"]);
    assert!(
        list.contains("cms") && list.contains("editor") && list.contains("admin"),
        "{list}"
    );
    assert!(!list.contains(&key), "{list}");
    let db = std::fs::read(cli.db()).unwrap();
    assert!(
        !db.windows(key.len()).any(|w| w == key.as_bytes()),
        "the key itself is not stored"
    );
    let rt = tokio::runtime::Runtime::new().unwrap();
    let found = |cli: &Cli| {
        rt.block_on(async {
            let store = Store::open(cli.db()).await.unwrap();
            let row = store.api_key_by_key(&parsed).await.unwrap();
            store.close().await;
            row
        })
    };
    assert_eq!(found(&cli).map(|r| r.role), Some(Role::Editor));
    cli.ok(["api-keys", "revoke", "cms"]);
    assert!(found(&cli).is_none());
    let e = cli.fail(["api-keys", "revoke", "cms"]);
    assert!(e.contains("no API key named"), "{e}");
    let rows = cli.json(["api-keys", "list", "--json"]);
    assert!(
        rows[0]["revoked_at"].is_string() && rows[1]["revoked_at"].is_null(),
        "{rows}"
    );
}

#[tokio::test]
async fn the_openapi_document_is_public_and_describes_every_endpoint() {
    let api = start().await;
    let res = api
        .http
        .get(format!("{}/openapi.json", api.base))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let doc: Value = serde_json::from_str(&res.text().await.unwrap()).unwrap();
    assert!(doc["openapi"].as_str().unwrap().starts_with("3.1"), "{doc}");
    for (method, path, _) in endpoints() {
        // The template of the concrete path used in the other tests.
        let template = path
            .replace("/cms-1", "/{external_id}")
            .replace("/editions/1", "/editions/{id}")
            .replace("/daily/", "/{slug}/")
            .replace("/reader@example.com", "/{email}");
        let op = &doc["paths"][format!("/api/v1{template}")][method.to_lowercase()];
        assert!(op.is_object(), "{method} {template} is not described");
        assert_eq!(
            op["security"][0]["bearer"],
            json!([]),
            "{method} {template}"
        );
        assert!(op["responses"]["401"].is_object(), "{method} {template}");
    }
    assert_eq!(doc["paths"].as_object().unwrap().len(), 7);
    let problem = &doc["components"]["schemas"]["Problem"]["properties"];
    for field in ["type", "title", "status", "detail", "field"] {
        assert!(problem[field].is_object(), "Problem.{field}: {problem}");
    }
    assert_eq!(
        doc["components"]["securitySchemes"]["bearer"]["scheme"],
        "bearer"
    );
    let article = &doc["components"]["schemas"]["ArticleIn"];
    assert!(
        article["required"]
            .as_array()
            .unwrap()
            .contains(&json!("title")),
        "{article}"
    );
}
