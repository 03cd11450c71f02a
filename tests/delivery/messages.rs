//! What arrives: every message carries the headers and parts it must (read back by Python's
//! `email` package), and a DKIM signature that dkimpy verifies and that breaks when a
//! `List-Unsubscribe` is added in transit.

use std::collections::{BTreeMap, HashSet};
use std::process::Command;

use crate::support::smtp_server::{ServerConfig, SmtpServer};
use crate::support::tools;
use crate::{assert_each_once, fixture, header};
use base64::Engine as _;
use chrono::Utc;
use dispatch::config;
use dispatch::domain::{EmailAddress, Token};
use dispatch::store::subscribers::NewSubscription;
use dispatch::store::tokens::READER_PURPOSES;

/// Parses messages with Python's `email` package (an independent parser) and returns, per
/// message, its headers, parts and defects as JSON.
const PARSE: &str = r#"
import sys, json, email, email.policy, email.utils
out = []
for path in sys.argv[1:]:
    raw = open(path, 'rb').read()
    m = email.message_from_bytes(raw, policy=email.policy.default)
    defects = [type(d).__name__ for part in m.walk() for d in part.defects]
    for k, v in m.items():
        defects += [k + ':' + type(d).__name__ for d in getattr(v, 'defects', ())]
    out.append({
        "headers": [[k, str(v)] for k, v in m.items()],
        "type": m.get_content_type(),
        "parts": [{"type": p.get_content_type(), "charset": p.get_content_charset(),
                   "cte": p.get("Content-Transfer-Encoding"), "body": p.get_content()}
                  for p in m.iter_parts()],
        "defects": defects,
        "date": email.utils.parsedate_to_datetime(str(m["Date"])).timestamp(),
        "from": [[a.display_name, a.addr_spec] for a in m["From"].addresses],
        "to": [[a.display_name, a.addr_spec] for a in m["To"].addresses],
    })
