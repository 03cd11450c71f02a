//! Schedules across the 2026 clock changes in three zones, checked against slots worked out by
//! hand from Debian cron(8)'s rule (see `dispatch::schedule`):
//!
//! - a fixed-time slot skipped by the spring-forward gap runs at the instant the gap ends, and
//!   slots landing on the same instant are one slot;
//! - a fixed-time slot in the repeated fall-back hour runs once, at its first occurrence;
//! - a schedule with `*` or `*/n` in the hour follows the wall clock (gap slots do not exist,
//!   repeated ones run in both passes).
//!
//! Every case is checked three ways: the slots `upcoming` lists, `last_at_or_before` at and just
//! before each slot, and a scheduler that asks for the latest slot once a minute across the
//! window (what `dispatch run` does) and must see each slot exactly once.
//!
//! The transitions (UTC):
//! - America/New_York: 8 Mar 07:00 (02:00 EST -> 03:00 EDT); 1 Nov 06:00 (02:00 EDT -> 01:00 EST).
//! - Europe/London: 29 Mar 01:00 (01:00 GMT -> 02:00 BST); 25 Oct 01:00 (02:00 BST -> 01:00 GMT).
//! - Australia/Sydney: 4 Apr 16:00 (03:00 AEDT -> 02:00 AEST); 3 Oct 16:00 (02:00 AEST -> 03:00
//!   AEDT).

mod support;

use chrono::{DateTime, Duration, NaiveDateTime, Utc};
use dispatch::domain::Timezone;
use dispatch::schedule::Schedule;
use support::cli::Cli;

fn utc(s: &str) -> DateTime<Utc> {
    NaiveDateTime::parse_from_str(s, "%Y-%m-%d %H:%M")
        .unwrap_or_else(|e| panic!("bad instant {s:?} in the test: {e}"))
        .and_utc()
}

/// Checks that `line` in `zone` has exactly the slots `expected` (UTC, "YYYY-MM-DD HH:MM") in
/// the window (`from`, `to`].
fn check(line: &str, zone: &str, from: &str, to: &str, expected: &[&str]) {
    let schedule = Schedule::parse(line).unwrap();
    let tz = Timezone::parse(zone).unwrap();
    let (from, to) = (utc(from), utc(to));
    let expected: Vec<DateTime<Utc>> = expected.iter().map(|s| utc(s)).collect();
    let ctx = format!("{line:?} in {zone}");

    // 1. The slots as listed to admins.
    let mut listed = Vec::new();
    let mut t = from;
    while let Some(next) = schedule.next_after(t, tz).filter(|n| *n <= to) {
        listed.push(next);
        t = next;
    }
    assert_eq!(listed, expected, "upcoming slots of {ctx}");

    // 2. The scheduler's view: the latest slot at, and just before, each slot.
    for (i, slot) in expected.iter().enumerate() {
        assert_eq!(
            schedule.last_at_or_before(*slot, tz),
            Some(*slot),
            "latest slot at {slot} for {ctx}"
        );
        let before = schedule.last_at_or_before(*slot - Duration::seconds(1), tz);
        if i > 0 {
            assert_eq!(
                before,
                Some(expected[i - 1]),
                "latest slot just before {slot} for {ctx}"
            );
        } else {
            assert!(
                before.is_none_or(|b| b <= from),
                "no slot between {from} and {slot} for {ctx}, got {before:?}"
            );
        }
    }

    // 3. A scheduler waking every minute sends each slot once, and no other.
    let mut sent: Vec<DateTime<Utc>> = Vec::new();
    let mut now = from;
    while now <= to {
        if let Some(slot) = schedule.last_at_or_before(now, tz)
            && slot > from
            && sent.last() != Some(&slot)
        {
            assert!(!sent.contains(&slot), "{slot} sent twice for {ctx}");
            sent.push(slot);
        }
        now += Duration::minutes(1);
    }
    assert_eq!(
        sent, expected,
        "slots a minute-by-minute scheduler sends for {ctx}"
    );
}

const NY: &str = "America/New_York";
const LONDON: &str = "Europe/London";
const SYDNEY: &str = "Australia/Sydney";

