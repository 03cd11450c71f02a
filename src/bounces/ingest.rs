//! One message in, its events recorded: the pipe (`dispatch bounces ingest`) and the IMAP
//! poller both come here.
//!
//! Which reader a message is about, in order (the first that answers wins):
//! 1. the VERP address it was sent to (`Delivered-To`, `X-Original-To`, `To`, or the
//!    recipient Postfix passed on the command line), MAC verified;
//! 2. the headers of our message it returns: our Message-ID (checked against the one we
//!    derive for that edition and reader), or the reader token of its `List-Unsubscribe`;
//! 3. the failed recipient (`Final-Recipient`, `X-Failed-Recipients`, `Original-Rcpt-To`)
//!    together with our `List-Id` in the returned headers: a reader of that list with that
//!    address. An address alone is not enough: anyone can write a DSN naming anyone.
//!
//! A VERP address whose MAC does not verify makes the whole message unidentified, whatever
//! else it claims. A message nothing identifies is stored as unidentified; nothing is dropped.

use sha2::Digest as _;

use super::classify::{classify, worse};
use super::parse::{self, Kind, Parsed, Returned};
use crate::config::Config;
use crate::domain::{BounceSource, BounceType, EmailAddress, Token};
use crate::mail::verp::{self, Decoded, VerpItem};
use crate::store::{
    Lookup, MatchedBy, NewBounceMessage, NewEvent, Recorded, Result, Store, StoreError, Target,
    Thresholds,
};

/// Where the IMAP poller files a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Folder {
    /// Understood (a bounce, report, auto-reply or unsubscribe, identified or not needed).
    Processed,
    /// Nothing of ours in it: for a person to read.
    Unidentified,
}

/// What one message was, and what it did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ingested {
    /// The type of each event recorded (one per reader named).
    pub types: Vec<BounceType>,
    pub recorded: Recorded,
    pub folder: Folder,
}

/// What ingesting needs of the configuration.
#[derive(Debug, Clone)]
pub struct Settings {
    pub thresholds: Thresholds,
    /// The namespace of our `List-Id`s and Message-IDs (`[publication] from`'s domain).
    pub domain: String,
}

impl Settings {
    /// From the loaded configuration.
    pub fn from_config(c: &Config) -> Self {
        Self {
            thresholds: Thresholds {
                hard: c.bounces.hard_threshold,
                soft: c.bounces.soft_threshold,
            },
            domain: c.publication.from.domain().to_ascii_lowercase(),
        }
    }
}

/// An identified reader and how.
#[derive(Debug, Clone, Copy)]
struct Found {
    lookup: Lookup,
    by: MatchedBy,
}

/// Reads, classifies and records one message. `recipient` is the envelope recipient when the
/// caller knows it (Postfix's `${recipient}`). Errors are the store's only: every message,
/// however broken, is recorded.
pub async fn ingest(
    store: &Store,
    settings: &Settings,
    raw: &[u8],
    source: BounceSource,
    recipient: Option<&str>,
) -> Result<Ingested> {
    let hash: [u8; 32] = sha2::Sha256::digest(raw).into();
    let parsed = parse::parse(raw);
    let events = events(store, settings, &parsed, recipient).await?;
    let folder = if events.iter().all(|e| e.kind == BounceType::Unidentified) {
        Folder::Unidentified
    } else {
        Folder::Processed
    };
    let types = events.iter().map(|e| e.kind).collect();
    let msg = NewBounceMessage {
        hash,
        source,
        from: parsed.from.clone(),
        subject: parsed.subject.clone(),
        events,
    };
    let recorded = store.record_bounce(&msg, settings.thresholds).await?;
    Ok(Ingested {
        types,
        recorded,
        folder,
    })
}

