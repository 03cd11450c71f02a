//! `import`: `dispatch subscribers import` of a 1,000,000-row CSV into an empty list.
//!
//! Target: at most 15 s and at most 200 MB peak RSS, with every row an active subscription.
//! There is no outside reference: the time is what an editor waits for at the command line,
//! and the memory bound is what proves the import streams instead of holding the file. The
//! CSV mixes empty and Urdu names and empty and several categories, like a real export.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::Result;
use serde::{Deserialize, Serialize};

use dispatch::store::Store;

use crate::Ctx;
use crate::child::{self, Step};
use crate::setup::{LIST, store_with_list};
use crate::table::{Row, Verdict, per_sec, thousands};

const MB: f64 = 1024.0 * 1024.0;

/// Rows at full scale.
const ROWS: u64 = 1_000_000;

/// The import's folder in the run's folder: the snapshot reuses its database.
pub(crate) fn dir(top: &Path) -> PathBuf {
    top.join("import")
}

/// The import's database, kept for the snapshot.
pub(crate) fn db(top: &Path) -> PathBuf {
    dir(top).join("import.db")
}

/// Imports `csv` into the list `list` of `db`.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct ImportStep {
    db: PathBuf,
    csv: PathBuf,
    list: String,
}

#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct ImportOutput {
    secs: f64,
    /// Active subscriptions on the list afterwards.
    active: u64,
}

impl Step for ImportStep {
    const NAME: &'static str = "import";
    type Output = ImportOutput;

    async fn run(self) -> Result<ImportOutput> {
        let store = Store::open(&self.db).await?;
        let t = Instant::now();
        dispatch::cli::subscribers_import::import(&store, &self.csv, &self.list, false).await?;
        let secs = t.elapsed().as_secs_f64();
        let l = store.list_by_slug(&self.list).await?;
        let (_, active, _) = store.subscription_counts(l.id).await?;
        store.close().await;
        Ok(ImportOutput {
            secs,
            active: u64::try_from(active)?,
        })
    }
}

/// Writes `n` subscriber rows: email, name (some empty, some Urdu), categories (some empty).
fn write_csv(path: &Path, n: u64) -> Result<u64> {
    let file = std::fs::File::create(path)?;
    let mut w = std::io::BufWriter::with_capacity(1 << 20, file);
    w.write_all(b"email,name,categories\n")?;
    let cats = ["", "Politics", "Business;Sport", "General News;Politics"];
    for i in 1..=n {
        let name = match i % 3 {
            0 => String::new(),
            1 => format!("Reader {i}"),
            _ => format!("عائشہ خان {i}"),
        };
        writeln!(
            w,
            "reader{i}@example{}.org,{name},{}",
            i % 97,
            cats[(i % 4) as usize]
        )?;
    }
    w.flush()?;
    Ok(std::fs::metadata(path)?.len())
}

pub(crate) async fn run(ctx: &Ctx) -> Result<Vec<Row>> {
    let n = ctx.scale.count(ROWS);
    let csv = ctx.dir.join("subscribers.csv");
    let t = Instant::now();
    let bytes = write_csv(&csv, n)?;
    eprintln!(
        "wrote {} rows ({:.1} MB) in {:.2} s",
        thousands(n as f64),
        bytes as f64 / MB,
        t.elapsed().as_secs_f64()
    );
    let db = db(&ctx.top);
    let (store, _) = store_with_list(&db, LIST).await?;
    store.close().await;
    let r = child::spawn(&ImportStep {
        db,
        csv: csv.clone(),
        list: LIST.into(),
    })?;
    let _ = std::fs::remove_file(&csv);
    let (o, rss) = (&r.output, r.rss_mb);
    let target_secs = ctx.scale.secs(15.0);
    let rate = thousands(per_sec(n, o.secs));
    eprintln!(
        "imported {} rows ({} active subscriptions) in {:.2} s = {rate} rows/s, peak RSS {rss:.0} MB, CPU {:.1} s",
        thousands(n as f64),
        thousands(o.active as f64),
        o.secs,
        r.cpu_secs
    );
    Ok(vec![
        Row::new(
            "import",
            format!("≤ {target_secs} s for {} rows", thousands(n as f64)),
            format!("{:.2} s ({rate} rows/s)", o.secs),
            Verdict::of(o.secs <= target_secs && o.active == n),
        ),
        Row::new(
            "import RSS",
            "≤ 200 MB",
            format!("{rss:.0} MB peak"),
            Verdict::of(rss <= 200.0),
        ),
    ])
}
