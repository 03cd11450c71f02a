//! Crontab schedules in a list's time zone.
//!
//! We use `croner` rather than the `cron` crate the client first named: croner reads ordinary
//! 5-field crontab lines with crontab meaning (0 and 7 = Sunday, day-of-month and day-of-week
//! OR-ed as in Vixie cron), while `cron` wants 6–7 fields with seconds and numbers weekdays
//! 1 = Sunday, so `0 7 * * 1-5` would silently mean Sunday–Thursday. croner also handles DST
//! the way an editor expects: a time inside a spring-forward gap runs once at the next valid
//! time, and a repeated fall-back hour runs once.

use std::fmt;

use chrono::{DateTime, Utc};
use croner::Cron;
use croner::parser::{CronParser, Seconds, Year};

use crate::domain::{DomainError, Timezone};

/// A validated 5-field crontab line.
#[derive(Clone)]
pub struct Schedule {
    line: String,
    cron: Cron,
}

impl fmt::Debug for Schedule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("Schedule").field(&self.line).finish()
    }
}

impl PartialEq for Schedule {
    fn eq(&self, other: &Self) -> bool {
        self.line == other.line
    }
}

impl Schedule {
    /// Parses a crontab line: `minute hour day-of-month month day-of-week`, or one of the
    /// nicknames `@daily`, `@weekly`, `@monthly`, `@yearly`, `@hourly`.
    pub fn parse(raw: &str) -> Result<Self, DomainError> {
        let line = raw.split_whitespace().collect::<Vec<_>>().join(" ");
        let err = |why: String| DomainError::Schedule(raw.to_owned(), why);
        let fields = line.split(' ').count();
        if !line.starts_with('@') && fields != 5 {
            return Err(err(format!(
                "expected 5 fields (minute hour day-of-month month day-of-week), found {fields}; e.g. \"0 7 * * *\" is 07:00 every day"
            )));
        }
        if !line.starts_with('@') {
            check_ranges(&line).map_err(err)?;
        }
        let parser = CronParser::builder()
            .seconds(Seconds::Disallowed)
            .year(Year::Disallowed)
            .dom_and_dow(false)
            .alternative_weekdays(false)
            .build();
        let cron = parser.parse(&line).map_err(|e| err(e.to_string()))?;
        Ok(Self { line, cron })
    }

    /// The line as stored and shown.
    pub fn as_str(&self) -> &str {
        &self.line
    }

    /// The first slot strictly after `after`, evaluated in `tz`, returned in UTC.
    pub fn next_after(&self, after: DateTime<Utc>, tz: Timezone) -> Option<DateTime<Utc>> {
        let local = after.with_timezone(&tz.0);
        self.cron
            .find_next_occurrence(&local, false)
            .ok()
            .map(|t| t.with_timezone(&Utc))
    }

    /// The latest slot at or before `at`, if there is one within a year.
    pub fn last_at_or_before(&self, at: DateTime<Utc>, tz: Timezone) -> Option<DateTime<Utc>> {
        let local = at.with_timezone(&tz.0);
        self.cron
            .find_previous_occurrence(&local, true)
            .ok()
            .map(|t| t.with_timezone(&Utc))
            .filter(|t| at.signed_duration_since(*t).num_days() < 366)
    }

    /// The next `n` slots after `after`: shown to admins so they see a mistake at once.
    pub fn upcoming(&self, after: DateTime<Utc>, tz: Timezone, n: usize) -> Vec<DateTime<Utc>> {
        let mut out = Vec::with_capacity(n);
        let mut t = after;
        while out.len() < n {
            match self.next_after(t, tz) {
                Some(next) => {
                    out.push(next);
                    t = next;
                }
                None => break,
            }
        }
        out
    }
}

/// Names the field and its range when a number is out of bounds, which croner's own message
/// ("Number out of bounds") does not.
fn check_ranges(line: &str) -> Result<(), String> {
    const FIELDS: [(&str, u32, u32); 5] = [
        ("minute", 0, 59),
        ("hour", 0, 23),
        ("day-of-month", 1, 31),
        ("month", 1, 12),
        ("day-of-week", 0, 7),
    ];
    for (field, (name, lo, hi)) in line.split(' ').zip(FIELDS) {
        for part in field.split([',', '-', '/']) {
            if let Ok(n) = part.parse::<u32>()
                && !(part_is_step(field, part) || (lo..=hi).contains(&n))
            {
                return Err(format!("the {name} field allows {lo}-{hi}, not {n}"));
            }
        }
    }
    Ok(())
}

/// A step (`*/15`) may exceed the field's range only in odd cases; leave those to croner.
fn part_is_step(field: &str, part: &str) -> bool {
    field.contains(&format!("/{part}"))
}