async fn events(
    store: &Store,
    settings: &Settings,
    p: &Parsed,
    recipient: Option<&str>,
) -> Result<Vec<NewEvent>> {
    // 1. VERP.
    let mut forged = false;
    let mut verp: Option<Found> = None;
    for addr in recipient
        .into_iter()
        .chain(p.recipients.iter().map(String::as_str))
    {
        match verp::decode(store.verp_key(), addr) {
            Decoded::NotVerp => {}
            Decoded::Forged => forged = true,
            Decoded::Item(item) => {
                let lookup = match item {
                    VerpItem::Delivery {
                        edition_id,
                        subscriber_id,
                    } => store.lookup_delivery(edition_id, subscriber_id).await?,
                    VerpItem::Mail { id } => store.lookup_mail(id).await?,
                };
                verp = Some(Found {
                    lookup,
                    by: MatchedBy::Verp,
                });
                break;
            }
        }
    }
    if verp.is_none() && forged {
        return Ok(vec![unidentified(
            p,
            "the VERP address's MAC does not verify (forged or mangled); nothing was changed",
        )]);
    }
    // 2. The returned headers.
    let returned = match verp {
        Some(f) => Some(f),
        None => from_returned(store, settings, &p.returned).await?,
    };
    let list_slug = our_list(settings, &p.returned);

    let mut out = Vec::new();
    match &p.kind {
        Kind::Delivery(blocks) => {
            if blocks.is_empty() {
                out.push(event_for(
                    returned,
                    BounceType::Rejected,
                    None,
                    Some("a delivery report without recipients".into()),
                    p,
                ));
            } else if let Some(found) = returned {
                // One message, one reader: the most serious block decides.
                let mut kind = BounceType::Other;
                let mut status = None;
                let mut diagnostic = None;
                for b in blocks {
                    let k = classify(
                        b.action.as_deref(),
                        b.status.as_deref(),
                        b.diagnostic.as_deref(),
                    );
                    if worse(kind, k) == k && (k != kind || status.is_none()) {
                        kind = k;
                        status = b.status.clone();
                        diagnostic = b.diagnostic.clone();
                    }
                }
                out.push(event_for(Some(found), kind, status, diagnostic, p));
            } else {
                for b in blocks {
                    let kind = classify(
                        b.action.as_deref(),
                        b.status.as_deref(),
                        b.diagnostic.as_deref(),
                    );
                    let addr = b
                        .final_recipient
                        .as_deref()
                        .or(b.original_recipient.as_deref());
                    let found = by_recipient(store, addr, list_slug.as_deref()).await?;
                    out.push(event_for(
                        found,
                        kind,
                        b.status.clone(),
                        b.diagnostic.clone(),
                        p,
                    ));
                }
            }
        }
        Kind::Feedback(fb) => {
            let kind = match fb.feedback_type.as_str() {
                "abuse" | "fraud" | "virus" => BounceType::Complaint,
                _ => BounceType::Other,
            };
            let found = match returned {
                Some(f) => Some(f),
                None => {
                    by_recipient(store, fb.original_rcpt_to.as_deref(), list_slug.as_deref())
                        .await?
                }
            };
            let reporter = p
                .from
                .as_deref()
                .and_then(|f| f.rsplit_once('@'))
                .map(|(_, d)| d.trim_end_matches('>').to_owned());
            let diagnostic = format!(
                "feedback-type {}{}",
                fb.feedback_type,
                reporter.map(|d| format!(" from {d}")).unwrap_or_default()
            );
            out.push(event_for(found, kind, None, Some(diagnostic), p));
        }
        Kind::Text(t) => {
            let kind = classify(None, Some(&t.status), Some(&t.diagnostic));
            let found = match returned {
                Some(f) => Some(f),
                None => {
                    let mut found = None;
                    for r in &t.recipients {
                        found = by_recipient(store, Some(r), list_slug.as_deref()).await?;
                        if found.is_some() {
                            break;
                        }
                    }
                    found
                }
            };
            out.push(event_for(
                found,
                kind,
                Some(t.status.clone()),
                Some(t.diagnostic.clone()),
                p,
            ));
        }
        Kind::Unsubscribe(tokens) => {
            let mut found = None;
            for t in tokens {
                let Some(token) = Token::parse(t) else {
                    continue;
                };
                if let Some(lookup) = store.lookup_token(&token).await? {
                    found = Some(Found {
                        lookup,
                        by: MatchedBy::Token,
                    });
                    break;
                }
            }
            match found {
                Some(f) => out.push(event_for(Some(f), BounceType::Unsubscribe, None, None, p)),
                None => out.push(unidentified(
                    p,
                    "an unsubscribe request with no valid token",
                )),
            }
        }
        // Counted, and tied to a reader when something says which; never acted on.
        Kind::AutoReply => out.push(event_for(returned, BounceType::AutoReply, None, None, p)),
        Kind::Unknown => {
            let mut e = unidentified(p, "not a bounce, report, reply or unsubscribe we recognise");
            if let Some(f) = returned {
                apply(&mut e, f);
            }
            out.push(e);
        }
    }
    Ok(out)
}

