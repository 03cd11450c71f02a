//! The real binary at the edges of its configuration: values that used to pass the checks and
//! panic later, a database path that is a folder, and log output that is not a terminal.

mod support;

use support::cli::{Cli, code, show, stderr};

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
