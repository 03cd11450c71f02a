//! Item dates in RSS and Atom feeds: read as leniently as feed-rs reads them, but a date that
//! is present and cannot be read, or lies outside the years the store holds, is reported
//! instead of being silently replaced by the import time.
//!
//! feed-rs hands every date text to one pluggable function and keeps only its answer, an
//! `Option`; its own lenient reader (RFC 3339, RFC 2822 and RFC 1123 with the usual feed
//! mistakes fixed) is private. So [`DateReader::parser`] asks feed-rs itself through its
//! public parser, with a one-element Atom document around the text, and answers a date that
//! failed with a marker from the far past that no feed can produce: the marker's distance
//! from [`DateTime::MIN_UTC`] is the failure's index in the reader's list, where the text and
//! the reason wait for [`DateReader::resolve`].

use std::sync::{Arc, Mutex, PoisonError};

use chrono::{DateTime, Datelike, Duration, Utc};

use crate::domain::{db_time, echo, storable_time};

/// Markers are the earliest instants chrono has; no date text reaches years before this.
const MARKER_YEARS_BELOW: i32 = -100_000;

/// Collects the date texts of one feed that could not be used.
#[derive(Debug, Default)]
pub(super) struct DateReader {
    failures: Arc<Mutex<Vec<String>>>,
}

impl DateReader {
    /// The function for `feed_rs::parser::Builder::timestamp_parser`.
    pub(super) fn parser(&self) -> impl Fn(&str) -> Option<DateTime<Utc>> + Send + Sync + 'static {
        let failures = Arc::clone(&self.failures);
        move |text: &str| {
            let reason = match lenient(text) {
                Some(t) => match storable_time(t) {
                    Ok(t) => return Some(t),
                    Err(_) => format!(
                        "the date {:?} is {} in UTC, outside the years 0000 to 9999 that can be stored",
                        echo(text.trim()),
                        db_time(t)
                    ),
                },
                None => format!(
                    "the date {:?} cannot be read; write it as in RFC 822 (\"Fri, 27 Nov 2026 09:30:00 +0500\") or RFC 3339 (\"2026-11-27T09:30:00+05:00\")",
                    echo(text.trim())
                ),
            };
            // A poisoned list only means another parse panicked; the list itself is intact.
            let mut list = failures.lock().unwrap_or_else(PoisonError::into_inner);
            list.push(reason);
            let index = i64::try_from(list.len() - 1).ok()?;
            DateTime::<Utc>::MIN_UTC.checked_add_signed(Duration::seconds(index))
        }
    }

    /// An entry's date as feed-rs returned it: `Ok` with a usable date or none at all, `Err`
    /// with the reason when it holds a marker for a failed text.
    pub(super) fn resolve(
        &self,
        t: Option<DateTime<Utc>>,
    ) -> Result<Option<DateTime<Utc>>, String> {
        let Some(t) = t else { return Ok(None) };
        if t.year() >= MARKER_YEARS_BELOW {
            return Ok(Some(t));
        }
        let index = (t - DateTime::<Utc>::MIN_UTC).num_seconds();
        let list = self.failures.lock().unwrap_or_else(PoisonError::into_inner);
        Err(usize::try_from(index)
            .ok()
            .and_then(|i| list.get(i).cloned())
            .unwrap_or_else(|| "the date cannot be read".to_owned()))
    }
}

/// feed-rs's lenient reading of one date text (see the module documentation).
fn lenient(text: &str) -> Option<DateTime<Utc>> {
    let mut doc = String::with_capacity(text.len() + 80);
    doc.push_str("<feed xmlns=\"http://www.w3.org/2005/Atom\"><updated>");
    for c in text.chars() {
        match c {
            '&' => doc.push_str("&amp;"),
            '<' => doc.push_str("&lt;"),
            '>' => doc.push_str("&gt;"),
            c => doc.push(c),
        }
    }
    doc.push_str("</updated></feed>");
    feed_rs::parser::parse(doc.as_bytes()).ok()?.updated
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_are_read_leniently_and_failures_are_kept() {
        let reader = DateReader::default();
        let parse = reader.parser();
        let good = parse("Fri, 27 Nov 2026 14:30:00 +0500");
        assert_eq!(
            reader.resolve(good).unwrap().map(db_time).as_deref(),
            Some("2026-11-27T09:30:00Z")
        );
        // feed-rs's fixes still apply: a long weekday, "UTC".
        assert!(parse("Thursday, 26 Nov 2026 18:10:00 UTC").is_some());
        let garbage = parse("next tuesday <b>");
        let too_late = parse("Fri, 31 Dec 9999 23:59:59 -2359");
        assert_eq!(
            reader.resolve(garbage).unwrap_err(),
            "the date \"next tuesday <b>\" cannot be read; write it as in RFC 822 (\"Fri, 27 Nov 2026 09:30:00 +0500\") or RFC 3339 (\"2026-11-27T09:30:00+05:00\")"
        );
        assert_eq!(
            reader.resolve(too_late).unwrap_err(),
            "the date \"Fri, 31 Dec 9999 23:59:59 -2359\" is +10000-01-01T23:58:59Z in UTC, outside the years 0000 to 9999 that can be stored"
        );
        assert_eq!(reader.resolve(None), Ok(None));
    }
}
