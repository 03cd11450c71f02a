//! Durations as the config file writes them: `90s`, `45m`, `6h`, `2d`, or a bare number of
//! seconds.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// The longest duration any text may name: 100 years. Far beyond every key's own bound (see
/// `bounds.rs`); it only guarantees that the conversions below can never overflow.
const CEILING_SECS: u64 = 100 * 365 * 86_400;

/// A whole number of seconds read from text such as `6h`, at most 100 years.
///
/// Serialises back to the shortest exact text form (`21600` seconds is `"6h"`), so a
/// serialised config reads like the file it came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct HumanDuration {
    secs: u64,
}

impl HumanDuration {
    /// `hours` hours (a `u16` of hours is always under the ceiling).
    pub const fn from_hours(hours: u16) -> Self {
        Self {
            secs: hours as u64 * 3600,
        }
    }

    /// The duration in seconds.
    pub const fn secs(self) -> u64 {
        self.secs
    }

    /// As a `chrono` duration, for date arithmetic.
    pub fn to_chrono(self) -> chrono::TimeDelta {
        // Never saturates: the ceiling is far below chrono's range of ±292 million years.
        i64::try_from(self.secs)
            .ok()
            .and_then(chrono::TimeDelta::try_seconds)
            .unwrap_or(chrono::TimeDelta::MAX)
    }

    /// As a `std` duration, for timers.
    pub const fn to_std(self) -> std::time::Duration {
        std::time::Duration::from_secs(self.secs)
    }
}

/// Parses `90s`, `45m`, `6h`, `2d` (or a bare number of seconds), at most 100 years.
///
/// Never overflows: a number too large for the arithmetic is reported, not wrapped.
pub fn parse_duration(raw: &str) -> Result<HumanDuration, String> {
    let syntax = || format!("expected a duration like 90s, 45m, 6h or 2d, got {raw:?}");
    let too_long = || format!("{raw:?} is longer than 100 years");
    let s = raw.trim();
    let (num, unit) = s.split_at(s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len()));
    if num.is_empty() {
        return Err(syntax());
    }
    let unit_secs: u64 = match unit {
        "" | "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        _ => return Err(syntax()),
    };
    // Only digits are left, so a failed parse means the number overflowed u64.
    let n: u64 = num.parse().map_err(|_| too_long())?;
    let secs = n
        .checked_mul(unit_secs)
        .filter(|&s| s <= CEILING_SECS)
        .ok_or_else(too_long)?;
    Ok(HumanDuration { secs })
}

impl FromStr for HumanDuration {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        parse_duration(s)
    }
}

impl fmt::Display for HumanDuration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = self.secs;
        match s {
            0 => f.write_str("0s"),
            _ if s.is_multiple_of(86_400) => write!(f, "{}d", s / 86_400),
            _ if s.is_multiple_of(3600) => write!(f, "{}h", s / 3600),
            _ if s.is_multiple_of(60) => write!(f, "{}m", s / 60),
            _ => write!(f, "{s}s"),
        }
    }
}

impl Serialize for HumanDuration {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for HumanDuration {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl serde::de::Visitor<'_> for Visitor {
            type Value = HumanDuration;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a duration like 90s, 45m, 6h or 2d")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Self::Value, E> {
                parse_duration(v).map_err(E::custom)
            }
            // A bare number in the file is seconds, as it is in a string.
            fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<Self::Value, E> {
                parse_duration(&v.to_string()).map_err(E::custom)
            }
            fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<Self::Value, E> {
                parse_duration(&v.to_string()).map_err(E::custom)
            }
        }
        d.deserialize_any(Visitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse_in_every_unit() {
        assert_eq!(parse_duration("6h").unwrap(), HumanDuration::from_hours(6));
        assert_eq!(parse_duration("90").unwrap().secs(), 90);
        assert_eq!(parse_duration(" 45m ").unwrap().secs(), 2700);
        assert_eq!(parse_duration("2d").unwrap().secs(), 172_800);
        assert_eq!(parse_duration("0s").unwrap().secs(), 0);
        for bad in ["six hours", "", "h", "-5m", "+5m", "5 m", "5w", "1.5h"] {
            assert!(parse_duration(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn huge_durations_are_errors_not_overflows() {
        for huge in [
            "99999999999999d",
            "18446744073709551615d",
            "18446744073709551616",
            "36501d",
        ] {
            let e = parse_duration(huge).unwrap_err();
            assert!(e.contains("longer than 100 years"), "{huge}: {e}");
        }
        assert!(parse_duration("36500d").is_ok());
    }

    #[test]
    fn display_is_the_shortest_exact_form_and_parses_back() {
        for (secs, text) in [
            (0, "0s"),
            (59, "59s"),
            (120, "2m"),
            (21_600, "6h"),
            (90_000, "25h"),
            (86_400, "1d"),
        ] {
            let d = parse_duration(&secs.to_string()).unwrap();
            assert_eq!(d.to_string(), text);
            assert_eq!(parse_duration(text).unwrap(), d);
        }
    }

    #[test]
    fn conversions_agree() {
        let d = parse_duration("36500d").unwrap();
        assert_eq!(d.to_chrono().num_seconds() as u64, d.secs());
        assert_eq!(d.to_std().as_secs(), d.secs());
    }
}