#[test]
fn new_york_spring_forward_runs_every_skipped_fixed_slot_when_the_gap_ends() {
    let (from, to) = ("2026-03-07 12:00", "2026-03-09 12:00");
    // 02:30 does not exist on 8 March: it runs at 03:00 EDT; 9 March 02:30 EDT.
    check(
        "30 2 * * *",
        NY,
        from,
        to,
        &["2026-03-08 07:00", "2026-03-09 06:30"],
    );
    // The example: the 02:00 slot of a list is not lost.
    check(
        "0 2,14 * * *",
        NY,
        from,
        to,
        &[
            "2026-03-07 19:00", // 14:00 EST
            "2026-03-08 07:00", // 02:00 skipped -> 03:00 EDT
            "2026-03-08 18:00", // 14:00 EDT
            "2026-03-09 06:00", // 02:00 EDT
        ],
    );
    // 02:00 and 02:30 both skipped: one digest at 03:00 EDT.
    check(
        "0,30 2 * * *",
        NY,
        from,
        to,
        &["2026-03-08 07:00", "2026-03-09 06:00", "2026-03-09 06:30"],
    );
    check(
        "30 1-3 * * *",
        NY,
        from,
        to,
        &[
            "2026-03-08 06:30", // 01:30 EST
            "2026-03-08 07:00", // 02:30 skipped -> 03:00 EDT
            "2026-03-08 07:30", // 03:30 EDT
            "2026-03-09 05:30",
            "2026-03-09 06:30",
            "2026-03-09 07:30",
        ],
    );
    // A step in the minute with fixed hours is fixed times: 02:00, 02:30 and 03:00 are one.
    check(
        "*/30 1-3 * * *",
        NY,
        from,
        to,
        &[
            "2026-03-08 06:00", // 01:00 EST
            "2026-03-08 06:30", // 01:30 EST
            "2026-03-08 07:00", // 02:00, 02:30 skipped and 03:00 EDT
            "2026-03-08 07:30", // 03:30 EDT
            "2026-03-09 05:00",
            "2026-03-09 05:30",
            "2026-03-09 06:00",
            "2026-03-09 06:30",
            "2026-03-09 07:00",
            "2026-03-09 07:30",
        ],
    );
    // A wildcard hour follows the clock: one run every real hour, no 02:15.
    check(
        "15 * * * *",
        NY,
        "2026-03-08 04:00",
        "2026-03-08 09:00",
        &[
            "2026-03-08 04:15",
            "2026-03-08 05:15",
            "2026-03-08 06:15", // 01:15 EST
            "2026-03-08 07:15", // 03:15 EDT
            "2026-03-08 08:15",
        ],
    );
    // So does a stepped hour: 02:30 does not exist that day and is not caught up.
    check(
        "30 */2 * * *",
        NY,
        "2026-03-08 04:00",
        "2026-03-08 10:00",
        &["2026-03-08 05:30", "2026-03-08 08:30"],
    );
}

#[test]
fn new_york_fall_back_runs_each_fixed_slot_of_the_repeated_hour_once() {
    let (from, to) = ("2026-10-31 12:00", "2026-11-02 12:00");
    // 01:30 happens at 05:30 (EDT) and 06:30 (EST): only the first.
    check(
        "30 1 * * *",
        NY,
        from,
        to,
        &["2026-11-01 05:30", "2026-11-02 06:30"],
    );
    check(
        "0 1,13 * * *",
        NY,
        from,
        to,
        &[
            "2026-10-31 17:00", // 13:00 EDT
            "2026-11-01 05:00", // 01:00 EDT, not again at 01:00 EST
            "2026-11-01 18:00", // 13:00 EST
            "2026-11-02 06:00", // 01:00 EST
        ],
    );
    check(
        "0,30 1 * * *",
        NY,
        from,
        to,
        &[
            "2026-11-01 05:00",
            "2026-11-01 05:30",
            "2026-11-02 06:00",
            "2026-11-02 06:30",
        ],
    );
    // The example: no second digest at 01:30 EST.
    check(
        "30 1-3 * * *",
        NY,
        from,
        to,
        &[
            "2026-11-01 05:30", // 01:30 EDT
            "2026-11-01 07:30", // 02:30 EST
            "2026-11-01 08:30", // 03:30 EST
            "2026-11-02 06:30",
            "2026-11-02 07:30",
            "2026-11-02 08:30",
        ],
    );
    check(
        "*/30 1-3 * * *",
        NY,
        from,
        to,
        &[
            "2026-11-01 05:00",
            "2026-11-01 05:30",
            "2026-11-01 07:00", // 02:00 EST
            "2026-11-01 07:30",
            "2026-11-01 08:00",
            "2026-11-01 08:30",
            "2026-11-02 06:00",
            "2026-11-02 06:30",
            "2026-11-02 07:00",
            "2026-11-02 07:30",
            "2026-11-02 08:00",
            "2026-11-02 08:30",
        ],
    );
    // Hourly keeps running every real hour, through both passes of 01:15.
    check(
        "15 * * * *",
        NY,
        "2026-11-01 03:00",
        "2026-11-01 08:00",
        &[
            "2026-11-01 03:15",
            "2026-11-01 04:15",
            "2026-11-01 05:15", // 01:15 EDT
            "2026-11-01 06:15", // 01:15 EST
            "2026-11-01 07:15",
        ],
    );
}

