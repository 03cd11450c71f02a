//! Tests for the MIME template: a small parser of our own, and Python's `email` package as an
//! independent reader.

use super::*;
use crate::domain::{Hole, Template, Token};

pub(crate) const URDU_SUBJECT: &str =
    "روزنامہ خلاصہ: وزیر اعظم کا استعفیٰ، بجٹ پر بحث اور کرکٹ کے تازہ ترین نتائج — ۲۸ نومبر ۲۰۲۶";

pub(crate) fn headers(subject: &str) -> CommonHeaders {
    CommonHeaders {
        from: "The Daily Ledger <digest@news.example.com>"
            .parse()
            .unwrap(),
        reply_to: Some("Letters Desk <letters@news.example.com>".parse().unwrap()),
        subject: subject.to_owned(),
        date: DateTime::parse_from_rfc3339("2026-11-28T07:00:00+05:00")
            .unwrap()
            .with_timezone(&Utc),
        list_id: "Daily Digest <daily.news.example.com>".to_owned(),
        public_url: WebUrl::parse("https://news.example.com/").unwrap(),
        unsubscribe_mailbox: "unsubscribe@news.example.com".to_owned(),
        message_id_domain: "news.example.com".to_owned(),
        feedback_id: Some("daily:digest:dailyledger".to_owned()),
    }
}

const T: &str = "@@TOKEN@@";
const N: &str = "@@NAME@@";

fn marked(s: &str) -> Template {
    Template::from_marked(s, &[(T, Hole::Token), (N, Hole::Name)])
}

/// A text and an HTML body with every awkward case: Urdu, long lines, trailing spaces and
/// tabs, '=' signs, lines starting with "." and "From ", tokens at every column, names at
/// line starts and ends.
pub(crate) fn bodies() -> (Template, Template) {
    let mut text = String::new();
    text.push_str(&format!("Dear {N},\n\nHere is today's digest.  \n"));
    text.push_str("From the desk: a=b and 100% = everything\t\n.\n.leading dot\n");
    text.push_str("اسلام آباد: وزیر اعظم نے آج استعفیٰ دے دیا۔ یہ خبر ہمارے نمائندے نے دی ہے اور مزید تفصیلات جلد آئیں گی۔\n");
    for i in 0..80 {
        text.push_str(&"x".repeat(i));
        text.push_str(&format!("https://news.example.com/preferences/{T}\n"));
    }
    text.push_str(&format!(
        "{N}\n{N}{N}Unsubscribe: https://news.example.com/unsubscribe/{T}\nBye {N} "
    ));
    let mut html = String::from("<!doctype html><html lang=\"ur\" dir=\"rtl\"><body><p>سلام ");
    html.push_str(&format!("{N}!</p>"));
    for i in 0..40 {
        html.push_str(&format!(
            "<tr><td dir=\"rtl\" style=\"direction:rtl;text-align:right\"><a href=\"https://news.example.com/a/{i}?utm=x&amp;t={T}\">خبر نمبر {i} — کراچی میں بارش</a></td></tr>"
        ));
    }
    html.push_str(&format!("<p><a href=\"https://news.example.com/unsubscribe/{T}\">Unsubscribe</a> {N}</p></body></html>\n"));
    (marked(&text), marked(&html))
}

pub(crate) fn token(i: usize) -> String {
    let t = format!("t{i:03}_AbC-dEf_gHiJkLmNo");
    assert_eq!(t.len(), Token::LEN);
    t
}

/// Canonical line breaks (RFC 2046 §4.1.1): every `\n` is CRLF.
fn crlf(s: &str) -> String {
    s.replace("\r\n", "\n").replace('\n', "\r\n")
}

pub(crate) fn personalised(name: Option<&str>) -> (Vec<u8>, Template, Template, String) {
    let (text, html) = bodies();
    let mt = MessageTemplate::new_qp(&headers(URDU_SUBJECT), &text, &html);
    let to = EmailAddress::parse("ayesha.khan@example.pk").unwrap();
    let tok = token(7);
    let mid = message_id(12, 34, mt.message_id_domain());
    let mut out = Vec::new();
    mt.personalise(
        &Recipient {
            to: &to,
            name,
            token: &tok,
            message_id: &mid,
        },
        &mut out,
    );
    (out, text, html, mid)
}

