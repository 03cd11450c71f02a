//! What a message that came back says, read with `mail-parser` for the MIME structure; the
//! report fields themselves are RFC 822-style `Field: value` groups, read here.
//!
//! The order decides what a message is, and it matters:
//! 1. `multipart/report` (RFC 6522) first, whatever else it carries: real DSNs from Postfix
//!    and Exim say `Auto-Submitted: auto-replied` too (RFC 3834 §5 asks them to), and a
//!    report is a report. `report-type=delivery-status` is a DSN (RFC 3464),
//!    `feedback-report` an ARF report (RFC 5965).
//! 2. A `mailto:` unsubscribe (RFC 2369): `unsubscribe <token>` in the subject or body.
//! 3. A bounce in plain text, as big providers still send: a bounce-looking sender or subject
//!    and an enhanced status code (RFC 3463) in the text.
//! 4. An automatic reply (RFC 3834 `Auto-Submitted`, and the common `X-Autoreply` kin).
//! 5. Anything else.

use mail_parser::{Message, MessageParser, MimeHeaders as _, PartType};

/// One recipient block of a DSN (RFC 3464 §2.3).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DsnRecipient {
    /// `Final-Recipient`, without its address type.
    pub final_recipient: Option<String>,
    /// `Original-Recipient`, without its address type.
    pub original_recipient: Option<String>,
    /// `Action`, lower-cased: failed, delayed, delivered, relayed, expanded.
    pub action: Option<String>,
    /// `Status`: the RFC 3463 code alone.
    pub status: Option<String>,
    /// `Diagnostic-Code`, without its type (`smtp; `).
    pub diagnostic: Option<String>,
}

/// An ARF report's fields (RFC 5965 §3.1).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Feedback {
    /// `Feedback-Type`, lower-cased (`abuse` when missing, as RFC 5965 readers do).
    pub feedback_type: String,
    pub original_rcpt_to: Option<String>,
    pub user_agent: Option<String>,
}

/// A bounce written as text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TextBounce {
    /// The first enhanced status code found.
    pub status: String,
    /// The line it was found on.
    pub diagnostic: String,
    /// `X-Failed-Recipients` (Exim, Gmail).
    pub recipients: Vec<String>,
}

/// What kind of message it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Kind {
    /// A delivery status notification, with its recipient blocks (maybe none).
    Delivery(Vec<DsnRecipient>),
    /// A feedback (complaint) report.
    Feedback(Feedback),
    /// Reader tokens offered by a `mailto:` unsubscribe, in the order found.
    Unsubscribe(Vec<String>),
    /// A bounce in prose.
    Text(TextBounce),
    /// An automatic reply.
    AutoReply,
    /// None of the above.
    Unknown,
}

/// The headers of our message that a bounce or report returns (a `message/rfc822` or
/// `text/rfc822-headers` part, or the text of a prose bounce).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Returned {
    pub message_ids: Vec<String>,
    /// The ids of `List-Id` (inside the angle brackets), lower-cased.
    pub list_ids: Vec<String>,
    /// Reader tokens in `List-Unsubscribe` URLs.
    pub tokens: Vec<String>,
}

/// A parsed message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Parsed {
    /// Where it was delivered to, best first: `Delivered-To`, `X-Original-To`, `Envelope-To`,
    /// `X-Envelope-To`, `To`, `Cc`.
    pub recipients: Vec<String>,
    /// `From` as written (display name and address).
    pub from: Option<String>,
    pub subject: Option<String>,
    pub kind: Kind,
    pub returned: Returned,
}

/// The most of a message that is parsed: DSNs and reports come first in a message, and what
/// follows (a returned message's attachments) is not needed.
pub const PARSE_LIMIT: usize = 4 << 20;

/// Reads a message. Never fails: bytes that are not a message at all are `Kind::Unknown`
/// with nothing else known.
pub fn parse(raw: &[u8]) -> Parsed {
    let raw = &raw[..raw.len().min(PARSE_LIMIT)];
    let Some(msg) = MessageParser::default().parse(raw) else {
        return Parsed {
            recipients: Vec::new(),
            from: None,
            subject: None,
            kind: Kind::Unknown,
            returned: Returned::default(),
        };
    };
    let recipients = envelope_recipients(&msg);
    let from = msg
        .from()
        .and_then(|a| a.first())
        .map(|a| match (a.name(), a.address()) {
            (Some(n), Some(addr)) => format!("{n} <{addr}>"),
            (None, Some(addr)) => addr.to_owned(),
            (Some(n), None) => n.to_owned(),
            (None, None) => String::new(),
        });
    let subject = msg.subject().map(str::to_owned);
    let mut returned = Returned::default();
    let kind = classify_structure(&msg, &mut returned, subject.as_deref(), from.as_deref());
    Parsed {
        recipients,
        from,
        subject,
        kind,
        returned,
    }
}

