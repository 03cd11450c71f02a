//! `growth`: database bytes per message sent, after 30 editions to 20,000 readers sent by the
//! real engine to `smtp-sink`, before and after compaction (`Store::compact_editions`, what
//! `dispatch editions compact --older-than-days 0` runs).
//!
//! Bytes per message = (size after − size of the same database before the editions) /
//! messages sent, in two measures: the live bytes (`page_count − freelist_count` pages, what
//! SQLite uses at that moment) and the file after `VACUUM`. The readers, their subscriptions
//! and every story are in the database before it is first measured, so what grows is only
//! what sending adds: delivery rows, reader tokens, the editions.
//!
//! Target: storage proportional to readers, not to messages sent. A reader's first message
//! makes the one token that subscription keeps, so the first edition costs bytes per reader;
//! compacted, every later edition must add at most 1 byte per message (what remains is per
//! edition: its row, its stories, its counts; a few hundred bytes each, a hundredth of a byte
//! per message at 20,000 readers). That figure compares the compacted database after 30
//! editions with a compacted copy after the first. The token rows must equal the
//! subscriptions, and compaction must leave no delivery row of a sent message (and
//! `editions show` the same counts).
//!
//! For context, without a target: the previous design (one token row per message, and a
//! sent delivery row that kept its Message-ID and the relay's reply, never compacted),
//! reconstructed on a copy of the sent database by adding exactly that to it.
//!
//! The messages are short (one story per edition, so each edition has its own window) because
//! their size changes nothing in the database and short ones send faster.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context as _, Result};
use chrono::{DateTime, Duration as ChronoDuration, DurationRound as _, Utc};
use serde::{Deserialize, Serialize};

use dispatch::delivery::Engine;
use dispatch::edition::create_digest;
use dispatch::mail::Transport;
use dispatch::store::{Created, DeliveryStatus, NewArticle, Store};

use crate::Ctx;
use crate::child::{self, Step};
use crate::setup::{LIST, Language, bench_config, bulk_subscribers, raw_pool, store_with_list};
use crate::smtp::send_edition;
use crate::table::{Row, Verdict, thousands};
use crate::tools::{self, Tool};

/// Readers at full scale.
const READERS: u64 = 20_000;
/// Editions sent, at every scale.
const EDITIONS: u32 = 30;
/// The target: bytes per message left after compaction.
const COMPACTED_TARGET: f64 = 1.0;

/// In `db` (readers and stories ready): measures, sends `editions` digests, the first at
/// `first` + 30 min and one an hour after another (measuring a compacted copy after the
/// first), measures, compacts, measures.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct GrowthStep {
    db: PathBuf,
    sink: PathBuf,
    n: u64,
    editions: u32,
    first: DateTime<Utc>,
}

/// A database's size, in bytes.
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
pub(crate) struct Size {
    /// Pages in use (`page_count − freelist_count`) × `page_size`, before `VACUUM`.
    live: u64,
    /// The file after `VACUUM` (and a checkpoint, so nothing is left in the WAL).
    vacuumed: u64,
}

#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct GrowthOutput {
    messages: u64,
    /// Messages of the first edition.
    first_messages: u64,
    send_secs: f64,
    before: Size,
    /// After the first edition, compacted (a copy).
    first_compacted: Size,
    /// After the editions were sent, before compaction.
    sent: Size,
    compacted: Size,
    /// The sent database with the previous design's per-message rows added.
    old_design: Size,
    tokens: i64,
    subscriptions: i64,
    /// Delivery rows before and after compaction.
    rows_sent: i64,
    rows_compacted: i64,
    compacted_editions: u64,
    /// What `editions show` reports sent for the first edition after compaction.
    first_shown_sent: i64,
}

impl GrowthOutput {
    /// Bytes per message sent from `before` to `after`, in both measures.
    fn per_message(&self, after: Size) -> (f64, f64) {
        per_message(self.before, after, self.messages)
    }

    /// Bytes per message of the editions after the first, compacted: what a list that
    /// keeps sending adds once its readers have their tokens. In the file after `VACUUM`
    /// only: live pages after a compaction include those its deletes left half empty, which
    /// differ between the copy and the database and can make the difference negative.
    fn per_further_message(&self) -> f64 {
        per_message(
            self.first_compacted,
            self.compacted,
            self.messages - self.first_messages,
        )
        .0
    }
}

