//! The `DISPATCH_<SECTION>_<KEY>` overlay: environment variables written into the parsed
//! file before it is turned into a [`Config`](super::Config).
//!
//! A variable's text becomes the TOML type the key has in the serialised defaults (a number,
//! a boolean, a comma-separated list, or a string), so `DISPATCH_SMTP_PORT=25` is the integer
//! 25. Range and type checks then happen once, on the merged table, for file and environment
//! alike.

use std::collections::BTreeMap;

use super::{ConfigError, bounds};

/// Keys that exist but have no value in the defaults (so their type cannot be read from there).
pub(super) const OPTIONAL_STRING_KEYS: &[&str] = &[
    "database.url",
    "node.name",
    "publication.reply_to",
    "web.client_ip_header",
    "console.client_ip_header",
    "smtp.username",
    "smtp.password",
    "smtp.ca_file",
    "smtp.helo_name",
    "dkim.domain",
    "dkim.selector",
    "dkim.private_key_path",
    "bounces.return_path_domain",
    "bounces.imap.host",
    "bounces.imap.ca_file",
    "bounces.imap.username",
    "bounces.imap.password",
];

/// Settings that were renamed: the old variable still sets the new key.
const RENAMED: &[(&str, &str, &str)] = &[("sending.bounce_threshold", "bounces", "hard_threshold")];

/// Variables that are not settings: the config file, the log filter, and the test suite's two
/// knobs (CI exports them for the whole run, so a command a test starts sees them too).
const NOT_SETTINGS: &[&str] = &[
    "DISPATCH_CONFIG",
    "DISPATCH_LOG",
    "DISPATCH_REQUIRE_TOOLS",
    "DISPATCH_FUZZ_SECS",
];

/// Writes every `DISPATCH_*` setting in `env` into `table`, typed like `defaults`. Returns
/// which variable set each dotted key (`smtp.port` → `DISPATCH_SMTP_PORT`), so later errors
/// can name the variable rather than the file.
pub(super) fn apply(
    table: &mut toml::Table,
    defaults: &toml::Table,
    env: &BTreeMap<String, String>,
) -> Result<BTreeMap<String, String>, ConfigError> {
    let mut set_by = BTreeMap::new();
    for (var, value) in env {
        if NOT_SETTINGS.contains(&var.as_str()) {
            continue;
        }
        let Some(rest) = var.strip_prefix("DISPATCH_") else {
            continue;
        };
        let env_err = |message: String| ConfigError::Invalid {
            origin: format!("environment variable {var}"),
            message,
        };
        let Some((section, key)) = rest.split_once('_') else {
            return Err(env_err(
                "expected DISPATCH_<SECTION>_<KEY>, e.g. DISPATCH_SMTP_PASSWORD".into(),
            ));
        };
        let (mut section, mut key) = (section.to_lowercase(), key.to_lowercase());
        if let Some((_, s, k)) = RENAMED
            .iter()
            .find(|(old, _, _)| *old == format!("{section}.{key}"))
        {
            (section, key) = ((*s).to_owned(), (*k).to_owned());
        }
        // A nested section: DISPATCH_BOUNCES_IMAP_PORT is `[bounces.imap] port`.
        let nested = defaults
            .get(&section)
            .and_then(|s| s.as_table())
            .and_then(|t| {
                t.iter().find_map(|(sub, v)| {
                    let rest = key.strip_prefix(sub.as_str())?.strip_prefix('_')?;
                    v.as_table().map(|t| (sub.clone(), rest.to_owned(), t))
                })
            });
        let (path, template): (Vec<String>, Option<&toml::Value>) = match nested {
            Some((sub, rest, t)) => {
                let template = t.get(&rest);
                (vec![section.clone(), sub, rest], template)
            }
            None => {
                let template = defaults
                    .get(&section)
                    .and_then(|s| s.as_table())
                    .and_then(|s| s.get(&key));
                (vec![section.clone(), key.clone()], template)
            }
        };
        let dotted = path.join(".");
        // Messages name the setting as the file does: `[bounces.imap] port`.
        let (section, key) = match path.split_last() {
            Some((k, s)) => (s.join("."), k.clone()),
            None => (section, key),
        };
        let parsed = match template {
            Some(toml::Value::Integer(_)) => value
                .trim()
                .parse::<i64>()
                .map(toml::Value::Integer)
                .map_err(|_| {
                    let range = bounds::of(&section, &key)
                        .map(|b| format!(" in {}", b.range()))
                        .unwrap_or_default();
                    env_err(format!(
                        "[{section}] {key} expects a whole number{range}, got {value:?}"
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
        let mut at = &mut *table;
        for name in &path[..path.len() - 1] {
            at = at
                .entry(name.clone())
                .or_insert_with(|| toml::Value::Table(toml::Table::new()))
                .as_table_mut()
                .ok_or_else(|| env_err("that section is not a table in the file".into()))?;
        }
        at.insert(key, parsed);
        set_by.insert(dotted, var.clone());
    }
    Ok(set_by)
}
