//! `personalise`: `MessageTemplate::personalise`, the per-reader work of the sender (the
//! reader's address and name, token links and Message-ID spliced into the encoded edition),
//! on one core, for a 40-story digest in English and the same in Urdu; and, next to it, what
//! DKIM signing one such message costs.
//!
//! Target: at least 100,000 English messages/s on one core, so that building messages is
//! never what limits a send (the smtp benchmark sends a few thousand a second). No outside
//! reference: it is CPU work of our own. Reported without a target, to show where a
//! message's CPU budget goes: the same loop with the copy the sender makes of each message;
//! the Urdu edition (UTF-8 text is two bytes a letter before quoted-printable makes each
//! byte three, so the same stories make a far bigger message); and DKIM signing with an
//! RSA-2048 and an Ed25519 key, which with RSA costs more than everything else together.

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context as _, Result};
use serde::{Deserialize, Serialize};

use dispatch::domain::{EmailAddress, Token};
use dispatch::mail::{DkimSigner, Recipient, message_id};
use dispatch::store::Store;

use crate::Ctx;
use crate::child::{self, Step};
use crate::setup::{
    LIST, Language, add_articles, bench_config, make_edition, store_with_list, template_of,
};
use crate::table::{Row, Verdict, kb, per_sec, thousands};
use crate::tools::Tool;

/// Messages per language at full scale.
const READERS: u64 = 100_000;
/// The target, in messages per second on one core.
const TARGET_PER_SEC: f64 = 100_000.0;

/// A DKIM key type, as `[dkim]` accepts them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) enum DkimAlgorithm {
    Rsa2048,
    Ed25519,
}

impl DkimAlgorithm {
    const ALL: [Self; 2] = [Self::Rsa2048, Self::Ed25519];

    fn label(self) -> &'static str {
        match self {
            Self::Rsa2048 => "rsa-2048",
            Self::Ed25519 => "ed25519",
        }
    }

    /// The `openssl` arguments that print a new key as PEM (the ones `[dkim]`'s error
    /// message suggests).
    fn openssl_args(self) -> &'static [&'static str] {
        match self {
            Self::Rsa2048 => &["genrsa", "-traditional", "2048"],
            Self::Ed25519 => &["genpkey", "-algorithm", "ed25519"],
        }
    }

    /// Signatures at full scale: RSA takes about a millisecond each, Ed25519 far less.
    fn messages(self) -> u64 {
        match self {
            Self::Rsa2048 => 500,
            Self::Ed25519 => 5000,
        }
    }
}

/// A key to sign with, made by the parent.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct DkimKey {
    algorithm: DkimAlgorithm,
    pem: PathBuf,
    /// How many times to sign.
    messages: u64,
}

/// Personalises the digest `edition` of `db` for `readers` made-up readers; then signs the
/// last message with each of `dkim`.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct PersonaliseStep {
    db: PathBuf,
    language: Language,
    edition: i64,
    readers: u64,
    dkim: Vec<DkimKey>,
}

#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct PersonaliseOutput {
    readers: u64,
    secs: f64,
    /// All messages together.
    bytes: u64,
    /// The same loop with a copy of each message.
    copy_secs: f64,
    dkim: Vec<DkimOutput>,
}

impl PersonaliseOutput {
    fn per_sec(&self) -> f64 {
        per_sec(self.readers, self.secs)
    }

    fn avg_bytes(&self) -> f64 {
        self.bytes as f64 / self.readers as f64
    }
}

#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct DkimOutput {
    algorithm: DkimAlgorithm,
    messages: u64,
    secs: f64,
    msg_bytes: u64,
}

impl Step for PersonaliseStep {
    const NAME: &'static str = "personalise";
    type Output = PersonaliseOutput;

    async fn run(self) -> Result<PersonaliseOutput> {
        let store = Store::open(&self.db).await?;
        let config = bench_config(&self.db, self.language, None);
        let template = template_of(&store, &config, self.edition).await?;
        store.close().await;
        let domain = template.message_id_domain().to_owned();
        let readers: Vec<(EmailAddress, Option<String>, Token, String)> = (0..self.readers)
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
                    message_id(1, i64::try_from(i)?, &domain),
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
            // Keep the optimiser from skipping writes into a buffer nobody reads.
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
        let mut dkim = Vec::new();
        for key in &self.dkim {
            dkim.push(sign_repeatedly(key, &out)?);
        }
        Ok(PersonaliseOutput {
            readers: self.readers,
            secs,
            bytes: bytes as u64,
            copy_secs,
            dkim,
        })
    }
}

/// Signs `message` `key.messages` times: the body hash and the signature, as the sender
/// does for every message when `[dkim]` is set.
fn sign_repeatedly(key: &DkimKey, message: &[u8]) -> Result<DkimOutput> {
    let pem = std::fs::read(&key.pem).with_context(|| format!("reading {}", key.pem.display()))?;
    let signer = DkimSigner::from_pem("news.example.com", "bench", &pem, &key.pem)?;
    let t = Instant::now();
    for _ in 0..key.messages {
        std::hint::black_box(signer.sign(message)?);
    }
    Ok(DkimOutput {
        algorithm: key.algorithm,
        messages: key.messages,
        secs: t.elapsed().as_secs_f64(),
        msg_bytes: message.len() as u64,
    })
}

