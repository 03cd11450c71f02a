//! Console passwords: the rules a new one must meet, Argon2id hashing (RFC 9106) and
//! verification.
//!
//! Hashing costs tens of milliseconds of CPU on purpose, so callers on the async runtime run
//! [`hash`] and [`verify`] under `spawn_blocking`.

use argon2::password_hash::rand_core::OsRng;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};

/// The shortest password accepted.
pub const MIN_LEN: usize = 12;

/// The longest: Argon2 takes any length, but a megabyte "password" is a denial of service.
pub const MAX_LEN: usize = 256;

/// Passwords of 12+ characters that lists of leaked passwords rank highest, lower-cased.
/// A small list on purpose: it stops the obvious, not a determined guesser (the sign-in
/// limits do that).
const COMMON: &[&str] = &[
    "123456789012",
    "1234567890123",
    "12345678901234",
    "123123123123",
    "111111111111",
    "000000000000",
    "password1234",
    "password12345",
    "password123456",
    "passwordpassword",
    "qwertyuiop12",
    "qwertyuiop123",
    "qwertyuiopasdfgh",
    "qwerty123456",
    "1q2w3e4r5t6y",
    "1qaz2wsx3edc",
    "iloveyou1234",
    "welcome12345",
    "letmein12345",
    "administrator",
    "admin1234567",
    "abc123456789",
    "abcdefghijkl",
    "changeme1234",
    "football1234",
    "baseball1234",
    "princess1234",
    "sunshine1234",
    "trustno1trustno1",
    "newsletter12",
    "dispatch1234",
];

/// Why a new password is refused; the text is shown to the user as it is.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PasswordError {
    #[error("the password must have at least {MIN_LEN} characters")]
    TooShort,
    #[error("the password must have at most {MAX_LEN} characters")]
    TooLong,
    #[error("that password is on the list of the most common ones; choose another")]
    Common,
    #[error("the password must not be your address")]
    IsAddress,
    #[error("the two passwords differ")]
    Mismatch,
}

/// Checks a new password against the rules. `email` is the user's address.
pub fn check(password: &str, repeat: &str, email: &str) -> Result<(), PasswordError> {
    let len = password.chars().count();
    if len < MIN_LEN {
        return Err(PasswordError::TooShort);
    }
    if len > MAX_LEN {
        return Err(PasswordError::TooLong);
    }
    let lower = password.to_lowercase();
    let first = lower.chars().next();
    if COMMON.contains(&lower.as_str()) || lower.chars().all(|c| Some(c) == first) {
        return Err(PasswordError::Common);
    }
    if lower == email.to_lowercase() {
        return Err(PasswordError::IsAddress);
    }
    if password != repeat {
        return Err(PasswordError::Mismatch);
    }
    Ok(())
}

/// Argon2id with RFC 9106's second recommended option (64 MiB would be the first; 19 MiB,
/// 2 passes is OWASP's equivalent for a small server that also sends mail).
fn argon2() -> Argon2<'static> {
    // Invariant: these are argon2's own default parameters, which are valid.
    let params = Params::new(19 * 1024, 2, 1, None).unwrap_or_default();
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
}

/// The PHC string (`$argon2id$v=19$m=…`) of `password` with a fresh random salt.
pub fn hash(password: &str) -> Result<String, argon2::password_hash::Error> {
    let salt = SaltString::generate(&mut OsRng);
    Ok(argon2()
        .hash_password(password.as_bytes(), &salt)?
        .to_string())
}

/// Whether `password` matches the stored PHC string. A malformed stored hash never matches.
pub fn verify(stored: &str, password: &str) -> bool {
    PasswordHash::new(stored)
        .is_ok_and(|h| argon2().verify_password(password.as_bytes(), &h).is_ok())
}

/// Does the work of one [`verify`] against nothing, so an unknown address takes as long to
/// refuse as a wrong password.
pub fn verify_nothing(password: &str) {
    static DUMMY: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    let stored = DUMMY.get_or_init(|| hash("not a password of anyone").unwrap_or_default());
    let _ = verify(stored, password);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_common_and_mismatched_passwords_are_refused() {
        let e = "ed@example.com";
        assert_eq!(check("short", "short", e), Err(PasswordError::TooShort));
        assert_eq!(
            check("Password1234", "Password1234", e),
            Err(PasswordError::Common)
        );
        assert_eq!(
            check("aaaaaaaaaaaaaa", "aaaaaaaaaaaaaa", e),
            Err(PasswordError::Common)
        );
        assert_eq!(check(e, e, "ED@example.com"), Err(PasswordError::IsAddress));
        assert_eq!(
            check("minister resigns", "minister resign", e),
            Err(PasswordError::Mismatch)
        );
        assert_eq!(check("minister resigns", "minister resigns", e), Ok(()));
    }

    #[test]
    fn a_hash_verifies_its_password_only_and_is_argon2id() {
        let h = hash("minister resigns").unwrap();
        assert!(h.starts_with("$argon2id$v=19$"), "{h}");
        assert!(verify(&h, "minister resigns"));
        assert!(!verify(&h, "minister resigned"));
        assert!(!verify("not a phc string", "minister resigns"));
        assert_ne!(h, hash("minister resigns").unwrap(), "salted");
    }
}
