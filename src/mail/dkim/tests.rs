//! DKIM tests: keys made by openssl, signatures checked by dkimpy (an independent verifier).

use std::path::{Path, PathBuf};
use std::process::Command;

use super::*;
use crate::mail::mime::tests::personalised;
use crate::test_tools;

fn openssl(args: &[&str]) -> Vec<u8> {
    let o = Command::new("openssl")
        .args(args)
        .output()
        .expect("openssl runs");
    assert!(
        o.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    o.stdout
}

/// Makes a key with openssl and returns (path, DNS TXT record derived by openssl, not by us).
fn make_key(dir: &Path, kind: &str) -> (PathBuf, String) {
    let path = dir.join(format!("{kind}.pem"));
    let p = path.to_str().unwrap();
    match kind {
        "rsa-pkcs1" => openssl(&["genrsa", "-traditional", "-out", p, "2048"]),
        "rsa-pkcs8" => openssl(&[
            "genpkey",
            "-algorithm",
            "RSA",
            "-pkeyopt",
            "rsa_keygen_bits:2048",
            "-out",
            p,
        ]),
        "ed25519" => openssl(&["genpkey", "-algorithm", "ed25519", "-out", p]),
        _ => unreachable!(),
    };
    let spki = openssl(&["pkey", "-in", p, "-pubout", "-outform", "DER"]);
    let record = if kind == "ed25519" {
        // RFC 8463 §4: p= is the raw 32-byte key, the tail of the SubjectPublicKeyInfo.
        format!(
            "v=DKIM1; k=ed25519; p={}",
            BASE64.encode(&spki[spki.len() - 32..])
        )
    } else {
        format!("v=DKIM1; k=rsa; p={}", BASE64.encode(&spki))
    };
    (path, record)
}

fn signer(path: &Path) -> DkimSigner {
    DkimSigner::from_config(&config::Dkim {
        domain: "news.example.com".into(),
        selector: "digest2026".into(),
        private_key_path: path.to_owned(),
    })
    .unwrap()
}

const VERIFY: &str = r#"
import sys, dkim
msg = open(sys.argv[1], 'rb').read()
txt = open(sys.argv[2], 'rb').read()
def dnsfunc(name, timeout=5):
    assert name in (b'digest2026._domainkey.news.example.com.', 'digest2026._domainkey.news.example.com.'), name
    return txt
print('PASS' if dkim.verify(msg, dnsfunc=dnsfunc) else 'FAIL')
"#;

fn verify(dir: &Path, msg: &[u8], record: &str) -> bool {
    let (m, r) = (dir.join("signed.eml"), dir.join("record.txt"));
    std::fs::write(&m, msg).unwrap();
    std::fs::write(&r, record).unwrap();
    let o = Command::new(test_tools::PYTHON)
        .arg("-c")
        .arg(VERIFY)
        .arg(&m)
        .arg(&r)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    match String::from_utf8_lossy(&o.stdout).trim() {
        "PASS" => true,
        "FAIL" => false,
        other => panic!("verifier said {other:?}"),
    }
}

fn h_tag(sig: &str) -> Vec<String> {
    let unfolded: String = sig.replace("\r\n", "").split_whitespace().collect();
    let h = unfolded
        .split(';')
        .find_map(|t| t.strip_prefix("h="))
        .unwrap();
    h.split(':').map(str::to_owned).collect()
}

fn sign_and_verify(kind: &str) {
    let dkimpy = if kind == "ed25519" {
        test_tools::DKIMPY_ED25519
    } else {
        test_tools::DKIMPY
    };
    let Some(_) = test_tools::require_all(&[test_tools::OPENSSL, dkimpy]) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let (key, record) = make_key(dir.path(), kind);
    let s = signer(&key);
    assert_eq!(s.dns_record(), record, "our DNS record matches openssl's");
    check_signature(&s, dir.path(), &record, kind);
}

/// Signs a message with `s` and has dkimpy verify it, then fail on each kind of tampering.
fn check_signature(s: &DkimSigner, dir: &Path, record: &str, kind: &str) {
    let (msg, ..) = personalised(Some("عائشہ خان"));
    let sig = s.sign(&msg).unwrap();
    assert!(sig.starts_with("DKIM-Signature: v=1; a=") && sig.ends_with("\r\n"));
    assert!(sig.is_ascii());
    for line in sig.split("\r\n") {
        assert!(line.len() <= 78, "{line:?}");
    }
    let h = h_tag(&sig);
    for name in [
        "from",
        "to",
        "subject",
        "date",
        "message-id",
        "mime-version",
        "content-type",
        "list-id",
        "list-unsubscribe",
        "list-unsubscribe-post",
        "feedback-id",
        "reply-to",
    ] {
        assert!(h.contains(&name.to_owned()), "h= lacks {name}: {h:?}");
    }
    assert_eq!(
        h.iter().filter(|n| *n == "list-unsubscribe-post").count(),
        2,
        "oversigned"
    );

    let signed = [sig.as_bytes(), &msg].concat();
    assert!(
        verify(dir, &signed, record),
        "{kind}: a fresh signature verifies"
    );

    // Tampering with List-Unsubscribe-Post breaks it.
    let s_signed = String::from_utf8(signed.clone()).unwrap();
    let tampered = s_signed.replace(
        "List-Unsubscribe-Post: List-Unsubscribe=One-Click",
        "List-Unsubscribe-Post: List-Unsubscribe=Two-Click",
    );
    assert_ne!(tampered, s_signed);
    assert!(
        !verify(dir, tampered.as_bytes(), record),
        "{kind}: edited List-Unsubscribe-Post must fail"
    );

    // An added List-Unsubscribe (oversigned) breaks it.
    let added = s_signed.replacen(
        "\r\nFrom:",
        "\r\nList-Unsubscribe: <https://evil.example/x>\r\nFrom:",
        1,
    );
    assert!(
        !verify(dir, added.as_bytes(), record),
        "{kind}: an added List-Unsubscribe must fail"
    );

    // A changed body breaks it.
    let body = s_signed.replacen("Here is today", "Here is tomorrow", 1);
    assert!(
        !verify(dir, body.as_bytes(), record),
        "{kind}: an edited body must fail"
    );

    // Refolding whitespace survives relaxed canonicalization.
    let refolded = s_signed.replacen("MIME-Version: 1.0", "MIME-Version:   1.0  ", 1);
    assert!(
        verify(dir, refolded.as_bytes(), record),
        "{kind}: relaxed canonicalization"
    );
}

#[test]
fn rsa_pkcs1_signature_verifies_with_dkimpy() {
    sign_and_verify("rsa-pkcs1");
}

#[test]
fn rsa_pkcs8_signature_verifies_with_dkimpy() {
    sign_and_verify("rsa-pkcs8");
}

#[test]
fn ed25519_signature_verifies_with_dkimpy() {
    sign_and_verify("ed25519");
}

#[test]
fn key_errors_name_the_file_and_the_problem() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = |p: &Path| config::Dkim {
        domain: "news.example.com".into(),
        selector: "s".into(),
        private_key_path: p.to_owned(),
    };
    let missing = dir.path().join("nope.pem");
    let e = DkimSigner::from_config(&cfg(&missing))
        .unwrap_err()
        .to_string();
    assert!(e.contains("nope.pem") && e.contains("cannot read"), "{e}");

    let garbage = dir.path().join("garbage.pem");
    std::fs::write(&garbage, "hello").unwrap();
    let e = DkimSigner::from_config(&cfg(&garbage))
        .unwrap_err()
        .to_string();
    assert!(e.contains("garbage.pem") && e.contains("not a PEM"), "{e}");

    let cert = dir.path().join("cert.pem");
    std::fs::write(
        &cert,
        "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",
    )
    .unwrap();
    let e = DkimSigner::from_config(&cfg(&cert))
        .unwrap_err()
        .to_string();
    assert!(e.contains("cert.pem") && e.contains("CERTIFICATE"), "{e}");
}

