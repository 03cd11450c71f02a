//! `console`: how fast the newsroom console's pages answer on a big database.
//!
//! 1,000,000 subscribers (one list) and 100,000 articles in an SQLite file, seeded in bulk
//! (`INSERT … SELECT` from a recursive CTE), then the real console router on a real listener
//! in this process, an admin's session, and sequential GETs of each page: articles, article
//! search by title, subscriber search by address, lists (with their counts), editions,
//! schedule (with the next digest's preview). Target: each page's p99 at most 50 ms.
//!
//! The article search goes through the FTS5 trigram index of the titles (SQLite), the lists'
//! counts are read from `list_counts`, which triggers keep (migration 20261216000000). Before
//! them, `--quick` in a loaded debug build: lists p99 189 ms, article search p99 93 ms.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result};
use chrono::Utc;

use dispatch::console::{ConsoleState, SESSION_COOKIE};
use dispatch::domain::{DbTime, EmailAddress, Role, Token};

use crate::Ctx;
use crate::setup::{Language, bench_config, bulk_subscribers, raw_pool, store_with_list};
use crate::table::{Row, Verdict, thousands};

/// Subscribers at full scale.
const SUBSCRIBERS: u64 = 1_000_000;
/// Articles at full scale.
const ARTICLES: u64 = 100_000;
/// GETs per page at full scale.
const REQUESTS: u64 = 500;
/// The target p99, in milliseconds.
const TARGET_P99_MS: f64 = 50.0;

/// Stores `n` articles, a hundred a day back from now (a busy newsroom: the next digest's
/// window holds about a day of them), in one statement.
async fn bulk_articles(db: &std::path::Path, n: u64) -> Result<()> {
    let pool = raw_pool(db).await?;
    let now = dispatch::domain::db_time(Utc::now());
    sqlx::query(
        "WITH RECURSIVE seq(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM seq WHERE i < $1)
         INSERT INTO articles (external_id, url, title, summary, category, language, published_at, breaking, created_at)
         SELECT 'bench-' || i, 'https://news.example.com/story-' || i,
                CASE i % 4 WHEN 0 THEN 'Minister resigns after budget talks ' WHEN 1 THEN 'Storm closes the coast road ' WHEN 2 THEN 'Cup final goes to penalties ' ELSE 'Markets rally on rate cut ' END || i,
                'What we know so far.',
                CASE i % 4 WHEN 0 THEN 'Politics' WHEN 1 THEN 'Weather' WHEN 2 THEN 'Sport' ELSE 'Business' END,
                'en', strftime('%Y-%m-%dT%H:%M:%SZ', 'now', '-' || (i * 864) || ' seconds'), 0, $2
         FROM seq",
    )
    .bind(n as i64)
    .bind(&now)
    .execute(&pool)
    .await?;
    pool.close().await;
    Ok(())
}

/// The `q` quantile of sorted `ms`.
fn quantile(ms: &[f64], q: f64) -> f64 {
    if ms.is_empty() {
        return f64::NAN;
    }
    let i = ((ms.len() as f64 * q).ceil() as usize).clamp(1, ms.len()) - 1;
    ms[i]
}

pub(crate) async fn run(ctx: &Ctx) -> Result<Vec<Row>> {
    let subs = ctx.scale.count(SUBSCRIBERS);
    let articles = ctx.scale.count(ARTICLES);
    let requests = ctx.scale.count(REQUESTS).max(20);
    let db = ctx.dir.join("console.db");
    let seeding = Instant::now();
    let (store, list_id) = store_with_list(&db, "daily").await?;
    store.close().await;
    bulk_subscribers(&db, subs, &[list_id]).await?;
    bulk_articles(&db, articles).await?;
    let store = dispatch::store::Store::open(&db).await?;
    store
        .update_list(
            "daily",
            &dispatch::store::ListSpec {
                schedule: Some(Some(dispatch::schedule::Schedule::parse("0 7 * * *")?)),
                ..Default::default()
            },
        )
        .await?;
    eprintln!(
        "console: seeded {} subscribers and {} articles in {:.1} s",
        thousands(subs as f64),
        thousands(articles as f64),
        seeding.elapsed().as_secs_f64()
    );

    // An admin with a session, as signing in leaves one.
    let admin = EmailAddress::parse("admin@example.com")?;
    let expires = DbTime::from(Utc::now() + chrono::Duration::hours(1));
    store
        .create_user(&admin, Role::Admin, &Token::generate().hash(), expires)
        .await?;
    let user = store
        .users()
        .await?
        .into_iter()
        .next()
        .context("the admin")?;
    let session = Token::generate();
    store
        .create_session(&session.hash(), user.id, Token::generate().as_str())
        .await?;
    let cookie = format!("{SESSION_COOKIE}={}", session.as_str());

    let config = bench_config(&db, Language::English, None);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let port = listener.local_addr()?.port();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(dispatch::console::serve(
        listener,
        ConsoleState::new(store.clone(), Arc::new(config)),
        async {
            let _ = stopped.await;
        },
    ));
    // reqwest is built with "rustls-no-provider"; even plain HTTP wants one installed.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .redirect(reqwest::redirect::Policy::none())
        .build()?;
    let middle = subs / 2;
    let pages: Vec<(&str, String)> = vec![
        ("articles", "/articles".into()),
        ("article search", "/articles?q=budget+talks+4242".into()),
        (
            "subscriber search",
            format!(
                "/subscribers?email=reader{middle}%40example{}.org",
                middle % 97
            ),
        ),
        ("lists", "/lists".into()),
        ("editions", "/editions".into()),
        ("schedule", "/schedule".into()),
    ];
    let mut rows = Vec::new();
    for (name, path) in &pages {
        let mut ms = Vec::with_capacity(requests as usize);
        for _ in 0..requests {
            let t = Instant::now();
            let res = http
                .get(format!("http://127.0.0.1:{port}{path}"))
                .header("cookie", &cookie)
                .send()
                .await?;
            let status = res.status();
            res.bytes().await?;
            ms.push(t.elapsed().as_secs_f64() * 1000.0);
            anyhow::ensure!(status.is_success(), "GET {path} answered {status}");
        }
        ms.sort_by(f64::total_cmp);
        let (p50, p99) = (quantile(&ms, 0.50), quantile(&ms, 0.99));
        eprintln!("console {name}: p50 {p50:.1} ms, p99 {p99:.1} ms over {requests} GETs");
        rows.push(Row::new(
            format!("console {name}"),
            format!(
                "p99 ≤ {TARGET_P99_MS} ms, {} subscribers, {} articles",
                thousands(subs as f64),
                thousands(articles as f64)
            ),
            format!("p50 {p50:.1} ms, p99 {p99:.1} ms over {requests} GETs"),
            Verdict::of(p99 <= TARGET_P99_MS),
        ));
    }
    let _ = stop.send(());
    server.await.context("the console task")?;
    store.close().await;
    Ok(rows)
}
