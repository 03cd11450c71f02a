//! `subscribers import` and `subscribers export`: CSV in and out, streamed.

use std::io::{BufReader, Write};
use std::path::Path;

use anyhow::{Context, Result};

use super::Outcome;
use crate::domain::CategorySet;
use crate::import::subscribers_csv::{CsvReader, ExportRow, write_export};
use crate::store::subscribers::NewSubscription;
use crate::store::{ImportOutcome, ImportSummary, Store};

/// Rows per transaction: each commit rewrites the index pages its rows touched, so fewer,
/// larger transactions write far less; 10,000 rows hold SQLite's single writer for about a
/// tenth of a second, which a one-click unsubscribe waiting behind it does not notice.
const BATCH: usize = 10_000;

/// One import in progress: the pending batch and the counts so far.
struct Run<'a> {
    store: &'a Store,
    list_id: i64,
    source: String,
    dry_run: bool,
    name: &'a str,
    batch: Vec<NewSubscription>,
    lines: Vec<u64>,
    summary: ImportSummary,
}

impl Run<'_> {
    /// Writes the pending batch in one transaction and reports its skipped rows.
    async fn flush(&mut self) -> Result<()> {
        if self.batch.is_empty() {
            return Ok(());
        }
        let outcomes = self
            .store
            .subscribe_batch(self.list_id, &self.batch, &self.source, self.dry_run)
            .await?;
        for (o, line) in outcomes.iter().zip(&self.lines) {
            if let ImportOutcome::Skipped(why) = o {
                eprintln!("{}:{line}: skipped: {why}", self.name);
            }
            self.summary.count(o);
        }
        self.batch.clear();
        self.lines.clear();
        Ok(())
    }
}

/// Imports `file` into `list`. Bad rows are reported as `FILE:LINE: reason` on stderr while
/// the good rows are imported; the outcome is `Rejected` if any row was. Public so that
/// `dispatch-bench` times the same code path as `dispatch subscribers import`.
pub async fn import(store: &Store, file: &Path, list: &str, dry_run: bool) -> Result<Outcome> {
    let list = store.list_by_slug(list).await?;
    let name = file.display().to_string();
    let input = std::fs::File::open(file).with_context(|| format!("opening {name}"))?;
    let mut reader = CsvReader::new(
        BufReader::with_capacity(1 << 16, input),
        list.category_set(),
    )
    .map_err(|e| anyhow::anyhow!("{name}: {e}"))?
    .with_list_name(list.slug.clone());
    for w in reader.warnings() {
        eprintln!("{name}: warning: {w}");
    }
    let mut run = Run {
        store,
        list_id: list.id,
        source: format!(
            "import:{}",
            file.file_name()
                .map(|f| f.to_string_lossy())
                .unwrap_or_default()
        ),
        dry_run,
        name: &name,
        batch: Vec::with_capacity(BATCH),
        lines: Vec::with_capacity(BATCH),
        summary: ImportSummary::default(),
    };
    let mut rejected = 0u64;
    let mut rows = 0u64;
    while let Some(row) = reader.next_row() {
        rows += 1;
        match row {
            Ok(r) if r.unsubscribed => {
                run.summary.skipped += 1;
                eprintln!(
                    "{name}:{}: skipped: exported as unsubscribed; an import does not subscribe it",
                    r.line
                );
            }
            Ok(r) => {
                run.lines.push(r.line);
                run.batch.push(NewSubscription {
                    email: r.email,
                    name: r.name,
                    categories: r.categories,
                });
                if run.batch.len() >= BATCH {
                    run.flush().await?;
                }
            }
            Err(e) => {
                rejected += 1;
                eprintln!("{}", e.located(&name));
            }
        }
    }
    run.flush().await?;
    let summary = run.summary;
    if rows == 0 {
        eprintln!("{name}: warning: the file has a header row but no rows after it");
    }

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
    Ok(if rejected > 0 {
        Outcome::Rejected
    } else {
        Outcome::Ok
    })
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
