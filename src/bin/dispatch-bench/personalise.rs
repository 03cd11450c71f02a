//! `personalise`: `MessageTemplate::personalise`, the per-reader work of the sender (the
//! reader's address and name, token links and Message-ID spliced into the encoded edition),
//! on one core, for a 40-story digest.
//!
//! Target: at least 100,000 messages/s on one core, so that building messages is never what
//! limits a send (the smtp benchmark sends a few thousand a second). No outside reference:
//! it is CPU work of our own. The same loop with the copy the sender makes of each message
//! is reported without a target, to show what that copy costs.

use std::path::PathBuf;
use std::time::Instant;

use anyhow::Result;
use serde::{Deserialize, Serialize};

use dispatch::domain::{EmailAddress, Token};
use dispatch::mail::{Recipient, message_id};
use dispatch::store::Store;

use crate::Ctx;
use crate::child::{self, Step};
use crate::setup::{
    LIST, Language, add_articles, bench_config, make_edition, store_with_list, template_of,
};
use crate::table::{Row, Verdict, kb, per_sec, thousands};

/// Messages at full scale.
const READERS: u64 = 100_000;
/// The target, in messages per second on one core.
const TARGET_PER_SEC: f64 = 100_000.0;

/// Personalises the digest `edition` of `db` for `readers` made-up readers.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct PersonaliseStep {
    db: PathBuf,
    language: Language,
    edition: i64,
    readers: u64,
}

#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct PersonaliseOutput {
    readers: u64,
    secs: f64,
    /// All messages together.
    bytes: u64,
    /// The same loop with a copy of each message.
    copy_secs: f64,
}

impl PersonaliseOutput {
    fn per_sec(&self) -> f64 {
        per_sec(self.readers, self.secs)
    }

    fn avg_bytes(&self) -> f64 {
        self.bytes as f64 / self.readers as f64
    }
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
        Ok(PersonaliseOutput {
            readers: self.readers,
            secs,
            bytes: bytes as u64,
            copy_secs,
        })
    }
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
    let mut rows = Vec::new();

    let (db, edition) = prepare(ctx, Language::English).await?;
    let r = child::spawn(&PersonaliseStep {
        db,
        language: Language::English,
        edition,
        readers: n,
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
