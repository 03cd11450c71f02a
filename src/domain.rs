//! Newtypes parsed at the edges: once a value has one of these types it is known to be valid.
//!
//! Every parser returns a [`DomainError`] whose message names what was wrong, so the CLI, the
//! CSV importer and the web forms can pass it straight to the person who typed the value.

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Datelike, Utc};
use serde::{Deserialize, Serialize};

mod access;
pub(crate) mod html;
mod status;
mod text;

pub use status::{
    BounceSource, BounceType, DbTime, DeliveryStatus, EditionKind, EditionStatus, SubscriberStatus,
    SubscriptionStatus, TokenPurpose,
};
pub mod template;

pub use access::{ApiKey, Role};
pub use html::html_text;
pub use template::{Hole, Segment, Template};
pub use text::{
    MAX_AUTHOR_CHARS, MAX_NAME_CHARS, MAX_SUMMARY_CHARS, MAX_TITLE_CHARS, TextTooLong, clean_text,
    clean_text_within, echo,
};

/// Why a value was rejected. The message is meant for a human and names the offending value
/// (at most 60 characters of it, see [`echo`]).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DomainError {
    #[error("invalid email address {0:?}: {1}")]
    Email(String, String),
    #[error(
        "invalid list slug {0:?}: use 1-64 lowercase letters, digits and '-', starting with a letter or digit"
    )]
    Slug(String),
    #[error("invalid category {0:?}: {1}")]
    Category(String, String),
    #[error("invalid schedule {0:?}: {1}")]
    Schedule(String, String),
    #[error("unknown time zone {0:?}: use an IANA name such as Asia/Karachi or Europe/London")]
    Timezone(String),
    #[error("invalid URL {0:?}: {1}")]
    Url(String, String),
    #[error("invalid timestamp {0:?}: use RFC 3339, e.g. 2026-11-28T07:00:00+05:00")]
    Timestamp(String),
    #[error("timestamp {0:?} is {1} in UTC, outside the years 0000 to 9999 that can be stored")]
    TimestampRange(String, String),
}

/// The longest address we accept (RFC 5321 §4.5.3.1.3 limits a path to 256 octets including
/// the angle brackets).
const MAX_EMAIL_LEN: usize = 254;

/// A syntactically valid email address with its domain lower-cased.
///
/// The local part keeps its case (RFC 5321 §2.4 says it may be case-sensitive), but uniqueness
/// in the store is case-insensitive, which is what every real mailbox provider does.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(transparent)]
pub struct EmailAddress(String);

impl EmailAddress {
    /// Parses and normalises an address: trims it, checks the syntax with lettre's parser and
    /// lower-cases the domain.
    pub fn parse(raw: &str) -> Result<Self, DomainError> {
        let s = raw.trim();
        let err = |why: &str| DomainError::Email(echo(raw), why.to_owned());
        if s.is_empty() {
            return Err(err("it is empty"));
        }
        if s.len() > MAX_EMAIL_LEN {
            return Err(err("it is longer than 254 characters"));
        }
        if s.chars().any(|c| c.is_control() || c.is_whitespace()) {
            return Err(err("it contains spaces or control characters"));
        }
        let Some((local, domain)) = s.rsplit_once('@') else {
            return Err(err("it has no '@'"));
        };
        if !domain.contains('.') {
            return Err(err("the domain has no dot"));
        }
        // Lower-cased in place: one allocation per address (a CSV import parses millions).
        let mut normalised = String::with_capacity(s.len());
        normalised.push_str(local);
        normalised.push('@');
        normalised.push_str(domain);
        normalised[local.len() + 1..].make_ascii_lowercase();
        lettre::Address::from_str(&normalised).map_err(|e| err(&e.to_string()))?;
        Ok(Self(normalised))
    }

    /// The address as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The domain part: the only piece of an address we ever log.
    pub fn domain(&self) -> &str {
        // Invariant: `parse` rejected every string without an '@'.
        self.0.rsplit_once('@').map(|(_, d)| d).unwrap_or("")
    }

