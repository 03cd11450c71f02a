//! Bounces, complaints, auto-replies and mailto: unsubscribes through the real binary's pipe
//! (`dispatch bounces ingest`), against a real digest sent to the file outbox: the returned
//! headers in the fixtures are the ones the digest really carried.

mod support;

use std::io::Write as _;
use std::process::{Output, Stdio};

use dispatch::mail::verp::{self, VerpItem};
use dispatch::store::Store;
use support::cli::{Cli, code, show, stdout};

/// A sandbox with a digest sent to three readers of `daily` (one also on `alerts`).
struct Sent {
    cli: Cli,
    edition: i64,
    /// (address, subscriber id, the headers of their message).
    readers: Vec<(String, i64, Headers)>,
}

#[derive(Clone, Default)]
struct Headers {
    message_id: String,
    list_id: String,
    list_unsubscribe: String,
}

const CONFIG: &str = r#"
[publication]
from = "The Daily Ledger <digest@news.example.com>"
[bounces]
return_path_domain = "bounces.news.example.com"
hard_threshold = 1
soft_threshold = 2
"#;

fn sent() -> Sent {
    let cli = Cli::new().with_config("dispatch.toml");
    cli.write("dispatch.toml", CONFIG);
    cli.ok(["lists", "create", "daily", "--name", "Daily Digest"]);
    cli.ok([
        "lists",
        "create",
        "alerts",
        "--name",
        "Alerts",
        "--breaking",
    ]);
    let emails = ["gone@example.org", "full@example.net", "happy@example.com"];
    for e in emails {
        cli.ok(["subscribers", "add", e, "--list", "daily"]);
    }
    cli.ok(["subscribers", "add", "full@example.net", "--list", "alerts"]);
    let at = (chrono::Utc::now() - chrono::Duration::hours(1))
        .format("%Y-%m-%dT%H:%M:%SZ")
        .to_string();
    cli.ok([
        "articles",
        "add",
        "--published-at",
        &at,
        "--category",
        "Politics",
        "--title",
        "Assembly passes the budget",
        "--url",
        "https://news.example.com/budget",
    ]);
    cli.ok(["send", "digest", "daily"]);
    let mut readers = Vec::new();
    let outbox = cli.path("outbox");
    let mut files: Vec<_> = std::fs::read_dir(&outbox)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    for e in emails {
        let text = files
            .iter()
            .map(|f| std::fs::read_to_string(f).unwrap())
            .find(|t| t.contains(&format!("To: {e}")) || t.contains(&format!("<{e}>")))
            .unwrap_or_else(|| panic!("no message to {e} in the outbox"));
        let h = |name: &str| header(&text, name);
        let s = cli.json(["subscribers", "show", e, "--json"]);
        readers.push((
            e.to_owned(),
            s["id"].as_i64().unwrap(),
            Headers {
                message_id: h("Message-ID"),
                list_id: h("List-Id"),
                list_unsubscribe: h("List-Unsubscribe"),
            },
        ));
    }
    let ed = cli.json(["editions", "list", "--json"]);
    let edition = ed[0]["id"].as_i64().unwrap();
    Sent {
        cli,
        edition,
        readers,
    }
}

/// A header's unfolded value in a message's text.
fn header(text: &str, name: &str) -> String {
    let mut lines = text.lines();
    let prefix = format!("{}:", name.to_ascii_lowercase());
    while let Some(l) = lines.next() {
        if l.to_ascii_lowercase().starts_with(&prefix) {
            let mut v = l[prefix.len()..].trim().to_owned();
            for cont in lines.by_ref() {
                if cont.starts_with([' ', '\t']) {
                    v.push(' ');
                    v.push_str(cont.trim());
                } else {
                    break;
                }
            }
            return v;
        }
        if l.is_empty() {
            break;
        }
    }
    panic!("no {name} header")
}

