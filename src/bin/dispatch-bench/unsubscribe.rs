//! `unsubscribe`: RFC 8058 one-click unsubscribes (`POST /unsubscribe/{token}`) served by
//! the real web pages while the same process sends a 20,000-recipient edition to
//! `smtp-sink`, with `wrk` as the load.
//!
//! Targets: at least 2,000 requests/s while sending, p99 latency at most 50 ms, no non-2xx
//! answer, no socket error and no "database is locked" in the log, and the send rate under
//! that load at least 0.8× the rate of an identical edition sent just before without load.
//! The reference for the send rate is that unloaded edition in the same process, so the
//! ratio is what the pages cost the sender; a flat-out run of the pages alone gives their
//! capacity on this machine. The load while sending is paced near the target rate, because
//! a flat-out load generator on the same cores would take the sender's CPU whatever the
//! sender did.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result};
use chrono::Duration as ChronoDuration;
use serde::{Deserialize, Serialize};
use tokio::sync::watch;

use dispatch::delivery::Engine;
use dispatch::mail::Transport;
use dispatch::store::Store;

use crate::Ctx;
use crate::child::{self, Step};
use crate::setup::{Language, bench_config, prepare_send};
use crate::smtp::{Sent, send_edition};
use crate::table::{Row, Verdict, ratio, thousands};
use crate::tools::{self, Tool};

/// Recipients per edition at full scale.
const RECIPIENTS: u64 = 20_000;
/// Tokens per wrk run: each run rotates through its own set.
const TOKENS: u64 = 5000;
/// Pacing of the load while sending: each of `LOAD_CONNECTIONS` connections waits this long
/// before each request, offering about 64 / (25 ms + latency) ≈ 2,000–2,400 requests/s.
const LOAD_DELAY_MS: u32 = 25;
const LOAD_CONNECTIONS: u32 = 64;
/// Connections of the flat-out run without sending.
const IDLE_CONNECTIONS: u32 = 32;

/// In `db`: sends `base` alone, then `load` while `wrk` runs `load_script` against the web
/// pages, after `idle_script` ran for `idle_secs` against the pages alone.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct UnsubscribeStep {
    db: PathBuf,
    sink: PathBuf,
    wrk: PathBuf,
    base: i64,
    load: i64,
    n: u64,
    idle_script: PathBuf,
    load_script: PathBuf,
    idle_secs: u64,
    /// Where the child's warnings and errors go, to count "database is locked".
    log: PathBuf,
}

#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct UnsubscribeOutput {
    /// The pages alone, flat out.
    idle: Wrk,
    /// The pages while sending, paced.
    loaded: Wrk,
    /// The edition sent without load.
    base: Sent,
    /// The edition sent under load, all of it.
    load: Sent,
    /// Messages sent while the load ran and the edition was still sending.
    load_sent_in_window: u64,
    overlap_secs: f64,
    db_locked: u64,
    error_lines: u64,
    /// Subscriptions of the token list unsubscribed afterwards.
    unsubscribed: u64,
}

impl UnsubscribeOutput {
    fn load_per_sec(&self) -> f64 {
        self.load_sent_in_window as f64 / self.overlap_secs
    }
}

/// What our wrk script's `done` hook prints (`WRK_JSON {…}`).
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
pub(crate) struct Wrk {
    requests: u64,
    duration_us: u64,
    non_2xx: u64,
    connect: u64,
    read: u64,
    write: u64,
    timeout: u64,
    p50_us: u64,
    p99_us: u64,
    max_us: u64,
}

impl Wrk {
    fn secs(&self) -> f64 {
        self.duration_us as f64 / 1e6
    }

    fn per_sec(&self) -> f64 {
        self.requests as f64 / self.secs()
    }

    fn socket_errors(&self) -> u64 {
        self.connect + self.read + self.write + self.timeout
    }

    fn ms(us: u64) -> f64 {
        us as f64 / 1000.0
    }

    fn p50_ms(&self) -> f64 {
        Self::ms(self.p50_us)
    }

    fn p99_ms(&self) -> f64 {
        Self::ms(self.p99_us)
    }

    fn max_ms(&self) -> f64 {
        Self::ms(self.max_us)
    }
}

impl Step for UnsubscribeStep {
    const NAME: &'static str = "unsubscribe";
    type Output = UnsubscribeOutput;

    async fn run(self) -> Result<UnsubscribeOutput> {
        // Warnings and errors (a handler's "database is locked" among them) go to a file.
        let log_file = std::fs::File::create(&self.log)
            .with_context(|| format!("creating {}", self.log.display()))?;
        tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::new("warn"))
            .with_writer(std::sync::Mutex::new(log_file))
            .with_ansi(false)
            .init();

        let (_sink, port) = tools::start_sink(&self.sink).await?;
        let store = Store::open(&self.db).await?;
        let config = Arc::new(bench_config(&self.db, Language::English, Some(port)));
        let engine = Arc::new(Engine::new(
            store.clone(),
            Arc::clone(&config),
            Transport::from_config(&config)?,
        )?);

