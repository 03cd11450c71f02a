//! Feeds polled over real HTTP: a feed server inside the test (axum on 127.0.0.1) serves
//! WordPress-, Ghost- and JSON Feed-shaped documents that change between polls, and feeds that
//! time out, fail, are too large, redirect forever or are not feeds at all.

mod support;

use std::collections::BTreeMap;
use std::io::Write as _;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use dispatch::config::{Config, Feed};
use dispatch::domain::{Category, WebUrl};
use dispatch::intake::feeds::{PollOutcome, Poller};
use dispatch::intake::fetch::FetchLimits;
use dispatch::store::{LeaseHolder, SenderIdentity, Store};
use support::cli::Cli;
use support::db::TempDb;

/// A lease holder named `node`, as a dispatch process on another node would be.
fn holder(node: &str) -> LeaseHolder {
    LeaseHolder::of(&SenderIdentity {
        host: "test-host".into(),
        pid: 1,
        started: "test".into(),
        node: node.into(),
    })
}

/// What the feed server saw and what it serves.
#[derive(Default)]
struct Server {
    /// Bumped by a test to publish one more story in every feed.
    version: AtomicUsize,
    not_modified: AtomicUsize,
    full: AtomicUsize,
    /// Bytes of the endless feed handed to the connection.
    endless_sent: AtomicU64,
}

type Shared = Arc<Server>;

fn stories(v: usize) -> impl Iterator<Item = usize> {
    1..=(2 + v)
}

/// WordPress's RSS: several categories, dc:creator, content:encoded, media:content.
fn wordpress(v: usize) -> String {
    let items: String = stories(v)
        .map(|n| {
            format!(
                r#"<item>
  <title>WordPress story {n}</title>
  <link>https://news.example.com/2026/11/story-{n}/</link>
  <dc:creator><![CDATA[Ayesha Khan]]></dc:creator>
  <pubDate>Sat, 28 Nov 2026 0{n}:30:00 +0000</pubDate>
  <category><![CDATA[Uncategorised, Misc]]></category>
  <category><![CDATA[Pakistan]]></category>
  <category><![CDATA[Politics]]></category>
  <guid isPermaLink="false">https://news.example.com/?p={n}</guid>
  <description><![CDATA[]]></description>
  <content:encoded><![CDATA[<p>The <b>full</b> text of story {n}.</p>]]></content:encoded>
  <media:content url="https://news.example.com/wp-content/uploads/{n}.jpg" medium="image" />
</item>"#
            )
        })
        .collect();
    format!(
        r#"<?xml version="1.0" encoding="UTF-8"?>
<rss version="2.0" xmlns:content="http://purl.org/rss/1.0/modules/content/"
     xmlns:dc="http://purl.org/dc/elements/1.1/" xmlns:media="http://search.yahoo.com/mrss/">
<channel><title>News</title><link>https://news.example.com</link><language>en-US</language>
{items}
</channel></rss>"#
    )
}

/// Ghost's Atom output.
fn ghost(v: usize) -> String {
    let entries: String = stories(v)
        .map(|n| {
            format!(
                r#"<entry><id>ghost-{n}</id><title type="html">Ghost story {n}</title>
<link rel="alternate" href="https://ghost.example.com/story-{n}/"/>
<author><name>Bilal Ahmed</name></author><category term="Business"/>
<published>2026-11-28T0{n}:00:00.000Z</published><updated>2026-11-28T0{n}:00:00.000Z</updated>
<summary type="html">Summary {n}</summary></entry>"#
            )
        })
        .collect();
    format!(
        r#"<?xml version="1.0" encoding="utf-8"?>
<feed xmlns="http://www.w3.org/2005/Atom"><title>Ghost</title><id>https://ghost.example.com/</id>
<updated>2026-11-28T00:00:00Z</updated>{entries}</feed>"#
    )
}

/// A JSON Feed 1.1 document.
fn json_feed(v: usize) -> String {
    let items: Vec<_> = stories(v)
        .map(|n| {
            serde_json::json!({
                "id": format!("jf-{n}"), "url": format!("https://json.example.com/{n}"),
                "title": format!("JSON story {n}"), "content_text": "Text.",
                "date_published": "2026-11-28T09:30:00+05:00", "tags": ["Sport"],
                "authors": [{"name": "Sana Mir"}]
            })
        })
        .collect();
    serde_json::json!({
        "version": "https://jsonfeed.org/version/1.1", "title": "JSON", "language": "ur",
        "items": items
    })
    .to_string()
}

