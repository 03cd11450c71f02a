//! `latency`: sending through a relay 10 ms away, where round trips and not CPU set the pace.
//! A [`proxy`] adds 5 ms each way in front of Postfix's `smtp-sink` (PIPELINING, no
//! CHUNKING: the next message's envelope rides with each message's content) and in front of
//! a throwaway Postfix (CHUNKING: `BDAT n LAST`). 20,000 messages of about 30 KB over 8
//! connections with the real engine, and `smtp-source` through the same proxy for reference.
//!
//! Target: at least 0.9 × connections / RTT = 720 messages/s, one round trip per message
//! being the most a connection can do while it waits for each message's answer before the
//! next one's content (the crash bound). Beside it the ratio to `smtp-source`, which waits
//! for every command's reply, and the round trip measured through the proxy. The proxy runs
//! in the parent process, so its copying is not charged to the sending child.
//!
//! That target takes the relay's answer to be instant, which `smtp-sink`'s nearly is; Postfix
//! writes and syncs a queue file before it answers (3.8 ms a message here), time no client
//! that waits for each answer can save. So a relay that takes more than [`RELAY_SLOW`] to
//! answer gets a second row: the same share of connections / (RTT + the relay's mean answer,
//! as the proxy saw it), which says whether we lose anything beyond what the relay takes.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result};
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

use dispatch::store::Store;

use crate::child::{self, Step};
use crate::postfix::{self, Postfix};
use crate::setup::{LIST, Language, bench_config, prepare_send};
use crate::smtp::{Sent, message_size, run_source, send_edition};
use crate::table::{Row, Verdict, kb, per_sec, ratio, thousands};
use crate::tools::{self, Tool};
use crate::{Ctx, proxy};

/// Recipients at full scale.
const RECIPIENTS: u64 = 20_000;
/// Connections, as in `[smtp] connections`.
const CONNECTIONS: u32 = 8;
/// The share of connections / RTT to reach.
const TARGET_SHARE: f64 = 0.9;
/// A relay whose mean answer takes longer than this gets a row that counts it in the bound.
const RELAY_SLOW: Duration = Duration::from_millis(1);
/// The second list, whose edition goes to Postfix.
const POSTFIX_LIST: &str = "bench-postfix";

/// Sends `edition` of `db` through the proxy at `port`, after `smtp-source` through the one
/// at `source_port` (in front of the same relay: each proxy's counts are one sender's).
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct LatencyStep {
    db: PathBuf,
    edition: i64,
    n: u64,
    port: u16,
    source_port: u16,
    source: PathBuf,
}

#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct LatencyOutput {
    send: Sent,
    msg_bytes: u64,
    source_secs: f64,
    /// The median SMTP round trip through the proxy.
    rtt_ms: f64,
    /// The relay offers CHUNKING (so our session uses BDAT).
    chunking: bool,
}

impl Step for LatencyStep {
    const NAME: &'static str = "latency";
    type Output = LatencyOutput;

    async fn run(self) -> Result<LatencyOutput> {
        let relay = SocketAddr::from(([127, 0, 0, 1], self.source_port));
        let (rtt, chunking) = probe(relay).await.context("probing the relay")?;
        let store = Store::open(&self.db).await?;
        let mut config = bench_config(&self.db, Language::English, Some(self.port));
        config.smtp.connections = CONNECTIONS;
        let size = message_size(&store, &config, self.edition).await?;
        let source_secs =
            run_source(&self.source, self.source_port, self.n, size, CONNECTIONS).await?;
        let engine = dispatch::delivery::Engine::new(
            store.clone(),
            std::sync::Arc::new(config.clone()),
            dispatch::mail::Transport::from_config(&config)?,
        )?;
        let send = send_edition(&engine, self.edition).await?;
        drop(engine);
        store.close().await;
        anyhow::ensure!(
            send.sent == self.n,
            "sent {} of {} ({} failed)",
            send.sent,
            self.n,
            send.failed
        );
        Ok(LatencyOutput {
            send,
            msg_bytes: u64::try_from(size)?,
            source_secs,
            rtt_ms: rtt.as_secs_f64() * 1000.0,
            chunking,
        })
    }
}

