//! `api`: how fast the CMS API answers `PUT /api/v1/articles/{id}` while an edition sends.
//!
//! The child is the daemon's half: the real web router (`/api/v1` with an editor key) on
//! 127.0.0.1 and the real delivery engine, in one process on one database, as `dispatch run`
//! has them. The parent is the CMS: a reqwest client doing sequential PUTs (each one a real
//! update: the title changes), first with nothing sending (the reference), then while the
//! child sends a 20,000-reader edition to Postfix's `smtp-sink`. The two sides signal
//! through files in the benchmark's folder (`ready`, `send`, `sent`, `stop`).
//!
//! Target: p99 at most 20 ms while the edition sends. Beside it p50, and the reference p99
//! of the same PUTs in the same run.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result};
use serde::{Deserialize, Serialize};

use dispatch::domain::{ApiKey, Role};
use dispatch::store::Store;

use crate::Ctx;
use crate::child::{self, Step};
use crate::setup::{LIST, Language, bench_config, prepare_send};
use crate::smtp::{Sent, send_edition};
use crate::table::{Row, Verdict, thousands};
use crate::tools::{self, Tool};

/// Readers of the edition at full scale.
const RECIPIENTS: u64 = 20_000;
/// PUTs of the reference run (nothing sending) at full scale.
const REFERENCE_PUTS: u64 = 1_000;
/// The target p99, in milliseconds.
const TARGET_P99_MS: f64 = 20.0;
/// Distinct articles the PUTs cycle through.
const ARTICLES: u64 = 50;

/// Serves the API on `db` and sends `edition` to the sink at `port` when told to.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct ApiStep {
    db: PathBuf,
    dir: PathBuf,
    edition: i64,
    port: u16,
}

/// What the child writes to `ready`: where the API is and the key to call it with.
#[derive(Debug, Serialize, Deserialize)]
struct Ready {
    port: u16,
    key: String,
}

impl Step for ApiStep {
    const NAME: &'static str = "api";
    type Output = Sent;

    async fn run(self) -> Result<Sent> {
        let store = Store::open(&self.db).await?;
        let config = bench_config(&self.db, Language::English, Some(self.port));
        let key = ApiKey::generate();
        store
            .create_api_key("bench-cms", Role::Editor, &key)
            .await?;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let port = listener.local_addr()?.port();
        let state = dispatch::web::AppState::new(store.clone(), Arc::new(config.clone()));
        let (stop_web, web_stopped) = tokio::sync::oneshot::channel::<()>();
        let web = tokio::spawn(dispatch::web::serve(listener, state, async {
            let _ = web_stopped.await;
        }));
        let engine = dispatch::delivery::Engine::new(
            store.clone(),
            Arc::new(config.clone()),
            dispatch::mail::Transport::from_config(&config)?,
        )?;
        let ready = serde_json::to_vec(&Ready {
            port,
            key: key.expose().to_owned(),
        })?;
        std::fs::write(self.dir.join("ready.tmp"), ready)?;
        std::fs::rename(self.dir.join("ready.tmp"), self.dir.join("ready"))?;
        wait_for(&self.dir.join("send")).await;
        let sent = send_edition(&engine, self.edition).await?;
        drop(engine);
        std::fs::write(self.dir.join("sent"), b"")?;
        wait_for(&self.dir.join("stop")).await;
        let _ = stop_web.send(());
        web.await.context("the web task")??;
        store.close().await;
        Ok(sent)
    }
}

