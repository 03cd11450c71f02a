//! Typed configuration: `config/dispatch.toml`, overridden by `DISPATCH_<SECTION>_<KEY>`.
//!
//! Where the file is found: `--config PATH`, else `DISPATCH_CONFIG`, else
//! `config/dispatch.toml` when present, else the built-in defaults (which equal the documented
//! file shipped in the repository, a test keeps them in step).
//!
//! Every error names where the bad value came from (the file and key, or the environment
//! variable) and what was expected.

use std::collections::BTreeMap;
use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::domain::{Category, DomainError, EmailAddress, WebUrl};

/// The documented starter config, written by `dispatch init`.
pub const STARTER_CONFIG: &str = include_str!("../config/dispatch.toml");

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

/// A string that must never be printed: `Debug` and `Display` show `[redacted]`.
#[derive(Clone, Default, PartialEq, Eq, Deserialize, Serialize)]
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
        f.write_str("[redacted]")
    }
}

/// The whole configuration.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    pub publication: Publication,
    pub database: Database,
    pub web: Web,
    pub delivery: Delivery,
    pub smtp: Smtp,
    pub sending: Sending,
    pub dkim: Option<Dkim>,
    pub digest: Digest,
    pub schedule: ScheduleCfg,
    pub retention: Retention,
    pub log: Log,
}

/// `[publication]`: who sends, shown in every message.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct Publication {
    pub name: String,
    pub url: String,
    pub from: String,
    pub reply_to: Option<String>,
    pub postal_address: String,
    pub language: String,
}

/// `[database]`.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct Database {
    pub path: PathBuf,
}

/// `[web]`.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct Web {
    pub bind: String,
    pub public_url: String,
    /// A header set by a reverse proxy in front of us that carries the client's address
    /// (e.g. `X-Forwarded-For`, whose rightmost entry is used). Unset: the peer address of
    /// the connection is the client, which behind a proxy is the proxy itself.
    pub client_ip_header: Option<String>,
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
    pub bounce_threshold: u32,
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
    pub max_lateness: String,
    pub breaking_poll_secs: u64,
}

/// `[retention]`: how long finished editions keep their delivery rows.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct Retention {
    pub days: u32,
}

impl Default for Retention {
    fn default() -> Self {
        Self { days: 90 }
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
    pub level: String,
}

impl Default for Publication {
    fn default() -> Self {
        Self {
            name: "The Daily Ledger".into(),
            url: "https://news.example.com".into(),
            from: "The Daily Ledger <digest@news.example.com>".into(),
            reply_to: None,
            postal_address: "The Daily Ledger, 12 Mall Road, Lahore 54000, Pakistan".into(),
            language: "en".into(),
        }
    }
}

impl Default for Database {
    fn default() -> Self {
        Self {
            path: PathBuf::from("data/dispatch.db"),
        }
    }
}

impl Default for Web {
    fn default() -> Self {
        Self {
            bind: "127.0.0.1:8080".into(),
            public_url: "http://127.0.0.1:8080".into(),
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
            bounce_threshold: 3,
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
            max_lateness: "6h".into(),
            breaking_poll_secs: 5,
        }
    }
}

impl Default for Log {
    fn default() -> Self {
        Self {
            format: LogFormat::Human,
            level: "info".into(),
        }
    }
}

/// Keys that exist but have no value in the defaults (so their type cannot be read from there).
const OPTIONAL_STRING_KEYS: &[&str] = &[
    "publication.reply_to",
    "web.client_ip_header",
    "smtp.username",
    "smtp.password",
    "smtp.ca_file",
    "smtp.helo_name",
    "dkim.domain",
    "dkim.selector",
    "dkim.private_key_path",
];

/// `DISPATCH_*` variables that are not `<SECTION>_<KEY>` overrides. `DISPATCH_REQUIRE_TOOLS`
/// belongs to the test suite (CI exports it, so every `dispatch` the tests start inherits it).
const NOT_SETTINGS: &[&str] = &["DISPATCH_CONFIG", "DISPATCH_LOG", "DISPATCH_REQUIRE_TOOLS"];

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
    /// `env` and validates the result.
    pub fn from_parts(
        origin: &str,
        text: &str,
        env: &BTreeMap<String, String>,
    ) -> Result<Self, ConfigError> {
        let invalid = |message: String| ConfigError::Invalid {
            origin: origin.to_owned(),
            message,
        };
        // Parse the file on its own first, so its errors carry line and column.
        let _: Config =
            toml::from_str(text).map_err(|e| invalid(e.to_string().trim().to_owned()))?;
        let mut table: toml::Table =
            toml::from_str(text).map_err(|e| invalid(e.to_string().trim().to_owned()))?;
        let defaults = toml::Table::try_from(Config::default())
            .map_err(|e| invalid(format!("internal error serialising defaults: {e}")))?;

        for (var, value) in env {
            if NOT_SETTINGS.contains(&var.as_str()) {
                continue;
            }
            let env_err = |message: String| ConfigError::Invalid {
                origin: format!("environment variable {var}"),
                message,
            };
            let rest = &var["DISPATCH_".len()..];
            let Some((section, key)) = rest.split_once('_') else {
                return Err(env_err(
                    "expected DISPATCH_<SECTION>_<KEY>, e.g. DISPATCH_SMTP_PASSWORD".into(),
                ));
            };
            let (section, key) = (section.to_lowercase(), key.to_lowercase());
            let dotted = format!("{section}.{key}");
            let template = defaults
                .get(&section)
                .and_then(|s| s.as_table())
                .and_then(|s| s.get(&key));
            let parsed = match template {
                Some(toml::Value::Integer(_)) => value
                    .trim()
                    .parse::<i64>()
                    .map(toml::Value::Integer)
                    .map_err(|_| {
                        env_err(format!(
                            "[{section}] {key} expects a whole number, got {value:?}"
                        ))
                    })?,
                Some(toml::Value::Boolean(_)) => match value.trim() {
                    "true" | "1" | "yes" => toml::Value::Boolean(true),
                    "false" | "0" | "no" => toml::Value::Boolean(false),
                    _ => {
                        return Err(env_err(format!(
                            "[{section}] {key} expects true or false, got {value:?}"
                        )));
                    }
                },
                Some(toml::Value::Array(_)) => toml::Value::Array(
                    value
                        .split(',')
                        .map(|s| toml::Value::String(s.trim().to_owned()))
                        .filter(|v| v.as_str() != Some(""))
                        .collect(),
                ),
                Some(_) => toml::Value::String(value.clone()),
                None if OPTIONAL_STRING_KEYS.contains(&dotted.as_str()) => {
                    toml::Value::String(value.clone())
                }
                None => {
                    return Err(env_err(format!(
                        "there is no setting [{section}] {key}; see config/dispatch.toml for the names"
                    )));
                }
            };
            table
                .entry(section)
                .or_insert_with(|| toml::Value::Table(toml::Table::new()))
                .as_table_mut()
                .ok_or_else(|| env_err("that section is not a table in the file".into()))?
                .insert(key, parsed);
        }

        let cfg: Config = toml::Value::Table(table)
            .try_into()
            .map_err(|e: toml::de::Error| {
                invalid(format!(
                    "after applying DISPATCH_* variables: {}",
                    e.to_string().trim()
                ))
            })?;
        cfg.validate().map_err(invalid)?;
        Ok(cfg)
    }