/// The median of 20 `NOOP` round trips to the SMTP server at `addr`, and whether its EHLO
/// offers CHUNKING.
async fn probe(addr: SocketAddr) -> Result<(Duration, bool)> {
    let mut s = tokio::net::TcpStream::connect(addr).await?;
    s.set_nodelay(true)?;
    read_reply(&mut s).await?;
    s.write_all(b"EHLO bench.example.com\r\n").await?;
    let ehlo = read_reply(&mut s).await?;
    let chunking = ehlo.lines().any(|l| {
        l.get(4..)
            .is_some_and(|k| k.trim().eq_ignore_ascii_case("CHUNKING"))
    });
    let mut times = Vec::new();
    for _ in 0..20 {
        let t = Instant::now();
        s.write_all(b"NOOP\r\n").await?;
        read_reply(&mut s).await?;
        times.push(t.elapsed());
    }
    let _ = s.write_all(b"QUIT\r\n").await;
    times.sort();
    Ok((times[times.len() / 2], chunking))
}

/// Reads one whole reply (up to its last line, the one with a space after the code).
async fn read_reply(s: &mut tokio::net::TcpStream) -> Result<String> {
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        let n = s.read(&mut buf).await?;
        anyhow::ensure!(n > 0, "the server closed the connection");
        got.extend_from_slice(&buf[..n]);
        let text = String::from_utf8_lossy(&got).into_owned();
        if text
            .split("\r\n")
            .any(|l| l.len() >= 4 && l.as_bytes()[3] == b' ')
        {
            return Ok(text);
        }
    }
}

/// A step's report, with what the proxies saw of `smtp-source` and of `dispatch`.
struct Measured {
    report: child::Report<LatencyOutput>,
    source: proxy::Stats,
    ours: proxy::Stats,
}

/// Runs the step in a child through fresh proxies in front of `relay`.
async fn measure(step: LatencyStep, relay: u16) -> Result<Measured> {
    let relay = SocketAddr::from(([127, 0, 0, 1], relay));
    let ours = proxy::start(relay).await?;
    let theirs = proxy::start(relay).await?;
    let step = LatencyStep {
        port: ours.addr().port(),
        source_port: theirs.addr().port(),
        ..step
    };
    // The child blocks this thread; the proxies run on the runtime's others.
    let report = tokio::task::spawn_blocking(move || child::spawn(&step)).await??;
    Ok(Measured {
        report,
        source: theirs.stats(),
        ours: ours.stats(),
    })
}