    /// The key used for case-insensitive uniqueness and for the erasure record.
    pub fn canonical(&self) -> String {
        self.0.to_lowercase()
    }
}

impl fmt::Display for EmailAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl FromStr for EmailAddress {
    type Err = DomainError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

impl<'de> Deserialize<'de> for EmailAddress {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Self::parse(&s).map_err(serde::de::Error::custom)
    }
}

/// A list's short name, used in URLs, `List-Id` and the CLI: `daily`, `breaking-news`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(transparent)]
pub struct ListSlug(String);

impl ListSlug {
    /// Parses a slug: 1–64 of `[a-z0-9-]`, not starting with `-`.
    pub fn parse(raw: &str) -> Result<Self, DomainError> {
        let ok = !raw.is_empty()
            && raw.len() <= 64
            && !raw.starts_with('-')
            && raw
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
        if ok {
            Ok(Self(raw.to_owned()))
        } else {
            Err(DomainError::Slug(echo(raw)))
        }
    }

    /// The slug as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for ListSlug {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl FromStr for ListSlug {
    type Err = DomainError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

/// An article category such as `Politics` or `General News`.
///
/// Categories compare case-insensitively (`politics` is `Politics`) but keep the spelling they
/// were entered with for display.
#[derive(Debug, Clone, Serialize)]
#[serde(transparent)]
pub struct Category(String);

impl Category {
    /// Parses a category: trimmed, 1–64 characters, no control characters, no `;` or `,`
    /// (they separate categories in the CLI and in CSV files).
    pub fn parse(raw: &str) -> Result<Self, DomainError> {
        let s = raw.trim();
        let err = |why: &str| DomainError::Category(echo(raw), why.to_owned());
        if s.is_empty() {
            return Err(err("it is empty"));
        }
        if s.chars().count() > 64 {
            return Err(err("it is longer than 64 characters"));
        }
        if s.chars().any(|c| c.is_control() || c == ';' || c == ',') {
            return Err(err("it contains a control character, ';' or ','"));
        }
        Ok(Self(s.to_owned()))
    }

    /// The category as entered.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The comparison key.
    pub fn key(&self) -> String {
        self.0.to_lowercase()
    }
}

impl PartialEq for Category {
    fn eq(&self, other: &Self) -> bool {
        self.0.to_lowercase() == other.0.to_lowercase()
    }
}
impl Eq for Category {}

impl std::hash::Hash for Category {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.key().hash(state);
    }
}

impl PartialOrd for Category {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Category {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.key()
            .cmp(&other.key())
            .then_with(|| self.0.cmp(&other.0))
    }
}

impl fmt::Display for Category {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A set of categories; `None` where it is used means "all".
///
/// Stored in the database in a canonical text form (sorted case-insensitively, joined with
/// `;`) so that equal choices are equal strings and `SELECT DISTINCT` finds the render variants.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, Serialize)]
#[serde(transparent)]
pub struct CategorySet(Vec<Category>);

impl CategorySet {
    /// Builds a set, dropping duplicates.
    pub fn new(mut cats: Vec<Category>) -> Self {
        cats.sort();
        cats.dedup();
        Self(cats)
    }

    /// Parses a list separated by `,` or `;` (CLI and CSV). Empty input gives an empty set.
    pub fn parse_list(raw: &str) -> Result<Self, DomainError> {
        let cats = raw
            .split([',', ';'])
            .filter(|p| !p.trim().is_empty())
            .map(Category::parse)
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Self::new(cats))
    }

    /// Reads the canonical stored form back.
    pub fn from_stored(stored: &str) -> Self {
        Self::new(
            stored
                .split(';')
                .filter_map(|p| Category::parse(p).ok())
                .collect(),
        )
    }