    /// Checks values that types alone cannot; the message names the key.
    fn validate(&self) -> Result<(), String> {
        let key = |k: &str, e: DomainError| format!("{k}: {e}");
        self.from_mailbox()
            .map_err(|e| format!("[publication] from: {e}"))?;
        if let Some(r) = &self.publication.reply_to {
            EmailAddress::parse(r).map_err(|e| key("[publication] reply_to", e))?;
        }
        WebUrl::parse(&self.publication.url).map_err(|e| key("[publication] url", e))?;
        WebUrl::parse(&self.web.public_url).map_err(|e| key("[web] public_url", e))?;
        if self.publication.name.trim().is_empty() {
            return Err("[publication] name: must not be empty".into());
        }
        if self.publication.postal_address.trim().is_empty() {
            return Err("[publication] postal_address: must not be empty (CAN-SPAM and CASL require a postal address in every message)".into());
        }
        self.web.bind.parse::<SocketAddr>().map_err(|_| {
            format!(
                "[web] bind: expected ADDRESS:PORT such as 127.0.0.1:8080, got {:?}",
                self.web.bind
            )
        })?;
        if self.smtp.port == 0 {
            return Err("[smtp] port: expected 1-65535".into());
        }
        if self.smtp.connections == 0 || self.smtp.connections > 256 {
            return Err(format!(
                "[smtp] connections: expected 1-256, got {}",
                self.smtp.connections
            ));
        }
        if self.smtp.timeout_secs == 0 {
            return Err("[smtp] timeout_secs: expected at least 1".into());
        }
        if self.smtp.username.is_some() != self.smtp.password.is_some() {
            return Err("[smtp] username and password: set both or neither".into());
        }
        if self.sending.max_attempts == 0 {
            return Err("[sending] max_attempts: expected at least 1".into());
        }
        if self.sending.lease_secs < 10 {
            return Err("[sending] lease_secs: expected at least 10".into());
        }
        for c in &self.digest.category_order {
            Category::parse(c).map_err(|e| key("[digest] category_order", e))?;
        }
        if self.digest.max_per_category == 0 {
            return Err("[digest] max_per_category: expected at least 1".into());
        }
        if self.digest.first_window_hours == 0 {
            return Err("[digest] first_window_hours: expected at least 1".into());
        }
        self.max_lateness()
            .map_err(|e| format!("[schedule] max_lateness: {e}"))?;
        if !(1..=3650).contains(&self.retention.days) {
            return Err(format!(
                "[retention] days: expected 1-3650, got {}",
                self.retention.days
            ));
        }
        if self.schedule.breaking_poll_secs == 0 {
            return Err("[schedule] breaking_poll_secs: expected at least 1".into());
        }
        tracing_subscriber::EnvFilter::try_new(&self.log.level)
            .map_err(|e| format!("[log] level: {e}"))?;
        if let Some(d) = &self.dkim {
            if d.domain.trim().is_empty() || !d.domain.contains('.') {
                return Err(format!(
                    "[dkim] domain: expected a domain name, got {:?}",
                    d.domain
                ));
            }
            if d.selector.trim().is_empty() {
                return Err("[dkim] selector: must not be empty".into());
            }
        }
        Ok(())
    }

