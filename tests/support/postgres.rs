//! A throwaway PostgreSQL server for the tests: one cluster per test binary, started on first
//! use (`initdb` + `pg_ctl` in a temporary folder, listening only on a Unix socket there),
//! with a fresh database per test.
//!
//! PostgreSQL refuses to run as root, so as root (CI) the cluster runs as `nobody`. A small
//! watchdog process stops the cluster and deletes its folder once the test binary exits,
//! however it exits (a test binary has no destructor for statics, and may be killed).
//!
//! Where PostgreSQL is not installed, [`server`] follows the rule of `tools.rs`: a `SKIP`
//! notice and `None`, or a failure under `DISPATCH_REQUIRE_TOOLS=1`.
//!
//! Compiled twice, like `tools.rs`: into the integration tests as `support::postgres` and into
//! the library's unit tests as `crate::test_tools::postgres`.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU32, Ordering};

use super::tools::{REQUIRE_ENV, on_missing, required_by};

/// The test binary's cluster.
#[derive(Debug)]
pub(crate) struct Server {
    /// The folder holding the data directory and the socket.
    dir: PathBuf,
}

static SERVER: OnceLock<Result<Server, Missing>> = OnceLock::new();
static NEXT_DB: AtomicU32 = AtomicU32::new(0);

/// The PostgreSQL programs this needs were not found.
#[derive(Debug)]
struct Missing;

/// The cluster, started on first use. `None` after a `SKIP` notice when PostgreSQL is not
/// installed (a panic instead under `DISPATCH_REQUIRE_TOOLS=1`); a cluster that is installed
/// but fails to start is always a panic.
pub(crate) fn server() -> Option<&'static Server> {
    match SERVER.get_or_init(|| bin_dir().map(|bin| start(&bin)).ok_or(Missing)) {
        Ok(s) => Some(s),
        Err(Missing) => {
            let test = std::thread::current()
                .name()
                .unwrap_or("this test")
                .to_owned();
            // Prints the notice, or panics when tools are required.
            let _ = on_missing(
                &format!(
                    "{test}: PostgreSQL (initdb, pg_ctl) not installed (apt-get install postgresql)"
                ),
                required_by(std::env::var_os(REQUIRE_ENV).as_deref()),
                &mut std::io::stderr(),
            );
            None
        }
    }
}

impl Server {
    /// The URL of database `name` on this cluster.
    pub(crate) fn url(&self, name: &str) -> String {
        format!(
            "postgres://postgres@localhost/{name}?host={}",
            self.dir.display()
        )
    }

    /// Creates an empty database for one test and returns its URL.
    pub(crate) async fn fresh_database(&self) -> String {
        use sqlx::Connection as _;
        let name = format!(
            "dispatch_{}_{}",
            std::process::id(),
            NEXT_DB.fetch_add(1, Ordering::Relaxed)
        );
        let mut admin = sqlx::PgConnection::connect(&self.url("postgres"))
            .await
            .expect("connect to the test cluster");
        sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
            .execute(&mut admin)
            .await
            .expect("create a test database");
        let _ = admin.close().await;
        self.url(&name)
    }
}

/// Where `initdb` and `pg_ctl` are: `PATH`, else Debian's `/usr/lib/postgresql/<version>/bin`
/// (newest first), which is not on `PATH`.
fn bin_dir() -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    let mut dirs: Vec<PathBuf> = std::env::split_paths(&path).collect();
    let mut debian: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .map(|entries| {
            entries
                .filter_map(|e| e.ok().map(|e| e.path().join("bin")))
                .collect()
        })
        .unwrap_or_default();
    debian.sort_by_key(|p| {
        std::cmp::Reverse(
            p.parent()
                .and_then(|v| v.file_name())
                .and_then(|v| v.to_str())
                .and_then(|v| v.parse::<u32>().ok())
                .unwrap_or(0),
        )
    });
    dirs.extend(debian);
    dirs.into_iter()
        .find(|d| d.join("initdb").is_file() && d.join("pg_ctl").is_file())
}

/// Whether this process runs as root (PostgreSQL will not).
fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}

/// A command that runs `program` as a user PostgreSQL accepts.
fn as_postgres_user(program: &Path, root: bool) -> Command {
    if root {
        let mut c = Command::new("runuser");
        c.args(["-u", "nobody", "--"]).arg(program);
        c
    } else {
        Command::new(program)
    }
}

fn start(bin: &Path) -> Server {
    let root = is_root();
    let dir = std::env::temp_dir().join(format!(
        "dispatch-pg-{}-{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0)
    ));
    std::fs::create_dir_all(&dir).expect("create the cluster folder");
    if root {
        use std::os::unix::fs::PermissionsExt as _;
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o777))
            .expect("open the cluster folder to nobody");
    }
    // The watchdog first, so the folder goes even if starting fails half-way.
    watchdog(&dir);
    let data = dir.join("data");
    let run = |mut c: Command, what: &str| {
        let out = c
            .stdin(Stdio::null())
            .output()
            .unwrap_or_else(|e| panic!("{what}: {e}"));
        assert!(
            out.status.success(),
            "{what} failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    };
    let mut initdb = as_postgres_user(&bin.join("initdb"), root);
    initdb
        .arg("-D")
        .arg(&data)
        .args(["-U", "postgres", "-A", "trust", "-E", "UTF8", "--no-sync"])
        .args(["--locale=C.UTF-8", "--no-instructions"]);
    run(initdb, "initdb for the test cluster");
    let mut pg_ctl = as_postgres_user(&bin.join("pg_ctl"), root);
    // Durability settings off: a test cluster never outlives its test binary.
    pg_ctl
        .arg("-D")
        .arg(&data)
        .arg("-l")
        .arg(dir.join("log"))
        .args([
            "-w",
            "-o",
            &format!(
                "-k {} -c listen_addresses='' -c fsync=off -c synchronous_commit=off \
             -c full_page_writes=off -c max_connections=300",
                dir.display()
            ),
            "start",
        ]);
    run(pg_ctl, "starting the test cluster");
    Server { dir }
}

/// Stops the cluster in `dir` (an immediate shutdown) and deletes the folder when this
/// process is gone.
fn watchdog(dir: &Path) {
    let script = format!(
        "while kill -0 {pid} 2>/dev/null; do sleep 1; done; \
         pm=$(head -n 1 '{d}/data/postmaster.pid' 2>/dev/null); \
         [ -n \"$pm\" ] && kill -QUIT \"$pm\" 2>/dev/null; \
         for i in 1 2 3 4 5 6 7 8 9 10; do [ -e '{d}/data/postmaster.pid' ] || break; sleep 0.5; done; \
         rm -rf '{d}'",
        pid = std::process::id(),
        d = dir.display()
    );
    // Detached: nothing of ours to inherit, so the test harness never waits for it.
    let _ = Command::new("sh")
        .args(["-c", &script])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn();
}
