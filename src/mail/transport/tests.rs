use super::error::{Stage, classify_reply, enhanced_code};
use super::smtp::redact;
use super::tls::tls_failure;
use super::*;

fn addr(s: &str) -> EmailAddress {
    EmailAddress::parse(s).unwrap()
}

#[test]
fn replies_are_classified_by_stage_and_code() {
    let c = |stage, basic, r: &str| classify_reply(stage, basic, r.to_owned());
    assert!(matches!(
        c(Stage::Rcpt, 451, "451 4.3.0 try later"),
        SendError::Transient { .. }
    ));
    let hard = c(Stage::Rcpt, 550, "550 5.1.1 <x@example.org>: no such user");
    assert!(
        matches!(hard, SendError::Permanent { .. })
            && hard.is_hard_bounce()
            && !hard.is_retryable()
    );
    let policy = c(
        Stage::Rcpt,
        550,
        "550 5.7.1 recipient refuses mail from you",
    );
    assert!(matches!(policy, SendError::Permanent { .. }) && !policy.is_hard_bounce());
    assert!(
        !c(Stage::Rcpt, 550, "550 mailbox unavailable").is_hard_bounce(),
        "no enhanced code: not sure"
    );
    assert!(c(Stage::Rcpt, 550, "550 5.2.1 mailbox disabled").is_hard_bounce());
    assert!(!c(Stage::Rcpt, 552, "552 5.5.3 too many recipients").is_hard_bounce());
    assert!(
        c(Stage::Rcpt, 552, "552 too many recipients").is_retryable(),
        "RFC 5321 §4.5.3.1.10"
    );
    assert!(c(Stage::Mail, 550, "550 5.7.1 sender not authorised").is_fatal());
    assert!(c(Stage::Mail, 553, "553 5.1.8 bad sender domain").is_fatal());
    assert!(c(Stage::Mail, 421, "421 4.7.0 closing").is_retryable());
    // About our connections, not the message: at any stage, and any 4yz greeting.
    assert!(c(Stage::DataEnd, 421, "421 4.7.28 rate limited").is_refusal());
    assert!(c(Stage::Greeting, 450, "450 4.7.1 too busy").is_refusal());
    assert!(!c(Stage::Greeting, 554, "554 5.7.1 no service").is_retryable());
    assert!(!c(Stage::Rcpt, 451, "451 4.3.0 try later").is_refusal());
    assert!(c(Stage::Auth, 535, "535 5.7.8 bad credentials").is_fatal());
    assert!(c(Stage::Auth, 454, "454 4.7.0 try later").is_retryable());
    assert!(c(Stage::DataEnd, 550, "550 5.7.26 unauthenticated email").is_fatal());
    assert!(matches!(
        c(Stage::DataEnd, 552, "552 5.3.4 too big"),
        SendError::Permanent { .. }
    ));
    assert!(
        SendError::Timeout.is_retryable()
            && SendError::Network { reason: "x".into() }.is_retryable()
    );
}

#[test]
fn enhanced_codes_parse() {
    assert_eq!(enhanced_code("550 5.1.1 no such user"), Some((5, 1, 1)));
    assert_eq!(
        enhanced_code("451 4.7.1 greylisted, see https://x.example/a.b"),
        Some((4, 7, 1))
    );
    assert_eq!(enhanced_code("550 no such user at example.org"), None);
}

#[test]
fn redaction_keeps_only_the_domain() {
    let to = addr("ayesha@example.pk");
    assert_eq!(
        redact("550 5.1.1 <ayesha@example.pk>: unknown", &to),
        "550 5.1.1 <*@example.pk>: unknown"
    );
}