#[test]
fn canonicalization_matches_rfc6376_examples() {
    // RFC 6376 §3.4.5 example, relaxed header and relaxed body.
    let mut h = Vec::new();
    relaxed_header(b"A: X", &mut h, true);
    relaxed_header(b"B : Y\t\r\n\tZ  ", &mut h, true);
    assert_eq!(h, b"a:X\r\nb:Y Z\r\n");
    let body = |b: &[u8]| {
        let mut out = Vec::new();
        relaxed_body(b, &mut |piece| out.extend_from_slice(piece));
        out
    };
    assert_eq!(body(b" C \r\nD \t E\r\n\r\n\r\n"), b" C\r\nD E\r\n");
    assert_eq!(body(b""), b"");
}

/// RFC 6376 §3.4.4 as written, line by line and byte by byte: what `relaxed_body`'s fast path
/// for lines that are canonical already must agree with.
fn relaxed_body_by_the_book(body: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    let mut empty_lines = 0;
    for line in body.split(|&b| b == b'\n') {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        let mut canon = Vec::new();
        let mut in_wsp = false;
        for &b in line {
            if b == b' ' || b == b'\t' {
                in_wsp = true;
            } else {
                if in_wsp {
                    canon.push(b' ');
                }
                in_wsp = false;
                canon.push(b);
            }
        }
        if canon.is_empty() {
            empty_lines += 1;
            continue;
        }
        out.extend(std::iter::repeat_n(&b"\r\n"[..], empty_lines).flatten());
        empty_lines = 0;
        out.extend_from_slice(&canon);
        out.extend_from_slice(b"\r\n");
    }
    out
}