impl Sent {
    /// The VERP envelope sender of reader `i`'s message, as the sender made it.
    async fn verp(&self, i: usize) -> String {
        let store = Store::open(self.cli.db()).await.unwrap();
        let domain = dispatch::config::ReturnPathDomain::parse("bounces.news.example.com").unwrap();
        let a = verp::address(
            store.verp_key(),
            VerpItem::Delivery {
                edition_id: self.edition,
                subscriber_id: self.readers[i].1,
            },
            &domain,
        );
        store.close().await;
        a.as_str().to_owned()
    }

    fn ingest(&self, message: &str) -> Output {
        self.ingest_with(message, &[])
    }

    fn ingest_with(&self, message: &str, args: &[&str]) -> Output {
        let mut child = self
            .cli
            .command()
            .args(["bounces", "ingest"])
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        child
            .stdin
            .take()
            .unwrap()
            .write_all(message.replace('\n', "\r\n").as_bytes())
            .unwrap();
        child.wait_with_output().unwrap()
    }

    fn status(&self, i: usize) -> serde_json::Value {
        self.cli
            .json(["subscribers", "show", &self.readers[i].0, "--json"])
    }

    fn events(&self, kind: &str) -> Vec<serde_json::Value> {
        self.cli
            .json(["bounces", "list", "--type", kind, "--json"])
            .as_array()
            .unwrap()
            .clone()
    }
}

fn returned(h: &Headers, to: &str) -> String {
    format!(
        "From: The Daily Ledger <digest@news.example.com>\nTo: {to}\nSubject: Daily Digest\nMessage-ID: {}\nList-Id: {}\nList-Unsubscribe: {}\n",
        h.message_id, h.list_id, h.list_unsubscribe
    )
}

/// A Postfix-style DSN (RFC 3464) with `Auto-Submitted: auto-replied`, as Postfix sends it.
fn dsn(to: &str, rcpt: &str, action: &str, status: &str, diag: &str, headers: &str) -> String {
    format!(
        "Return-Path: <>\nFrom: MAILER-DAEMON@relay.example (Mail Delivery System)\nTo: {to}\n\
Subject: Undelivered Mail Returned to Sender\nAuto-Submitted: auto-replied\nMIME-Version: 1.0\n\
Content-Type: multipart/report; report-type=delivery-status; boundary=\"B1\"\nMessage-Id: <dsn.{status}.{rcpt}@relay.example>\n\n\
--B1\nContent-Type: text/plain; charset=us-ascii\n\nI'm sorry to have to inform you that your message could not be delivered.\n\n\
--B1\nContent-Type: message/delivery-status\n\nReporting-MTA: dns; relay.example\nArrival-Date: Sat, 28 Nov 2026 07:00:00 +0000\n\n\
Final-Recipient: rfc822; {rcpt}\nOriginal-Recipient: rfc822;{rcpt}\nAction: {action}\nStatus: {status}\nRemote-MTA: dns; mx.example\nDiagnostic-Code: smtp; {diag}\n\n\
--B1\nContent-Type: text/rfc822-headers\n\n{headers}\n--B1--\n"
    )
}