fn classify_structure(
    msg: &Message<'_>,
    returned: &mut Returned,
    subject: Option<&str>,
    from: Option<&str>,
) -> Kind {
    // Returned headers: every embedded message or header part, at any depth.
    for part in &msg.parts {
        if let PartType::Message(inner) = &part.body {
            scan_headers(
                &String::from_utf8_lossy(header_block(inner.raw_message())),
                returned,
            );
        } else if part.is_content_type("text", "rfc822-headers")
            && let Some(t) = part.text_contents()
        {
            scan_headers(t, returned);
        }
    }

    let report_type = msg
        .content_type()
        .filter(|ct| ct.ctype().eq_ignore_ascii_case("multipart"))
        .filter(|ct| {
            ct.subtype()
                .is_some_and(|s| s.eq_ignore_ascii_case("report"))
        })
        .and_then(|ct| ct.attribute("report-type"))
        .map(str::to_ascii_lowercase);
    if let Some(rt) = report_type {
        let part_text = |sub: &[&str]| {
            msg.parts
                .iter()
                .find(|p| sub.iter().any(|s| p.is_content_type("message", s)))
                .map(|p| String::from_utf8_lossy(p.contents()).into_owned())
        };
        match rt.as_str() {
            "delivery-status" => {
                let text =
                    part_text(&["delivery-status", "global-delivery-status"]).unwrap_or_default();
                return Kind::Delivery(dsn_recipients(&text));
            }
            "feedback-report" => {
                let text = part_text(&["feedback-report"]).unwrap_or_default();
                return Kind::Feedback(feedback(&text));
            }
            // Other reports (disposition notifications, TLS reports) are reports too: never
            // mistaken for a reply or a bounce.
            _ => return Kind::Unknown,
        }
    }

    let body: String = msg
        .text_bodies()
        .filter_map(|p| p.text_contents())
        .collect::<Vec<_>>()
        .join("\n");

    let tokens = unsubscribe_tokens(subject.unwrap_or(""), &body);
    if !tokens.is_empty() {
        return Kind::Unsubscribe(tokens);
    }

    let failed: Vec<String> = msg
        .header_values("X-Failed-Recipients")
        .filter_map(|v| v.as_text())
        .flat_map(|t| t.split(','))
        .map(|a| a.trim().to_owned())
        .filter(|a| a.contains('@'))
        .collect();
    let bouncy = !failed.is_empty() || looks_like_bounce(subject, from);
    if bouncy && let Some((status, line)) = find_status(&body) {
        // A prose bounce often quotes our message as text.
        scan_headers(&body, returned);
        return Kind::Text(TextBounce {
            status,
            diagnostic: line,
            recipients: failed,
        });
    }

    if is_auto_reply(msg) {
        return Kind::AutoReply;
    }
    Kind::Unknown
}

/// The header block of a message: everything before the first empty line.
fn header_block(raw: &[u8]) -> &[u8] {
    let end = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .or_else(|| raw.windows(2).position(|w| w == b"\n\n"))
        .unwrap_or(raw.len());
    &raw[..end]
}

fn envelope_recipients(msg: &Message<'_>) -> Vec<String> {
    let mut out = Vec::new();
    for name in [
        "Delivered-To",
        "X-Original-To",
        "Envelope-To",
        "X-Envelope-To",
    ] {
        for v in msg.header_values(name) {
            if let Some(t) = v.as_text() {
                out.push(t.trim().trim_matches(['<', '>']).to_owned());
            }
        }
    }
    for a in msg.to().into_iter().chain(msg.cc()) {
        for addr in a.iter() {
            if let Some(x) = addr.address() {
                out.push(x.to_owned());
            }
        }
    }
    out
}