// ----- a deliberately simple parser -----------------------------------------------------------

struct Parsed {
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

fn split_message(msg: &[u8]) -> Parsed {
    let pos = msg
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("header/body separator");
    let head = std::str::from_utf8(&msg[..pos + 2]).unwrap();
    let mut headers: Vec<(String, String)> = Vec::new();
    for line in head.split("\r\n").filter(|l| !l.is_empty()) {
        if line.starts_with(' ') || line.starts_with('\t') {
            let last = headers.last_mut().expect("continuation after a field");
            last.1.push_str(line); // unfold: drop the CRLF, keep the WSP (RFC 5322 §2.2.3)
        } else {
            let (k, v) = line.split_once(':').expect("field has a colon");
            assert!(!k.contains(' '), "bad field name {k:?}");
            headers.push((k.to_owned(), v.trim_start().to_owned()));
        }
    }
    Parsed {
        headers,
        body: msg[pos + 4..].to_vec(),
    }
}

impl Parsed {
    fn all(&self, name: &str) -> Vec<&str> {
        self.headers
            .iter()
            .filter(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
            .collect()
    }
    fn one(&self, name: &str) -> &str {
        let v = self.all(name);
        assert_eq!(v.len(), 1, "{name} must appear exactly once: {v:?}");
        v[0]
    }
}

fn qp_decode(s: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    let mut i = 0;
    while i < s.len() {
        if s[i] == b'=' {
            if s[i + 1..].starts_with(b"\r\n") {
                i += 3;
                continue;
            }
            let hex = std::str::from_utf8(&s[i + 1..i + 3]).unwrap();
            out.push(u8::from_str_radix(hex, 16).unwrap());
            i += 3;
        } else {
            out.push(s[i]);
            i += 1;
        }
    }
    out
}

/// Decodes a header value made of RFC 2047 B-words and plain text.
fn decode_2047(v: &str) -> String {
    let mut out = Vec::new();
    let mut rest = v;
    let mut prev_was_word = false;
    while !rest.is_empty() {
        if let Some(start) = rest.find("=?") {
            let between = &rest[..start];
            if !(prev_was_word && between.trim().is_empty()) {
                out.extend_from_slice(between.as_bytes());
            }
            let after = &rest[start + 2..];
            let end = after.find("?=").unwrap();
            let word = &after[..end];
            let mut parts = word.splitn(3, '?');
            let (cs, enc, data) = (
                parts.next().unwrap(),
                parts.next().unwrap(),
                parts.next().unwrap(),
            );
            assert!(cs.eq_ignore_ascii_case("utf-8") && enc.eq_ignore_ascii_case("b"));
            assert!(word.len() + 4 <= 75, "encoded-word longer than 75: {word}");
            let bytes = BASE64.decode(data).unwrap();
            // Each word must hold whole characters.
            std::str::from_utf8(&bytes).expect("encoded-word splits a UTF-8 character");
            out.extend_from_slice(&bytes);
            rest = &after[end + 2..];
            prev_was_word = true;
        } else {
            out.extend_from_slice(rest.as_bytes());
            rest = "";
        }
    }
    String::from_utf8(out).unwrap()
}

/// Header lines are at most 78 characters, except a List-Unsubscribe URI, which cannot be
/// folded inside (RFC 2369 §2).
fn check_header_lines(head: &str) {
    for line in head.split("\r\n") {
        let one_uri = line
            .trim_start_matches("List-Unsubscribe: ")
            .trim()
            .trim_end_matches(',');
        let unfoldable =
            one_uri.starts_with('<') && one_uri.ends_with('>') && !one_uri.contains(' ');
        assert!(
            line.len() <= 78 || unfoldable,
            "header line over 78: {line:?}"
        );
    }
}

fn check_message(
    msg: &[u8],
    text: &Template,
    html: &Template,
    name: Option<&str>,
    tok: &str,
    mid: &str,
) {
    // 7-bit, CRLF only, line lengths.
    assert!(msg.is_ascii(), "message must be 7-bit clean");
    for (i, w) in msg.windows(2).enumerate() {
        if w[1] == b'\n' {
            assert_eq!(w[0], b'\r', "bare LF at {i}");
        }
        if w[0] == b'\r' {
            assert_eq!(w[1], b'\n', "bare CR at {i}");
        }
    }
    assert!(msg.ends_with(b"\r\n"));
    let text_msg = std::str::from_utf8(msg).unwrap();
    for line in text_msg.split("\r\n") {
        assert!(line.len() <= 998, "line over 998: {line}");
    }
    let p = split_message(msg);
    let head_end = text_msg.find("\r\n\r\n").unwrap();
    check_header_lines(&text_msg[..head_end]);

    for h in [
        "From",
        "Reply-To",
        "To",
        "Subject",
        "Date",
        "Message-ID",
        "MIME-Version",
        "List-Id",
        "List-Unsubscribe",
        "List-Unsubscribe-Post",
        "Auto-Submitted",
        "Feedback-ID",
        "Content-Type",
    ] {
        p.one(h);
    }
    assert_eq!(p.one("MIME-Version"), "1.0");
    assert_eq!(p.one("List-Unsubscribe-Post"), "List-Unsubscribe=One-Click");
    assert_eq!(p.one("Auto-Submitted"), "auto-generated");
    assert_eq!(p.one("Date"), "Sat, 28 Nov 2026 02:00:00 +0000");
    DateTime::parse_from_rfc2822(p.one("Date")).unwrap();
    assert_eq!(decode_2047(p.one("Subject")), URDU_SUBJECT);
    assert_eq!(p.one("List-Id"), "Daily Digest <daily.news.example.com>");

    // Message-ID: ^<[^<>@\s]+@[^<>@\s]+>$
    let m = p.one("Message-ID");
    assert_eq!(m, mid);
    let inner = m
        .strip_prefix('<')
        .and_then(|m| m.strip_suffix('>'))
        .unwrap();
    let (l, r) = inner.split_once('@').unwrap();
    for part in [l, r] {
        assert!(
            !part.is_empty()
                && !part.contains(['<', '>', '@'])
                && !part.contains(char::is_whitespace)
        );
    }

    // To: display name decodes back.
    let to = p.one("To");
    match name {
        Some(n) => {
            let (phrase, addr) = to.rsplit_once('<').unwrap();
            assert_eq!(addr, "ayesha.khan@example.pk>");
            let phrase = phrase.trim();
            let decoded = if phrase.starts_with('"') {
                phrase[1..phrase.len() - 1]
                    .replace("\\\"", "\"")
                    .replace("\\\\", "\\")
            } else {
                decode_2047(phrase)
            };
            assert_eq!(decoded, n.trim());
        }
        None => assert_eq!(to, "ayesha.khan@example.pk"),
    }

    // List-Unsubscribe (RFC 2369): strip whitespace, then <uri>(,<uri>)*.
    let lu: String = p
        .one("List-Unsubscribe")
        .chars()
        .filter(|c| !c.is_whitespace())
        .collect();
    let uris: Vec<&str> = lu.split(',').collect();
    for u in &uris {
        assert!(
            u.starts_with('<') && u.ends_with('>') && u[1..u.len() - 1].find(['<', '>']).is_none(),
            "{lu}"
        );
    }
    assert_eq!(
        uris[0],
        format!("<https://news.example.com/unsubscribe/{tok}>")
    );
    assert_eq!(
        uris[1],
        format!("<mailto:unsubscribe@news.example.com?subject=unsubscribe%20{tok}>")
    );
    assert_eq!(
        uris.iter().filter(|u| u.starts_with("<https://")).count(),
        1
    );
    // Folded only between the URIs.
    let raw_lu_start = text_msg.find("List-Unsubscribe: ").unwrap();
    let raw_lu = &text_msg[raw_lu_start..];
    let raw_lu = &raw_lu[..raw_lu.find("\r\nList-Unsubscribe-Post").unwrap()];
    assert_eq!(raw_lu.matches("\r\n").count(), 1);
    assert!(raw_lu.contains(">,\r\n <mailto:"));

    // multipart/alternative: text/plain then text/html, utf-8, quoted-printable.
    let ct = p.one("Content-Type");
    assert!(ct.starts_with("multipart/alternative;"), "{ct}");
    assert!(text_msg.contains("\r\nContent-Type: multipart/alternative;\r\n boundary="));
    let boundary = ct
        .split("boundary=\"")
        .nth(1)
        .unwrap()
        .trim_end_matches('"');
    let body = std::str::from_utf8(&p.body).unwrap();
    let delim = format!("\r\n--{boundary}");
    let body = format!("\r\n{body}");
    let mut chunks: Vec<&str> = body.split(&delim).collect();
    assert_eq!(chunks.remove(0), "", "no preamble expected");
    assert_eq!(chunks.pop(), Some("--\r\n"), "close delimiter");
    assert_eq!(chunks.len(), 2);
    let fill = |t: &Template, escape: bool| {
        crlf(&t.fill(|h| match h {
            Hole::Token => tok.to_owned(),
            Hole::Name => {
                // The hole carries its own leading space: `Hello{Name},`.
                let n = name.unwrap_or("").trim();
                let n = if escape { html_escape(n) } else { n.to_owned() };
                if n.is_empty() { n } else { format!(" {n}") }
            }
        }))
    };
    for (chunk, (mime, tpl, esc)) in chunks
        .iter()
        .zip([("text/plain", text, false), ("text/html", html, true)])
    {
        let chunk = chunk.strip_prefix("\r\n").unwrap();
        let part = split_message(chunk.as_bytes());
        assert_eq!(part.one("Content-Type"), format!("{mime}; charset=utf-8"));
        let body = std::str::from_utf8(&part.body).unwrap();
        if part.one("Content-Transfer-Encoding") == "base64" {
            for line in body.split("\r\n") {
                assert!(line.len() <= 76, "base64 line over 76: {line:?}");
                assert!(
                    line.bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b"+/=".contains(&b)),
                    "not base64: {line:?}"
                );
            }
            let joined: String = body.split("\r\n").collect();
            let decoded = String::from_utf8(BASE64.decode(joined).unwrap()).unwrap();
            // The only difference allowed: 0-2 spaces before a line break (a name's padding).
            let trimmed = |s: &str| -> Vec<String> {
                s.split("\r\n")
                    .map(|l| l.trim_end_matches(' ').to_owned())
                    .collect()
            };
            assert_eq!(
                trimmed(&decoded),
                trimmed(&fill(tpl, esc)),
                "{mime} decodes back"
            );
            assert!(
                decoded.len() <= fill(tpl, esc).len() + 2 * holes(tpl),
                "{mime} padding"
            );
            continue;
        }
        assert_eq!(part.one("Content-Transfer-Encoding"), "quoted-printable");
        for line in body.split("\r\n") {
            assert!(line.len() <= 76, "QP line over 76: {line:?}");
            assert!(
                !line.ends_with(' ') && !line.ends_with('\t'),
                "trailing whitespace: {line:?}"
            );
            assert!(!line.starts_with('.'), "line starts with '.': {line:?}");
            assert!(
                !line.starts_with("From "),
                "line starts with 'From ': {line:?}"
            );
        }
        let decoded = String::from_utf8(qp_decode(&part.body)).unwrap();
        assert_eq!(
            decoded,
            fill(tpl, esc),
            "{mime} decodes back to the filled template"
        );
    }
}

#[test]
fn personalised_messages_parse_and_decode_exactly() {
    let names: [Option<&str>; 7] = [
        None,
        Some("Ayesha Khan"),
        Some("عائشہ خان"),
        Some("Dr. O'Brien \"The Editor\" \\ <x>"),
        Some("  Zoë & <Friends>  "),
        Some("evil\r\nBcc: victim@example.com"),
        Some("A very long name that goes on and on well past the point of reason, Esq."),
    ];
    for name in names {
        let (msg, text, html, mid) = personalised(name);
        let name = name.map(|n| n.replace(['\r', '\n'], " "));
        check_message(&msg, &text, &html, name.as_deref(), &token(7), &mid);
        assert!(
            !String::from_utf8_lossy(&msg).contains("\r\nBcc:"),
            "header injection"
        );
    }
}

fn holes(t: &Template) -> usize {
    t.segments()
        .iter()
        .filter(|s| matches!(s, Segment::Hole(_)))
        .count()
}

#[test]
fn urdu_bodies_go_base64_and_every_hole_splices_at_every_alignment() {
    // Names of every length mod 3, Urdu and escaped ones; tokens before, after and between.
    let (text, html) = bodies();
    let mt = MessageTemplate::new(&headers(URDU_SUBJECT), &text, &html);
    let to = EmailAddress::parse("ayesha.khan@example.pk").unwrap();
    let names: [Option<&str>; 8] = [
        None,
        Some("A"),
        Some("Ab"),
        Some("Abc"),
        Some("عائشہ خان"),
        Some("Zoë & <Friends>"),
        Some("evil\r\nBcc: victim@example.com"),
        Some("A very long name that goes on and on well past the point of reason, Esq."),
    ];
    let mut saw_base64 = false;
    for (i, name) in names.into_iter().enumerate() {
        let tok = token(i);
        let mid = message_id(12, 34, mt.message_id_domain());
        let mut out = Vec::new();
        mt.personalise(
            &Recipient {
                to: &to,
                name,
                token: &tok,
                message_id: &mid,
            },
            &mut out,
        );
        saw_base64 |= String::from_utf8_lossy(&out).contains("Transfer-Encoding: base64");
        let name = name.map(|n| n.replace(['\r', '\n'], " "));
        check_message(&out, &text, &html, name.as_deref(), &tok, &mid);
    }
    assert!(saw_base64, "the Urdu HTML body is smaller in base64");
}

#[test]
fn english_bodies_stay_quoted_printable() {
    let text = marked(&format!(
        "Hello{N},\n\nThe budget passed.\nhttps://news.example.com/unsubscribe/{T}\n"
    ));
    let html = marked(&format!(
        "<p>Hello{N},</p><p><a href=\"https://news.example.com/unsubscribe/{T}\">Unsubscribe</a></p>\n"
    ));
    let mt = MessageTemplate::new(&headers(URDU_SUBJECT), &text, &html);
    let to = EmailAddress::parse("ayesha.khan@example.pk").unwrap();
    let (tok, mid) = (token(1), message_id(1, 2, "news.example.com"));
    let mut out = Vec::new();
    let r = Recipient {
        to: &to,
        name: Some("Omar"),
        token: &tok,
        message_id: &mid,
    };
    mt.personalise(&r, &mut out);
    let s = String::from_utf8(out.clone()).unwrap();
    assert_eq!(
        s.matches("Content-Transfer-Encoding: quoted-printable")
            .count(),
        2,
        "{s}"
    );
    check_message(&out, &text, &html, Some("Omar"), &tok, &mid);
}

#[test]
fn tokens_at_every_column_stay_on_one_line() {
    let (msg, ..) = personalised(Some("x"));
    let s = String::from_utf8(msg).unwrap();
    let tok = token(7);
    // The text body has the token after 0..80 x's: every occurrence must be whole on a line.
    let whole = s
        .split("\r\n")
        .map(|l| l.matches(tok.as_str()).count())
        .sum::<usize>();
    assert_eq!(whole, s.matches(tok.as_str()).count());
    assert!(whole >= 80 + 40 + 2 + 2);
}

#[test]
fn personalise_appends_and_is_stable_across_reuse() {
    let (text, html) = bodies();
    let mt = MessageTemplate::new_qp(&headers("Daily Digest - 28 November 2026"), &text, &html);
    let to = EmailAddress::parse("reader@example.org").unwrap();
    let mut out = Vec::new();
    let mut first = Vec::new();
    for i in 0..3 {
        out.clear();
        let (tok, mid) = (token(i), format!("<e1.s{i}.x@news.example.com>"));
        mt.personalise(
            &Recipient {
                to: &to,
                name: None,
                token: &tok,
                message_id: &mid,
            },
            &mut out,
        );
        if i == 0 {
            first = out.clone();
        }
    }
    out.clear();
    let (tok, mid) = (token(0), "<e1.s0.x@news.example.com>".to_owned());
    mt.personalise(
        &Recipient {
            to: &to,
            name: None,
            token: &tok,
            message_id: &mid,
        },
        &mut out,
    );
    assert_eq!(out, first);
    assert!(out.len() <= mt.size_hint());
    let p = split_message(&out);
    assert_eq!(p.one("Subject"), "Daily Digest - 28 November 2026");
}

#[test]
fn long_ascii_subject_folds_at_spaces() {
    let subject = "Breaking: the finance minister resigns after a week of protests in Islamabad and Lahore over the new budget";
    let (text, html) = bodies();
    let mt = MessageTemplate::new_qp(&headers(subject), &text, &html);
    let mut out = Vec::new();
    let to = EmailAddress::parse("r@example.org").unwrap();
    let tok = token(1);
    mt.personalise(
        &Recipient {
            to: &to,
            name: None,
            token: &tok,
            message_id: "<a@b.c>",
        },
        &mut out,
    );
    let s = String::from_utf8(out.clone()).unwrap();
    let head = &s[..s.find("\r\n\r\n").unwrap()];
    check_header_lines(head);
    assert_eq!(split_message(&out).one("Subject"), subject);
}

#[test]
fn message_ids_are_unique_and_well_formed() {
    let a = message_id(123, 456, "News.Example.com");
    let b = message_id(123, 456, "news.example.com");
    assert_ne!(a, b);
    assert!(
        a.starts_with("<e123.s456.") && a.ends_with("@news.example.com>"),
        "{a}"
    );
    assert_eq!(
        message_id(1, 2, " bad domain\r\n").split('@').nth(1),
        Some("baddomain>")
    );
}

#[test]
fn qp_encoder_handles_edges() {
    let mut out = Vec::new();
    let mut col = 0;
    qp_encode(
        &mut out,
        &mut col,
        "a \nb\t\r\n= \u{e9}.\n.x\nFrom me \n".as_bytes(),
        true,
    );
    assert_eq!(
        std::str::from_utf8(&out).unwrap(),
        "a=20\r\nb=09\r\n=3D =C3=A9.\r\n=2Ex\r\n=46rom me=20\r\n"
    );
    let mut out = Vec::new();
    let mut col = 0;
    qp_encode(&mut out, &mut col, b"end with space ", true);
    assert!(out.ends_with(b"space=20"));
}

/// Python's `email` package is an independent MIME reader.
#[test]
fn python_email_package_reads_the_message() {
    let Some(py) = crate::test_tools::require(crate::test_tools::PYTHON_EMAIL) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let name = "عائشہ \"Ayesha\" خان";
    let (msg, text, html, _) = personalised(Some(name));
    std::fs::write(dir.path().join("m.eml"), &msg).unwrap();
    let script = r#"
import sys, json, email
from email import policy
m = email.message_from_bytes(open(sys.argv[1], 'rb').read(), policy=policy.default)
parts = list(m.iter_parts())
print(json.dumps({
  "defects": [str(d) for d in m.defects] + [str(d) for p in parts for d in p.defects],
  "type": m.get_content_type(),
  "subject": str(m["subject"]),
  "to_name": m["to"].addresses[0].display_name,
  "to_addr": m["to"].addresses[0].addr_spec,
  "from_name": m["from"].addresses[0].display_name,
  "list_id": str(m["list-id"]),
  "parts": [[p.get_content_type(), p.get_content_charset(), p["content-transfer-encoding"], p.get_content()] for p in parts],
}))
"#;
    let o = std::process::Command::new(&py)
        .arg("-c")
        .arg(script)
        .arg(dir.path().join("m.eml"))
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["defects"], serde_json::json!([]));
    assert_eq!(v["type"], "multipart/alternative");
    assert_eq!(v["subject"], URDU_SUBJECT);
    assert_eq!(v["to_name"], name);
    assert_eq!(v["to_addr"], "ayesha.khan@example.pk");
    assert_eq!(v["from_name"], "The Daily Ledger");
    let parts = v["parts"].as_array().unwrap();
    assert_eq!(parts.len(), 2);
    let tok = token(7);
    let norm = |s: &str| s.replace("\r\n", "\n");
    for (p, (mime, t, esc)) in parts
        .iter()
        .zip([("text/plain", &text, false), ("text/html", &html, true)])
    {
        assert_eq!(p[0], mime);
        assert_eq!(p[1], "utf-8");
        assert_eq!(p[2], "quoted-printable");
        let want = t.fill(|h| match h {
            Hole::Token => tok.clone(),
            Hole::Name => {
                if esc {
                    format!(" {}", html_escape(name))
                } else {
                    format!(" {name}")
                }
            }
        });
        assert_eq!(norm(p[3].as_str().unwrap()), norm(&want), "{mime}");
    }
}