/// Makes a key of each algorithm with `openssl` in the benchmark's folder.
fn make_keys(openssl: &Path, ctx: &Ctx) -> Result<Vec<DkimKey>> {
    let mut keys = Vec::new();
    for algorithm in DkimAlgorithm::ALL {
        let out = std::process::Command::new(openssl)
            .args(algorithm.openssl_args())
            .stderr(std::process::Stdio::inherit())
            .output()
            .with_context(|| format!("running openssl for a {} key", algorithm.label()))?;
        anyhow::ensure!(
            out.status.success(),
            "openssl could not make a {} key: {}",
            algorithm.label(),
            out.status
        );
        let pem = ctx.dir.join(format!("dkim-{}.pem", algorithm.label()));
        std::fs::write(&pem, &out.stdout).with_context(|| format!("writing {}", pem.display()))?;
        keys.push(DkimKey {
            algorithm,
            pem,
            messages: ctx.scale.count(algorithm.messages()),
        });
    }
    Ok(keys)
}

/// A database in `language` with 40 stories, a list of every category and its digest,
/// created now; returns the database and the edition.
async fn prepare(ctx: &Ctx, language: Language) -> Result<(PathBuf, i64)> {
    let db = ctx.dir.join(format!("personalise-{}.db", language.tag()));
    let (store, _) = store_with_list(&db, LIST).await?;
    add_articles(&store, 40, 3, language).await?;
    let config = bench_config(&db, language, None);
    let (edition, _) = make_edition(&store, &config, LIST).await?;
    store.close().await;
    Ok((db, edition))
}

pub(crate) async fn run(ctx: &Ctx) -> Result<Vec<Row>> {
    let n = ctx.scale.count(READERS);
    // Without keys the personalise figures still stand; the DKIM rows say why they are missing.
    let keys = match Tool::Openssl.find() {
        Some(openssl) => make_keys(&openssl, ctx).map_err(|e| format!("{e:#}")),
        None => Err("needs openssl to make the keys".to_owned()),
    };
    let mut rows = Vec::new();

    let (db, edition) = prepare(ctx, Language::English).await?;
    let r = child::spawn(&PersonaliseStep {
        db,
        language: Language::English,
        edition,
        readers: n,
        dkim: keys.clone().unwrap_or_default(),
    })?;
    let en = r.output;
    report(&en, "English");
    rows.push(Row::new(
        "personalise",
        "≥ 100,000 msgs/s (1 core)",
        format!(
            "{} msgs/s ({}, 40 stories)",
            thousands(en.per_sec()),
            kb(en.avg_bytes())
        ),
        Verdict::of(en.per_sec() >= TARGET_PER_SEC),
    ));
    rows.push(Row::info(
        "personalise + copy",
        format!(
            "{} msgs/s (plus the per-message copy the sender makes)",
            thousands(per_sec(n, en.copy_secs))
        ),
    ));

    let (db, edition) = prepare(ctx, Language::Urdu).await?;
    let r = child::spawn(&PersonaliseStep {
        db,
        language: Language::Urdu,
        edition,
        readers: n,
        dkim: Vec::new(),
    })?;
    let ur = r.output;
    report(&ur, "Urdu");
    // Issue 15: Urdu bodies go base64 with per-reader chunks, and must stay this fast.
    rows.push(Row::new(
        "personalise Urdu",
        "≥ 100,000 msgs/s (1 core)",
        format!(
            "{} msgs/s ({}, 40 stories)",
            thousands(ur.per_sec()),
            kb(ur.avg_bytes())
        ),
        Verdict::of(ur.per_sec() >= TARGET_PER_SEC),
    ));

    if let Err(why) = &keys {
        rows.extend(Row::skipped("DKIM", why));
    }
    for d in &en.dkim {
        let per = d.secs / d.messages as f64;
        eprintln!(
            "DKIM {}: {} signatures of a {} message in {:.3} s = {:.0} µs each",
            d.algorithm.label(),
            thousands(d.messages as f64),
            kb(d.msg_bytes as f64),
            d.secs,
            per * 1e6
        );
        rows.push(Row::info(
            format!("DKIM {}", d.algorithm.label()),
            format!(
                "{} µs per {} message ({} msgs/s, 1 core)",
                thousands(per * 1e6),
                kb(d.msg_bytes as f64),
                thousands(1.0 / per)
            ),
        ));
    }
    Ok(rows)
}

/// The stderr line of one language's run.
fn report(o: &PersonaliseOutput, language: &str) {
    eprintln!(
        "{language}: {} messages of {} in {:.3} s on one core = {} msgs/s ({:.2} GB/s); with the copy {} msgs/s",
        thousands(o.readers as f64),
        kb(o.avg_bytes()),
        o.secs,
        thousands(o.per_sec()),
        o.avg_bytes() * o.per_sec() / 1e9,
        thousands(per_sec(o.readers, o.copy_secs)),
    );
}
