//! The newsroom console in a real browser: Debian's Chromium driven over WebDriver
//! (chromedriver, through fantoccini) against a real `dispatch run`, whose sender delivers to
//! Python's aiosmtpd (`tests/interop/sink.py`), software we did not write.
//!
//! An editor signs in, sends a breaking story, watches the live progress reach "sent" while
//! the sink receives a message for every reader; the second send is refused; a form posted
//! without its CSRF token is refused; the subscribers page is 403 for an editor; logout ends
//! the session. Screenshots of the pages (desktop and phone) go to `target/console-shots/`.

mod support;

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::json;
use support::cli::{Cli, repo_path};
use support::sink::Sink;
use support::{free_port, tools};

const CHROMIUM: tools::Tool = tools::Tool::program("chromium", "chromium");
const CHROMEDRIVER: tools::Tool = tools::Tool::program("chromedriver", "chromium-driver");

const READERS: usize = 5;
const PASSWORD: &str = "a minister resigns at dawn";

/// A child process killed when the test ends, however it ends.
struct Proc(Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn wait_for_port(port: u16, what: &str) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "{what} did not start listening");
        std::thread::sleep(Duration::from_millis(100));
    }
}

async fn browser(driver_port: u16, profile: &std::path::Path) -> Client {
    let mut caps = serde_json::Map::new();
    caps.insert(
        "goog:chromeOptions".into(),
        json!({
            "binary": "/usr/bin/chromium",
            "args": [
                "--headless=new", "--no-sandbox", "--disable-gpu",
                "--disable-background-networking", "--disable-component-update",
                "--disable-sync", "--no-first-run", "--disable-dev-shm-usage",
                format!("--user-data-dir={}", profile.display()),
            ],
        }),
    );
    let connector = hyper_util::client::legacy::connect::HttpConnector::new();
    ClientBuilder::new(connector)
        .capabilities(caps)
        .connect(&format!("http://127.0.0.1:{driver_port}"))
        .await
        .expect("a WebDriver session with chromium")
}

