//! The typed values of the config that are not plain numbers: each parses once, when the
//! config is read, and serialises back to the text the file would hold.

use std::fmt;
use std::net::SocketAddr;

use lettre::message::Mailbox;
use serde::{Deserialize, Serialize};

use crate::domain::EmailAddress;

/// What [`Secret`] shows instead of its value.
const REDACTED: &str = "[redacted]";

/// A string that must never be printed: `Debug`, `Display` and `Serialize` all give
/// `[redacted]`.
///
/// Serialising redacts too, so a config written out (for a bug report, or by the
/// `DISPATCH_*` overlay, which serialises to learn each key's type) never carries the value.
#[derive(Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    /// Wraps a secret value.
    pub fn new(s: impl Into<String>) -> Self {
        Self(s.into())
    }
    /// The secret itself, for the one place that needs it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(REDACTED)
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(REDACTED)
    }
}

impl Serialize for Secret {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(REDACTED)
    }
}

/// Parses a mailbox (`News <digest@news.example.com>` or a bare address) whose address is
/// also a valid [`EmailAddress`] (lettre alone accepts a domain without a dot).
fn parse_mailbox(raw: &str) -> Result<(Mailbox, EmailAddress), String> {
    let mailbox: Mailbox = raw.parse().map_err(|e| {
        format!("expected a mailbox like \"News <digest@news.example.com>\", got {raw:?} ({e})")
    })?;
    let address = EmailAddress::parse(mailbox.email.as_ref()).map_err(|e| e.to_string())?;
    Ok((mailbox, address))
}

/// `[publication] from`: the `From:` mailbox and, as an address, the envelope sender
/// (RFC 5321 `MAIL FROM`), parsed together once.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sender {
    mailbox: Mailbox,
    address: EmailAddress,
}

impl Sender {
    /// Parses `The Daily Ledger <digest@news.example.com>` or a bare address.
    pub fn parse(raw: &str) -> Result<Self, String> {
        parse_mailbox(raw).map(|(mailbox, address)| Self { mailbox, address })
    }

    /// The mailbox for the `From:` header, display name and address as written.
    pub fn mailbox(&self) -> &Mailbox {
        &self.mailbox
    }

    /// The address alone (domain lower-cased), for the envelope.
    pub fn address(&self) -> &EmailAddress {
        &self.address
    }

    /// The domain of the mailbox as written: the namespace of `List-Id` and Message-IDs.
    pub fn domain(&self) -> &str {
        self.mailbox.email.domain()
    }
}

impl fmt::Display for Sender {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.mailbox.fmt(f)
    }
}

impl Serialize for Sender {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(&self.mailbox)
    }
}

impl<'de> Deserialize<'de> for Sender {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let raw = String::deserialize(d)?;
        Self::parse(&raw).map_err(serde::de::Error::custom)
    }
}

/// `[log] level`: a `tracing` filter such as `info,dispatch=debug`, checked at load.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogLevel(String);

impl LogLevel {
    /// Checks `raw` with the same parser the subscriber uses.
    pub fn parse(raw: &str) -> Result<Self, String> {
        tracing_subscriber::EnvFilter::try_new(raw)
            .map(|_| Self(raw.to_owned()))
            .map_err(|e| format!("expected a filter such as \"info,dispatch=debug\" ({e})"))
    }

    /// The filter as written.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The filter, built fresh (an `EnvFilter` cannot be cloned, so the config keeps the text).
    pub fn filter(&self) -> tracing_subscriber::EnvFilter {
        // `new` ignores directives it cannot parse; `parse` already refused any.
        let filter = tracing_subscriber::EnvFilter::new(&self.0);
        if self.0.contains("sqlx") {
            return filter;
        }
        // PostgreSQL's notices ("relation … already exists, skipping" on every start's
        // migration check) are not news to an operator; sqlx logs them at INFO.
        match "sqlx::postgres::notice=warn".parse() {
            Ok(quiet) => filter.add_directive(quiet),
            Err(_) => filter,
        }
    }
}