#[tokio::test]
async fn a_hard_dsn_to_the_verp_address_bounces_its_reader_once_even_when_ingested_twice() {
    let s = sent();
    let to = s.verp(0).await;
    // No returned headers at all: the VERP address alone names the reader.
    let msg = dsn(
        &to,
        "gone@example.org",
        "failed",
        "5.1.1",
        "550 5.1.1 <gone@example.org>: Recipient address rejected: User unknown",
        "",
    );
    for _ in 0..2 {
        let out = s.ingest(&msg);
        assert_eq!(code(&out), 0, "{}", show(&out));
    }
    assert!(stdout(&s.ingest(&msg)).contains("already recorded"));
    assert_eq!(s.status(0)["status"], "bounced");
    assert_eq!(s.status(1)["status"], "active");
    let hard = s.events("hard");
    assert_eq!(hard.len(), 1, "{hard:?}");
    assert_eq!(hard[0]["email"], "gone@example.org");
    assert_eq!(hard[0]["matched_by"], "verp");
    assert_eq!(hard[0]["status"], "5.1.1");
    assert_eq!(hard[0]["edition_id"], s.edition);
    let shown = s.cli.ok(["subscribers", "show", "gone@example.org"]);
    assert!(shown.contains("hard") && shown.contains("5.1.1"), "{shown}");
    let ed = s.cli.ok(["editions", "show", &s.edition.to_string()]);
    assert!(
        ed.contains("bounces  1 hard, 0 soft, 0 complaint(s)"),
        "{ed}"
    );

    // Fixed their mailbox: reactivated, and the old bounce no longer counts.
    let out = s.cli.ok(["bounces", "reactivate", "gone@example.org"]);
    assert!(out.contains("active again"), "{out}");
    assert_eq!(s.status(0)["status"], "active");
}

#[tokio::test]
async fn a_forged_verp_mac_changes_nothing_and_is_kept_unidentified() {
    let s = sent();
    let real = s.verp(0).await;
    let (local, domain) = real.split_once('@').unwrap();
    let mut forged = local.as_bytes().to_vec();
    let last = forged.len() - 1;
    forged[last] = if forged[last] == b'a' { b'b' } else { b'a' };
    let forged = format!("{}@{domain}", String::from_utf8(forged).unwrap());
    // It even quotes the real headers: a forged VERP address still makes it unidentified.
    let msg = dsn(
        &forged,
        "gone@example.org",
        "failed",
        "5.1.1",
        "550 5.1.1 no",
        &returned(&s.readers[0].2, "gone@example.org"),
    );
    let out = s.ingest(&msg);
    assert_eq!(code(&out), 0, "{}", show(&out));
    assert_eq!(s.status(0)["status"], "active");
    let u = s.events("unidentified");
    assert_eq!(u.len(), 1);
    assert!(u[0]["note"].as_str().unwrap().contains("MAC"), "{u:?}");
    assert_eq!(u[0]["email"], serde_json::Value::Null);
    assert!(s.events("hard").is_empty());
}

#[tokio::test]
async fn a_postfix_dsn_saying_auto_replied_is_a_report_first_and_one_edition_counts_once_in_a_soft_run()
 {
    let s = sent();
    let to = s.verp(1).await;
    let msg = dsn(
        &to,
        "full@example.net",
        "delayed",
        "4.2.2",
        "452 4.2.2 Mailbox full",
        "",
    );
    let out = s.ingest(&msg);
    assert_eq!(code(&out), 0, "{}", show(&out));
    assert!(stdout(&out).contains("recorded: soft"), "{}", show(&out));
    assert!(s.events("auto-reply").is_empty());
    assert_eq!(
        s.status(1)["status"],
        "active",
        "one soft bounce is not a run"
    );
    // The same message's final failure later: still one message of the run.
    let msg2 = dsn(
        &to,
        "full@example.net",
        "failed",
        "4.2.2",
        "452 4.2.2 Mailbox full, gave up",
        "",
    );
    s.ingest(&msg2);
    assert_eq!(s.status(1)["status"], "active", "one edition counts once");
}