/// Serves `body` with an ETag naming the version, answering 304 to a matching
/// If-None-Match (RFC 9110 §13.1.2).
fn with_etag(st: &Server, headers: &HeaderMap, body: String, kind: &'static str) -> Response {
    let etag = format!("\"v{}\"", st.version.load(Ordering::SeqCst));
    if headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        == Some(etag.as_str())
    {
        st.not_modified.fetch_add(1, Ordering::SeqCst);
        return StatusCode::NOT_MODIFIED.into_response();
    }
    st.full.fetch_add(1, Ordering::SeqCst);
    (
        [(header::CONTENT_TYPE, kind), (header::ETAG, etag.as_str())],
        body,
    )
        .into_response()
}

async fn wp(State(st): State<Shared>, headers: HeaderMap) -> Response {
    let body = wordpress(st.version.load(Ordering::SeqCst));
    with_etag(&st, &headers, body, "application/rss+xml; charset=UTF-8")
}

/// Ghost validates by Last-Modified instead (RFC 9110 §13.1.3), and gzips when asked.
async fn gh(State(st): State<Shared>, headers: HeaderMap) -> Response {
    let v = st.version.load(Ordering::SeqCst);
    let stamp = format!("Sat, 28 Nov 2026 10:0{v}:00 GMT");
    if headers
        .get(header::IF_MODIFIED_SINCE)
        .and_then(|h| h.to_str().ok())
        == Some(stamp.as_str())
    {
        st.not_modified.fetch_add(1, Ordering::SeqCst);
        return StatusCode::NOT_MODIFIED.into_response();
    }
    st.full.fetch_add(1, Ordering::SeqCst);
    let gzip = headers
        .get(header::ACCEPT_ENCODING)
        .and_then(|h| h.to_str().ok())
        .is_some_and(|h| h.contains("gzip"));
    assert!(gzip, "the poller asks for gzip");
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    enc.write_all(ghost(v).as_bytes()).unwrap();
    (
        [
            (header::CONTENT_TYPE, "application/atom+xml"),
            (header::CONTENT_ENCODING, "gzip"),
            (header::LAST_MODIFIED, stamp.as_str()),
        ],
        enc.finish().unwrap(),
    )
        .into_response()
}

async fn jf(State(st): State<Shared>, headers: HeaderMap) -> Response {
    let body = json_feed(st.version.load(Ordering::SeqCst));
    with_etag(&st, &headers, body, "application/feed+json")
}

async fn slow() -> Response {
    tokio::time::sleep(Duration::from_secs(30)).await;
    wordpress(0).into_response()
}

async fn broken() -> Response {
    (StatusCode::INTERNAL_SERVER_ERROR, "database down").into_response()
}

/// 20 MB of valid-looking RSS, streamed without a Content-Length.
async fn huge(State(st): State<Shared>) -> Response {
    rss_stream(st, 20 * 1024 * 1024)
}

/// RSS that never ends: only a cap enforced while reading can stop it (a cap applied after
/// buffering would wait for the end, and the poll would time out instead).
async fn endless(State(st): State<Shared>) -> Response {
    rss_stream(st, u64::MAX)
}

fn rss_stream(st: Shared, total: u64) -> Response {
    let chunk = "<item><title>x</title><link>https://x.example/</link></item>".repeat(1000);
    let stream = futures_util::stream::unfold(0u64, move |sent| {
        let (st, chunk) = (Arc::clone(&st), chunk.clone());
        async move {
            if sent >= total {
                return None;
            }
            if total == u64::MAX {
                st.endless_sent
                    .fetch_add(chunk.len() as u64, Ordering::SeqCst);
            }
            let next = if sent == 0 {
                format!("<rss version=\"2.0\"><channel>{chunk}")
            } else {
                chunk
            };
            Some((
                Ok::<_, std::io::Error>(next.clone()),
                sent + next.len() as u64,
            ))
        }
    });
    (
        [(header::CONTENT_TYPE, "application/rss+xml")],
        Body::from_stream(stream),
    )
        .into_response()
}

async fn html() -> Response {
    (
        [(header::CONTENT_TYPE, "text/html")],
        "<!doctype html><html><body>Moved to our app!</body></html>",
    )
        .into_response()
}

async fn redirect_loop() -> Response {
    (StatusCode::FOUND, [(header::LOCATION, "/loop")]).into_response()
}

/// Starts the feed server; returns its base URL and state.
async fn feed_server() -> (String, Shared) {
    let st: Shared = Arc::default();
    let app = Router::new()
        .route("/wp/feed/", get(wp))
        .route("/ghost/rss/", get(gh))
        .route("/feed.json", get(jf))
        .route("/slow", get(slow))
        .route("/500", get(broken))
        .route("/huge", get(huge))
        .route("/endless", get(endless))
        .route("/html", get(html))
        .route("/loop", get(redirect_loop))
        .with_state(Arc::clone(&st));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (format!("http://{addr}"), st)
}