print(json.dumps(out))
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_message_carries_the_headers_and_parts_it_must() {
    let Some(_) = tools::require(tools::PYTHON_EMAIL) else {
        return;
    };
    let server = SmtpServer::start(ServerConfig::default()).await;
    let f = fixture(&server, 3, |_| {}).await;
    f.store
        .subscribe_batch(
            f.list.id,
            &[
                NewSubscription {
                    email: EmailAddress::parse("ayesha@example.pk").unwrap(),
                    name: Some("عائشہ خان".into()),
                    categories: None,
                },
                NewSubscription {
                    email: EmailAddress::parse("noname@example.org").unwrap(),
                    name: None,
                    categories: None,
                },
            ],
            "test",
            false,
        )
        .await
        .unwrap();
    let id = f.digest().await;
    let report = f.run(Some(HashSet::from([id]))).await;
    assert_eq!(report.sent, 5, "{report:?}");
    let subject = f.store.edition(id).await.unwrap().subject;

    let got = server.received();
    assert_eq!(got.len(), 5);
    let dir = tempfile::tempdir().unwrap();
    let mut paths = Vec::new();
    for (i, r) in got.iter().enumerate() {
        // On the wire: CRLF only, 7-bit, no line over 998 octets (RFC 5322 §2.1.1).
        let text = std::str::from_utf8(&r.data).expect("utf-8");
        assert!(text.is_ascii(), "7-bit message for {}", r.to[0]);
        assert!(text.ends_with("\r\n"));
        for line in text.split("\r\n") {
            assert!(!line.contains('\n') && !line.contains('\r'), "bare CR/LF");
            assert!(line.len() <= 998, "long line: {line:?}");
        }
        assert!(
            text.contains("\r\nList-Unsubscribe-Post: List-Unsubscribe=One-Click\r\n"),
            "exact List-Unsubscribe-Post line"
        );
        assert_eq!(r.from, "digest@news.example.com", "envelope sender");
        let p = dir.path().join(format!("{i}.eml"));
        std::fs::write(&p, &r.data).unwrap();
        paths.push(p);
    }
    let out = Command::new(tools::PYTHON)
        .arg("-c")
        .arg(PARSE)
        .args(&paths)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let parsed: Vec<serde_json::Value> = serde_json::from_slice(&out.stdout).unwrap();

    let names: BTreeMap<&str, &str> = [
        ("reader000@example.org", "Reader 0"),
        ("reader001@example.org", "Reader 1"),
        ("reader002@example.org", "Reader 2"),
        ("ayesha@example.pk", "عائشہ خان"),
        ("noname@example.org", ""),
    ]
    .into();
    let mut message_ids = HashSet::new();
    let mut tokens = HashSet::new();
    for (r, m) in got.iter().zip(&parsed) {
        let to = r.to[0].as_str();
        let name = names[to];
        assert_eq!(m["defects"], serde_json::json!([]), "{to}: parser defects");
        let headers: Vec<(String, String)> = m["headers"]
            .as_array()
            .unwrap()
            .iter()
            .map(|h| {
                (
                    h[0].as_str().unwrap().to_owned(),
                    h[1].as_str().unwrap().to_owned(),
                )
            })
            .collect();
        let one = |n: &str| -> String {
            let v: Vec<&String> = headers
                .iter()
                .filter(|(k, _)| k.eq_ignore_ascii_case(n))
                .map(|(_, v)| v)
                .collect();
            assert_eq!(v.len(), 1, "{to}: {n} once, got {v:?}");
            v[0].clone()
        };
        assert_eq!(
            m["from"],
            serde_json::json!([["The Daily Ledger", "digest@news.example.com"]])
        );
        assert_eq!(
            m["to"],
            serde_json::json!([[name, to]]),
            "To: with the name"
        );
        assert_eq!(one("Subject"), subject);
        let date = m["date"].as_f64().unwrap();
        let now = Utc::now().timestamp() as f64;
        assert!((now - date).abs() < 900.0, "{to}: Date {date} vs now {now}");
        assert!(one("Date").ends_with("+0000"), "numeric UTC zone");
        let mid = one("Message-ID");
        let inner = mid
            .strip_prefix('<')
            .and_then(|s| s.strip_suffix('>'))
            .unwrap_or_else(|| panic!("{to}: Message-ID {mid:?}"));
        let (left, right) = inner.split_once('@').unwrap();
        assert!(
            !left.is_empty()
                && right == "news.example.com"
                && !inner[left.len() + 1..].contains('@')
                && !inner.contains(|c: char| c.is_whitespace() || c == '<' || c == '>'),
            "{mid}"
        );
        assert!(message_ids.insert(mid.clone()), "Message-ID unique: {mid}");
        assert_eq!(one("MIME-Version"), "1.0");
        assert_eq!(one("List-Id"), "Daily Digest <daily.news.example.com>");
        assert_eq!(one("List-Unsubscribe-Post"), "List-Unsubscribe=One-Click");
        // <https://…/unsubscribe/TOKEN>, <mailto:unsubscribe@…?subject=unsubscribe%20TOKEN>
        let lu: String = one("List-Unsubscribe").split_whitespace().collect();
        let uris: Vec<&str> = lu
            .split(',')
            .map(|u| {
                u.strip_prefix('<')
                    .and_then(|u| u.strip_suffix('>'))
                    .unwrap_or_else(|| panic!("{to}: List-Unsubscribe {lu:?}"))
            })
            .collect();
        assert_eq!(uris.len(), 2, "{lu}");
        let token = uris[0]
            .strip_prefix("https://news.example.com/unsubscribe/")
            .unwrap_or_else(|| panic!("one https URI first: {lu}"));
        assert_eq!(
            uris[1],
            format!("mailto:unsubscribe@news.example.com?subject=unsubscribe%20{token}")
        );
        assert!(!lu.contains("http://"));
        assert!(tokens.insert(token.to_owned()), "token per message");
        // The token is the reader's own: it unsubscribes this reader from this list.
        let target = f
            .store
            .token_target(&Token::parse(token).unwrap(), READER_PURPOSES)
            .await
            .unwrap()
            .expect("the token is stored");
        let sub = f
            .store
            .subscriber_by_email(&EmailAddress::parse(to).unwrap())
            .await
            .unwrap();
        assert_eq!((target.subscriber_id, target.list_id), (sub.id, f.list.id));

        assert_eq!(m["type"], "multipart/alternative");
        let parts = m["parts"].as_array().unwrap();
        let kinds: Vec<(&str, &str)> = parts
            .iter()
            .map(|p| (p["type"].as_str().unwrap(), p["charset"].as_str().unwrap()))
            .collect();
        assert_eq!(
            kinds,
            [("text/plain", "utf-8"), ("text/html", "utf-8")],
            "text first, then HTML"
        );
        let greeting = if name.is_empty() {
            "Hello,".to_owned()
        } else {
            format!("Hello {name},")
        };
        for p in parts {
            let body = p["body"].as_str().unwrap();
            assert!(
                body.contains(&greeting),
                "{to}: {} greets with {greeting:?}",
                p["type"]
            );
            assert!(!body.contains("Hello ,") && !body.contains("Hello{"));
            assert!(
                body.contains(token),
                "{to}: the body links the reader's token"
            );
        }
    }
}

