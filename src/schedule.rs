//! Crontab schedules in a list's time zone, with Debian cron(8)'s rule for clock changes.
//!
//! We use `croner` rather than the `cron` crate the client first named: croner reads ordinary
//! 5-field crontab lines with crontab meaning (0 and 7 = Sunday, day-of-month and day-of-week
//! OR-ed as in Vixie cron), while `cron` wants 6–7 fields with seconds and numbers weekdays
//! 1 = Sunday, so `0 7 * * 1-5` would silently mean Sunday–Thursday.
//!
//! croner only matches the fields against a wall clock here: we ask it for matching times on a
//! clock without daylight saving time and place each one in the list's zone ourselves, because
//! croner's own DST handling treats any schedule with more than one minute or hour (`0 2,14 * *
//! *`, `30 1-3 * * *`) as a wildcard, which loses or doubles sends.
//!
//! # Clock changes (daylight saving time)
//!
//! Debian's cron(8) promises: "If the time has moved forwards, those jobs which would have run in
//! the time that was skipped will be run soon after the change. Conversely, if the time has moved
//! backwards by less than 3 hours, those jobs that fall into the repeated time will not be
//! re-run." Jobs with a wildcard hour "are run based on the new time immediately", and changes
//! of 3 hours or more are treated as corrections of the clock. So here:
//!
//! - **Fixed times** — every schedule whose hour field is not `*` or `*/n` (single values, lists,
//!   ranges, steps over a range such as `1-3/2`). A slot that falls in a spring-forward gap runs
//!   at the instant the gap ends (03:00 for a 02:00–03:00 gap, also for a 02:30 slot); slots
//!   that land on the same instant are one slot, so one digest. A slot in a repeated (fall-back)
//!   hour runs once, at its first occurrence.
//! - **Clock-following** — an hour field of `*` or `*/n` (and `@hourly`): the schedule names an
//!   interval rather than a time of day, so it follows the wall clock: a slot inside a gap does
//!   not exist and is skipped, and a repeated hour's slots run in both passes (so `0 * * * *`
//!   still runs once every real hour, and `30 */2 * * *` has no 02:30 on the spring-forward
//!   day).
//! - A change of 3 hours or more (a zone redefined, not daylight saving time) is treated like
//!   a clock-following schedule for every schedule: nothing is caught up or held back.
//!
//! Where we differ from cron: cron also counts a `*` in the *minute* field (`*/15 2 * * *`) as a
//! wildcard job, which would skip every 02:xx slot on the spring-forward day and run the
//! repeated ones twice. With a fixed hour such a line names times of day, so it is a fixed-time
//! schedule here: `*/30 1-3 * * *` and `0,30 1-3 * * *` behave alike.

use std::fmt;

use chrono::{
    DateTime, Datelike, Duration, LocalResult, NaiveDate, NaiveDateTime, Offset, TimeZone, Utc,
};
use chrono_tz::Tz;
use croner::Cron;
use croner::parser::{CronParser, Seconds, Year};

use crate::domain::{DomainError, Timezone};

/// Field names in crontab order, for error messages.
const FIELD_NAMES: [&str; 5] = ["minute", "hour", "day-of-month", "month", "day-of-week"];

/// Debian cron(8): clock changes of this size or more are corrections, not DST.
const CLOCK_CORRECTION: Duration = Duration::hours(3);

/// How far apart two instants with the same wall-clock reading can be, and how far a slot can be
/// moved by a clock change: no zone's offset has changed by more than a day at once.
const SPAN: Duration = Duration::hours(32);

/// How a schedule meets a clock change (see the module docs).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// The hour field names times of day: gap slots are caught up, repeated slots run once.
    Fixed,
    /// The hour field is `*` or `*/n`: slots follow the wall clock.
    ClockFollowing,
}

