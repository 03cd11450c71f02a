//! `bounces`: `dispatch bounces ingest` of 10,000 hard-bounce DSNs (Postfix's form, each to
//! its message's VERP address), two ways.
//!
//! Target: ≤ 10 s for 10,000. Measured as one process ingesting them one after another (the
//! IMAP poller's way, and the library's cost per message), and as the pipe Postfix really
//! runs, one `dispatch bounces ingest` process per message: a sample of those is timed and
//! the per-message cost scaled to 10,000 (Postfix runs pipes in parallel, up to its
//! `default_destination_concurrency_limit`; the sample runs them one at a time, so the
//! figure is an upper bound). Every DSN must mark its reader bounced.

use std::io::Write as _;
use std::process::{Command, Stdio};
use std::time::Instant;

use anyhow::{Context as _, Result, bail};

use dispatch::bounces::{Settings, ingest};
use dispatch::config::ReturnPathDomain;
use dispatch::domain::BounceSource;
use dispatch::mail::verp::{self, VerpItem};

use crate::Ctx;
use crate::setup::{
    LIST, Language, add_articles, bench_config, bulk_subscribers, make_edition, store_with_list,
};
use crate::table::{Row, Verdict, per_sec, thousands};

/// DSNs at full scale.
const DSNS: u64 = 10_000;
/// Pipe runs timed at full scale.
const PIPE_SAMPLE: u64 = 200;

fn dsn(to: &str, rcpt: &str) -> String {
    format!(
        "Return-Path: <>\r\nFrom: MAILER-DAEMON@relay.example (Mail Delivery System)\r\nTo: {to}\r\n\
Subject: Undelivered Mail Returned to Sender\r\nAuto-Submitted: auto-replied\r\nMIME-Version: 1.0\r\n\
Content-Type: multipart/report; report-type=delivery-status; boundary=\"B\"\r\nMessage-Id: <{rcpt}.dsn@relay.example>\r\n\r\n\
--B\r\nContent-Type: text/plain\r\n\r\nYour message could not be delivered.\r\n\r\n\
--B\r\nContent-Type: message/delivery-status\r\n\r\nReporting-MTA: dns; relay.example\r\n\r\n\
Final-Recipient: rfc822; {rcpt}\r\nAction: failed\r\nStatus: 5.1.1\r\nDiagnostic-Code: smtp; 550 5.1.1 <{rcpt}>: User unknown\r\n\r\n\
--B--\r\n"
    )
}

pub(crate) async fn run(ctx: &Ctx) -> Result<Vec<Row>> {
    let n = ctx.scale.count(DSNS);
    let sample = ctx.scale.count(PIPE_SAMPLE).max(10);
    let db = ctx.dir.join("bounces.db");
    let mut config = bench_config(&db, Language::English, None);
    let domain = ReturnPathDomain::parse("bounces.news.example.com").map_err(anyhow::Error::msg)?;
    config.bounces.return_path_domain = Some(domain.clone());
    let (store, list) = store_with_list(&db, LIST).await?;
    bulk_subscribers(&db, n + sample, &[list]).await?;
    add_articles(&store, 8, 2, Language::English).await?;
    let (edition, _) = make_edition(&store, &config, LIST).await?;
    let messages: Vec<String> = (1..=n + sample)
        .map(|s| {
            let to = verp::address(
                store.verp_key(),
                VerpItem::Delivery {
                    edition_id: edition,
                    subscriber_id: s as i64,
                },
                &domain,
            );
            dsn(to.as_str(), &format!("reader{s}@example{}.org", s % 97))
        })
        .collect();

    // One process, one message after another.
    let settings = Settings::from_config(&config);
    let t = Instant::now();
    for m in &messages[..n as usize] {
        ingest(&store, &settings, m.as_bytes(), BounceSource::Pipe, None).await?;
    }
    let batch_secs = t.elapsed().as_secs_f64();
    let bounced: i64 = store
        .list_subscribers(None, Some("bounced"))
        .await?
        .len()
        .try_into()?;
    store.close().await;
    eprintln!(
        "ingested {} DSNs in one process in {batch_secs:.2} s ({}/s); {} readers bounced",
        thousands(n as f64),
        thousands(per_sec(n, batch_secs)),
        thousands(bounced as f64)
    );

    // The pipe: a process per message.
    let bin = std::env::current_exe()?
        .parent()
        .context("the bench binary has no folder")?
        .join("dispatch");
    if !bin.exists() {
        bail!(
            "{} is missing: build it with `cargo build --release --bins`",
            bin.display()
        );
    }
    let cfg_path = ctx.dir.join("dispatch.toml");
    std::fs::write(&cfg_path, toml::to_string(&config)?)?;
    let t = Instant::now();
    for m in &messages[n as usize..] {
        let mut child = Command::new(&bin)
            .arg("--config")
            .arg(&cfg_path)
            .args(["bounces", "ingest"])
            .env_remove("RUST_LOG")
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()?;
        child
            .stdin
            .take()
            .context("no stdin")?
            .write_all(m.as_bytes())?;
        let status = child.wait()?;
        if !status.success() {
            bail!("dispatch bounces ingest exited with {status}");
        }
    }
    let per_run = t.elapsed().as_secs_f64() / sample as f64;
    let pipe_secs = per_run * n as f64;
    eprintln!(
        "pipe: {sample} runs, {:.1} ms each; {} runs would take {pipe_secs:.1} s one at a time",
        per_run * 1000.0,
        thousands(n as f64)
    );
    let target = ctx.scale.secs(10.0);
    Ok(vec![
        Row::new(
            "bounces ingest (one process)",
            format!("≤ {target} s for {} DSNs", thousands(n as f64)),
            format!(
                "{batch_secs:.2} s ({}/s)",
                thousands(per_sec(n, batch_secs))
            ),
            Verdict::of(batch_secs <= target && bounced == n as i64),
        ),
        Row::new(
            "bounces ingest (pipe, a process each)",
            format!("≤ {target} s for {} DSNs", thousands(n as f64)),
            format!(
                "{pipe_secs:.1} s ({:.1} ms per run, one at a time)",
                per_run * 1000.0
            ),
            Verdict::of(pipe_secs <= target),
        ),
    ])
}