        // The web pages, as the daemon serves them, on the same runtime as the sender.
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let web_addr = listener.local_addr()?;
        let (stop_tx, mut stop_rx) = watch::channel(false);
        let state = dispatch::web::AppState::new(store.clone(), Arc::clone(&config));
        let web = tokio::spawn(dispatch::web::serve(listener, state, async move {
            let _ = stop_rx.wait_for(|s| *s).await;
        }));

        // 1. The web pages alone.
        let idle = run_wrk(
            &self.wrk,
            &self.idle_script,
            web_addr,
            self.idle_secs,
            IDLE_CONNECTIONS,
        )
        .await?;

        // 2. Sending alone.
        let base = send_edition(&engine, self.base).await?;
        anyhow::ensure!(
            base.sent == self.n,
            "baseline sent {} of {}",
            base.sent,
            self.n
        );

        // 3. Both. wrk runs for about as long as the unloaded send took (at most 10 s), so
        // that the load falls while the edition is sending (under load the send takes longer).
        let wrk_secs = (base.secs * 0.9).clamp(3.0, 10.0).round() as u64;
        let progress = engine.progress();
        let sent_before = progress.sent.load(Relaxed);
        let sending = {
            let engine = Arc::clone(&engine);
            let load = self.load;
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
        let loaded = run_wrk(
            &self.wrk,
            &self.load_script,
            web_addr,
            wrk_secs,
            LOAD_CONNECTIONS,
        )
        .await?;
        let wrk_end = Instant::now();
        let sent_at_wrk_end = progress.sent.load(Relaxed);
        let (result, finished) = sending.await?;
        let load = result?;
        let _ = stop_tx.send(true);
        let _ = web.await;
        // The overlap: from the start of the load until the load ended or the edition was
        // sent.
        let (overlap, in_window) = if finished <= wrk_end {
            (
                finished - wrk_start,
                progress.sent.load(Relaxed) - sent_at_start,
            )
        } else {
            (wrk_end - wrk_start, sent_at_wrk_end - sent_at_start)
        };
        let tl = store.list_by_slug("tokens").await?;
        let (_, _, unsubscribed) = store.subscription_counts(tl.id).await?;
        store.close().await;

        let log_text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let locked = log_text.matches("database is locked").count();
        let error_lines: Vec<&str> = log_text.lines().filter(|l| l.contains("ERROR")).collect();
        for l in error_lines.iter().take(3) {
            eprintln!("  log| {l}");
        }
        Ok(UnsubscribeOutput {
            idle,
            loaded,
            base,
            load,
            load_sent_in_window: in_window,
            overlap_secs: overlap.as_secs_f64(),
            db_locked: locked as u64,
            error_lines: error_lines.len() as u64,
            unsubscribed: u64::try_from(unsubscribed)?,
        })
    }
}

/// Runs `wrk` with `script` against `addr` for `secs` over `connections`, echoes its report,
/// and returns the numbers its `done` hook printed.
async fn run_wrk(
    wrk: &Path,
    script: &Path,
    addr: std::net::SocketAddr,
    secs: u64,
    connections: u32,
) -> Result<Wrk> {
    let connections = connections.to_string();
    let out = tokio::process::Command::new(wrk)
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
        .stdin(std::process::Stdio::null())
        .stderr(std::process::Stdio::inherit())
        .output()
        .await
        .context("running wrk")?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    anyhow::ensure!(out.status.success(), "wrk failed: {stdout}");
    for l in stdout.lines().filter(|l| !l.starts_with("WRK_JSON")) {
        eprintln!("  wrk| {l}");
    }
    let json = stdout
        .lines()
        .find_map(|l| l.strip_prefix("WRK_JSON "))
        .context("wrk printed no summary")?;
    serde_json::from_str(json).with_context(|| format!("wrk's summary {json:?}"))
}

/// A wrk script that POSTs the RFC 8058 one-click body to `/unsubscribe/{token}`, rotating
/// through `tokens`, each thread starting at a different place; `done` prints the numbers as
/// one JSON line, a [`Wrk`].
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
    std::fs::write(path, s).with_context(|| format!("writing {}", path.display()))?;
    Ok(())
}

