//! List schedules as the command line shows them: the next slots in the list's time zone,
//! invalid crontab lines refused with what is wrong, and 0 and 7 both meaning Sunday.

use crate::next_slots;
use crate::support::cli::Cli;
use chrono::{Datelike, Timelike, Utc, Weekday};

#[test]
fn weekday_schedule_in_karachi_gives_weekday_slots_at_seven() {
    let cli = Cli::new();
    let out = cli.ok([
        "lists",
        "create",
        "daily",
        "--schedule",
        "0 7 * * 1-5",
        "--timezone",
        "Asia/Karachi",
    ]);
    assert!(
        out.contains("next sends:") && out.contains("07:00"),
        "{out}"
    );
    let shown = cli.json(["lists", "show", "daily", "--json"]);
    assert_eq!(shown["schedule"], "0 7 * * 1-5");
    for s in shown["next_slots"].as_array().unwrap() {
        assert!(s.as_str().unwrap().ends_with("T07:00:00+05:00"), "{s}");
    }
    let slots = next_slots(&cli, "daily");
    assert_eq!(slots.len(), 5);
    let now = Utc::now();
    let mut days = Vec::new();
    for (i, t) in slots.iter().enumerate() {
        assert_eq!(t.offset().local_minus_utc(), 5 * 3600, "{t}");
        assert_eq!((t.hour(), t.minute(), t.second()), (7, 0, 0), "{t}");
        assert!(
            !matches!(t.weekday(), Weekday::Sat | Weekday::Sun),
            "{t} is a weekend"
        );
        assert!(*t > now, "{t} is not in the future");
        if i > 0 {
            assert!(*t > slots[i - 1], "slots in order");
            assert!((*t - slots[i - 1]).num_days() <= 3, "no weekday skipped");
        }
        days.push(t.weekday());
    }
    // Five consecutive weekday slots cover each of Monday to Friday once.
    days.sort_by_key(Weekday::num_days_from_monday);
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
}

#[test]
fn invalid_schedules_are_rejected_with_what_is_wrong() {
    let cli = Cli::new();
    let e = cli.fail(["lists", "create", "daily", "--schedule", "0 7 * *"]);
    assert!(
        e.contains("\"0 7 * *\"") && e.contains("expected 5 fields") && e.contains("found 4"),
        "{e}"
    );
    let e = cli.fail(["lists", "create", "daily", "--schedule", "61 7 * * *"]);
    assert!(
        e.contains("\"61 7 * * *\"") && e.contains("the minute field allows 0-59, not 61"),
        "{e}"
    );
    let e = cli.fail(["lists", "create", "daily", "--timezone", "Asia/Karach"]);
    assert!(e.contains("unknown time zone \"Asia/Karach\""), "{e}");
    assert_eq!(cli.json(["lists", "list", "--json"]), serde_json::json!([]));

    // An update with a bad schedule leaves the list as it was.
    cli.ok(["lists", "create", "daily", "--schedule", "0 7 * * *"]);
    let e = cli.fail(["lists", "update", "daily", "--schedule", "0 25 * * *"]);
    assert!(e.contains("\"0 25 * * *\""), "{e}");
    assert_eq!(
        cli.json(["lists", "show", "daily", "--json"])["schedule"],
        "0 7 * * *"
    );
}

#[test]
fn zero_and_seven_both_mean_sunday() {
    let cli = Cli::new();
    for (slug, line) in [("sun0", "0 7 * * 0"), ("sun7", "0 7 * * 7")] {
        cli.ok([
            "lists",
            "create",
            slug,
            "--schedule",
            line,
            "--timezone",
            "Asia/Karachi",
        ]);
    }
    let zero = next_slots(&cli, "sun0");
    let seven = next_slots(&cli, "sun7");
    assert_eq!(zero.len(), 5);
    assert_eq!(zero, seven);
    for t in &zero {
        assert_eq!(t.weekday(), Weekday::Sun, "{t}");
        assert_eq!((t.hour(), t.minute()), (7, 0), "{t}");
    }
    for w in zero.windows(2) {
        assert_eq!((w[1] - w[0]).num_days(), 7);
    }
}
