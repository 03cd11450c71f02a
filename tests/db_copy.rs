//! Moving an installation: `dispatch db copy` of a populated SQLite database into PostgreSQL,
//! `dispatch db check` on both, then a send from PostgreSQL that reaches the same readers,
//! and a link mailed from SQLite that still opens the reader's page served from PostgreSQL.

mod support;

use std::io::{Read as _, Write as _};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Output, Stdio};
use std::time::{Duration, Instant};

use support::cli::{Cli, code, show};
use support::{free_port, postgres};

/// The `To:` addresses and `List-Unsubscribe` URLs of the outbox's messages.
fn outbox(cli: &Cli) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let Ok(entries) = std::fs::read_dir(cli.path("outbox")) else {
        return out;
    };
    for e in entries.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        if !name.ends_with(".eml") || name.starts_with('.') {
            continue;
        }
        let msg = std::fs::read_to_string(e.path()).unwrap();
        let head = msg.split("\r\n\r\n").next().unwrap_or(&msg);
        // Unfold the header (RFC 5322 §2.2.3).
        let head = head.replace("\r\n ", " ").replace("\r\n\t", " ");
        let field = |name: &str| {
            head.lines()
                .find(|l| l.to_ascii_lowercase().starts_with(&format!("{name}:")))
                .map(|l| l[name.len() + 1..].trim().to_owned())
                .unwrap_or_else(|| panic!("no {name} in\n{head}"))
        };
        let to = field("to");
        let to = match (to.rfind('<'), to.rfind('>')) {
            (Some(a), Some(b)) if a < b => to[a + 1..b].to_owned(),
            _ => to,
        };
        let unsubscribe = field("list-unsubscribe");
        let url = unsubscribe
            .split(['<', '>'])
            .find(|p| p.starts_with("http"))
            .unwrap_or_else(|| panic!("no https unsubscribe link: {unsubscribe}"))
            .to_owned();
        out.push((to, url));
    }
    out.sort();
    out
}

fn readers(cli: &Cli) -> Vec<String> {
    let mut r: Vec<String> = outbox(cli).into_iter().map(|(to, _)| to).collect();
    r.sort();
    r
}

/// Writes the config `name`: `database`, web pages on `port`, mail to the sandbox's outbox.
fn config(cli: &Cli, name: &str, database: &str, port: u16) -> std::path::PathBuf {
    cli.write(
        name,
        format!(
            "{database}\n[web]\nbind = \"127.0.0.1:{port}\"\npublic_url = \"http://127.0.0.1:{port}\"\n\n\
             [delivery]\ntransport = \"file\"\noutbox = \"{}\"\n",
            cli.path("outbox").display()
        ),
    )
}

/// `dispatch --config CONFIG ARGS`.
fn run(cli: &Cli, config: &Path, args: &[&str]) -> Output {
    cli.command()
        .arg("--config")
        .arg(config)
        .args(args)
        .output()
        .unwrap()
}

/// Like [`run`], which must succeed; its stdout.
fn ok(cli: &Cli, config: &Path, args: &[&str]) -> String {
    let out = run(cli, config, args);
    assert!(out.status.success(), "dispatch {args:?}: {}", show(&out));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn get(port: u16, path: &str) -> std::io::Result<String> {
    let mut s = TcpStream::connect(("127.0.0.1", port))?;
    s.set_read_timeout(Some(Duration::from_secs(5)))?;
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n\r\n"
    )?;
    let mut out = String::new();
    s.read_to_string(&mut out)?;
    Ok(out)
}

struct Web(Child);

impl Drop for Web {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn a_copied_database_sends_to_the_same_readers_and_old_links_still_work() {
    let Some(server) = postgres::server() else {
        return;
    };
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let url = rt.block_on(server.fresh_database());
    let port = free_port();
    let base = Cli::new();
    // The sandbox's DISPATCH_DATABASE_PATH is its dispatch.db; the URL wins over it.
    let sqlite = config(&base, "sqlite.toml", "", port);
    let pg = config(
        &base,
        "pg.toml",
        &format!("[database]\nurl = \"{url}\"\n"),
        port,
    );

