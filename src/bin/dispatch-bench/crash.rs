//! `crash`: what a crash repeats. The real `dispatch send digest` sends a 20,000-reader digest
//! of about 30 KB per message at full speed (no rate cap) over 8 connections to Postfix's
//! `smtp-sink`; it is killed with SIGKILL part-way, and `dispatch editions resume` runs at
//! once.
//!
//! Target: every reader has the edition, nobody else got mail, the edition ends `sent`, and
//! the readers who got it twice are at most `[smtp] connections` (8): a connection may have
//! one message at the relay whose outcome is not committed, the one being sent (see
//! `dispatch::delivery`). Duplicates are counted at the relay, from `smtp-sink -D`'s dump of
//! every transaction it accepted, never from our own rows. The kill lands at a quarter, a half
//! and three quarters of the readers (three fresh databases); the row reports the worst.
//!
//! No child step of this binary: the measured work is the `dispatch` binary itself, found
//! next to this one (`cargo build --release` builds both). This process starts the sink,
//! watches the dump, kills and resumes.

use std::collections::HashMap;
use std::ffi::OsStr;
use std::io::Read as _;
use std::os::unix::process::ExitStatusExt as _;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, bail};
use memchr::memmem;

use dispatch::config::LogLevel;
use dispatch::store::{DeliveryStatus, EditionStatus, Store};

use crate::Ctx;
use crate::setup::{LIST, Language, bench_config, prepare_readers};
use crate::table::{Row, Verdict, thousands};
use crate::tools::{self, Tool};

/// Readers at full scale.
const READERS: u64 = 20_000;
/// Where the kills land: after this share of the readers arrived at the relay.
const KILL_AT: [f64; 3] = [0.25, 0.5, 0.75];
/// How often the dump is read while waiting for the kill point.
const POLL: Duration = Duration::from_millis(10);
/// Time for the sink to write out what a process handed it before it ended: the dump is
/// counted after this.
const SETTLE: Duration = Duration::from_millis(300);

/// What one kill and resume came to, counted at the relay.
#[derive(Debug, Clone)]
struct Run {
    /// Messages the relay had accepted when the process died.
    received_at_kill: u64,
    /// What our database recorded sent, and held leased, at that moment (for the story, not
    /// the verdict).
    recorded_at_kill: i64,
    leased_at_kill: i64,
    /// Copies beyond the first, summed over readers.
    duplicates: u64,
    /// Readers who got nothing, and recipients who are not readers.
    missing: u64,
    strangers: u64,
    /// Whether the edition ended `sent` with nothing left queued.
    finished: bool,
    /// Seconds from starting `editions resume` to the first message it delivered (`None`
    /// when it delivered none), and to its exit.
    first_secs: Option<f64>,
    resume_secs: f64,
}

pub(crate) async fn run(ctx: &Ctx) -> Result<Vec<Row>> {
    let [sink] = match tools::find_all([Tool::SmtpSink]) {
        Ok(paths) => paths,
        Err(why) => return Ok(Row::skipped("crash", &why)),
    };
    let dispatch = dispatch_binary()?;
    let n = ctx.scale.count(READERS);
    let config = bench_config(Path::new("unused.db"), Language::English, Some(25));
    let (connections, lease_secs) = (config.smtp.connections, config.sending.lease_secs);
    let bound = u64::from(connections);
    eprintln!("killing {}", dispatch.display());
    let mut runs = Vec::new();
    for (i, share) in KILL_AT.iter().enumerate() {
        let kill_at = (n as f64 * share).round() as u64;
        let dir = ctx.dir.join(format!("run{i}"));
        std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        let r = kill_and_resume(&dispatch, &sink, &dir, n, kill_at, ctx.scale.secs(120.0))
            .await
            .with_context(|| format!("the kill after {} messages", thousands(kill_at as f64)));
        // Each dump holds every message (600 MB at full scale): gone before the next run.
        let _ = std::fs::remove_dir_all(&dir);
        let r = r?;
        eprintln!(
            "killed after {} received ({} recorded sent, {} leased); resume: first message after {}, done in {:.1} s; duplicates {} (bound {bound}); missing {}, strangers {}, edition {}",
            thousands(r.received_at_kill as f64),
            thousands(r.recorded_at_kill as f64),
            r.leased_at_kill,
            r.first_secs.map_or("-".into(), |s| format!("{s:.2} s")),
            r.resume_secs,
            r.duplicates,
            r.missing,
            r.strangers,
            if r.finished { "sent" } else { "NOT finished" },
        );
        runs.push(r);
    }
    let worst = runs.iter().map(|r| r.duplicates).max().unwrap_or(0);
    let complete = runs
        .iter()
        .all(|r| r.missing == 0 && r.strangers == 0 && r.finished);
    let list = |f: fn(&Run) -> String| runs.iter().map(f).collect::<Vec<_>>().join("/");
    Ok(vec![
        Row::new(
            "crash",
            format!("≤ {bound} duplicates (1 per conn, {connections} conns), all readers"),
            format!(
                "max {worst} ({} after {} received; {} readers{})",
                list(|r| r.duplicates.to_string()),
                list(|r| thousands(r.received_at_kill as f64)),
                thousands(n as f64),
                if complete {
                    ", every one got it"
                } else {
                    ", SOME GOT NOTHING or the edition did not finish"
                }
            ),
            Verdict::of(worst <= bound && complete),
        ),
        Row::info(
            "crash resume",
            format!(
                "1st message ≤ {} s after `editions resume` started (leases: {lease_secs} s); done in ≤ {:.1} s",
                runs.iter()
                    .filter_map(|r| r.first_secs)
                    .reduce(f64::max)
                    .map_or("-".into(), |s| format!("{s:.2}")),
                runs.iter().map(|r| r.resume_secs).fold(0.0, f64::max)
            ),
        ),
    ])
}

