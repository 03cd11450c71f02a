//! `dispatch-bench`: measures the performance targets and prints a table.
//!
//! ```text
//! cargo run --release --bin dispatch-bench -- [all|import|snapshot|personalise|smtp|rss|unsubscribe] [--quick]
//! ```
//!
//! The parent prepares each benchmark's data in a temporary folder (never `data/` or
//! `outbox/`), then re-invokes this binary with a hidden `--step NAME JSON` argument. The child
//! does only the measured work and prints one `BENCH_RESULT {json}` line with its numbers and
//! its own peak RSS (`VmHWM`), so each memory figure belongs to that work alone. `--quick`
//! scales every count down ten times (and the time targets with it); its verdicts are only a
//! smoke test.
//!
//! External tools: Postfix's `smtp-sink` and `smtp-source` (smtp, rss, unsubscribe) and `wrk`
//! (unsubscribe). A benchmark whose tool is missing is reported as skipped.
#![forbid(unsafe_code)]

use std::collections::HashSet;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitCode, Stdio};
use std::str::FromStr as _;
use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, bail};
use chrono::{Duration as ChronoDuration, Utc};
use serde_json::{Value, json};
use tokio::sync::watch;

use dispatch::config::{Config, Security, TransportKind};
use dispatch::domain::{EmailAddress, ListSlug, Token};
use dispatch::edition::{EditionRenderer, common_headers, create_digest};
use dispatch::mail::sender::{Engine, Mode};
use dispatch::mail::{MessageTemplate, Recipient, Transport, message_id};
use dispatch::store::{Created, EditionKind, ListSpec, NewArticle, Store};

const SMTP_SINK: &str = "/usr/sbin/smtp-sink";
const SMTP_SOURCE: &str = "/usr/sbin/smtp-source";
const WRK: &str = "/usr/bin/wrk";
/// The categories of the generated stories (the default `[digest] category_order`).
const CATEGORIES: [&str; 4] = ["General News", "Politics", "Business", "Sport"];
const RESULT_PREFIX: &str = "BENCH_RESULT ";
const MB: f64 = 1024.0 * 1024.0;

const ALL: [&str; 6] = [
    "import",
    "snapshot",
    "personalise",
    "smtp",
    "rss",
    "unsubscribe",
];

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some("--step") {
        let (Some(name), Some(params)) = (args.get(1), args.get(2)) else {
            eprintln!("--step needs a name and a JSON argument");
            return ExitCode::from(2);
        };
        return match child(name, params) {
            Ok(v) => {
                println!("{RESULT_PREFIX}{v}");
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("step {name} failed: {e:#}");
                ExitCode::FAILURE
            }
        };
    }
    let quick = args.iter().any(|a| a == "--quick");
    let mut which: Vec<&str> = Vec::new();
    for a in args.iter().filter(|a| !a.starts_with("--")) {
        match ALL.iter().find(|b| **b == a.as_str()) {
            Some(b) => which.push(b),
            None if a == "all" => which.extend(ALL),
            None => {
                eprintln!(
                    "unknown benchmark {a:?}; usage: dispatch-bench [all|{}] [--quick]",
                    ALL.join("|")
                );
                return ExitCode::from(2);
            }
        }
    }
    if which.is_empty() {
        which.extend(ALL);
    }
    let mut seen = HashSet::new();
    which.retain(|w| seen.insert(*w));
    match parent(&which, quick) {
        Ok(all_passed) => {
            if all_passed {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(1)
            }
        }
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The parent: prepares data, runs the children, prints rows and the table.

/// One line of the final table.
struct Row {
    bench: String,
    target: String,
    measured: String,
    /// `None`: informational, no target.
    pass: Option<bool>,
}

/// A temporary folder removed when dropped.
struct TempDir(PathBuf);

impl TempDir {
    fn new() -> Result<Self> {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0);
        let p =
            std::env::temp_dir().join(format!("dispatch-bench-{}-{nanos:x}", std::process::id()));
        std::fs::create_dir_all(&p).with_context(|| format!("creating {}", p.display()))?;
        Ok(Self(p))
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn parent(which: &[&str], quick: bool) -> Result<bool> {
    let scale = if quick { 10 } else { 1 };
    let tmp = TempDir::new()?;
    let rt = tokio::runtime::Runtime::new()?;
    eprintln!(
        "dispatch-bench: {} in {}{}",
        which.join(", "),
        tmp.0.display(),
        if quick { " (--quick: counts / 10)" } else { "" }
    );
    let mut rows: Vec<Row> = Vec::new();
    for &b in which {
        eprintln!("\n== {b}");
        let dir = tmp.0.join(b);
        std::fs::create_dir_all(&dir)?;
        let started = Instant::now();
        let result = match b {
            "import" => rt.block_on(bench_import(&tmp.0, &dir, scale)),
            "snapshot" => rt.block_on(bench_snapshot(&tmp.0, &dir, scale)),
            "personalise" => rt.block_on(bench_personalise(&dir, scale)),
            "smtp" => rt.block_on(bench_smtp(&dir, scale)),
            "rss" => rt.block_on(bench_rss(&dir, scale)),
            "unsubscribe" => rt.block_on(bench_unsubscribe(&dir, scale)),
            _ => unreachable!("checked in main"),
        };
        match result {
            Ok(mut r) => {
                for row in &r {
                    println!(
                        "{:<12} {:<34} target {:<20} {}",
                        row.bench,
                        row.measured,
                        row.target,
                        verdict(row.pass)
                    );
                }
                rows.append(&mut r);
            }
            Err(e) => {
                eprintln!("{b} failed: {e:#}");
                rows.push(Row {
                    bench: b.into(),
                    target: "-".into(),
                    measured: format!("error: {e:#}"),
                    pass: Some(false),
                });
            }
        }
        eprintln!(
            "({b}: {:.1} s including preparation)",
            started.elapsed().as_secs_f64()
        );
        // The import database is kept for the snapshot; everything else goes now.
        if b != "import" {
            let _ = std::fs::remove_dir_all(&dir);
        }
        if b == "snapshot" {
            let _ = std::fs::remove_dir_all(tmp.0.join("import"));
        }
    }

    println!();
    if quick {
        println!(
            "_--quick: every count divided by 10 and time targets with it; not a verdict on the real targets._\n"
        );
    }
    println!("| benchmark | target | measured | pass/fail |");
    println!("|---|---|---|---|");
    for r in &rows {
        println!(
            "| {} | {} | {} | {} |",
            r.bench,
            r.target,
            r.measured,
            verdict(r.pass)
        );
    }
    let (cores, load) = machine();
    println!(
        "\n_{cores} cores, load average {load} at the end; release build; {}._",
        Utc::now().format("%Y-%m-%d %H:%M UTC")
    );
    Ok(rows.iter().all(|r| r.pass != Some(false)))
}

fn verdict(p: Option<bool>) -> &'static str {
    match p {
        Some(true) => "pass",
        Some(false) => "FAIL",
        None => "-",
    }
}

fn machine() -> (usize, String) {
    let cores = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1);
    let load = std::fs::read_to_string("/proc/loadavg")
        .ok()
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|| "?".into());
    (cores, load)
}

