//! `smtp`: sending a 20,000-recipient digest of about 30 KB per message with the real engine
//! (claims, personalising, the SMTP sessions, recording each outcome) over 8 connections to
//! Postfix's `smtp-sink`.
//!
//! Target: at least 1.0× the rate of Postfix's `smtp-source` sending as many messages of the
//! same size over as many connections to the same sink, in the same run. The reference is a
//! mature C client doing only SMTP, so the ratio says what the rest of our engine costs on
//! this machine, whatever the machine; `smtp-source` runs just before and just after our
//! send and the two are averaged, so that a change in the machine's load weighs on both
//! sides alike. Next to it, without a target, our SMTP session alone (the same message over
//! 8 connections, no store): the part of the gap that is the protocol code's rather than the
//! engine's.

use std::collections::HashSet;
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result};
use serde::{Deserialize, Serialize};
use tokio::sync::watch;

use dispatch::config::Config;
use dispatch::delivery::{Engine, Mode};
use dispatch::domain::{EmailAddress, Token};
use dispatch::mail::{Outgoing, Recipient, SmtpConnector, Transport, message_id};
use dispatch::store::Store;

use crate::Ctx;
use crate::child::{self, Step};
use crate::setup::{LIST, Language, bench_config, prepare_send, template_of};
use crate::table::{Row, Verdict, kb, per_sec, ratio, thousands};
use crate::tools::{self, Tool};

/// Recipients at full scale.
const RECIPIENTS: u64 = 20_000;
/// The target: our rate over `smtp-source`'s (issue 9: sending must keep up with it).
const TARGET: f64 = 1.0;
/// The EHLO name and Message-ID domain of the benchmark's messages.
const HELO: &str = "news.example.com";

/// Sends the edition `edition` of `db` (`n` recipients) to a fresh `smtp-sink` at `sink`.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct SendStep {
    pub(crate) db: PathBuf,
    pub(crate) edition: i64,
    pub(crate) n: u64,
    pub(crate) sink: PathBuf,
    /// `smtp-source`, to run before and after the send, followed by our SMTP session alone;
    /// `None` for the RSS benchmark, whose peak must be the send's.
    pub(crate) reference: Option<PathBuf>,
}

/// What one engine run sent.
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
pub(crate) struct Sent {
    pub(crate) secs: f64,
    pub(crate) sent: u64,
    /// Failed, bounced or left to retry.
    pub(crate) failed: u64,
}

impl Sent {
    pub(crate) fn per_sec(&self) -> f64 {
        per_sec(self.sent, self.secs)
    }
}

#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct SendOutput {
    pub(crate) send: Sent,
    /// The size of one personalised message (what `smtp-source` sends too).
    pub(crate) msg_bytes: u64,
    pub(crate) reference: Option<Reference>,
}

/// The runs we compare the send with, in the order they ran after it.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct Reference {
    pub(crate) source_before_secs: f64,
    pub(crate) source_after_secs: f64,
    /// Our SMTP session alone, as many messages as the send.
    pub(crate) sessions_secs: f64,
}

impl Step for SendStep {
    const NAME: &'static str = "smtp";
    type Output = SendOutput;

    async fn run(self) -> Result<SendOutput> {
        let (_sink, port) = tools::start_sink(&self.sink).await?;
        let store = Store::open(&self.db).await?;
        let config = Arc::new(bench_config(&self.db, Language::English, Some(port)));
        // One personalised message, for its size (smtp-source sends the same length) and
        // for the session loop.
        let message = one_message(&store, &config, self.edition).await?;
        let msg_bytes = u64::try_from(message.len())?;
        let sessions = config.smtp.connections;
        let before = match &self.reference {
            Some(source) => Some(run_source(source, port, self.n, message.len(), sessions).await?),
            None => None,
        };
        let engine = Engine::new(
            store.clone(),
            Arc::clone(&config),
            Transport::from_config(&config)?,
        )?;
        let send = send_edition(&engine, self.edition).await?;
        drop(engine);
        // What the database says, not only what the engine counted.
        let recorded = store
            .delivery_counts(self.edition)
            .await?
            .get(&dispatch::store::DeliveryStatus::Sent)
            .copied()
            .unwrap_or(0);
        let status = store.edition(self.edition).await?.status;
        store.close().await;
        let n = self.n;
        anyhow::ensure!(
            u64::try_from(recorded) == Ok(n) && status == dispatch::store::EditionStatus::Sent,
            "the database records {recorded} of {n} deliveries sent and the edition {status}"
        );
        let reference = match (&self.reference, before) {
            (Some(source), Some(before)) => {
                let after = run_source(source, port, n, message.len(), sessions).await?;
                let connector = SmtpConnector::new(&config.smtp, HELO)?;
                let sessions = run_sessions(&connector, config.smtp.connections, n, message)
                    .await
                    .context("our SMTP session alone")?;
                Some(Reference {
                    source_before_secs: before,
                    source_after_secs: after,
                    sessions_secs: sessions,
                })
            }
            _ => None,
        };
        Ok(SendOutput {
            send,
            msg_bytes,
            reference,
        })
    }
}

