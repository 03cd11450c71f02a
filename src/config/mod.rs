//! Typed configuration: `config/dispatch.toml`, overridden by `DISPATCH_<SECTION>_<KEY>`.
//!
//! Where the file is found: `--config PATH`, else `DISPATCH_CONFIG`, else
//! `config/dispatch.toml` when present, else the built-in defaults (which equal the documented
//! file shipped in the repository, a test keeps them in step).
//!
//! Values are parsed into their types once, here: URLs into [`WebUrl`], `[publication] from`
//! into a [`Sender`], `[web] bind` into a `SocketAddr`, durations into [`HumanDuration`], and
//! every number is checked against its range (`bounds.rs`). The rest of the code receives
//! types, never strings to parse again.
//!
//! Every error names where the bad value came from (the file and key, with the line when the
//! file is at fault, or the environment variable) and what was expected.

mod bounds;
mod duration;
mod env;
mod values;

use std::collections::BTreeMap;
use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use lettre::message::Mailbox;
use serde::{Deserialize, Serialize};

use crate::domain::{Category, WebUrl};
use crate::i18n::{Catalogue, Digits, Language};

pub use duration::{HumanDuration, parse_duration};
pub use values::{LogLevel, NodeName, PostgresUrl, Secret, Sender};

/// The documented starter config, written by `dispatch init`.
pub const STARTER_CONFIG: &str = include_str!("../../config/dispatch.toml");

/// A configuration problem, with the place it came from.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{origin}: {message}")]
    Invalid { origin: String, message: String },
}

/// The whole configuration.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    pub publication: Publication,
    pub database: Database,
    pub node: Node,
    pub web: Web,
    pub console: Console,
    pub delivery: Delivery,
    pub smtp: Smtp,
    pub sending: Sending,
    pub dkim: Option<Dkim>,
    pub digest: Digest,
    pub schedule: ScheduleCfg,
    pub retention: Retention,
    pub bounces: Bounces,
    pub log: Log,
    /// `[[feeds]]`: RSS, Atom and JSON Feed URLs the daemon polls.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub feeds: Vec<Feed>,
    /// `[[sql_sources]]`: CMS SQLite files the daemon reads articles from, read-only.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub sql_sources: Vec<SqlSource>,
    /// What the operator should change in their config (deprecated names), for the log once
    /// logging is set up. Never read from or written to the file.
    #[serde(skip)]
    pub notices: Vec<String>,
    /// The translation catalogue with `[publication] translations` applied, loaded with the
    /// file so a bad override stops the daemon at start, not at the first send.
    #[serde(skip)]
    pub catalogue: std::sync::Arc<Catalogue>,
}

/// `[publication]`: who sends, shown in every message.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct Publication {
    pub name: String,
    /// The site's home page.
    pub url: WebUrl,
    /// The `From:` mailbox, also the envelope sender.
    pub from: Sender,
    /// Where replies go, when not to `from`.
    #[serde(with = "values::opt_mailbox")]
    pub reply_to: Option<Mailbox>,
    pub postal_address: String,
    /// The default language of lists that set none (`lists create --language`).
    pub language: Language,
    /// Digits for right-to-left languages: `latn` (0–9) or `arabext` (۰–۹).
    pub digits: Digits,
    /// A directory of `{lang}.ftl` files whose messages replace the shipped ones.
    pub translations: Option<PathBuf>,
}

/// `[database]`: an SQLite file by default; `url` selects a PostgreSQL server instead.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct Database {
    /// The SQLite file, used when `url` is not set.
    pub path: PathBuf,
    /// A PostgreSQL server several nodes share.
    pub url: Option<PostgresUrl>,
    /// Connections this node opens to PostgreSQL at most.
    pub max_connections: u32,
}

impl Database {
    /// Which database the settings select.
    pub fn target(&self) -> DatabaseTarget {
        match &self.url {
            Some(url) => DatabaseTarget::Postgres {
                url: url.clone(),
                max_connections: self.max_connections,
            },
            None => DatabaseTarget::Sqlite(self.path.clone()),
        }
    }
}