    /// The canonical stored form.
    pub fn to_stored(&self) -> String {
        self.0
            .iter()
            .map(Category::as_str)
            .collect::<Vec<_>>()
            .join(";")
    }

    /// The categories, sorted.
    pub fn iter(&self) -> impl Iterator<Item = &Category> {
        self.0.iter()
    }

    /// Whether the set holds `c` (case-insensitively).
    pub fn contains(&self, c: &Category) -> bool {
        self.0.iter().any(|x| x == c)
    }

    /// Whether the set is empty.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// How many categories the set holds.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// The member of this set equal to `c`, in this set's spelling.
    pub fn find(&self, c: &Category) -> Option<&Category> {
        self.0.iter().find(|x| *x == c)
    }
}

impl fmt::Display for CategorySet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names: Vec<&str> = self.0.iter().map(Category::as_str).collect();
        f.write_str(&names.join(", "))
    }
}

/// An IANA time zone, e.g. `Asia/Karachi`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timezone(pub chrono_tz::Tz);

impl Timezone {
    /// Parses an IANA zone name.
    pub fn parse(raw: &str) -> Result<Self, DomainError> {
        raw.trim()
            .parse::<chrono_tz::Tz>()
            .map(Self)
            .map_err(|_| DomainError::Timezone(echo(raw)))
    }

    /// The zone's IANA name.
    pub fn name(&self) -> &'static str {
        self.0.name()
    }
}

impl fmt::Display for Timezone {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.0.name())
    }
}

/// A BCP 47-shaped language tag, lower-cased (`en`, `ur`, `en-gb`), or `None` for junk: the
/// one rule for feeds, JSON Lines, the API and `[[feeds]] language`.
pub fn language_tag(raw: &str) -> Option<String> {
    let tag = raw.trim();
    let ok = !tag.is_empty()
        && tag.len() <= 35
        && tag.split('-').all(|part| {
            !part.is_empty() && part.len() <= 8 && part.bytes().all(|b| b.is_ascii_alphanumeric())
        });
    ok.then(|| tag.to_ascii_lowercase())
}

/// An absolute `http` or `https` URL (articles, the site, the public base URL).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct WebUrl(String);

impl WebUrl {
    /// Parses an absolute http(s) URL with a host and no whitespace or control characters.
    pub fn parse(raw: &str) -> Result<Self, DomainError> {
        let s = raw.trim();
        let err = |why: &str| DomainError::Url(echo(raw), why.to_owned());
        let rest = s
            .strip_prefix("https://")
            .or_else(|| s.strip_prefix("http://"))
            .ok_or_else(|| err("it must start with http:// or https://"))?;
        let host = rest.split(['/', '?', '#']).next().unwrap_or("");
        if host.is_empty() {
            return Err(err("it has no host"));
        }
        if s.chars()
            .any(|c| c.is_control() || c.is_whitespace() || c == '"' || c == '<' || c == '>')
        {
            return Err(err(
                "it contains spaces, quotes, angle brackets or control characters",
            ));
        }
        if s.len() > 2048 {
            return Err(err("it is longer than 2048 characters"));
        }
        Ok(Self(s.to_owned()))
    }

    /// The URL as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The URL without a trailing `/`, for joining paths.
    pub fn base(&self) -> &str {
        self.0.trim_end_matches('/')
    }

    /// The URL without user info, query or fragment, for logs and metrics: a feed URL may
    /// carry a key in either.
    pub fn redacted(&self) -> String {
        let no_query = self.0.split(['?', '#']).next().unwrap_or(&self.0);
        match no_query.split_once("://") {
            Some((scheme, rest)) => {
                let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
                let host = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
                format!("{scheme}://{host}{path}")
            }
            None => no_query.to_owned(),
        }
    }