#[test]
fn london_spring_forward_runs_every_skipped_fixed_slot_when_the_gap_ends() {
    let (from, to) = ("2026-03-28 12:00", "2026-03-30 11:00");
    check(
        "30 1 * * *",
        LONDON,
        from,
        to,
        &["2026-03-29 01:00", "2026-03-30 00:30"],
    );
    check(
        "0 1,13 * * *",
        LONDON,
        from,
        to,
        &[
            "2026-03-28 13:00", // 13:00 GMT
            "2026-03-29 01:00", // 01:00 skipped -> 02:00 BST
            "2026-03-29 12:00", // 13:00 BST
            "2026-03-30 00:00", // 01:00 BST
        ],
    );
    check(
        "0,30 1 * * *",
        LONDON,
        from,
        to,
        &["2026-03-29 01:00", "2026-03-30 00:00", "2026-03-30 00:30"],
    );
    check(
        "15 0-2 * * *",
        LONDON,
        from,
        to,
        &[
            "2026-03-29 00:15", // 00:15 GMT
            "2026-03-29 01:00", // 01:15 skipped -> 02:00 BST
            "2026-03-29 01:15", // 02:15 BST
            "2026-03-29 23:15", // 00:15 BST on the 30th
            "2026-03-30 00:15",
            "2026-03-30 01:15",
        ],
    );
    // 01:00, 01:20 and 01:40 all fall in the gap: one digest when it ends.
    check(
        "*/20 1 * * *",
        LONDON,
        from,
        to,
        &[
            "2026-03-29 01:00",
            "2026-03-30 00:00",
            "2026-03-30 00:20",
            "2026-03-30 00:40",
        ],
    );
    check(
        "*/30 * * * *",
        LONDON,
        "2026-03-28 23:50",
        "2026-03-29 02:00",
        &[
            "2026-03-29 00:00",
            "2026-03-29 00:30",
            "2026-03-29 01:00", // 02:00 BST
            "2026-03-29 01:30",
            "2026-03-29 02:00",
        ],
    );
}

#[test]
fn london_fall_back_runs_each_fixed_slot_of_the_repeated_hour_once() {
    let (from, to) = ("2026-10-24 12:30", "2026-10-26 11:00");
    check(
        "30 1 * * *",
        LONDON,
        from,
        to,
        &["2026-10-25 00:30", "2026-10-26 01:30"],
    );
    check(
        "0,30 1 * * *",
        LONDON,
        from,
        to,
        &[
            "2026-10-25 00:00",
            "2026-10-25 00:30",
            "2026-10-26 01:00",
            "2026-10-26 01:30",
        ],
    );
    check(
        "0 1,13 * * *",
        LONDON,
        from,
        to,
        &["2026-10-25 00:00", "2026-10-25 13:00", "2026-10-26 01:00"],
    );
    check(
        "45 0-2 * * *",
        LONDON,
        from,
        to,
        &[
            "2026-10-24 23:45", // 00:45 BST
            "2026-10-25 00:45", // 01:45 BST, not again at 01:45 GMT
            "2026-10-25 02:45", // 02:45 GMT
            "2026-10-26 00:45",
            "2026-10-26 01:45",
            "2026-10-26 02:45",
        ],
    );
    check(
        "*/30 1-2 * * *",
        LONDON,
        from,
        to,
        &[
            "2026-10-25 00:00",
            "2026-10-25 00:30",
            "2026-10-25 02:00",
            "2026-10-25 02:30",
            "2026-10-26 01:00",
            "2026-10-26 01:30",
            "2026-10-26 02:00",
            "2026-10-26 02:30",
        ],
    );
    check(
        "*/30 * * * *",
        LONDON,
        "2026-10-24 23:50",
        "2026-10-25 02:00",
        &[
            "2026-10-25 00:00", // 01:00 BST
            "2026-10-25 00:30",
            "2026-10-25 01:00", // 01:00 GMT
            "2026-10-25 01:30",
            "2026-10-25 02:00",
        ],
    );
}