#[tokio::test]
async fn an_exchange_style_bounce_is_matched_by_the_returned_message_id() {
    let s = sent();
    let h = &s.readers[0].2;
    // Sent to the From address (a relay that rewrote the return path): no VERP.
    let msg = format!(
        "From: Microsoft Outlook <postmaster@outlook.example>\nTo: digest@news.example.com\n\
Subject: Undeliverable: Daily Digest\nMIME-Version: 1.0\nContent-Type: multipart/mixed; boundary=\"X\"\n\n\
--X\nContent-Type: text/plain; charset=utf-8\n\nDelivery has failed to these recipients or groups:\n\ngone@example.org\n\
The email address you entered couldn't be found.\n\nDiagnostic information for administrators:\n\
Remote Server returned '550 5.1.10 RESOLVER.ADR.RecipientNotFound; Recipient not found by SMTP address lookup'\n\n\
--X\nContent-Type: message/rfc822\n\n{}\nhello\n--X--\n",
        returned(h, "gone@example.org")
    );
    let out = s.ingest(&msg);
    assert_eq!(code(&out), 0, "{}", show(&out));
    let hard = s.events("hard");
    assert_eq!(hard.len(), 1, "{}", show(&out));
    assert_eq!(hard[0]["matched_by"], "message-id");
    assert_eq!(hard[0]["status"], "5.1.10");
    assert_eq!(s.status(0)["status"], "bounced");
}

/// A Message-ID names its edition and reader in the clear, but its nonce is a MAC under the
/// installation's key: a forged bounce that swaps in another reader's id matches nobody.
#[tokio::test]
async fn a_bounce_quoting_a_forged_message_id_unsubscribes_nobody() {
    let s = sent();
    let (real, other) = (&s.readers[0].2.message_id, &s.readers[1].2.message_id);
    let subscriber = |id: &str| id.split('.').nth(1).unwrap().to_owned();
    let forged = real.replacen(&subscriber(real), &subscriber(other), 1);
    assert_ne!(&forged, other, "the two readers' nonces differ");
    let msg = format!(
        "From: Microsoft Outlook <postmaster@outlook.example>\nTo: digest@news.example.com\n\
Subject: Undeliverable: Daily Digest\nMIME-Version: 1.0\nContent-Type: multipart/mixed; boundary=\"X\"\n\n\
--X\nContent-Type: text/plain; charset=utf-8\n\nDelivery has failed.\n\n\
Remote Server returned '550 5.1.10 RESOLVER.ADR.RecipientNotFound'\n\n\
--X\nContent-Type: message/rfc822\n\nFrom: digest@news.example.com\nSubject: Daily Digest\nMessage-ID: {forged}\n\nhello\n--X--\n"
    );
    let out = s.ingest(&msg);
    assert_eq!(code(&out), 0, "{}", show(&out));
    assert!(s.events("hard").is_empty(), "{}", show(&out));
    assert_eq!(s.status(1)["status"], "active");
    assert_eq!(s.status(0)["status"], "active");
}

#[tokio::test]
async fn a_gmail_style_text_bounce_is_matched_by_failed_recipient_and_list_id() {
    let s = sent();
    let h = &s.readers[0].2;
    let msg = format!(
        "From: Mail Delivery Subsystem <mailer-daemon@googlemail.com>\nTo: digest@news.example.com\n\
X-Failed-Recipients: gone@example.org\nSubject: Delivery Status Notification (Failure)\nAuto-Submitted: auto-replied\n\
Content-Type: text/plain; charset=UTF-8\n\n\
** Address not found **\n\nYour message wasn't delivered to gone@example.org because the address couldn't be found.\n\n\
The response was:\n\n550 5.1.1 The email account that you tried to reach does not exist. Please try\n\n\
----- Original message -----\n\nList-Id: {}\nSubject: Daily Digest\n",
        h.list_id
    );
    let out = s.ingest(&msg);
    assert_eq!(code(&out), 0, "{}", show(&out));
    let hard = s.events("hard");
    assert_eq!(hard.len(), 1, "{}", show(&out));
    assert_eq!(hard[0]["matched_by"], "recipient+list-id");
    assert_eq!(hard[0]["list"], "daily");
    assert_eq!(s.status(0)["status"], "bounced");
    assert!(s.events("auto-reply").is_empty());
}