/// Unfolds `text` (RFC 5322 §2.2.3) into groups of `(lower-cased name, value)` fields,
/// groups separated by blank lines.
pub fn field_groups(text: &str) -> Vec<Vec<(String, String)>> {
    let mut groups = Vec::new();
    let mut group: Vec<(String, String)> = Vec::new();
    for line in text.lines() {
        let line = line.trim_end_matches('\r');
        if line.trim().is_empty() {
            if !group.is_empty() {
                groups.push(std::mem::take(&mut group));
            }
            continue;
        }
        if line.starts_with([' ', '\t']) {
            if let Some((_, v)) = group.last_mut() {
                v.push(' ');
                v.push_str(line.trim());
            }
            continue;
        }
        if let Some((name, value)) = line.split_once(':') {
            let name = name.trim();
            if !name.is_empty() && !name.contains(' ') {
                group.push((name.to_ascii_lowercase(), value.trim().to_owned()));
            }
        }
    }
    if !group.is_empty() {
        groups.push(group);
    }
    groups
}

/// `rfc822; reader@example.org` → `reader@example.org`.
fn after_type(v: &str) -> String {
    v.split_once(';')
        .map_or(v, |(_, rest)| rest)
        .trim()
        .trim_matches(['<', '>'])
        .to_owned()
}

fn dsn_recipients(text: &str) -> Vec<DsnRecipient> {
    field_groups(text)
        .into_iter()
        .filter(|g| {
            g.iter()
                .any(|(n, _)| n == "final-recipient" || n == "action" || n == "status")
        })
        .map(|g| {
            let get = |name: &str| g.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str());
            DsnRecipient {
                final_recipient: get("final-recipient").map(after_type),
                original_recipient: get("original-recipient").map(after_type),
                action: get("action").map(|a| a.trim().to_ascii_lowercase()),
                status: get("status")
                    .and_then(|s| s.split_whitespace().next())
                    .map(str::to_owned),
                diagnostic: get("diagnostic-code").map(after_type),
            }
        })
        .collect()
}

fn feedback(text: &str) -> Feedback {
    let fields: Vec<(String, String)> = field_groups(text).into_iter().flatten().collect();
    let get = |name: &str| {
        fields
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.clone())
    };
    Feedback {
        feedback_type: get("feedback-type")
            .map(|t| t.to_ascii_lowercase())
            .unwrap_or_else(|| "abuse".into()),
        original_rcpt_to: get("original-rcpt-to").map(|v| after_type(&v)),
        user_agent: get("user-agent"),
    }
}

/// Collects our headers from a header block or a text quoting one.
fn scan_headers(text: &str, out: &mut Returned) {
    for group in field_groups_loose(text) {
        let (name, value) = group;
        match name.as_str() {
            "message-id" => {
                if let Some(id) = angle(&value) {
                    out.message_ids.push(id);
                }
            }
            "list-id" => {
                if let Some(id) = angle(&value) {
                    out.list_ids
                        .push(id.trim_matches(['<', '>']).to_ascii_lowercase());
                }
            }
            "list-unsubscribe" => {
                for t in list_unsubscribe_tokens(&value) {
                    out.tokens.push(t);
                }
            }
            _ => {}
        }
    }
}

/// Like [`field_groups`], but for text that is not only headers (a prose bounce): every line
/// that looks like a header field, unfolded.
fn field_groups_loose(text: &str) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = Vec::new();
    let mut last_was_field = false;
    for line in text.lines() {
        let line = line.trim_end_matches('\r');
        let trimmed = line.trim_start_matches(['>', ' ']);
        if last_was_field && line.starts_with([' ', '\t']) && !line.trim().is_empty() {
            if let Some((_, v)) = out.last_mut() {
                v.push(' ');
                v.push_str(line.trim());
            }
            continue;
        }
        last_was_field = false;
        if let Some((name, value)) = trimmed.split_once(':') {
            let name = name.trim();
            if matches!(
                name.to_ascii_lowercase().as_str(),
                "message-id" | "list-id" | "list-unsubscribe"
            ) {
                out.push((name.to_ascii_lowercase(), value.trim().to_owned()));
                last_was_field = true;
            }
        }
    }
    out
}

/// The `<…>` of a header value, with the brackets.
fn angle(v: &str) -> Option<String> {
    let start = v.find('<')?;
    let end = v[start..].find('>')? + start;
    Some(v[start..=end].to_owned())
}

