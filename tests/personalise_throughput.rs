//! Measures `MessageTemplate::personalise` for a 40-article edition and 100,000 readers.
//!
//! Ignored by default (it is a measurement, not a check). Run it with an optimised build:
//!
//! ```text
//! cargo test --release --test personalise_throughput -- --ignored --nocapture
//! ```

use std::time::Instant;

use chrono::Utc;
use dispatch::domain::{EmailAddress, Hole, Template, Token, WebUrl};
use dispatch::mail::{CommonHeaders, DkimSigner, MessageTemplate, Recipient};

const READERS: usize = 100_000;

fn edition(urdu: bool) -> (Template, Template) {
    let marks = [("@T@", Hole::Token), ("@N@", Hole::Name)];
    let (title, summary) = if urdu {
        (
            "وزیر اعظم نے استعفیٰ دے دیا، نئی حکومت کی تشکیل پر مشاورت شروع",
            "اسلام آباد: وزیر اعظم نے آج صدر کو اپنا استعفیٰ پیش کر دیا۔ ",
        )
    } else {
        (
            "Finance minister resigns after budget talks collapse in Islamabad",
            "The minister handed his resignation to the prime minister on Friday evening. ",
        )
    };
    let mut text = String::from("Dear @N@,\n\nToday's headlines from The Daily Ledger:\n\n");
    let mut html = String::from(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><meta name=\"color-scheme\" content=\"light dark\"></head>\
         <body style=\"margin:0;padding:0;background:#f4f4f4\"><table role=\"presentation\" width=\"100%\" cellpadding=\"0\" cellspacing=\"0\">\
         <tr><td style=\"padding:16px;font-family:Georgia,serif\">Dear @N@,</td></tr>",
    );
    for i in 0..40 {
        let url = format!("https://news.example.com/2026/11/28/story-{i}-finance-minister-resigns");
        text.push_str(&format!("{title}\n{}\n{url}\n\n", summary.repeat(3)));
        html.push_str(&format!(
            "<tr><td style=\"padding:12px 16px;border-bottom:1px solid #dddddd;font-family:Georgia,serif;font-size:16px;line-height:1.5;color:#222222\">\
             <a href=\"{url}?utm_source=newsletter&amp;utm_medium=email\" style=\"color:#0b5394;text-decoration:none;font-weight:bold\">{title}</a>\
             <p style=\"margin:6px 0 0 0;color:#444444\">{}</p></td></tr>",
            summary.repeat(3)
        ));
    }
    text.push_str("Change your categories: https://news.example.com/preferences/@T@\nUnsubscribe: https://news.example.com/unsubscribe/@T@\n");
    html.push_str(
        "<tr><td style=\"padding:16px;font-size:12px;color:#666666\"><a href=\"https://news.example.com/preferences/@T@\">Preferences</a> · \
         <a href=\"https://news.example.com/unsubscribe/@T@\">Unsubscribe</a><br>The Daily Ledger, 12 Mall Road, Lahore</td></tr></table></body></html>",
    );
    (
        Template::from_marked(&text, &marks),
        Template::from_marked(&html, &marks),
    )
}

fn measure(urdu: bool) {
    let h = CommonHeaders {
        from: "The Daily Ledger <digest@news.example.com>"
            .parse()
            .unwrap(),
        reply_to: None,
        subject: if urdu {
            "روزنامہ خلاصہ — ۲۸ نومبر".into()
        } else {
            "Daily Digest - 28 November 2026".into()
        },
        date: Utc::now(),
        list_id: "Daily Digest <daily.news.example.com>".into(),
        public_url: WebUrl::parse("https://news.example.com").unwrap(),
        unsubscribe_mailbox: "unsubscribe@news.example.com".into(),
        message_id_domain: "news.example.com".into(),
        feedback_id: Some("daily:digest:ledger".into()),
    };
    let (text, html) = edition(urdu);
    let mt = MessageTemplate::new(&h, &text, &html);
    let readers: Vec<(EmailAddress, Option<String>, String, String)> = (0..READERS)
        .map(|i| {
            let name = match i % 3 {
                0 => None,
                1 => Some(format!("Reader {i}")),
                _ => Some(format!("عائشہ خان {i}")),
            };
            let token = format!("{i:0>width$}", width = Token::LEN);
            (
                EmailAddress::parse(&format!("reader{i}@example.org")).unwrap(),
                name,
                token,
                format!("<e1.s{i}.Xy12Ab34Cd56Ef78@news.example.com>"),
            )
        })
        .collect();
    let mut out = Vec::new();
    let mut bytes = 0usize;
    let start = Instant::now();
    for (to, name, token, mid) in &readers {
        out.clear();
        mt.personalise(
            &Recipient {
                to,
                name: name.as_deref(),
                token,
                message_id: mid,
            },
            &mut out,
        );
        // Keep the optimiser from skipping copies into a buffer nobody reads.
        bytes += std::hint::black_box(&out).len();
    }
    let secs = start.elapsed().as_secs_f64();
    if !urdu {
        measure_dkim(&out);
    }
    eprintln!(
        "{}: {READERS} messages of {:.1} KB in {:.3} s = {:.0} messages/s, {:.2} GB/s (debug_assertions: {})",
        if urdu { "Urdu" } else { "English" },
        bytes as f64 / READERS as f64 / 1024.0,
        secs,
        READERS as f64 / secs,
        bytes as f64 / secs / 1e9,
        cfg!(debug_assertions)
    );
}

/// DKIM signing cost per message (body hash plus signature), with keys made by openssl.
fn measure_dkim(msg: &[u8]) {
    let dir = tempfile::tempdir().unwrap();
    for (kind, args, n) in [
        ("rsa-2048", &["genrsa", "-traditional", "2048"][..], 500),
        ("ed25519", &["genpkey", "-algorithm", "ed25519"][..], 5000),
    ] {
        let Ok(o) = std::process::Command::new("openssl").args(args).output() else {
            eprintln!("SKIP DKIM measurement: no openssl");
            return;
        };
        let signer =
            DkimSigner::from_pem("news.example.com", "s", &o.stdout, &dir.path().join(kind))
                .unwrap();
        let start = Instant::now();
        for _ in 0..n {
            std::hint::black_box(signer.sign(msg).unwrap());
        }
        let per = start.elapsed().as_secs_f64() / n as f64;
        eprintln!(
            "DKIM {kind}: {:.0} µs per {:.1} KB message ({:.0} messages/s on one core)",
            per * 1e6,
            msg.len() as f64 / 1024.0,
            1.0 / per
        );
    }
}

#[test]
#[ignore = "a measurement; run with --release -- --ignored --nocapture"]
fn personalise_throughput() {
    measure(false);
    measure(true);
}
