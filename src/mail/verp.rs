//! VERP: a per-message envelope sender `b+<id>@<return_path_domain>` that names the message it
//! was sent with, so any bounce sent back to it identifies its reader even when the bounce
//! itself says nothing useful.
//!
//! `<id>` is, in lower-case base32 (RFC 4648 §6, no padding; relays may lower-case a local
//! part, RFC 5321 §2.4 notwithstanding): a kind byte, the item's ids as LEB128 varints, and
//! the first [`MAC_LEN`] bytes of an HMAC-SHA256 of all that under the installation's
//! [`VerpKey`]. A delivery of edition 4,000 to reader 1,000,000 is `b+` and 20 characters.
//! Without the key nobody can make an address that verifies, so nobody can bounce a reader
//! by forging a DSN; a relay's `recipient_delimiter = +` delivers every one of them to the
//! `b` mailbox (or the pipe).

use data_encoding::BASE32_NOPAD;

use crate::config::ReturnPathDomain;
use crate::domain::{EmailAddress, VerpKey};

/// MAC bytes kept: 48 bits, so a forger must send about 2^47 bounces per success.
pub const MAC_LEN: usize = 6;

/// The local part's prefix before the id.
pub const PREFIX: &str = "b+";

/// Domain separation: a VERP MAC is of nothing else.
const LABEL: &[u8] = b"dispatch verp v1\0";

const KIND_DELIVERY: u8 = 1;
const KIND_MAIL: u8 = 2;

/// What a VERP address names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VerpItem {
    /// One reader's message of an edition (a row of `deliveries`).
    Delivery { edition_id: i64, subscriber_id: i64 },
    /// A transactional message (a row of `mail_queue`).
    Mail { id: i64 },
}

/// What an address turned out to be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decoded {
    /// Not a VERP address of ours at all.
    NotVerp,
    /// Shaped like ours, but the MAC does not verify (or the id is malformed): a forgery or
    /// a mangled address. Nothing it names may be acted on.
    Forged,
    /// A genuine address of ours.
    Item(VerpItem),
}

/// The envelope sender for `item`: `b+<id>@<domain>`.
pub fn address(key: &VerpKey, item: VerpItem, domain: &ReturnPathDomain) -> EmailAddress {
    let raw = format!("{PREFIX}{}@{}", encode(key, item), domain.as_str());
    // Invariant: the local part is `b+` and base32 letters and digits, the domain was checked
    // at load; such an address always parses.
    EmailAddress::parse(&raw).unwrap_or_else(|e| unreachable!("a VERP address is valid: {e}"))
}

/// The `<id>` for `item`.
pub fn encode(key: &VerpKey, item: VerpItem) -> String {
    let mut payload = Vec::with_capacity(24);
    match item {
        VerpItem::Delivery {
            edition_id,
            subscriber_id,
        } => {
            payload.push(KIND_DELIVERY);
            leb128(&mut payload, edition_id);
            leb128(&mut payload, subscriber_id);
        }
        VerpItem::Mail { id } => {
            payload.push(KIND_MAIL);
            leb128(&mut payload, id);
        }
    }
    let mac = key.mac(&[LABEL, &payload]);
    payload.extend_from_slice(&mac[..MAC_LEN]);
    BASE32_NOPAD.encode(&payload).to_ascii_lowercase()
}

/// Reads an address (`b+<id>@any.domain`, in any case). The domain is not checked: the MAC
/// is what proves the address ours, and bounces to an older return-path domain still count.
pub fn decode(key: &VerpKey, address: &str) -> Decoded {
    let address = address.trim().trim_start_matches('<').trim_end_matches('>');
    let Some((local, _domain)) = address.rsplit_once('@') else {
        return Decoded::NotVerp;
    };
    let local = local.to_ascii_lowercase();
    let Some(id) = local.strip_prefix(PREFIX) else {
        return Decoded::NotVerp;
    };
    match decode_id(key, id) {
        Some(item) => Decoded::Item(item),
        None => Decoded::Forged,
    }
}