fn shots_dir() -> PathBuf {
    let dir = repo_path("target/console-shots");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

async fn shot(b: &Client, name: &str) {
    for (suffix, w, h) in [("desktop", 1280, 900), ("phone", 390, 844)] {
        b.set_window_size(w, h).await.unwrap();
        let png = b.screenshot().await.unwrap();
        std::fs::write(shots_dir().join(format!("{name}-{suffix}.png")), png).unwrap();
    }
    b.set_window_size(1280, 900).await.unwrap();
}

/// Where the npm package `axe-core` (Deque's accessibility checker) is found: `$DISPATCH_AXE_JS`,
/// else where `.ci/run` installs it (`npm install --prefix target/axe axe-core@4.14.1`). It is
/// not kept in this repository: it is another project's code.
const AXE_ENV: &str = "DISPATCH_AXE_JS";
const AXE_DEFAULT: &str = "target/axe/node_modules/axe-core/axe.min.js";

/// axe-core's source, or `None` after the missing-tool notice (a failure under
/// `DISPATCH_REQUIRE_TOOLS=1`).
fn axe_source() -> Option<String> {
    let path = std::env::var_os(AXE_ENV).map_or_else(|| repo_path(AXE_DEFAULT), PathBuf::from);
    if let Ok(source) = std::fs::read_to_string(&path) {
        return Some(source);
    }
    tools::on_missing(
        &format!(
            "an_editor_sends_breaking_news_from_the_browser_and_watches_it_reach_sent: axe-core not found at {} \
             (npm install --prefix target/axe axe-core@4.14.1, or set {AXE_ENV})",
            path.display()
        ),
        tools::required_by(std::env::var_os(tools::REQUIRE_ENV).as_deref()),
        &mut std::io::stderr(),
    )?;
    None
}

/// Types each `(id, text)` into its field and submits the form (the page's one submit
/// button): the set-password and sign-in forms.
async fn fill_form(b: &Client, fields: &[(&str, &str)]) {
    for (id, text) in fields {
        b.find(Locator::Id(id))
            .await
            .unwrap()
            .send_keys(text)
            .await
            .unwrap();
    }
    b.find(Locator::Css("main button[type=submit]"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
}

/// Runs axe-core over the current page: no serious or critical violations.
async fn axe(b: &Client, page: &str, axe_js: &str) {
    b.execute(&format!("{axe_js}\n;return true;"), vec![])
        .await
        .unwrap();
    let found = b
        .execute_async(
            "var done = arguments[arguments.length - 1];
             axe.run(document, {resultTypes: ['violations']}).then(function (r) {
               done(r.violations
                 .filter(function (v) { return v.impact === 'serious' || v.impact === 'critical'; })
                 .map(function (v) {
                   return v.impact + ' ' + v.id + ': ' + v.help + ' at ' +
                     v.nodes.map(function (n) { return n.target.join(' '); }).join(', ');
                 }));
             }, function (e) { done(['axe failed: ' + e]); });",
            vec![],
        )
        .await
        .unwrap();
    let found: Vec<String> = serde_json::from_value(found).unwrap();
    assert!(found.is_empty(), "axe-core on {page}: {found:#?}");
}

/// axe-core at the desktop and phone sizes, then the screenshots.
async fn check(b: &Client, name: &str, axe_js: &str) {
    axe(b, name, axe_js).await;
    b.set_window_size(390, 844).await.unwrap();
    axe(b, name, axe_js).await;
    b.set_window_size(1280, 900).await.unwrap();
    shot(b, name).await;
}

async fn text_of(b: &Client, css: &str) -> String {
    b.find(Locator::Css(css))
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
}

/// Waits (a click's navigation is not awaited by WebDriver) until `css` shows `expected`.
async fn wait_text(b: &Client, css: &str, expected: &str) {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let seen = match b.find(Locator::Css(css)).await {
            Ok(e) => e.text().await.unwrap_or_default(),
            Err(_) => String::new(),
        };
        if seen.contains(expected) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{css} shows {seen:?}, not {expected:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Waits until the browser is at a path that `ok` accepts.
async fn wait_path(b: &Client, ok: impl Fn(&str) -> bool) -> String {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let path = b.current_url().await.unwrap().path().to_owned();
        if ok(&path) {
            return path;
        }
        assert!(Instant::now() < deadline, "still at {path}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[test]
fn an_editor_sends_breaking_news_from_the_browser_and_watches_it_reach_sent() {
    for tool in [tools::AIOSMTPD, CHROMIUM, CHROMEDRIVER] {
        let Some(_) = tools::require(tool) else {
            return;
        };
    }
    let Some(axe_js) = axe_source() else {
        return;
    };
    let Some(sink) = Sink::start() else { return };
    let smtp_port = sink.port;
    let cli = Cli::new();
    let (web_port, console_port) = (free_port(), free_port());
    cli.write(
        "dispatch.toml",
        format!(
            "[web]\nbind = \"127.0.0.1:{web_port}\"\npublic_url = \"https://news.example.com\"\n\n\
             [console]\nbind = \"127.0.0.1:{console_port}\"\npublic_url = \"http://127.0.0.1:{console_port}\"\n\n\
             [schedule]\nbreaking_poll_secs = 1\n\n\
             [delivery]\ntransport = \"smtp\"\n\n\
             [smtp]\nhost = \"127.0.0.1\"\nport = {smtp_port}\nsecurity = \"none\"\ntimeout_secs = 5\n"
        ),
    );
    let cli = cli.with_config("dispatch.toml");
    cli.ok(["lists", "create", "daily", "--breaking"]);
    let csv: String = std::iter::once("email\n".to_owned())
        .chain((0..READERS).map(|i| format!("r{i}@example.org\n")))
        .collect();
    let file = cli.write("readers.csv", csv);
    cli.ok([
        "subscribers",
        "import",
        &file.display().to_string(),
        "--list",
        "daily",
    ]);
    // Not marked breaking, so only the editor's click sends it.
    cli.ok([
        "articles",
        "add",
        "--title",
        "Finance minister resigns",
        "--url",
        "https://news.example.com/resigns",
        "--category",
        "Politics",
    ]);
    let link = cli.ok(["users", "add", "ed@example.com", "--role", "editor"]);
    let link = link.trim().to_owned();
    assert!(link.starts_with(&format!("http://127.0.0.1:{console_port}/set-password/")));

    let log = std::fs::File::create(cli.path("run.log")).unwrap();
    let _daemon = Proc(
        cli.command()
            .arg("run")
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("dispatch run"),
    );
    wait_for_port(console_port, "the console");
    let driver_port = free_port();
    let _driver = Proc(
        Command::new("chromedriver")
            .arg(format!("--port={driver_port}"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("chromedriver"),
    );
    wait_for_port(driver_port, "chromedriver");
    let profile = tempfile::tempdir().unwrap();
    let base = format!("http://127.0.0.1:{console_port}");

    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let b = browser(driver_port, profile.path()).await;
        b.set_window_size(1280, 900).await.unwrap();

        // Set the password from the link, then sign in.
        b.goto(&link).await.unwrap();
        check(&b, "set-password", &axe_js).await;
        fill_form(&b, &[("password", PASSWORD), ("repeat", PASSWORD)]).await;
        wait_text(&b, "h1", "Password set").await;
        b.goto(&format!("{base}/")).await.unwrap();
        wait_path(&b, |p| p == "/login").await;
        check(&b, "login", &axe_js).await;
        fill_form(&b, &[("email", "ed@example.com"), ("password", PASSWORD)]).await;
        wait_text(&b, "h1", "Newsroom console").await;
        check(&b, "home", &axe_js).await;

        // Articles, then the breaking-news page with its preview.
        b.goto(&format!("{base}/articles")).await.unwrap();
        check(&b, "articles", &axe_js).await;
        b.find(Locator::LinkText("Send as breaking news"))
            .await
            .unwrap()
            .click()
            .await
            .unwrap();
        wait_text(&b, "h1", "Send breaking news").await;
        let subject = text_of(&b, "#preview-title + p").await;
        assert!(
            subject.contains("Breaking: Finance minister resigns"),
            "{subject}"
        );
        check(&b, "breaking", &axe_js).await;
        let send_url = b.current_url().await.unwrap();
        b.find(Locator::Css("button[value=send]"))
            .await
            .unwrap()
            .click()
            .await
            .unwrap();

        // The edition page: live progress (server-sent events) reaches "sent".
        wait_path(&b, |p| p.starts_with("/editions/")).await;
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let status = text_of(&b, "#p-status").await;
            if status == "sent" {
                break;
            }
            assert!(Instant::now() < deadline, "the page still says {status:?}");
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
        assert_eq!(text_of(&b, "#p-sent").await, READERS.to_string());
        check(&b, "edition", &axe_js).await;
        let expected: Vec<String> = {
            let mut v: Vec<String> = (0..READERS).map(|i| format!("r{i}@example.org")).collect();
            v.sort();
            v
        };
        assert_eq!(
            sink.recipients(),
            expected,
            "aiosmtpd got one message per reader"
        );

        // The second send is refused, naming who sent it.
        b.goto(send_url.as_str()).await.unwrap();
        wait_text(
            &b,
            "p.note[role=status]",
            "Already sent as breaking news by ed@example.com",
        )
        .await;
        let page = b.source().await.unwrap();
        assert!(page.contains("already sent"), "the list is marked as sent");

        // A form posted without its CSRF token is refused.
        b.execute(
            "document.querySelectorAll('input[name=csrf]').forEach(function(e){e.remove()});",
            vec![],
        )
        .await
        .unwrap();
        b.find(Locator::Css("header button[type=submit]"))
            .await
            .unwrap()
            .click()
            .await
            .unwrap();
        wait_text(&b, "h1", "Not allowed").await;

        b.goto(&format!("{base}/editions")).await.unwrap();
        wait_text(&b, "h1", "Editions").await;
        check(&b, "editions", &axe_js).await;

        // An editor cannot open the subscribers page.
        b.goto(&format!("{base}/subscribers")).await.unwrap();
        wait_text(&b, "h1", "Not allowed").await;
        check(&b, "forbidden", &axe_js).await;

        // Logout ends the session.
        b.goto(&format!("{base}/")).await.unwrap();
        b.find(Locator::Css("header button[type=submit]"))
            .await
            .unwrap()
            .click()
            .await
            .unwrap();
        wait_path(&b, |p| p == "/login").await;
        b.goto(&format!("{base}/editions")).await.unwrap();
        wait_path(&b, |p| p == "/login").await;

        // An admin's pages, for axe-core and the screenshots.
        let link = cli.ok(["users", "add", "admin@example.com", "--role", "admin"]);
        b.goto(link.trim()).await.unwrap();
        fill_form(&b, &[("password", PASSWORD), ("repeat", PASSWORD)]).await;
        wait_text(&b, "h1", "Password set").await;
        b.goto(&format!("{base}/login")).await.unwrap();
        fill_form(
            &b,
            &[("email", "admin@example.com"), ("password", PASSWORD)],
        )
        .await;
        wait_text(&b, "h1", "Newsroom console").await;
        for (path, title, name) in [
            ("schedule", "Schedule", "schedule"),
            ("lists", "Lists", "lists"),
            ("lists/new", "New list", "list-new"),
            ("lists/daily/edit", "List daily", "list-edit"),
            ("subscribers", "Subscribers", "subscribers"),
            (
                "subscribers?email=r0%40example.org",
                "Subscribers",
                "subscriber",
            ),
            ("users", "Users", "users"),
            ("api-keys", "API keys", "api-keys"),
            ("audit", "Audit log", "audit"),
        ] {
            b.goto(&format!("{base}/{path}")).await.unwrap();
            wait_text(&b, "h1", title).await;
            check(&b, name, &axe_js).await;
        }
        assert!(
            b.source().await.unwrap().contains("breaking.send"),
            "the audit log shows the send"
        );
        b.close().await.unwrap();
    });
    assert_eq!(sink.recipients().len(), READERS, "nothing sent twice");
}
