//! A stop signal that comes before the daemon has opened its database stops it cleanly.

mod support;

use std::io::Read;
use std::net::TcpListener;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use support::cli::Cli;

/// A "PostgreSQL server" that accepts connections and never answers keeps `dispatch run` in
/// its database open; SIGTERM then must end it with status 0, not kill it.
#[test]
fn sigterm_while_the_database_is_still_opening_exits_cleanly() {
    let silent = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = silent.local_addr().unwrap().port();
    let cli = Cli::new();
    let mut child = cli
        .command()
        .arg("run")
        .env(
            "DISPATCH_DATABASE_URL",
            format!("postgres://dispatch@127.0.0.1:{port}/dispatch"),
        )
        .env("DISPATCH_WEB_BIND", "127.0.0.1:0")
        .env("DISPATCH_CONSOLE_BIND", "127.0.0.1:0")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // The daemon is inside its database open once it has connected.
    let (_held, _) = silent.accept().unwrap();
    let st = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(st.success());
    let started = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if started.elapsed() > Duration::from_secs(60) {
            let _ = child.kill();
            panic!("dispatch run did not stop within 60 s of SIGTERM");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let mut err = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut err)
        .unwrap();
    assert_eq!(status.code(), Some(0), "killed instead of stopping: {err}");
    assert!(
        err.contains("stopped before the database was open"),
        "{err}"
    );
}