/// An event of `kind` about `found`; unidentified (keeping what the message said) when
/// nothing named a reader.
fn event_for(
    found: Option<Found>,
    kind: BounceType,
    status: Option<String>,
    diagnostic: Option<String>,
    p: &Parsed,
) -> NewEvent {
    let mut e = NewEvent {
        kind,
        target: Target::default(),
        matched_by: None,
        status,
        diagnostic,
        note: None,
    };
    match found {
        Some(f) => apply(&mut e, f),
        // An auto-reply needs no reader to be understood.
        None if kind == BounceType::AutoReply => {}
        None => {
            e.kind = BounceType::Unidentified;
            e.note = Some(format!(
                "a {kind} report that names no reader of ours{}",
                if p.returned == Returned::default() {
                    " (no returned headers)"
                } else {
                    ""
                }
            ));
        }
    }
    e
}

fn apply(e: &mut NewEvent, f: Found) {
    e.matched_by = Some(f.by);
    match f.lookup {
        Lookup::Reader(t) => e.target = t,
        Lookup::Gone { edition_id } => {
            e.target.edition_id = edition_id;
            e.diagnostic = None;
            e.note = Some("the reader was erased".into());
        }
    }
}

fn unidentified(_p: &Parsed, why: &str) -> NewEvent {
    NewEvent {
        kind: BounceType::Unidentified,
        target: Target::default(),
        matched_by: None,
        status: None,
        diagnostic: None,
        note: Some(why.to_owned()),
    }
}

/// Our Message-ID (verified) or reader token in the returned headers.
async fn from_returned(store: &Store, settings: &Settings, r: &Returned) -> Result<Option<Found>> {
    for id in &r.message_ids {
        if let Some((edition_id, subscriber_id, domain)) = parse_message_id(id)
            && domain == settings.domain
        {
            let edition = match store.edition(edition_id).await {
                Ok(e) => e,
                Err(StoreError::NotFound(_)) => continue,
                Err(e) => return Err(e),
            };
            let ours =
                crate::delivery::message_id_for(store.verp_key(), &edition, subscriber_id, &domain);
            if ours.eq_ignore_ascii_case(id) {
                return Ok(Some(Found {
                    lookup: store.lookup_delivery(edition_id, subscriber_id).await?,
                    by: MatchedBy::MessageId,
                }));
            }
        }
    }
    for t in &r.tokens {
        let Some(token) = Token::parse(t) else {
            continue;
        };
        if let Some(lookup) = store.lookup_token(&token).await? {
            return Ok(Some(Found {
                lookup,
                by: MatchedBy::Token,
            }));
        }
    }
    Ok(None)
}

/// `<e12.s34.abcdef012345@news.example.com>` → (12, 34, domain).
fn parse_message_id(id: &str) -> Option<(i64, i64, String)> {
    let inner = id.trim().strip_prefix('<')?.strip_suffix('>')?;
    let (left, domain) = inner.rsplit_once('@')?;
    let mut parts = left.split('.');
    let e = parts.next()?.strip_prefix('e')?.parse().ok()?;
    let s = parts.next()?.strip_prefix('s')?.parse().ok()?;
    parts.next()?;
    // Edition 0 is a confirmation, whose id is random: only VERP names those.
    (e > 0).then(|| (e, s, domain.to_ascii_lowercase()))
}

/// The slug of our list named by a returned `List-Id` (`<slug.domain>`).
fn our_list(settings: &Settings, r: &Returned) -> Option<String> {
    let suffix = format!(".{}", settings.domain);
    r.list_ids
        .iter()
        .find_map(|id| id.strip_suffix(&suffix).map(str::to_owned))
}

async fn by_recipient(
    store: &Store,
    addr: Option<&str>,
    slug: Option<&str>,
) -> Result<Option<Found>> {
    let (Some(addr), Some(slug)) = (addr, slug) else {
        return Ok(None);
    };
    let Ok(email) = EmailAddress::parse(addr) else {
        return Ok(None);
    };
    Ok(store.lookup_recipient(&email, slug).await?.map(|t| Found {
        lookup: Lookup::Reader(t),
        by: MatchedBy::RecipientAndList,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn message_ids_of_editions_parse_and_others_do_not() {
        assert_eq!(
            parse_message_id("<e12.s34.abcdef012345@News.Example.com>"),
            Some((12, 34, "news.example.com".into()))
        );
        for other in [
            "<e0.s5.abc@news.example.com>",
            "<random@news.example.com>",
            "e1.s2.x@news.example.com",
            "<e1.s2@news.example.com>",
        ] {
            assert_eq!(parse_message_id(other), None, "{other}");
        }
    }
}
