//! Who may do what: the roles of API keys (and of the console's users, issue 13), and the
//! keys themselves.

use std::fmt;

use serde::{Deserialize, Serialize};

/// What a caller may do. Ordered: an admin may do everything an editor may.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Articles, breaking news and editions.
    Editor,
    /// Also lists and subscribers (and, in the console, users and keys).
    Admin,
}

impl Role {
    /// Every role, weakest first.
    pub const ALL: &'static [Role] = &[Role::Editor, Role::Admin];

    /// `editor` or `admin`, as stored and typed.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Editor => "editor",
            Self::Admin => "admin",
        }
    }

    /// Parses `editor` or `admin` (any case).
    pub fn parse(raw: &str) -> Result<Self, String> {
        match raw.trim().to_ascii_lowercase().as_str() {
            "editor" => Ok(Self::Editor),
            "admin" => Ok(Self::Admin),
            _ => Err(format!(
                "expected \"editor\" or \"admin\", got {:?}",
                super::echo(raw)
            )),
        }
    }

    /// Whether this role may do what `needed` may.
    pub fn allows(self, needed: Role) -> bool {
        self >= needed
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for Role {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Self::parse(s)
    }
}

/// An API key: `dk_` and 128 random bits in unpadded base64url. Shown once when made; the
/// database keeps only its SHA-256, as it does for reader tokens. Its `Debug` hides it.
#[derive(Clone, PartialEq, Eq)]
pub struct ApiKey(String);

impl ApiKey {
    const PREFIX: &'static str = "dk_";

    /// A fresh random key.
    pub fn generate() -> Self {
        Self(format!(
            "{}{}",
            Self::PREFIX,
            super::Token::generate().as_str()
        ))
    }

    /// A key as a client sent it, if it has the right shape (anything else is as unknown as
    /// a well-formed key nobody made).
    pub fn parse(raw: &str) -> Option<Self> {
        let token = raw.strip_prefix(Self::PREFIX)?;
        super::Token::parse(token).map(|_| Self(raw.to_owned()))
    }

    /// The key, to show its owner once.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// What the database stores and looks the key up by.
    pub fn hash(&self) -> Vec<u8> {
        use sha2::Digest as _;
        sha2::Sha256::digest(self.0.as_bytes()).to_vec()
    }
}

impl fmt::Debug for ApiKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ApiKey(…)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn admins_may_do_what_editors_may_not_the_reverse() {
        assert!(Role::Admin.allows(Role::Editor));
        assert!(Role::Admin.allows(Role::Admin));
        assert!(Role::Editor.allows(Role::Editor));
        assert!(!Role::Editor.allows(Role::Admin));
        assert_eq!(Role::parse(" Admin ").unwrap(), Role::Admin);
        assert!(Role::parse("root").unwrap_err().contains("\"root\""));
    }

    #[test]
    fn keys_are_random_parse_back_and_hide_in_debug() {
        let k = ApiKey::generate();
        assert_eq!(k.expose().len(), 3 + 22);
        assert_eq!(ApiKey::parse(k.expose()), Some(k.clone()));
        assert_ne!(ApiKey::generate(), k);
        assert_eq!(format!("{k:?}"), "ApiKey(…)");
        assert_eq!(k.hash().len(), 32);
        for bad in [
            "",
            "dk_",
            "dk_short",
            &k.expose()[3..],
            &format!("{}x", k.expose()),
        ] {
            assert!(ApiKey::parse(bad).is_none(), "{bad:?}");
        }
    }
}
