//! `snapshot`: creating a digest edition for 1,000,000 subscribers, which records its
//! audience in the same transaction as the edition (`create_digest`), and then, as a figure
//! without a target, claiming every delivery of it (which writes the audience as it goes).
//!
//! Target: at most 5 s. No outside reference: this is the pause between "the slot is due"
//! and the first message, and a snapshot that took minutes would hold the store's writer for
//! as long. It reuses the import's database when `import` ran first (the realistic case:
//! subscribers with mixed categories), else bulk-loads its own.

use std::path::PathBuf;
use std::time::Instant;

use anyhow::{Result, bail};
use chrono::Utc;
use serde::{Deserialize, Serialize};

use dispatch::edition::create_digest;
use dispatch::store::{Created, Store};

use crate::child::{self, Step};
use crate::setup::{
    LIST, Language, add_articles, bench_config, bulk_subscribers, claim_everything, store_with_list,
};
use crate::table::{Row, Verdict, thousands};
use crate::{Ctx, import};

/// Subscribers at full scale.
const SUBSCRIBERS: u64 = 1_000_000;

/// Creates the digest of `list` in `db`.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct SnapshotStep {
    db: PathBuf,
    list: String,
}

#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct SnapshotOutput {
    secs: f64,
    queued: u64,
    /// Claiming every delivery afterwards, writing the audience as it goes.
    claim_secs: f64,
    claimed: u64,
    skipped: u64,
}

impl Step for SnapshotStep {
    const NAME: &'static str = "snapshot";
    type Output = SnapshotOutput;

    async fn run(self) -> Result<SnapshotOutput> {
        let store = Store::open(&self.db).await?;
        let config = bench_config(&self.db, Language::English, None);
        let list = store.list_by_slug(&self.list).await?;
        let t = Instant::now();
        let created = create_digest(&store, &config, &list, Utc::now(), None).await?;
        let secs = t.elapsed().as_secs_f64();
        let Created::New {
            id,
            queued,
            skipped,
        } = created
        else {
            bail!("the digest already existed");
        };
        let (claim_secs, claimed) = claim_everything(&store, id, list.id).await?;
        store.close().await;
        Ok(SnapshotOutput {
            secs,
            queued,
            claim_secs,
            claimed,
            skipped,
        })
    }
}

pub(crate) async fn run(ctx: &Ctx) -> Result<Vec<Row>> {
    let n = ctx.scale.count(SUBSCRIBERS);
    let reuse = import::db(&ctx.top);
    let db = if reuse.exists() {
        eprintln!(
            "reusing the import's database ({} subscribers)",
            thousands(n as f64)
        );
        reuse
    } else {
        let db = ctx.dir.join("snapshot.db");
        let (store, list) = store_with_list(&db, LIST).await?;
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
    add_articles(&store, 40, 3, Language::English).await?;
    store.close().await;
    let r = child::spawn(&SnapshotStep {
        db,
        list: LIST.into(),
    })?;
    let o = &r.output;
    let target = ctx.scale.secs(5.0);
    eprintln!(
        "create_digest: {} deliveries ({} skipped) in {:.2} s (peak RSS {:.0} MB, CPU {:.1} s)",
        thousands(o.queued as f64),
        thousands(o.skipped as f64),
        o.secs,
        r.rss_mb,
        r.cpu_secs
    );
    Ok(vec![
        Row::new(
            "snapshot",
            format!("≤ {target} s for {} recipients", thousands(n as f64)),
            format!(
                "{:.2} s ({} recipients)",
                o.secs,
                thousands(o.queued as f64)
            ),
            Verdict::of(o.secs <= target && o.queued == n),
        ),
        claims_row("snapshot claims", o.claim_secs, o.claimed, o.queued),
    ])
}

/// What the snapshot left to the sending: claiming every delivery in claims of 1,000 and
/// recording each sent (the audience past the first 10,000 written as the claims reach it).
pub(crate) fn claims_row(name: &str, secs: f64, claimed: u64, queued: u64) -> Row {
    Row::new(
        name,
        "-".to_owned(),
        format!(
            "{secs:.2} s to claim and record sent all {} in claims of 1,000, writing the audience as they go ({:.0}/s)",
            thousands(claimed as f64),
            claimed as f64 / secs
        ),
        if claimed == queued {
            Verdict::Info
        } else {
            Verdict::Fail
        },
    )
}
