//! DKIM signatures (RFC 6376) with relaxed/relaxed canonicalization, RSA-SHA256 or
//! Ed25519-SHA256 (RFC 8463).
//!
//! RFC 8058 §4 requires the signature to cover `List-Unsubscribe` and `List-Unsubscribe-Post`
//! for one-click unsubscribes to be honoured, so both are always in `h=` when present. The
//! headers a forger would most like to add a second copy of (`From`, `Subject` and the two
//! unsubscribe headers) are listed once more than they occur ("oversigning", RFC 6376 §8.15):
//! a copy added later makes the signature fail.

use std::path::{Path, PathBuf};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use rsa::pkcs1::DecodeRsaPrivateKey as _;
use rsa::pkcs8::DecodePrivateKey as _;
use rsa::pkcs8::EncodePublicKey as _;
use rsa::signature::{SignatureEncoding as _, Signer as _};
use rsa::traits::PublicKeyParts as _;
use sha2::{Digest as _, Sha256};

use crate::config;

/// Headers signed when present, in `h=` order (RFC 6376 §5.4.1 recommends at least these).
const SIGNED: &[&str] = &[
    "from",
    "reply-to",
    "to",
    "subject",
    "date",
    "message-id",
    "mime-version",
    "content-type",
    "list-id",
    "list-unsubscribe",
    "list-unsubscribe-post",
    "auto-submitted",
    "feedback-id",
];

/// Headers listed once more than they occur, so an added copy breaks the signature.
const OVERSIGNED: &[&str] = &[
    "from",
    "subject",
    "list-unsubscribe",
    "list-unsubscribe-post",
];

/// Why a key could not be loaded or a message not signed.
#[derive(Debug, thiserror::Error)]
pub enum DkimError {
    /// The key file could not be read.
    #[error("cannot read DKIM private key {path}: {source}")]
    Read {
        /// The `[dkim] private_key_path`.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The key file was read but is not a usable key.
    #[error("DKIM private key {path}: {reason}")]
    Key {
        /// The `[dkim] private_key_path`.
        path: PathBuf,
        /// What was wrong, and how to make a usable key.
        reason: String,
    },
    /// The message cannot be signed as it is.
    #[error("cannot DKIM-sign the message: {0}")]
    Message(String),
}

enum Key {
    Rsa(Box<rsa::pkcs1v15::SigningKey<Sha256>>),
    Ed25519(Box<ed25519_dalek::SigningKey>),
}

/// Signs messages for one domain and selector.
pub struct DkimSigner {
    domain: String,
    selector: String,
    key: Key,
}

impl std::fmt::Debug for DkimSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DkimSigner")
            .field("domain", &self.domain)
            .field("selector", &self.selector)
            .field("algorithm", &self.algorithm())
            .finish_non_exhaustive()
    }
}

const KEYGEN_HINT: &str = "make one with `openssl genrsa -traditional -out dkim.pem 2048` \
     or `openssl genpkey -algorithm ed25519 -out dkim.pem`";

impl DkimSigner {
    /// Loads the key named by `[dkim] private_key_path`.
    pub fn from_config(cfg: &config::Dkim) -> Result<Self, DkimError> {
        let path = &cfg.private_key_path;
        let pem = std::fs::read(path).map_err(|source| DkimError::Read {
            path: path.clone(),
            source,
        })?;
        Self::from_pem(&cfg.domain, &cfg.selector, &pem, path)
    }

