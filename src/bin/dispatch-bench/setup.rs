//! The benchmark data every benchmark builds on: the configuration, a list, stories,
//! subscribers in bulk and an edition to send. Preparation only: nothing here is measured.

use std::path::{Path, PathBuf};
use std::str::FromStr as _;
use std::time::Duration;

use anyhow::{Context as _, Result, bail};
use chrono::{Duration as ChronoDuration, Utc};
use serde::{Deserialize, Serialize};

use dispatch::config::{Config, Security, TransportKind};
use dispatch::domain::ListSlug;
use dispatch::edition::{EditionRenderer, common_headers, create_digest};
use dispatch::mail::MessageTemplate;
use dispatch::store::{Created, EditionKind, ListSpec, NewArticle, Store};

/// The categories of the generated stories (the default `[digest] category_order`).
const CATEGORIES: [&str; 4] = ["General News", "Politics", "Business", "Sport"];

/// The list every benchmark sends to, unless it needs several.
pub(crate) const LIST: &str = "bench";

/// The language of the publication and its stories: Urdu is the other script our readers
/// read, two bytes a letter and right to left.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) enum Language {
    English,
    Urdu,
}

impl Language {
    /// The BCP 47 tag: `[publication] language` and the stories' `language`.
    pub(crate) fn tag(self) -> &'static str {
        match self {
            Self::English => "en",
            Self::Urdu => "ur",
        }
    }

    /// The catalogue language of the publication and its lists.
    pub(crate) fn catalogue(self) -> dispatch::i18n::Language {
        match self {
            Self::English => dispatch::i18n::Language::En,
            Self::Urdu => dispatch::i18n::Language::Ur,
        }
    }

    /// A story's title and one sentence of its summary.
    fn story(self) -> (&'static str, &'static str) {
        match self {
            Self::English => (
                "Finance minister resigns after budget talks collapse in Islamabad",
                "The minister handed his resignation to the prime minister on Friday evening after talks on the budget collapsed. ",
            ),
            Self::Urdu => (
                "وزیر اعظم نے استعفیٰ دے دیا، نئی حکومت کی تشکیل پر مشاورت شروع",
                "اسلام آباد: وزیر اعظم نے آج صدر کو اپنا استعفیٰ پیش کر دیا، جس کے بعد نئی حکومت کی تشکیل پر مشاورت شروع ہو گئی۔ ",
            ),
        }
    }
}

/// The configuration every benchmark uses: a temporary database, 40 stories fit in one
/// digest (10 per section), the publication in `language`, and SMTP to `smtp_port` without
/// TLS when given.
pub(crate) fn bench_config(db: &Path, language: Language, smtp_port: Option<u16>) -> Config {
    let mut c = Config::default();
    c.database.path = db.to_path_buf();
    c.digest.max_per_category = 10;
    c.delivery.outbox = db.with_extension("outbox");
    c.publication.language = language.catalogue();
    if let Some(port) = smtp_port {
        c.delivery.transport = TransportKind::Smtp;
        c.smtp.host = "127.0.0.1".into();
        c.smtp.port = port;
        c.smtp.security = Security::None;
        c.smtp.connections = 8;
        c.smtp.timeout_secs = 30;
        c.smtp.helo_name = Some("news.example.com".into());
    }
    c
}

/// Opens `db` (creating and migrating it) with a list `slug` carrying every category.
pub(crate) async fn store_with_list(db: &Path, slug: &str) -> Result<(Store, i64)> {
    let store = Store::open(db).await?;
    let list = match store.list_by_slug(slug).await {
        Ok(l) => l,
        Err(_) => {
            store
                .create_list(
                    &ListSlug::parse(slug)?,
                    &ListSpec {
                        name: Some(format!("Bench {slug}")),
                        description: Some("Benchmark list.".into()),
                        ..Default::default()
                    },
                )
                .await?
        }
    };
    Ok((store, list.id))
}

/// Stores `n` stories in `language` published in the last hours, `n / 4` per category;
/// `summary_sentences` sets their length (and so the message size).
pub(crate) async fn add_articles(
    store: &Store,
    n: usize,
    summary_sentences: usize,
    language: Language,
) -> Result<()> {
    let now = Utc::now();
    let (title, sentence) = language.story();
    for i in 0..n {
        store
            .insert_article(&NewArticle {
                external_id: format!("bench-{i}"),
                url: format!(
                    "https://news.example.com/2026/11/28/story-{i}-finance-minister-resigns-after-budget-talks"
                ),
                title: format!("{title} ({i})"),
                summary: sentence.repeat(summary_sentences),
                author: Some("Staff Reporter".into()),
                category: CATEGORIES[i % CATEGORIES.len()].into(),
                language: Some(language.tag().into()),
                image_url: None,
                published_at: now - ChronoDuration::minutes(10 + i as i64),
                breaking: false,
            })
            .await?;
    }
    Ok(())
}

/// A plain sqlx pool on the benchmark database, for bulk loading faster than the store's
/// one-at-a-time API (preparation only; nothing measured goes through it), and for what the
/// store has no API for (the growth benchmark's page counts and `VACUUM`).
pub(crate) async fn raw_pool(db: &Path) -> Result<sqlx::SqlitePool> {
    let opts = sqlx::sqlite::SqliteConnectOptions::from_str("sqlite://")?
        .filename(db)
        .journal_mode(sqlx::sqlite::SqliteJournalMode::Wal)
        .synchronous(sqlx::sqlite::SqliteSynchronous::Off)
        .busy_timeout(Duration::from_secs(30));
    Ok(sqlx::sqlite::SqlitePoolOptions::new()
        .max_connections(1)
        .connect_with(opts)
        .await?)
}

