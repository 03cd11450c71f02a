//! The real binary at the edges of its configuration: values that used to pass the checks and
//! panic later, a database path that is a folder, and log output that is not a terminal.

mod support;

use std::process::{Command, Stdio};

use support::cli::{BIN, Cli, code, show, stderr};

/// Values that validated and then panicked (exit 101) in `status`, `preview` or `send digest`
/// are refused when the config is loaded, from the file and from the environment, with the
/// key's name; no command runs and nothing is created.
#[test]
fn values_that_used_to_panic_are_refused_at_load_by_every_command() {
    let cases = [
        (
            "schedule",
            "max_lateness",
            "\"99999999999999d\"",
            "99999999999999d",
        ),
        ("digest", "first_window_hours", "4294967295", "4294967295"),
        (
            "sending",
            "lease_secs",
            "9223372036854775807",
            "9223372036854775807",
        ),
    ];
    let commands: [&[&str]; 3] = [
        &["status"],
        &["preview", "daily"],
        &["send", "digest", "daily"],
    ];
    for (section, key, in_file, in_env) in cases {
        let name = format!("[{section}] {key}");
        let var = format!("DISPATCH_{section}_{key}").to_uppercase();
        for args in commands {
            let cli = Cli::new();
            let path = cli.write("c.toml", format!("[{section}]\n{key} = {in_file}\n"));
            let out = cli
                .command()
                .arg("--config")
                .arg(&path)
                .args(args)
                .output()
                .unwrap();
            assert_eq!(code(&out), 2, "{name} {args:?}\n{}", show(&out));
            let e = stderr(&out);
            assert!(e.contains(&name) && e.contains("c.toml"), "{e}");
            assert!(!e.contains("panicked"), "{e}");

            let out = Cli::new().with_env(&var, in_env).run(args);
            assert_eq!(code(&out), 2, "{var} {args:?}\n{}", show(&out));
            let e = stderr(&out);
            assert!(e.contains(&name) && e.contains(&var), "{e}");
            assert!(!cli.db().exists(), "a database was created");
        }
    }
}

/// SQLite says "unable to open database file" (three times, through the error chain) for a
/// folder; we say once what is wrong and what to give instead.
#[test]
fn a_database_path_that_is_a_directory_is_named_once() {
    let cli = Cli::new();
    let folder = cli.path("data");
    std::fs::create_dir_all(&folder).unwrap();
    let from_env = Cli::new().with_env("DISPATCH_DATABASE_PATH", &folder.display().to_string());
    let in_file = cli.write(
        "c.toml",
        format!("[database]\npath = {:?}\n", folder.display().to_string()),
    );
    let via_file = cli
        .command()
        .env_remove("DISPATCH_DATABASE_PATH")
        .arg("--config")
        .arg(&in_file)
        .arg("status")
        .output()
        .unwrap();
    for out in [from_env.run(["status"]), via_file] {
        assert_eq!(code(&out), 1, "{}", show(&out));
        let e = stderr(&out);
        assert_eq!(e.matches("is a directory").count(), 1, "{e}");
        assert!(
            e.contains(&format!(
                "[database] path {} is a directory",
                folder.display()
            )) && e.contains("give a file path such as data/dispatch.db"),
            "{e}"
        );
        assert!(!e.contains("unable to open database file"), "{e}");
    }
    // The folder is left as it was.
    assert_eq!(std::fs::read_dir(&folder).unwrap().count(), 0);
}

/// With stderr a pipe (a file, journald), log lines carry no ANSI colour codes.
#[test]
fn logs_carry_no_colour_when_stderr_is_not_a_terminal() {
    let cli = Cli::new().with_env("DISPATCH_LOG_LEVEL", "debug");
    // The sandbox sets NO_COLOR; this test is about what happens without it.
    let out = cli
        .command()
        .env_remove("NO_COLOR")
        .arg("status")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", show(&out));
    let e = stderr(&out);
    assert!(
        e.contains("DEBUG"),
        "expected debug log lines on stderr:\n{e}"
    );
    assert!(!e.contains("\x1b["), "ANSI escape in piped logs:\n{e:?}");
}

/// `script` (util-linux) runs the binary on a pseudo-terminal. When it is missing the test is
/// skipped with a notice, except under `DISPATCH_REQUIRE_TOOLS=1` (CI), where that fails.
fn have_script() -> bool {
    let ok = Command::new("script")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !ok {
        assert_ne!(
            std::env::var("DISPATCH_REQUIRE_TOOLS").as_deref(),
            Ok("1"),
            "script(1) from util-linux is required (DISPATCH_REQUIRE_TOOLS=1)"
        );
        eprintln!("skipped: script(1) from util-linux is not installed");
    }
    ok
}

/// `dispatch status` with debug logs on a terminal; what the terminal showed.
fn on_a_terminal(cli: &Cli, no_color: Option<&str>) -> String {
    let mut cmd = Command::new("script");
    cmd.args(["-qec", &format!("'{BIN}' status"), "/dev/null"])
        .current_dir(cli.dir())
        .stdin(Stdio::null());
    for (k, _) in std::env::vars_os() {
        if k.to_string_lossy().starts_with("DISPATCH_") {
            cmd.env_remove(&k);
        }
    }
    cmd.env_remove("RUST_LOG")
        .env_remove("NO_COLOR")
        .env("DISPATCH_DATABASE_PATH", cli.db())
        .env("DISPATCH_LOG_LEVEL", "debug");
    if let Some(v) = no_color {
        cmd.env("NO_COLOR", v);
    }
    let out = cmd.output().unwrap();
    assert!(out.status.success(), "{}", show(&out));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// On a terminal the colours stay, unless `NO_COLOR` is set (https://no-color.org).
#[test]
fn logs_keep_colour_on_a_terminal_unless_no_color_is_set() {
    if !have_script() {
        return;
    }
    let cli = Cli::new();
    let shown = on_a_terminal(&cli, None);
    assert!(
        shown.contains("DEBUG") && shown.contains("\x1b["),
        "{shown:?}"
    );
    let shown = on_a_terminal(&cli, Some("1"));
    assert!(
        shown.contains("DEBUG") && !shown.contains("\x1b["),
        "{shown:?}"
    );
}
