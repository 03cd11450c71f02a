//! The states stored rows move through, and the stored timestamp form.
//!
//! Each enum mirrors a `CHECK (… IN (…))` constraint of the schema, so a value read from the
//! database is one of these or the read fails loudly; code compares variants, never strings.
//! They are stored as lower-case text (`sqlx::Type` with `rename_all`), the same text the
//! schema's checks name.

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, SecondsFormat, Utc};
use serde::{Deserialize, Serialize};

/// Declares a text-stored enum with `as_str`, `Display` and `FromStr`.
macro_rules! stored_enum {
    (
        $(#[$meta:meta])*
        $name:ident { $( $(#[$vmeta:meta])* $variant:ident = $text:literal ),+ $(,)? }
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, sqlx::Type)]
        #[serde(rename_all = "lowercase")]
        #[sqlx(type_name = "TEXT", rename_all = "lowercase")]
        pub enum $name {
            $( $(#[$vmeta])* $variant ),+
        }

        impl $name {
            /// Every variant, in declaration order.
            pub const ALL: &'static [Self] = &[$(Self::$variant),+];

            /// The stored (and displayed) name.
            pub fn as_str(self) -> &'static str {
                match self {
                    $( Self::$variant => $text ),+
                }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl FromStr for $name {
            type Err = String;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                match s {
                    $( $text => Ok(Self::$variant), )+
                    _ => Err(format!(
                        concat!("unknown ", stringify!($name), " {:?}: expected one of {}"),
                        s,
                        [$($text),+].join(", ")
                    )),
                }
            }
        }
    };
}

stored_enum! {
    /// What an edition is: a digest of a window's stories, or one breaking story.
    EditionKind {
        Digest = "digest",
        Breaking = "breaking",
    }
}

stored_enum! {
    /// Where an edition is in its life (`editions.status`).
    EditionStatus {
        /// Deliveries are being sent.
        Sending = "sending",
        /// Stopped by an error that would fail every message, or by an operator.
        Paused = "paused",
        /// Every delivery has an outcome.
        Sent = "sent",
        /// Recorded without recipients (e.g. no stories); its window still counts.
        Skipped = "skipped",
        /// Stopped for good; its unsent deliveries were skipped.
        Cancelled = "cancelled",
    }
}

impl EditionStatus {
    /// Whether nothing more will be sent for an edition in this state.
    pub fn is_final(self) -> bool {
        matches!(self, Self::Sent | Self::Skipped | Self::Cancelled)
    }
}

stored_enum! {
    /// Where one message of an edition is (`deliveries.status`).
    DeliveryStatus {
        /// Waiting to be claimed (now, or at `next_attempt_at`).
        Queued = "queued",
        /// Claimed by a sender under a lease.
        Sending = "sending",
        /// Accepted by the relay.
        Sent = "sent",
        /// Given up on: a hard bounce or the last attempt failed.
        Failed = "failed",
        /// Not sent on purpose (unsubscribed meanwhile, nothing in the reader's categories…).
        Skipped = "skipped",
    }
}

impl DeliveryStatus {
    /// Whether the delivery still waits for an outcome.
    pub fn is_pending(self) -> bool {
        matches!(self, Self::Queued | Self::Sending)
    }
}

stored_enum! {
    /// A reader's relation to one list (`subscriptions.status`).
    SubscriptionStatus {
        /// Signed up, waiting for the double opt-in confirmation.
        Pending = "pending",
        /// Receives the list.
        Active = "active",
        /// Left the list; never re-activated by an import.
        Unsubscribed = "unsubscribed",
    }
}

stored_enum! {
    /// A reader's address as a whole (`subscribers.status`).
    SubscriberStatus {
        /// Mail may be sent.
        Active = "active",
        /// Too many hard bounces (or a complaint): nothing is sent until reactivated.
        Bounced = "bounced",
        /// Personal data removed; only a hash of the address remains.
        Erased = "erased",
    }
}

stored_enum! {
    /// What a reader token opens (`tokens.purpose`).
    TokenPurpose {
        /// One-click unsubscribe and the preferences page. One per subscription, reused by
        /// every message of it (older rows were issued per message and keep working).
        Unsubscribe = "unsubscribe",
        /// Double opt-in confirmation; expires.
        Confirm = "confirm",
        /// The preferences page only.
        Preferences = "preferences",
    }
}

stored_enum! {
    /// What a message that came back was (`bounce_events.type`) (see the bounces module).
    BounceType {
        /// The address does not work: counts towards `[bounces] hard_threshold`.
        Hard = "hard",
        /// Delivery was delayed or failed for now: counts towards `soft_threshold` in a row.
        Soft = "soft",
        /// Refused for a reason not about the address (policy, content, size): the reader is
        /// left alone.
        Rejected = "rejected",
        /// The reader reported the message as spam (ARF): unsubscribed from every list.
        Complaint = "complaint",
        /// An automatic reply (RFC 3834), such as a vacation notice: counted, nothing else.
        #[serde(rename = "auto-reply")]
        #[sqlx(rename = "auto-reply")]
        AutoReply = "auto-reply",
        /// A `mailto:` unsubscribe (RFC 2369): that subscription ends.
        Unsubscribe = "unsubscribe",
        /// A report that needs nothing done (a DSN saying delivered, a non-complaint ARF).
        Other = "other",
        /// Nothing in it names a reader of ours (or its VERP MAC was forged): kept for a person.
        Unidentified = "unidentified",
    }
}

stored_enum! {
    /// Where a bounce event came from (`bounce_events.source`).
    BounceSource {
        /// The relay refused the recipient during our SMTP conversation.
        Smtp = "smtp",
        /// `dispatch bounces ingest` (a Postfix pipe or alias).
        Pipe = "pipe",
        /// The `[bounces.imap]` mailbox.
        Imap = "imap",
    }
}

/// A timestamp in the one text form the database stores: `2026-11-28T07:00:00Z`.
///
/// Fixed width and always UTC, so SQL string comparison orders it correctly and a CMS writing
/// rows by hand has one unambiguous format to follow. Whole seconds: finer parts are dropped
/// when a value is made, so a value read back equals the value written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct DbTime(DateTime<Utc>);

impl DbTime {
    /// The current time, to the second.
    pub fn now() -> Self {
        Self::from(Utc::now())
    }

    /// The time as a `chrono` value.
    pub fn utc(self) -> DateTime<Utc> {
        self.0
    }

    /// The stored text.
    pub fn to_text(self) -> String {
        self.0.to_rfc3339_opts(SecondsFormat::Secs, true)
    }

    /// Reads the stored text (any RFC 3339 form is accepted, as a CMS may write one).
    pub fn parse(s: &str) -> Option<Self> {
        DateTime::parse_from_rfc3339(s.trim())
            .ok()
            .map(|t| Self::from(t.with_timezone(&Utc)))
    }
}

impl From<DateTime<Utc>> for DbTime {
    fn from(t: DateTime<Utc>) -> Self {
        // Invariant: zero nanoseconds is always a valid time of the same second.
        Self(chrono::Timelike::with_nanosecond(&t, 0).unwrap_or(t))
    }
}

impl From<DbTime> for DateTime<Utc> {
    fn from(t: DbTime) -> Self {
        t.0
    }
}

impl fmt::Display for DbTime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_text())
    }
}

impl Serialize for DbTime {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_text())
    }
}

