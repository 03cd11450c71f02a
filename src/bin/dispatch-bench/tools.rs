//! The programs we did not write that the benchmarks measure against or with: Postfix's
//! `smtp-sink` (the receiving server) and `smtp-source` (the reference sender), `wrk` (the
//! HTTP load) and `openssl` (DKIM keys). The parent finds them and passes their paths to
//! the children in the step parameters.

use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result};

/// An external program a benchmark needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Tool {
    SmtpSink,
    SmtpSource,
    Wrk,
    Openssl,
    Valgrind,
}

impl Tool {
    fn name(self) -> &'static str {
        match self {
            Self::SmtpSink => "smtp-sink",
            Self::SmtpSource => "smtp-source",
            Self::Wrk => "wrk",
            Self::Openssl => "openssl",
            Self::Valgrind => "valgrind",
        }
    }

    /// Where Debian installs it: Postfix's test programs are in `/usr/sbin`, which is not on
    /// every user's `PATH`.
    fn usual_place(self) -> &'static str {
        match self {
            Self::SmtpSink => "/usr/sbin/smtp-sink",
            Self::SmtpSource => "/usr/sbin/smtp-source",
            Self::Wrk => "/usr/bin/wrk",
            Self::Openssl => "/usr/bin/openssl",
            Self::Valgrind => "/usr/bin/valgrind",
        }
    }

    /// The program's path: its usual place, else the first match on `PATH`.
    pub(crate) fn find(self) -> Option<PathBuf> {
        let usual = Path::new(self.usual_place());
        if usual.is_file() {
            return Some(usual.to_owned());
        }
        let path = std::env::var_os("PATH")?;
        std::env::split_paths(&path)
            .map(|dir| dir.join(self.name()))
            .find(|p| p.is_file())
    }
}

/// Finds every one of `tools`, or says which are missing (for the "skipped" row).
pub(crate) fn find_all<const N: usize>(tools: [Tool; N]) -> Result<[PathBuf; N], String> {
    let found = tools.map(Tool::find);
    let missing: Vec<&str> = tools
        .iter()
        .zip(&found)
        .filter(|(_, f)| f.is_none())
        .map(|(t, _)| t.name())
        .collect();
    if !missing.is_empty() {
        return Err(format!("needs {}", missing.join(" and ")));
    }
    Ok(found.map(Option::unwrap_or_default))
}

/// A process we started, killed by its own handle when dropped.
pub(crate) struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A free loopback port (a moment ago).
pub(crate) fn free_port() -> Result<u16> {
    let l = std::net::TcpListener::bind("127.0.0.1:0")?;
    Ok(l.local_addr()?.port())
}

/// Starts `smtp-sink` (at `path`) on a free loopback port and waits until it accepts
/// connections.
pub(crate) async fn start_sink(path: &Path) -> Result<(Killed, u16)> {
    start_sink_with(path, &[]).await
}

/// [`start_sink`] with `options` before the address (`-D dump-file`, for one).
pub(crate) async fn start_sink_with(path: &Path, options: &[&OsStr]) -> Result<(Killed, u16)> {
    let port = free_port()?;
    // smtp-sink insists on dropping privileges when started as root, and may not switch
    // users otherwise.
    let as_root = std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("Uid:"))
                .map(|u| u.split_whitespace().nth(1) == Some("0"))
        })
        .unwrap_or(false);
    let user: &[&str] = if as_root { &["-u", "root"] } else { &[] };
    let sink = Killed(
        Command::new(path)
            .args(user)
            .args(options)
            // A backlog of 1000: the sender's connections never wait for accept().
            .args([format!("127.0.0.1:{port}").as_str(), "1000"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .spawn()
            .context("starting smtp-sink")?,
    );
    let deadline = Instant::now() + Duration::from_secs(5);
    while tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .is_err()
    {
        anyhow::ensure!(Instant::now() < deadline, "smtp-sink did not start");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Ok((sink, port))
}