    /// Builds a signer from PEM text: an RSA key as PKCS#1 (`BEGIN RSA PRIVATE KEY`) or
    /// PKCS#8 (`BEGIN PRIVATE KEY`), or an Ed25519 key as PKCS#8. `path` names the source in
    /// errors.
    pub fn from_pem(
        domain: &str,
        selector: &str,
        pem: &[u8],
        path: &Path,
    ) -> Result<Self, DkimError> {
        let err = |reason: String| DkimError::Key {
            path: path.to_owned(),
            reason,
        };
        let (label, der) = rsa::pkcs8::der::pem::decode_vec(pem)
            .map_err(|e| err(format!("not a PEM private key ({e}); {KEYGEN_HINT}")))?;
        let key = match label {
            "RSA PRIVATE KEY" => {
                let k = rsa::RsaPrivateKey::from_pkcs1_der(&der)
                    .map_err(|e| err(format!("not a valid PKCS#1 RSA key: {e}")))?;
                rsa_key(k).map_err(err)?
            }
            "PRIVATE KEY" => {
                let info = rsa::pkcs8::PrivateKeyInfo::try_from(der.as_slice())
                    .map_err(|e| err(format!("not a valid PKCS#8 key: {e}")))?;
                let oid = info.algorithm.oid.to_string();
                match oid.as_str() {
                    // rsaEncryption (RFC 8017 Appendix C)
                    "1.2.840.113549.1.1.1" => {
                        let k = rsa::RsaPrivateKey::from_pkcs8_der(&der)
                            .map_err(|e| err(format!("not a valid PKCS#8 RSA key: {e}")))?;
                        rsa_key(k).map_err(err)?
                    }
                    // id-Ed25519 (RFC 8410 §3)
                    "1.3.101.112" => {
                        let k = <ed25519_dalek::SigningKey as ed25519_dalek::pkcs8::DecodePrivateKey>::from_pkcs8_der(&der)
                            .map_err(|e| err(format!("not a valid PKCS#8 Ed25519 key: {e}")))?;
                        Key::Ed25519(Box::new(k))
                    }
                    other => {
                        return Err(err(format!(
                            "key algorithm {other} is not usable for DKIM (RSA or Ed25519 only); {KEYGEN_HINT}"
                        )));
                    }
                }
            }
            "ENCRYPTED PRIVATE KEY" => {
                return Err(err(
                    "the key is encrypted; decrypt it with `openssl pkey -in KEY -out dkim.pem`"
                        .into(),
                ));
            }
            other => {
                return Err(err(format!(
                    "PEM block {other:?} is not a private key DKIM can use; {KEYGEN_HINT}"
                )));
            }
        };
        let domain = domain.trim().to_ascii_lowercase();
        let selector = selector.trim().to_owned();
        let valid = |s: &str| {
            !s.is_empty()
                && s.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_'))
        };
        if !valid(&domain) || !valid(&selector) {
            return Err(err(format!(
                "domain {domain:?} and selector {selector:?} must be DNS labels (letters, digits, '-', '_', '.')"
            )));
        }
        Ok(Self {
            domain,
            selector,
            key,
        })
    }

