//! `import`: `dispatch subscribers import` of a 1,000,000-row CSV into an empty list, its
//! `--dry-run`, and the instructions each costs per row.
//!
//! Targets: at most 10 s and at most 200 MB peak RSS, with every row an active subscription,
//! and at most 40,000 instructions per row. There is no outside reference: the time is what
//! an editor waits for at the command line, the memory bound is what proves the import
//! streams instead of holding the file, and the instruction count (callgrind, when valgrind
//! is installed) is the same figure on a busy machine as on a quiet one. The CSV mixes empty
//! and Urdu names and empty and several categories, like a real export.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

use anyhow::{Context as _, Result};
use serde::{Deserialize, Serialize};

use dispatch::store::Store;

use crate::Ctx;
use crate::child::{self, Step};
use crate::setup::{LIST, store_with_list};
use crate::table::{Row, Verdict, per_sec, thousands};
use crate::tools::Tool;

const MB: f64 = 1024.0 * 1024.0;

/// Rows at full scale.
const ROWS: u64 = 1_000_000;

/// Rows of the import counted under callgrind at full scale (about a minute under valgrind).
const COUNTED_ROWS: u64 = 20_000;

/// The instruction budget per imported row.
const INSTRUCTIONS_PER_ROW: f64 = 40_000.0;

/// An environment variable naming a folder to keep callgrind's profiles in.
const KEEP_PROFILES: &str = "DISPATCH_BENCH_CALLGRIND_DIR";

/// The import's folder in the run's folder: the snapshot reuses its database.
pub(crate) fn dir(top: &Path) -> PathBuf {
    top.join("import")
}

/// The import's database, kept for the snapshot.
pub(crate) fn db(top: &Path) -> PathBuf {
    dir(top).join("import.db")
}

/// Imports `csv` into the list `list` of `db` (checks it only, with `dry_run`).
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct ImportStep {
    db: PathBuf,
    csv: PathBuf,
    list: String,
    dry_run: bool,
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
        dispatch::cli::subscribers_import::import(&store, &self.csv, &self.list, self.dry_run)
            .await?;
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

/// A fresh database at `db` with the bench list, closed again.
async fn empty_db(db: &Path) -> Result<()> {
    let (store, _) = store_with_list(db, LIST).await?;
    store.close().await;
    Ok(())
}

/// Instructions (callgrind's total, every thread) of the import step of `csv` into a fresh
/// database in `dir`, run by `valgrind`.
async fn instructions(valgrind: &Path, dir: &Path, csv: &Path, dry_run: bool) -> Result<u64> {
    let db = dir.join(format!("counted-{dry_run}.db"));
    for stale in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{stale}", db.display()));
    }
    empty_db(&db).await?;
    let out = dir.join("callgrind.out");
    let step = ImportStep {
        db,
        csv: csv.to_owned(),
        list: LIST.into(),
        dry_run,
    };
    let status = Command::new(valgrind)
        .arg("--tool=callgrind")
        .arg(format!("--callgrind-out-file={}", out.display()))
        .arg(std::env::current_exe()?)
        .arg("--step")
        .arg(ImportStep::NAME)
        .arg(serde_json::to_string(&step)?)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .context("running valgrind")?;
    anyhow::ensure!(
        status.success(),
        "valgrind --tool=callgrind exited with {status}"
    );
    let text = std::fs::read_to_string(&out)?;
    // To see where the instructions go (`callgrind_annotate FILE`), name a folder to keep
    // each run's profile in.
    if let Some(keep) = std::env::var_os(KEEP_PROFILES) {
        let name = format!(
            "import-{}-{}.callgrind",
            if dry_run { "dry-run" } else { "write" },
            csv.file_stem()
                .map(|s| s.to_string_lossy())
                .unwrap_or_default()
        );
        std::fs::copy(&out, Path::new(&keep).join(name))
            .with_context(|| format!("keeping the profile in {}", Path::new(&keep).display()))?;
    }
    let _ = std::fs::remove_file(&out);
    text.lines()
        .find_map(|l| {
            l.strip_prefix("summary:")
                .or_else(|| l.strip_prefix("totals:"))
        })
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .context("no instruction total in callgrind's output")
}