#[tokio::test]
async fn a_text_bounce_naming_only_an_address_is_unidentified() {
    let s = sent();
    let msg = "From: MAILER-DAEMON@mx.example\nTo: digest@news.example.com\nSubject: failure notice\n\n\
<gone@example.org>:\nSorry, no mailbox here by that name. (#5.1.1)\n";
    let out = s.ingest(msg);
    assert_eq!(code(&out), 0, "{}", show(&out));
    assert_eq!(s.status(0)["status"], "active");
    let u = s.events("unidentified");
    assert_eq!(u.len(), 1);
    assert_eq!(u[0]["from_addr"], "MAILER-DAEMON@mx.example");
    assert_eq!(u[0]["subject"], "failure notice");
}

#[tokio::test]
async fn an_arf_complaint_unsubscribes_the_reader_from_every_list_and_says_why() {
    let s = sent();
    let h = &s.readers[1].2;
    let msg = format!(
        "From: Yahoo FBL <feedback@fbl.yahoo.example>\nTo: abuse@news.example.com\nSubject: FW: Daily Digest\n\
MIME-Version: 1.0\nContent-Type: multipart/report; report-type=feedback-report; boundary=\"F\"\n\n\
--F\nContent-Type: text/plain\n\nThis is an email abuse report.\n\n\
--F\nContent-Type: message/feedback-report\n\nFeedback-Type: abuse\nUser-Agent: YahooFBL/1.0\nVersion: 1\n\
Original-Mail-From: <b+x@bounces.news.example.com>\nOriginal-Rcpt-To: <redacted@example.net>\n\n\
--F\nContent-Type: message/rfc822\n\n{}\nbody\n--F--\n",
        returned(h, "redacted")
    );
    let out = s.ingest(&msg);
    assert_eq!(code(&out), 0, "{}", show(&out));
    let v = s.status(1);
    for sub in v["subscriptions"].as_array().unwrap() {
        assert_eq!(sub["status"], "unsubscribed", "{v}");
        assert!(
            sub["unsubscribe_reason"]
                .as_str()
                .unwrap()
                .starts_with("complaint"),
            "{v}"
        );
    }
    assert_eq!(v["subscriptions"].as_array().unwrap().len(), 2);
    let c = s.events("complaint");
    assert_eq!(c[0]["matched_by"], "message-id");
}

#[tokio::test]
async fn a_mailto_unsubscribe_ends_that_subscription_only() {
    let s = sent();
    let lu = &s.readers[1].2.list_unsubscribe;
    let token = lu
        .split("unsubscribe%20")
        .nth(1)
        .unwrap()
        .trim_end_matches('>');
    let msg = format!(
        "From: full@example.net\nTo: unsubscribe@news.example.com\nSubject: unsubscribe {token}\n\nSent from my phone\n"
    );
    let out = s.ingest(&msg);
    assert_eq!(code(&out), 0, "{}", show(&out));
    let v = s.status(1);
    let subs = v["subscriptions"].as_array().unwrap();
    let daily = subs.iter().find(|x| x["list"] == "daily").unwrap();
    let alerts = subs.iter().find(|x| x["list"] == "alerts").unwrap();
    assert_eq!(daily["status"], "unsubscribed");
    assert!(
        daily["unsubscribe_reason"]
            .as_str()
            .unwrap()
            .contains("mailto")
    );
    assert_eq!(alerts["status"], "active");
    assert_eq!(s.events("unsubscribe").len(), 1);
}

#[tokio::test]
async fn a_vacation_reply_is_counted_and_changes_nothing() {
    let s = sent();
    let to = s.verp(2).await;
    let msg = format!(
        "From: happy@example.com\nTo: {to}\nSubject: Out of office: Daily Digest\nAuto-Submitted: auto-replied\n\n\
I am away until Monday.\n"
    );
    let out = s.ingest(&msg);
    assert_eq!(code(&out), 0, "{}", show(&out));
    let a = s.events("auto-reply");
    assert_eq!(a.len(), 1);
    assert_eq!(a[0]["email"], "happy@example.com");
    assert_eq!(s.status(2)["status"], "active");
    assert_eq!(s.status(2)["subscriptions"][0]["status"], "active");
}