fn rows_of(name: &str, relay: &str, m: &Measured, n: u64) -> Vec<Row> {
    let r = &m.report;
    let o = &r.output;
    // Where the time goes, from the proxies' side: round trips per message, how late the
    // proxy itself was, how long each client took between a reply and its next write, and
    // how long the relay took to answer.
    for (who, s, msgs) in [
        ("dispatch", &m.ours, o.send.sent),
        ("smtp-source", &m.source, n),
    ] {
        eprintln!(
            "  proxy, {who}: {} connections, {} round trips ({:.2} per message); proxy late {}; client {}; relay {}",
            s.connections,
            s.turns,
            s.turns as f64 / msgs.max(1) as f64,
            s.late_us,
            s.client_us,
            s.server_us,
        );
    }
    let ours = o.send.per_sec();
    let theirs = per_sec(n, o.source_secs);
    let target = TARGET_SHARE * f64::from(CONNECTIONS) / (2.0 * proxy::DELAY.as_secs_f64());
    eprintln!(
        "{} messages of {} to {relay} ({}) over {CONNECTIONS} connections, RTT {:.2} ms: dispatch {}/s (sent {}, failed {}; {:.1} s CPU), smtp-source {}/s, ratio {}",
        thousands(n as f64),
        kb(o.msg_bytes as f64),
        if o.chunking {
            "CHUNKING: BDAT"
        } else {
            "PIPELINING, no CHUNKING"
        },
        o.rtt_ms,
        thousands(ours),
        o.send.sent,
        o.send.failed,
        r.cpu_secs,
        thousands(theirs),
        ratio(ours / theirs),
    );
    let all_sent = o.send.sent == n;
    let mut rows = vec![Row::new(
        name,
        format!("≥ {} msgs/s", thousands(target)),
        format!(
            "{}/s, {} smtp-source ({}/s); RTT {:.1} ms{}",
            thousands(ours),
            ratio(ours / theirs),
            thousands(theirs),
            o.rtt_ms,
            if o.chunking { ", BDAT" } else { "" }
        ),
        Verdict::of(ours >= target && all_sent),
    )];
    let answer_ms = m.ours.server_us.mean / 1000.0;
    if answer_ms > RELAY_SLOW.as_secs_f64() * 1000.0 {
        let bound = f64::from(CONNECTIONS) / ((o.rtt_ms + answer_ms) / 1000.0);
        let target = TARGET_SHARE * bound;
        rows.push(Row::new(
            format!("{name}, relay's time"),
            format!("≥ {TARGET_SHARE} × conns / (RTT + answer)"),
            format!(
                "{}/s against {}/s = {CONNECTIONS} / ({:.1} + {:.1} ms): {} of what a client waiting for each answer can do",
                thousands(ours),
                thousands(bound),
                o.rtt_ms,
                answer_ms,
                ratio(ours / bound),
            ),
            Verdict::of(ours >= target && all_sent),
        ));
    }
    rows
}

pub(crate) async fn run(ctx: &Ctx) -> Result<Vec<Row>> {
    let [sink, source] = match tools::find_all([Tool::SmtpSink, Tool::SmtpSource]) {
        Ok(paths) => paths,
        Err(why) => return Ok(Row::skipped("latency", &why)),
    };
    let n = ctx.scale.count(RECIPIENTS);
    let (db, [to_sink, to_postfix]) = prepare_send(&ctx.dir, n, [LIST, POSTFIX_LIST]).await?;
    let mut rows = Vec::new();

    let (_sink, port) = tools::start_sink(&sink).await?;
    let step = LatencyStep {
        db: db.clone(),
        edition: to_sink,
        n,
        port,
        source_port: port,
        source: source.clone(),
    };
    rows.extend(rows_of(
        "latency sink",
        "smtp-sink",
        &measure(step, port).await?,
        n,
    ));

    match postfix::unavailable() {
        Some(why) => rows.push(Row::info("latency postfix", format!("skipped: {why}"))),
        None => {
            let step = LatencyStep {
                db,
                edition: to_postfix,
                n,
                port: 0,
                source_port: 0,
                source: source.clone(),
            };
            // A Postfix that will not start fails its own row, not the smtp-sink one.
            let dir = ctx.dir.join("postfix");
            let measured = async {
                let pf = Postfix::start(&dir).await?;
                let port = pf.port;
                let m = measure(LatencyStep { port, ..step }, port).await?;
                // Postfix's own pace, without the proxy: what it can take at all (each
                // message is a queue file it writes and syncs), beside what the 10 ms allow.
                let size = usize::try_from(m.report.output.msg_bytes)?;
                let direct = run_source(&source, port, n, size, CONNECTIONS).await?;
                Ok::<_, anyhow::Error>((m, direct))
            };
            match measured.await {
                Ok((m, direct)) => {
                    rows.extend(rows_of("latency postfix", "Postfix", &m, n));
                    rows.push(Row::info(
                        "postfix direct",
                        format!(
                            "smtp-source straight to Postfix, {CONNECTIONS} sessions: {}/s",
                            thousands(per_sec(n, direct))
                        ),
                    ));
                }
                Err(e) => rows.push(Row::new(
                    "latency postfix",
                    "-",
                    format!("error: {e:#}"),
                    Verdict::Fail,
                )),
            }
        }
    }
    Ok(rows)
}