/// Inserts subscribers `1..=n` (`readerN@exampleK.org`, a third without a name, a third with
/// an Urdu one) unless they exist, and subscribes all of them, active, to `list_ids`.
pub(crate) async fn bulk_subscribers(db: &Path, n: u64, list_ids: &[i64]) -> Result<()> {
    let pool = raw_pool(db).await?;
    let now = dispatch::domain::db_time(Utc::now());
    let have: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM subscribers")
        .fetch_one(&pool)
        .await?;
    if have == 0 {
        sqlx::query(
            "WITH RECURSIVE seq(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM seq WHERE i < $1)
             INSERT INTO subscribers (id, email, email_key, name, status, consent_source, consent_at, created_at, updated_at)
             SELECT i, 'reader' || i || '@example' || (i % 97) || '.org', 'reader' || i || '@example' || (i % 97) || '.org',
                    CASE i % 3 WHEN 0 THEN NULL WHEN 1 THEN 'Reader ' || i ELSE 'عائشہ خان ' || i END,
                    'active', 'bench', $2, $2, $2 FROM seq",
        )
        .bind(n as i64)
        .bind(&now)
        .execute(&pool)
        .await?;
    }
    for &list in list_ids {
        sqlx::query(
            "INSERT INTO subscriptions (subscriber_id, list_id, status, categories, created_at, confirmed_at)
             SELECT id, $1, 'active', NULL, $2, $2 FROM subscribers WHERE id <= $3",
        )
        .bind(list)
        .bind(&now)
        .bind(n as i64)
        .execute(&pool)
        .await?;
    }
    pool.close().await;
    Ok(())
}

/// Claims every delivery of edition `id` of list `list_id`, a thousand at a time, and records
/// each claimed one sent, as one sender would without its SMTP (each claim leases its rows
/// and, where the audience is not written yet, writes the next rows of it first). Returns the
/// seconds it took and the deliveries claimed: the store's part of sending the edition.
pub(crate) async fn claim_everything(store: &Store, id: i64, list_id: i64) -> Result<(f64, u64)> {
    use dispatch::store::{Item, Outcome, Verdict};
    let me = store
        .register_sender(&dispatch::delivery::owner::current(Some("bench")))
        .await?;
    let t = std::time::Instant::now();
    let mut claimed = 0;
    loop {
        let (batch, skips) = store
            .claim_deliveries(id, list_id, 1000, ChronoDuration::minutes(30), me)
            .await?;
        if batch.is_empty() && skips.unwanted == 0 && skips.invalid == 0 {
            return Ok((t.elapsed().as_secs_f64(), claimed));
        }
        claimed += batch.len() as u64;
        let sent: Vec<Outcome> = batch
            .iter()
            .map(|c| Outcome {
                item: Item::Delivery {
                    id: c.delivery_id,
                    subscriber_id: c.subscriber_id,
                },
                verdict: Verdict::Sent,
            })
            .collect();
        store.record_outcomes(&sent, 3).await?;
    }
}

pub(crate) async fn make_edition(store: &Store, config: &Config, slug: &str) -> Result<(i64, u64)> {
    let list = store.list_by_slug(slug).await?;
    match create_digest(store, config, &list, Utc::now(), None).await? {
        Created::New { id, queued, .. } => Ok((id, queued)),
        Created::Existing { id } => bail!("edition #{id} already existed"),
    }
}

/// Stories per message for the sending benchmarks: about 30 KB per message.
const SEND_STORIES: usize = 18;

/// A database `dir/send.db` with `n` subscribers on each of `lists` and the stories of an
/// English digest of about 30 KB per message, no edition yet (the crash benchmark's
/// `dispatch send digest` makes its own).
pub(crate) async fn prepare_readers(dir: &Path, n: u64, lists: &[&str]) -> Result<PathBuf> {
    let db = dir.join("send.db");
    let store = Store::open(&db).await?;
    let mut ids = Vec::new();
    for l in lists {
        ids.push(store_with_list(&db, l).await?.1);
    }
    add_articles(&store, SEND_STORIES, 2, Language::English).await?;
    store.close().await;
    bulk_subscribers(&db, n, &ids).await?;
    Ok(db)
}

/// [`prepare_readers`] and one digest edition per list, ready to send; returns the database
/// and the editions, in the order of `lists`.
pub(crate) async fn prepare_send<const N: usize>(
    dir: &Path,
    n: u64,
    lists: [&str; N],
) -> Result<(PathBuf, [i64; N])> {
    let db = prepare_readers(dir, n, &lists).await?;
    let store = Store::open(&db).await?;
    let config = bench_config(&db, Language::English, None);
    let mut editions = [0; N];
    for (edition, l) in editions.iter_mut().zip(lists) {
        let (id, queued) = make_edition(&store, &config, l).await?;
        anyhow::ensure!(
            queued == n,
            "edition of {l} has {queued} recipients, not {n}"
        );
        *edition = id;
    }
    store.close().await;
    Ok((db, editions))
}

/// The message template of an edition for readers of every category, as the sender builds it.
pub(crate) async fn template_of(
    store: &Store,
    config: &Config,
    edition: i64,
) -> Result<MessageTemplate> {
    let e = store.edition(edition).await?;
    let mut renderer = EditionRenderer::load(store, config, e).await?;
    let rendered = renderer
        .variant(config, None)
        .context("the edition has nothing to send")?;
    let list = renderer.list().clone();
    let headers = common_headers(config, &list, EditionKind::Digest, &rendered.subject);
    Ok(MessageTemplate::new(
        &headers,
        &rendered.text,
        &rendered.html,
    ))
}