#[test]
fn sydney_fall_back_runs_each_fixed_slot_of_the_repeated_hour_once() {
    let (from, to) = ("2026-04-03 12:30", "2026-04-05 12:00");
    // 02:30 on 5 April happens at 15:30 (AEDT) and 16:30 (AEST) UTC on the 4th.
    check(
        "30 2 * * *",
        SYDNEY,
        from,
        to,
        &["2026-04-03 15:30", "2026-04-04 15:30"],
    );
    check(
        "0 2,14 * * *",
        SYDNEY,
        from,
        to,
        &[
            "2026-04-03 15:00", // 4 Apr 02:00 AEDT
            "2026-04-04 03:00", // 4 Apr 14:00 AEDT
            "2026-04-04 15:00", // 5 Apr 02:00 AEDT, not again at 02:00 AEST
            "2026-04-05 04:00", // 5 Apr 14:00 AEST
        ],
    );
    check(
        "30 1-3 * * *",
        SYDNEY,
        from,
        to,
        &[
            "2026-04-03 14:30",
            "2026-04-03 15:30",
            "2026-04-03 16:30",
            "2026-04-04 14:30", // 01:30 AEDT
            "2026-04-04 15:30", // 02:30 AEDT
            "2026-04-04 17:30", // 03:30 AEST
        ],
    );
    check(
        "*/30 2 * * *",
        SYDNEY,
        from,
        to,
        &[
            "2026-04-03 15:00",
            "2026-04-03 15:30",
            "2026-04-04 15:00",
            "2026-04-04 15:30",
        ],
    );
    check(
        "0,45 2 * * *",
        SYDNEY,
        from,
        to,
        &[
            "2026-04-03 15:00",
            "2026-04-03 15:45",
            "2026-04-04 15:00",
            "2026-04-04 15:45",
        ],
    );
    check(
        "0 * * * *",
        SYDNEY,
        "2026-04-04 13:30",
        "2026-04-04 18:30",
        &[
            "2026-04-04 14:00",
            "2026-04-04 15:00", // 02:00 AEDT
            "2026-04-04 16:00", // 02:00 AEST
            "2026-04-04 17:00",
            "2026-04-04 18:00",
        ],
    );
}

#[test]
fn sydney_spring_forward_runs_every_skipped_fixed_slot_when_the_gap_ends() {
    let (from, to) = ("2026-10-02 12:30", "2026-10-04 12:00");
    check(
        "30 2 * * *",
        SYDNEY,
        from,
        to,
        &["2026-10-02 16:30", "2026-10-03 16:00"],
    );
    check(
        "0,30 2 * * *",
        SYDNEY,
        from,
        to,
        &["2026-10-02 16:00", "2026-10-02 16:30", "2026-10-03 16:00"],
    );
    check(
        "0 1-3 * * *",
        SYDNEY,
        from,
        to,
        &[
            "2026-10-02 15:00",
            "2026-10-02 16:00",
            "2026-10-02 17:00",
            "2026-10-03 15:00", // 4 Oct 01:00 AEST
            "2026-10-03 16:00", // 02:00 skipped, and 03:00 AEDT: one digest
        ],
    );
    check(
        "*/30 1-3 * * *",
        SYDNEY,
        from,
        to,
        &[
            "2026-10-02 15:00",
            "2026-10-02 15:30",
            "2026-10-02 16:00",
            "2026-10-02 16:30",
            "2026-10-02 17:00",
            "2026-10-02 17:30",
            "2026-10-03 15:00",
            "2026-10-03 15:30",
            "2026-10-03 16:00", // 02:00, 02:30 skipped and 03:00 AEDT
            "2026-10-03 16:30", // 03:30 AEDT
        ],
    );
    check(
        "0 2,14 * * *",
        SYDNEY,
        from,
        to,
        &[
            "2026-10-02 16:00", // 3 Oct 02:00 AEST
            "2026-10-03 04:00", // 3 Oct 14:00 AEST
            "2026-10-03 16:00", // 4 Oct 02:00 skipped -> 03:00 AEDT
            "2026-10-04 03:00", // 4 Oct 14:00 AEDT
        ],
    );
    check(
        "0 * * * *",
        SYDNEY,
        "2026-10-03 13:30",
        "2026-10-03 18:30",
        &[
            "2026-10-03 14:00",
            "2026-10-03 15:00", // 01:00 AEST
            "2026-10-03 16:00", // 03:00 AEDT
            "2026-10-03 17:00",
            "2026-10-03 18:00",
        ],
    );
}

#[test]
fn a_zone_without_dst_keeps_every_slot_where_it_is() {
    // Karachi has no clock change; the same lines give plain UTC+5 slots all year.
    check(
        "*/30 1-3 * * *",
        "Asia/Karachi",
        "2026-03-07 12:00",
        "2026-03-08 12:00",
        &[
            "2026-03-07 20:00",
            "2026-03-07 20:30",
            "2026-03-07 21:00",
            "2026-03-07 21:30",
            "2026-03-07 22:00",
            "2026-03-07 22:30",
        ],
    );
}

