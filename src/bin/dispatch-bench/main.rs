//! `dispatch-bench`: measures the performance targets and prints a table.
//!
//! ```text
//! cargo build --release   # the crash benchmark kills the real `dispatch` binary
//! cargo run --release --bin dispatch-bench -- [all|import|snapshot|personalise|smtp|latency|dkim|crash|growth|rss|unsubscribe|bounces|feeds|api|console|pg-snapshot|pg-smtp|pg-nodes]... [--quick]
//! ```
//!
//! The parent prepares each benchmark's data in a temporary folder (never `data/` or
//! `outbox/`), then re-invokes this binary with a hidden `--step NAME JSON` argument carrying
//! that step's typed parameters. The child does only the measured work and prints one
//! `BENCH_RESULT {json}` line with its typed result and its own peak RSS (`VmHWM`), so each
//! memory figure belongs to that work alone ([`child`]). `--quick` scales every count down ten
//! times (and the time targets with it); its verdicts are only a smoke test.
//!
//! One module per benchmark, each with the parent's half (`run`: prepare, spawn, judge) and
//! the child's half (its [`child::Step`]). External tools ([`tools`]): Postfix's `smtp-sink`
//! and `smtp-source` (smtp, latency, dkim, crash, growth, rss, unsubscribe), a throwaway
//! Postfix as root (latency, [`postfix`]), `wrk` (unsubscribe) and `openssl` (DKIM keys and
//! `openssl speed` for personalise and dkim). A benchmark whose tool is missing is reported as
//! skipped. The latency benchmark puts a delay [`proxy`] between the sender and the relay; the
//! crash benchmark runs the `dispatch` binary next to this one rather than a step of its own
//! ([`crash`]).
#![forbid(unsafe_code)]

mod api;
mod bounces;
mod child;
mod console;
mod crash;
mod dkim;
mod feeds;
mod growth;
mod import;
mod latency;
mod personalise;
mod pgdb;
mod pg_nodes;
mod pg_smtp;
mod pg_snapshot;
mod postfix;
mod proxy;
mod rss;
mod setup;
mod smtp;
mod snapshot;
mod table;
mod tools;
mod unsubscribe;

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

use anyhow::{Context as _, Result, bail};
use clap::{Parser, ValueEnum};

use crate::child::Step as _;
use crate::table::{Row, Verdict};

/// Measures dispatch's performance targets and prints a Markdown table of the verdicts.
#[derive(Debug, Parser)]
#[command(name = "dispatch-bench")]
struct Cli {
    /// The benchmarks to run, in the order given (`all` when none is named).
    #[arg(value_enum)]
    benches: Vec<Which>,
    /// Divide every count, and the time targets with it, by 10: a smoke test, not a verdict.
    #[arg(long)]
    quick: bool,
    /// Internal: run one measured step in this process and print its result.
    #[arg(long, hide = true, num_args = 2, value_names = ["NAME", "JSON"])]
    step: Option<Vec<String>>,
}

/// A benchmark, or `all` of them, as named on the command line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Which {
    All,
    Import,
    Snapshot,
    Personalise,
    Smtp,
    Latency,
    Dkim,
    Crash,
    Growth,
    Rss,
    Unsubscribe,
    Bounces,
    Feeds,
    Api,
    Console,
    PgSnapshot,
    PgSmtp,
    PgNodes,
}

/// One benchmark, in the order `all` runs them (the snapshot reuses the import's database).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Bench {
    Import,
    Snapshot,
    Personalise,
    Smtp,
    Latency,
    Dkim,
    Crash,
    Growth,
    Rss,
    Unsubscribe,
    Bounces,
    Feeds,
    Api,
    Console,
    PgSnapshot,
    PgSmtp,
    PgNodes,
}

impl Bench {
    const ALL: [Self; 17] = [
        Self::Import,
        Self::Snapshot,
        Self::Personalise,
        Self::Smtp,
        Self::Latency,
        Self::Dkim,
        Self::Crash,
        Self::Growth,
        Self::Rss,
        Self::Unsubscribe,
        Self::Bounces,
        Self::Feeds,
        Self::Api,
        Self::Console,
        Self::PgSnapshot,
        Self::PgSmtp,
        Self::PgNodes,
    ];

