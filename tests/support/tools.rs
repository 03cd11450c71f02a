//! The programs the tests run that this repository does not build (Postfix, dkimpy, aiosmtpd,
//! openssl…), and one rule for when one is missing: the test prints
//! `SKIP <test>: <tool> not installed (apt-get install <package>)` and passes, so it can run
//! on a laptop without the mail stack, unless `DISPATCH_REQUIRE_TOOLS=1` (which `.ci/run`
//! sets), when it fails with that sentence instead. A test asks before it starts:
//!
//! ```ignore
//! let Some(_) = tools::require(tools::DKIMPY) else { return };
//! ```
//!
//! This file is compiled twice: into every integration test binary as `support::tools`, and
//! into the library's unit tests as `crate::test_tools` (`src/test_tools.rs` includes it by
//! path, and tests it). So it uses nothing but `std`.

use std::ffi::OsStr;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// The variable that turns a missing tool into a failed test when it is `1`.
pub(crate) const REQUIRE_ENV: &str = "DISPATCH_REQUIRE_TOOLS";

/// Debian's Python, the one `apt-get install python3-…` adds modules to.
pub(crate) const PYTHON: &str = "/usr/bin/python3";

/// Something a test runs that this repository does not build.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Tool {
    probe: Probe,
    /// The Debian packages that provide it, for the notice.
    packages: &'static str,
}

