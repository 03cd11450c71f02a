//! `subscribers import` and `subscribers export`: CSV in and out, streamed.

use std::io::{BufReader, Write};
use std::path::Path;

use anyhow::{Context, Result};

use super::Outcome;
use crate::domain::CategorySet;
use crate::import::subscribers_csv::{CsvReader, ExportRow, write_export};
use crate::store::subscribers::NewSubscription;
use crate::store::{ImportOutcome, ImportSummary, Store};

/// Rows per transaction: large enough that a million rows take seconds, small enough that a
/// batch's lookups stay in one query.
const BATCH: usize = 2000;

/// Imports `file` into `list`. Bad rows are reported as `FILE:LINE: reason` on stderr while
/// the good rows are imported; the outcome is `Rejected` if any row was.
pub(super) async fn import(store: &Store, file: &Path, list: &str, dry_run: bool) -> Result<Outcome> {
    let list = store.list_by_slug(list).await?;
    let name = file.display().to_string();
    let input = std::fs::File::open(file).with_context(|| format!("opening {name}"))?;
    let mut reader = CsvReader::new(BufReader::with_capacity(1 << 16, input), list.category_set())
        .map_err(|e| anyhow::anyhow!("{name}: {e}"))?
        .with_list_name(list.slug.clone());
    for w in reader.warnings() {
        eprintln!("{name}: warning: {w}");
    }
    let source = format!("import:{}", file.file_name().map(|f| f.to_string_lossy()).unwrap_or_default());
    let mut summary = ImportSummary::default();
    let mut rejected = 0u64;
    let mut batch: Vec<NewSubscription> = Vec::with_capacity(BATCH);
    let mut lines: Vec<u64> = Vec::with_capacity(BATCH);

    async fn flush(
        store: &Store,
        list_id: i64,
        batch: &mut Vec<NewSubscription>,
        lines: &mut Vec<u64>,
        source: &str,
        dry_run: bool,
        summary: &mut ImportSummary,
        name: &str,
    ) -> Result<()> {
        if batch.is_empty() {
            return Ok(());
        }
        let outcomes = store.subscribe_batch(list_id, batch, source, dry_run).await?;
        for (o, line) in outcomes.iter().zip(lines.iter()) {
            if let ImportOutcome::Skipped(why) = o {
                eprintln!("{name}:{line}: skipped: {why}");
            }
            summary.count(o);
        }
        batch.clear();
        lines.clear();
        Ok(())
    }

    while let Some(row) = reader.next_row() {
        match row {
            Ok(r) => {
                lines.push(r.line);
                batch.push(NewSubscription { email: r.email, name: r.name, categories: r.categories });
                if batch.len() >= BATCH {
                    flush(store, list.id, &mut batch, &mut lines, &source, dry_run, &mut summary, &name).await?;
                }
            }
            Err(e) => {
                rejected += 1;
                eprintln!("{}", e.located(&name));
            }
        }
    }
    flush(store, list.id, &mut batch, &mut lines, &source, dry_run, &mut summary, &name).await?;

    let verb = if dry_run { "would import" } else { "imported" };
    println!(
        "{name}: {verb} into {}: {} added, {} updated, {} unchanged, {} skipped, {} rejected",
        list.slug,
        summary.added,
        summary.updated,
        summary.unchanged,
        summary.skipped + rejected,
        rejected
    );
    Ok(if rejected > 0 { Outcome::Rejected } else { Outcome::Ok })
}

/// Streams subscriptions to CSV (stdout or `output`): the database rows are read on this
/// task and written by a blocking writer thread, so memory stays flat for any list size.
pub(super) async fn export(store: &Store, list: Option<&str>, output: Option<&Path>) -> Result<()> {
    let list_id = match list {
        Some(slug) => Some(store.list_by_slug(slug).await?.id),
        None => None,
    };
    let out: Box<dyn Write + Send> = match output {
        Some(p) => Box::new(std::io::BufWriter::new(
            std::fs::File::create(p).with_context(|| format!("creating {}", p.display()))?,
        )),
        None => Box::new(std::io::BufWriter::new(std::io::stdout())),
    };
    let (tx, rx) = std::sync::mpsc::sync_channel::<ExportRow>(1024);
    let writer = tokio::task::spawn_blocking(move || write_export(out, rx.into_iter()));
    let n = store
        .for_each_export_row(list_id, |r| {
            tx.send(ExportRow {
                email: r.email,
                name: r.name,
                categories: r.categories.as_deref().map(CategorySet::from_stored),
                status: r.status,
                list: r.list,
            })
            .map_err(|_| anyhow::anyhow!("the CSV writer stopped"))
        })
        .await;
    drop(tx);
    writer.await.context("CSV writer panicked")??;
    let n = n?;
    if let Some(p) = output {
        eprintln!("exported {n} subscription(s) to {}", p.display());
    }
    Ok(())
}
