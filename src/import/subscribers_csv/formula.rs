//! CSV formula injection (OWASP, "CSV Injection"): a spreadsheet runs a cell that starts with
//! `=`, `+`, `-` or `@` (and some a tab or CR before one) as a formula, so an address such as
//! `=cmd|'/Ccalc'!A0@example.org`, which is valid and can arrive through the public sign-up
//! form, would run a command on the admin's machine when the export is opened.
//!
//! The rule, applied the same way in both directions so an export imports back unchanged:
//! a cell that starts with one of those characters, possibly after apostrophes, gets one more
//! apostrophe in front on export, which makes spreadsheets treat it as text. On import, one
//! leading apostrophe is removed from such a cell (an apostrophe followed by the rest of a
//! cell of that shape) and from no other.

use std::borrow::Cow;

/// Whether a spreadsheet could read `cell`, after its leading apostrophes, as a formula.
fn is_formula_like(cell: &[u8]) -> bool {
    let rest = cell
        .iter()
        .position(|b| *b != b'\'')
        .map_or(&[][..], |i| &cell[i..]);
    matches!(rest.first(), Some(b'=' | b'+' | b'-' | b'@' | b'\t' | b'\r'))
}

/// The cell as written to an export: prefixed with `'` when it is formula-like.
pub(super) fn neutralise(cell: &str) -> Cow<'_, str> {
    if is_formula_like(cell.as_bytes()) {
        Cow::Owned(format!("'{cell}"))
    } else {
        Cow::Borrowed(cell)
    }
}

/// The cell as it was before [`neutralise`]: without the `'` in front of a formula-like rest.
pub(super) fn restore(cell: &[u8]) -> &[u8] {
    match cell.strip_prefix(b"'") {
        Some(rest) if is_formula_like(rest) => rest,
        _ => cell,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn neutralise_then_restore_gives_back_every_value() {
        for value in [
            "=cmd|'/Ccalc'!A0@example.org",
            "+92 300",
            "-dash",
            "@handle",
            "\tTab",
            "\rCR",
            "'=already quoted",
            "''@two",
            "'plain apostrophe",
            "O'Brien",
            "plain",
            "",
            "'",
        ] {
            let out = neutralise(value);
            assert!(
                !matches!(out.as_bytes().first(), Some(b'=' | b'+' | b'-' | b'@' | b'\t' | b'\r')),
                "{out:?}"
            );
            assert_eq!(restore(out.as_bytes()), value.as_bytes(), "{value:?}");
        }
        assert_eq!(neutralise("=1+2"), "'=1+2");
        assert_eq!(neutralise("O'Brien"), "O'Brien");
        // A hand-written apostrophe before plain text is kept.
        assert_eq!(restore(b"'Tis"), b"'Tis");
    }
}
