//! `dispatch init` writes the starter config once; a config file or `DISPATCH_*` variables
//! are used, and a bad one is refused with the file and key (or the variable) that is wrong.

use crate::support::cli::{Cli, code, repo_path, show, stderr};

#[test]
fn init_writes_the_starter_config_once_and_creates_the_database() {
    let cli = Cli::new();
    let out = cli.ok(["init"]);
    assert!(
        out.contains("wrote starter config config/dispatch.toml"),
        "{out}"
    );
    assert!(out.contains("database ready at"), "{out}");
    let starter = std::fs::read_to_string(repo_path("config/dispatch.toml")).unwrap();
    assert_eq!(cli.read("config/dispatch.toml"), starter);
    assert!(cli.db().is_file(), "database file not created");

    // A second run leaves an edited config alone (and still opens the database).
    let edited = format!("{starter}\n# edited by the newsroom\n");
    cli.write("config/dispatch.toml", &edited);
    let out = cli.ok(["init"]);
    assert!(out.contains("already exists; left as it is"), "{out}");
    assert_eq!(cli.read("config/dispatch.toml"), edited);

    // The database works: a list can be created in it.
    cli.ok(["lists", "create", "daily"]);
    assert_eq!(cli.json(["lists", "list", "--json"])[0]["slug"], "daily");

    // Without DISPATCH_DATABASE_PATH the starter config's own path is used, folder created.
    let fresh = Cli::new();
    let out = fresh
        .command()
        .env_remove("DISPATCH_DATABASE_PATH")
        .args(["init", "--path", "etc/dispatch.toml"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", show(&out));
    assert!(fresh.path("etc/dispatch.toml").is_file());
    // The config was written to etc/, so the built-in default path data/dispatch.db applies.
    assert!(fresh.path("data/dispatch.db").is_file(), "{}", show(&out));
}

#[test]
fn config_errors_name_the_file_and_the_key() {
    let cli = Cli::new();
    let cases: [(&str, &str, &[&str]); 4] = [
        (
            "bad-port.toml",
            "[smtp]\nport = \"x\"\n",
            &["port", "line 2", "expected u16"],
        ),
        (
            "unknown.toml",
            "[smtp]\nprot = 25\n",
            &["prot", "unknown field", "line 2"],
        ),
        (
            "url.toml",
            "[web]\npublic_url = \"ftp://news.example.pk\"\n",
            &["[web] public_url", "ftp://news.example.pk"],
        ),
        (
            "port0.toml",
            "[smtp]\nport = 0\n",
            &["[smtp] port", "1-65535"],
        ),
    ];
    for (name, text, needles) in cases {
        let path = cli.write(name, text);
        let out = cli
            .command()
            .arg("--config")
            .arg(&path)
            .arg("status")
            .output()
            .unwrap();
        assert_eq!(code(&out), 2, "{name}\n{}", show(&out));
        let e = stderr(&out);
        assert!(e.contains(&path.display().to_string()), "{name}: {e}");
        for n in needles {
            assert!(e.contains(n), "{name}: expected {n:?} in\n{e}");
        }
    }
    // Nothing was opened or created.
    assert!(!cli.db().exists());

    // DISPATCH_CONFIG is honoured, and the message names that file.
    let out = cli
        .command()
        .env("DISPATCH_CONFIG", cli.path("unknown.toml"))
        .arg("status")
        .output()
        .unwrap();
    assert_eq!(code(&out), 2);
    assert!(stderr(&out).contains("unknown.toml") && stderr(&out).contains("prot"));

    let e = Cli::new().with_config("missing.toml").fail(["status"]);
    assert!(
        e.contains("cannot read config file") && e.contains("missing.toml"),
        "{e}"
    );
}

#[test]
fn config_errors_from_the_environment_name_the_variable() {
    let cli = Cli::new().with_env("DISPATCH_SMTP_PORT", "abc");
    let out = cli.run(["status"]);
    assert_eq!(code(&out), 2, "{}", show(&out));
    let e = stderr(&out);
    assert!(
        e.contains("environment variable DISPATCH_SMTP_PORT") && e.contains("\"abc\""),
        "{e}"
    );
    let e = Cli::new()
        .with_env("DISPATCH_SMTP_COLOUR", "red")
        .fail(["status"]);
    assert!(
        e.contains("DISPATCH_SMTP_COLOUR") && e.contains("no setting"),
        "{e}"
    );
    let e = Cli::new()
        .with_env("DISPATCH_WEB_PUBLIC_URL", "news.example.pk")
        .fail(["status"]);
    assert!(
        e.contains("[web] public_url") && e.contains("news.example.pk"),
        "{e}"
    );

    // A valid override applies: the database goes where the variable says.
    let cli = Cli::new();
    let db = cli.path("elsewhere/x.db");
    let out = cli
        .command()
        .env("DISPATCH_DATABASE_PATH", &db)
        .arg("init")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", show(&out));
    assert!(db.is_file());
}

#[test]
fn a_valid_config_file_is_used() {
    // The config's database path is overridden by DISPATCH_DATABASE_PATH (set by the
    // harness), so use a file that differs from the defaults only in what the CLI can show.
    let cli = Cli::new().with_config("dispatch.toml");
    cli.write(
        "dispatch.toml",
        "[publication]\nname = \"The Example Pakistan Times\"\n[smtp]\nport = 2525\n",
    );
    cli.ok(["init", "--path", "dispatch.toml"]);
    assert!(cli.db().is_file());
    assert!(cli.read("dispatch.toml").contains("2525"), "left alone");

    // And without DISPATCH_DATABASE_PATH the file's [database] path is used.
    let cli = Cli::new();
    cli.write("c.toml", "[database]\npath = \"from-config.db\"\n");
    let out = cli
        .command()
        .env_remove("DISPATCH_DATABASE_PATH")
        .args(["--config", "c.toml", "lists", "create", "daily"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", show(&out));
    assert!(cli.path("from-config.db").is_file());
}
