//! The results: one [`Row`] per measured figure, printed as a line when it is measured and
//! in the Markdown table at the end, and the number formats every benchmark shares.

use chrono::Utc;

use crate::Scale;

/// Whether a figure met its target.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Verdict {
    Pass,
    Fail,
    /// No target: the figure is there to explain the others.
    Info,
}

impl Verdict {
    /// `Pass` when `met`, else `Fail`.
    pub(crate) fn of(met: bool) -> Self {
        if met { Self::Pass } else { Self::Fail }
    }

    fn as_str(self) -> &'static str {
        match self {
            Self::Pass => "pass",
            Self::Fail => "FAIL",
            Self::Info => "-",
        }
    }
}

/// One line of the final table.
#[derive(Debug, Clone)]
pub(crate) struct Row {
    pub(crate) bench: String,
    pub(crate) target: String,
    pub(crate) measured: String,
    pub(crate) verdict: Verdict,
}

impl Row {
    pub(crate) fn new(
        bench: impl Into<String>,
        target: impl Into<String>,
        measured: impl Into<String>,
        verdict: Verdict,
    ) -> Self {
        Self {
            bench: bench.into(),
            target: target.into(),
            measured: measured.into(),
            verdict,
        }
    }

    /// A figure without a target.
    pub(crate) fn info(bench: impl Into<String>, measured: impl Into<String>) -> Self {
        Self::new(bench, "-", measured, Verdict::Info)
    }

    /// The one row of a benchmark that could not run because a tool is missing.
    pub(crate) fn skipped(bench: &str, why: &str) -> Vec<Self> {
        vec![Self::info(bench, format!("skipped: {why}"))]
    }
}

/// The row as a line on stdout, when it is measured.
pub(crate) fn print_line(row: &Row) {
    println!(
        "{:<12} {:<34} target {:<20} {}",
        row.bench,
        row.measured,
        row.target,
        row.verdict.as_str()
    );
}

/// The final Markdown table, with the machine it ran on.
pub(crate) fn print_table(rows: &[Row], scale: Scale) {
    println!();
    if scale.is_quick() {
        println!(
            "_--quick: every count divided by 10 and time targets with it; not a verdict on the real targets._\n"
        );
    }
    println!("| benchmark | target | measured | pass/fail |");
    println!("|---|---|---|---|");
    for r in rows {
        println!(
            "| {} | {} | {} | {} |",
            r.bench,
            r.target,
            r.measured,
            r.verdict.as_str()
        );
    }
    let (cores, load) = machine();
    println!(
        "\n_{cores} cores, load average {load} at the end; {} build; {}._",
        if cfg!(debug_assertions) {
            "debug (dev profile)"
        } else {
            "release"
        },
        Utc::now().format("%Y-%m-%d %H:%M UTC")
    );
}

/// The number of cores and the load average: the table is only comparable with these.
fn machine() -> (usize, String) {
    let cores = std::thread::available_parallelism()
        .map(std::num::NonZero::get)
        .unwrap_or(1);
    let load = std::fs::read_to_string("/proc/loadavg")
        .ok()
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|| "?".into());
    (cores, load)
}

/// `n` rounded, with thousands separated: `1,234,567`.
pub(crate) fn thousands(n: f64) -> String {
    let s = format!("{n:.0}");
    let (sign, digits) = s.strip_prefix('-').map_or(("", s.as_str()), |d| ("-", d));
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    format!("{sign}{out}")
}

/// A ratio as every row shows it: three decimals, so that one just under a target reads as
/// such (`0.797×`, where two decimals would print `0.80`).
pub(crate) fn ratio(x: f64) -> String {
    format!("{x:.3}×")
}

/// `count / secs`, a rate per second.
pub(crate) fn per_sec(count: u64, secs: f64) -> f64 {
    count as f64 / secs
}

/// Bytes as KiB with one decimal (`30.1 KB`, as the rows have always said).
pub(crate) fn kb(bytes: f64) -> String {
    format!("{:.1} KB", bytes / 1024.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thousands_groups_digits_and_keeps_the_sign() {
        assert_eq!(thousands(0.0), "0");
        assert_eq!(thousands(999.4), "999");
        assert_eq!(thousands(1000.0), "1,000");
        assert_eq!(thousands(1_234_567.0), "1,234,567");
        assert_eq!(thousands(-12_345.0), "-12,345");
    }

    #[test]
    fn ratios_show_three_decimals() {
        assert_eq!(ratio(0.7996), "0.800×");
        assert_eq!(ratio(0.79949), "0.799×");
        assert_eq!(ratio(1.0), "1.000×");
    }
}