    fn name(self) -> &'static str {
        match self {
            Self::Import => "import",
            Self::Snapshot => "snapshot",
            Self::Personalise => "personalise",
            Self::Smtp => "smtp",
            Self::Latency => "latency",
            Self::Dkim => "dkim",
            Self::Crash => "crash",
            Self::Growth => "growth",
            Self::Rss => "rss",
            Self::Unsubscribe => "unsubscribe",
            Self::Bounces => "bounces",
            Self::Feeds => "feeds",
            Self::Api => "api",
            Self::Console => "console",
            Self::PgSnapshot => "pg-snapshot",
            Self::PgSmtp => "pg-smtp",
            Self::PgNodes => "pg-nodes",
        }
    }

    /// The benchmarks to run for the command line's `named`: in the order named, each once,
    /// all of them when none is named.
    fn to_run(named: &[Which]) -> Vec<Self> {
        let named = if named.is_empty() {
            &[Which::All][..]
        } else {
            named
        };
        let mut benches = Vec::new();
        for b in named.iter().flat_map(|w| Self::named(*w)) {
            if !benches.contains(b) {
                benches.push(*b);
            }
        }
        benches
    }

    /// The benchmarks `which` names.
    fn named(which: Which) -> &'static [Self] {
        match which {
            Which::All => &Self::ALL,
            Which::Import => &[Self::Import],
            Which::Snapshot => &[Self::Snapshot],
            Which::Personalise => &[Self::Personalise],
            Which::Smtp => &[Self::Smtp],
            Which::Latency => &[Self::Latency],
            Which::Dkim => &[Self::Dkim],
            Which::Crash => &[Self::Crash],
            Which::Growth => &[Self::Growth],
            Which::Rss => &[Self::Rss],
            Which::Unsubscribe => &[Self::Unsubscribe],
            Which::Bounces => &[Self::Bounces],
            Which::Feeds => &[Self::Feeds],
            Which::Api => &[Self::Api],
            Which::Console => &[Self::Console],
            Which::PgSnapshot => &[Self::PgSnapshot],
            Which::PgSmtp => &[Self::PgSmtp],
            Which::PgNodes => &[Self::PgNodes],
        }
    }
}

/// How much of each benchmark to run: everything (`1`) or a tenth (`--quick`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Scale(u64);

impl Scale {
    /// `n` at this scale.
    pub(crate) fn count(self, n: u64) -> u64 {
        n / self.0
    }

    /// A time target of `secs` at full scale, at this scale.
    pub(crate) fn secs(self, secs: f64) -> f64 {
        secs / self.0 as f64
    }

    pub(crate) fn is_quick(self) -> bool {
        self.0 > 1
    }
}

/// What a benchmark's preparation gets from the run.
#[derive(Debug)]
pub(crate) struct Ctx {
    /// The run's temporary folder (the snapshot finds the import's database there).
    pub(crate) top: PathBuf,
    /// This benchmark's own folder, removed after it.
    pub(crate) dir: PathBuf,
    pub(crate) scale: Scale,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    if let Some(step) = &cli.step {
        let [name, params] = step.as_slice() else {
            eprintln!("--step needs a name and a JSON argument");
            return ExitCode::from(2);
        };
        return match run_step(name, params) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("step {name} failed: {e:#}");
                ExitCode::FAILURE
            }
        };
    }
    let scale = Scale(if cli.quick { 10 } else { 1 });
    match parent(&Bench::to_run(&cli.benches), scale) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(1),
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// The child's side: runs the step `name` with its JSON parameters.
fn run_step(name: &str, params: &str) -> Result<()> {
    match name {
        import::ImportStep::NAME => child::serve::<import::ImportStep>(params),
        snapshot::SnapshotStep::NAME => child::serve::<snapshot::SnapshotStep>(params),
        personalise::PersonaliseStep::NAME => child::serve::<personalise::PersonaliseStep>(params),
        smtp::SendStep::NAME => child::serve::<smtp::SendStep>(params),
        latency::LatencyStep::NAME => child::serve::<latency::LatencyStep>(params),
        dkim::DkimStep::NAME => child::serve::<dkim::DkimStep>(params),
        growth::GrowthStep::NAME => child::serve::<growth::GrowthStep>(params),
        unsubscribe::UnsubscribeStep::NAME => child::serve::<unsubscribe::UnsubscribeStep>(params),
        pg_snapshot::PgSnapshotStep::NAME => child::serve::<pg_snapshot::PgSnapshotStep>(params),
        pg_nodes::NodeStep::NAME => child::serve::<pg_nodes::NodeStep>(params),
        feeds::FeedsStep::NAME => child::serve::<feeds::FeedsStep>(params),
        api::ApiStep::NAME => child::serve::<api::ApiStep>(params),
        other => bail!("unknown step {other:?}"),
    }
}

/// A temporary folder removed when dropped.
struct TempDir(PathBuf);

impl TempDir {
    fn new() -> Result<Self> {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0);
        let p =
            std::env::temp_dir().join(format!("dispatch-bench-{}-{nanos:x}", std::process::id()));
        std::fs::create_dir_all(&p).with_context(|| format!("creating {}", p.display()))?;
        Ok(Self(p))
    }

    fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// The parent's side: runs `benches` in order, prints each row as it comes and the table at