proptest::proptest! {
    #[test]
    fn relaxed_body_agrees_with_the_rfc_on_any_body(
        body in proptest::collection::vec(
            proptest::sample::select(&b"ab \t\r\n"[..]), 0..200)
    ) {
        let mut out = Vec::new();
        relaxed_body(&body, &mut |piece| out.extend_from_slice(piece));
        proptest::prop_assert_eq!(out, relaxed_body_by_the_book(&body));
    }
}

#[test]
fn relaxed_body_passes_canonical_lines_through_in_one_piece() {
    let body = b"<p>One line.</p>\r\n<p>Two lines.</p>\r\n\r\nThree  spaces\r\nend\r\n\r\n";
    let mut pieces = Vec::new();
    relaxed_body(body, &mut |piece| pieces.push(piece.to_vec()));
    let expected: [&[u8]; 7] = [
        b"<p>One line.</p>\r\n<p>Two lines.</p>\r\n",
        b"\r\n",
        b"Three",
        b" ",
        b"spaces",
        b"\r\n",
        b"end\r\n",
    ];
    assert_eq!(pieces, expected);
}

/// PEM text for DER `der` under `label`, 64 base64 characters a line (RFC 7468 §2).
fn pem_text(label: &str, der: &[u8]) -> String {
    let b64 = BASE64.encode(der);
    let lines: Vec<&str> = b64
        .as_bytes()
        .chunks(64)
        .map(|c| std::str::from_utf8(c).unwrap())
        .collect();
    format!(
        "-----BEGIN {label}-----\n{}\n-----END {label}-----\n",
        lines.join("\n")
    )
}

/// An Ed25519 key made by aws-lc-rs: PKCS#8 v2 (RFC 5958, with the public key), a form other tools
/// write. Also returns its DNS record, from aws-lc-rs: the OpenSSL 3.0 here refuses to read the file.
fn generated_ed25519_v2_pem() -> (String, String) {
    let doc = Ed25519KeyPair::generate_pkcs8(&SystemRandom::new()).unwrap();
    let public = Ed25519KeyPair::from_pkcs8(doc.as_ref())
        .unwrap()
        .public_key()
        .as_ref()
        .to_vec();
    (
        pem_text("PRIVATE KEY", doc.as_ref()),
        format!("v=DKIM1; k=ed25519; p={}", BASE64.encode(public)),
    )
}

#[test]
fn ed25519_pkcs8_v2_signature_verifies_with_dkimpy() {
    let Some(_) = test_tools::require(test_tools::DKIMPY_ED25519) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("v2.pem");
    let (pem, record) = generated_ed25519_v2_pem();
    std::fs::write(&path, pem).unwrap();
    let s = signer(&path);
    assert_eq!(s.dns_record(), record);
    check_signature(&s, dir.path(), &record, "ed25519 v2");
}