#[tokio::test]
async fn a_dsn_for_an_erased_reader_revives_nothing() {
    let s = sent();
    let to = s.verp(0).await;
    s.cli.ok(["subscribers", "remove", "gone@example.org"]);
    let msg = dsn(
        &to,
        "gone@example.org",
        "failed",
        "5.1.1",
        "550 5.1.1 <gone@example.org> unknown",
        "",
    );
    let out = s.ingest(&msg);
    assert_eq!(code(&out), 0, "{}", show(&out));
    let hard = s.events("hard");
    assert_eq!(hard.len(), 1);
    assert_eq!(hard[0]["email"], serde_json::Value::Null);
    assert_eq!(hard[0]["diagnostic"], serde_json::Value::Null);
    let all = s.cli.ok(["bounces", "list", "--json"]);
    assert!(!all.contains("gone@example.org"), "{all}");
    let listed = s.cli.ok(["subscribers", "list", "--json"]);
    assert!(!listed.contains("gone@example.org"), "{listed}");
    s.cli.fail(["subscribers", "show", "gone@example.org"]);
}

#[tokio::test]
async fn garbage_is_kept_unidentified_with_exit_0_and_an_unusable_database_asks_to_retry() {
    let s = sent();
    let out = s.ingest("\u{1}\u{2} not a message at all");
    assert_eq!(code(&out), 0, "{}", show(&out));
    assert_eq!(s.events("unidentified").len(), 1);

    // The database cannot be opened: EX_TEMPFAIL, so Postfix keeps the message.
    let dir = s.cli.path("a-directory");
    std::fs::create_dir_all(&dir).unwrap();
    let mut child = s
        .cli
        .command()
        .env("DISPATCH_DATABASE_PATH", &dir)
        .args(["bounces", "ingest"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"From: x@y.z\n\nhi\n")
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert_eq!(code(&out), 75, "{}", show(&out));
    // Nor may a config mistake lose it.
    let out = s
        .cli
        .command()
        .env("DISPATCH_BOUNCES_SOFT_THRESHOLD", "lots")
        .args(["bounces", "ingest"])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert_eq!(code(&out), 75, "{}", show(&out));
}

/// A throwaway Dovecot (Debian's dovecot-imapd) on a loopback port with implicit TLS, a
/// throwaway certificate, one plain-text user whose mail belongs to `nobody`.
struct Dovecot {
    child: std::process::Child,
    _dir: tempfile::TempDir,
    port: u16,
    ca: std::path::PathBuf,
}

impl Drop for Dovecot {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start_dovecot() -> Option<Dovecot> {
    use std::os::unix::fs::PermissionsExt as _;
    support::tools::require_all(&[support::tools::DOVECOT, support::tools::OPENSSL])?;
    // Dovecot's master must start as root to drop privileges to the mail user.
    if std::fs::read_to_string("/proc/self/status")
        .map(|s| !s.lines().any(|l| l.starts_with("Uid:\t0\t")))
        .unwrap_or(true)
    {
        eprintln!("SKIP dovecot test: needs root to start a throwaway Dovecot");
        return None;
    }
    let dir = tempfile::Builder::new()
        .prefix("dispatch-dovecot-")
        .tempdir()
        .unwrap();
    let d = dir.path();
    std::fs::set_permissions(d, std::fs::Permissions::from_mode(0o755)).unwrap();
    let o = std::process::Command::new("openssl")
        .current_dir(d)
        .args([
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-keyout",
            "key.pem",
            "-out",
            "cert.pem",
            "-days",
            "2",
            "-subj",
            "/CN=localhost",
            "-addext",
            "subjectAltName=DNS:localhost",
            "-addext",
            "basicConstraints=critical,CA:FALSE",
            "-addext",
            "extendedKeyUsage=serverAuth",
        ])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    std::fs::write(d.join("passwd"), "bounces:{PLAIN}s3cret-imap\n").unwrap();
    let home = d.join("home");
    std::fs::create_dir_all(&home).unwrap();
    let chown = std::process::Command::new("chown")
        .args(["-R", "nobody:nogroup"])
        .arg(&home)
        .status()
        .unwrap();
    assert!(chown.success());
    let port = support::free_port();
    let p = d.display();
    std::fs::write(
        d.join("dovecot.conf"),
        format!(
            "base_dir = {p}/run\nstate_dir = {p}/state\nlog_path = {p}/dovecot.log\n\
protocols = imap\nlisten = 127.0.0.1\nssl = required\nssl_cert = <{p}/cert.pem\nssl_key = <{p}/key.pem\n\
auth_mechanisms = plain\ndisable_plaintext_auth = yes\n\
passdb {{\n  driver = passwd-file\n  args = scheme=PLAIN {p}/passwd\n}}\n\
userdb {{\n  driver = static\n  args = uid=nobody gid=nogroup home={p}/home/%u\n}}\n\
mail_location = maildir:~/Maildir\n\
namespace inbox {{\n  inbox = yes\n  separator = /\n}}\n\
service imap-login {{\n  inet_listener imap {{\n    port = 0\n  }}\n  inet_listener imaps {{\n    port = {port}\n    ssl = yes\n  }}\n}}\n\
service anvil {{\n  chroot =\n}}\nservice imap-login {{\n  chroot =\n}}\n"
        ),
    )
    .unwrap();
    let child = std::process::Command::new("dovecot")
        .arg("-F")
        .arg("-c")
        .arg(d.join("dovecot.conf"))
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            std::time::Instant::now() < deadline,
            "dovecot did not listen: {}",
            std::fs::read_to_string(d.join("dovecot.log")).unwrap_or_default()
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    Some(Dovecot {
        child,
        port,
        ca: d.join("cert.pem"),
        _dir: dir,
    })
}

fn imap_config(dc: &Dovecot) -> dispatch::config::Imap {
    dispatch::config::Imap {
        host: Some("localhost".into()),
        port: dc.port,
        security: dispatch::config::ImapSecurity::Tls,
        ca_file: Some(dc.ca.clone()),
        username: Some("bounces".into()),
        password: Some(dispatch::config::Secret::new("s3cret-imap")),
        folder: "INBOX".into(),
        poll_secs: 60,
    }
}

/// A logged-in test client (not the code under test), to put mail in and look afterwards.
async fn imap_client(
    dc: &Dovecot,
) -> async_imap::Session<tokio_rustls::client::TlsStream<tokio::net::TcpStream>> {
    use rustls::pki_types::pem::PemObject as _;
    let mut roots = rustls::RootCertStore::empty();
    for c in rustls::pki_types::CertificateDer::pem_file_iter(&dc.ca).unwrap() {
        roots.add(c.unwrap()).unwrap();
    }
    let tls = rustls::ClientConfig::builder_with_provider(std::sync::Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots)
    .with_no_client_auth();
    let tcp = tokio::net::TcpStream::connect(("127.0.0.1", dc.port))
        .await
        .unwrap();
    let stream = tokio_rustls::TlsConnector::from(std::sync::Arc::new(tls))
        .connect("localhost".try_into().unwrap(), tcp)
        .await
        .unwrap();
    let mut client = async_imap::Client::new(stream);
    client.read_response().await.unwrap().unwrap();
    client
        .login("bounces", "s3cret-imap")
        .await
        .map_err(|(e, _)| e)
        .unwrap()
}

async fn subjects_in(
    s: &mut async_imap::Session<tokio_rustls::client::TlsStream<tokio::net::TcpStream>>,
    folder: &str,
) -> Vec<String> {
    use futures_util::StreamExt as _;
    s.select(folder).await.unwrap();
    let mut out = Vec::new();
    let mut f = s
        .fetch("1:*", "BODY.PEEK[HEADER.FIELDS (SUBJECT)]")
        .await
        .unwrap();
    while let Some(m) = f.next().await {
        let m = m.unwrap();
        if let Some(h) = m.header() {
            out.push(
                String::from_utf8_lossy(h)
                    .trim()
                    .trim_start_matches("Subject: ")
                    .to_owned(),
            );
        }
    }
    out.sort();
    out
}

#[tokio::test]
async fn one_poll_files_each_message_in_its_folder_sets_reader_states_and_deletes_nothing() {
    let Some(dc) = start_dovecot() else { return };
    let s = sent();
    let mut client = imap_client(&dc).await;
    client.create("Archive").await.unwrap();
    client
        .append(
            "Archive",
            None,
            None,
            "From: a@b.example\r\nSubject: kept letter\r\n\r\nhi\r\n",
        )
        .await
        .unwrap();
    let verp0 = s.verp(0).await;
    let verp2 = s.verp(2).await;
    let h1 = &s.readers[1].2;
    let arf = format!(
        "From: fbl@isp.example\nTo: abuse@news.example.com\nSubject: arf report\nMIME-Version: 1.0\n\
Content-Type: multipart/report; report-type=feedback-report; boundary=\"F\"\n\n--F\nContent-Type: text/plain\n\nabuse\n\n\
--F\nContent-Type: message/feedback-report\n\nFeedback-Type: abuse\n\n--F\nContent-Type: message/rfc822\n\n{}\nbody\n--F--\n",
        returned(h1, "full@example.net")
    );
    let mut dsn_msg = dsn(
        &verp0,
        "gone@example.org",
        "failed",
        "5.1.1",
        "550 5.1.1 unknown",
        "",
    );
    dsn_msg = dsn_msg.replace(
        "Subject: Undelivered Mail Returned to Sender",
        "Subject: a dsn",
    );
    let vacation = format!(
        "From: happy@example.com\nTo: {verp2}\nSubject: vacation\nAuto-Submitted: auto-replied\n\nAway.\n"
    );
    let stranger = "From: Stranger <stranger@example.net>\nTo: bounces@bounces.news.example.com\nSubject: stranger letter\n\nHello, is this the editor?\n";
    for m in [&dsn_msg, &arf, &vacation, &stranger.to_owned()] {
        client
            .append("INBOX", None, None, m.replace('\n', "\r\n").as_bytes())
            .await
            .unwrap();
    }

    let store = Store::open(s.cli.db()).await.unwrap();
    let (config, _) = dispatch::config::Config::load(Some(&s.cli.path("dispatch.toml"))).unwrap();
    let settings = dispatch::bounces::Settings::from_config(&config);
    let report = dispatch::bounces::imap::poll_once(&store, &settings, &imap_config(&dc))
        .await
        .unwrap();
    assert_eq!((report.processed, report.unidentified), (3, 1));
    store.close().await;

    assert_eq!(
        subjects_in(&mut client, "INBOX").await,
        Vec::<String>::new()
    );
    assert_eq!(
        subjects_in(&mut client, "processed").await,
        ["a dsn", "arf report", "vacation"]
    );
    assert_eq!(
        subjects_in(&mut client, "unidentified").await,
        ["stranger letter"]
    );
    assert_eq!(subjects_in(&mut client, "Archive").await, ["kept letter"]);
    let _ = client.logout().await;

    assert_eq!(s.status(0)["status"], "bounced");
    assert_eq!(s.status(1)["subscriptions"][0]["status"], "unsubscribed");
    assert_eq!(s.status(2)["status"], "active");
    assert_eq!(s.events("auto-reply").len(), 1);
    let u = s.events("unidentified");
    assert_eq!(u[0]["subject"], "stranger letter");
    assert_eq!(u[0]["source"], "imap");
}
