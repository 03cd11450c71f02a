//! The web endpoints over real HTTP: the real router served on a loopback port by
//! `web::serve`, a real SQLite file, and reqwest as the client (no cookies, no redirects
//! followed, exactly like a mailbox provider's one-click POST).

#[path = "../support/mod.rs"]
mod support;

mod ops;
mod preferences;
mod signup;
mod unsubscribe;
mod urdu;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration as StdDuration;

use chrono::{Duration, Utc};
use dispatch::config::Config;
use dispatch::delivery::{Engine, Mode, Scope};
use dispatch::domain::{CategorySet, EmailAddress, ListSlug, Token, WebUrl};
use dispatch::mail::transport::{StubOutbox, Transport};
use dispatch::store::subscribers::NewSubscription;
use dispatch::store::{
    Created, EditionKind, ListSpec, NewEdition, SenderId, SenderIdentity, Store,
};
use dispatch::web::{self, AppState, RateLimits};
use reqwest::header::{CONTENT_TYPE, LOCATION};
use support::db::TempDb;

struct App {
    base: String,
    store: Store,
    /// Confirmation mail, as the real sender delivered it (transactional mail only: the
    /// tests claim edition deliveries themselves).
    outbox: StubOutbox,
    /// Claims deliveries in the tests' own claims.
    claimer: SenderId,
    http: reqwest::Client,
    _shutdown: tokio::sync::oneshot::Sender<()>,
    _stop_sender: tokio::sync::watch::Sender<bool>,
    _db: TempDb,
}

async fn spawn_app() -> App {
    spawn_app_with(RateLimits::default()).await
}

async fn spawn_app_with(limits: RateLimits) -> App {
    spawn_app_configured(limits, |config| {
        config.digest.category_order = vec!["Politics".into(), "Business".into(), "Sport".into()];
    })
    .await
}

/// The app with `configure` applied to the default config (its public URL already set).
async fn spawn_app_configured(limits: RateLimits, configure: impl FnOnce(&mut Config)) -> App {
    let db = TempDb::new();
    let store = db.store().await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr: SocketAddr = listener.local_addr().unwrap();
    let mut config = Config::default();
    config.web.public_url = WebUrl::parse(&format!("http://{addr}")).unwrap();
    configure(&mut config);
    let config = Arc::new(config);
    let mut state = AppState::new(store.clone(), Arc::clone(&config));
    state.limits = Arc::new(limits);
    // The real sender delivers the confirmations the sign-up page queues.
    let outbox = StubOutbox::new();
    let engine = Engine::new(
        store.clone(),
        Arc::clone(&config),
        Transport::Stub(outbox.clone()),
    )
    .unwrap();
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    tokio::spawn(async move { engine.run(Scope::Mail, Mode::Forever, stop_rx).await });
    let claimer = store
        .register_sender(&SenderIdentity {
            host: "web-tests".into(),
            pid: 1,
            started: "unknown".into(),
            node: "web-tests".into(),
        })
        .await
        .unwrap();
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(web::serve(listener, state, async move {
        let _ = rx.await;
    }));
    // reqwest is built with "rustls-no-provider" (the crate polls feeds over rustls on
    // ring): a client without preconfigured TLS needs a process-wide provider.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    App {
        base: format!("http://{addr}"),
        store,
        outbox,
        claimer,
        http,
        _shutdown: tx,
        _stop_sender: stop_tx,
        _db: db,
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
            .claim_deliveries(edition, list_id, 1000, Duration::minutes(5), self.claimer)
            .await
            .unwrap();
        (
            claimed
                .into_iter()
                .map(|c| (c.email.to_string(), c.token))
                .collect(),
            skipped.unwanted,
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
        for _ in 0..500 {
            let found = self
                .outbox
                .messages()
                .into_iter()
                .rev()
                .find(|m| m.to.as_str() == to);
            if let Some(m) = found {
                // Undo quoted-printable soft breaks; the link itself is plain ASCII.
                let text = String::from_utf8_lossy(&m.bytes).replace("=\r\n", "");
                let start = text
                    .find(&format!("{}/confirm/", self.base))
                    .expect("the confirmation mail carries the link");
                return text[start..]
                    .chars()
                    .take_while(|c| !c.is_whitespace() && *c != '<' && *c != '"')
                    .collect();
            }
            tokio::time::sleep(StdDuration::from_millis(10)).await;
        }
        panic!("no confirmation mail to {to}");
    }

    fn mails_to(&self, to: &str) -> usize {
        self.outbox
            .messages()
            .iter()
            .filter(|m| m.to.as_str() == to)
            .count()
    }

    /// Opens a confirmation link as a reader does: the page, then its button.
    async fn confirm(&self, url: &str) -> reqwest::Response {
        let path = url.strip_prefix(&self.base).unwrap().to_owned();
        let page = self.get(&path).await;
        assert_eq!(page.status(), reqwest::StatusCode::OK);
        assert!(page.text().await.unwrap().contains("<form method=\"post\""));
        self.post_form(&path, "").await
    }
}

fn assert_no_redirect(r: &reqwest::Response) {
    assert!(!r.status().is_redirection(), "{}", r.status());
    assert!(r.headers().get(LOCATION).is_none());
}