/// Where the data lives, as `[database]` selects it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DatabaseTarget {
    /// An SQLite file.
    Sqlite(PathBuf),
    /// A PostgreSQL database.
    Postgres {
        url: PostgresUrl,
        max_connections: u32,
    },
}

impl fmt::Display for DatabaseTarget {
    /// The file, or the URL without its password: safe for logs and messages.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Sqlite(path) => write!(f, "{}", path.display()),
            Self::Postgres { url, .. } => write!(f, "{url}"),
        }
    }
}

/// `[node]`: this process among several sharing one database.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct Node {
    /// The name operators see; the host name when unset.
    pub name: Option<NodeName>,
}

impl Node {
    /// The configured name, else this machine's host name.
    pub fn name_or_host(&self) -> String {
        match &self.name {
            Some(n) => n.as_str().to_owned(),
            None => gethostname::gethostname().to_string_lossy().into_owned(),
        }
    }
}

/// `[web]`.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct Web {
    /// Where `dispatch run` listens.
    #[serde(with = "values::socket_addr")]
    pub bind: SocketAddr,
    /// The base URL readers reach our pages at; every link in an email starts with it.
    pub public_url: WebUrl,
    /// A header set by a reverse proxy in front of us that carries the client's address
    /// (e.g. `X-Forwarded-For`, whose rightmost entry is used). Unset: the peer address of
    /// the connection is the client, which behind a proxy is the proxy itself.
    pub client_ip_header: Option<String>,
    /// Connections served at once; more wait in the kernel's listen backlog. Each costs a
    /// file descriptor: keep it well under the unit's `LimitNOFILE`.
    pub max_connections: u32,
    /// Seconds a client may take to send a request's headers (and a keep-alive connection
    /// may sit idle): what keeps half-sent requests from holding connections.
    pub header_timeout_secs: u64,
    /// Seconds a request may take from its headers to its answer, body included (else 408).
    pub request_timeout_secs: u64,
}

/// `[console]`: the newsroom console (editors and list admins), on its own listener so it is
/// never exposed where the reader pages are unless an operator puts it there.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct Console {
    /// Where `dispatch run` serves the console.
    #[serde(with = "values::socket_addr")]
    pub bind: SocketAddr,
    /// The base URL editors reach the console at; set-password links start with it, and
    /// session cookies are `Secure` when it is https.
    pub public_url: WebUrl,
    /// As `[web] client_ip_header`, for the console's sign-in limits per IP.
    pub client_ip_header: Option<String>,
}

impl Console {
    /// Whether cookies must carry `Secure` (the console is reached over HTTPS).
    pub fn https(&self) -> bool {
        self.public_url.as_str().starts_with("https://")
    }
}

/// Which transport delivers messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum TransportKind {
    /// One `.eml` file per message in `[delivery] outbox`.
    File,
    /// A real SMTP relay (`[smtp]`).
    Smtp,
}

/// `[delivery]`.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct Delivery {
    pub transport: TransportKind,
    pub outbox: PathBuf,
}

/// How the SMTP connection is secured.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Security {
    /// Plain connection upgraded with STARTTLS, which must be offered (RFC 3207).
    Starttls,
    /// TLS from the first byte (RFC 8314 §3.3).
    Tls,
    /// No TLS at all: only for a relay on the same machine.
    None,
}

/// `[smtp]`.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct Smtp {
    pub host: String,
    pub port: u16,
    pub security: Security,
    pub username: Option<String>,
    pub password: Option<Secret>,
    pub connections: u32,
    pub timeout_secs: u64,
    /// Extra trusted root certificate (PEM), for a relay with a private CA.
    pub ca_file: Option<PathBuf>,
    /// The name we give in EHLO; defaults to the host of `[web] public_url`.
    pub helo_name: Option<String>,
}

/// `[sending]`.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct Sending {
    pub rate_per_second: u32,
    pub max_attempts: u32,
    /// Deprecated: the old name of `[bounces] hard_threshold`, still read (moved there at
    /// load), never written.
    #[serde(skip_serializing)]
    pub bounce_threshold: Option<u32>,
    pub retry_base_secs: u64,
    pub lease_secs: u64,
    pub pause_after_secs: u64,
}