/// One personalised message of `edition`, as the sender builds it.
async fn one_message(store: &Store, config: &Config, edition: i64) -> Result<Vec<u8>> {
    let t = template_of(store, config, edition).await?;
    let mut out = Vec::new();
    let to = EmailAddress::parse("reader1@example1.org")?;
    t.personalise(
        &Recipient {
            to: &to,
            name: Some("Reader 1"),
            token: Token::generate().as_str(),
            message_id: &message_id(edition, 1, HELO),
        },
        &mut out,
    );
    Ok(out)
}

/// The size of one personalised message of `edition` (what `smtp-source` is told to send).
pub(crate) async fn message_size(store: &Store, config: &Config, edition: i64) -> Result<usize> {
    Ok(one_message(store, config, edition).await?.len())
}

/// Sends `edition` with the real engine until nothing is left to send.
pub(crate) async fn send_edition(engine: &Engine, edition: i64) -> Result<Sent> {
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
    Ok(Sent {
        secs: t.elapsed().as_secs_f64(),
        sent: report.sent,
        failed: report.failed + report.bounced + report.retry_later,
    })
}

/// Runs `smtp-source` with `sessions` sessions kept open (`-d`), `n` messages of `size`
/// bytes; returns the seconds it took.
pub(crate) async fn run_source(
    source: &std::path::Path,
    port: u16,
    n: u64,
    size: usize,
    sessions: u32,
) -> Result<f64> {
    let t = Instant::now();
    let st = tokio::process::Command::new(source)
        .args([
            "-s",
            &sessions.to_string(),
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

/// Sends `message` `n` times over `sessions` of our own SMTP sessions at once, as
/// `smtp-source -s` does; returns the seconds it took.
async fn run_sessions(
    connector: &SmtpConnector,
    sessions: u32,
    n: u64,
    message: Vec<u8>,
) -> Result<f64> {
    let message = Arc::new(message);
    let sessions = u64::from(sessions.max(1));
    let from = EmailAddress::parse("bounces@news.example.com")?;
    let to = EmailAddress::parse("reader1@example1.org")?;
    let t = Instant::now();
    let mut tasks = Vec::new();
    for s in 0..sessions {
        // n spread evenly, the first n % sessions taking one more.
        let count = n / sessions + u64::from(s < n % sessions);
        let (connector, message) = (connector.clone(), Arc::clone(&message));
        let (from, to) = (from.clone(), to.clone());
        tasks.push(tokio::spawn(async move {
            let mut session = connector.connect().await?;
            // As the engine's workers do: each message names the next, whose envelope goes
            // with its content.
            let msg = Outgoing {
                from: &from,
                to: &to,
                bytes: &message,
            };
            for i in 0..count {
                session
                    .send_then(msg, (i + 1 < count).then_some(msg))
                    .await?;
            }
            session.quit().await;
            anyhow::Ok(())
        }));
    }
    for task in tasks {
        task.await??;
    }
    Ok(t.elapsed().as_secs_f64())
}

pub(crate) async fn run(ctx: &Ctx) -> Result<Vec<Row>> {
    let [sink, source] = match tools::find_all([Tool::SmtpSink, Tool::SmtpSource]) {
        Ok(paths) => paths,
        Err(why) => return Ok(Row::skipped("smtp", &why)),
    };
    let n = ctx.scale.count(RECIPIENTS);
    let (db, [edition]) = prepare_send(&ctx.dir, n, [LIST]).await?;
    let r = child::spawn(&SendStep {
        db,
        edition,
        n,
        sink,
        reference: Some(source),
    })?;
    let o = &r.output;
    let reference = o
        .reference
        .as_ref()
        .context("the step ran no smtp-source")?;
    let ours = o.send.per_sec();
    let theirs = per_sec(
        2 * n,
        reference.source_before_secs + reference.source_after_secs,
    );
    let sessions = per_sec(n, reference.sessions_secs);
    let size = kb(o.msg_bytes as f64);
    eprintln!(
        "{} messages of {size} over 8 connections: dispatch {}/s (sent {}, failed {}), smtp-source {}/s (before {}/s, after {}/s), ratio {}; our SMTP session alone {}/s ({}); sending child peak RSS {:.0} MB",
        thousands(n as f64),
        thousands(ours),
        o.send.sent,
        o.send.failed,
        thousands(theirs),
        thousands(per_sec(n, reference.source_before_secs)),
        thousands(per_sec(n, reference.source_after_secs)),
        ratio(ours / theirs),
        thousands(sessions),
        ratio(sessions / theirs),
        r.rss_mb
    );
    Ok(vec![
        Row::new(
            "smtp",
            format!("≥ {TARGET:.1}× smtp-source"),
            format!(
                "{} ({}/s vs {}/s, {size}, 8 conns)",
                ratio(ours / theirs),
                thousands(ours),
                thousands(theirs),
            ),
            Verdict::of(ours / theirs >= TARGET && o.send.sent == n),
        ),
        Row::info(
            "smtp session",
            format!(
                "{} smtp-source ({}/s: our SMTP session alone, no store)",
                ratio(sessions / theirs),
                thousands(sessions)
            ),
        ),
        Row::info(
            "smtp RSS",
            format!(
                "{:.0} MB peak ({} recipients)",
                r.rss_mb,
                thousands(n as f64)
            ),
        ),
    ])
}
