//! `pg-snapshot`: the snapshot benchmark on PostgreSQL. Creating a digest edition for
//! 1,000,000 subscribers records its audience in the edition's transaction (the deliveries
//! are written as they are claimed: the claims of all of them are timed too, without a
//! target); on PostgreSQL that is many nodes' shared database, so the pause before the
//! first message must stay as short as on SQLite.
//!
//! Target: at most 5 s, as for SQLite. Needs `DISPATCH_BENCH_POSTGRES`
//! (`postgres://user@host/dbname`, a user who may create databases; skipped without it):
//! the benchmark fills a database of its own ([`crate::pgdb`]). The
//! subscribers are bulk-loaded into SQLite as for `snapshot`, then moved with `dispatch db
//! copy`'s code (`COPY … FROM STDIN`), whose time is reported too (no target: it runs once
//! per installation).
//!
//! The snapshot's time is spent inside PostgreSQL (one `INSERT … SELECT`), so a debug build
//! of this binary measures what a release build does. Other load on the machine slows the server as
//! it slows everything: compare with `snapshot`'s figure from the same run.

use std::path::PathBuf;
use std::time::Instant;

use anyhow::{Context as _, Result, bail};
use chrono::Utc;
use serde::{Deserialize, Serialize};

use dispatch::edition::create_digest;
use dispatch::store::{Created, Store};

use crate::Ctx;
use crate::child::{self, Step};
use crate::pgdb::{BenchDb, ENV};
use crate::setup::{
    LIST, Language, add_articles, bench_config, bulk_subscribers, claim_everything, store_with_list,
};
use crate::table::{Row, Verdict, thousands};

/// Subscribers at full scale.
const SUBSCRIBERS: u64 = 1_000_000;

/// Creates the digest of `list` in the PostgreSQL database `url`.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct PgSnapshotStep {
    url: String,
    /// The SQLite file the config is derived from (for the outbox path only).
    db: PathBuf,
    list: String,
}

#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct PgSnapshotOutput {
    secs: f64,
    queued: u64,
    /// Claiming every delivery afterwards, writing the audience as it goes.
    claim_secs: f64,
    claimed: u64,
}

impl Step for PgSnapshotStep {
    const NAME: &'static str = "pg-snapshot";
    type Output = PgSnapshotOutput;

    async fn run(self) -> Result<PgSnapshotOutput> {
        let store = Store::open_postgres(&self.url, 10).await?;
        let config = bench_config(&self.db, Language::English, None);
        let list = store.list_by_slug(&self.list).await?;
        let t = Instant::now();
        let created = create_digest(&store, &config, &list, Utc::now(), None).await?;
        let secs = t.elapsed().as_secs_f64();
        let Created::New { id, queued, .. } = created else {
            bail!("the digest already existed");
        };
        let (claim_secs, claimed) = claim_everything(&store, id, list.id).await?;
        store.close().await;
        Ok(PgSnapshotOutput {
            secs,
            queued,
            claim_secs,
            claimed,
        })
    }
}

pub(crate) async fn run(ctx: &Ctx) -> Result<Vec<Row>> {
    let Some(pg) = BenchDb::create("pg-snapshot").await? else {
        return Ok(Row::skipped(
            "pg-snapshot",
            &format!("{ENV} names no PostgreSQL database"),
        ));
    };
    let url = pg.url.clone();
    let n = ctx.scale.count(SUBSCRIBERS);
    let db = ctx.dir.join("pg-snapshot.db");
    let (store, list) = store_with_list(&db, LIST).await?;
    store.close().await;
    bulk_subscribers(&db, n, &[list]).await?;
    let store = Store::open(&db).await?;
    add_articles(&store, 40, 3, Language::English).await?;
    store.close().await;

    let t = Instant::now();
    let counts = dispatch::store::copy::copy_sqlite_to_postgres(&db, &url, 4, 1000, |_, _| {})
        .await
        .context("copying the bench database into PostgreSQL")?;
    let copy_secs = t.elapsed().as_secs_f64();
    let rows: i64 = counts.iter().map(|c| c.rows).sum();
    eprintln!(
        "db copy: {} rows in {copy_secs:.1} s",
        thousands(rows as f64)
    );

    let r = child::spawn(&PgSnapshotStep {
        url,
        db,
        list: LIST.into(),
    })?;
    let o = &r.output;
    let target = ctx.scale.secs(5.0);
    eprintln!(
        "create_digest on PostgreSQL: {} deliveries in {:.2} s (peak RSS {:.0} MB)",
        thousands(o.queued as f64),
        o.secs,
        r.rss_mb
    );
    pg.remove().await?;
    Ok(vec![
        Row::new(
            "pg-snapshot",
            format!("≤ {target} s for {} recipients", thousands(n as f64)),
            format!(
                "{:.2} s ({} recipients)",
                o.secs,
                thousands(o.queued as f64)
            ),
            Verdict::of(o.secs <= target && o.queued == n),
        ),
        crate::snapshot::claims_row("pg-snapshot claims", o.claim_secs, o.claimed, o.queued),
        Row::new(
            "db copy",
            "-".to_owned(),
            format!(
                "{copy_secs:.1} s for {} rows ({:.0} rows/s)",
                thousands(rows as f64),
                rows as f64 / copy_secs
            ),
            Verdict::Info,
        ),
    ])
}