/// The `dispatch` binary built with this one (`target/<profile>/dispatch`).
fn dispatch_binary() -> Result<PathBuf> {
    let me = std::env::current_exe().context("finding this executable")?;
    let path = me.with_file_name("dispatch");
    if !path.is_file() {
        bail!(
            "{} not found: build it with `cargo build --release` (the crash benchmark kills the real binary)",
            path.display()
        );
    }
    Ok(path)
}

/// One fresh database of `n` readers: `send digest` killed once `kill_at` messages reached the
/// sink, then `editions resume`, with at most `limit_secs` for each.
async fn kill_and_resume(
    dispatch: &Path,
    sink: &Path,
    dir: &Path,
    n: u64,
    kill_at: u64,
    limit_secs: f64,
) -> Result<Run> {
    let db = prepare_readers(dir, n, &[LIST]).await?;
    let dump_path = dir.join("dump");
    let (_sink, port) = tools::start_sink_with(sink, &[OsStr::new("-D"), dump_path.as_os_str()])
        .await
        .context("starting smtp-sink with a dump file")?;
    // The smtp benchmark's configuration, as the binary reads it from a file.
    let mut config = bench_config(&db, Language::English, Some(port));
    config.log.level = LogLevel::parse("warn").map_err(anyhow::Error::msg)?;
    let config_path = dir.join("dispatch.toml");
    std::fs::write(&config_path, toml::to_string(&config)?)
        .with_context(|| format!("writing {}", config_path.display()))?;
    let limit = Duration::from_secs_f64(limit_secs.max(10.0));

    let mut dump = Dump::new(dump_path);
    let log = dir.join("send.log");
    let mut send = command(dispatch, &config_path, dir, &log)?
        .args(["send", "digest", LIST])
        .spawn()
        .context("starting dispatch send digest")?;
    let started = Instant::now();
    while dump.update()? < kill_at {
        if let Some(status) = send.try_wait()? {
            bail!(
                "dispatch send digest ended ({status}) after {} messages, before the kill:\n{}",
                dump.messages,
                tail(&log)
            );
        }
        if started.elapsed() > limit {
            bail!(
                "only {} messages in {limit:?}:\n{}",
                dump.messages,
                tail(&log)
            );
        }
        tokio::time::sleep(POLL).await;
    }
    // SIGKILL: no handler runs, nothing is committed or given back.
    send.start_kill().context("killing dispatch")?;
    let status = send.wait().await?;
    anyhow::ensure!(
        status.signal() == Some(9),
        "dispatch was not killed by SIGKILL ({status})"
    );
    tokio::time::sleep(SETTLE).await;
    let received_at_kill = dump.update()?;

    let store = Store::open(&db).await?;
    let edition = store
        .editions(None, 1)
        .await?
        .first()
        .map(|e| e.id)
        .context("send digest recorded no edition")?;
    let counts = store.delivery_counts(edition).await?;
    let count = |s| counts.get(&s).copied().unwrap_or(0);
    let (recorded_at_kill, leased_at_kill) =
        (count(DeliveryStatus::Sent), count(DeliveryStatus::Sending));
    store.close().await;

    let log = dir.join("resume.log");
    let t = Instant::now();
    let mut resume = command(dispatch, &config_path, dir, &log)?
        .args(["editions", "resume", &edition.to_string()])
        .spawn()
        .context("starting dispatch editions resume")?;
    // Watching the dump meanwhile: how soon the first message after the crash arrives shows
    // that nothing waited for the dead process's leases to run out.
    let mut first_secs = None;
    let status = loop {
        if let Some(status) = resume.try_wait()? {
            break status;
        }
        if first_secs.is_none() && dump.update()? > received_at_kill {
            first_secs = Some(t.elapsed().as_secs_f64());
        }
        if t.elapsed() > limit {
            bail!(
                "editions resume did not finish in {limit:?}:\n{}",
                tail(&log)
            );
        }
        tokio::time::sleep(POLL).await;
    };
    let resume_secs = t.elapsed().as_secs_f64();
    anyhow::ensure!(
        status.success(),
        "editions resume failed ({status}):\n{}",
        tail(&log)
    );
    tokio::time::sleep(SETTLE).await;
    if dump.update()? > received_at_kill {
        first_secs.get_or_insert(resume_secs);
    }

    let store = Store::open(&db).await?;
    let finished = store.edition(edition).await?.status == EditionStatus::Sent
        && store.pending_deliveries(Some(edition)).await? == 0;
    store.close().await;
    let (duplicates, missing, strangers) = dump.against(n);
    Ok(Run {
        received_at_kill,
        recorded_at_kill,
        leased_at_kill,
        duplicates,
        missing,
        strangers,
        finished,
        first_secs,
        resume_secs,
    })
}