/// `[dkim]`: sign messages when present.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Dkim {
    pub domain: String,
    pub selector: String,
    pub private_key_path: PathBuf,
}

/// `[digest]`.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct Digest {
    pub category_order: Vec<String>,
    pub max_per_category: u32,
    pub repeat_breaking: bool,
    pub first_window_hours: u32,
}

/// `[schedule]`.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct ScheduleCfg {
    pub max_lateness: HumanDuration,
    pub breaking_poll_secs: u64,
}

/// `[retention]`: how long finished editions keep their delivery rows.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct Retention {
    /// Finished editions older than this many days are compacted to counts and failures.
    pub days: u32,
}

impl Default for Retention {
    fn default() -> Self {
        Self { days: 90 }
    }
}

/// `[bounces]`: what comes back (delivery status notifications, complaints, `mailto:`
/// unsubscribes) and what it does to a reader.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct Bounces {
    /// The domain of the per-message envelope sender `b+<id>@<domain>` (VERP). Unset: every
    /// message's envelope sender is `[publication] from`, and bounces are matched by the
    /// returned headers instead.
    pub return_path_domain: Option<ReturnPathDomain>,
    /// Hard bounces (at SMTP time or by DSN) after which a reader is marked bounced.
    pub hard_threshold: u32,
    /// Soft bounces in a row after which a reader is marked bounced.
    pub soft_threshold: u32,
    /// The bounce mailbox the daemon polls (when `host` is set).
    pub imap: Imap,
}

impl Default for Bounces {
    fn default() -> Self {
        Self {
            return_path_domain: None,
            hard_threshold: 1,
            soft_threshold: 5,
            imap: Imap::default(),
        }
    }
}

/// How the IMAP connection is secured; there is no plain-text choice (the password and
/// readers' mail cross it).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ImapSecurity {
    /// TLS from the first byte (RFC 8314 §3.2, port 993).
    Tls,
    /// Plain connection upgraded with STARTTLS, which must succeed (RFC 9051 §6.2.1).
    Starttls,
}

/// `[bounces.imap]`: the mailbox bounces and complaints arrive in.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct Imap {
    /// The IMAP server; unset: no mailbox is polled.
    pub host: Option<String>,
    pub port: u16,
    pub security: ImapSecurity,
    /// Extra trusted root certificate (PEM), as in `[smtp] ca_file`.
    pub ca_file: Option<PathBuf>,
    pub username: Option<String>,
    pub password: Option<Secret>,
    /// The folder new messages arrive in; the only one read.
    pub folder: String,
    /// Seconds between polls.
    pub poll_secs: u64,
}

impl Default for Imap {
    fn default() -> Self {
        Self {
            host: None,
            port: 993,
            security: ImapSecurity::Tls,
            ca_file: None,
            username: None,
            password: None,
            folder: "INBOX".into(),
            poll_secs: 60,
        }
    }
}

/// `[bounces] return_path_domain`: a domain name, lower-cased, checked at load.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct ReturnPathDomain(String);

impl ReturnPathDomain {
    /// Parses a domain such as `bounces.news.example.com`: dot-separated labels of letters,
    /// digits and `-` (RFC 5321 §4.1.2 `Domain`), at most 200 characters so that
    /// `b+<id>@` still fits a path.
    pub fn parse(raw: &str) -> Result<Self, String> {
        let d = raw.trim().trim_end_matches('.').to_ascii_lowercase();
        let label_ok = |l: &str| {
            !l.is_empty()
                && l.len() <= 63
                && !l.starts_with('-')
                && !l.ends_with('-')
                && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
        };
        if d.len() > 200 || !d.contains('.') || !d.split('.').all(label_ok) {
            return Err(format!(
                "expected a domain name such as \"bounces.news.example.com\", got {raw:?}"
            ));
        }
        Ok(Self(d))
    }

    /// The domain as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl<'de> Deserialize<'de> for ReturnPathDomain {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let raw = String::deserialize(d)?;
        Self::parse(&raw).map_err(serde::de::Error::custom)
    }
}

