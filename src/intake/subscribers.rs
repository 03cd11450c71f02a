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

/// How many report lines about rows the reader left out one batch may hold: they wait for
/// the store's lines about the batch's rows, which may come earlier in the file, and a file
/// of nothing but bad rows must not hold them all.
const HELD_LINES: usize = 10_000;

/// A stretch of the file read: its accepted rows with their lines, and the report lines of
/// the rows the reader left out (rejected, or exported as unsubscribed), in file order.
#[derive(Default)]
struct Batch {
    rows: Vec<NewSubscription>,
    lines: Vec<u64>,
    held: Vec<(u64, String)>,
}

/// A batch being written by a task of its own, so that the next batch is read and checked on
/// this task while the store and SQLite's worker thread write this one: the two halves of an
/// import take two cores instead of one after the other. Aborted when dropped: an import that
/// stops early (an error, or the console's request cut off) rolls back the batch it had not
/// finished, as it did when batches were written in line.
struct Writing {
    task: tokio::task::JoinHandle<(Result<Vec<ImportOutcome>, StoreError>, Batch)>,
}

impl Drop for Writing {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// One import in progress: what it writes to, where its report goes, and the counts so far.
struct Run<'a> {
    store: &'a Store,
    list_id: i64,
    source: Arc<str>,
    dry_run: bool,
    name: &'a str,
    report: &'a mut (dyn ImportReport + Send),
    summary: ImportSummary,
    rejected: u64,
    rows: u64,
}

impl Run<'_> {
    /// Reads the next batch: up to [`BATCH`] accepted rows, or [`HELD_LINES`] lines left
    /// out, or the rest of the file.
    fn read<R: Read>(&mut self, reader: &mut CsvReader<R>) -> Batch {
        let name = self.name;
        let mut b = Batch {
            rows: Vec::with_capacity(BATCH),
            lines: Vec::with_capacity(BATCH),
            held: Vec::new(),
        };
        while b.rows.len() < BATCH && b.held.len() < HELD_LINES {
            let Some(row) = reader.next_row() else {
                break;
            };
            self.rows += 1;
            match row {
                Ok(r) if r.unsubscribed => {
                    self.summary.skipped += 1;
                    b.held.push((
                        r.line,
                        format!(
                            "{name}:{}: skipped: exported as unsubscribed; an import does not subscribe it",
                            r.line
                        ),
                    ));
                }
                Ok(r) => {
                    b.lines.push(r.line);
                    b.rows.push(NewSubscription {
                        email: r.email,
                        name: r.name,
                        categories: r.categories,
                    });
                }
                Err(e) => {
                    self.rejected += 1;
                    b.held.push((e.line, e.located(name)));
                }
            }
        }
        b
    }

    /// Starts writing `batch` (checking it only, in a dry run) on a task of its own.
    fn write(&self, batch: Batch) -> Writing {
        let (store, list_id, dry_run) = (self.store.clone(), self.list_id, self.dry_run);
        let source = Arc::clone(&self.source);
        let task = tokio::spawn(async move {
            let outcomes = if batch.rows.is_empty() {
                Ok(Vec::new())
            } else {
                store
                    .subscribe_batch(list_id, &batch.rows, &source, dry_run)
                    .await
            };
            (outcomes, batch)
        });
        Writing { task }
    }

    /// Waits for a batch being written, then reports its lines in file order: the store's
    /// about its rows (skipped) merged with the reader's about the rows it left out.
    async fn finish(&mut self, mut writing: Writing) -> Result<()> {
        let (outcomes, batch) = (&mut writing.task)
            .await
            .map_err(|e| anyhow::anyhow!("writing a batch of the import failed: {e}"))?;
        let outcomes = outcomes?;
        let mut held = batch.held.into_iter().peekable();
        for (o, &line) in outcomes.iter().zip(&batch.lines) {
            self.summary.count(o);
            let ImportOutcome::Skipped(why) = o else {
                continue;
            };
            while let Some((_, text)) = held.next_if(|(l, _)| *l < line) {
                self.report.line(text);
            }
            self.report
                .line(format!("{}:{line}: skipped: {why}", self.name));
        }
        for (_, text) in held {
            self.report.line(text);
        }
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
        summary: ImportSummary::default(),
        rejected: 0,
        rows: 0,
    };
    // One batch is written at a time, in file order, each in one transaction, while the
    // next is read.
    let mut writing: Option<Writing> = None;
    loop {
        let batch = run.read(&mut reader);
        let last = batch.rows.is_empty() && batch.held.is_empty();
        if let Some(w) = writing.take() {
            run.finish(w).await?;
        }
        if last {
            break;
        }
        writing = Some(run.write(batch));
    }
    let (summary, rejected) = (run.summary, run.rejected);
    let report = run.report;
    if run.rows == 0 {
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