    /// `rsa-sha256` or `ed25519-sha256`.
    pub fn algorithm(&self) -> &'static str {
        match self.key {
            Key::Rsa(_) => "rsa-sha256",
            Key::Ed25519(_) => "ed25519-sha256",
        }
    }

    /// The DNS name of the public key record: `<selector>._domainkey.<domain>`.
    pub fn dns_name(&self) -> String {
        format!("{}._domainkey.{}", self.selector, self.domain)
    }

    /// The TXT record to publish at [`Self::dns_name`] (RFC 6376 §3.6.1; RFC 8463 §4 for
    /// Ed25519, whose `p=` is the bare 32-byte public key).
    pub fn dns_record(&self) -> String {
        match &self.key {
            Key::Rsa(k) => {
                let public = rsa::RsaPublicKey::from(k.as_ref().as_ref());
                let der = public
                    .to_public_key_der()
                    .map(|d| d.as_bytes().to_vec())
                    .unwrap_or_default();
                format!("v=DKIM1; k=rsa; p={}", BASE64.encode(der))
            }
            Key::Ed25519(k) => format!(
                "v=DKIM1; k=ed25519; p={}",
                BASE64.encode(k.verifying_key().as_bytes())
            ),
        }
    }

    /// Signs `message` (CRLF line endings, headers then an empty line then the body) and
    /// returns the folded `DKIM-Signature: ...\r\n` header to put in front of it.
    pub fn sign(&self, message: &[u8]) -> Result<String, DkimError> {
        self.sign_at(message, chrono::Utc::now().timestamp())
    }

    /// [`Self::sign`] with the signature time `t=` given (seconds since the epoch).
    pub fn sign_at(&self, message: &[u8], unix_time: i64) -> Result<String, DkimError> {
        let (head, body) = match message.windows(4).position(|w| w == b"\r\n\r\n") {
            Some(p) => (&message[..p + 2], &message[p + 4..]),
            None => {
                return Err(DkimError::Message(
                    "no empty line between header and body".into(),
                ));
            }
        };
        let fields = parse_fields(head);

        let mut h_names: Vec<&str> = Vec::new();
        for name in SIGNED {
            let n = fields
                .iter()
                .filter(|(k, _)| k.eq_ignore_ascii_case(name))
                .count();
            let n = if n > 0 && OVERSIGNED.contains(name) {
                n + 1
            } else {
                n
            };
            h_names.extend(std::iter::repeat_n(*name, n));
        }
        if !h_names.contains(&"from") {
            // RFC 6376 §5.4: the From header field MUST be signed.
            return Err(DkimError::Message("the message has no From header".into()));
        }

        let mut body_hash = Sha256::new();
        relaxed_body(body, &mut body_hash);
        let bh = BASE64.encode(body_hash.finalize());

        // The header, folded between tags (FWS is allowed around tags, RFC 6376 §3.2); b= is
        // empty while hashing (§3.7).
        let mut sig = String::from("DKIM-Signature:");
        let mut col = sig.len();
        let mut tag = |sig: &mut String, text: &str, last: bool| {
            let len = text.len() + usize::from(!last);
            if col + 1 + len > 78 {
                sig.push_str("\r\n");
                col = 0;
            }
            sig.push(' ');
            sig.push_str(text);
            if !last {
                sig.push(';');
            }
            col += 1 + len;
        };
        for t in [
            "v=1".to_owned(),
            format!("a={}", self.algorithm()),
            "c=relaxed/relaxed".to_owned(),
            format!("d={}", self.domain),
            format!("s={}", self.selector),
            format!("t={unix_time}"),
        ] {
            tag(&mut sig, &t, false);
        }
        sig.push_str("\r\n h=");
        let mut col = 3;
        for (i, name) in h_names.iter().enumerate() {
            if i > 0 {
                sig.push(':');
                col += 1;
            }
            if col + name.len() + 1 > 78 {
                sig.push_str("\r\n ");
                col = 1;
            }
            sig.push_str(name);
            col += name.len();
        }
        sig.push_str(&format!(";\r\n bh={bh};\r\n b="));

        // RFC 6376 §5.4.2: for each name in h=, the last not yet used instance, bottom up; a
        // name with no instance left contributes nothing.
        let mut hasher = Sha256::new();
        let mut used = vec![false; fields.len()];
        for name in &h_names {
            let found = fields
                .iter()
                .enumerate()
                .rev()
                .find(|(i, (k, _))| !used[*i] && k.eq_ignore_ascii_case(name));
            if let Some((i, (_, raw))) = found {
                used[i] = true;
                relaxed_header(raw, &mut hasher, true);
            }
        }
        // The signature header itself, without its trailing CRLF (§3.7).
        relaxed_header(sig.as_bytes(), &mut hasher, false);
        let digest = hasher.finalize();

        let signature = match &self.key {
            // RSASSA-PKCS1-v1_5 over the SHA-256 of the data (RFC 6376 §3.3.1); the signer
            // hashes what it is given, so it gets the data via the digest's input instead.
            Key::Rsa(k) => k.sign_prehash_sha256(&digest)?,
            // RFC 8463 §3: PureEdDSA over the SHA-256 hash of the data.
            Key::Ed25519(k) => k.sign(&digest).to_bytes().to_vec(),
        };
        let b = BASE64.encode(signature);
        // Fold the base64 (whitespace inside b= is ignored, RFC 6376 §3.5).
        let mut first = true;
        let mut rest = b.as_str();
        while !rest.is_empty() {
            let take = rest.len().min(if first { 73 } else { 76 });
            if !first {
                sig.push_str("\r\n ");
            }
            sig.push_str(&rest[..take]);
            rest = &rest[take..];
            first = false;
        }
        sig.push_str("\r\n");
        Ok(sig)
    }
}

fn rsa_key(k: rsa::RsaPrivateKey) -> Result<Key, String> {
    k.validate()
        .map_err(|e| format!("the RSA key is inconsistent: {e}"))?;
    let bits = k.size() * 8;
    // RFC 8301 §3.2: verifiers reject keys under 1024 bits; signers should use 2048.
    if bits < 1024 {
        return Err(format!(
            "the RSA key has {bits} bits; use at least 2048 (RFC 8301 §3.2)"
        ));
    }
    if bits < 2048 {
        tracing::warn!(
            bits,
            "DKIM RSA key is shorter than the recommended 2048 bits (RFC 8301 §3.2)"
        );
    }
    Ok(Key::Rsa(Box::new(
        rsa::pkcs1v15::SigningKey::<Sha256>::new(k),
    )))
}