/// Reader tokens in a `List-Unsubscribe` value: the last path segment of an
/// `/unsubscribe/<token>` URL, or the token after `unsubscribe%20` of the `mailto:`.
fn list_unsubscribe_tokens(v: &str) -> Vec<String> {
    let mut out = Vec::new();
    for uri in v.split(',') {
        let uri = uri.trim().trim_matches(['<', '>']);
        if let Some(rest) = uri.split("/unsubscribe/").nth(1) {
            let t: String = rest.chars().take_while(|c| is_token_char(*c)).collect();
            push_token(&mut out, &t);
        }
        if let Some(rest) = uri
            .to_ascii_lowercase()
            .find("unsubscribe%20")
            .map(|i| &uri[i + 14..])
        {
            let t: String = rest.chars().take_while(|c| is_token_char(*c)).collect();
            push_token(&mut out, &t);
        }
    }
    out
}

fn is_token_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '-' || c == '_'
}

fn push_token(out: &mut Vec<String>, t: &str) {
    if t.len() == crate::domain::Token::LEN && !out.iter().any(|x| x == t) {
        out.push(t.to_owned());
    }
}

/// Tokens a `mailto:` unsubscribe carries: `unsubscribe <token>` (or `unsubscribe%20<token>`,
/// from a client that did not decode the URI) in the subject, else in the body's first lines.
fn unsubscribe_tokens(subject: &str, body: &str) -> Vec<String> {
    let mut out = Vec::new();
    let first_lines: String = body.lines().take(5).collect::<Vec<_>>().join("\n");
    for text in [subject, first_lines.as_str()] {
        let lower = text.to_ascii_lowercase();
        let mut from = 0;
        while let Some(i) = lower[from..].find("unsubscribe") {
            let after = from + i + "unsubscribe".len();
            let rest = &text[after..];
            let rest = rest
                .strip_prefix("%20")
                .unwrap_or_else(|| rest.trim_start_matches([' ', '\t', ':']));
            let t: String = rest.chars().take_while(|c| is_token_char(*c)).collect();
            push_token(&mut out, &t);
            from = after;
        }
        if !out.is_empty() {
            break;
        }
    }
    out
}

/// A sender or subject that says "this is a bounce" (in the forms the big providers use).
fn looks_like_bounce(subject: Option<&str>, from: Option<&str>) -> bool {
    let from = from.unwrap_or("").to_ascii_lowercase();
    let subject = subject.unwrap_or("").to_ascii_lowercase();
    [
        "mailer-daemon",
        "postmaster",
        "mail delivery",
        "mail-daemon",
        "mailerdaemon",
    ]
    .iter()
    .any(|w| from.contains(w))
        || [
            "undeliver",
            "delivery status notification",
            "delivery failure",
            "delivery has failed",
            "failure notice",
            "returned mail",
            "mail delivery failed",
            "could not be delivered",
            "not delivered",
            "delivery failed",
        ]
        .iter()
        .any(|w| subject.contains(w))
}

/// The first RFC 3463 code in `text` that is written as a bounce writes it: after a 4xx/5xx
/// reply code (`550 5.1.1`, `550-5.1.1`, `550 #5.1.1`), after `#` (`(#5.1.1)`, qmail), or
/// after `Status:`. Returns the code and its line.
pub fn find_status(text: &str) -> Option<(String, String)> {
    for line in text.lines() {
        let words: Vec<&str> = line
            .split(|c: char| c.is_whitespace() || c == '(' || c == ')' || c == '\'' || c == '"')
            .filter(|w| !w.is_empty())
            .collect();
        for (i, w) in words.iter().enumerate() {
            // `550-5.1.1` in one word.
            let (reply, code) = match w.split_once('-') {
                Some((r, c)) if is_reply_code(r) => (true, c),
                _ => (false, *w),
            };
            let hashed = code.starts_with('#');
            let code = code
                .trim_start_matches('#')
                .trim_end_matches([',', ';', '.', ':']);
            if !is_enhanced(code) {
                continue;
            }
            let prev = i.checked_sub(1).map(|j| words[j]);
            let after_reply = reply || prev.is_some_and(is_reply_code);
            let after_status = prev.is_some_and(|p| p.eq_ignore_ascii_case("status:"));
            if hashed || after_reply || after_status {
                return Some((code.to_owned(), line.trim().to_owned()));
            }
        }
    }
    None
}