    /// The host part, e.g. `news.example.com`.
    pub fn host(&self) -> &str {
        let rest = self.0.split_once("://").map(|(_, r)| r).unwrap_or(&self.0);
        let hostport = rest.split(['/', '?', '#']).next().unwrap_or(rest);
        let host = hostport
            .rsplit_once('@')
            .map(|(_, h)| h)
            .unwrap_or(hostport);
        host.split(':').next().unwrap_or(host)
    }
}

impl fmt::Display for WebUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for Category {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Self::parse(&s).map_err(serde::de::Error::custom)
    }
}

impl<'de> Deserialize<'de> for WebUrl {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Self::parse(&s).map_err(serde::de::Error::custom)
    }
}

/// Parses an RFC 3339 timestamp (any offset) into UTC; it must be storable ([`storable_time`]).
pub fn parse_timestamp(raw: &str) -> Result<DateTime<Utc>, DomainError> {
    let t = DateTime::parse_from_rfc3339(raw.trim())
        .map(|t| t.with_timezone(&Utc))
        .map_err(|_| DomainError::Timestamp(echo(raw)))?;
    storable_time(t).map_err(|_| DomainError::TimestampRange(echo(raw), db_time(t)))
}

/// `t` if [`db_time`] writes it in the schema's fixed form, whose year has four digits: the
/// years 0000 to 9999 in UTC. RFC 3339 allows offsets up to ±23:59, so a local time in year
/// 9999 or 0000 can fall outside them (`9999-12-31T23:59:59-23:59` is in the year 10000).
pub fn storable_time(t: DateTime<Utc>) -> Result<DateTime<Utc>, DomainError> {
    if (0..=9999).contains(&t.year()) {
        Ok(t)
    } else {
        Err(DomainError::TimestampRange(db_time(t), db_time(t)))
    }
}

/// The one text form timestamps take in the database: `2026-11-28T07:00:00Z`.
///
/// Fixed width and always UTC, so SQL string comparison orders it correctly and a CMS writing
/// rows by hand has one unambiguous format to follow.
pub fn db_time(t: DateTime<Utc>) -> String {
    DbTime::from(t).to_text()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redacted_urls_lose_credentials_query_and_fragment() {
        let u = WebUrl::parse("https://bot:s3cret@cms.example.com/feed/?key=abc#x").unwrap();
        assert_eq!(u.redacted(), "https://cms.example.com/feed/");
        let u = WebUrl::parse("http://cms.example.com?key=abc").unwrap();
        assert_eq!(u.redacted(), "http://cms.example.com");
    }

    #[test]
    fn email_lowercases_domain_only() {
        let e = EmailAddress::parse("  Ayesha.Khan@Example.PK ").unwrap();
        assert_eq!(e.as_str(), "Ayesha.Khan@example.pk");
        assert_eq!(e.domain(), "example.pk");
        assert_eq!(e.canonical(), "ayesha.khan@example.pk");
    }

    #[test]
    fn email_rejects_garbage_with_reason() {
        for bad in [
            "",
            "no-at-sign",
            "a@b",
            "a b@example.com",
            "a@@example.com",
            "x@exa mple.com",
        ] {
            let err = EmailAddress::parse(bad).unwrap_err().to_string();
            assert!(err.contains("invalid email address"), "{bad}: {err}");
        }
    }

    #[test]
    fn slug_rules() {
        assert!(ListSlug::parse("daily-digest").is_ok());
        assert!(ListSlug::parse("Daily").is_err());
        assert!(ListSlug::parse("-x").is_err());
        assert!(ListSlug::parse("").is_err());
    }

    #[test]
    fn categories_compare_case_insensitively_and_canonicalise() {
        let set = CategorySet::parse_list("sport; Politics,politics , Business").unwrap();
        assert_eq!(set.to_stored(), "Business;Politics;sport");
        assert!(set.contains(&Category::parse("SPORT").unwrap()));
        assert_eq!(CategorySet::from_stored(&set.to_stored()), set);
        assert!(Category::parse("a;b").is_err());
    }

    #[test]
    fn urls() {
        let u = WebUrl::parse("https://news.example.com/").unwrap();
        assert_eq!(u.base(), "https://news.example.com");
        assert_eq!(u.host(), "news.example.com");
        assert!(WebUrl::parse("javascript:alert(1)").is_err());
        assert!(WebUrl::parse("https://x.com/a b").is_err());
    }

    #[test]
    fn db_time_is_fixed_width_utc() {
        let t = parse_timestamp("2026-11-28T12:00:00.123+05:00").unwrap();
        assert_eq!(db_time(t), "2026-11-28T07:00:00Z");
        let first = parse_timestamp("0000-01-01T00:00:00Z").unwrap();
        assert_eq!(db_time(first), "0000-01-01T00:00:00Z");
        let last = parse_timestamp("9999-12-31T23:59:59Z").unwrap();
        assert_eq!(db_time(last), "9999-12-31T23:59:59Z");
    }

    #[test]
    fn timestamps_outside_the_stored_years_are_refused() {
        for (raw, utc) in [
            ("9999-12-31T23:59:59-23:59", "+10000-01-01T23:58:59Z"),
            ("0000-01-01T00:00:00+23:59", "-0001-12-31T00:01:00Z"),
        ] {
            assert_eq!(
                parse_timestamp(raw).unwrap_err().to_string(),
                format!(
                    "timestamp {raw:?} is {utc} in UTC, outside the years 0000 to 9999 that can be stored"
                )
            );
        }
    }

    #[test]
    fn long_values_are_echoed_cut() {
        let long = format!("{}@example.org", "a".repeat(1000));
        let err = EmailAddress::parse(&long).unwrap_err().to_string();
        assert!(err.len() < 200, "{err}");
        assert!(err.contains("(1012 characters)"), "{err}");
        assert!(err.ends_with("it is longer than 254 characters"), "{err}");
    }
}