/// `dispatch --config CONFIG` in `dir`, its output to `log`, with no `DISPATCH_*` or `RUST_LOG`
/// of ours changing what it does.
fn command(
    dispatch: &Path,
    config: &Path,
    dir: &Path,
    log: &Path,
) -> Result<tokio::process::Command> {
    let out = std::fs::File::create(log).with_context(|| format!("creating {}", log.display()))?;
    let mut c = tokio::process::Command::new(dispatch);
    c.arg("--config")
        .arg(config)
        .current_dir(dir)
        .stdin(Stdio::null())
        .stdout(out.try_clone()?)
        .stderr(out)
        .kill_on_drop(true);
    for (k, _) in std::env::vars_os() {
        if k.to_str()
            .is_some_and(|k| k.starts_with("DISPATCH_") || k == "RUST_LOG")
        {
            c.env_remove(k);
        }
    }
    Ok(c)
}

/// The last lines of a log, for an error.
fn tail(log: &Path) -> String {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(20)..].join("\n")
}

/// The address of reader `i` as the benchmark data has it (`setup::bulk_subscribers`).
fn reader(i: u64) -> String {
    format!("reader{i}@example{}.org", i % 97)
}

/// The line `smtp-sink` writes for each recipient of a transaction it accepted (see "DUMP FILE
/// FORMAT" in smtp-sink(1)); never the first line of a message, so it follows a newline. The
/// format does not delimit messages, so the line is looked for anywhere: our digests never
/// carry it, and one that did would show as a recipient who is not a reader.
const RCPT: &[u8] = b"\nX-Rcpt-Args: ";

/// Messages per recipient in `smtp-sink`'s dump (`-D`), read as it grows. The sink writes
/// only transactions it accepted (one cut off by the kill is not there), so a count is what
/// the relay took, whatever our database says.
struct Dump {
    path: PathBuf,
    file: Option<std::fs::File>,
    /// Read but not yet scanned: an `RCPT` line may straddle two reads.
    pending: Vec<u8>,
    per_recipient: HashMap<String, u64>,
    messages: u64,
}

impl Dump {
    fn new(path: PathBuf) -> Self {
        Self {
            path,
            file: None,
            pending: Vec::new(),
            per_recipient: HashMap::new(),
            messages: 0,
        }
    }

    /// Reads what was appended since the last call; returns the messages so far.
    fn update(&mut self) -> Result<u64> {
        if self.file.is_none() {
            match std::fs::File::open(&self.path) {
                Ok(f) => self.file = Some(f),
                // The sink creates the file with its first message.
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(self.messages),
                Err(e) => {
                    return Err(e).with_context(|| format!("opening {}", self.path.display()));
                }
            }
        }
        let Some(mut file) = self.file.take() else {
            return Ok(self.messages);
        };
        let mut chunk = vec![0; 1 << 20];
        let read = loop {
            match file.read(&mut chunk) {
                Ok(0) => break Ok(()),
                Ok(got) => self.feed(&chunk[..got]),
                Err(e) => break Err(e),
            }
        };
        self.file = Some(file);
        read.with_context(|| format!("reading {}", self.path.display()))?;
        Ok(self.messages)
    }