/// A validated 5-field crontab line.
#[derive(Clone)]
pub struct Schedule {
    line: String,
    cron: Cron,
    kind: Kind,
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
    /// nicknames `@daily`, `@weekly`, `@monthly`, `@yearly`, `@hourly`. A line that matches no
    /// date at all (`0 7 31 2 *`) is refused: it would silently never send.
    pub fn parse(raw: &str) -> Result<Self, DomainError> {
        let line = raw.split_whitespace().collect::<Vec<_>>().join(" ");
        let err = |why: String| DomainError::Schedule(raw.to_owned(), why);
        let fields_text = if line.starts_with('@') {
            expand_nickname(&line).ok_or_else(|| {
                err(format!(
                    "unknown nickname {line:?}; use @hourly, @daily, @weekly, @monthly or @yearly"
                ))
            })?
        } else {
            line.as_str()
        };
        let fields: Vec<&str> = fields_text.split(' ').collect();
        if fields.len() != 5 {
            return Err(err(format!(
                "expected 5 fields (minute hour day-of-month month day-of-week), found {}; e.g. \"0 7 * * *\" is 07:00 every day",
                fields.len()
            )));
        }
        check_ranges(&fields).map_err(err)?;
        let cron = parser()
            .parse(fields_text)
            .map_err(|e| err(name_the_field(&fields, &e.to_string())))?;
        let kind = if fields[1].starts_with(['*', '?']) {
            Kind::ClockFollowing
        } else {
            Kind::Fixed
        };
        if !ever_fires(&cron) {
            return Err(err(format!(
                "it never fires: no month in the month field ({}) has the day-of-month {}",
                fields[3], fields[2]
            )));
        }
        Ok(Self { line, cron, kind })
    }

    /// The line as stored and shown.
    pub fn as_str(&self) -> &str {
        &self.line
    }

    /// The first slot strictly after `after`, evaluated in `tz`, returned in UTC.
    pub fn next_after(&self, after: DateTime<Utc>, tz: Timezone) -> Option<DateTime<Utc>> {
        let tz = tz.0;
        let mut wall = self.wall_match(lowest_wall_from(tz, after), Direction::Forward, true)?;
        let mut best: Option<DateTime<Utc>> = None;
        loop {
            let placed = self.place(tz, wall);
            // `earliest` only grows with the wall time, so nothing later can beat `best`.
            if best.is_some_and(|b| placed.earliest >= b) {
                break;
            }
            for s in placed.slots.into_iter().flatten() {
                if s > after && best.is_none_or(|b| s < b) {
                    best = Some(s);
                }
            }
            match self.wall_match(wall, Direction::Forward, false) {
                Some(w) => wall = w,
                None => break,
            }
        }
        best
    }

