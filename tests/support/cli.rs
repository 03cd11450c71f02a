//! Drives the real `dispatch` binary against a SQLite file in a temporary directory.
//!
//! Every [`Cli`] owns a fresh [`TempDir`] that is the command's working directory, so a
//! `config/dispatch.toml` in the repository is never picked up, and `DISPATCH_DATABASE_PATH`
//! points into it. Inherited `DISPATCH_*` variables (including `DISPATCH_CONFIG`) and
//! `RUST_LOG` are removed so the developer's environment cannot change what a test sees.

use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use tempfile::TempDir;

/// The binary under test, built by Cargo for integration tests.
pub const BIN: &str = env!("CARGO_BIN_EXE_dispatch");

/// A sandbox for running `dispatch`: a temp directory, a database path, optional config.
pub struct Cli {
    dir: TempDir,
    db: PathBuf,
    config: Option<PathBuf>,
    env: Vec<(String, String)>,
}

impl Default for Cli {
    fn default() -> Self {
        Self::new()
    }
}

impl Cli {
    /// A fresh directory with `DISPATCH_DATABASE_PATH` = `<dir>/dispatch.db`.
    pub fn new() -> Self {
        let dir = tempfile::Builder::new()
            .prefix("dispatch-cli-")
            .tempdir()
            .expect("create temp dir");
        let db = dir.path().join("dispatch.db");
        Self {
            dir,
            db,
            config: None,
            env: Vec::new(),
        }
    }

    /// Passes `--config <path>` (relative paths are inside the temp dir) on every run.
    pub fn with_config(mut self, path: impl AsRef<Path>) -> Self {
        self.config = Some(self.path(path));
        self
    }

    /// Sets an extra environment variable on every run.
    pub fn with_env(mut self, key: &str, value: &str) -> Self {
        self.env.push((key.to_owned(), value.to_owned()));
        self
    }

    /// The temp directory (the command's working directory).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// The database file.
    pub fn db(&self) -> &Path {
        &self.db
    }

    /// `rel` inside the temp directory (an absolute path is returned as is).
    pub fn path(&self, rel: impl AsRef<Path>) -> PathBuf {
        self.dir.path().join(rel)
    }

    /// Writes a file inside the temp directory, creating folders; returns its path.
    pub fn write(&self, rel: impl AsRef<Path>, contents: impl AsRef<[u8]>) -> PathBuf {
        let p = self.path(rel);
        if let Some(parent) = p.parent() {
            std::fs::create_dir_all(parent).expect("create parent dir");
        }
        std::fs::write(&p, contents).expect("write test file");
        p
    }

    /// Reads a file inside the temp directory as UTF-8.
    pub fn read(&self, rel: impl AsRef<Path>) -> String {
        let p = self.path(rel);
        std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("read {}: {e}", p.display()))
    }

    /// The isolated command, without arguments: for tests that need to adjust it further.
    pub fn command(&self) -> Command {
        let mut cmd = Command::new(BIN);
        cmd.current_dir(self.dir.path());
        for (k, _) in std::env::vars_os() {
            if k.to_string_lossy().starts_with("DISPATCH_") {
                cmd.env_remove(&k);
            }
        }
        cmd.env_remove("RUST_LOG");
        cmd.env("DISPATCH_DATABASE_PATH", &self.db);
        // Plain output, no colours, regardless of the terminal the tests run in.
        cmd.env("NO_COLOR", "1");
        for (k, v) in &self.env {
            cmd.env(k, v);
        }
        if let Some(c) = &self.config {
            cmd.arg("--config").arg(c);
        }
        cmd
    }

    /// Runs `dispatch ARGS`.
    pub fn run<I, S>(&self, args: I) -> Output
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        self.command().args(args).output().expect("spawn dispatch")
    }

    /// Runs `dispatch ARGS`, asserts it succeeded, returns stdout.
    pub fn ok<I, S>(&self, args: I) -> String
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        let (args, out) = self.run_shown(args);
        assert!(
            out.status.success(),
            "`dispatch {args}` failed with {}\n{}",
            out.status,
            show(&out)
        );
        stdout(&out)
    }

    /// Runs `dispatch ARGS`, asserts it failed, returns stderr.
    pub fn fail<I, S>(&self, args: I) -> String
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        let (args, out) = self.run_shown(args);
        assert!(
            !out.status.success(),
            "`dispatch {args}` succeeded but should have failed\n{}",
            show(&out)
        );
        stderr(&out)
    }

    /// Runs `dispatch ARGS` (which should print JSON), asserts success, parses stdout.
    pub fn json<I, S>(&self, args: I) -> serde_json::Value
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        let out = self.ok(args);
        serde_json::from_str(&out).unwrap_or_else(|e| panic!("stdout is not JSON ({e}):\n{out}"))
    }

    fn run_shown<I, S>(&self, args: I) -> (String, Output)
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        let args: Vec<_> = args.into_iter().map(|a| a.as_ref().to_owned()).collect();
        let shown = args
            .iter()
            .map(|a| a.to_string_lossy().into_owned())
            .collect::<Vec<_>>()
            .join(" ");
        (shown, self.run(&args))
    }
}

/// A command's stdout as text.
pub fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A command's stderr as text.
pub fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// The exit code (panics if the process was killed by a signal).
pub fn code(out: &Output) -> i32 {
    out.status.code().expect("exited normally")
}

/// Both streams, for assertion messages.
pub fn show(out: &Output) -> String {
    format!(
        "--- stdout ---\n{}--- stderr ---\n{}",
        stdout(out),
        stderr(out)
    )
}

/// A path inside the repository (fixtures, sample files).
pub fn repo_path(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(rel)
}
