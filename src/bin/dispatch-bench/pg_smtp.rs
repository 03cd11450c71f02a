//! `pg-smtp`: single-node sending throughput on PostgreSQL against SQLite's, in the same run:
//! the `smtp` benchmark's 20,000-recipient edition sent once from its SQLite file and once
//! from a `db copy` of that file in PostgreSQL (a database of its own on the server
//! `DISPATCH_BENCH_POSTGRES` names; skipped without it), each over 8 connections to a fresh
//! `smtp-sink` behind the delay proxy (10 ms round trip), as issue 16 sets it: a real relay
//! is latency-bound, and on loopback the PostgreSQL server's own CPU would come out of the
//! same two cores the sender uses, which measures the machine rather than the store.
//!
//! Target: PostgreSQL at least 0.8× SQLite's rate. Claims and outcomes are round trips to a
//! server on PostgreSQL and calls into a library on SQLite; the engine claims and records in
//! batches so that these stay a small part of a message's cost.

use anyhow::{Context as _, Result};

use crate::Ctx;
use crate::child;
use crate::pg_nodes::NodeStep;
use crate::pgdb::{BenchDb, ENV};
use crate::setup::{LIST, prepare_send};
use crate::table::{Row, Verdict, ratio, thousands};
use crate::tools::{self, Tool};

/// Recipients at full scale (as `smtp`).
const RECIPIENTS: u64 = 20_000;

pub(crate) async fn run(ctx: &Ctx) -> Result<Vec<Row>> {
    let Some(pg_db) = BenchDb::create("pg-smtp").await? else {
        return Ok(Row::skipped(
            "pg-smtp",
            &format!("{ENV} names no PostgreSQL database"),
        ));
    };
    let url = pg_db.url.clone();
    let [sink] = match tools::find_all([Tool::SmtpSink]) {
        Ok(paths) => paths,
        Err(why) => return Ok(Row::skipped("pg-smtp", &why)),
    };
    let n = ctx.scale.count(RECIPIENTS);
    let (db, [edition]) = prepare_send(&ctx.dir, n, [LIST]).await?;
    // The queued edition, as it is before the send, in both databases.
    dispatch::store::copy::copy_sqlite_to_postgres(&db, &url, 4, 1000, |_, _| {})
        .await
        .context("copying the bench database into PostgreSQL")?;
    let send = |url: Option<String>| {
        child::spawn(&NodeStep {
            url,
            db: db.clone(),
            edition,
            sink: sink.clone(),
        })
    };
    let sqlite = send(None)?.output;
    // The same edition again: the SQLite run changed only the file, not the copy.
    let pg = send(Some(url))?.output;
    let r = pg.per_sec() / sqlite.per_sec();
    eprintln!(
        "{} messages over 8 connections, 10 ms round trip: SQLite {}/s (sent {}), PostgreSQL {}/s (sent {}), ratio {}",
        thousands(n as f64),
        thousands(sqlite.per_sec()),
        sqlite.sent,
        thousands(pg.per_sec()),
        pg.sent,
        ratio(r)
    );
    pg_db.remove().await?;
    Ok(vec![Row::new(
        "pg-smtp",
        "≥ 0.8× SQLite",
        format!(
            "{} ({}/s vs {}/s, 8 conns, 10 ms RTT)",
            ratio(r),
            thousands(pg.per_sec()),
            thousands(sqlite.per_sec())
        ),
        Verdict::of(r >= 0.8 && pg.sent == n && sqlite.sent == n),
    )])
}
