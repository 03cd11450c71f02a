//! Free text entering the system: subscriber names, article titles, authors and summaries.
//!
//! Every path that takes such text in (the CLI, CSV imports, feeds, the web and the HTTP API
//! to come) passes it through [`clean_text`] or [`clean_text_within`], so a name typed on the
//! command line is stored exactly as the same name in a CSV file would be, and the same
//! lengths apply everywhere ([`MAX_TITLE_CHARS`] and the other limits).
//!
//! Cleaning makes one line of display text that cannot drive a terminal or a mail header:
//! line breaks, tabs and other whitespace runs become one space; ESC becomes a word break so
//! an escape sequence such as `ESC [2J` is left as harmless text; every other C0/C1 control
//! character is dropped, as are bidi embeddings, overrides and isolates (U+202A–U+202E,
//! U+2066–U+2069, which would reverse the rest of a line) and the byte-order mark. Directional
//! *marks* and ZWJ/ZWNJ stay: Urdu needs them. The ends are trimmed.

/// The longest article title kept, in characters.
pub const MAX_TITLE_CHARS: usize = 500;
/// The longest article summary kept, in characters.
pub const MAX_SUMMARY_CHARS: usize = 1000;
/// The longest author name kept, in characters.
pub const MAX_AUTHOR_CHARS: usize = 200;
/// The longest subscriber name kept, in characters.
pub const MAX_NAME_CHARS: usize = 200;

/// What a character becomes in cleaned text.
enum Class {
    Keep,
    /// Separates words: whitespace, line and paragraph separators, ESC.
    Space,
    /// Removed without a trace: other controls, bidi overrides, the BOM.
    Drop,
}

fn class(c: char) -> Class {
    if c.is_whitespace() || c == '\u{1b}' {
        Class::Space
    } else if c.is_control()
        || matches!(c, '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}' | '\u{FEFF}')
    {
        Class::Drop
    } else {
        Class::Keep
    }
}

/// Cleans `raw` into one line (whitespace runs and line breaks become one space, ESC a word
/// break; other control characters, bidi overrides and the BOM go; the ends are trimmed) and
/// cuts it to at most `max_chars` characters, the last of which is then `…`.
///
/// For text we cannot send back to its author, such as third-party feeds: a long title is
/// shortened rather than lost.
pub fn clean_text(raw: &str, max_chars: usize) -> String {
    clean(raw, max_chars).0
}

/// [`clean_text`], and whether it cut the text.
fn clean(raw: &str, max_chars: usize) -> (String, bool) {
    if max_chars == 0 {
        return (
            String::new(),
            raw.chars().any(|c| matches!(class(c), Class::Keep)),
        );
    }
    let mut out = String::with_capacity(raw.len().min(max_chars.saturating_mul(4)));
    let mut chars = 0;
    let mut space = false;
    for c in raw.chars() {
        match class(c) {
            Class::Space => {
                space = true;
                continue;
            }
            Class::Drop => continue,
            Class::Keep => {}
        }
        let gap = space && chars > 0;
        let needed = if gap { 2 } else { 1 };
        if chars + needed > max_chars {
            // Leave room for the ellipsis within the cap.
            while chars >= max_chars {
                out.pop();
                chars -= 1;
            }
            let trimmed = out.trim_end().len();
            out.truncate(trimmed);
            out.push('…');
            return (out, true);
        }
        if gap {
            out.push(' ');
            chars += 1;
        }
        space = false;
        out.push(c);
        chars += 1;
    }
    (out, false)
}

/// Text that is longer than its limit once cleaned.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("is {chars} characters long; at most {max} are allowed")]
pub struct TextTooLong {
    /// Its length after cleaning, in characters.
    pub chars: usize,
    /// The limit.
    pub max: usize,
}

/// Cleans `raw` like [`clean_text`] but refuses it, instead of cutting it, when the cleaned
/// text is longer than `max_chars`.
///
/// For text typed by an admin (the CLI, a CSV file), who can shorten it and would not expect
/// a stored title to differ from the one given.
pub fn clean_text_within(raw: &str, max_chars: usize) -> Result<String, TextTooLong> {
    match clean(raw, max_chars) {
        (text, false) => Ok(text),
        (_, true) => Err(TextTooLong {
            chars: clean_text(raw, usize::MAX).chars().count(),
            max: max_chars,
        }),
    }
}

/// At most 60 characters of `raw` for quoting back in an error message, with the length when
/// it was cut: a mistyped megabyte should not come back as a megabyte of error.
pub fn echo(raw: &str) -> String {
    const SHOWN: usize = 60;
    let mut it = raw.char_indices();
    match it.nth(SHOWN) {
        None => raw.to_owned(),
        Some((cut, _)) => format!("{}… ({} characters)", &raw[..cut], raw.chars().count()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clean_text_makes_one_line_without_controls() {
        assert_eq!(clean_text("  a\r\n\tb\u{7}c  ", 10), "a bc");
        assert_eq!(
            clean_text("Bob\u{1b}[2J\r\nBcc: x", 100),
            "Bob [2J Bcc: x",
            "ESC breaks the sequence, CR LF become one space"
        );
        assert_eq!(
            clean_text("a\u{202E}b\u{2028}c\u{85}d\u{feff}", 10),
            "ab c d"
        );
        assert_eq!(
            clean_text("نیا\u{200C}سال", 10),
            "نیا\u{200C}سال",
            "ZWNJ stays"
        );
        assert_eq!(
            clean_text("\u{9b}31m red", 10),
            "31m red",
            "C1 CSI is dropped"
        );
    }

    #[test]
    fn clean_text_caps_at_a_char_boundary() {
        let long = "ب".repeat(1200);
        let s = clean_text(&long, MAX_SUMMARY_CHARS);
        assert_eq!(s.chars().count(), MAX_SUMMARY_CHARS);
        assert!(s.ends_with('…'));
        assert_eq!(clean_text("abcdef", 6), "abcdef");
        assert_eq!(clean_text("abc defg", 6), "abc d…");
        assert_eq!(clean_text("abc", 0), "");
        assert_eq!(clean_text("abc", 1), "…");
    }

    #[test]
    fn clean_text_within_refuses_instead_of_cutting() {
        assert_eq!(clean_text_within("  x  y ", 3).as_deref(), Ok("x y"));
        assert_eq!(
            clean_text_within(&"x".repeat(501), MAX_TITLE_CHARS),
            Err(TextTooLong {
                chars: 501,
                max: 500
            })
        );
        assert_eq!(
            clean_text_within(&"x ".repeat(600), MAX_TITLE_CHARS)
                .unwrap_err()
                .to_string(),
            "is 1199 characters long; at most 500 are allowed"
        );
    }

    #[test]
    fn echo_cuts_long_values() {
        assert_eq!(echo("short"), "short");
        let long = format!("{}@example.org", "a".repeat(1000));
        let e = echo(&long);
        assert!(e.starts_with(&"a".repeat(60)), "{e}");
        assert!(e.ends_with("… (1012 characters)"), "{e}");
    }
}