    ok(&base, &sqlite, &["lists", "create", "alerts", "--breaking"]);
    ok(&base, &sqlite, &["lists", "create", "daily"]);
    let people = ["ayesha@example.pk", "bilal@example.com", "sana@example.org"];
    for p in people {
        ok(
            &base,
            &sqlite,
            &["subscribers", "add", p, "--list", "alerts"],
        );
        ok(
            &base,
            &sqlite,
            &["subscribers", "add", p, "--list", "daily"],
        );
    }
    let story = |config: &Path, slug: &str| {
        ok(
            &base,
            config,
            &[
                "articles",
                "add",
                "--breaking",
                "--title",
                &format!("Story {slug}"),
                "--url",
                &format!("https://news.example.com/{slug}"),
                "--category",
                "Politics",
            ],
        );
    };
    story(&sqlite, "first");
    ok(&base, &sqlite, &["send", "breaking", "1"]);
    let from_sqlite = outbox(&base);
    assert_eq!(readers(&base), people, "{from_sqlite:?}");

    // Every table, with the same counts; a second copy is refused.
    let copied = ok(
        &base,
        &sqlite,
        &[
            "db",
            "copy",
            "--from",
            &base.path("dispatch.db").display().to_string(),
            "--to",
            &url,
            "--batch",
            "2",
        ],
    );
    assert!(copied.contains("same count in both"), "{copied}");
    let again = run(
        &base,
        &sqlite,
        &[
            "db",
            "copy",
            "--from",
            &base.path("dispatch.db").display().to_string(),
            "--to",
            &url,
        ],
    );
    assert_ne!(code(&again), 0, "{}", show(&again));

    // `db check` on both: the same tables and counts, every migration applied.
    let counts = |config: &Path| {
        let v: serde_json::Value =
            serde_json::from_str(&ok(&base, config, &["db", "check", "--json"])).unwrap();
        let mut t: Vec<(String, i64)> = v["tables"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| {
                (
                    t["table"].as_str().unwrap().to_owned(),
                    t["rows"].as_i64().unwrap(),
                )
            })
            .collect();
        t.sort();
        (v["backend"].as_str().unwrap().to_owned(), t)
    };
    let (kind_s, tables_s) = counts(&sqlite);
    let (kind_p, tables_p) = counts(&pg);
    assert_eq!((kind_s.as_str(), kind_p.as_str()), ("sqlite", "postgres"));
    assert_eq!(tables_s, tables_p);
    assert!(
        tables_p.contains(&("subscriptions".into(), 6)),
        "{tables_p:?}"
    );

    // A send from PostgreSQL reaches the same readers.
    story(&pg, "second");
    ok(&base, &pg, &["send", "breaking", "2"]);
    let all = readers(&base);
    assert_eq!(all.len(), 2 * people.len(), "{all:?}");
    for p in people {
        assert_eq!(all.iter().filter(|r| *r == p).count(), 2, "{p}: {all:?}");
    }

    // A link mailed from SQLite opens the reader's page served from PostgreSQL.
    let web = Web(base
        .command()
        .arg("--config")
        .arg(&pg)
        .args(["run", "--only", "web"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap());
    let deadline = Instant::now() + Duration::from_secs(20);
    while get(port, "/healthz").is_err() {
        assert!(Instant::now() < deadline, "the web pages never came up");
        std::thread::sleep(Duration::from_millis(100));
    }
    let health = get(port, "/healthz").unwrap();
    assert!(
        health.contains("\r\n\r\nok\ndatabase: postgres\n"),
        "{health}"
    );
    let (_, link) = &from_sqlite[0];
    let path = link
        .strip_prefix(&format!("http://127.0.0.1:{port}"))
        .unwrap_or_else(|| panic!("{link}"));
    let page = get(port, path).unwrap();
    assert!(page.starts_with("HTTP/1.1 200"), "{path}: {page}");
    let last = if path.ends_with('A') { 'B' } else { 'A' };
    let forged = format!("{}{last}", &path[..path.len() - 1]);
    let refused = get(port, &forged).unwrap();
    assert!(!refused.starts_with("HTTP/1.1 200"), "{forged}: {refused}");
    drop(web);
}