    /// `[publication] from` as a parsed mailbox.
    pub fn from_mailbox(&self) -> Result<lettre::message::Mailbox, String> {
        let mb: lettre::message::Mailbox = self.publication.from.parse().map_err(|e| {
            format!(
                "expected a mailbox like \"News <digest@news.example.com>\", got {:?} ({e})",
                self.publication.from
            )
        })?;
        EmailAddress::parse(mb.email.as_ref()).map_err(|e| e.to_string())?;
        Ok(mb)
    }

    /// `[schedule] max_lateness` as a duration.
    pub fn max_lateness(&self) -> Result<chrono::Duration, String> {
        parse_duration(&self.schedule.max_lateness)
    }

    /// `[web] public_url`, validated at load time.
    pub fn public_url(&self) -> WebUrl {
        // Invariant: `validate` parsed it successfully.
        WebUrl::parse(&self.web.public_url).unwrap_or_else(|_| unreachable!("validated at load"))
    }
}

/// Parses `90s`, `45m`, `6h`, `2d` (or a bare number of seconds).
pub fn parse_duration(raw: &str) -> Result<chrono::Duration, String> {
    let s = raw.trim();
    let (num, unit) = s.split_at(s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len()));
    let n: i64 = num
        .parse()
        .map_err(|_| format!("expected a duration like 90s, 45m, 6h or 2d, got {raw:?}"))?;
    let secs = match unit {
        "" | "s" => n,
        "m" => n * 60,
        "h" => n * 3600,
        "d" => n * 86400,
        _ => {
            return Err(format!(
                "expected a duration like 90s, 45m, 6h or 2d, got {raw:?}"
            ));
        }
    };
    Ok(chrono::Duration::seconds(secs))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn shipped_file_equals_builtin_defaults() {
        let cfg = Config::from_parts("config/dispatch.toml", STARTER_CONFIG, &env(&[])).unwrap();
        assert_eq!(cfg, Config::default());
    }

    #[test]
    fn env_overrides_with_types() {
        let cfg = Config::from_parts(
            "x.toml",
            "",
            &env(&[
                ("DISPATCH_SMTP_PASSWORD", "hunter2"),
                ("DISPATCH_SMTP_USERNAME", "mailer"),
                ("DISPATCH_SMTP_TIMEOUT_SECS", "7"),
                ("DISPATCH_DATABASE_PATH", "/tmp/x.db"),
                ("DISPATCH_DIGEST_REPEAT_BREAKING", "false"),
            ]),
        )
        .unwrap();
        assert_eq!(cfg.smtp.timeout_secs, 7);
        assert_eq!(cfg.database.path, PathBuf::from("/tmp/x.db"));
        assert!(!cfg.digest.repeat_breaking);
        assert_eq!(cfg.smtp.password.as_ref().unwrap().expose(), "hunter2");
        let dbg = format!("{cfg:?}");
        assert!(!dbg.contains("hunter2"), "secret leaked in Debug");
    }

    #[test]
    fn errors_name_file_key_and_expectation() {
        let e = Config::from_parts("conf.toml", "[smtp]\nport = \"x\"\n", &env(&[]))
            .unwrap_err()
            .to_string();
        assert!(e.contains("conf.toml") && e.contains("port"), "{e}");
        let e = Config::from_parts("conf.toml", "[smtp]\nprot = 25\n", &env(&[]))
            .unwrap_err()
            .to_string();
        assert!(e.contains("prot"), "{e}");
        let e = Config::from_parts("conf.toml", "[web]\npublic_url = \"ftp://x\"\n", &env(&[]))
            .unwrap_err()
            .to_string();
        assert!(e.contains("[web] public_url"), "{e}");
        let e = Config::from_parts("conf.toml", "", &env(&[("DISPATCH_SMTP_PORT", "many")]))
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("DISPATCH_SMTP_PORT") && e.contains("whole number"),
            "{e}"
        );
        let e = Config::from_parts("conf.toml", "", &env(&[("DISPATCH_SMTP_COLOUR", "red")]))
            .unwrap_err()
            .to_string();
        assert!(e.contains("DISPATCH_SMTP_COLOUR"), "{e}");
    }

    #[test]
    fn the_test_suites_require_tools_variable_is_not_a_setting() {
        let cfg = Config::from_parts("x.toml", "", &env(&[("DISPATCH_REQUIRE_TOOLS", "1")]));
        assert_eq!(cfg.unwrap(), Config::default());
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("6h").unwrap(), chrono::Duration::hours(6));
        assert_eq!(parse_duration("90").unwrap(), chrono::Duration::seconds(90));
        assert!(parse_duration("six hours").is_err());
    }
}