/// Signing a precomputed SHA-256 digest with PKCS#1 v1.5.
trait SignPrehash {
    fn sign_prehash_sha256(&self, digest: &[u8]) -> Result<Vec<u8>, DkimError>;
}

impl SignPrehash for rsa::pkcs1v15::SigningKey<Sha256> {
    fn sign_prehash_sha256(&self, digest: &[u8]) -> Result<Vec<u8>, DkimError> {
        use rsa::signature::hazmat::PrehashSigner as _;
        self.sign_prehash(digest)
            .map(|s| s.to_vec())
            .map_err(|e| DkimError::Message(format!("RSA signing failed: {e}")))
    }
}

/// Splits a header block into `(name, raw field without the final CRLF)`.
fn parse_fields(head: &[u8]) -> Vec<(String, &[u8])> {
    let mut fields: Vec<(String, &[u8])> = Vec::new();
    let mut start = 0;
    let mut i = 0;
    while i + 1 < head.len() {
        if head[i] == b'\r' && head[i + 1] == b'\n' {
            let next = head.get(i + 2).copied();
            // A line starting with WSP continues the field (RFC 5322 §2.2.3).
            if !matches!(next, Some(b' ') | Some(b'\t')) {
                let raw = &head[start..i];
                if let Some(colon) = raw.iter().position(|&b| b == b':') {
                    let name = String::from_utf8_lossy(&raw[..colon])
                        .trim()
                        .to_ascii_lowercase();
                    fields.push((name, raw));
                }
                start = i + 2;
            }
            i += 2;
        } else {
            i += 1;
        }
    }
    fields
}

fn is_wsp(b: u8) -> bool {
    b == b' ' || b == b'\t'
}

/// Relaxed header canonicalization (RFC 6376 §3.4.2): lower-case name, no WSP around the
/// colon, unfolded, WSP runs as one SP, no WSP at the end; then CRLF if `crlf`.
fn relaxed_header(raw: &[u8], h: &mut Sha256, crlf: bool) {
    let Some(colon) = raw.iter().position(|&b| b == b':') else {
        return;
    };
    let name = raw[..colon].trim_ascii().to_ascii_lowercase();
    let mut out = Vec::with_capacity(raw.len());
    out.extend_from_slice(&name);
    out.push(b':');
    let mut pending_space = false;
    for &b in &raw[colon + 1..] {
        match b {
            b'\r' | b'\n' => {}
            b if is_wsp(b) => pending_space = true,
            b => {
                // Leading WSP after the colon is dropped; inner runs become one SP.
                if pending_space && out.len() > name.len() + 1 {
                    out.push(b' ');
                }
                pending_space = false;
                out.push(b);
            }
        }
    }
    if crlf {
        out.extend_from_slice(b"\r\n");
    }
    h.update(&out);
}

/// Relaxed body canonicalization (RFC 6376 §3.4.4), fed straight into the hash: WSP at line
/// ends removed, inner WSP runs as one SP, empty lines at the end dropped, a final CRLF.
fn relaxed_body(body: &[u8], h: &mut Sha256) {
    let mut empty_lines = 0usize;
    for line in body.split(|&b| b == b'\n') {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        let mut end = line.len();
        while end > 0 && is_wsp(line[end - 1]) {
            end -= 1;
        }
        let line = &line[..end];
        if line.is_empty() {
            empty_lines += 1;
            continue;
        }
        for _ in 0..empty_lines {
            h.update(b"\r\n");
        }
        empty_lines = 0;
        let mut seg = 0;
        let mut i = 0;
        while i < line.len() {
            if is_wsp(line[i]) {
                let run = i;
                while i < line.len() && is_wsp(line[i]) {
                    i += 1;
                }
                if i - run > 1 || line[run] != b' ' {
                    h.update(&line[seg..run]);
                    h.update(b" ");
                    seg = i;
                }
            } else {
                i += 1;
            }
        }
        h.update(&line[seg..]);
        h.update(b"\r\n");
    }
}

#[cfg(test)]
mod tests;
