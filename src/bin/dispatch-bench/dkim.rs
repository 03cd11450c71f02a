//! `dkim`: sending an RSA-2048-signed digest of 20,000 messages of about 30 KB over 8
//! connections to Postfix's `smtp-sink` on loopback, with the real engine: claims, the
//! signing pool (one thread per core), the SMTP sessions, every outcome recorded.
//!
//! Target: signed messages/s at least 0.8 × what `openssl speed rsa2048` signs per second on
//! one core. RSA signing is the dominant cost of a signed message; the machine has two cores
//! to share between signing and everything else (sending, recording, `smtp-sink`), so 0.8 of
//! one core's signatures means the send path wastes little of what the signer could do.
//! `openssl speed` runs just before and just after the send and the two are averaged, so a
//! change in the machine's load weighs on both sides alike.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context as _, Result, bail};
use serde::{Deserialize, Serialize};

use dispatch::config::Dkim;
use dispatch::delivery::Engine;
use dispatch::mail::Transport;
use dispatch::store::Store;

use crate::Ctx;
use crate::child::{self, Step};
use crate::setup::{LIST, Language, bench_config, prepare_send};
use crate::smtp::{Sent, send_edition};
use crate::table::{Row, Verdict, ratio, thousands};
use crate::tools::{self, Tool};

/// Recipients at full scale.
const RECIPIENTS: u64 = 20_000;
/// The share of one core's `openssl speed` signatures to reach.
const TARGET_SHARE: f64 = 0.8;

/// Sends the edition `edition` of `db`, signed with the RSA key `key`, to a fresh `smtp-sink`.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct DkimStep {
    db: PathBuf,
    edition: i64,
    n: u64,
    sink: PathBuf,
    key: PathBuf,
}

impl Step for DkimStep {
    const NAME: &'static str = "dkim";
    type Output = Sent;

    async fn run(self) -> Result<Sent> {
        let (_sink, port) = tools::start_sink(&self.sink).await?;
        let store = Store::open(&self.db).await?;
        let mut config = bench_config(&self.db, Language::English, Some(port));
        config.dkim = Some(Dkim {
            domain: "news.example.com".into(),
            selector: "bench".into(),
            private_key_path: self.key.clone(),
        });
        let engine = Engine::new(
            store.clone(),
            Arc::new(config.clone()),
            Transport::from_config(&config)?,
        )?;
        let sent = send_edition(&engine, self.edition).await?;
        drop(engine);
        store.close().await;
        anyhow::ensure!(
            sent.sent == self.n,
            "sent {} of {} ({} failed)",
            sent.sent,
            self.n,
            sent.failed
        );
        Ok(sent)
    }
}

/// RSA-2048 signatures per second on one core, as `openssl speed -seconds 3 rsa2048` says.
fn openssl_signs_per_sec(openssl: &Path) -> Result<f64> {
    let out = std::process::Command::new(openssl)
        .args(["speed", "-seconds", "3", "rsa2048"])
        .stderr(std::process::Stdio::null())
        .output()
        .context("running openssl speed")?;
    anyhow::ensure!(out.status.success(), "openssl speed failed: {}", out.status);
    parse_speed(&String::from_utf8_lossy(&out.stdout))
}

/// The `sign/s` figure of `openssl speed rsa2048`'s table:
///
/// ```text
///                   sign    verify    sign/s verify/s
/// rsa 2048 bits 0.000404s 0.000012s   2475.2  83333.3
/// ```
fn parse_speed(text: &str) -> Result<f64> {
    let header = text
        .lines()
        .find(|l| l.contains("sign/s"))
        .context("no sign/s column in openssl speed's output")?;
    let column = header
        .split_whitespace()
        .position(|w| w == "sign/s")
        .context("no sign/s column")?;
    let Some(row) = text
        .lines()
        .find(|l| l.trim_start().starts_with("rsa") && l.contains("2048"))
    else {
        bail!("no rsa 2048 row in openssl speed's output");
    };
    // The row has "rsa 2048 bits" in front of the header's columns.
    let figures: Vec<&str> = row.split_whitespace().skip(3).collect();
    figures
        .get(column)
        .and_then(|f| f.parse().ok())
        .with_context(|| format!("cannot read sign/s from {row:?}"))
}

pub(crate) async fn run(ctx: &Ctx) -> Result<Vec<Row>> {
    let [sink, openssl] = match tools::find_all([Tool::SmtpSink, Tool::Openssl]) {
        Ok(paths) => paths,
        Err(why) => return Ok(Row::skipped("dkim", &why)),
    };
    let n = ctx.scale.count(RECIPIENTS);
    let (db, [edition]) = prepare_send(&ctx.dir, n, [LIST]).await?;
    let key = ctx.dir.join("dkim-rsa-2048.pem");
    let out = std::process::Command::new(&openssl)
        .args(["genrsa", "-traditional", "2048"])
        .stderr(std::process::Stdio::null())
        .output()
        .context("running openssl genrsa")?;
    anyhow::ensure!(
        out.status.success(),
        "openssl genrsa failed: {}",
        out.status
    );
    std::fs::write(&key, &out.stdout).with_context(|| format!("writing {}", key.display()))?;

    let before = openssl_signs_per_sec(&openssl)?;
    let r = child::spawn(&DkimStep {
        db,
        edition,
        n,
        sink,
        key,
    })?;
    let after = openssl_signs_per_sec(&openssl)?;
    let openssl_rate = (before + after) / 2.0;
    let ours = r.output.per_sec();
    eprintln!(
        "{} RSA-2048-signed messages over 8 connections to smtp-sink: {}/s (sent {}, failed {}; {:.1} s CPU for {:.1} s); openssl speed rsa2048, one core: {}/s signs (before {}/s, after {}/s); ratio {}",
        thousands(n as f64),
        thousands(ours),
        r.output.sent,
        r.output.failed,
        r.cpu_secs,
        r.output.secs,
        thousands(openssl_rate),
        thousands(before),
        thousands(after),
        ratio(ours / openssl_rate),
    );
    Ok(vec![Row::new(
        "dkim",
        format!("≥ {TARGET_SHARE}× openssl sign/s (1 core)"),
        format!(
            "{} ({}/s signed vs {}/s)",
            ratio(ours / openssl_rate),
            thousands(ours),
            thousands(openssl_rate)
        ),
        Verdict::of(ours >= TARGET_SHARE * openssl_rate && r.output.sent == n),
    )])
}

#[cfg(test)]
mod tests {
    use super::parse_speed;

    #[test]
    fn the_sign_per_second_column_is_read_from_openssl_speed() {
        let v3 = "Doing 2048 bits private rsa's for 3s: 7425 2048 bits private RSA's in 3.00s\n\
                  version: 3.0.22\n                  sign    verify    sign/s verify/s\n\
                  rsa 2048 bits 0.000404s 0.000012s   2475.2  83333.3\n";
        assert_eq!(parse_speed(v3).unwrap(), 2475.2);
        let v32 = "                   sign    verify    encrypt   decrypt   sign/s verify/s  encr./s  decr./s\n\
                   rsa  2048 bits 0.000410s 0.000012s 0.000013s 0.000400s   2439.0  83333.3  76923.1   2500.0\n";
        assert_eq!(parse_speed(v32).unwrap(), 2439.0);
        assert!(parse_speed("garbage").is_err());
    }
}