/// (file after VACUUM, live) bytes per message from `from` to `to` over `messages`.
fn per_message(from: Size, to: Size, messages: u64) -> (f64, f64) {
    let per = |a: u64, b: u64| (a as f64 - b as f64) / messages as f64;
    (per(to.vacuumed, from.vacuumed), per(to.live, from.live))
}

impl Step for GrowthStep {
    const NAME: &'static str = "growth";
    type Output = GrowthOutput;

    async fn run(self) -> Result<GrowthOutput> {
        let before = measure(&self.db).await?;
        let (_sink, port) = tools::start_sink(&self.sink).await?;
        let config = Arc::new(bench_config(&self.db, Language::English, Some(port)));
        let open = || async {
            let store = Store::open(&self.db).await?;
            let engine = Engine::new(
                store.clone(),
                Arc::clone(&config),
                Transport::from_config(&config)?,
            )?;
            anyhow::Ok((store, engine))
        };
        let (mut store, mut engine) = open().await?;
        let list = store.list_by_slug(LIST).await?;
        let (mut messages, mut send_secs) = (0, 0.0);
        let mut first_edition = None;
        let mut first_compacted = None;
        for k in 0..self.editions {
            if k == 1 {
                // The first edition made every reader's token: measure a copy compacted now,
                // so what the other editions add can be told from what the readers cost.
                drop(engine);
                store.close().await;
                first_compacted = Some(compacted_copy(&self.db).await?);
                (store, engine) = open().await?;
            }
            let now = self.first + ChronoDuration::minutes(60 * i64::from(k) + 30);
            let id = match create_digest(&store, &config, &list, now, None).await? {
                Created::New { id, queued, .. } => {
                    anyhow::ensure!(
                        queued == self.n,
                        "edition {k} has {queued} recipients, not {}",
                        self.n
                    );
                    id
                }
                Created::Existing { id } => anyhow::bail!("edition #{id} already existed"),
            };
            first_edition.get_or_insert(id);
            let sent = send_edition(&engine, id).await?;
            anyhow::ensure!(
                sent.sent == self.n && sent.failed == 0,
                "edition {k}: sent {} of {}, {} failed",
                sent.sent,
                self.n,
                sent.failed
            );
            messages += sent.sent;
            send_secs += sent.secs;
        }
        drop(engine);
        store.close().await;
        let first_edition = first_edition.context("no edition was sent")?;

        let sent = measure(&self.db).await?;
        let (tokens, subscriptions, rows_sent) = rows(&self.db).await?;
        let old_design = reconstruct_old_design(&self.db).await?;

        let store = Store::open(&self.db).await?;
        let done = store.compact_editions(Utc::now()).await?;
        let first_shown_sent = store
            .delivery_counts(first_edition)
            .await?
            .get(&DeliveryStatus::Sent)
            .copied()
            .unwrap_or(0);
        store.close().await;
        let compacted = measure(&self.db).await?;
        let (_, _, rows_compacted) = rows(&self.db).await?;
        Ok(GrowthOutput {
            messages,
            first_messages: self.n,
            send_secs,
            before,
            first_compacted: first_compacted.context("only one edition")?,
            sent,
            compacted,
            old_design,
            tokens,
            subscriptions,
            rows_sent,
            rows_compacted,
            compacted_editions: done.editions,
            first_shown_sent,
        })
    }
}

/// The live bytes of `db`, then its file size after `VACUUM`. Nothing else may have it open.
async fn measure(db: &Path) -> Result<Size> {
    let pool = raw_pool(db).await?;
    let pragma = |p: &'static str| sqlx::query_scalar::<_, i64>(p).fetch_one(&pool);
    let page_size = pragma("PRAGMA page_size").await?;
    let live =
        (pragma("PRAGMA page_count").await? - pragma("PRAGMA freelist_count").await?) * page_size;
    sqlx::query("VACUUM").execute(&pool).await?;
    // Until a checkpoint the vacuumed pages are in the WAL, not the file.
    sqlx::query("PRAGMA wal_checkpoint(TRUNCATE)")
        .execute(&pool)
        .await?;
    let pages = pragma("PRAGMA page_count").await?;
    pool.close().await;
    let file = std::fs::metadata(db)
        .with_context(|| format!("reading the size of {}", db.display()))?
        .len();
    anyhow::ensure!(
        i64::try_from(file) == Ok(pages * page_size),
        "{} is {file} bytes after VACUUM but holds {pages} pages of {page_size}",
        db.display()
    );
    Ok(Size {
        live: u64::try_from(live)?,
        vacuumed: file,
    })
}