#[test]
fn unusable_keys_are_refused_with_how_to_make_one() {
    let Some(_) = test_tools::require(test_tools::OPENSSL) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let cfg = |p: &Path| config::Dkim {
        domain: "news.example.com".into(),
        selector: "s".into(),
        private_key_path: p.to_owned(),
    };
    let refused = |name: &str, args: &[&str]| {
        let path = dir.path().join(name);
        // The command, then where to write (genrsa wants the key size last).
        let mut all = vec![args[0], "-out", path.to_str().unwrap()];
        all.extend(&args[1..]);
        openssl(&all);
        let e = DkimSigner::from_config(&cfg(&path))
            .unwrap_err()
            .to_string();
        assert!(e.contains(name), "{e}");
        e
    };
    // RFC 8301 §3.2 asks for 2048 bits; aws-lc-rs signs with 2048 to 8192.
    let short = refused("rsa1024.pem", &["genrsa", "-traditional", "1024"]);
    assert!(
        short.contains("must have 2048 to 8192 bits") && short.contains("openssl genrsa"),
        "{short}"
    );
    let ec = refused(
        "ec.pem",
        &[
            "genpkey",
            "-algorithm",
            "EC",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
        ],
    );
    assert!(ec.contains("RSA or Ed25519 only"), "{ec}");
    let sec1 = refused(
        "sec1.pem",
        &["ecparam", "-genkey", "-name", "prime256v1", "-noout"],
    );
    assert!(sec1.contains("EC key"), "{sec1}");
    let encrypted = refused(
        "encrypted.pem",
        &[
            "genpkey",
            "-algorithm",
            "ed25519",
            "-aes256",
            "-pass",
            "pass:secret",
        ],
    );
    assert!(
        encrypted.contains("encrypted") && encrypted.contains("openssl pkey"),
        "{encrypted}"
    );
}

fn generated_ed25519_signer() -> DkimSigner {
    DkimSigner::from_pem(
        "news.example.com",
        "digest2026",
        generated_ed25519_v2_pem().0.as_bytes(),
        Path::new("generated.pem"),
    )
    .unwrap()
}

#[tokio::test]
async fn signing_pool_returns_each_message_signed_under_concurrent_load() {
    let pool = SigningPool::new(generated_ed25519_signer(), NonZeroUsize::new(2)).unwrap();
    assert_eq!(pool.threads(), 2);
    let (msg, ..) = personalised(Some("Ayesha"));
    // Many more callers than threads: every one is served, in turn.
    let signed = futures_util::future::join_all((0..40).map(|_| pool.sign(msg.clone()))).await;
    assert_eq!(signed.len(), 40);
    for s in &signed {
        let s = s.as_ref().unwrap();
        assert!(s.starts_with(b"DKIM-Signature: v=1; a=ed25519-sha256;"));
        assert!(s.ends_with(&msg));
    }
    let Some(_) = test_tools::require(test_tools::DKIMPY_ED25519) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let record = pool.signer().dns_record();
    for s in [&signed[0], &signed[39]] {
        assert!(verify(dir.path(), s.as_ref().unwrap(), &record));
    }
}

#[tokio::test]
async fn signing_pool_reports_what_cannot_be_signed_and_keeps_serving() {
    let pool = SigningPool::new(generated_ed25519_signer(), NonZeroUsize::new(1)).unwrap();
    // Shared by worker tasks, awaited inside spawned tasks.
    fn send_sync<T: Send + Sync>(_: &T) {}
    fn send<T: Send>(_: &T) {}
    send_sync(&pool);
    let refused = pool.sign(b"Subject: no sender\r\n\r\nbody\r\n".to_vec());
    send(&refused);
    let e = refused.await.unwrap_err();
    assert!(matches!(e, DkimError::Message(_)), "{e}");
    let ok = pool
        .sign(b"From: a@news.example.com\r\n\r\nbody\r\n".to_vec())
        .await
        .unwrap();
    assert!(ok.starts_with(b"DKIM-Signature:"));
}

#[test]
fn signing_pool_defaults_to_one_thread_per_core() {
    let cores = std::thread::available_parallelism().unwrap().get();
    let pool = SigningPool::new(generated_ed25519_signer(), None).unwrap();
    assert_eq!(pool.threads(), cores);
}
