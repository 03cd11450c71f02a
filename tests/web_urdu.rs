//! The reader pages of an Urdu list, over real HTTP to the real router: every page a reader
//! reaches from an Urdu email (unsubscribe, unsubscribed, preferences, sign-up and its answer)
//! is `<html lang="ur" dir="rtl">` and carries no fixed word of the English catalogue, while an
//! English list's pages on the same server stay English.

mod support;

use std::net::SocketAddr;
use std::sync::Arc;

use chrono::{Duration, Utc};
use dispatch::config::Config;
use dispatch::domain::{EmailAddress, ListSlug, Token, WebUrl};
use dispatch::i18n::{Catalogue, Language};
use dispatch::store::subscribers::NewSubscription;
use dispatch::store::{Created, EditionKind, ListSpec, NewEdition, SenderIdentity, Store};
use dispatch::web::{self, AppState};
use support::db::TempDb;

struct App {
    base: String,
    store: Store,
    http: reqwest::Client,
    _shutdown: tokio::sync::oneshot::Sender<()>,
    _db: TempDb,
}

async fn spawn() -> App {
    let db = TempDb::new();
    let store = db.store().await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr: SocketAddr = listener.local_addr().unwrap();
    let mut config = Config::default();
    config.web.public_url = WebUrl::parse(&format!("http://{addr}")).unwrap();
    config.digest.category_order = vec!["قومی خبریں".into(), "کھیل".into()];
    let state = AppState::new(store.clone(), Arc::new(config));
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(web::serve(listener, state, async move {
        let _ = rx.await;
    }));
    let _ = rustls::crypto::ring::default_provider().install_default();
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    App {
        base: format!("http://{addr}"),
        store,
        http,
        _shutdown: tx,
        _db: db,
    }
}

impl App {
    async fn list(&self, slug: &str, name: &str, language: Language) -> i64 {
        let spec = ListSpec {
            name: Some(name.into()),
            language: Some(language),
            ..Default::default()
        };
        let l = self
            .store
            .create_list(&ListSlug::parse(slug).unwrap(), &spec)
            .await
            .unwrap();
        l.id
    }

    /// Subscribes `email` and returns the token its next message would carry.
    async fn reader(&self, list_id: i64, email: &str) -> Token {
        let row = NewSubscription {
            email: EmailAddress::parse(email).unwrap(),
            name: None,
            categories: None,
        };
        self.store
            .subscribe_batch(list_id, &[row], "test", false)
            .await
            .unwrap();
        let start = Utc::now() - Duration::days(1);
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
        let id = match self.store.create_edition(&e).await.unwrap() {
            Created::New { id, .. } | Created::Existing { id } => id,
        };
        let claimer = self
            .store
            .register_sender(&SenderIdentity {
                host: "web-urdu".into(),
                pid: 1,
                started: "unknown".into(),
                node: "web-urdu".into(),
            })
            .await
            .unwrap();
        let (claimed, _) = self
            .store
            .claim_deliveries(id, list_id, 10, Duration::minutes(5), claimer)
            .await
            .unwrap();
        claimed.into_iter().next().unwrap().token
    }

    async fn get(&self, path: &str) -> String {
        let r = self
            .http
            .get(format!("{}{path}", self.base))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "GET {path}");
        r.text().await.unwrap()
    }

    async fn post(&self, path: &str, form: &str) -> String {
        let (status, body) = self.post_any(path, form).await;
        assert_eq!(status, 200, "POST {path}: {body}");
        body
    }

    async fn post_any(&self, path: &str, form: &str) -> (u16, String) {
        let r = self
            .http
            .post(format!("{}{path}", self.base))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(form.to_owned())
            .send()
            .await
            .unwrap();
        let status = r.status().as_u16();
        (status, r.text().await.unwrap())
    }
}

/// The text a reader sees: tags and the `<style>` sheet dropped, and the data the operator
/// chose (the publication's name, which is English in the default config) left out.
fn visible(page: &str) -> String {
    let page = match (page.find("<style>"), page.find("</style>")) {
        (Some(a), Some(b)) => format!("{}{}", &page[..a], &page[b..]),
        _ => page.to_owned(),
    };
    let mut out = String::new();
    let mut in_tag = false;
    for c in page.chars() {
        match c {
            '<' => in_tag = true,
            '>' => {
                in_tag = false;
                out.push(' ');
            }
            c if !in_tag => out.push(c),
            _ => {}
        }
    }
    out.replace("The Daily Ledger", " ")
}

fn has_word(haystack: &str, phrase: &str) -> bool {
    haystack.match_indices(phrase).any(|(i, _)| {
        let before = haystack[..i].chars().next_back();
        let after = haystack[i + phrase.len()..].chars().next();
        !before.is_some_and(char::is_alphanumeric) && !after.is_some_and(char::is_alphanumeric)
    })
}

fn assert_urdu(what: &str, page: &str) {
    assert!(
        page.contains(r#"<html lang="ur" dir="rtl">"#),
        "{what}: {page}"
    );
    let text = visible(page);
    for word in Catalogue::shipped_words(Language::En) {
        assert!(
            !has_word(&text, &word),
            "{what} has the English {word:?}:\n{text}"
        );
    }
}

#[tokio::test]
async fn an_urdu_lists_reader_pages_are_urdu_and_right_to_left() {
    let app = spawn().await;
    let urdu = app.list("urdu", "روزانہ خلاصہ", Language::Ur).await;
    let english = app.list("daily", "Daily Digest", Language::En).await;
    let token = app.reader(urdu, "ayesha@example.pk").await;
    let t = token.as_str();

    let page = app.get(&format!("/unsubscribe/{t}")).await;
    assert_urdu("unsubscribe", &page);
    assert!(page.contains("روزانہ خلاصہ"), "{page}");
    // The publication's Latin name inside an Urdu sentence is isolated.
    assert!(page.contains("<bdi>The Daily Ledger</bdi>"), "{page}");

    assert_urdu("preferences", &app.get(&format!("/preferences/{t}")).await);
    // No topic ticked: the error names the list, in Urdu.
    let (status, refused) = app
        .post_any(
            &format!("/preferences/{t}"),
            &format!("action=save&list={urdu}&subscribed={urdu}"),
        )
        .await;
    assert_eq!(status, 400);
    assert_urdu("preferences refused", &refused);
    let sport = "%DA%A9%DA%BE%DB%8C%D9%84"; // کھیل
    let saved = app
        .post(
            &format!("/preferences/{t}"),
            &format!("action=save&list={urdu}&subscribed={urdu}&cat.{urdu}={sport}"),
        )
        .await;
    assert_urdu("preferences saved", &saved);
    assert!(saved.contains("محفوظ ہو گیا"), "{saved}");

    let form = app.get("/subscribe?list=urdu").await;
    assert_urdu("sign-up form", &form);
    assert!(
        form.contains(r#"type="email" name="email" dir="ltr""#),
        "{form}"
    );
    let done = app
        .post("/subscribe", "list=urdu&email=bilal%40example.pk")
        .await;
    assert_urdu("sign-up answer", &done);

    assert_urdu(
        "unsubscribed",
        &app.post(&format!("/unsubscribe/{t}"), "").await,
    );

    // The English list on the same server keeps English pages.
    let token = app.reader(english, "omar@example.com").await;
    let page = app.get(&format!("/unsubscribe/{}", token.as_str())).await;
    assert!(page.contains(r#"<html lang="en">"#), "{page}");
    assert!(page.contains("Unsubscribe from Daily Digest?"), "{page}");
}