/// A secret handed to a reader in a URL (unsubscribe, preferences, confirmation): 128 random
/// bits as 22 URL-safe characters. Only its SHA-256 is stored, so a leaked database does not
/// leak working links.
#[derive(Clone, PartialEq, Eq)]
pub struct Token(String);

impl Token {
    /// Length of a token: 16 random bytes (128 bits) in unpadded base64url (RFC 4648 §5).
    pub const LEN: usize = 22;

    /// A fresh random token.
    pub fn generate() -> Self {
        use base64::Engine as _;
        use rand::Rng as _;
        let mut bytes = [0u8; 16];
        rand::rng().fill_bytes(&mut bytes);
        Self(base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes))
    }

    /// Accepts a token from a URL if it has the right shape; anything else is `None` (and
    /// gets the same 404 as a well-formed unknown token).
    pub fn parse(raw: &str) -> Option<Self> {
        let ok = raw.len() == Self::LEN
            && raw
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        ok.then(|| Self(raw.to_owned()))
    }

    /// The token text, for building the reader's URL.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// What the database stores and looks up.
    pub fn hash(&self) -> Vec<u8> {
        use sha2::Digest as _;
        sha2::Sha256::digest(self.0.as_bytes()).to_vec()
    }
}

impl Token {
    /// The reader token of one subscription: HMAC-SHA256 under the installation's key of the
    /// subscription id and the token's generation, cut to 128 bits.
    ///
    /// Derived rather than drawn so that every message of a subscription can carry the same
    /// link while the database keeps only the token's hash: without the key the output is
    /// as unpredictable as 128 random bits; rotating moves to the next generation.
    pub fn derive(key: &TokenKey, subscription_id: i64, generation: i64) -> Self {
        use base64::Engine as _;
        use hmac::Mac as _;
        // Invariant: HMAC accepts keys of any length.
        let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(&key.0)
            .unwrap_or_else(|_| unreachable!("HMAC takes any key length"));
        mac.update(b"dispatch reader token v1\0");
        mac.update(&subscription_id.to_be_bytes());
        mac.update(&generation.to_be_bytes());
        let tag = mac.finalize().into_bytes();
        Self(base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(&tag[..16]))
    }
}