fn feed(url: &str) -> Feed {
    let mut f = Feed::new(WebUrl::parse(url).unwrap());
    f.poll_secs = 30;
    f
}

/// A poller whose timeout is short enough for a test (the daemon's is 30 s).
fn poller(store: &Store) -> Poller {
    let limits = FetchLimits {
        timeout: Duration::from_secs(2),
        ..FetchLimits::default()
    };
    Poller::new(store.clone(), limits, holder("test-1")).unwrap()
}

async fn poll(p: &Poller, f: &Feed) -> PollOutcome {
    p.poll(f, true).await.unwrap().outcome
}

fn added(o: &PollOutcome) -> (u64, u64) {
    match o {
        PollOutcome::Stored { stored, .. } => (stored.added, stored.existing),
        other => panic!("expected a stored feed, got {other:?}"),
    }
}

#[tokio::test]
async fn conditional_gets_are_answered_304_and_new_stories_are_stored_once() {
    let (base, st) = feed_server().await;
    let db = TempDb::new();
    let store = db.store().await;
    let p = poller(&store);
    let mut wp = feed(&format!("{base}/wp/feed/"));
    wp.category_map =
        BTreeMap::from([("politics".to_owned(), Category::parse("Politics").unwrap())]);
    let gh = feed(&format!("{base}/ghost/rss/"));
    let mut jf = feed(&format!("{base}/feed.json"));
    jf.default_category = Category::parse("Sport").unwrap();

    for f in [&wp, &gh, &jf] {
        assert_eq!(added(&poll(&p, f).await), (2, 0), "{}", f.url);
    }
    assert_eq!(st.full.load(Ordering::SeqCst), 3);
    // Nothing changed: every feed answers 304, seen at the server.
    for f in [&wp, &gh, &jf] {
        assert!(
            matches!(poll(&p, f).await, PollOutcome::NotModified),
            "{}",
            f.url
        );
    }
    assert_eq!(st.not_modified.load(Ordering::SeqCst), 3);
    assert_eq!(st.full.load(Ordering::SeqCst), 3);

    // One more story everywhere: only it is new.
    st.version.store(1, Ordering::SeqCst);
    for f in [&wp, &gh, &jf] {
        assert_eq!(added(&poll(&p, f).await), (1, 2), "{}", f.url);
    }
    let articles = store.list_articles(None, None, 100).await.unwrap();
    assert_eq!(articles.len(), 9);

    // WordPress's shape: the first category that maps wins over the first valid one,
    // dc:creator is the author, content:encoded the summary, media:content the image.
    let story = articles
        .iter()
        .find(|a| a.external_id == "https://news.example.com/?p=3")
        .unwrap();
    assert_eq!(story.category, "Politics");
    assert_eq!(story.author.as_deref(), Some("Ayesha Khan"));
    assert_eq!(story.summary, "The full text of story 3.");
    assert_eq!(
        story.image_url.as_deref(),
        Some("https://news.example.com/wp-content/uploads/3.jpg")
    );
    assert_eq!(story.language.as_deref(), Some("en-us"));
    let ghost = articles
        .iter()
        .find(|a| a.external_id == "ghost-1")
        .unwrap();
    assert_eq!(
        (ghost.category.as_str(), ghost.author.as_deref()),
        ("Business", Some("Bilal Ahmed"))
    );
    let json = articles.iter().find(|a| a.external_id == "jf-2").unwrap();
    assert_eq!(
        (json.category.as_str(), json.language.as_deref()),
        ("Sport", Some("ur"))
    );

    let s = store.feed_state(wp.url.as_str()).await.unwrap().unwrap();
    assert_eq!(
        (s.polls_ok, s.polls_not_modified, s.items_stored),
        (2, 1, 3)
    );
    assert_eq!(s.etag.as_deref(), Some("\"v1\""));
}

#[tokio::test]
async fn a_breaking_feed_sends_only_what_appears_after_the_first_poll() {
    let (base, st) = feed_server().await;
    let db = TempDb::new();
    let store = db.store().await;
    let p = poller(&store);
    let mut wp = feed(&format!("{base}/wp/feed/"));
    wp.breaking = true;
    wp.language = Some("UR".into());
    assert_eq!(added(&poll(&p, &wp).await), (2, 0));
    st.version.store(1, Ordering::SeqCst);
    assert_eq!(added(&poll(&p, &wp).await), (1, 2));
    let articles = store.list_articles(None, None, 100).await.unwrap();
    let breaking: Vec<_> = articles
        .iter()
        .filter(|a| a.breaking)
        .map(|a| a.external_id.as_str())
        .collect();
    assert_eq!(breaking, ["https://news.example.com/?p=3"]);
}

