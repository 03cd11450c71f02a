use chrono::{NaiveDate, NaiveTime};

use super::*;

fn dec1() -> NaiveDate {
    NaiveDate::from_ymd_opt(2026, 12, 1).unwrap()
}

#[test]
fn shipped_catalogue_parses() {
    for lang in Language::ALL {
        let res = FluentResource::try_new(lang.source().to_owned());
        assert!(
            res.is_ok(),
            "locales/{lang}.ftl: {:?}",
            res.err().map(|e| e.1)
        );
        let mut b = new_bundle(lang, Digits::Latn);
        assert!(
            b.add_resource(res.unwrap()).is_ok(),
            "{lang}: duplicate ids"
        );
    }
}

#[test]
fn every_shipped_language_has_every_message() {
    let all: std::collections::BTreeSet<String> = Language::ALL
        .into_iter()
        .flat_map(Catalogue::shipped_ids)
        .collect();
    assert!(all.len() > 10, "{all:?}");
    for lang in Language::ALL {
        let ids: std::collections::BTreeSet<String> =
            Catalogue::shipped_ids(lang).into_iter().collect();
        let missing: Vec<&String> = all.difference(&ids).collect();
        assert!(missing.is_empty(), "locales/{lang}.ftl lacks {missing:?}");
    }
}

#[test]
fn plurals_follow_the_language() {
    let cat = Catalogue::shipped(Digits::Latn);
    let en = cat.strings(Language::En);
    let args = |n| {
        [
            ("list", Arg::Str("Daily")),
            ("date", Arg::Str("1 December 2026")),
            ("count", Arg::Num(n)),
        ]
    };
    assert_eq!(
        en.format("subject-digest", &args(1)),
        "Daily — 1 December 2026 — 1 story"
    );
    assert_eq!(
        en.format("subject-digest", &args(12)),
        "Daily — 1 December 2026 — 12 stories"
    );
    let ur = cat.strings(Language::Ur);
    assert!(ur.format("subject-digest", &args(1)).ends_with("1 خبر"));
    assert!(ur.format("subject-digest", &args(12)).ends_with("12 خبریں"));
}

#[test]
fn arabext_digits_reach_fluent_numbers_and_dates() {
    let cat = Catalogue::shipped(Digits::Arabext);
    let ur = cat.strings(Language::Ur);
    let s = ur.format(
        "more-in",
        &[("count", Arg::Num(12)), ("category", Arg::Str("کھیل"))],
    );
    assert_eq!(s, "کھیل کی مزید ۱۲ خبریں");
    assert_eq!(ur.date_long(dec1()), "۱ دسمبر ۲۰۲۶");
    assert_eq!(ur.time(NaiveTime::from_hms_opt(7, 5, 0).unwrap()), "۰۷:۰۵");
    // English keeps 0–9 whatever the setting.
    assert_eq!(
        cat.strings(Language::En).date_long(dec1()),
        "1 December 2026"
    );
}

#[test]
fn urdu_dates_come_from_cldr_in_latin_digits_by_default() {
    let cat = Catalogue::shipped(Digits::Latn);
    let ur = cat.strings(Language::Ur);
    assert_eq!(ur.date_long(dec1()), "1 دسمبر 2026");
    assert_eq!(
        ur.time(NaiveTime::from_hms_opt(19, 30, 0).unwrap()),
        "19:30"
    );
    let en = cat.strings(Language::En);
    assert_eq!(en.date_with_weekday(dec1()), "Tuesday, 1 December 2026");
    assert_eq!(ur.date_with_weekday(dec1()), "منگل، 1 دسمبر 2026");
    assert_eq!(en.time(NaiveTime::from_hms_opt(7, 30, 0).unwrap()), "07:30");
    assert_eq!(en.day_month(dec1()), "1 Dec");
}

#[test]
fn operator_overrides_replace_messages_and_reject_unknown_ids() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("ur.ftl"), "greeting = آداب{ $name }،\n").unwrap();
    let cat = Catalogue::load(Some(dir.path()), Digits::Latn).unwrap();
    assert_eq!(
        cat.strings(Language::Ur)
            .format("greeting", &[("name", Arg::Str(" عائشہ"))]),
        "آداب عائشہ،"
    );
    assert_eq!(
        cat.strings(Language::En)
            .format("greeting", &[("name", Arg::Str(""))]),
        "Hello,"
    );

    std::fs::write(dir.path().join("en.ftl"), "greting = Hi\n").unwrap();
    let err = Catalogue::load(Some(dir.path()), Digits::Latn)
        .unwrap_err()
        .to_string();
    assert!(err.contains("en.ftl") && err.contains("greting"), "{err}");
    std::fs::write(dir.path().join("en.ftl"), "greeting = {\n").unwrap();
    let err = Catalogue::load(Some(dir.path()), Digits::Latn)
        .unwrap_err()
        .to_string();
    assert!(err.contains("en.ftl"), "{err}");
}

#[test]
fn language_tags_parse_to_shipped_languages() {
    assert_eq!(Language::parse("UR"), Some(Language::Ur));
    assert_eq!(Language::parse("en-GB"), Some(Language::En));
    assert_eq!(Language::parse("fr"), None);
    assert!("fr".parse::<Language>().unwrap_err().contains("en, ur"));
}

#[test]
fn english_words_are_listed_for_the_no_english_test() {
    let words = Catalogue::shipped_words(Language::En);
    assert!(words.iter().any(|w| w == "Unsubscribe"), "{words:?}");
    assert!(words.iter().any(|w| w.contains("more in")), "{words:?}");
}