fn is_reply_code(w: &str) -> bool {
    let w = w.trim_start_matches('#');
    w.len() == 3 && matches!(w.as_bytes()[0], b'4' | b'5') && w.bytes().all(|b| b.is_ascii_digit())
}

/// `class.subject.detail` with class 2, 4 or 5 (RFC 3463 §2).
pub fn is_enhanced(code: &str) -> bool {
    let parts: Vec<&str> = code.split('.').collect();
    parts.len() == 3
        && matches!(parts[0], "2" | "4" | "5")
        && parts[1..]
            .iter()
            .all(|p| (1..=3).contains(&p.len()) && p.bytes().all(|b| b.is_ascii_digit()))
}

/// RFC 3834 §5 `Auto-Submitted` other than `no`, and the headers vacation programs set.
fn is_auto_reply(msg: &Message<'_>) -> bool {
    let text = |name: &str| msg.header_raw(name).map(|v| v.trim().to_ascii_lowercase());
    if text("Auto-Submitted").is_some_and(|v| !v.starts_with("no")) {
        return true;
    }
    if text("X-Autoreply").is_some() || text("X-Autorespond").is_some() {
        return true;
    }
    text("Precedence").is_some_and(|v| v == "auto_reply")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_codes_are_found_where_bounces_write_them_and_nowhere_else() {
        for (text, code) in [
            ("host said: 550 5.1.1 <a@b.c>: user unknown", "5.1.1"),
            (
                "550-5.1.1 The email account that you tried to reach does not exist.",
                "5.1.1",
            ),
            ("Sorry, no mailbox here by that name. (#5.1.1)", "5.1.1"),
            (
                "Remote Server returned '550 5.1.10 RESOLVER.ADR.RecipientNotFound'",
                "5.1.10",
            ),
            ("#550 5.2.2 mailbox full ##", "5.2.2"),
            ("Status: 4.4.7", "4.4.7"),
        ] {
            assert_eq!(
                find_status(text).map(|(c, _)| c),
                Some(code.to_owned()),
                "{text}"
            );
        }
        for text in [
            "version 5.1.1 released",
            "see section 5.1.1",
            "call 555 1234",
        ] {
            assert_eq!(find_status(text), None, "{text}");
        }
    }

    #[test]
    fn field_groups_unfold_and_split_on_blank_lines() {
        let g = field_groups(
            "Reporting-MTA: dns; mx.example\r\n\r\nFinal-Recipient: rfc822;\r\n  a@example.org\r\nAction: Failed\r\n",
        );
        assert_eq!(g.len(), 2);
        assert_eq!(
            g[1][0],
            ("final-recipient".into(), "rfc822; a@example.org".into())
        );
        let r = dsn_recipients(
            "Final-Recipient: rfc822; <a@example.org>\nAction: FAILED\nStatus: 5.1.1 (bad mailbox)\nDiagnostic-Code: smtp; 550 5.1.1 no\n",
        );
        assert_eq!(r[0].final_recipient.as_deref(), Some("a@example.org"));
        assert_eq!(r[0].action.as_deref(), Some("failed"));
        assert_eq!(r[0].status.as_deref(), Some("5.1.1"));
        assert_eq!(r[0].diagnostic.as_deref(), Some("550 5.1.1 no"));
    }

    #[test]
    fn unsubscribe_tokens_come_from_subject_or_first_lines() {
        let t = "AbCdEfGhIjKlMnOpQrStUv";
        assert_eq!(unsubscribe_tokens(&format!("Unsubscribe {t}"), ""), [t]);
        assert_eq!(unsubscribe_tokens(&format!("unsubscribe%20{t}"), ""), [t]);
        assert_eq!(
            unsubscribe_tokens("Re: hello", &format!("unsubscribe {t}\n")),
            [t]
        );
        assert!(unsubscribe_tokens("unsubscribe me please", "").is_empty());
        assert_eq!(
            list_unsubscribe_tokens(&format!(
                "<https://n.example/unsubscribe/{t}>, <mailto:u@n.example?subject=unsubscribe%20{t}>"
            )),
            [t]
        );
    }

    #[test]
    fn garbage_is_unknown_not_a_panic() {
        for raw in [
            &b""[..],
            b"\0\0\0",
            b"no headers at all",
            b"Content-Type: multipart/report\n\n--",
        ] {
            let p = parse(raw);
            assert!(matches!(p.kind, Kind::Unknown | Kind::Delivery(_)), "{p:?}");
        }
    }
}