// Stored as its text on every backend (TEXT on SQLite and PostgreSQL alike), so the same SQL
// compares and orders it the same way on both.
impl<DB: sqlx::Database> sqlx::Type<DB> for DbTime
where
    String: sqlx::Type<DB>,
{
    fn type_info() -> DB::TypeInfo {
        <String as sqlx::Type<DB>>::type_info()
    }
    fn compatible(ty: &DB::TypeInfo) -> bool {
        <String as sqlx::Type<DB>>::compatible(ty)
    }
}

impl<'q, DB: sqlx::Database> sqlx::Encode<'q, DB> for DbTime
where
    String: sqlx::Encode<'q, DB>,
{
    fn encode_by_ref(
        &self,
        buf: &mut <DB as sqlx::Database>::ArgumentBuffer,
    ) -> Result<sqlx::encode::IsNull, sqlx::error::BoxDynError> {
        <String as sqlx::Encode<'q, DB>>::encode(self.to_text(), buf)
    }
}

impl<'r, DB: sqlx::Database> sqlx::Decode<'r, DB> for DbTime
where
    &'r str: sqlx::Decode<'r, DB>,
{
    fn decode(
        value: <DB as sqlx::Database>::ValueRef<'r>,
    ) -> Result<Self, sqlx::error::BoxDynError> {
        let s = <&str as sqlx::Decode<'r, DB>>::decode(value)?;
        // A stored time that does not parse is an error, never a silent 1970-01-01.
        Self::parse(s).ok_or_else(|| format!("stored timestamp {s:?} is not RFC 3339").into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stored_names_round_trip() {
        for s in EditionStatus::ALL {
            assert_eq!(s.as_str().parse::<EditionStatus>(), Ok(*s));
        }
        for s in DeliveryStatus::ALL {
            assert_eq!(s.as_str().parse::<DeliveryStatus>(), Ok(*s));
        }
        assert!("Sent".parse::<DeliveryStatus>().is_err());
        assert_eq!(
            serde_json::to_string(&EditionKind::Breaking).unwrap(),
            "\"breaking\""
        );
    }

    #[test]
    fn db_time_is_fixed_width_utc_to_the_second() {
        let t = DbTime::parse("2026-11-28T12:00:00.123+05:00").unwrap();
        assert_eq!(t.to_text(), "2026-11-28T07:00:00Z");
        assert_eq!(DbTime::parse(&t.to_text()), Some(t));
        assert!(DbTime::parse("yesterday").is_none());
    }
}