fn decode_id(key: &VerpKey, id: &str) -> Option<VerpItem> {
    let bytes = BASE32_NOPAD
        .decode(id.to_ascii_uppercase().as_bytes())
        .ok()?;
    if bytes.len() <= MAC_LEN + 1 {
        return None;
    }
    let (payload, mac) = bytes.split_at(bytes.len() - MAC_LEN);
    if !key.verify_prefix(&[LABEL, payload], mac) {
        return None;
    }
    let (&kind, mut rest) = payload.split_first()?;
    let item = match kind {
        KIND_DELIVERY => VerpItem::Delivery {
            edition_id: read_leb128(&mut rest)?,
            subscriber_id: read_leb128(&mut rest)?,
        },
        KIND_MAIL => VerpItem::Mail {
            id: read_leb128(&mut rest)?,
        },
        _ => return None,
    };
    rest.is_empty().then_some(item)
}

fn leb128(out: &mut Vec<u8>, n: i64) {
    // Row ids are positive; a negative one (never made by SQLite) encodes as 0.
    let mut n = u64::try_from(n).unwrap_or(0);
    loop {
        let byte = (n & 0x7f) as u8;
        n >>= 7;
        if n == 0 {
            out.push(byte);
            return;
        }
        out.push(byte | 0x80);
    }
}

fn read_leb128(input: &mut &[u8]) -> Option<i64> {
    let mut n: u64 = 0;
    for shift in (0..63).step_by(7) {
        let (&b, rest) = input.split_first()?;
        *input = rest;
        n |= u64::from(b & 0x7f) << shift;
        if b & 0x80 == 0 {
            return i64::try_from(n).ok();
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::TokenKey;

    fn key() -> VerpKey {
        VerpKey::derive(&TokenKey::generate())
    }

    fn domain() -> ReturnPathDomain {
        ReturnPathDomain::parse("bounces.news.example.com").unwrap()
    }

    #[test]
    fn an_address_names_its_item_in_any_case_and_stays_short() {
        let k = key();
        for item in [
            VerpItem::Delivery {
                edition_id: 4_000,
                subscriber_id: 1_000_000,
            },
            VerpItem::Delivery {
                edition_id: 1,
                subscriber_id: i64::MAX,
            },
            VerpItem::Mail { id: 77 },
        ] {
            let a = address(&k, item, &domain());
            assert_eq!(decode(&k, a.as_str()), Decoded::Item(item));
            assert_eq!(
                decode(&k, &a.as_str().to_ascii_uppercase()),
                Decoded::Item(item)
            );
            assert_eq!(
                decode(&k, &format!("<{}>", a.as_str())),
                Decoded::Item(item)
            );
            let local = a.as_str().split('@').next().unwrap();
            assert!(local.len() <= 32, "{local}");
            assert!(
                local
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'+'),
                "{local}"
            );
        }
        let a = address(
            &k,
            VerpItem::Delivery {
                edition_id: 4_000,
                subscriber_id: 1_000_000,
            },
            &domain(),
        );
        assert_eq!(a.as_str().split('@').next().unwrap().len(), 2 + 20);
    }

    #[test]
    fn a_changed_character_another_key_or_garbage_is_forged_and_others_are_not_ours() {
        let k = key();
        let item = VerpItem::Delivery {
            edition_id: 12,
            subscriber_id: 34,
        };
        let a = address(&k, item, &domain()).as_str().to_owned();
        assert_eq!(decode(&key(), &a), Decoded::Forged);
        let (local, dom) = a.split_once('@').unwrap();
        for i in 2..local.len() {
            let mut bytes = local.as_bytes().to_vec();
            bytes[i] = if bytes[i] == b'a' { b'b' } else { b'a' };
            let tampered = format!("{}@{dom}", String::from_utf8(bytes).unwrap());
            assert_ne!(decode(&k, &tampered), Decoded::Item(item), "{tampered}");
        }
        for junk in [
            "b+@x.com",
            "b+!!!@x.com",
            "b+aaaa@x.com",
            "b+aaaaaaaaaaaaaaaaaaaa@x.com",
        ] {
            assert_eq!(decode(&k, junk), Decoded::Forged, "{junk}");
        }
        for other in ["digest@news.example.com", "bob@x.com", "nobody"] {
            assert_eq!(decode(&k, other), Decoded::NotVerp, "{other}");
        }
    }
}