/// The installation's secret for deriving reader tokens: 256 random bits made once.
#[derive(Clone, PartialEq, Eq)]
pub struct TokenKey([u8; 32]);

impl TokenKey {
    /// A fresh random key.
    pub fn generate() -> Self {
        use rand::Rng as _;
        let mut bytes = [0u8; 32];
        rand::rng().fill_bytes(&mut bytes);
        Self(bytes)
    }

    /// A stored key; `None` unless it is exactly 32 bytes.
    pub fn from_bytes(b: &[u8]) -> Option<Self> {
        b.try_into().ok().map(Self)
    }

    /// The key's bytes, for storing.
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }
}

/// The key of VERP MACs (the VERP addresses of the mail module): derived from the installation's
/// [`TokenKey`] under its own label, so a VERP MAC can never be replayed as a reader token
/// or the other way round.
#[derive(Clone, PartialEq, Eq)]
pub struct VerpKey([u8; 32]);

impl VerpKey {
    /// The VERP key of an installation.
    pub fn derive(key: &TokenKey) -> Self {
        Self(hmac_sha256(&key.0, &[b"dispatch verp key v1"]))
    }

    /// HMAC-SHA256 of `parts` (concatenated) under this key.
    pub fn mac(&self, parts: &[&[u8]]) -> [u8; 32] {
        hmac_sha256(&self.0, parts)
    }

    /// Whether `tag` is the start of the MAC of `parts`, compared in constant time (so a
    /// forger learns nothing from how long a refusal takes).
    pub fn verify_prefix(&self, parts: &[&[u8]], tag: &[u8]) -> bool {
        use hmac::Mac as _;
        // Invariant: HMAC accepts keys of any length.
        let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(&self.0)
            .unwrap_or_else(|_| unreachable!("HMAC takes any key length"));
        for p in parts {
            mac.update(p);
        }
        !tag.is_empty() && mac.verify_truncated_left(tag).is_ok()
    }
}

impl fmt::Debug for VerpKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("VerpKey([redacted])")
    }
}

fn hmac_sha256(key: &[u8], parts: &[&[u8]]) -> [u8; 32] {
    use hmac::Mac as _;
    // Invariant: HMAC accepts keys of any length.
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(key)
        .unwrap_or_else(|_| unreachable!("HMAC takes any key length"));
    for p in parts {
        mac.update(p);
    }
    mac.finalize().into_bytes().into()
}

impl fmt::Debug for TokenKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("TokenKey([redacted])")
    }
}

impl fmt::Debug for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Token([redacted])")
    }
}

#[cfg(test)]
mod token_tests {
    use super::*;

    #[test]
    fn tokens_are_random_url_safe_and_hashed() {
        let a = Token::generate();
        let b = Token::generate();
        assert_ne!(a, b);
        assert_eq!(a.as_str().len(), Token::LEN);
        assert_eq!(Token::parse(a.as_str()), Some(a.clone()));
        assert_eq!(a.hash().len(), 32);
        assert!(Token::parse("short").is_none());
        assert!(Token::parse("../../../../etc/passwd!").is_none());
        assert!(!format!("{a:?}").contains(a.as_str()));
    }

    #[test]
    fn derived_tokens_are_stable_per_generation_and_differ_across_keys() {
        let k = TokenKey::generate();
        let t = Token::derive(&k, 7, 1);
        assert_eq!(t, Token::derive(&k, 7, 1));
        assert_ne!(t, Token::derive(&k, 7, 2));
        assert_ne!(t, Token::derive(&k, 8, 1));
        assert_ne!(t, Token::derive(&TokenKey::generate(), 7, 1));
        assert_eq!(Token::parse(t.as_str()), Some(t.clone()));
        assert!(!format!("{k:?}").contains("0"));
    }
}