/// the end. `Ok(false)` when a target was missed or a benchmark failed.
fn parent(benches: &[Bench], scale: Scale) -> Result<bool> {
    let tmp = TempDir::new()?;
    let rt = tokio::runtime::Runtime::new()?;
    let names: Vec<&str> = benches.iter().map(|b| b.name()).collect();
    eprintln!(
        "dispatch-bench: {} in {}{}",
        names.join(", "),
        tmp.path().display(),
        if scale.is_quick() {
            " (--quick: counts / 10)"
        } else {
            ""
        }
    );
    let mut rows: Vec<Row> = Vec::new();
    for &b in benches {
        let name = b.name();
        eprintln!("\n== {name}");
        let ctx = Ctx {
            top: tmp.path().to_owned(),
            dir: tmp.path().join(name),
            scale,
        };
        std::fs::create_dir_all(&ctx.dir)
            .with_context(|| format!("creating {}", ctx.dir.display()))?;
        let started = Instant::now();
        let result = match b {
            Bench::Import => rt.block_on(import::run(&ctx)),
            Bench::Snapshot => rt.block_on(snapshot::run(&ctx)),
            Bench::Personalise => rt.block_on(personalise::run(&ctx)),
            Bench::Smtp => rt.block_on(smtp::run(&ctx)),
            Bench::Latency => rt.block_on(latency::run(&ctx)),
            Bench::Dkim => rt.block_on(dkim::run(&ctx)),
            Bench::Crash => rt.block_on(crash::run(&ctx)),
            Bench::Growth => rt.block_on(growth::run(&ctx)),
            Bench::Rss => rt.block_on(rss::run(&ctx)),
            Bench::Unsubscribe => rt.block_on(unsubscribe::run(&ctx)),
            Bench::Bounces => rt.block_on(bounces::run(&ctx)),
            Bench::Feeds => rt.block_on(feeds::run(&ctx)),
            Bench::Api => rt.block_on(api::run(&ctx)),
            Bench::Console => rt.block_on(console::run(&ctx)),
            Bench::PgSnapshot => rt.block_on(pg_snapshot::run(&ctx)),
            Bench::PgSmtp => rt.block_on(pg_smtp::run(&ctx)),
            Bench::PgNodes => rt.block_on(pg_nodes::run(&ctx)),
        };
        match result {
            Ok(r) => {
                for row in &r {
                    table::print_line(row);
                }
                rows.extend(r);
            }
            Err(e) => {
                eprintln!("{name} failed: {e:#}");
                rows.push(Row::new(name, "-", format!("error: {e:#}"), Verdict::Fail));
            }
        }
        eprintln!(
            "({name}: {:.1} s including preparation)",
            started.elapsed().as_secs_f64()
        );
        // The import database is kept for the snapshot; everything else goes now.
        if b != Bench::Import {
            let _ = std::fs::remove_dir_all(&ctx.dir);
        }
        if b == Bench::Snapshot {
            let _ = std::fs::remove_dir_all(import::dir(tmp.path()));
        }
    }
    table::print_table(&rows, scale);
    Ok(rows.iter().all(|r| r.verdict != Verdict::Fail))
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory as _;

    use super::*;

    #[test]
    fn the_command_line_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn no_benchmark_named_runs_all_of_them_in_order() {
        assert_eq!(Bench::to_run(&[]), Bench::ALL);
        assert_eq!(Bench::to_run(&[Which::All]), Bench::ALL);
    }

    #[test]
    fn named_benchmarks_run_in_the_order_given_and_once() {
        let cli = Cli::try_parse_from(["dispatch-bench", "smtp", "import", "smtp", "--quick"])
            .expect("a valid command line");
        assert!(cli.quick);
        assert_eq!(Bench::to_run(&cli.benches), [Bench::Smtp, Bench::Import]);
        let cli = Cli::try_parse_from(["dispatch-bench", "rss", "all"]).expect("valid");
        assert_eq!(
            Bench::to_run(&cli.benches),
            [
                Bench::Rss,
                Bench::Import,
                Bench::Snapshot,
                Bench::Personalise,
                Bench::Smtp,
                Bench::Latency,
                Bench::Dkim,
                Bench::Crash,
                Bench::Growth,
                Bench::Unsubscribe,
                Bench::Bounces,
                Bench::Feeds,
                Bench::Api,
                Bench::Console,
                Bench::PgSnapshot,
                Bench::PgSmtp,
                Bench::PgNodes
            ]
        );
    }

    #[test]
    fn an_unknown_benchmark_is_a_usage_error() {
        let err = Cli::try_parse_from(["dispatch-bench", "smpt"]).expect_err("not a benchmark");
        assert_eq!(err.kind(), clap::error::ErrorKind::InvalidValue);
    }

    #[test]
    fn every_step_name_reaches_its_step() {
        // Parameters that are not JSON fail in the parsing of the named step, naming it;
        // a name no step has fails as unknown.
        for name in [
            import::ImportStep::NAME,
            snapshot::SnapshotStep::NAME,
            personalise::PersonaliseStep::NAME,
            smtp::SendStep::NAME,
            latency::LatencyStep::NAME,
            dkim::DkimStep::NAME,
            growth::GrowthStep::NAME,
            unsubscribe::UnsubscribeStep::NAME,
            pg_snapshot::PgSnapshotStep::NAME,
            pg_nodes::NodeStep::NAME,
            feeds::FeedsStep::NAME,
            api::ApiStep::NAME,
        ] {
            let err = run_step(name, "not json").expect_err("bad parameters");
            assert!(
                format!("{err:#}").contains(&format!("step {name} parameters")),
                "{name}: {err:#}"
            );
        }
        let err = run_step("rss", "{}").expect_err("no such step");
        assert!(format!("{err:#}").contains("unknown step"), "{err:#}");
    }
}