/// Instructions per row of the import step (`dry_run`: of its dry run): the count for
/// `rows` rows less the count for the header alone (opening the database, the runtime),
/// divided by `rows`.
async fn instructions_per_row(
    valgrind: &Path,
    dir: &Path,
    rows: u64,
    dry_run: bool,
) -> Result<f64> {
    let header = dir.join("header-only.csv");
    write_csv(&header, 0)?;
    let csv = dir.join("counted.csv");
    write_csv(&csv, rows)?;
    let fixed = instructions(valgrind, dir, &header, dry_run).await?;
    let total = instructions(valgrind, dir, &csv, dry_run).await?;
    Ok(total.saturating_sub(fixed) as f64 / rows as f64)
}

/// The instruction-count rows, or a "skipped" row without valgrind.
async fn instruction_rows(ctx: &Ctx) -> Result<Vec<Row>> {
    let Some(valgrind) = Tool::Valgrind.find() else {
        return Ok(vec![Row::info("import instr.", "skipped: no valgrind")]);
    };
    let rows = ctx.scale.count(COUNTED_ROWS);
    let mut out = Vec::new();
    for (bench, dry_run) in [("import instr.", false), ("dry-run instr.", true)] {
        let t = Instant::now();
        let per_row = instructions_per_row(&valgrind, &ctx.dir, rows, dry_run).await?;
        eprintln!(
            "callgrind: {bench} {} per row over {} rows ({:.0} s under valgrind)",
            thousands(per_row),
            thousands(rows as f64),
            t.elapsed().as_secs_f64()
        );
        out.push(Row::new(
            bench,
            format!("≤ {} instructions/row", thousands(INSTRUCTIONS_PER_ROW)),
            format!(
                "{} /row ({} rows, callgrind)",
                thousands(per_row),
                thousands(rows as f64)
            ),
            Verdict::of(per_row <= INSTRUCTIONS_PER_ROW),
        ));
    }
    Ok(out)
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
    let target_secs = ctx.scale.secs(10.0);

    // The dry run first, on an empty database of its own: checking a file before importing it.
    let dry_db = ctx.dir.join("dry-run.db");
    empty_db(&dry_db).await?;
    let dry = child::spawn(&ImportStep {
        db: dry_db,
        csv: csv.clone(),
        list: LIST.into(),
        dry_run: true,
    })?;
    eprintln!(
        "dry run of {} rows in {:.2} s = {} rows/s, CPU {:.1} s ({} active afterwards)",
        thousands(n as f64),
        dry.output.secs,
        thousands(per_sec(n, dry.output.secs)),
        dry.cpu_secs,
        dry.output.active
    );

    let db = db(&ctx.top);
    empty_db(&db).await?;
    let r = child::spawn(&ImportStep {
        db,
        csv: csv.clone(),
        list: LIST.into(),
        dry_run: false,
    })?;
    let _ = std::fs::remove_file(&csv);
    let (o, rss) = (&r.output, r.rss_mb);
    let rate = thousands(per_sec(n, o.secs));
    eprintln!(
        "imported {} rows ({} active subscriptions) in {:.2} s = {rate} rows/s, peak RSS {rss:.0} MB, CPU {:.1} s",
        thousands(n as f64),
        thousands(o.active as f64),
        o.secs,
        r.cpu_secs
    );
    let mut rows = vec![
        Row::new(
            "import",
            format!("≤ {target_secs} s for {} rows", thousands(n as f64)),
            format!("{:.2} s ({rate} rows/s, CPU {:.1} s)", o.secs, r.cpu_secs),
            Verdict::of(o.secs <= target_secs && o.active == n),
        ),
        Row::new(
            "import RSS",
            "≤ 200 MB",
            format!("{rss:.0} MB peak"),
            Verdict::of(rss <= 200.0),
        ),
        Row::new(
            "import --dry-run",
            format!("≤ {target_secs} s, nothing written"),
            format!(
                "{:.2} s ({} rows/s, CPU {:.1} s)",
                dry.output.secs,
                thousands(per_sec(n, dry.output.secs)),
                dry.cpu_secs
            ),
            Verdict::of(dry.output.secs <= target_secs && dry.output.active == 0),
        ),
    ];
    rows.extend(instruction_rows(ctx).await?);
    Ok(rows)
}