impl fmt::Display for Schedule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.line)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{Datelike, TimeZone, Timelike, Weekday};

    fn tz(name: &str) -> Timezone {
        Timezone::parse(name).unwrap()
    }

    #[test]
    fn weekdays_use_crontab_numbering() {
        let s = Schedule::parse("0 7 * * 1-5").unwrap();
        let karachi = tz("Asia/Karachi");
        // 2026-11-28 is a Saturday.
        let start = Utc.with_ymd_and_hms(2026, 11, 28, 0, 0, 0).unwrap();
        let slots = s.upcoming(start, karachi, 5);
        let days: Vec<Weekday> = slots
            .iter()
            .map(|t| t.with_timezone(&karachi.0).weekday())
            .collect();
        assert_eq!(
            days,
            [
                Weekday::Mon,
                Weekday::Tue,
                Weekday::Wed,
                Weekday::Thu,
                Weekday::Fri
            ]
        );
        // 07:00 in Karachi (UTC+5) is 02:00 UTC.
        assert_eq!(slots[0].hour(), 2);
        assert_eq!(
            Schedule::parse("0 7 * * 0")
                .unwrap()
                .next_after(start, karachi)
                .unwrap()
                .with_timezone(&karachi.0)
                .weekday(),
            Weekday::Sun
        );
        assert_eq!(
            Schedule::parse("0 7 * * 7")
                .unwrap()
                .next_after(start, karachi)
                .unwrap()
                .with_timezone(&karachi.0)
                .weekday(),
            Weekday::Sun
        );
    }

    #[test]
    fn dom_and_dow_are_ored() {
        // The 1st of the month OR any Monday.
        let s = Schedule::parse("0 7 1 * 1").unwrap();
        let start = Utc.with_ymd_and_hms(2026, 11, 28, 0, 0, 0).unwrap();
        let slots = s.upcoming(start, tz("UTC"), 3);
        let dates: Vec<u32> = slots.iter().map(|t| t.day()).collect();
        assert_eq!(dates, [30, 1, 7]); // Mon 30 Nov, Tue 1 Dec, Mon 7 Dec
    }

    #[test]
    fn dst_gap_runs_once_and_repeated_hour_runs_once() {
        let london = tz("Europe/London");
        let s = Schedule::parse("30 1 * * *").unwrap();
        // Spring forward: 2026-03-29 01:00 GMT jumps to 02:00 BST, so 01:30 does not exist.
        let start = Utc.with_ymd_and_hms(2026, 3, 27, 12, 0, 0).unwrap();
        let slots = s.upcoming(start, london, 3);
        let days: Vec<u32> = slots
            .iter()
            .map(|t| t.with_timezone(&london.0).day())
            .collect();
        assert_eq!(days, [28, 29, 30], "{slots:?}");
        // Fall back: 2026-10-25 01:00-02:00 happens twice; the job runs once that day.
        let start = Utc.with_ymd_and_hms(2026, 10, 23, 12, 0, 0).unwrap();
        let slots = s.upcoming(start, london, 3);
        let days: Vec<u32> = slots
            .iter()
            .map(|t| t.with_timezone(&london.0).day())
            .collect();
        assert_eq!(days, [24, 25, 26], "{slots:?}");
        // Karachi has no DST: 07:00 PKT is always 02:00 UTC.
        let k = Schedule::parse("0 7 * * *").unwrap();
        assert!(
            k.upcoming(start, tz("Asia/Karachi"), 5)
                .iter()
                .all(|t| t.hour() == 2)
        );
        // The latest slot at or before a moment, for the scheduler's catch-up.
        let at = Utc.with_ymd_and_hms(2026, 11, 28, 3, 0, 0).unwrap();
        assert_eq!(
            k.last_at_or_before(at, tz("Asia/Karachi")),
            Some(Utc.with_ymd_and_hms(2026, 11, 28, 2, 0, 0).unwrap())
        );
    }

    #[test]
    fn errors_say_what_is_wrong() {
        let e = Schedule::parse("0 0 7 * * *").unwrap_err().to_string();
        assert!(e.contains("expected 5 fields"), "{e}");
        let e = Schedule::parse("61 7 * * *").unwrap_err().to_string();
        assert!(e.contains("minute field allows 0-59, not 61"), "{e}");
        let e = Schedule::parse("0 7 * * 8").unwrap_err().to_string();
        assert!(e.contains("day-of-week field allows 0-7"), "{e}");
        assert!(Schedule::parse("*/15 6-22 * * Mon-Fri").is_ok());
        assert!(Schedule::parse("@daily").is_ok());
    }
}