#[derive(Debug, Clone, Copy)]
enum Probe {
    /// An executable of this name on `PATH`, or in the sbin directories (Postfix's tools
    /// live in `/usr/sbin`, which is not on an ordinary user's `PATH`).
    Program(&'static str),
    /// [`PYTHON`] running `import <these>` successfully.
    Python(&'static str),
}

impl Tool {
    /// An executable found by name.
    pub(crate) const fn program(name: &'static str, packages: &'static str) -> Self {
        Self {
            probe: Probe::Program(name),
            packages,
        }
    }

    /// [`PYTHON`] able to import `modules` (as written after `import`, e.g. `"dkim, nacl"`).
    pub(crate) const fn python(modules: &'static str, packages: &'static str) -> Self {
        Self {
            probe: Probe::Python(modules),
            packages,
        }
    }

    /// What the notice calls the tool.
    fn name(&self) -> String {
        match self.probe {
            Probe::Program(name) => name.to_owned(),
            Probe::Python(modules) => format!("{PYTHON} with `import {modules}`"),
        }
    }

    /// Where the tool is, if it is there.
    fn find(&self) -> Option<PathBuf> {
        match self.probe {
            Probe::Program(name) => find_program(name),
            Probe::Python(modules) => {
                let ok = Command::new(PYTHON)
                    .args(["-c", &format!("import {modules}")])
                    .stdin(Stdio::null())
                    .stdout(Stdio::null())
                    .stderr(Stdio::null())
                    .status()
                    .is_ok_and(|s| s.success());
                ok.then(|| PathBuf::from(PYTHON))
            }
        }
    }
}

pub(crate) const OPENSSL: Tool = Tool::program("openssl", "openssl");
pub(crate) const CURL: Tool = Tool::program("curl", "curl");
/// `kill`, to send SIGTERM to a child process (std can only SIGKILL).
pub(crate) const KILL: Tool = Tool::program("kill", "procps");
pub(crate) const POSTFIX: Tool = Tool::program("postfix", "postfix");
pub(crate) const SMTP_SINK: Tool = Tool::program("smtp-sink", "postfix");
pub(crate) const SMTP_SOURCE: Tool = Tool::program("smtp-source", "postfix");
pub(crate) const SPAMASSASSIN: Tool = Tool::program("spamassassin", "spamassassin");
pub(crate) const SWAKS: Tool = Tool::program("swaks", "swaks");
pub(crate) const WRK: Tool = Tool::program("wrk", "wrk");
/// Dovecot, an independent IMAP server (the bounce mailbox tests).
pub(crate) const DOVECOT: Tool = Tool::program("dovecot", "dovecot-imapd");
/// Python's `email` package, an independent MIME reader (part of Python itself).
pub(crate) const PYTHON_EMAIL: Tool = Tool::python("email.policy", "python3");
/// dkimpy, an independent DKIM verifier.
pub(crate) const DKIMPY: Tool = Tool::python("dkim", "python3-dkim");
/// dkimpy with PyNaCl, which it needs for Ed25519 signatures (RFC 8463).
pub(crate) const DKIMPY_ED25519: Tool = Tool::python("dkim, nacl", "python3-dkim python3-nacl");
/// aiosmtpd, an independent SMTP server with STARTTLS and AUTH.
pub(crate) const AIOSMTPD: Tool = Tool::python("aiosmtpd", "python3-aiosmtpd");

/// The tool's path. If it is missing: `None` after a `SKIP` notice on stderr (shown even
/// when the harness captures the test's output), or a panic when `DISPATCH_REQUIRE_TOOLS=1`.
pub(crate) fn require(tool: Tool) -> Option<PathBuf> {
    require_all(&[tool]).map(|mut paths| paths.remove(0))
}

/// [`require`] for several tools: their paths in order, or one notice naming every missing
/// tool.
pub(crate) fn require_all(tools: &[Tool]) -> Option<Vec<PathBuf>> {
    match find_all(tools) {
        Ok(paths) => Some(paths),
        // Straight to the process's stderr: the test harness captures `eprintln!` of a
        // passing test, and a skip the developer never sees looks like a pass.
        Err(missing) => on_missing(
            &missing.sentence(&current_test()),
            required_by(std::env::var_os(REQUIRE_ENV).as_deref()),
            &mut std::io::stderr(),
        ),
    }
}

/// Tools that are not installed.
#[derive(Debug)]
pub(crate) struct Missing(Vec<Tool>);

impl Missing {
    /// `<test>: <tool>, <tool> not installed (apt-get install <package> <package>)`.
    pub(crate) fn sentence(&self, test: &str) -> String {
        let names: Vec<String> = self.0.iter().map(Tool::name).collect();
        let mut packages: Vec<&str> = Vec::new();
        for p in self.0.iter().flat_map(|t| t.packages.split_whitespace()) {
            if !packages.contains(&p) {
                packages.push(p);
            }
        }
        format!(
            "{test}: {} not installed (apt-get install {})",
            names.join(", "),
            packages.join(" ")
        )
    }
}

/// Every tool's path, in order, or all the tools that are missing.
pub(crate) fn find_all(tools: &[Tool]) -> Result<Vec<PathBuf>, Missing> {
    let mut paths = Vec::new();
    let mut missing = Vec::new();
    for tool in tools {
        match tool.find() {
            Some(p) => paths.push(p),
            None => missing.push(*tool),
        }
    }
    if missing.is_empty() {
        Ok(paths)
    } else {
        Err(Missing(missing))
    }
}

/// What a test does about missing tools: skip with a notice written to `notices`, or fail
/// when they are required.
pub(crate) fn on_missing(
    sentence: &str,
    required: bool,
    notices: &mut dyn Write,
) -> Option<Vec<PathBuf>> {
    if required {
        panic!("{sentence}; {REQUIRE_ENV}=1 makes a missing tool a failure");
    }
    // A notice that cannot be written changes nothing about the skip.
    let _ = writeln!(notices, "SKIP {sentence}");
    None
}

/// Whether the value of [`REQUIRE_ENV`] asks for every tool: exactly `1`, as CI sets it.
pub(crate) fn required_by(value: Option<&OsStr>) -> bool {
    value == Some(OsStr::new("1"))
}

/// The running test's name: the test harness names each test's thread after it.
fn current_test() -> String {
    match std::thread::current().name() {
        Some(name) if name != "main" => name.to_owned(),
        _ => "this test".to_owned(),
    }
}

/// An executable file called `name` on `PATH` or in the sbin directories.
fn find_program(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/local/sbin", "/usr/sbin", "/sbin"].map(PathBuf::from))
        .map(|dir| dir.join(name))
        .find(|p| is_executable(p))
}

#[cfg(unix)]
fn is_executable(p: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt as _;
    p.metadata()
        .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

#[cfg(not(unix))]
fn is_executable(p: &Path) -> bool {
    p.is_file()
}
