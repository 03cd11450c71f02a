//! aiosmtpd (`tests/interop/sink.py`), an SMTP server we did not write, as a relay that keeps
//! what it accepts: each message as `NNNN.eml` + `NNNN.rcpt` (MAIL FROM, then one recipient
//! per line) in a temporary folder, or only the recipients ([`Sink::start_counting`]).

use std::collections::BTreeMap;
use std::io::{BufRead as _, BufReader};
use std::process::{Child, Command, Stdio};

use super::cli::repo_path;
use super::{free_port, tools};

/// A running sink, stopped when dropped.
pub struct Sink {
    child: Child,
    dir: tempfile::TempDir,
    /// The SMTP port on 127.0.0.1.
    pub port: u16,
}

impl Sink {
    /// Starts the sink once it listens; `None` (with the tool check's notice) when aiosmtpd
    /// is missing and tools are not required.
    pub fn start() -> Option<Self> {
        Self::start_with(&[])
    }

    /// [`Self::start`], keeping only each message's recipients (`recipients.log`): for tests
    /// that send tens of thousands of messages and count who got them.
    #[allow(dead_code)] // not every test binary that has the sink counts
    pub fn start_counting() -> Option<Self> {
        Self::start_with(&["--recipients-only"])
    }

    fn start_with(args: &[&str]) -> Option<Self> {
        tools::require(tools::AIOSMTPD)?;
        let dir = tempfile::tempdir().unwrap();
        let port = free_port();
        let mut child = Command::new(tools::PYTHON)
            .arg(repo_path("tests/interop/sink.py"))
            .arg(port.to_string())
            .arg(dir.path())
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("start sink.py");
        let mut ready = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut ready)
            .unwrap();
        assert_eq!(ready.trim(), "READY", "sink.py did not start");
        Some(Self { child, dir, port })
    }

    /// Every recipient of every message accepted so far, once per message, sorted.
    pub fn recipients(&self) -> Vec<String> {
        let mut out = Vec::new();
        for e in std::fs::read_dir(self.dir.path()).unwrap().flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            if name == "recipients.log" {
                let text = std::fs::read_to_string(e.path()).unwrap();
                // A line still being written has no newline yet: not accepted yet.
                let complete = text.rfind('\n').map_or("", |end| &text[..end]);
                out.extend(complete.lines().map(str::to_owned));
                continue;
            }
            if !name.ends_with(".rcpt") {
                continue;
            }
            let text = std::fs::read_to_string(e.path()).unwrap();
            // The first line is MAIL FROM.
            out.extend(text.lines().skip(1).map(str::to_owned));
        }
        out.sort();
        out
    }

    /// How many messages each recipient got.
    pub fn copies(&self) -> BTreeMap<String, usize> {
        let mut copies = BTreeMap::new();
        for r in self.recipients() {
            *copies.entry(r).or_default() += 1;
        }
        copies
    }
}

impl Drop for Sink {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