/// Runs `--step name params` in a fresh process and returns its result object.
fn run_child(name: &str, params: &Value) -> Result<Value> {
    let exe = std::env::current_exe().context("finding this executable")?;
    let out = Command::new(exe)
        .arg("--step")
        .arg(name)
        .arg(params.to_string())
        .stdin(Stdio::null())
        .stderr(Stdio::inherit())
        .output()
        .with_context(|| format!("running step {name}"))?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    if !out.status.success() {
        bail!("step {name} exited with {}", out.status);
    }
    let line = stdout
        .lines()
        .rev()
        .find_map(|l| l.strip_prefix(RESULT_PREFIX))
        .with_context(|| format!("step {name} printed no result"))?;
    serde_json::from_str(line).with_context(|| format!("step {name}: bad result {line:?}"))
}

fn f(v: &Value, key: &str) -> f64 {
    v[key].as_f64().unwrap_or(f64::NAN)
}

fn thousands(n: f64) -> String {
    let s = format!("{:.0}", n);
    let (sign, digits) = s.strip_prefix('-').map_or(("", s.as_str()), |d| ("-", d));
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    format!("{sign}{out}")
}

fn have(tool: &str) -> bool {
    Path::new(tool).exists()
}

fn skipped(bench: &str, why: &str) -> Vec<Row> {
    vec![Row {
        bench: bench.into(),
        target: "-".into(),
        measured: format!("skipped: {why}"),
        pass: None,
    }]
}