    /// Scans `bytes`, the next part of the dump, counting each complete `RCPT` line.
    fn feed(&mut self, bytes: &[u8]) {
        self.pending.extend_from_slice(bytes);
        let mut pos = 0;
        let keep_from = loop {
            let Some(at) = memmem::find(&self.pending[pos..], RCPT) else {
                // The tail may be the start of a line still being written.
                break self.pending.len().saturating_sub(RCPT.len() - 1).max(pos);
            };
            let start = pos + at + RCPT.len();
            let Some(len) = memchr::memchr(b'\n', &self.pending[start..]) else {
                break pos + at;
            };
            let line = &self.pending[start..start + len];
            // `<address>`, perhaps followed by RCPT parameters.
            let address = line
                .strip_prefix(b"<")
                .and_then(|l| l.split(|b| *b == b'>').next())
                .unwrap_or(line);
            *self
                .per_recipient
                .entry(String::from_utf8_lossy(address).into_owned())
                .or_insert(0) += 1;
            self.messages += 1;
            pos = start + len;
        };
        self.pending.drain(..keep_from);
    }

    /// Against readers `1..=n`: (copies beyond the first, readers who got nothing,
    /// recipients who are not readers).
    fn against(&self, n: u64) -> (u64, u64, u64) {
        let mut duplicates = 0;
        let mut missing = 0;
        for i in 1..=n {
            match self.per_recipient.get(&reader(i)) {
                Some(c) => duplicates += c - 1,
                None => missing += 1,
            }
        }
        let readers = n - missing;
        let strangers = self.per_recipient.len() as u64 - readers;
        (duplicates, missing, strangers)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_binary_reads_the_smtp_benchmarks_configuration() {
        let mut config = bench_config(Path::new("/tmp/x/send.db"), Language::English, Some(2525));
        config.log.level = LogLevel::parse("warn").expect("a filter");
        let text = toml::to_string(&config).expect("serialisable");
        let back = dispatch::config::Config::from_parts("written", &text, &Default::default())
            .expect("valid");
        assert_eq!(back, config);
    }

    /// Two messages as smtp-sink dumps them, the second to the same reader.
    fn dump_text() -> Vec<u8> {
        let message = |to: &str| {
            format!(
                "X-Client-Addr: 127.0.0.1\nX-Client-Proto: ESMTP\nX-Helo-Args: news.example.com\n\
                 X-Mail-Args: <bounces@news.example.com>\nX-Rcpt-Args: <{to}>\n\
                 Received: from news.example.com ([127.0.0.1])\n\tby smtp-sink (smtp-sink) with ESMTP id 1;\n\
                 \tTue,  1 Dec 2026 11:22:36 +0000 (UTC)\nSubject: Today\nTo: <{to}>\n\nToday's stories.\n\n"
            )
        };
        [
            message(&reader(1)),
            message(&reader(2)),
            message(&reader(1)),
        ]
        .concat()
        .into_bytes()
    }

    #[test]
    fn the_dump_is_counted_per_recipient_wherever_the_reads_split_it() {
        let text = dump_text();
        for split in 0..text.len() {
            let mut d = Dump::new(PathBuf::new());
            d.feed(&text[..split]);
            d.feed(&text[split..]);
            assert_eq!(d.messages, 3, "split at {split}");
            assert_eq!(
                d.per_recipient.get(&reader(1)),
                Some(&2),
                "split at {split}"
            );
            assert_eq!(
                d.per_recipient.get(&reader(2)),
                Some(&1),
                "split at {split}"
            );
            assert!(d.pending.len() < RCPT.len(), "split at {split}");
        }
    }

    #[test]
    fn duplicates_missing_readers_and_strangers_are_told_apart() {
        let mut d = Dump::new(PathBuf::new());
        d.feed(&dump_text());
        d.feed(b"X-Client-Addr: 127.0.0.1\nX-Rcpt-Args: <someone@example.org>\n\n");
        // Readers 1..=3: reader 1 twice, reader 3 nothing, someone@ is no reader.
        assert_eq!(d.against(3), (1, 1, 1));
    }

    #[test]
    fn the_dump_is_read_as_it_grows() {
        let dir = tempfile::tempdir().expect("a temporary folder");
        let path = dir.path().join("dump");
        let mut d = Dump::new(path.clone());
        assert_eq!(d.update().expect("no file yet is no message"), 0);
        let text = dump_text();
        let (a, b) = text.split_at(text.len() / 2);
        std::fs::write(&path, a).expect("write");
        let first = d.update().expect("read");
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .expect("open");
        std::io::Write::write_all(&mut f, b).expect("append");
        assert!(first < 3);
        assert_eq!(d.update().expect("read"), 3);
    }
}
