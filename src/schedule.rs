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
    fn errors_say_what_is_wrong() {
        let e = Schedule::parse("0 0 7 * * *").unwrap_err().to_string();
        assert!(e.contains("expected 5 fields"), "{e}");
        let e = Schedule::parse("61 7 * * *").unwrap_err().to_string();
        assert!(e.contains("invalid schedule"), "{e}");
        assert!(Schedule::parse("@daily").is_ok());
    }
}