impl Serialize for LogLevel {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for LogLevel {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let raw = String::deserialize(d)?;
        Self::parse(&raw).map_err(serde::de::Error::custom)
    }
}

/// `[database] url`: a PostgreSQL URL, checked at load. `Display`, `Debug` and `Serialize`
/// show it with its password replaced, so logs and a written-out config never carry it.
#[derive(Clone, PartialEq, Eq)]
pub struct PostgresUrl(url::Url);

impl PostgresUrl {
    /// Accepts `postgres://` and `postgresql://` URLs.
    pub fn parse(raw: &str) -> Result<Self, String> {
        let expected =
            "expected a PostgreSQL URL such as postgres://dispatch@db.example.com/dispatch";
        let url = url::Url::parse(raw.trim()).map_err(|e| format!("{expected} ({e})"))?;
        if !matches!(url.scheme(), "postgres" | "postgresql") {
            return Err(format!("{expected}, not a {}:// URL", url.scheme()));
        }
        Ok(Self(url))
    }

    /// The URL itself, password included, for the one place that connects.
    pub fn expose(&self) -> &str {
        self.0.as_str()
    }

    /// The URL with any password (in the user part or a `password=` parameter) replaced.
    pub fn redacted(&self) -> String {
        let mut u = self.0.clone();
        if u.password().is_some() {
            // Only fails for URLs that cannot have a password, which this one has.
            let _ = u.set_password(Some(REDACTED_IN_URL));
        }
        if u.query_pairs().any(|(k, _)| k == "password") {
            let pairs: Vec<(String, String)> = u
                .query_pairs()
                .map(|(k, v)| {
                    let v = if k == "password" {
                        REDACTED_IN_URL.into()
                    } else {
                        v.into_owned()
                    };
                    (k.into_owned(), v)
                })
                .collect();
            u.query_pairs_mut().clear().extend_pairs(pairs);
        }
        u.to_string()
    }
}

impl std::str::FromStr for PostgresUrl {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

/// What a redacted URL shows instead of a password (URL-safe, unlike [`REDACTED`]).
const REDACTED_IN_URL: &str = "REDACTED";

impl fmt::Debug for PostgresUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.redacted())
    }
}

impl fmt::Display for PostgresUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.redacted())
    }
}

impl Serialize for PostgresUrl {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.redacted())
    }
}

impl<'de> Deserialize<'de> for PostgresUrl {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let raw = String::deserialize(d)?;
        Self::parse(&raw).map_err(serde::de::Error::custom)
    }
}

/// `[node] name`: what this process is called in `/metrics`, the logs and `senders`. Kept to
/// host-name characters, so it is safe as a Prometheus label value and in a log line.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct NodeName(String);

impl NodeName {
    /// Letters, digits, `.`, `_` and `-`; 1 to 63 of them.
    pub fn parse(raw: &str) -> Result<Self, String> {
        let ok = (1..=63).contains(&raw.len())
            && raw
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
        if ok {
            Ok(Self(raw.to_owned()))
        } else {
            Err(format!(
                "expected 1-63 letters, digits, '.', '_' or '-' (a host name), got {raw:?}"
            ))
        }
    }

    /// The name.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for NodeName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for NodeName {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let raw = String::deserialize(d)?;
        Self::parse(&raw).map_err(serde::de::Error::custom)
    }
}

/// `#[serde(with)]` for an optional mailbox such as `[publication] reply_to`.
pub(super) mod opt_mailbox {
    use super::{Deserialize, Mailbox};

    pub(crate) fn serialize<S: serde::Serializer>(
        v: &Option<Mailbox>,
        s: S,
    ) -> Result<S::Ok, S::Error> {
        match v {
            Some(m) => s.serialize_some(&m.to_string()),
            None => s.serialize_none(),
        }
    }