/// One `[[feeds]]` entry: a feed the daemon polls for articles.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Feed {
    /// The feed's address (RSS 2.0, Atom or JSON Feed 1.1, detected from the content).
    pub url: WebUrl,
    /// The category of items that name none (and none that maps).
    #[serde(default = "Feed::default_category")]
    pub default_category: Category,
    /// Seconds between polls.
    #[serde(default = "Feed::default_poll_secs")]
    pub poll_secs: u64,
    /// The language of items that carry none (nor does the feed), e.g. `ur`.
    #[serde(default)]
    pub language: Option<String>,
    /// Every item that appears after the first poll is breaking news.
    #[serde(default)]
    pub breaking: bool,
    /// The feed's category names (matched without regard to case) mapped to ours.
    #[serde(default)]
    pub category_map: BTreeMap<String, Category>,
}

impl Feed {
    fn default_category() -> Category {
        // Invariant: a literal that Category::parse accepts (a test loads a feed without it).
        Category::parse("General News")
            .unwrap_or_else(|e| unreachable!("the default category is valid: {e}"))
    }

    fn default_poll_secs() -> u64 {
        300
    }

    /// A feed of `url` with every other setting at its default.
    pub fn new(url: WebUrl) -> Self {
        Self {
            url,
            default_category: Self::default_category(),
            poll_secs: Self::default_poll_secs(),
            language: None,
            breaking: false,
            category_map: BTreeMap::new(),
        }
    }
}

/// One `[[sql_sources]]` entry: a CMS's own SQLite file, read directly and read-only.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct SqlSource {
    /// The CMS's database file.
    pub path: PathBuf,
    /// Selects `external_id`, `title`, `url`, `cursor` and optionally `summary`, `author`,
    /// `category`, `language`, `image_url`, `published_at`, `breaking`; `:since` is the
    /// greatest `cursor` seen so far (`''` on the first poll).
    pub query: String,
    /// Seconds between polls.
    #[serde(default = "SqlSource::default_poll_secs")]
    pub poll_secs: u64,
    /// The category of rows that name none.
    #[serde(default = "Feed::default_category")]
    pub default_category: Category,
}

impl SqlSource {
    fn default_poll_secs() -> u64 {
        60
    }
}

/// Log output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Human,
    Json,
}

/// `[log]`.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct Log {
    pub format: LogFormat,
    pub level: LogLevel,
}

impl Default for Publication {
    fn default() -> Self {
        Self {
            name: "The Daily Ledger".into(),
            url: constant_url("https://news.example.com"),
            // Invariant: a literal, and the shipped file's identical text is parsed in a test.
            from: Sender::parse("The Daily Ledger <digest@news.example.com>")
                .unwrap_or_else(|e| unreachable!("the default sender is valid: {e}")),
            reply_to: None,
            postal_address: "The Daily Ledger, 12 Mall Road, Lahore 54000, Pakistan".into(),
            language: Language::En,
            digits: Digits::Latn,
            translations: None,
        }
    }
}

impl Default for Database {
    fn default() -> Self {
        Self {
            path: PathBuf::from("data/dispatch.db"),
            url: None,
            max_connections: 10,
        }
    }
}

impl Default for Web {
    fn default() -> Self {
        Self {
            bind: SocketAddr::from(([127, 0, 0, 1], 8080)),
            public_url: constant_url("http://127.0.0.1:8080"),
            client_ip_header: None,
            // Half the usual 1,024 descriptors, so a unit without `LimitNOFILE` keeps room for
            // the database, SMTP and logs.
            max_connections: 512,
            header_timeout_secs: 5,
            request_timeout_secs: 30,
        }
    }
}

impl Default for Console {
    fn default() -> Self {
        Self {
            bind: SocketAddr::from(([127, 0, 0, 1], 8081)),
            public_url: constant_url("http://127.0.0.1:8081"),
            client_ip_header: None,
        }
    }
}

impl Default for Delivery {
    fn default() -> Self {
        Self {
            transport: TransportKind::File,
            outbox: PathBuf::from("outbox"),
        }
    }
}

impl Default for Smtp {
    fn default() -> Self {
        Self {
            host: "localhost".into(),
            port: 587,
            security: Security::Starttls,
            username: None,
            password: None,
            connections: 8,
            timeout_secs: 30,
            ca_file: None,
            helo_name: None,
        }
    }
}