pub(crate) async fn run(ctx: &Ctx) -> Result<Vec<Row>> {
    let [sink, wrk] = match tools::find_all([Tool::SmtpSink, Tool::Wrk]) {
        Ok(paths) => paths,
        Err(why) => return Ok(Row::skipped("unsubscribe", &why)),
    };
    let n = ctx.scale.count(RECIPIENTS);
    // "base" is sent without load, "load" while wrk runs; "tokens" only issues tokens.
    let (db, [base, load, tokens_edition]) =
        prepare_send(&ctx.dir, n, ["base", "load", "tokens"]).await?;
    let store = Store::open(&db).await?;
    let tokens_list = store.list_by_slug("tokens").await?;
    let per_run = i64::try_from(TOKENS.min(n / 2))?;
    let claimer = store
        .register_sender(&dispatch::delivery::owner::current(Some("bench")))
        .await?;
    let mut claimed = Vec::new();
    for _ in 0..2 {
        // One claim per run: a claim's token INSERT has four SQL variables per row.
        let (mut c, _) = store
            .claim_deliveries(
                tokens_edition,
                tokens_list.id,
                per_run,
                ChronoDuration::seconds(300),
                claimer,
            )
            .await?;
        claimed.append(&mut c);
    }
    store
        .set_edition_status(
            tokens_edition,
            dispatch::store::EditionStatus::Cancelled,
            Some("benchmark: tokens only"),
        )
        .await?;
    store.close().await;
    let tokens: Vec<String> = claimed
        .iter()
        .map(|c| c.token.as_str().to_owned())
        .collect();
    let (idle_tokens, load_tokens) = tokens.split_at(tokens.len() / 2);
    let (idle_script, load_script) = (ctx.dir.join("idle.lua"), ctx.dir.join("load.lua"));
    write_wrk_script(&idle_script, idle_tokens, None)?;
    write_wrk_script(&load_script, load_tokens, Some(LOAD_DELAY_MS))?;
    let r = child::spawn(&UnsubscribeStep {
        db,
        sink,
        wrk,
        base,
        load,
        n,
        idle_script,
        load_script,
        idle_secs: if ctx.scale.is_quick() { 2 } else { 5 },
        log: ctx.dir.join("web.log"),
    })?;
    let o = &r.output;
    let (rps, p99) = (o.loaded.per_sec(), o.loaded.p99_ms());
    let send_ratio = o.load_per_sec() / o.base.per_sec();
    let non2xx = o.loaded.non_2xx + o.idle.non_2xx;
    let errors = o.loaded.socket_errors() + o.idle.socket_errors();
    eprintln!(
        "wrk without sending, {:.1} s, 2 threads, {IDLE_CONNECTIONS} connections, {} tokens: {} req/s, p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
        o.idle.secs(),
        idle_tokens.len(),
        thousands(o.idle.per_sec()),
        o.idle.p50_ms(),
        o.idle.p99_ms(),
        o.idle.max_ms(),
    );
    eprintln!(
        "wrk while sending, paced ({LOAD_CONNECTIONS} connections, {LOAD_DELAY_MS} ms between requests), {:.1} s, {} tokens: {} requests = {} req/s, p50 {:.1} ms, p99 {p99:.1} ms, max {:.1} ms",
        o.loaded.secs(),
        load_tokens.len(),
        thousands(o.loaded.requests as f64),
        thousands(rps),
        o.loaded.p50_ms(),
        o.loaded.max_ms(),
    );
    eprintln!(
        "both runs: non-2xx {non2xx}, socket errors {errors}, 'database is locked' in the log {}, error log lines {}; {} subscriptions unsubscribed",
        o.db_locked,
        o.error_lines,
        thousands(o.unsubscribed as f64),
    );
    eprintln!(
        "sending: {}/s without load, {}/s during load ({} messages in the {:.1} s overlap; whole load edition {:.1} s, {} failed) = {}",
        thousands(o.base.per_sec()),
        thousands(o.load_per_sec()),
        thousands(o.load_sent_in_window as f64),
        o.overlap_secs,
        o.load.secs,
        o.base.failed + o.load.failed,
        ratio(send_ratio),
    );
    Ok(vec![
        Row::new(
            "unsubscribe",
            "≥ 2,000 req/s while sending",
            format!(
                "{} req/s paced while sending ({} req/s flat out, idle)",
                thousands(rps),
                thousands(o.idle.per_sec())
            ),
            Verdict::of(rps >= 2000.0),
        ),
        Row::new(
            "unsubscribe p99",
            "≤ 50 ms",
            format!(
                "{p99:.1} ms (p50 {:.1} ms; idle p99 {:.1} ms)",
                o.loaded.p50_ms(),
                o.idle.p99_ms()
            ),
            Verdict::of(p99 <= 50.0),
        ),
        Row::new(
            "unsubscribe errors",
            "0 non-2xx, 0 locked",
            format!(
                "{non2xx} non-2xx, {} 'database is locked', {errors} socket errors",
                o.db_locked
            ),
            Verdict::of(non2xx == 0 && o.db_locked == 0 && errors == 0),
        ),
        Row::new(
            "send rate under load",
            "≥ 0.8× unloaded",
            format!(
                "{} ({}/s vs {}/s)",
                ratio(send_ratio),
                thousands(o.load_per_sec()),
                thousands(o.base.per_sec())
            ),
            Verdict::of(send_ratio >= 0.8),
        ),
    ])
}
