//! `subscribers import` and `subscribers export`: CSV in and out, streamed.

use std::io::{BufReader, Write};
use std::path::Path;

use anyhow::{Context, Result};

use super::Outcome;
use crate::domain::CategorySet;
use crate::import::subscribers_csv::{ExportRow, write_export};
use crate::intake::subscribers::{ImportReport, ImportTarget, import_from};
use crate::store::Store;

/// The CLI's report: lines on stderr, the summary on stdout.
struct Terminal;

impl ImportReport for Terminal {
    fn line(&mut self, text: String) {
        eprintln!("{text}");
    }
    fn summary(&mut self, text: String) {
        println!("{text}");
    }
}

/// Imports `file` into `list`. Bad rows are reported as `FILE:LINE: reason` on stderr while
/// the good rows are imported; the outcome is `Rejected` if any row was. Public so that
/// `dispatch-bench` times the same code path as `dispatch subscribers import`.
pub async fn import(store: &Store, file: &Path, list: &str, dry_run: bool) -> Result<Outcome> {
    let name = file.display().to_string();
    let input = std::fs::File::open(file).with_context(|| format!("opening {name}"))?;
    let source = format!(
        "import:{}",
        file.file_name()
            .map(|f| f.to_string_lossy())
            .unwrap_or_default()
    );
    let input = BufReader::with_capacity(1 << 16, input);
    let to = ImportTarget {
        list,
        source,
        dry_run,
    };
    let done = import_from(store, input, &name, &to, &mut Terminal).await?;
    Ok(if done.rejected > 0 {
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