    pub(crate) fn deserialize<'de, D: serde::Deserializer<'de>>(
        d: D,
    ) -> Result<Option<Mailbox>, D::Error> {
        Option::<String>::deserialize(d)?
            .map(|raw| super::parse_mailbox(&raw).map(|(m, _)| m))
            .transpose()
            .map_err(serde::de::Error::custom)
    }
}

/// `#[serde(with)]` for `[web] bind`, with a message that shows the expected form.
pub(super) mod socket_addr {
    use super::{Deserialize, SocketAddr};

    pub(crate) fn serialize<S: serde::Serializer>(v: &SocketAddr, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(v)
    }

    pub(crate) fn deserialize<'de, D: serde::Deserializer<'de>>(
        d: D,
    ) -> Result<SocketAddr, D::Error> {
        let raw = String::deserialize(d)?;
        raw.trim().parse().map_err(|_| {
            serde::de::Error::custom(format!(
                "expected ADDRESS:PORT such as 127.0.0.1:8080, got {raw:?}"
            ))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secret_is_redacted_in_debug_display_and_serialisation() {
        let s = Secret::new("hunter2");
        assert_eq!(format!("{s:?}"), REDACTED);
        assert_eq!(s.to_string(), REDACTED);
        let json = serde_json::to_string(&s).unwrap();
        assert_eq!(json, format!("\"{REDACTED}\""));
        assert_eq!(s.expose(), "hunter2");
        // Reading one in is transparent: the value is the string itself.
        let back: Secret = serde_json::from_str("\"hunter2\"").unwrap();
        assert_eq!(back, s);
    }

    #[test]
    fn sender_offers_the_mailbox_and_the_address_from_one_parse() {
        let s = Sender::parse("The Daily Ledger <Digest@News.Example.com>").unwrap();
        assert_eq!(s.mailbox().name.as_deref(), Some("The Daily Ledger"));
        assert_eq!(s.mailbox().email.to_string(), "Digest@News.Example.com");
        assert_eq!(s.address().as_str(), "Digest@news.example.com");
        assert_eq!(s.domain(), "News.Example.com");
        // What it serialises to parses back to the same sender.
        assert_eq!(Sender::parse(&s.to_string()).unwrap(), s);
        let bare = Sender::parse("digest@news.example.com").unwrap();
        assert_eq!(bare.mailbox().name, None);
        for bad in ["", "News", "News <digest@localhost>", "<@x.com>"] {
            assert!(Sender::parse(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn a_postgres_url_never_shows_its_password() {
        let u =
            PostgresUrl::parse("postgres://dispatch:hunter2@db.example.com:5433/dispatch").unwrap();
        assert_eq!(
            u.expose(),
            "postgres://dispatch:hunter2@db.example.com:5433/dispatch"
        );
        for shown in [
            u.to_string(),
            format!("{u:?}"),
            serde_json::to_string(&u).unwrap(),
        ] {
            assert!(!shown.contains("hunter2"), "{shown}");
            assert!(
                shown.contains("dispatch:REDACTED@db.example.com:5433"),
                "{shown}"
            );
        }
        let q = PostgresUrl::parse("postgresql:///dispatch?host=/run/postgresql&password=hunter2")
            .unwrap();
        assert!(!q.to_string().contains("hunter2"), "{q}");
        assert!(q.to_string().contains("host=%2Frun%2Fpostgresql"), "{q}");
        for bad in [
            "",
            "db.example.com",
            "mysql://x@y/z",
            "sqlite://data/dispatch.db",
        ] {
            assert!(PostgresUrl::parse(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn a_node_name_is_a_host_name() {
        assert_eq!(
            NodeName::parse("mail-1.example").unwrap().as_str(),
            "mail-1.example"
        );
        for bad in ["", "a b", "node\"x", "ünïcode", &"n".repeat(64)] {
            assert!(NodeName::parse(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn log_level_refuses_what_the_subscriber_cannot_parse() {
        assert_eq!(
            LogLevel::parse("info,dispatch=debug").unwrap().as_str(),
            "info,dispatch=debug"
        );
        assert!(LogLevel::parse("dispatch=loud").is_err());
    }
}
