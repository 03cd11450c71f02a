//! Interoperability with an independent SMTP server: Python's aiosmtpd with STARTTLS (and
//! implicit TLS) and AUTH, a throwaway CA made by openssl. Without aiosmtpd or openssl the
//! tests skip with a notice, or fail under `DISPATCH_REQUIRE_TOOLS=1` (see `support::tools`).

mod support;

use std::io::{BufRead as _, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use chrono::Utc;
use dispatch::config::{self, Secret, Security};
use dispatch::domain::{EmailAddress, WebUrl};
use dispatch::mail::{
    CommonHeaders, MessageTemplate, Recipient, SendError, SmtpConnector, message_id,
};
use dispatch::render::{Hole, Template};
use support::tools;

const SERVER: &str = r#"
import sys, os, ssl
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword

mode, port, cert, key, outdir, user, password = sys.argv[1:8]

class Handler:
    async def handle_DATA(self, server, session, envelope):
        n = len([f for f in os.listdir(outdir) if f.endswith('.eml')])
        base = os.path.join(outdir, '%04d' % n)
        with open(base + '.rcpt', 'w') as f:
            f.write(envelope.mail_from + '\n' + '\n'.join(envelope.rcpt_tos))
        with open(base + '.tmp', 'wb') as f:
            f.write(envelope.original_content)
        os.rename(base + '.tmp', base + '.eml')
        return '250 2.0.0 OK queued'

def authenticator(server, session, envelope, mechanism, auth_data):
    ok = (isinstance(auth_data, LoginPassword)
          and auth_data.login == user.encode() and auth_data.password == password.encode())
    return AuthResult(success=ok, handled=False)

ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
ctx.load_cert_chain(cert, key)
kw = dict(hostname='127.0.0.1', port=int(port), authenticator=authenticator,
          server_hostname='localhost')
if mode == 'starttls':
    c = Controller(Handler(), tls_context=ctx, require_starttls=True, auth_require_tls=True, **kw)
else:
    # aiosmtpd only counts STARTTLS as TLS for auth_require_tls; this socket is TLS from the
    # first byte, so AUTH may be offered.
    c = Controller(Handler(), ssl_context=ctx, auth_require_tls=False, **kw)
c.start()
print('READY', flush=True)
sys.stdin.read()
c.stop()
"#;

fn openssl(dir: &Path, args: &[&str]) {
    let o = Command::new("openssl")
        .current_dir(dir)
        .args(args)
        .output()
        .unwrap();
    assert!(
        o.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
}

/// A throwaway CA and a certificate for `localhost` signed by it (rustls wants a real chain:
/// a self-signed CA certificate is not accepted as the server's own).
fn make_certs(dir: &Path) -> (PathBuf, PathBuf, PathBuf) {
    let ec = [
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
    ];
    openssl(
        dir,
        &[
            &["req", "-x509"][..],
            &ec,
            &[
                "-keyout",
                "ca.key",
                "-out",
                "ca.pem",
                "-days",
                "2",
                "-subj",
                "/CN=dispatch test CA",
            ],
        ]
        .concat(),
    );
    openssl(
        dir,
        &[
            &["req"][..],
            &ec,
            &[
                "-keyout",
                "key.pem",
                "-out",
                "leaf.csr",
                "-subj",
                "/CN=localhost",
            ],
        ]
        .concat(),
    );
    std::fs::write(
        dir.join("leaf.ext"),
        "subjectAltName=DNS:localhost,IP:127.0.0.1\nbasicConstraints=CA:FALSE\n",
    )
    .unwrap();
    openssl(
        dir,
        &[
            "x509",
            "-req",
            "-in",
            "leaf.csr",
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-out",
            "cert.pem",
            "-days",
            "2",
            "-extfile",
            "leaf.ext",
        ],
    );
    (
        dir.join("ca.pem"),
        dir.join("cert.pem"),
        dir.join("key.pem"),
    )
}

/// The aiosmtpd process; killed (by its own pid) when dropped.
struct PyServer {
    child: Child,
    port: u16,
    outdir: PathBuf,
}

impl Drop for PyServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl PyServer {
    fn start(dir: &Path, mode: &str, cert: &Path, key: &Path) -> Self {
        let port = support::free_port();
        let outdir = dir.join(format!("received-{mode}"));
        std::fs::create_dir_all(&outdir).unwrap();
        let script = dir.join("server.py");
        std::fs::write(&script, SERVER).unwrap();
        let mut child = Command::new(tools::PYTHON)
            .arg(&script)
            .args([mode, &port.to_string()])
            .args([cert, key, &outdir])
            .args(["mailer", "right horse battery staple"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut line = String::new();
            let _ = BufReader::new(stdout).read_line(&mut line);
            let _ = tx.send(line);
        });
        let line = rx
            .recv_timeout(Duration::from_secs(20))
            .expect("aiosmtpd did not start");
        assert_eq!(line.trim(), "READY", "aiosmtpd said {line:?}");
        Self {
            child,
            port,
            outdir,
        }
    }

    fn received(&self, n: usize) -> Vec<(Vec<u8>, String)> {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let mut files: Vec<PathBuf> = std::fs::read_dir(&self.outdir)
                .unwrap()
                .map(|e| e.unwrap().path())
                .filter(|p| p.extension().is_some_and(|e| e == "eml"))
                .collect();
            if files.len() >= n || Instant::now() > deadline {
                files.sort();
                return files
                    .iter()
                    .map(|p| {
                        (
                            std::fs::read(p).unwrap(),
                            std::fs::read_to_string(p.with_extension("rcpt")).unwrap(),
                        )
                    })
                    .collect();
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

fn smtp(port: u16, security: Security, ca: Option<&Path>, password: &str) -> config::Smtp {
    config::Smtp {
        host: "localhost".into(),
        port,
        security,
        username: Some("mailer".into()),
        password: Some(Secret::new(password)),
        timeout_secs: 10,
        ca_file: ca.map(Path::to_path_buf),
        ..config::Smtp::default()
    }
}

fn message() -> Vec<u8> {
    let h = CommonHeaders {
        from: "The Daily Ledger <digest@news.example.com>"
            .parse()
            .unwrap(),
        reply_to: None,
        subject: "روزنامہ خلاصہ — Daily Digest".into(),
        date: Utc::now(),
        list_id: "Daily Digest <daily.news.example.com>".into(),
        public_url: WebUrl::parse("https://news.example.com").unwrap(),
        unsubscribe_mailbox: "unsubscribe@news.example.com".into(),
        message_id_domain: "news.example.com".into(),
        feedback_id: None,
    };
    let marks = [("@T@", Hole::Token), ("@N@", Hole::Name)];
    let text = Template::from_marked(
        "Dear @N@,\n.\nUnsubscribe: https://news.example.com/unsubscribe/@T@\n",
        &marks,
    );
    let html = Template::from_marked(
        "<p>Dear @N@</p><a href=\"https://news.example.com/unsubscribe/@T@\">x</a>",
        &marks,
    );
    let mt = MessageTemplate::new(&h, &text, &html);
    let to = EmailAddress::parse("reader@example.org").unwrap();
    let mid = message_id(1, 2, mt.message_id_domain());
    let mut out = Vec::new();
    mt.personalise(
        &Recipient {
            to: &to,
            name: Some("عائشہ"),
            token: "AAAAAAAAAAAAAAAAAAAAAA",
            message_id: &mid,
        },
        &mut out,
    );
    out
}

async fn interop(mode: &str, security: Security) {
    let Some(_) = tools::require_all(&[tools::AIOSMTPD, tools::OPENSSL]) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let (ca, cert, key) = make_certs(dir.path());
    let server = PyServer::start(dir.path(), mode, &cert, &key);
    let bounce = EmailAddress::parse("bounces@news.example.com").unwrap();
    let to = EmailAddress::parse("reader@example.org").unwrap();
    let msg = message();

    let cfg = smtp(
        server.port,
        security,
        Some(&ca),
        "right horse battery staple",
    );
    let mut s = SmtpConnector::new(&cfg, "news.example.com")
        .unwrap()
        .connect()
        .await
        .unwrap();
    s.send(&bounce, &to, &msg).await.unwrap();
    s.send(&bounce, &to, &msg).await.unwrap();
    s.quit().await;
    let got = server.received(2);
    assert_eq!(got.len(), 2);
    assert_eq!(got[0].0, msg, "the message arrives byte for byte");
    assert_eq!(got[0].1, "bounces@news.example.com\nreader@example.org");

    // A wrong password is fatal.
    let bad = smtp(server.port, security, Some(&ca), "wrong");
    let err = SmtpConnector::new(&bad, "news.example.com")
        .unwrap()
        .connect()
        .await
        .unwrap_err();
    assert!(err.is_fatal() && err.to_string().contains("535"), "{err:?}");

    // Without the CA the certificate is not trusted: fatal, and no plain-text fallback.
    let untrusted = smtp(server.port, security, None, "right horse battery staple");
    let err = SmtpConnector::new(&untrusted, "news.example.com")
        .unwrap()
        .connect()
        .await
        .unwrap_err();
    assert!(matches!(err, SendError::Fatal { .. }), "{err:?}");
    assert_eq!(server.received(2).len(), 2);
}

#[tokio::test]
async fn starttls_and_auth_against_aiosmtpd() {
    interop("starttls", Security::Starttls).await;
}

#[tokio::test]
async fn implicit_tls_and_auth_against_aiosmtpd() {
    interop("tls", Security::Tls).await;
}
