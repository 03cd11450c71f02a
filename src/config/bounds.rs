//! The allowed range of every numeric and duration setting, checked at load.
//!
//! Each range is wide enough for any real installation and narrow enough that no arithmetic
//! done with the value (timestamps, `Duration`s, worker counts) can overflow. Keep the table
//! and the comments in `config/dispatch.toml` in step; a test checks every integer or
//! duration key of the defaults has a row here.

use super::{Config, Problem};

/// How a bound's numbers are written in messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Unit {
    /// A plain count or number of seconds.
    Number,
    /// A duration in seconds, written like the file writes it (`30d`).
    Duration,
}

/// One setting's range, inclusive at both ends.
pub(super) struct Bound {
    pub(super) section: &'static str,
    pub(super) key: &'static str,
    pub(super) min: u64,
    pub(super) max: u64,
    pub(super) unit: Unit,
    get: fn(&Config) -> u64,
}

impl Bound {
    /// `1-64`, or `0s-30d` for a duration.
    pub(super) fn range(&self) -> String {
        format!("{}-{}", self.show(self.min), self.show(self.max))
    }

    /// `n` in this setting's unit.
    pub(super) fn show(&self, n: u64) -> String {
        match self.unit {
            Unit::Number => n.to_string(),
            Unit::Duration => super::duration::parse_duration(&n.to_string())
                .map(|d| d.to_string())
                .unwrap_or_else(|_| format!("{n}s")),
        }
    }
}

const fn number(
    section: &'static str,
    key: &'static str,
    min: u64,
    max: u64,
    get: fn(&Config) -> u64,
) -> Bound {
    Bound {
        section,
        key,
        min,
        max,
        unit: Unit::Number,
        get,
    }
}

/// Every numeric and duration setting. See `config/dispatch.toml` for what each means.
pub(super) const BOUNDS: &[Bound] = &[
    // Per node; PostgreSQL allows 100 connections in all by default.
    number("database", "max_connections", 2, 500, |c| {
        u64::from(c.database.max_connections)
    }),
    number("web", "max_connections", 1, 65_536, |c| {
        u64::from(c.web.max_connections)
    }),
    // Under a second drops readers on slow phones; over ten minutes lets idle clients pile up.
    number("web", "header_timeout_secs", 1, 600, |c| {
        c.web.header_timeout_secs
    }),
    number("web", "request_timeout_secs", 1, 3600, |c| {
        c.web.request_timeout_secs
    }),
    number("smtp", "port", 1, 65_535, |c| u64::from(c.smtp.port)),
    // Relays limit connections per client (Postfix: 50 by default); more rarely helps.
    number("smtp", "connections", 1, 64, |c| {
        u64::from(c.smtp.connections)
    }),
    number("smtp", "timeout_secs", 1, 600, |c| c.smtp.timeout_secs),
    number("sending", "rate_per_second", 0, 1_000_000, |c| {
        u64::from(c.sending.rate_per_second)
    }),
    number("sending", "max_attempts", 1, 100, |c| {
        u64::from(c.sending.max_attempts)
    }),
    number("sending", "retry_base_secs", 0, 86_400, |c| {
        c.sending.retry_base_secs
    }),
    number("sending", "lease_secs", 10, 86_400, |c| {
        c.sending.lease_secs
    }),
    number("sending", "pause_after_secs", 0, 86_400, |c| {
        c.sending.pause_after_secs
    }),
    number("digest", "max_per_category", 1, 1000, |c| {
        u64::from(c.digest.max_per_category)
    }),
    number("digest", "first_window_hours", 1, 8760, |c| {
        u64::from(c.digest.first_window_hours)
    }),
    Bound {
        section: "schedule",
        key: "max_lateness",
        min: 0,
        max: 30 * 86_400,
        unit: Unit::Duration,
        get: |c| c.schedule.max_lateness.secs(),
    },
    number("schedule", "breaking_poll_secs", 1, 3600, |c| {
        c.schedule.breaking_poll_secs
    }),
    number("retention", "days", 1, 3650, |c| {
        u64::from(c.retention.days)
    }),
    number("bounces", "hard_threshold", 1, 100, |c| {
        u64::from(c.bounces.hard_threshold)
    }),
    number("bounces", "soft_threshold", 1, 100, |c| {
        u64::from(c.bounces.soft_threshold)
    }),
    number("bounces.imap", "port", 1, 65_535, |c| {
        u64::from(c.bounces.imap.port)
    }),
    // Polling more often than every 5 s only loads the mail server; a day is plenty.
    number("bounces.imap", "poll_secs", 5, 86_400, |c| {
        c.bounces.imap.poll_secs
    }),
];

/// A `[[feeds]]` entry's range: the same shape, read from one feed.
pub(super) struct FeedBound {
    pub(super) key: &'static str,
    pub(super) min: u64,
    pub(super) max: u64,
    get: fn(&super::Feed) -> u64,
}

/// Every numeric setting of a `[[feeds]]` entry.
pub(super) const FEED_BOUNDS: &[FeedBound] = &[
    // Faster than every 30 s only loads the CMS; a conditional GET makes 30 s cheap.
    FeedBound {
        key: "poll_secs",
        min: 30,
        max: 86_400,
        get: |f| f.poll_secs,
    },
];

/// Every numeric setting of a `[[sql_sources]]` entry.
pub(super) const SOURCE_BOUNDS: &[(&str, u64, u64)] = &[
    // The CMS's own database: every 10 s at most.
    ("poll_secs", 10, 86_400),
];

/// The first setting of source `section` (`sql_sources[1]`) outside its range.
pub(super) fn check_source(section: &str, src: &super::SqlSource) -> Result<(), Problem> {
    for &(key, min, max) in SOURCE_BOUNDS {
        let v = src.poll_secs;
        if v < min || v > max {
            return Err(Problem::at(
                section,
                key,
                format!("expected {min}-{max}, got {v}"),
            ));
        }
    }
    Ok(())
}

/// The first setting of feed `section` (`feeds[2]`) outside its range.
pub(super) fn check_feed(section: &str, feed: &super::Feed) -> Result<(), Problem> {
    for b in FEED_BOUNDS {
        let v = (b.get)(feed);
        if v < b.min || v > b.max {
            return Err(Problem::at(
                section,
                b.key,
                format!("expected {}-{}, got {v}", b.min, b.max),
            ));
        }
    }
    Ok(())
}

/// The bound of `[section] key`, if it has one.
pub(super) fn of(section: &str, key: &str) -> Option<&'static Bound> {
    BOUNDS.iter().find(|b| b.section == section && b.key == key)
}

/// The first setting of `cfg` outside its range.
pub(super) fn check(cfg: &Config) -> Result<(), Problem> {
    for b in BOUNDS {
        let v = (b.get)(cfg);
        if v < b.min || v > b.max {
            return Err(Problem::at(
                b.section,
                b.key,
                format!("expected {}, got {}", b.range(), b.show(v)),
            ));
        }
    }
    Ok(())
}