/// Waits until `path` exists.
async fn wait_for(path: &Path) {
    while !path.exists() {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The `q` quantile of sorted `ms`.
fn quantile(ms: &[f64], q: f64) -> f64 {
    if ms.is_empty() {
        return f64::NAN;
    }
    let i = ((ms.len() as f64 * q).ceil() as usize).clamp(1, ms.len()) - 1;
    ms[i]
}

/// Sequential PUTs until `until` says stop or `max` are done; their latencies in ms, sorted.
async fn puts(
    http: &reqwest::Client,
    ready: &Ready,
    first: u64,
    max: u64,
    until: impl Fn() -> bool,
) -> Result<Vec<f64>> {
    let mut ms = Vec::new();
    for i in first..first + max {
        if until() {
            break;
        }
        let body = serde_json::json!({
            "title": format!("Developing story, update {i}"),
            "url": format!("https://news.example.com/live/{}", i % ARTICLES),
            "category": "Politics",
            "summary": "What we know so far, updated as the story develops.",
            "published_at": "2026-12-01T09:00:00Z",
        });
        let t = Instant::now();
        let res = http
            .put(format!(
                "http://127.0.0.1:{}/api/v1/articles/live-{}",
                ready.port,
                i % ARTICLES
            ))
            .bearer_auth(&ready.key)
            .header("content-type", "application/json")
            .body(body.to_string())
            .send()
            .await?;
        let status = res.status();
        res.bytes().await?;
        ms.push(t.elapsed().as_secs_f64() * 1000.0);
        anyhow::ensure!(status.is_success(), "PUT {i} answered {status}");
    }
    ms.sort_by(f64::total_cmp);
    Ok(ms)
}

pub(crate) async fn run(ctx: &Ctx) -> Result<Vec<Row>> {
    let [sink] = match tools::find_all([Tool::SmtpSink]) {
        Ok(paths) => paths,
        Err(why) => return Ok(Row::skipped("api", &why)),
    };
    let n = ctx.scale.count(RECIPIENTS);
    let (db, [edition]) = prepare_send(&ctx.dir, n, [LIST]).await?;
    let (_sink, port) = tools::start_sink(&sink).await?;
    let dir = ctx.dir.clone();
    let step = ApiStep {
        db,
        dir: dir.clone(),
        edition,
        port,
    };
    let daemon = tokio::task::spawn_blocking(move || child::spawn(&step));
    let ready_path = dir.join("ready");
    tokio::time::timeout(Duration::from_secs(120), wait_for(&ready_path))
        .await
        .context("the daemon's API did not come up in 2 minutes")?;
    let ready: Ready = serde_json::from_slice(&std::fs::read(&ready_path)?)?;
    // reqwest is built with "rustls-no-provider"; even plain HTTP wants one installed.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()?;

    let measured = async {
        let reference = puts(&http, &ready, 0, ctx.scale.count(REFERENCE_PUTS), || false).await?;
        std::fs::write(dir.join("send"), b"")?;
        let sent_path = dir.join("sent");
        let during = puts(&http, &ready, 1_000_000, u64::MAX / 2, || {
            sent_path.exists()
        })
        .await?;
        anyhow::Ok((reference, during))
    }
    .await;
    // Whatever happened, let the child finish.
    std::fs::write(dir.join("sent"), b"")?;
    std::fs::write(dir.join("stop"), b"")?;
    let report = daemon.await??;
    let (reference, during) = measured?;
    let send = &report.output;
    let (p50, p99, ref_p50, ref_p99) = (
        quantile(&during, 0.50),
        quantile(&during, 0.99),
        quantile(&reference, 0.50),
        quantile(&reference, 0.99),
    );
    eprintln!(
        "{} PUTs while {} messages were sent in {:.1} s ({}/s, {} failed): p50 {p50:.1} ms, p99 {p99:.1} ms, max {:.1} ms; nothing sending ({} PUTs): p50 {ref_p50:.1} ms, p99 {ref_p99:.1} ms (daemon: {:.1} s CPU, {:.0} MB peak)",
        during.len(),
        send.sent,
        send.secs,
        thousands(send.per_sec()),
        send.failed,
        during.last().copied().unwrap_or(f64::NAN),
        reference.len(),
        report.cpu_secs,
        report.rss_mb,
    );
    Ok(vec![Row::new(
        "api put",
        format!(
            "p99 ≤ {TARGET_P99_MS} ms sending to {}",
            thousands(n as f64)
        ),
        format!(
            "p50 {p50:.1} ms, p99 {p99:.1} ms over {} PUTs; idle p99 {ref_p99:.1} ms",
            during.len()
        ),
        Verdict::of(p99 <= TARGET_P99_MS && send.sent == n && during.len() >= 50),
    )])
}