/// The size of a copy of `db` with its finished editions compacted; the copy is removed.
async fn compacted_copy(db: &Path) -> Result<Size> {
    let copy = db.with_file_name("first-edition.db");
    let result = async {
        // Checkpointed first, so the file alone holds everything.
        let pool = raw_pool(db).await?;
        sqlx::query("PRAGMA wal_checkpoint(TRUNCATE)")
            .execute(&pool)
            .await?;
        pool.close().await;
        std::fs::copy(db, &copy).with_context(|| format!("copying {}", db.display()))?;
        let store = Store::open(&copy).await?;
        store.compact_editions(Utc::now()).await?;
        store.close().await;
        measure(&copy).await
    }
    .await;
    remove_db(&copy);
    result
}

/// Removes the database `db` and its WAL files.
fn remove_db(db: &Path) {
    for suffix in ["", "-wal", "-shm"] {
        let mut p = db.to_path_buf().into_os_string();
        p.push(suffix);
        let _ = std::fs::remove_file(p);
    }
}

/// (token rows, subscriptions, delivery rows) in `db`.
async fn rows(db: &Path) -> Result<(i64, i64, i64)> {
    let pool = raw_pool(db).await?;
    let count = |q: &'static str| sqlx::query_scalar::<_, i64>(q).fetch_one(&pool);
    let r = (
        count("SELECT COUNT(*) FROM tokens").await?,
        count("SELECT COUNT(*) FROM subscriptions").await?,
        count("SELECT COUNT(*) FROM deliveries").await?,
    );
    pool.close().await;
    Ok(r)
}

/// The size `db` (just measured, so vacuumed and checkpointed) would have under the previous
/// design: a copy with, for every message sent, the token row each message made then (ours
/// has one per subscription, made with its first message) and the Message-ID and reply its
/// delivery row kept ("250 accepted", as that design recorded it).
async fn reconstruct_old_design(db: &Path) -> Result<Size> {
    let old = db.with_file_name("old-design.db");
    std::fs::copy(db, &old).with_context(|| format!("copying {}", db.display()))?;
    let result = async {
        let pool = raw_pool(&old).await?;
        sqlx::query(
            "INSERT INTO tokens (hash, purpose, subscription_id, created_at)
             SELECT randomblob(32), 'unsubscribe', s.id, d.sent_at
             FROM deliveries d
             JOIN editions e ON e.id = d.edition_id
             JOIN subscriptions s ON s.subscriber_id = d.subscriber_id AND s.list_id = e.list_id
             WHERE d.status = 'sent' AND d.edition_id <> (SELECT MIN(id) FROM editions)",
        )
        .execute(&pool)
        .await?;
        // Message-IDs were <e{edition}.s{subscriber}.{16 random characters}@{domain}>.
        sqlx::query(
            "UPDATE deliveries
             SET message_id = '<e' || edition_id || '.s' || subscriber_id || '.'
                              || lower(hex(randomblob(8))) || '@news.example.com>',
                 last_reply = '250 accepted'
             WHERE status = 'sent'",
        )
        .execute(&pool)
        .await?;
        pool.close().await;
        measure(&old).await
    }
    .await;
    remove_db(&old);
    result
}