impl Default for Sending {
    fn default() -> Self {
        Self {
            rate_per_second: 0,
            max_attempts: 5,
            bounce_threshold: None,
            retry_base_secs: 60,
            lease_secs: 300,
            pause_after_secs: 300,
        }
    }
}

impl Default for Digest {
    fn default() -> Self {
        Self {
            category_order: vec![
                "General News".into(),
                "Politics".into(),
                "Business".into(),
                "Sport".into(),
            ],
            max_per_category: 8,
            repeat_breaking: true,
            first_window_hours: 24,
        }
    }
}

impl Default for ScheduleCfg {
    fn default() -> Self {
        Self {
            max_lateness: HumanDuration::from_hours(6),
            breaking_poll_secs: 5,
        }
    }
}

impl Default for Log {
    fn default() -> Self {
        Self {
            format: LogFormat::Human,
            // Invariant: a literal, and the shipped file's identical text is parsed in a test.
            level: LogLevel::parse("info")
                .unwrap_or_else(|e| unreachable!("the default log level is valid: {e}")),
        }
    }
}

/// A URL spelled out in this file's defaults.
fn constant_url(s: &str) -> WebUrl {
    // Invariant: the defaults' URLs are literals above; `shipped_file_equals_builtin_defaults`
    // parses the same text from the shipped file.
    WebUrl::parse(s).unwrap_or_else(|e| unreachable!("the default URL {s} is valid: {e}"))
}

/// Which setting a problem is about: a section, or a key in it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct Key {
    section: Option<String>,
    key: Option<String>,
}

impl Key {
    /// The key a deserialisation error happened at (`smtp.port`, or just `smtp` when the
    /// section itself is wrong).
    fn of_path(path: &serde_path_to_error::Path) -> Self {
        let mut names = path.iter().filter_map(|s| match s {
            serde_path_to_error::Segment::Map { key } => Some(key.clone()),
            _ => None,
        });
        let section = names.next();
        let mut key = names.next();
        let mut section = section;
        // A nested section (`[bounces.imap] port`) is named as the file writes its header.
        if let (Some(s), Some(k), Some(inner)) = (&section, &key, names.next()) {
            section = Some(format!("{s}.{k}"));
            key = Some(inner);
        }
        Self { section, key }
    }

    /// `smtp.port`, as the overlay records which variable set what.
    fn dotted(&self) -> Option<String> {
        Some(format!("{}.{}", self.section.as_ref()?, self.key.as_ref()?))
    }
}

impl fmt::Display for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (&self.section, &self.key) {
            (Some(s), Some(k)) => write!(f, "[{s}] {k}"),
            (Some(s), None) => write!(f, "[{s}]"),
            _ => Ok(()),
        }
    }
}

/// One bad value: where, optionally the line and column in the file, and what was expected.
#[derive(Debug)]
struct Problem {
    key: Key,
    line: Option<(usize, usize)>,
    message: String,
}

impl Problem {
    /// A problem with `[section] key`.
    fn at(section: &str, key: &str, message: String) -> Self {
        Self {
            key: Key {
                section: Some(section.to_owned()),
                key: Some(key.to_owned()),
            },
            line: None,
            message,
        }
    }

    /// A TOML error at `key`; `text` is the document its span points into, if any.
    fn toml(key: Key, e: &toml::de::Error, text: Option<&str>) -> Self {
        let line = text
            .zip(e.span())
            .map(|(text, span)| line_and_column(text, span.start));
        let mut message = e.message().trim().to_owned();
        // A number that does not even fit its type still gets told the allowed range.
        if let (Some(s), Some(k)) = (&key.section, &key.key)
            && let Some(b) = bounds::of(s, k)
        {
            message.push_str(&format!(" (allowed: {})", b.range()));
        }
        Self { key, line, message }
    }
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let key = self.key.to_string();
        match (key.is_empty(), self.line) {
            (false, Some((l, c))) => write!(f, "{key} (line {l}, column {c}): ")?,
            (false, None) => write!(f, "{key}: ")?,
            (true, Some((l, c))) => write!(f, "line {l}, column {c}: ")?,
            (true, None) => {}
        }
        f.write_str(&self.message)
    }
}

