//! A throwaway Postfix for the latency benchmark: a relay that offers CHUNKING (Postfix ≥ 3.4
//! does), on a loopback port, everything under one folder, every accepted message thrown
//! away by the `discard` transport once queued (the benchmark measures the SMTP server, not
//! delivery). Started as `tests/interop/run.sh` starts its own: it needs root (the master
//! binds and drops to `mail_owner`), and the system's `/etc/postfix` is never touched.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, bail};

/// Why a throwaway Postfix cannot run here, if it cannot: the row is then skipped.
pub(crate) fn unavailable() -> Option<String> {
    if !Path::new("/usr/sbin/postfix").is_file() {
        return Some("needs postfix".into());
    }
    let uid = std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("Uid:"))
                .and_then(|u| u.split_whitespace().nth(1).map(str::to_owned))
        });
    if uid.as_deref() != Some("0") {
        return Some("starting a Postfix instance needs root".into());
    }
    let has = |db: &str, name: &str| {
        Command::new("getent")
            .args([db, name])
            .stdout(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    };
    if !has("passwd", "postfix") || !has("group", "postdrop") {
        return Some("no postfix user or postdrop group".into());
    }
    None
}

/// A running instance; stopped (and its folder left to the caller's cleanup) when dropped.
pub(crate) struct Postfix {
    conf: PathBuf,
    dir: PathBuf,
    pub(crate) port: u16,
}

impl Postfix {
    /// Starts an instance under `dir` (created) listening on a free loopback port.
    pub(crate) async fn start(dir: &Path) -> Result<Self> {
        let port = crate::tools::free_port()?;
        let conf = dir.join("conf");
        for d in [&conf, &dir.join("queue"), &dir.join("data")] {
            std::fs::create_dir_all(d).with_context(|| format!("creating {}", d.display()))?;
        }
        let st = Command::new("chown")
            .arg("postfix")
            .arg(dir.join("data"))
            .status()?;
        anyhow::ensure!(st.success(), "chown postfix {}", dir.join("data").display());
        std::fs::write(conf.join("main.cf"), main_cf(dir))?;
        std::fs::write(conf.join("master.cf"), master_cf(port))?;
        let instance = Self {
            conf,
            dir: dir.to_owned(),
            port,
        };
        instance.postfix("check")?;
        instance.postfix("start")?;
        let deadline = Instant::now() + Duration::from_secs(20);
        while tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_err()
        {
            if Instant::now() > deadline {
                bail!("postfix did not listen: {}", instance.log_tail());
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        Ok(instance)
    }

    fn postfix(&self, what: &str) -> Result<()> {
        let out = Command::new("/usr/sbin/postfix")
            .arg("-c")
            .arg(&self.conf)
            .arg(what)
            .stdin(Stdio::null())
            .output()
            .with_context(|| format!("running postfix {what}"))?;
        if !out.status.success() {
            bail!(
                "postfix {what}: {} {}",
                String::from_utf8_lossy(&out.stderr).trim(),
                self.log_tail()
            );
        }
        Ok(())
    }

    fn log_tail(&self) -> String {
        let log = std::fs::read_to_string(self.dir.join("maillog")).unwrap_or_default();
        let lines: Vec<&str> = log.lines().collect();
        lines[lines.len().saturating_sub(3)..].join(" / ")
    }

    fn master_pid(&self) -> Option<u32> {
        std::fs::read_to_string(self.dir.join("queue/pid/master.pid"))
            .ok()?
            .trim()
            .parse()
            .ok()
    }
}

impl Drop for Postfix {
    fn drop(&mut self) {
        let pid = self.master_pid();
        if self.postfix("stop").is_err() {
            let _ = self.postfix("abort");
        }
        // `stop` returns before the master has exited; its children go with it.
        let gone = |pid: u32| !Path::new(&format!("/proc/{pid}")).exists();
        if let Some(pid) = pid {
            let deadline = Instant::now() + Duration::from_secs(10);
            while !gone(pid) && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(100));
            }
            if !gone(pid) {
                let _ = self.postfix("abort");
            }
        }
    }
}

fn main_cf(dir: &Path) -> String {
    let dir = dir.display();
    format!(
        "# A throwaway Postfix for dispatch-bench: loopback only, everything under {dir}.
compatibility_level = 3.6
queue_directory = {dir}/queue
data_directory = {dir}/data
mail_owner = postfix
setgid_group = postdrop
myhostname = relay.bench.test
mydomain = bench.test
myorigin = $myhostname
inet_interfaces = loopback-only
inet_protocols = ipv4
mynetworks = 127.0.0.0/8
smtpd_relay_restrictions = permit_mynetworks, reject
# No client host name look-ups: loopback, and no DNS in the measurement.
smtpd_peername_lookup = no
mydestination =
local_recipient_maps =
local_transport = error:local delivery is disabled in this instance
alias_maps =
alias_database =
# Queued, then thrown away.
default_transport = discard:benchmark
relay_transport = discard:benchmark
notify_classes =
biff = no
maillog_file = {dir}/maillog
# Postfix writes its log only under these prefixes.
maillog_file_prefixes = {dir}
syslog_name = dispatch-bench
"
    )
}

fn master_cf(port: u16) -> String {
    format!(
        "# service type private unpriv chroot wakeup maxproc command
127.0.0.1:{port} inet n - n - - smtpd
pickup unix n - n 60 1 pickup
cleanup unix n - n - 0 cleanup
qmgr unix n - n 300 1 qmgr
rewrite unix - - n - - trivial-rewrite
bounce unix - - n - 0 bounce
defer unix - - n - 0 bounce
trace unix - - n - 0 bounce
verify unix - - n - 1 verify
flush unix n - n 1000? 0 flush
proxymap unix - - n - - proxymap
smtp unix - - n - - smtp
relay unix - - n - - smtp
showq unix n - n - - showq
error unix - - n - - error
retry unix - - n - - error
discard unix - - n - - discard
anvil unix - - n - 1 anvil
scache unix - - n - 1 scache
postlog unix-dgram n - n - 1 postlogd
"
    )
}