/// One story per edition, published an hour apart from `first`, each available from the
/// moment it was published (so edition k's window holds story k alone).
async fn prepare(db: &Path, n: u64, first: DateTime<Utc>) -> Result<()> {
    let (store, list) = store_with_list(db, LIST).await?;
    for k in 0..EDITIONS {
        store
            .insert_article(&NewArticle {
                external_id: format!("growth-{k}"),
                url: format!("https://news.example.com/2026/11/28/story-{k}"),
                title: format!("Council approves the budget after a late session ({k})"),
                summary: "The council approved the budget shortly before midnight.".into(),
                author: Some("Staff Reporter".into()),
                category: "Politics".into(),
                language: Some("en".into()),
                image_url: None,
                published_at: first + ChronoDuration::hours(i64::from(k)),
                breaking: false,
            })
            .await?;
    }
    store.close().await;
    bulk_subscribers(db, n, &[list]).await?;
    // The stories reached the database now; as far as the windows go they arrived when
    // published (a story counts from the later of the two).
    let pool = raw_pool(db).await?;
    sqlx::query("UPDATE articles SET created_at = published_at")
        .execute(&pool)
        .await?;
    pool.close().await;
    Ok(())
}

pub(crate) async fn run(ctx: &Ctx) -> Result<Vec<Row>> {
    let [sink] = match tools::find_all([Tool::SmtpSink]) {
        Ok(paths) => paths,
        Err(why) => return Ok(Row::skipped("growth", &why)),
    };
    let n = ctx.scale.count(READERS);
    // Whole seconds, as the database stores times; the last edition an hour or two ago.
    let first = (Utc::now() - ChronoDuration::hours(i64::from(EDITIONS) + 2))
        .duration_trunc(ChronoDuration::seconds(1))?;
    let db = ctx.dir.join("growth.db");
    prepare(&db, n, first).await?;
    let r = child::spawn(&GrowthStep {
        db,
        sink,
        n,
        editions: EDITIONS,
        first,
    })?;
    let o = &r.output;
    let (sent_file, sent_live) = o.per_message(o.sent);
    let (compacted_file, compacted_live) = o.per_message(o.compacted);
    let (old_file, old_live) = o.per_message(o.old_design);
    let mb = |b: u64| format!("{:.1} MB", b as f64 / 1e6);
    eprintln!(
        "{} messages in {EDITIONS} editions to {} readers in {:.1} s ({}/s); database {} before, {} sent, {} compacted ({} editions, {} delivery rows → {}), {} old design; {} token rows for {} subscriptions; first edition still shows {} sent",
        thousands(o.messages as f64),
        thousands(n as f64),
        o.send_secs,
        thousands(o.messages as f64 / o.send_secs),
        mb(o.before.vacuumed),
        mb(o.sent.vacuumed),
        mb(o.compacted.vacuumed),
        o.compacted_editions,
        thousands(o.rows_sent as f64),
        thousands(o.rows_compacted as f64),
        mb(o.old_design.vacuumed),
        thousands(o.tokens as f64),
        thousands(o.subscriptions as f64),
        thousands(o.first_shown_sent as f64),
    );
    let expected = u64::from(EDITIONS) * n;
    let honest = o.messages == expected
        && o.compacted_editions == u64::from(EDITIONS)
        && o.rows_compacted == 0
        && u64::try_from(o.first_shown_sent) == Ok(n);
    let further = o.per_further_message();
    let per_reader = (o.first_compacted.vacuumed as f64 - o.before.vacuumed as f64) / n as f64;
    Ok(vec![
        Row::new(
            "growth",
            format!("≤ {COMPACTED_TARGET:.0} B/msg compacted after 1st edition; tokens = subs"),
            format!(
                "{further:.2} B/msg; {} tokens, {} subscriptions",
                thousands(o.tokens as f64),
                thousands(o.subscriptions as f64)
            ),
            Verdict::of(further <= COMPACTED_TARGET && o.tokens == o.subscriptions && honest),
        ),
        Row::info(
            "growth compacted",
            format!(
                "{compacted_file:.2} B/msg (live {compacted_live:.2}) over all {EDITIONS} editions: the token each reader gets once, {per_reader:.0} B/reader"
            ),
        ),
        Row::info(
            "growth sent",
            format!(
                "{sent_file:.1} B/msg before compaction (live {sent_live:.1}), {} msgs in {EDITIONS} editions",
                thousands(o.messages as f64)
            ),
        ),
        Row::info(
            "growth old",
            format!(
                "{old_file:.1} B/msg (live {old_live:.1}): previous design, token + Message-ID + reply per message, reconstructed"
            ),
        ),
    ])
}
