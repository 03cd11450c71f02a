//! Subscriber CSV imports: rows read by [`crate::import::subscribers_csv::CsvReader`],
//! stored in batches through the store, with a report of every row left out. The CLI's
//! `subscribers import` and the console's upload run this same code.

use std::io::Read;

use anyhow::Result;

use crate::import::subscribers_csv::CsvReader;
use crate::store::subscribers::NewSubscription;
use crate::store::{ImportOutcome, ImportSummary, Store};

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

/// One import in progress: the pending batch and the counts so far.
struct Run<'a> {
    store: &'a Store,
    list_id: i64,
    source: String,
    dry_run: bool,
    name: &'a str,
    report: &'a mut (dyn ImportReport + Send),
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
                self.report
                    .line(format!("{}:{line}: skipped: {why}", self.name));
            }
            self.summary.count(o);
        }
        self.batch.clear();
        self.lines.clear();
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
        source: to.source.clone(),
        dry_run,
        name,
        report,
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
                run.report.line(format!(
                    "{name}:{}: skipped: exported as unsubscribed; an import does not subscribe it",
                    r.line
                ));
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
                run.report.line(e.located(name));
            }
        }
    }
    run.flush().await?;
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