/// 1-based line and column (in characters) of byte `offset` in `text`.
fn line_and_column(text: &str, offset: usize) -> (usize, usize) {
    let before = text.get(..offset).unwrap_or(text);
    let line = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().unwrap_or("").chars().count() + 1;
    (line, column)
}

impl Config {
    /// Finds and loads the configuration as the binary does: `explicit`, else
    /// `DISPATCH_CONFIG`, else `config/dispatch.toml` if it exists, else the defaults; then
    /// applies `DISPATCH_*` environment overrides and validates.
    pub fn load(explicit: Option<&Path>) -> Result<(Self, Option<PathBuf>), ConfigError> {
        let env: BTreeMap<String, String> = std::env::vars()
            .filter(|(k, _)| k.starts_with("DISPATCH_"))
            .collect();
        let path = explicit
            .map(Path::to_path_buf)
            .or_else(|| env.get("DISPATCH_CONFIG").map(PathBuf::from))
            .or_else(|| {
                let p = PathBuf::from("config/dispatch.toml");
                p.exists().then_some(p)
            });
        let text = match &path {
            Some(p) => std::fs::read_to_string(p).map_err(|source| ConfigError::Read {
                path: p.clone(),
                source,
            })?,
            None => String::new(),
        };
        let origin = path
            .as_ref()
            .map(|p| p.display().to_string())
            .unwrap_or_else(|| "built-in defaults".into());
        let cfg = Self::from_parts(&origin, &text, &env)?;
        Ok((cfg, path))
    }

    /// Parses `text` (from `origin`, used in messages), applies the `DISPATCH_*` variables in
    /// `env` and validates the result. Never panics, whatever the input.
    pub fn from_parts(
        origin: &str,
        text: &str,
        env: &BTreeMap<String, String>,
    ) -> Result<Self, ConfigError> {
        let in_file = |p: Problem| ConfigError::Invalid {
            origin: origin.to_owned(),
            message: p.to_string(),
        };
        // Parse the file on its own first, so its errors carry line and column.
        let syntax = |e: toml::de::Error| in_file(Problem::toml(Key::default(), &e, Some(text)));
        let _: Config =
            serde_path_to_error::deserialize(toml::Deserializer::parse(text).map_err(syntax)?)
                .map_err(|e| {
                    in_file(Problem::toml(Key::of_path(e.path()), e.inner(), Some(text)))
                })?;
        let mut table: toml::Table = toml::from_str(text).map_err(syntax)?;
        let defaults =
            toml::Table::try_from(Config::default()).map_err(|e| ConfigError::Invalid {
                origin: origin.to_owned(),
                message: format!("internal error serialising defaults: {e}"),
            })?;
        let set_by = env::apply(&mut table, &defaults, env)?;

        // A value the environment set is reported against its variable; the rest, the file.
        let report = |p: Problem| ConfigError::Invalid {
            origin: p
                .key
                .dotted()
                .and_then(|k| set_by.get(&k))
                .map(|var| format!("environment variable {var}"))
                .unwrap_or_else(|| origin.to_owned()),
            message: p.to_string(),
        };
        let new_name_set = table
            .get("bounces")
            .and_then(|b| b.get("hard_threshold"))
            .is_some();
        let mut cfg: Config = serde_path_to_error::deserialize(toml::Value::Table(table))
            .map_err(|e| report(Problem::toml(Key::of_path(e.path()), e.inner(), None)))?;
        // The one hard-bounce rule used to be `[sending] bounce_threshold`.
        if let Some(n) = cfg.sending.bounce_threshold.take() {
            if new_name_set {
                return Err(report(Problem::at(
                    "sending",
                    "bounce_threshold",
                    "is the old name of [bounces] hard_threshold, which is set too: remove it"
                        .into(),
                )));
            }
            cfg.bounces.hard_threshold = n;
            cfg.notices.push(
                "[sending] bounce_threshold is deprecated: it now applies to bounces by DSN too; \
                 rename it to [bounces] hard_threshold"
                    .into(),
            );
        }
        cfg.validate().map_err(report)?;
        let catalogue = Catalogue::load(
            cfg.publication.translations.as_deref(),
            cfg.publication.digits,
        )
        .map_err(|e| ConfigError::Invalid {
            origin: format!("{origin}: [publication] translations"),
            message: e.to_string(),
        })?;
        cfg.catalogue = std::sync::Arc::new(catalogue);
        Ok(cfg)
    }

