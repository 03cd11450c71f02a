//! Dates and times from CLDR data (ICU4X compiled data), in the Gregorian calendar that
//! newspapers date by, with the list's digits.

use chrono::{Datelike, NaiveDate, NaiveTime, Timelike};
use icu_calendar::Gregorian;
use icu_datetime::fieldsets::{E, MD, T, Y};
use icu_datetime::input::{Date, Time};
use icu_datetime::{FixedCalendarDateTimeFormatter, NoCalendarFormatter};
use icu_locale_core::Locale;

use super::{Arg, Digits, Language, Strings};

impl Strings<'_> {
    /// The ICU locale: the language, 24-hour clock (as news sites print times), and the digits.
    fn locale(&self) -> Locale {
        let nu = match self.digits {
            Digits::Latn => "latn",
            Digits::Arabext => "arabext",
        };
        // International English (en-001) dates as "1 December 2026", not the US order.
        let base = match self.lang {
            Language::En => "en-001",
            Language::Ur => "ur",
        };
        let tag = format!("{base}-u-hc-h23-nu-{nu}");
        // Invariant: built from a shipped language's tag and two fixed keywords.
        let fallback = match self.lang {
            Language::En => icu_locale_core::locale!("en"),
            Language::Ur => icu_locale_core::locale!("ur"),
        };
        tag.parse().unwrap_or(fallback)
    }

    /// `1 December 2026`, `1 دسمبر 2026`: CLDR's day and month name and its year, put together
    /// by the catalogue's `date-long` (CLDR's Urdu pattern has a comma before the year that
    /// Pakistani papers do not print).
    pub fn date_long(&self, d: NaiveDate) -> String {
        let Some(date) = gregorian(d) else {
            return d.to_string();
        };
        let locale = self.locale();
        let day_month = FixedCalendarDateTimeFormatter::<Gregorian, MD>::try_new(
            locale.clone().into(),
            MD::long(),
        )
        .map(|f| f.format(&date).to_string());
        let year =
            FixedCalendarDateTimeFormatter::<Gregorian, Y>::try_new(locale.into(), Y::long())
                .map(|f| f.format(&date).to_string());
        match (day_month, year) {
            (Ok(day_month), Ok(year)) => self.format(
                "date-long",
                &[
                    ("day_month", Arg::Str(&day_month)),
                    ("year", Arg::Str(&year)),
                ],
            ),
            _ => d.to_string(),
        }
    }

    /// `Tuesday 1 December 2026`, `منگل، 1 دسمبر 2026` (catalogue message `date-with-weekday`).
    pub fn date_with_weekday(&self, d: NaiveDate) -> String {
        let long = self.date_long(d);
        let Some(date) = gregorian(d) else {
            return long;
        };
        match FixedCalendarDateTimeFormatter::<Gregorian, E>::try_new(
            self.locale().into(),
            E::long(),
        ) {
            Ok(f) => self.format(
                "date-with-weekday",
                &[
                    ("weekday", Arg::Str(&f.format(&date).to_string())),
                    ("date", Arg::Str(&long)),
                ],
            ),
            Err(_) => long,
        }
    }

    /// Day and month, for a story of an earlier day: `27 Nov`.
    pub fn day_month(&self, d: NaiveDate) -> String {
        let Some(date) = gregorian(d) else {
            return d.to_string();
        };
        FixedCalendarDateTimeFormatter::<Gregorian, MD>::try_new(self.locale().into(), MD::medium())
            .map(|f| f.format(&date).to_string())
            .unwrap_or_else(|_| d.to_string())
    }

    /// Hours and minutes on the 24-hour clock: `07:30`, `۰۷:۳۰`.
    pub fn time(&self, t: NaiveTime) -> String {
        let fallback = || self.digits_of(t.format("%H:%M").to_string());
        // Invariant-free: chrono's hour and minute are always in ICU's ranges.
        let Ok(time) = Time::try_new(t.hour() as u8, t.minute() as u8, 0, 0) else {
            return fallback();
        };
        NoCalendarFormatter::<T>::try_new(self.locale().into(), T::hm())
            .map(|f| f.format(&time).to_string())
            .unwrap_or_else(|_| fallback())
    }
}

fn gregorian(d: NaiveDate) -> Option<Date<Gregorian>> {
    let month = u8::try_from(d.month()).ok()?;
    let day = u8::try_from(d.day()).ok()?;
    Date::try_new_gregorian(d.year(), month, day).ok()
}
