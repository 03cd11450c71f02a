//! Subscriber CSV imports: rows read by [`crate::import::subscribers_csv::CsvReader`],
//! stored in batches through the store, with a report of every row left out. The CLI's
//! `subscribers import` and the console's upload run this same code.

use std::io::Read;
use std::sync::Arc;

use anyhow::Result;

use crate::import::subscribers_csv::CsvReader;
use crate::store::subscribers::NewSubscription;
use crate::store::{ImportOutcome, ImportSummary, Store, StoreError};

/// Rows per transaction: each commit rewrites the index pages its rows touched, so fewer,
/// larger transactions write far less; 10,000 rows hold SQLite's single writer for about a
/// tenth of a second, which a one-click unsubscribe waiting behind it does not notice.
pub const BATCH: usize = 10_000;

/// Where an import's report goes: a line per skipped or rejected row (`FILE:LINE: reason`)
/// and warnings, then one summary line. The CLI prints them (stderr, then stdout); the
/// console shows them on the page.
pub trait ImportReport {
    /// A row skipped or rejected, or a warning about the file.
    fn line(&mut self, text: String);
    /// The closing count of added, updated, unchanged, skipped and rejected rows.
    fn summary(&mut self, text: String);
}

/// How many report lines the reader may produce while a batch is being written before the
/// import waits for that batch: they are held back to keep the report in file order, and a
/// file of nothing but bad rows must not hold them all.
const HELD_LINES: usize = 1024;

/// A batch being written by its own task, so that the next batch is read and checked (on
/// this task) while the store and SQLite's worker thread write this one: the two halves of
/// an import then take two cores instead of one after the other. Aborted when dropped: an
/// import that stops early (an error, or the console's request cut off) rolls back the batch
/// it had not finished, as it did when batches were written in line.
struct Writing {
    task: tokio::task::JoinHandle<(Result<Vec<ImportOutcome>, StoreError>, Vec<u64>)>,
}

impl Drop for Writing {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// One import in progress: the batch being read, the one being written, and the counts.
struct Run<'a> {
    store: &'a Store,
    list_id: i64,
    source: Arc<str>,
    dry_run: bool,
    name: &'a str,
    report: &'a mut (dyn ImportReport + Send),
    batch: Vec<NewSubscription>,
    lines: Vec<u64>,
    writing: Option<Writing>,
    /// Report lines of rows read while `writing` was in flight, reported after its lines.
    held: Vec<String>,
    summary: ImportSummary,
}

impl Run<'_> {
    /// Reports a line about a row just read: at once, or after the batch being written
    /// reports its own rows, which come earlier in the file.
    async fn line(&mut self, text: String) -> Result<()> {
        if self.writing.is_none() {
            self.report.line(text);
            return Ok(());
        }
        self.held.push(text);
        if self.held.len() >= HELD_LINES {
            self.finish_writing().await?;
        }
        Ok(())
    }

    /// Waits for the batch being written, reports its skipped rows, then the held lines.
    async fn finish_writing(&mut self) -> Result<()> {
        let Some(mut writing) = self.writing.take() else {
            return Ok(());
        };
        let (outcomes, lines) = (&mut writing.task)
            .await
            .map_err(|e| anyhow::anyhow!("writing a batch of the import failed: {e}"))?;
        for (o, line) in outcomes?.iter().zip(&lines) {
            if let ImportOutcome::Skipped(why) = o {
                self.report
                    .line(format!("{}:{line}: skipped: {why}", self.name));
            }
            self.summary.count(o);
        }
        for text in self.held.drain(..) {
            self.report.line(text);
        }
        Ok(())
    }

    /// Hands the pending batch to a task of its own, once the one before it is done (one
    /// batch is written at a time, in file order, each in one transaction).
    async fn flush(&mut self) -> Result<()> {
        self.finish_writing().await?;
        if self.batch.is_empty() {
            return Ok(());
        }
        let batch = std::mem::replace(&mut self.batch, Vec::with_capacity(BATCH));
        let lines = std::mem::replace(&mut self.lines, Vec::with_capacity(BATCH));
        let (store, list_id, dry_run) = (self.store.clone(), self.list_id, self.dry_run);
        let source = Arc::clone(&self.source);
        let task = tokio::spawn(async move {
            let outcomes = store
                .subscribe_batch(list_id, &batch, &source, dry_run)
                .await;
            (outcomes, lines)
        });
        self.writing = Some(Writing { task });
        Ok(())
    }
}

/// What an import did: the store's counts and the rows the reader rejected.
#[derive(Debug, Clone, Default)]
pub struct Imported {
    pub summary: ImportSummary,
    pub rejected: u64,
}

/// Where an import goes: the list's slug, the source recorded on new subscriptions
/// (`import:FILE`), and whether it only counts.
#[derive(Debug, Clone)]
pub struct ImportTarget<'a> {
    pub list: &'a str,
    pub source: String,
    pub dry_run: bool,
}

/// Imports CSV from `input` into a list: bad rows are reported (`name` stands for the file
/// in each line) while the good rows are imported, in batches of [`BATCH`]. What
/// `dispatch subscribers import` and the console's upload both run.
pub async fn import_from(
    store: &Store,
    input: impl Read,
    name: &str,
    to: &ImportTarget<'_>,
    report: &mut (dyn ImportReport + Send),
) -> Result<Imported> {
    let dry_run = to.dry_run;
    let list = store.list_by_slug(to.list).await?;
    let mut reader = CsvReader::new(input, list.category_set())
        .map_err(|e| anyhow::anyhow!("{name}: {e}"))?
        .with_list_name(list.slug.clone());
    for w in reader.warnings() {
        report.line(format!("{name}: warning: {w}"));
    }
    let mut run = Run {
        store,
        list_id: list.id,
        source: Arc::from(to.source.as_str()),
        dry_run,
        name,
        report,
        batch: Vec::with_capacity(BATCH),
        lines: Vec::with_capacity(BATCH),
        writing: None,
        held: Vec::new(),
        summary: ImportSummary::default(),
    };
    let mut rejected = 0u64;
    let mut rows = 0u64;
    while let Some(row) = reader.next_row() {
        rows += 1;
        match row {
            Ok(r) if r.unsubscribed => {
                run.summary.skipped += 1;
                run.line(format!(
                    "{name}:{}: skipped: exported as unsubscribed; an import does not subscribe it",
                    r.line
                ))
                .await?;
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
                run.line(e.located(name)).await?;
            }
        }
    }
    run.flush().await?;
    run.finish_writing().await?;
    let summary = run.summary;
    let report = run.report;
    if rows == 0 {
        report.line(format!(
            "{name}: warning: the file has a header row but no rows after it"
        ));
    }

    let verb = if dry_run { "would import" } else { "imported" };
    report.summary(format!(
        "{name}: {verb} into {}: {} added, {} updated, {} unchanged, {} skipped, {} rejected",
        list.slug,
        summary.added,
        summary.updated,
        summary.unchanged,
        summary.skipped + rejected,
        rejected
    ));
    Ok(Imported { summary, rejected })
}
