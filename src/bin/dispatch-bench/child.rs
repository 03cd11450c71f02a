//! The child-process runner: each measured step runs in a fresh process of this binary, so
//! that its peak RSS and CPU time belong to that work alone (the parent's preparation, a
//! million-row CSV or a bulk load, would otherwise set the high-water mark).
//!
//! The protocol, typed at both ends by [`Step`]: the parent runs
//! `dispatch-bench --step NAME JSON` with the step's parameters serialised, the child runs
//! the step and prints one line `BENCH_RESULT {json}`, a [`Report`] of the step's output and
//! its own peak RSS and CPU time. Everything else the child prints goes to stderr.

use std::future::Future;
use std::process::{Command, Stdio};

use anyhow::{Context as _, Result, bail};
use serde::Serialize;
use serde::de::DeserializeOwned;

const RESULT_PREFIX: &str = "BENCH_RESULT ";

/// A measured step: its parameters are the implementing type, its result [`Step::Output`].
pub(crate) trait Step: Serialize + DeserializeOwned {
    /// The name after `--step`; `main` maps it back to the type.
    const NAME: &'static str;
    type Output: Serialize + DeserializeOwned;

    /// Does the measured work, in the child.
    fn run(self) -> impl Future<Output = Result<Self::Output>>;
}

/// What a child reports: the step's output and what the process used.
#[derive(Debug, serde::Deserialize, Serialize)]
pub(crate) struct Report<T> {
    pub(crate) output: T,
    /// Peak resident set size of the child (`VmHWM`), in MiB.
    pub(crate) rss_mb: f64,
    /// CPU time (user + system) of the child, in seconds: next to the wall time it shows
    /// whether a step was starved by other work on the machine.
    pub(crate) cpu_secs: f64,
}

/// The parent's side: runs `step` in a fresh process and returns its report.
pub(crate) fn spawn<S: Step>(step: &S) -> Result<Report<S::Output>> {
    let name = S::NAME;
    let params = serde_json::to_string(step).with_context(|| format!("step {name} parameters"))?;
    let exe = std::env::current_exe().context("finding this executable")?;
    let out = Command::new(exe)
        .arg("--step")
        .arg(name)
        .arg(params)
        .stdin(Stdio::null())
        .stderr(Stdio::inherit())
        .output()
        .with_context(|| format!("running step {name}"))?;
    if !out.status.success() {
        bail!("step {name} exited with {}", out.status);
    }
    let stdout = String::from_utf8_lossy(&out.stdout);
    let line = stdout
        .lines()
        .rev()
        .find_map(|l| l.strip_prefix(RESULT_PREFIX))
        .with_context(|| format!("step {name} printed no result"))?;
    serde_json::from_str(line).with_context(|| format!("step {name}: bad result {line:?}"))
}

/// The child's side: parses the parameters, runs the step on its own runtime and prints the
/// report line. The runtime is dropped before the RSS is read, so its buffers count.
pub(crate) fn serve<S: Step>(params: &str) -> Result<()> {
    let step: S = serde_json::from_str(params)
        .with_context(|| format!("step {} parameters {params:?}", S::NAME))?;
    // `DISPATCH_BENCH_LOG=dispatch::delivery=debug,…` shows where a step's time goes (the
    // recorder's commits, the claims, the writer's queue) on stderr.
    if let Ok(filter) = std::env::var("DISPATCH_BENCH_LOG") {
        let _ = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::new(filter))
            .with_writer(std::io::stderr)
            .try_init();
    }
    let rt = tokio::runtime::Runtime::new()?;
    let output = rt.block_on(step.run())?;
    drop(rt);
    let report = Report {
        output,
        rss_mb: peak_rss_kb()? as f64 / 1024.0,
        cpu_secs: cpu_secs()?,
    };
    println!("{RESULT_PREFIX}{}", serde_json::to_string(&report)?);
    Ok(())
}

/// This process's CPU time so far (user + system), in seconds.
pub(crate) fn cpu_secs() -> Result<f64> {
    let stat = std::fs::read_to_string("/proc/self/stat")?;
    let after = stat
        .rsplit_once(')')
        .map(|(_, a)| a)
        .context("bad /proc/self/stat")?;
    let fields: Vec<&str> = after.split_whitespace().collect();
    // Fields 14 and 15 of proc(5), utime and stime, in clock ticks (USER_HZ = 100 on Linux).
    let ticks = |i: usize| -> Result<f64> {
        Ok(fields
            .get(i)
            .context("short /proc/self/stat")?
            .parse::<f64>()?)
    };
    Ok((ticks(11)? + ticks(12)?) / 100.0)
}

/// This process's peak resident set size (`VmHWM`), in KiB.
fn peak_rss_kb() -> Result<u64> {
    let status = std::fs::read_to_string("/proc/self/status")?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .context("no VmHWM in /proc/self/status")
}