#[tokio::test]
async fn each_broken_feed_is_reported_while_the_daemon_loop_polls_the_others() {
    let (base, st) = feed_server().await;
    let db = TempDb::new();
    let store = db.store().await;
    let good = feed(&format!("{base}/wp/feed/"));
    let broken = [
        ("/slow", "timed out after 2 s"),
        ("/500", "HTTP 500"),
        ("/huge", "larger than the 10 MB limit"),
        ("/endless", "larger than the 10 MB limit"),
        ("/html", "not a feed"),
        ("/loop", "more than 5 redirects"),
    ];
    let mut feeds = vec![good.clone()];
    feeds.extend(
        broken
            .iter()
            .map(|(path, _)| feed(&format!("{base}{path}"))),
    );

    let (stop, shutdown) = tokio::sync::watch::channel(false);
    let run = tokio::spawn(poller(&store).run(feeds.clone(), shutdown));
    // The loop polls them all; wait for every feed's first record.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while store.feed_states().await.unwrap().len() < feeds.len() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "not every feed was polled"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    stop.send(true).unwrap();
    run.await.unwrap();

    let good_state = store.feed_state(good.url.as_str()).await.unwrap().unwrap();
    assert_eq!((good_state.items_stored, good_state.failures), (2, 0));
    assert_eq!(store.list_articles(None, None, 100).await.unwrap().len(), 2);
    for (f, (path, why)) in feeds[1..].iter().zip(broken) {
        let s = store.feed_state(f.url.as_str()).await.unwrap().unwrap();
        let error = s.last_error.unwrap_or_default();
        assert!(error.contains(why), "{path}: {error:?}");
        assert_eq!((s.failures, s.polls_failed), (1, 1), "{path}");
        assert!(s.next_poll_at.unwrap().utc() > chrono::Utc::now(), "{path}");
    }
    // The endless feed was cut off near the cap (plus what the sockets buffer).
    let sent = st.endless_sent.load(Ordering::SeqCst);
    assert!(sent < 100 * 1024 * 1024, "{sent} bytes were sent");

    // /metrics over real HTTP shows which feeds are down.
    let config = Config {
        feeds: feeds.clone(),
        ..Config::default()
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let state = dispatch::web::AppState::new(store.clone(), Arc::new(config));
    tokio::spawn(dispatch::web::serve(
        listener,
        state,
        std::future::pending(),
    ));
    let _ = rustls::crypto::ring::default_provider().install_default();
    let text = reqwest::get(format!("http://{addr}/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        text.contains(&format!("dispatch_feed_up{{feed=\"{base}/wp/feed/\"}} 1\n")),
        "{text}"
    );
    assert!(text.contains(&format!("dispatch_feed_up{{feed=\"{base}/500\"}} 0\n")));
    assert!(text.contains(&format!(
        "dispatch_feed_polls_total{{feed=\"{base}/huge\",result=\"error\"}} 1\n"
    )));
    assert!(text.contains(&format!(
        "dispatch_feed_items_stored_total{{feed=\"{base}/wp/feed/\"}} 2\n"
    )));
}

// Multi-threaded: the CLI runs as a blocking child process while the feed server answers.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn feeds_poll_and_list_from_the_command_line() {
    let (base, _st) = feed_server().await;
    let cli = Cli::new();
    cli.write(
        "dispatch.toml",
        format!(
            "[[feeds]]\nurl = \"{base}/feed.json\"\n\n[[feeds]]\nurl = \"{base}/500?key=secret\"\npoll_secs = 60\n"
        ),
    );
    let cli = cli.with_config("dispatch.toml");
    let out = cli.run(["feeds", "poll"]);
    let (stdout, stderr) = (support::cli::stdout(&out), support::cli::stderr(&out));
    assert_eq!(support::cli::code(&out), 1, "{stdout}{stderr}");
    assert!(
        stdout.contains(&format!("{base}/feed.json: JSON Feed: 2 added")),
        "{stdout}"
    );
    assert!(
        stderr.contains(&format!("{base}/500: HTTP 500")),
        "{stderr}"
    );
    assert!(!stderr.contains("secret") && !stdout.contains("secret"));

    let list = cli.ok(["feeds", "list"]);
    assert!(list.contains("LAST ERROR"), "{list}");
    assert!(list.contains("HTTP 500"), "{list}");
    let rows = cli.json(["feeds", "list", "--json"]);
    assert_eq!(rows[0]["items_stored"], 2);
    assert_eq!(rows[1]["failures"], 1);
    assert_eq!(rows[1]["polls"]["failed"], 1);

    let e = cli.fail(["feeds", "poll", "https://elsewhere.example.com/feed"]);
    assert!(e.contains("is not a configured feed"), "{e}");
}
