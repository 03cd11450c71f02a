//! What a status says about the reader's address (RFC 3463 codes, RFC 3464 actions).
//!
//! The hard-bounce rule is the one the sender applies at SMTP time
//! ([`crate::mail::SendError::is_hard_bounce`]; a test keeps them equal): `5.1.x` (the address
//! is bad; `5.1.7`/`5.1.8` are about *our* sender, so not) and `5.2.1` (mailbox disabled).
//! A permanent failure with a vaguer code (`5.0.0`, `5.5.x`) is hard when its diagnostic says
//! the mailbox does not exist. Other permanent failures (policy `5.7.x`, content `5.6.x`,
//! size `5.3.4`) are *rejected*: the message failed, the address is fine. `5.2.2` (mailbox
//! full) is soft, as is anything delayed or `4.x.x`.

use crate::domain::BounceType;

/// An RFC 3463 `class.subject.detail` code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Status {
    pub class: u8,
    pub subject: u16,
    pub detail: u16,
}

impl Status {
    /// Parses `5.1.1`; anything else is `None`.
    pub fn parse(s: &str) -> Option<Self> {
        let mut it = s.trim().split('.');
        let class = it.next()?.parse().ok()?;
        let subject = it.next()?.parse().ok()?;
        let detail = it.next()?.parse().ok()?;
        (it.next().is_none() && matches!(class, 2 | 4 | 5)).then_some(Self {
            class,
            subject,
            detail,
        })
    }

    /// The address is bad: the same codes as the SMTP-time rule.
    pub fn is_hard(self) -> bool {
        match (self.class, self.subject, self.detail) {
            (5, 1, d) => d != 7 && d != 8,
            (5, 2, 1) => true,
            _ => false,
        }
    }
}

/// Words of diagnostics that mean "no such mailbox" when the code is vague.
const NO_SUCH_MAILBOX: &[&str] = &[
    "does not exist",
    "doesn't exist",
    "no such user",
    "no such mailbox",
    "user unknown",
    "unknown user",
    "recipient not found",
    "recipientnotfound",
    "recipnotfound",
    "mailbox not found",
    "mailbox unavailable",
    "invalid recipient",
    "no mailbox here",
    "address rejected",
];

/// One DSN recipient block (or a prose bounce, with `action` `None`).
pub fn classify(
    action: Option<&str>,
    status: Option<&str>,
    diagnostic: Option<&str>,
) -> BounceType {
    let action = action.unwrap_or("failed");
    if matches!(action, "delivered" | "relayed" | "expanded") {
        return BounceType::Other;
    }
    if action == "delayed" {
        return BounceType::Soft;
    }
    // The Status field, else a code inside the diagnostic (`smtp; 550 5.1.1 …`).
    let code = status.and_then(Status::parse).or_else(|| {
        diagnostic
            .and_then(super::parse::find_status)
            .and_then(|(c, _)| Status::parse(&c))
    });
    let no_such_mailbox = || {
        let d = diagnostic.unwrap_or("").to_ascii_lowercase();
        NO_SUCH_MAILBOX.iter().any(|w| d.contains(w))
    };
    match code {
        Some(s) if s.class == 2 => BounceType::Other,
        Some(s) if s.class == 4 => BounceType::Soft,
        Some(s) if s.is_hard() => BounceType::Hard,
        Some(Status {
            class: 5,
            subject: 2,
            detail: 2,
        }) => BounceType::Soft,
        Some(Status {
            class: 5,
            subject: 0 | 5,
            ..
        }) if no_such_mailbox() => BounceType::Hard,
        Some(_) => BounceType::Rejected,
        None if no_such_mailbox() => BounceType::Hard,
        None => BounceType::Rejected,
    }
}

/// The more serious of two outcomes for one reader (a DSN may report one reader twice).
pub fn worse(a: BounceType, b: BounceType) -> BounceType {
    let rank = |t: BounceType| match t {
        BounceType::Hard => 4,
        BounceType::Soft => 3,
        BounceType::Rejected => 2,
        _ => 1,
    };
    if rank(b) > rank(a) { b } else { a }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mail::SendError;

    #[test]
    fn the_dsn_rule_is_the_smtp_time_rule() {
        for class in [4u8, 5] {
            for subject in 0..8u16 {
                for detail in 0..12u16 {
                    let code = format!("{class}.{subject}.{detail}");
                    let smtp = SendError::Permanent {
                        reply: format!("550 {code} whatever"),
                    }
                    .is_hard_bounce();
                    let dsn =
                        classify(Some("failed"), Some(&code), Some("whatever")) == BounceType::Hard;
                    assert_eq!(smtp && class == 5, dsn, "{code}");
                }
            }
        }
    }

    #[test]
    fn actions_and_codes_sort_into_types() {
        use BounceType::*;
        let c = |a: Option<&str>, s: Option<&str>, d: Option<&str>| classify(a, s, d);
        assert_eq!(c(Some("failed"), Some("5.1.1"), None), Hard);
        assert_eq!(c(Some("delayed"), Some("4.4.7"), None), Soft);
        assert_eq!(c(Some("failed"), Some("4.2.2"), None), Soft);
        assert_eq!(c(Some("failed"), Some("5.2.2"), None), Soft);
        assert_eq!(c(Some("failed"), Some("5.7.1"), Some("spam")), Rejected);
        assert_eq!(
            c(Some("failed"), Some("5.0.0"), Some("550 User unknown")),
            Hard
        );
        assert_eq!(c(Some("failed"), Some("5.0.0"), Some("550 no")), Rejected);
        assert_eq!(c(Some("failed"), None, Some("smtp; 550 5.1.1 gone")), Hard);
        assert_eq!(c(Some("delivered"), Some("2.0.0"), None), Other);
        assert_eq!(worse(Soft, Hard), Hard);
        assert_eq!(worse(Hard, Rejected), Hard);
    }
}