#[test]
fn a_change_of_three_hours_or_more_is_a_clock_correction_not_dst() {
    // Antarctica/Casey went from UTC+8 to UTC+11 at 2009-10-17 18:00 UTC (02:00 -> 05:00) and
    // back at 2010-03-04 15:00 UTC (02:00 -> 23:00). cron(8) treats such jumps as corrections:
    // the skipped 03:30 is not caught up, and the repeated 00:30 runs in both passes.
    check(
        "30 3 * * *",
        "Antarctica/Casey",
        "2009-10-16 12:00",
        "2009-10-18 20:00",
        &["2009-10-16 19:30", "2009-10-18 16:30"],
    );
    check(
        "30 0 * * *",
        "Antarctica/Casey",
        "2010-03-03 12:00",
        "2010-03-05 12:00",
        &["2010-03-03 13:30", "2010-03-04 13:30", "2010-03-04 16:30"],
    );
}

#[test]
fn a_schedule_that_never_fires_is_refused_when_a_list_is_created_or_updated() {
    let cli = Cli::new();
    for line in ["0 7 31 2 *", "0 0 30 2 *"] {
        let e = cli.fail(["lists", "create", "daily", "--schedule", line]);
        assert!(e.contains("it never fires"), "{line}: {e}");
    }
    let lists = cli.json(["lists", "list", "--json"]);
    assert_eq!(
        lists.as_array().map(Vec::len),
        Some(0),
        "nothing was created"
    );

    cli.ok(["lists", "create", "daily", "--schedule", "0 7 * * *"]);
    let e = cli.fail(["lists", "update", "daily", "--schedule", "0 7 31 2 *"]);
    assert!(e.contains("it never fires"), "{e}");
    let daily = cli.json(["lists", "show", "daily", "--json"]);
    assert_eq!(daily["schedule"], "0 7 * * *", "the old schedule stays");
}

#[test]
fn a_bad_schedule_field_is_named_on_the_command_line() {
    let cli = Cli::new();
    let e = cli.fail(["lists", "create", "daily", "--schedule", "0 12 *,10 * 2"]);
    assert!(e.contains("the day-of-month field \"*,10\""), "{e}");
}

#[tokio::test]
async fn a_stored_schedule_that_never_fires_is_reported_not_silently_ignored() {
    // A list saved before schedules were checked for ever firing, and a zone edited by hand.
    let cli = Cli::new();
    cli.ok(["lists", "create", "daily", "--schedule", "0 7 * * *"]);
    let url = format!("sqlite://{}", cli.db().display());
    let pool = sqlx::SqlitePool::connect(&url).await.unwrap();
    sqlx::query(
        "UPDATE lists SET schedule = '0 7 31 2 *', timezone = 'Mars/Olympus' WHERE slug = 'daily'",
    )
    .execute(&pool)
    .await
    .unwrap();
    pool.close().await;

    let out = cli.run(["lists", "show", "daily"]);
    assert!(out.status.success(), "{}", support::cli::show(&out));
    let e = support::cli::stderr(&out);
    assert!(
        e.contains("warning: list daily gets no scheduled digests") && e.contains("never fires"),
        "{e}"
    );
    assert!(
        e.contains("warning: list daily has its schedule read in UTC") && e.contains("--timezone"),
        "{e}"
    );

    // The daemon says so when it starts, rather than never sending in silence.
    let mut daemon = cli
        .command()
        .arg("run")
        .env("DISPATCH_WEB_BIND", "127.0.0.1:0")
        .env("DISPATCH_CONSOLE_BIND", "127.0.0.1:0")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = daemon.stderr.take().unwrap();
    let seen = tokio::task::spawn_blocking(move || {
        use std::io::BufRead;
        let mut seen = String::new();
        for line in std::io::BufReader::new(stderr)
            .lines()
            .map_while(Result::ok)
        {
            seen.push_str(&line);
            seen.push('\n');
            if seen.contains("gets no scheduled digests") && seen.contains("read in UTC") {
                break;
            }
        }
        seen
    });
    let seen = tokio::time::timeout(std::time::Duration::from_secs(60), seen).await;
    let _ = daemon.kill();
    let _ = daemon.wait();
    let seen = seen
        .expect("the daemon's start warnings within 60 s")
        .unwrap();
    assert!(
        seen.contains("list daily gets no scheduled digests")
            && seen.contains("list daily has its schedule read in UTC"),
        "{seen}"
    );
}