/// The configuration every benchmark uses: a temporary database, 40 stories fit in one
/// digest (10 per section), and SMTP to `port` without TLS when given.
fn bench_config(db: &Path, smtp_port: Option<u16>) -> Config {
    let mut c = Config::default();
    c.database.path = db.to_path_buf();
    c.digest.max_per_category = 10;
    c.delivery.outbox = db.with_extension("outbox");
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
async fn store_with_list(db: &Path, slug: &str) -> Result<(Store, i64)> {
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

/// Stores `n` stories published in the last hours, `n / 4` per category; `summary_sentences`
/// sets their length (and so the message size).
async fn add_articles(store: &Store, n: usize, summary_sentences: usize) -> Result<()> {
    let now = Utc::now();
    let sentence = "The minister handed his resignation to the prime minister on Friday evening after talks on the budget collapsed. ";
    for i in 0..n {
        store
            .insert_article(&NewArticle {
                external_id: format!("bench-{i}"),
                url: format!(
                    "https://news.example.com/2026/11/28/story-{i}-finance-minister-resigns-after-budget-talks"
                ),
                title: format!(
                    "Finance minister resigns after budget talks collapse in Islamabad ({i})"
                ),
                summary: sentence.repeat(summary_sentences),
                author: Some("Staff Reporter".into()),
                category: CATEGORIES[i % CATEGORIES.len()].into(),
                language: Some("en".into()),
                image_url: None,
                published_at: now - ChronoDuration::minutes(10 + i as i64),
                breaking: false,
            })
            .await?;
    }
    Ok(())
}

/// A plain sqlx pool on the benchmark database, for bulk loading faster than the store's
/// one-at-a-time API (preparation only; nothing measured goes through it).
async fn raw_pool(db: &Path) -> Result<sqlx::SqlitePool> {
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
async fn bulk_subscribers(db: &Path, n: u64, list_ids: &[i64]) -> Result<()> {
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

/// Creates the digest of `slug` now and returns its id and recipient count.
async fn make_edition(store: &Store, config: &Config, slug: &str) -> Result<(i64, u64)> {
    let list = store.list_by_slug(slug).await?;
    match create_digest(store, config, &list, Utc::now(), None).await? {
        Created::New { id, queued, .. } => Ok((id, queued)),
        Created::Existing { id } => bail!("edition #{id} already existed"),
    }
}

// --- import ----------------------------------------------------------------------------------

/// Writes `n` subscriber rows: email, name (some empty, some Urdu), categories (some empty).
fn write_csv(path: &Path, n: u64) -> Result<u64> {
    let file = std::fs::File::create(path)?;
    let mut w = std::io::BufWriter::with_capacity(1 << 20, file);
    w.write_all(b"email,name,categories\n")?;
    let cats = ["", "Politics", "Business;Sport", "General News;Politics"];
    for i in 1..=n {
        let name = match i % 3 {
            0 => String::new(),
            1 => format!("Reader {i}"),
            _ => format!("عائشہ خان {i}"),
        };
        writeln!(
            w,
            "reader{i}@example{}.org,{name},{}",
            i % 97,
            cats[(i % 4) as usize]
        )?;
    }
    w.flush()?;
    Ok(std::fs::metadata(path)?.len())
}

/// The import database, kept in the top folder for the snapshot.
fn import_db(top: &Path) -> PathBuf {
    top.join("import").join("import.db")
}

async fn bench_import(_top: &Path, dir: &Path, scale: u64) -> Result<Vec<Row>> {
    let n = 1_000_000 / scale;
    let csv = dir.join("subscribers.csv");
    let t = Instant::now();
    let bytes = write_csv(&csv, n)?;
    eprintln!(
        "wrote {} rows ({:.1} MB) in {:.2} s",
        thousands(n as f64),
        bytes as f64 / MB,
        t.elapsed().as_secs_f64()
    );
    let db = dir.join("import.db");
    let (store, _) = store_with_list(&db, "bench").await?;
    store.close().await;
    let r = run_child(
        "import",
        &json!({"db": db, "csv": csv, "list": "bench", "expect": n}),
    )?;
    let _ = std::fs::remove_file(&csv);
    let secs = f(&r, "secs");
    let rss = f(&r, "rss_mb");
    let target_secs = 15.0 / scale as f64;
    eprintln!(
        "imported {} rows ({} active subscriptions) in {secs:.2} s = {} rows/s, peak RSS {rss:.0} MB, CPU {:.1} s",
        thousands(n as f64),
        thousands(f(&r, "active")),
        thousands(n as f64 / secs),
        f(&r, "cpu_secs")
    );
    Ok(vec![
        Row {
            bench: "import".into(),
            target: format!("≤ {target_secs} s for {} rows", thousands(n as f64)),
            measured: format!("{secs:.2} s ({} rows/s)", thousands(n as f64 / secs)),
            pass: Some(secs <= target_secs && f(&r, "active") as u64 == n),
        },
        Row {
            bench: "import RSS".into(),
            target: "≤ 200 MB".into(),
            measured: format!("{rss:.0} MB peak"),
            pass: Some(rss <= 200.0),
        },
    ])
}

// --- snapshot --------------------------------------------------------------------------------

async fn bench_snapshot(top: &Path, dir: &Path, scale: u64) -> Result<Vec<Row>> {
    let n = 1_000_000 / scale;
    let reuse = import_db(top);
    let db = if reuse.exists() {
        eprintln!(
            "reusing the import's database ({} subscribers)",
            thousands(n as f64)
        );
        reuse
    } else {
        let db = dir.join("snapshot.db");
        let (store, list) = store_with_list(&db, "bench").await?;
        store.close().await;
        let t = Instant::now();
        bulk_subscribers(&db, n, &[list]).await?;
        eprintln!(
            "bulk-loaded {} subscribers in {:.1} s",
            thousands(n as f64),
            t.elapsed().as_secs_f64()
        );
        db
    };
    let store = Store::open(&db).await?;
    add_articles(&store, 40, 3).await?;
    store.close().await;
    let r = run_child("snapshot", &json!({"db": db, "list": "bench"}))?;
    let secs = f(&r, "secs");
    let target = 5.0 / scale as f64;
    eprintln!(
        "create_digest: {} deliveries in {secs:.2} s (peak RSS {:.0} MB, CPU {:.1} s)",
        thousands(f(&r, "queued")),
        f(&r, "rss_mb"),
        f(&r, "cpu_secs")
    );
    Ok(vec![Row {
        bench: "snapshot".into(),
        target: format!("≤ {target} s for {} recipients", thousands(n as f64)),
        measured: format!("{secs:.2} s ({} recipients)", thousands(f(&r, "queued"))),
        pass: Some(secs <= target && f(&r, "queued") as u64 == n),
    }])
}

// --- personalise -----------------------------------------------------------------------------

async fn bench_personalise(dir: &Path, scale: u64) -> Result<Vec<Row>> {
    let n = 100_000 / scale;
    let db = dir.join("personalise.db");
    let (store, _) = store_with_list(&db, "bench").await?;
    add_articles(&store, 40, 3).await?;
    let config = bench_config(&db, None);
    let (edition, _) = make_edition(&store, &config, "bench").await?;
    store.close().await;
    let r = run_child(
        "personalise",
        &json!({"db": db, "edition": edition, "n": n}),
    )?;
    let rate = f(&r, "msgs_per_sec");
    eprintln!(
        "{} messages of {:.1} KB in {:.3} s on one core = {} msgs/s ({:.2} GB/s)",
        thousands(n as f64),
        f(&r, "avg_bytes") / 1024.0,
        f(&r, "secs"),
        thousands(rate),
        f(&r, "avg_bytes") * rate / 1e9
    );
    Ok(vec![
        Row {
            bench: "personalise".into(),
            target: "≥ 100,000 msgs/s (1 core)".into(),
            measured: format!(
                "{} msgs/s ({:.1} KB, 40 stories)",
                thousands(rate),
                f(&r, "avg_bytes") / 1024.0
            ),
            pass: Some(rate >= 100_000.0),
        },
        Row {
            bench: "personalise + copy".into(),
            target: "-".into(),
            measured: format!(
                "{} msgs/s (plus the per-message copy the sender makes)",
                thousands(f(&r, "with_copy_msgs_per_sec"))
            ),
            pass: None,
        },
    ])
}

// --- smtp and rss ----------------------------------------------------------------------------

/// Stories per message for the SMTP benchmarks: about 30 KB per message.
const SMTP_STORIES: usize = 18;

async fn prepare_send(dir: &Path, n: u64, lists: &[&str]) -> Result<(PathBuf, Vec<i64>)> {
    let db = dir.join("send.db");
    let store = Store::open(&db).await?;
    let mut ids = Vec::new();
    for l in lists {
        ids.push(store_with_list(&db, l).await?.1);
    }
    add_articles(&store, SMTP_STORIES, 2).await?;
    store.close().await;
    bulk_subscribers(&db, n, &ids).await?;
    let store = Store::open(&db).await?;
    let config = bench_config(&db, None);
    let mut editions = Vec::new();
    for l in lists {
        let (id, queued) = make_edition(&store, &config, l).await?;
        anyhow::ensure!(
            queued == n,
            "edition of {l} has {queued} recipients, not {n}"
        );
        editions.push(id);
    }
    store.close().await;
    Ok((db, editions))
}

async fn bench_smtp(dir: &Path, scale: u64) -> Result<Vec<Row>> {
    if !have(SMTP_SINK) || !have(SMTP_SOURCE) {
        return Ok(skipped("smtp", "needs /usr/sbin/smtp-sink and smtp-source"));
    }
    let n = 20_000 / scale;
    let (db, editions) = prepare_send(dir, n, &["bench"]).await?;
    let r = run_child(
        "smtp",
        &json!({"db": db, "edition": editions[0], "n": n, "source": true}),
    )?;
    let (ours, theirs) = (f(&r, "msgs_per_sec"), f(&r, "source_msgs_per_sec"));
    let ratio = ours / theirs;
    eprintln!(
        "{} messages of {:.1} KB over 8 connections: dispatch {}/s (sent {}, failed {}), smtp-source {}/s (before {}/s, after {}/s), ratio {ratio:.2}; sending child peak RSS {:.0} MB",
        thousands(n as f64),
        f(&r, "msg_bytes") / 1024.0,
        thousands(ours),
        f(&r, "sent"),
        f(&r, "failed"),
        thousands(theirs),
        thousands(f(&r, "source_before_per_sec")),
        thousands(f(&r, "source_after_per_sec")),
        f(&r, "rss_mb")
    );
    Ok(vec![
        Row {
            bench: "smtp".into(),
            target: "≥ 0.8× smtp-source".into(),
            measured: format!(
                "{ratio:.3}× ({}/s vs {}/s, {:.1} KB, 8 conns)",
                thousands(ours),
                thousands(theirs),
                f(&r, "msg_bytes") / 1024.0
            ),
            pass: Some(ratio >= 0.8 && f(&r, "sent") as u64 == n),
        },
        Row {
            bench: "smtp RSS".into(),
            target: "-".into(),
            measured: format!(
                "{:.0} MB peak ({} recipients)",
                f(&r, "rss_mb"),
                thousands(n as f64)
            ),
            pass: None,
        },
    ])
}

async fn bench_rss(dir: &Path, scale: u64) -> Result<Vec<Row>> {
    if !have(SMTP_SINK) {
        return Ok(skipped("rss", "needs /usr/sbin/smtp-sink"));
    }
    let n = 100_000 / scale;
    let (db, editions) = prepare_send(dir, n, &["bench"]).await?;
    let r = run_child(
        "smtp",
        &json!({"db": db, "edition": editions[0], "n": n, "source": false}),
    )?;
    let rss = f(&r, "rss_mb");
    eprintln!(
        "sent {} of {} in {:.1} s ({}/s), peak RSS {rss:.0} MB, CPU {:.1} s",
        f(&r, "sent"),
        thousands(n as f64),
        f(&r, "secs"),
        thousands(f(&r, "msgs_per_sec")),
        f(&r, "cpu_secs")
    );
    Ok(vec![Row {
        bench: "rss".into(),
        target: format!("≤ 100 MB sending to {}", thousands(n as f64)),
        measured: format!("{rss:.0} MB peak ({}/s)", thousands(f(&r, "msgs_per_sec"))),
        pass: Some(rss <= 100.0 && f(&r, "sent") as u64 == n),
    }])
}

// --- unsubscribe -----------------------------------------------------------------------------

/// Tokens per wrk run: each run rotates through its own set.
const TOKENS: i64 = 5000;
/// Pacing of the load while sending: each of `LOAD_CONNECTIONS` connections waits this long
/// before each request, offering about 64 / (25 ms + latency) ≈ 2,000–2,400 requests/s.
const LOAD_DELAY_MS: u32 = 25;
const LOAD_CONNECTIONS: u32 = 64;

async fn bench_unsubscribe(dir: &Path, scale: u64) -> Result<Vec<Row>> {
    if !have(SMTP_SINK) || !have(WRK) {
        return Ok(skipped(
            "unsubscribe",
            "needs /usr/sbin/smtp-sink and /usr/bin/wrk",
        ));
    }
    let n = 20_000 / scale;
    // "base" is sent without load, "load" while wrk runs; "tokens" only issues tokens.
    let (db, editions) = prepare_send(dir, n, &["base", "load", "tokens"]).await?;
    let store = Store::open(&db).await?;
    let tokens_list = store.list_by_slug("tokens").await?;
    let per_run = TOKENS.min(n as i64 / 2);
    let mut claimed = Vec::new();
    for _ in 0..2 {
        // One claim per run: a claim's token INSERT has four SQL variables per row.
        let (mut c, _) = store
            .claim_deliveries(
                editions[2],
                tokens_list.id,
                per_run,
                ChronoDuration::seconds(300),
            )
            .await?;
        claimed.append(&mut c);
    }
    store
        .set_edition_status(editions[2], "cancelled", Some("benchmark: tokens only"))
        .await?;
    store.close().await;
    let tokens: Vec<String> = claimed
        .iter()
        .map(|c| c.token.as_str().to_owned())
        .collect();
    let (idle_tokens, load_tokens) = tokens.split_at(tokens.len() / 2);
    let (idle_script, load_script) = (dir.join("idle.lua"), dir.join("load.lua"));
    // The idle run goes flat out (the pages' capacity); the run while sending is paced near
    // the target rate, because a flat-out load generator on the same two cores would take
    // the sender's CPU whatever the sender did.
    write_wrk_script(&idle_script, idle_tokens, None)?;
    write_wrk_script(&load_script, load_tokens, Some(LOAD_DELAY_MS))?;
    let r = run_child(
        "unsubscribe",
        &json!({
            "db": db, "base": editions[0], "load": editions[1], "n": n,
            "idle_script": idle_script, "load_script": load_script,
            "idle_secs": if scale > 1 { 2 } else { 5 },
            "log": dir.join("web.log"),
        }),
    )?;
    let (rps, p99) = (f(&r, "requests_per_sec"), f(&r, "p99_ms"));
    let (base, loaded) = (f(&r, "base_msgs_per_sec"), f(&r, "load_msgs_per_sec"));
    let ratio = loaded / base;
    let non2xx = f(&r, "non_2xx") as u64 + f(&r, "idle_non_2xx") as u64;
    let locked = f(&r, "db_locked") as u64;
    let errors = f(&r, "socket_errors") as u64 + f(&r, "idle_socket_errors") as u64;
    eprintln!(
        "wrk without sending, {:.1} s, 2 threads, 32 connections, {} tokens: {} req/s, p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
        f(&r, "idle_wrk_secs"),
        idle_tokens.len(),
        thousands(f(&r, "idle_requests_per_sec")),
        f(&r, "idle_p50_ms"),
        f(&r, "idle_p99_ms"),
        f(&r, "idle_max_ms"),
    );
    eprintln!(
        "wrk while sending, paced ({LOAD_CONNECTIONS} connections, {LOAD_DELAY_MS} ms between requests), {:.1} s, {} tokens: {} requests = {} req/s, p50 {:.1} ms, p99 {p99:.1} ms, max {:.1} ms",
        f(&r, "wrk_secs"),
        load_tokens.len(),
        thousands(f(&r, "requests")),
        thousands(rps),
        f(&r, "p50_ms"),
        f(&r, "max_ms"),
    );
    eprintln!(
        "both runs: non-2xx {non2xx}, socket errors {errors}, 'database is locked' in the log {locked}, error log lines {}; {} subscriptions unsubscribed",
        f(&r, "error_lines"),
        thousands(f(&r, "unsubscribed")),
    );
    eprintln!(
        "sending: {}/s without load, {}/s during load ({} messages in the {:.1} s overlap; whole load edition {:.1} s) = {ratio:.2}",
        thousands(base),
        thousands(loaded),
        thousands(f(&r, "load_sent_in_window")),
        f(&r, "overlap_secs"),
        f(&r, "load_secs"),
    );
    Ok(vec![
        Row {
            bench: "unsubscribe".into(),
            target: "≥ 2,000 req/s while sending".into(),
            measured: format!(
                "{} req/s paced while sending ({} req/s flat out, idle)",
                thousands(rps),
                thousands(f(&r, "idle_requests_per_sec"))
            ),
            pass: Some(rps >= 2000.0),
        },
        Row {
            bench: "unsubscribe p99".into(),
            target: "≤ 50 ms".into(),
            measured: format!(
                "{p99:.1} ms (p50 {:.1} ms; idle p99 {:.1} ms)",
                f(&r, "p50_ms"),
                f(&r, "idle_p99_ms")
            ),
            pass: Some(p99 <= 50.0),
        },
        Row {
            bench: "unsubscribe errors".into(),
            target: "0 non-2xx, 0 locked".into(),
            measured: format!(
                "{non2xx} non-2xx, {locked} 'database is locked', {errors} socket errors"
            ),
            pass: Some(non2xx == 0 && locked == 0 && errors == 0),
        },
        Row {
            bench: "send rate under load".into(),
            target: "≥ 0.8× unloaded".into(),
            measured: format!(
                "{ratio:.3}× ({}/s vs {}/s)",
                thousands(loaded),
                thousands(base)
            ),
            pass: Some(ratio >= 0.8),
        },
    ])
}

/// A wrk script that POSTs the RFC 8058 one-click body to `/unsubscribe/{token}`, rotating
/// through `tokens`, each thread starting at a different place; `done` prints the numbers as
/// one JSON line.
fn write_wrk_script(path: &Path, tokens: &[String], delay_ms: Option<u32>) -> Result<()> {
    let mut s = String::new();
    if let Some(ms) = delay_ms {
        // wrk waits `delay()` milliseconds before each request on a connection.
        s.push_str(&format!("function delay()\n  return {ms}\nend\n"));
    }
    s.push_str("local tokens = {\n");
    for t in tokens {
        s.push_str(&format!("  \"{t}\",\n"));
    }
    s.push_str(
        r#"}
local threads = 0
local counter = 0
function setup(thread)
  thread:set("id", threads)
  threads = threads + 1
end
function init(args)
  counter = (id or 0) * 997
end
wrk.method = "POST"
wrk.body = "List-Unsubscribe=One-Click"
wrk.headers["Content-Type"] = "application/x-www-form-urlencoded"
function request()
  counter = counter + 1
  return wrk.format(nil, "/unsubscribe/" .. tokens[(counter % #tokens) + 1])
end
function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    "WRK_JSON {\"requests\":%d,\"duration_us\":%d,\"non_2xx\":%d,\"connect\":%d,\"read\":%d,\"write\":%d,\"timeout\":%d,\"p50_us\":%d,\"p99_us\":%d,\"max_us\":%d}\n",
    summary.requests, summary.duration, e.status, e.connect, e.read, e.write, e.timeout,
    latency:percentile(50), latency:percentile(99), latency.max))
end
"#,
    );
    std::fs::write(path, s)?;
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// The children: the measured work, one per process.

fn child(name: &str, params: &str) -> Result<Value> {
    let p: Value = serde_json::from_str(params).context("step parameters")?;
    let rt = tokio::runtime::Runtime::new()?;
    let mut v = match name {
        "import" => rt.block_on(step_import(&p))?,
        "snapshot" => rt.block_on(step_snapshot(&p))?,
        "personalise" => rt.block_on(step_personalise(&p))?,
        "smtp" => rt.block_on(step_smtp(&p))?,
        "unsubscribe" => rt.block_on(step_unsubscribe(&p))?,
        other => bail!("unknown step {other}"),
    };
    drop(rt);
    v["rss_mb"] = json!(peak_rss_kb()? as f64 / 1024.0);
    v["cpu_secs"] = json!(cpu_secs()?);
    Ok(v)
}

/// CPU time (user + system) this process used, in seconds: next to the wall time it shows
/// whether a step was starved by other work on the machine.
fn cpu_secs() -> Result<f64> {
    let stat = std::fs::read_to_string("/proc/self/stat")?;
    let after = stat
        .rsplit_once(')')
        .map(|(_, a)| a)
        .context("bad /proc/self/stat")?;
    let fields: Vec<&str> = after.split_whitespace().collect();
    // Fields 14 and 15 of proc(5), utime and stime, in clock ticks (USER_HZ = 100 on Linux).
    let ticks = |i: usize| -> Result<f64> {
        Ok(fields
            .get(i)
            .context("short /proc/self/stat")?
            .parse::<f64>()?)
    };
    Ok((ticks(11)? + ticks(12)?) / 100.0)
}

/// This process's peak resident set size (`VmHWM`), in KiB.
fn peak_rss_kb() -> Result<u64> {
    let status = std::fs::read_to_string("/proc/self/status")?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .context("no VmHWM in /proc/self/status")
}

fn path(p: &Value, key: &str) -> Result<PathBuf> {
    Ok(PathBuf::from(
        p[key].as_str().with_context(|| format!("missing {key}"))?,
    ))
}

fn int(p: &Value, key: &str) -> Result<i64> {
    p[key].as_i64().with_context(|| format!("missing {key}"))
}

async fn step_import(p: &Value) -> Result<Value> {
    let (db, csv) = (path(p, "db")?, path(p, "csv")?);
    let list = p["list"].as_str().context("missing list")?;
    let store = Store::open(&db).await?;
    let t = Instant::now();
    let outcome = dispatch::cli::subscribers_import::import(&store, &csv, list, false).await?;
    let secs = t.elapsed().as_secs_f64();
    let l = store.list_by_slug(list).await?;
    let (_, active, _) = store.subscription_counts(l.id).await?;
    store.close().await;
    Ok(json!({"secs": secs, "active": active, "outcome": format!("{outcome:?}")}))
}

async fn step_snapshot(p: &Value) -> Result<Value> {
    let db = path(p, "db")?;
    let store = Store::open(&db).await?;
    let config = bench_config(&db, None);
    let list = store
        .list_by_slug(p["list"].as_str().context("missing list")?)
        .await?;
    let t = Instant::now();
    let created = create_digest(&store, &config, &list, Utc::now(), None).await?;
    let secs = t.elapsed().as_secs_f64();
    store.close().await;
    let Created::New {
        queued, skipped, ..
    } = created
    else {
        bail!("the digest already existed");
    };
    Ok(json!({"secs": secs, "queued": queued, "skipped": skipped}))
}

/// The message template of an edition for readers of every category, as the sender builds it.
async fn template_of(store: &Store, config: &Config, edition: i64) -> Result<MessageTemplate> {
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

async fn step_personalise(p: &Value) -> Result<Value> {
    let db = path(p, "db")?;
    let n = int(p, "n")? as usize;
    let store = Store::open(&db).await?;
    let config = bench_config(&db, None);
    let template = template_of(&store, &config, int(p, "edition")?).await?;
    store.close().await;
    let domain = template.message_id_domain().to_owned();
    let readers: Vec<(EmailAddress, Option<String>, Token, String)> = (0..n)
        .map(|i| {
            let name = match i % 3 {
                0 => None,
                1 => Some(format!("Reader {i}")),
                _ => Some(format!("عائشہ خان {i}")),
            };
            Ok((
                EmailAddress::parse(&format!("reader{i}@example{}.org", i % 97))?,
                name,
                Token::generate(),
                message_id(1, i as i64, &domain),
            ))
        })
        .collect::<Result<_>>()?;
    let mut out = Vec::new();
    let mut bytes = 0usize;
    let t = Instant::now();
    for (to, name, token, mid) in &readers {
        out.clear();
        template.personalise(
            &Recipient {
                to,
                name: name.as_deref(),
                token: token.as_str(),
                message_id: mid,
            },
            &mut out,
        );
        bytes += std::hint::black_box(&out).len();
    }
    let secs = t.elapsed().as_secs_f64();
    // The sender also copies each message out of its scratch buffer into the job it hands
    // to a connection: the same loop with that copy, for reference.
    let t = Instant::now();
    for (to, name, token, mid) in &readers {
        out.clear();
        template.personalise(
            &Recipient {
                to,
                name: name.as_deref(),
                token: token.as_str(),
                message_id: mid,
            },
            &mut out,
        );
        std::hint::black_box(out.clone());
    }
    let copy_secs = t.elapsed().as_secs_f64();
    Ok(json!({
        "secs": secs, "n": n, "msgs_per_sec": n as f64 / secs,
        "avg_bytes": bytes as f64 / n as f64,
        "with_copy_msgs_per_sec": n as f64 / copy_secs,
    }))
}

/// A process we started, killed by its own handle when dropped.
struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> Result<u16> {
    let l = std::net::TcpListener::bind("127.0.0.1:0")?;
    Ok(l.local_addr()?.port())
}

/// Starts `smtp-sink` on a free loopback port and waits until it accepts connections.
async fn start_sink() -> Result<(Killed, u16)> {
    let port = free_port()?;
    // smtp-sink insists on dropping privileges when started as root, and may not switch
    // users otherwise.
    let as_root = std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("Uid:"))
                .map(|u| u.split_whitespace().nth(1) == Some("0"))
        })
        .unwrap_or(false);
    let user: &[&str] = if as_root { &["-u", "root"] } else { &[] };
    let sink = Killed(
        Command::new(SMTP_SINK)
            .args(user)
            .args([format!("127.0.0.1:{port}").as_str(), "1000"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .spawn()
            .context("starting smtp-sink")?,
    );
    let deadline = Instant::now() + Duration::from_secs(5);
    while tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .is_err()
    {
        anyhow::ensure!(Instant::now() < deadline, "smtp-sink did not start");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Ok((sink, port))
}

/// Sends `edition` with the real engine; returns (seconds, sent, failed).
async fn send_edition(engine: &Engine, edition: i64) -> Result<(f64, u64, u64)> {
    let (_tx, rx) = watch::channel(false);
    let t = Instant::now();
    let report = engine
        .run(
            Some(HashSet::from([edition])),
            Mode::UntilIdle {
                wait_for_retries: Duration::ZERO,
            },
            rx,
        )
        .await?;
    let secs = t.elapsed().as_secs_f64();
    Ok((
        secs,
        report.sent,
        report.failed + report.bounced + report.retry_later,
    ))
}

async fn step_smtp(p: &Value) -> Result<Value> {
    let db = path(p, "db")?;
    let (edition, n) = (int(p, "edition")?, int(p, "n")?);
    let (_sink, port) = start_sink().await?;
    let store = Store::open(&db).await?;
    let config = Arc::new(bench_config(&db, Some(port)));
    // One personalised message, for its size (smtp-source sends the same length).
    let size = {
        let t = template_of(&store, &config, edition).await?;
        let mut out = Vec::new();
        let to = EmailAddress::parse("reader1@example1.org")?;
        t.personalise(
            &Recipient {
                to: &to,
                name: Some("Reader 1"),
                token: Token::generate().as_str(),
                message_id: &message_id(edition, 1, "news.example.com"),
            },
            &mut out,
        );
        out.len()
    };
    let source = p["source"].as_bool() == Some(true);
    // smtp-source runs just before and just after our send, and the two are averaged, so
    // that a change in the machine's load during the run weighs on both sides alike.
    let before = if source {
        Some(run_source(port, n, size).await?)
    } else {
        None
    };
    let engine = Engine::new(
        store.clone(),
        Arc::clone(&config),
        Transport::from_config(&config)?,
    )?;
    let (secs, sent, failed) = send_edition(&engine, edition).await?;
    drop(engine);
    // What the database says, not only what the engine counted.
    let recorded = store
        .delivery_counts(edition)
        .await?
        .get("sent")
        .copied()
        .unwrap_or(0);
    let status = store.edition(edition).await?.status;
    store.close().await;
    anyhow::ensure!(
        recorded == n && status == "sent",
        "the database records {recorded} of {n} deliveries sent and the edition {status}"
    );
    let mut v = json!({
        "secs": secs, "sent": sent, "failed": failed, "msg_bytes": size,
        "msgs_per_sec": sent as f64 / secs,
    });
    if let Some(before) = before {
        let after = run_source(port, n, size).await?;
        v["source_before_per_sec"] = json!(n as f64 / before);
        v["source_after_per_sec"] = json!(n as f64 / after);
        v["source_msgs_per_sec"] = json!(2.0 * n as f64 / (before + after));
    }
    Ok(v)
}

/// Runs `smtp-source` with 8 sessions kept open (`-d`), `n` messages of `size` bytes;
/// returns the seconds it took.
async fn run_source(port: u16, n: i64, size: usize) -> Result<f64> {
    let t = Instant::now();
    let st = tokio::process::Command::new(SMTP_SOURCE)
        .args([
            "-s",
            "8",
            "-m",
            &n.to_string(),
            "-l",
            &size.to_string(),
            "-d",
        ])
        .arg(format!("127.0.0.1:{port}"))
        .stdout(Stdio::null())
        .status()
        .await
        .context("running smtp-source")?;
    anyhow::ensure!(st.success(), "smtp-source failed: {st}");
    Ok(t.elapsed().as_secs_f64())
}

/// Confirmation mail is not part of this benchmark.
struct NoConfirmations;

impl dispatch::web::ConfirmationSender for NoConfirmations {
    fn send(
        &self,
        _to: &EmailAddress,
        _list_name: &str,
        _confirm_url: &str,
    ) -> futures_util::future::BoxFuture<'_, anyhow::Result<()>> {
        Box::pin(async { Ok(()) })
    }
}

/// Runs wrk with `script` against `addr` for `secs`, echoes its report, and returns the
/// numbers its `done` hook printed.
async fn run_wrk(
    script: &Path,
    addr: std::net::SocketAddr,
    secs: u64,
    connections: u32,
) -> Result<Value> {
    let connections = connections.to_string();
    let out = tokio::process::Command::new(WRK)
        .args([
            "-t",
            "2",
            "-c",
            connections.as_str(),
            "-d",
            &format!("{secs}s"),
            "--latency",
            "-s",
        ])
        .arg(script)
        .arg(format!("http://{addr}/"))
        .stdin(Stdio::null())
        .stderr(Stdio::inherit())
        .output()
        .await
        .context("running wrk")?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    anyhow::ensure!(out.status.success(), "wrk failed: {stdout}");
    for l in stdout.lines().filter(|l| !l.starts_with("WRK_JSON")) {
        eprintln!("  wrk| {l}");
    }
    let w: Value = stdout
        .lines()
        .find_map(|l| l.strip_prefix("WRK_JSON "))
        .context("wrk printed no summary")
        .and_then(|j| Ok(serde_json::from_str(j)?))?;
    let wf = |k: &str| w[k].as_f64().unwrap_or(f64::NAN);
    Ok(json!({
        "wrk_secs": wf("duration_us") / 1e6,
        "requests": wf("requests"),
        "requests_per_sec": wf("requests") / (wf("duration_us") / 1e6),
        "non_2xx": wf("non_2xx"),
        "socket_errors": wf("connect") + wf("read") + wf("write") + wf("timeout"),
        "p50_ms": wf("p50_us") / 1000.0,
        "p99_ms": wf("p99_us") / 1000.0,
        "max_ms": wf("max_us") / 1000.0,
    }))
}

async fn step_unsubscribe(p: &Value) -> Result<Value> {
    let db = path(p, "db")?;
    let (base, load, n) = (int(p, "base")?, int(p, "load")?, int(p, "n")?);
    let (idle_script, load_script) = (path(p, "idle_script")?, path(p, "load_script")?);
    let log = path(p, "log")?;
    // Warnings and errors (a handler's "database is locked" among them) go to a file.
    let log_file = std::fs::File::create(&log)?;
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::new("warn"))
        .with_writer(std::sync::Mutex::new(log_file))
        .with_ansi(false)
        .init();

    let (_sink, port) = start_sink().await?;
    let store = Store::open(&db).await?;
    let config = Arc::new(bench_config(&db, Some(port)));
    let engine = Arc::new(Engine::new(
        store.clone(),
        Arc::clone(&config),
        Transport::from_config(&config)?,
    )?);

    // The web pages, as the daemon serves them, on the same runtime as the sender.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let web_addr = listener.local_addr()?;
    let (stop_tx, mut stop_rx) = watch::channel(false);
    let state = dispatch::web::AppState::new(
        store.clone(),
        Arc::clone(&config),
        Arc::new(NoConfirmations),
    );
    let web = tokio::spawn(dispatch::web::serve(listener, state, async move {
        let _ = stop_rx.wait_for(|s| *s).await;
    }));

    // 1. The web pages alone.
    let idle_secs = p["idle_secs"].as_u64().unwrap_or(5);
    let idle = run_wrk(&idle_script, web_addr, idle_secs, 32).await?;

    // 2. Sending alone.
    let (base_secs, base_sent, base_failed) = send_edition(&engine, base).await?;
    anyhow::ensure!(base_sent as i64 == n, "baseline sent {base_sent} of {n}");

    // 3. Both. wrk runs for about as long as the unloaded send took (at most 10 s), so that
    // the load falls while the edition is sending (under load the send takes longer).
    let wrk_secs = (base_secs * 0.9).clamp(3.0, 10.0).round() as u64;
    let progress = engine.progress();
    let sent_before = progress.sent.load(Relaxed);
    let sending = {
        let engine = Arc::clone(&engine);
        tokio::spawn(async move {
            let r = send_edition(&engine, load).await;
            (r, Instant::now())
        })
    };
    // Let the sender get going before the load starts.
    while progress.sent.load(Relaxed) == sent_before && !sending.is_finished() {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let sent_at_start = progress.sent.load(Relaxed);
    let wrk_start = Instant::now();
    let loaded = run_wrk(&load_script, web_addr, wrk_secs, LOAD_CONNECTIONS).await?;
    let wrk_end = Instant::now();
    let sent_at_wrk_end = progress.sent.load(Relaxed);
    let (result, finished) = sending.await?;
    let (load_secs, load_sent, load_failed) = result?;
    let _ = stop_tx.send(true);
    let _ = web.await;
    // The overlap: from the start of the load until the load ended or the edition was sent.
    let (overlap, in_window) = if finished <= wrk_end {
        (
            finished - wrk_start,
            progress.sent.load(Relaxed) - sent_at_start,
        )
    } else {
        (wrk_end - wrk_start, sent_at_wrk_end - sent_at_start)
    };
    let overlap = overlap.as_secs_f64();
    let tl = store.list_by_slug("tokens").await?;
    let (_, _, unsubscribed) = store.subscription_counts(tl.id).await?;
    store.close().await;

    let log_text = std::fs::read_to_string(&log).unwrap_or_default();
    let locked = log_text.matches("database is locked").count();
    let error_lines = log_text.lines().filter(|l| l.contains("ERROR")).count();
    for l in log_text.lines().filter(|l| l.contains("ERROR")).take(3) {
        eprintln!("  log| {l}");
    }

    let mut v = loaded;
    for (k, x) in idle.as_object().into_iter().flatten() {
        v[format!("idle_{k}")] = x.clone();
    }
    for (k, x) in [
        ("base_secs", json!(base_secs)),
        ("base_sent", json!(base_sent)),
        ("base_failed", json!(base_failed)),
        ("base_msgs_per_sec", json!(base_sent as f64 / base_secs)),
        ("load_secs", json!(load_secs)),
        ("load_sent", json!(load_sent)),
        ("load_failed", json!(load_failed)),
        ("load_sent_in_window", json!(in_window)),
        ("overlap_secs", json!(overlap)),
        ("load_msgs_per_sec", json!(in_window as f64 / overlap)),
        ("db_locked", json!(locked)),
        ("error_lines", json!(error_lines)),
        ("unsubscribed", json!(unsubscribed)),
    ] {
        v[k] = x;
    }
    Ok(v)
}
