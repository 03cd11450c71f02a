//! `pg-nodes`: two sending nodes on one PostgreSQL database against one node, each node with
//! 8 connections to `smtp-sink` behind the delay proxy (10 ms round trip, so sending is
//! latency-bound as with a real provider). One node sends one 20,000-recipient edition; then
//! two nodes, two processes, send a second edition of the same readers together, claiming
//! different readers (`FOR UPDATE SKIP LOCKED`).
//!
//! Target: two nodes at least 1.8× one node's rate. Needs `DISPATCH_BENCH_POSTGRES` (the
//! benchmark creates a database of its own on that server; skipped without it).

use std::net::{Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{Context as _, Result};
use serde::{Deserialize, Serialize};

use dispatch::delivery::Engine;
use dispatch::mail::Transport;
use dispatch::store::Store;

use crate::Ctx;
use crate::child::{self, Step};
use crate::pgdb::{BenchDb, ENV};
use crate::setup::{Language, bench_config, prepare_send};
use crate::smtp::{Sent, send_edition};
use crate::table::{Row, Verdict, per_sec, ratio, thousands};
use crate::tools::{self, Tool};

/// Recipients at full scale.
const RECIPIENTS: u64 = 20_000;

/// One node: sends what it can claim of `edition` to its own sink behind the delay proxy, from
/// the PostgreSQL database `url` or, without one, from the SQLite file `db`.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct NodeStep {
    pub(crate) url: Option<String>,
    /// The SQLite file (the config's outbox path is derived from it too).
    pub(crate) db: PathBuf,
    pub(crate) edition: i64,
    pub(crate) sink: PathBuf,
}

impl Step for NodeStep {
    const NAME: &'static str = "pg-node";
    type Output = Sent;

    async fn run(self) -> Result<Sent> {
        let (_sink, port) = tools::start_sink(&self.sink).await?;
        let proxy = crate::proxy::start(SocketAddr::from((Ipv4Addr::LOCALHOST, port))).await?;
        let store = match &self.url {
            Some(url) => Store::open_postgres(url, 16).await?,
            None => Store::open(&self.db).await?,
        };
        let config = Arc::new(bench_config(
            &self.db,
            Language::English,
            Some(proxy.addr().port()),
        ));
        let engine = Engine::new(
            store.clone(),
            Arc::clone(&config),
            Transport::from_config(&config)?,
        )?;
        let sent = send_edition(&engine, self.edition).await?;
        drop(engine);
        store.close().await;
        Ok(sent)
    }
}

pub(crate) async fn run(ctx: &Ctx) -> Result<Vec<Row>> {
    let Some(pg) = BenchDb::create("pg-nodes").await? else {
        return Ok(Row::skipped(
            "pg-nodes",
            &format!("{ENV} names no PostgreSQL database"),
        ));
    };
    let url = pg.url.clone();
    let [sink] = match tools::find_all([Tool::SmtpSink]) {
        Ok(paths) => paths,
        Err(why) => return Ok(Row::skipped("pg-nodes", &why)),
    };
    let n = ctx.scale.count(RECIPIENTS);
    let (db, [one, two]) = prepare_send(&ctx.dir, n, ["bench", "bench-two"]).await?;
    dispatch::store::copy::copy_sqlite_to_postgres(&db, &url, 4, 1000, |_, _| {})
        .await
        .context("copying the bench database into PostgreSQL")?;
    let step = |edition| NodeStep {
        url: Some(url.clone()),
        db: db.clone(),
        edition,
        sink: sink.clone(),
    };

    let single = child::spawn(&step(one))?.output;
    // Two processes at once; the edition is done when the later one is. Each measures its
    // send alone, as the single node did (not the process's start).
    let (a, b) = (step(two), step(two));
    let ta = std::thread::spawn(move || child::spawn(&a));
    let tb = std::thread::spawn(move || child::spawn(&b));
    let join = |t: std::thread::JoinHandle<Result<child::Report<Sent>>>| {
        t.join()
            .map_err(|_| anyhow::anyhow!("a node's thread panicked"))?
    };
    let (ra, rb) = (join(ta)?.output, join(tb)?.output);
    let both_secs = ra.secs.max(rb.secs);
    let both_sent = ra.sent + rb.sent;
    let (one_rate, two_rate) = (single.per_sec(), per_sec(both_sent, both_secs));
    let r = two_rate / one_rate;
    eprintln!(
        "{} messages, 8 connections per node, 10 ms round trip: one node {}/s (sent {}); two nodes {}/s (sent {} + {}), ratio {}",
        thousands(n as f64),
        thousands(one_rate),
        single.sent,
        thousands(two_rate),
        ra.sent,
        rb.sent,
        ratio(r)
    );
    pg.remove().await?;
    Ok(vec![Row::new(
        "pg-nodes",
        "2 nodes ≥ 1.8× 1 node",
        format!(
            "{} ({}/s vs {}/s, 8 conns each, 10 ms RTT)",
            ratio(r),
            thousands(two_rate),
            thousands(one_rate)
        ),
        Verdict::of(r >= 1.8 && single.sent == n && both_sent == n),
    )])
}