    /// Checks what types alone cannot: ranges, and values that depend on each other.
    fn validate(&self) -> Result<(), Problem> {
        if self.publication.name.trim().is_empty() {
            return Err(Problem::at(
                "publication",
                "name",
                "must not be empty".into(),
            ));
        }
        if self.publication.postal_address.trim().is_empty() {
            return Err(Problem::at(
                "publication",
                "postal_address",
                "must not be empty (CAN-SPAM and CASL require a postal address in every message)"
                    .into(),
            ));
        }
        bounds::check(self)?;
        // Port 0 asks the system for a free port, which is never the same one twice.
        if self.console.bind == self.web.bind && self.web.bind.port() != 0 {
            return Err(Problem::at(
                "console",
                "bind",
                format!(
                    "{} is [web] bind's address too: the console needs its own listener, so that it is never served where the reader pages are",
                    self.console.bind
                ),
            ));
        }
        if self.smtp.username.is_some() != self.smtp.password.is_some() {
            return Err(Problem {
                key: Key {
                    section: Some("smtp".into()),
                    key: Some("username and password".into()),
                },
                line: None,
                message: "set both or neither".into(),
            });
        }
        for c in &self.digest.category_order {
            Category::parse(c)
                .map_err(|e| Problem::at("digest", "category_order", e.to_string()))?;
        }
        let imap = &self.bounces.imap;
        if let Some(host) = &imap.host {
            if host.trim().is_empty() {
                return Err(Problem::at(
                    "bounces.imap",
                    "host",
                    "must not be empty".into(),
                ));
            }
            if imap.username.is_none() || imap.password.is_none() {
                return Err(Problem {
                    key: Key {
                        section: Some("bounces.imap".into()),
                        key: Some("username and password".into()),
                    },
                    line: None,
                    message: "set both when host is set".into(),
                });
            }
            if imap.folder.trim().is_empty() {
                return Err(Problem::at(
                    "bounces.imap",
                    "folder",
                    "must not be empty".into(),
                ));
            }
        }
        let mut seen = std::collections::HashSet::new();
        for (i, f) in self.feeds.iter().enumerate() {
            let section = format!("feeds[{}]", i + 1);
            bounds::check_feed(&section, f)?;
            if !seen.insert(f.url.as_str()) {
                return Err(Problem::at(
                    &section,
                    "url",
                    format!("{} is configured twice", f.url),
                ));
            }
            if let Some(lang) = &f.language
                && crate::domain::language_tag(lang).is_none()
            {
                return Err(Problem::at(
                    &section,
                    "language",
                    format!("expected a language tag such as \"ur\" or \"en-gb\", got {lang:?}"),
                ));
            }
        }
        let mut seen = std::collections::HashSet::new();
        for (i, s) in self.sql_sources.iter().enumerate() {
            let section = format!("sql_sources[{}]", i + 1);
            bounds::check_source(&section, s)?;
            if s.path.as_os_str().is_empty() {
                return Err(Problem::at(&section, "path", "must not be empty".into()));
            }
            if !seen.insert(&s.path) {
                return Err(Problem::at(
                    &section,
                    "path",
                    format!("{} is configured twice", s.path.display()),
                ));
            }
            if !s.query.contains(":since") {
                return Err(Problem::at(
                    &section,
                    "query",
                    "must use :since (the greatest cursor seen so far), e.g. WHERE updated > :since ORDER BY updated".into(),
                ));
            }
        }
        if let Some(d) = &self.dkim {
            if d.domain.trim().is_empty() || !d.domain.contains('.') {
                return Err(Problem::at(
                    "dkim",
                    "domain",
                    format!("expected a domain name, got {:?}", d.domain),
                ));
            }
            if d.selector.trim().is_empty() {
                return Err(Problem::at("dkim", "selector", "must not be empty".into()));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests;
