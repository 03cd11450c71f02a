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

    async fn raw(&self, path: &str, key: &str, ctype: &str, body: Vec<u8>) -> (StatusCode, Value) {
        let res = self
            .http
            .put(format!("{}{path}", self.base))
            .header("authorization", format!("Bearer {key}"))
            .header("content-type", ctype)
            .body(body)
            .send()
            .await
            .unwrap();
        let status = res.status();
        let v = serde_json::from_str(&res.text().await.unwrap()).unwrap_or(Value::Null);
        (status, v)
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
    let (status, _) = api
        .call(
            "DELETE",
            "/lists/daily/subscribers/nobody@example.com",
            adm,
            None,
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, v) = api
        .call(
            "POST",
            "/lists/daily/subscribers",
            adm,
            Some(json!({"email": "not an address"})),
        )
        .await;
    assert_eq!(
        (status, v["field"].as_str()),
        (StatusCode::UNPROCESSABLE_ENTITY, Some("email"))
    );
    let (status, _) = api
        .call(
            "POST",
            "/lists/nope/subscribers",
            adm,
            Some(json!({"email": "a@example.com"})),
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
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

#[tokio::test]
async fn bad_bodies_are_problems_naming_the_field_and_nothing_is_stored() {
    let api = start().await;
    let key = api.editor.clone();
    let with = |f: &str, v: Value| {
        let mut a = article("A story");
        a[f] = v;
        a
    };
    let mut no_url = article("A story");
    no_url.as_object_mut().unwrap().remove("url");
    for (body, field) in [
        (with("title", json!(42)), "title"),
        (with("title", json!("  ")), "title"),
        (with("title", json!("x".repeat(501))), "title"),
        (with("url", json!("javascript:alert(1)")), "url"),
        (with("category", json!("a;b")), "category"),
        (with("published_at", json!("yesterday")), "published_at"),
        (
            with("image_url", json!("http://insecure.example.com/a.jpg")),
            "image_url",
        ),
        (with("language", json!("not a tag")), "language"),
        (with("colour", json!("red")), "colour"),
        (no_url, "url"),
    ] {
        let (status, v) = api
            .raw(
                "/articles/x",
                &key,
                "application/json",
                body.to_string().into_bytes(),
            )
            .await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}: {v}");
        assert_eq!(v["field"], field, "{body}: {v}");
        assert!(v["detail"].as_str().unwrap().contains(field), "{v}");
    }
    let (status, v) = api
        .raw(
            "/articles/x",
            &key,
            "application/json",
            b"{\"title\": ".to_vec(),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{v}");
    assert!(
        v["detail"].as_str().unwrap().contains("malformed JSON"),
        "{v}"
    );
    let (status, _) = api
        .raw(
            "/articles/x",
            &key,
            "application/json",
            format!("{} {{}}", article("A")).into_bytes(),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let (status, _) = api
        .raw(
            "/articles/x",
            &key,
            "text/plain",
            article("A").to_string().into_bytes(),
        )
        .await;
    assert_eq!(status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    // Over 1 MB: 413, whether the summary is long or the body is junk.
    let big = with("summary", json!("x".repeat(1024 * 1024)));
    let (status, v) = api
        .raw(
            "/articles/x",
            &key,
            "application/json",
            big.to_string().into_bytes(),
        )
        .await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE, "{v}");
    assert_eq!(v["status"], 413);
    // Just under it is read (and refused for the summary's length, not the body's).
    let (status, v) = api
        .raw(
            "/articles/x",
            &key,
            "application/json",
            with("summary", json!("x".repeat(1000 * 1000)))
                .to_string()
                .into_bytes(),
        )
        .await;
    assert_eq!(
        (status, v["field"].as_str()),
        (StatusCode::UNPROCESSABLE_ENTITY, Some("summary"))
    );
    assert_eq!(
        api.store.list_articles(None, None, 10).await.unwrap().len(),
        0
    );
    let (status, _) = api.call("GET", "/no/such/endpoint", Some(&key), None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
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

    for (path, status, field) in [
        (
            "/editions?limit=0",
            StatusCode::UNPROCESSABLE_ENTITY,
            Some("limit"),
        ),
        (
            "/editions?list=nope",
            StatusCode::UNPROCESSABLE_ENTITY,
            Some("list"),
        ),
        (
            "/editions?colour=red",
            StatusCode::UNPROCESSABLE_ENTITY,
            Some("colour"),
        ),
        (
            "/editions/abc",
            StatusCode::UNPROCESSABLE_ENTITY,
            Some("id"),
        ),
        ("/editions/999", StatusCode::NOT_FOUND, None),
    ] {
        let (got, v) = api.call("GET", path, ed, None).await;
        assert_eq!((got, v["field"].as_str()), (status, field), "{path}: {v}");
    }
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