#[tokio::test]
async fn stub_records_and_fails_on_request() {
    let stub = StubOutbox::new();
    let t = Transport::Stub(stub.clone());
    let mut s = t.session().await.unwrap();
    let (from, a, b) = (
        addr("bounces@news.example.com"),
        addr("a@example.org"),
        addr("B@Example.org"),
    );
    stub.fail(
        &addr("b@example.org"),
        SendError::Permanent {
            reply: "550 5.1.1 no".into(),
        },
    );
    s.send(&from, &a, b"one").await.unwrap();
    assert!(
        s.send(&from, &b, b"two")
            .await
            .unwrap_err()
            .is_hard_bounce()
    );
    stub.clear_failures();
    s.send(&from, &b, b"two").await.unwrap();
    let m = stub.messages();
    assert_eq!(m.len(), 2);
    assert_eq!(
        (m[0].to.as_str(), m[0].bytes.as_slice()),
        ("a@example.org", &b"one"[..])
    );
}

#[tokio::test]
async fn file_transport_writes_whole_files_named_by_message_id() {
    let dir = tempfile::tempdir().unwrap();
    let outbox = dir.path().join("outbox");
    let t = Transport::File(outbox.clone());
    let mut s = t.session().await.unwrap();
    let from = addr("bounces@news.example.com");
    let to = addr("a@example.org");
    let msg = b"Message-ID: <e1.s2.abc@news.example.com>\r\nSubject: x\r\n\r\nbody\r\n";
    s.send(&from, &to, msg).await.unwrap();
    s.send(&from, &to, msg).await.unwrap(); // a resend replaces the file
    s.send(&from, &to, b"Subject: no id\r\n\r\nbody\r\n")
        .await
        .unwrap();
    let mut names: Vec<String> = std::fs::read_dir(&outbox)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(names.len(), 2, "{names:?}");
    assert!(
        names.contains(&"e1.s2.abc@news.example.com.eml".to_owned()),
        "{names:?}"
    );
    assert!(
        names
            .iter()
            .all(|n| n.ends_with(".eml") && !n.starts_with('.'))
    );
    assert_eq!(
        std::fs::read(outbox.join("e1.s2.abc@news.example.com.eml")).unwrap(),
        msg
    );
}

#[tokio::test]
async fn starttls_config_with_unreadable_ca_is_fatal() {
    let cfg = config::Smtp {
        ca_file: Some("/nonexistent/ca.pem".into()),
        ..config::Smtp::default()
    };
    let e = SmtpConnector::new(&cfg, "news.example.com").unwrap_err();
    assert!(
        e.is_fatal() && e.to_string().contains("/nonexistent/ca.pem"),
        "{e}"
    );
}

#[tokio::test]
async fn handles_can_move_between_tasks() {
    fn send_sync<T: Send + Sync>() {}
    fn send<T: Send>(_: &T) {}
    send_sync::<Transport>();
    send_sync::<SmtpConnector>();
    send_sync::<crate::mail::DkimSigner>();
    send_sync::<crate::mail::MessageTemplate>();
    let mut s = Transport::Stub(StubOutbox::new()).session().await.unwrap();
    assert!(s.is_usable());
    let (from, to) = (addr("b@news.example.com"), addr("r@example.org"));
    let fut = s.send(&from, &to, b"x");
    send(&fut); // the same future type serves the SMTP variant
    fut.await.unwrap();
    s.close().await;
}

#[test]
fn tls_failures_name_the_relay_and_say_how_to_fix_a_certificate() {
    let ca = tls_failure(
        "STARTTLS with relay.example:587",
        "Connection error: Connection error: invalid peer certificate: Other(OtherError(CaUsedAsEndEntity))",
    );
    assert!(
        ca.starts_with("STARTTLS with relay.example:587 failed: invalid peer certificate:"),
        "{ca}"
    );
    assert!(
        ca.contains("CA:FALSE") && ca.contains("[smtp] ca_file"),
        "{ca}"
    );
    let unknown = tls_failure(
        "TLS handshake with relay.example:465",
        "invalid peer certificate: UnknownIssuer",
    );
    assert!(unknown.contains("[smtp] ca_file"), "{unknown}");
    assert_eq!(
        tls_failure(
            "STARTTLS with h:25",
            "Connection error: received fatal alert"
        ),
        "STARTTLS with h:25 failed: received fatal alert"
    );
}