    /// The latest slot at or before `at`, if there is one within a year.
    pub fn last_at_or_before(&self, at: DateTime<Utc>, tz: Timezone) -> Option<DateTime<Utc>> {
        let tz = tz.0;
        let horizon = at - Duration::days(366);
        let mut wall = self.wall_match(highest_wall_until(tz, at), Direction::Backward, true)?;
        let mut best: Option<DateTime<Utc>> = None;
        loop {
            let placed = self.place(tz, wall);
            // `latest` only shrinks as we walk back, so nothing earlier can beat `best`.
            if best.is_some_and(|b| placed.latest <= b) || placed.latest < horizon {
                break;
            }
            for s in placed.slots.into_iter().flatten() {
                if s <= at && best.is_none_or(|b| s > b) {
                    best = Some(s);
                }
            }
            match self.wall_match(wall, Direction::Backward, false) {
                Some(w) => wall = w,
                None => break,
            }
        }
        best.filter(|t| *t > horizon)
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

    /// The next wall-clock time matching the fields, from `from` in `direction`. croner is
    /// given the reading as a UTC time, where no clock ever changes.
    fn wall_match(
        &self,
        from: NaiveDateTime,
        direction: Direction,
        inclusive: bool,
    ) -> Option<NaiveDateTime> {
        let from = from.and_utc();
        match direction {
            Direction::Forward => self.cron.find_next_occurrence(&from, inclusive),
            Direction::Backward => self.cron.find_previous_occurrence(&from, inclusive),
        }
        .ok()
        .map(|t| t.naive_utc())
    }

    /// The slots a matching wall-clock time `wall` gives in `tz`, by the rule in the module docs.
    fn place(&self, tz: Tz, wall: NaiveDateTime) -> Placed {
        let fixed = self.kind == Kind::Fixed;
        match tz.from_local_datetime(&wall) {
            LocalResult::Single(t) => {
                let t = t.to_utc();
                Placed {
                    slots: [Some(t), None],
                    earliest: t,
                    latest: t,
                }
            }
            LocalResult::Ambiguous(a, b) => {
                let (early, late) = (a.to_utc().min(b.to_utc()), a.to_utc().max(b.to_utc()));
                let once = fixed && late - early < CLOCK_CORRECTION;
                Placed {
                    slots: [Some(early), (!once).then_some(late)],
                    earliest: early,
                    latest: late,
                }
            }
            LocalResult::None => {
                let end = gap_end(tz, wall);
                let size = offset(tz, end) - offset(tz, end - Duration::seconds(1));
                let catch_up = fixed && size < CLOCK_CORRECTION;
                Placed {
                    slots: [catch_up.then_some(end), None],
                    earliest: end,
                    latest: end,
                }
            }
        }
    }
}

/// Whether any date matches. The Gregorian calendar repeats every 400 years, so looking at
/// one such cycle of days settles it for good.
fn ever_fires(cron: &Cron) -> bool {
    let p = &cron.pattern;
    let Some(mut day) = NaiveDate::from_ymd_opt(2001, 1, 1) else {
        return true; // unreachable: a valid constant date
    };
    let Some(end) = NaiveDate::from_ymd_opt(2401, 1, 1) else {
        return true; // unreachable: a valid constant date
    };
    while day < end {
        if p.month_match(day.month()).unwrap_or(true)
            && p.day_match(
                day.year(),
                day.month(),
                day.day(),
                croner::Weekday::from_days_from_sunday(day.weekday().num_days_from_sunday()),
            )
            .unwrap_or(true)
        {
            return true;
        }
        day = match day.succ_opt() {
            Some(d) => d,
            None => return true,
        };
    }
    false
}

/// The slots of one matching wall-clock time, with bounds that let a search stop early.
struct Placed {
    /// Zero, one or two instants (two only in a repeated hour).
    slots: [Option<DateTime<Utc>>; 2],
    /// No slot of this or any later wall time is before this instant.
    earliest: DateTime<Utc>,
    /// No slot of this or any earlier wall time is after this instant.
    latest: DateTime<Utc>,
}

#[derive(Debug, Clone, Copy)]
enum Direction {
    Forward,
    Backward,
}

fn parser() -> CronParser {
    CronParser::builder()
        .seconds(Seconds::Disallowed)
        .year(Year::Disallowed)
        .dom_and_dow(false)
        .alternative_weekdays(false)
        .build()
}

/// The 5 fields a nickname stands for (as in crontab(5)).
fn expand_nickname(line: &str) -> Option<&'static str> {
    Some(match line.to_ascii_lowercase().as_str() {
        "@yearly" | "@annually" => "0 0 1 1 *",
        "@monthly" => "0 0 1 * *",
        "@weekly" => "0 0 * * 0",
        "@daily" | "@midnight" => "0 0 * * *",
        "@hourly" => "0 * * * *",
        _ => return None,
    })
}

/// croner's parse errors ("Component error: Invalid number.") do not say which field is
/// wrong: parse each field alone to find it.
fn name_the_field(fields: &[&str], croner_message: &str) -> String {
    let why = croner_message
        .trim_start_matches("Component error: ")
        .trim_end_matches('.');
    for (i, name) in FIELD_NAMES.iter().enumerate() {
        let alone: Vec<&str> = (0..5)
            .map(|j| if j == i { fields[i] } else { "*" })
            .collect();
        if parser().parse(&alone.join(" ")).is_err() {
            let hint = if fields[i].contains('*') && fields[i].contains(',') {
                " (a * stands alone: list only numbers, e.g. 1,10)"
            } else {
                ""
            };
            return format!("the {name} field {:?} is not valid: {why}{hint}", fields[i]);
        }
    }
    why.to_owned()
}