/// Checks DKIM signatures with dkimpy; the DNS lookup returns `argv[2]`'s record.
const VERIFY: &str = r#"
import sys, dkim
txt = open(sys.argv[1], 'rb').read()
def dnsfunc(name, timeout=5):
    assert name in (b'digest2026._domainkey.news.example.com.', 'digest2026._domainkey.news.example.com.'), name
    return txt
for path in sys.argv[2:]:
    print('PASS' if dkim.verify(open(path, 'rb').read(), dnsfunc=dnsfunc) else 'FAIL')
"#;

fn openssl(args: &[&str]) -> Option<Vec<u8>> {
    let o = Command::new("openssl").args(args).output().ok()?;
    o.status.success().then_some(o.stdout)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn messages_sent_by_the_engine_carry_a_valid_dkim_signature() {
    let Some(_) = tools::require_all(&[tools::OPENSSL, tools::DKIMPY]) else {
        return;
    };
    let keys = tempfile::tempdir().unwrap();
    let key = keys.path().join("k.pem");
    let k = key.to_str().unwrap();
    openssl(&["genrsa", "-traditional", "-out", k, "2048"]).expect("openssl genrsa");
    let spki = openssl(&["pkey", "-in", k, "-pubout", "-outform", "DER"]).unwrap();
    let record = format!(
        "v=DKIM1; k=rsa; p={}",
        base64::engine::general_purpose::STANDARD.encode(spki)
    );

    let server = SmtpServer::start(ServerConfig::default()).await;
    let n = 4;
    let f = fixture(&server, n, |c| {
        c.dkim = Some(config::Dkim {
            domain: "news.example.com".into(),
            selector: "digest2026".into(),
            private_key_path: key.clone(),
        });
    })
    .await;
    let id = f.digest().await;
    let report = f.run(Some(HashSet::from([id]))).await;
    assert_eq!(report.sent, n as u64, "{report:?}");
    let got = server.received();
    assert_each_once(&got, n, &[]);

    let rec = keys.path().join("record.txt");
    std::fs::write(&rec, &record).unwrap();
    let mut paths = Vec::new();
    for (i, r) in got.iter().enumerate() {
        let sig = header(&r.data, "DKIM-Signature").expect("signed");
        assert!(
            r.data.starts_with(b"DKIM-Signature: "),
            "the signature is the first header"
        );
        let tags: String = sig.split_whitespace().collect();
        let h: Vec<String> = tags
            .split(';')
            .find_map(|t| t.strip_prefix("h="))
            .unwrap()
            .split(':')
            .map(str::to_ascii_lowercase)
            .collect();
        for want in [
            "from",
            "to",
            "subject",
            "date",
            "message-id",
            "list-id",
            "list-unsubscribe",
            "list-unsubscribe-post",
        ] {
            assert!(h.iter().any(|x| x == want), "h= lacks {want}: {h:?}");
        }
        assert!(tags.contains("d=news.example.com;") && tags.contains("s=digest2026;"));
        let p = keys.path().join(format!("{i}.eml"));
        std::fs::write(&p, &r.data).unwrap();
        paths.push(p);
        // A copy with a second List-Unsubscribe added in transit must fail (oversigning).
        let mut forged = b"List-Unsubscribe: <https://evil.example/x>\r\n".to_vec();
        let sig_end = r.data.windows(2).enumerate().skip(1).find_map(|(j, w)| {
            (w == b"\r\n" && r.data.get(j + 2).is_some_and(|b| *b != b' ' && *b != b'\t'))
                .then_some(j + 2)
        });
        let sig_end = sig_end.unwrap();
        let mut copy = r.data[..sig_end].to_vec();
        copy.append(&mut forged);
        copy.extend_from_slice(&r.data[sig_end..]);
        let p = keys.path().join(format!("{i}-forged.eml"));
        std::fs::write(&p, copy).unwrap();
        paths.push(p);
    }
    let out = Command::new(tools::PYTHON)
        .arg("-c")
        .arg(VERIFY)
        .arg(&rec)
        .args(&paths)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let verdicts: Vec<String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_owned)
        .collect();
    let want: Vec<&str> = (0..n).flat_map(|_| ["PASS", "FAIL"]).collect();
    assert_eq!(verdicts, want, "genuine copies verify, forged ones do not");
}
