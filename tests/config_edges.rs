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