/// Names the field and its range when a number is out of bounds, which croner's own message
/// ("Number out of bounds") does not.
fn check_ranges(fields: &[&str]) -> Result<(), String> {
    const RANGES: [(u32, u32); 5] = [(0, 59), (0, 23), (1, 31), (1, 12), (0, 7)];
    for ((field, (lo, hi)), name) in fields.iter().zip(RANGES).zip(FIELD_NAMES) {
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

/// The zone's offset from UTC at `t`.
fn offset(tz: Tz, t: DateTime<Utc>) -> Duration {
    Duration::seconds(i64::from(
        tz.offset_from_utc_datetime(&t.naive_utc())
            .fix()
            .local_minus_utc(),
    ))
}

/// The wall-clock reading in `tz` at `t`.
fn wall(tz: Tz, t: DateTime<Utc>) -> NaiveDateTime {
    t.naive_utc() + offset(tz, t)
}

/// A wall time no later than any reading of the clock from just before `t` on: the reading at
/// `t`, or lower where the clock goes back soon after. Offsets are sampled hourly; no zone
/// changes its offset twice within an hour.
fn lowest_wall_from(tz: Tz, t: DateTime<Utc>) -> NaiveDateTime {
    let start = t - Duration::seconds(1);
    let mut low = wall(tz, start);
    let mut prev = (start, offset(tz, start));
    for k in 1..=SPAN.num_hours() {
        let u = start + Duration::hours(k);
        let off = offset(tz, u);
        low = low.min(prev.0.naive_utc() + prev.1.min(off));
        prev = (u, off);
    }
    low
}

/// A wall time no earlier than any reading of the clock up to `t`: the reading at `t`, or
/// higher where the clock went back shortly before.
fn highest_wall_until(tz: Tz, t: DateTime<Utc>) -> NaiveDateTime {
    let mut high = wall(tz, t);
    let mut prev = (t, offset(tz, t));
    for k in 1..=SPAN.num_hours() {
        let u = t - Duration::hours(k);
        let off = offset(tz, u);
        high = high.max(prev.0.naive_utc() + prev.1.max(off));
        prev = (u, off);
    }
    high
}

/// The first instant after the gap that skips the wall time `skipped`: where the clock jumps
/// from before `skipped` to after it.
fn gap_end(tz: Tz, skipped: NaiveDateTime) -> DateTime<Utc> {
    // Every zone's offset is within ±SPAN, so `lo` reads before and `hi` after `skipped`.
    // Whole seconds: zones change their offsets on a second.
    let at = |secs: i64| DateTime::<Utc>::from_timestamp(secs, 0);
    let mut lo = (skipped.and_utc() - SPAN).timestamp();
    let mut hi = (skipped.and_utc() + SPAN).timestamp();
    while hi - lo > 1 {
        let mid = lo + (hi - lo) / 2;
        match at(mid) {
            Some(t) if wall(tz, t) > skipped => hi = mid,
            _ => lo = mid,
        }
    }
    at(hi).unwrap_or(skipped.and_utc())
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
        let dates: Vec<u32> = slots.iter().map(chrono::Datelike::day).collect();
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

    #[test]
    fn a_bad_field_is_named_in_the_error() {
        let e = Schedule::parse("0 12 *,10 * 2").unwrap_err().to_string();
        assert!(
            e.contains("the day-of-month field \"*,10\" is not valid: Invalid number"),
            "{e}"
        );
        assert!(e.contains("a * stands alone"), "{e}");
        let e = Schedule::parse("0 x * * *").unwrap_err().to_string();
        assert!(e.contains("the hour field \"x\""), "{e}");
        let e = Schedule::parse("0 7 * Foo *").unwrap_err().to_string();
        assert!(e.contains("the month field \"Foo\""), "{e}");
        let e = Schedule::parse("@reboot").unwrap_err().to_string();
        assert!(e.contains("unknown nickname"), "{e}");
    }

    #[test]
    fn a_schedule_that_never_fires_is_refused_with_the_reason() {
        for line in ["0 7 31 2 *", "0 0 30 2 *", "0 0 31 4,6,9,11 *"] {
            let e = Schedule::parse(line).unwrap_err().to_string();
            assert!(e.contains("it never fires"), "{line}: {e}");
        }
        // Rare is not never: 29 February comes every four years, and with a weekday the
        // day fields are OR-ed, so Mondays count.
        let leap = Schedule::parse("0 0 29 2 *").unwrap();
        let start = Utc.with_ymd_and_hms(2026, 11, 28, 0, 0, 0).unwrap();
        assert_eq!(
            leap.next_after(start, tz("UTC")),
            Some(Utc.with_ymd_and_hms(2028, 2, 29, 0, 0, 0).unwrap())
        );
        assert!(Schedule::parse("0 7 31 2 1").is_ok());
    }

    #[test]
    fn nicknames_keep_their_text_and_their_kind() {
        assert_eq!(Schedule::parse("@daily").unwrap().kind, Kind::Fixed);
        assert_eq!(
            Schedule::parse("@hourly").unwrap().kind,
            Kind::ClockFollowing
        );
        assert_eq!(Schedule::parse("@weekly").unwrap().as_str(), "@weekly");
        assert_eq!(Schedule::parse("*/15 2 * * *").unwrap().kind, Kind::Fixed);
        assert_eq!(
            Schedule::parse("0 */2 * * *").unwrap().kind,
            Kind::ClockFollowing
        );
    }
}
