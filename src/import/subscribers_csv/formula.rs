//! CSV formula injection (OWASP, "CSV Injection"): a spreadsheet runs a cell that starts with
//! `=`, `+`, `-` or `@` (and some a tab or CR before one) as a formula, so an address such as
//! `=cmd|'/Ccalc'!A0@example.org`, which is valid and can arrive through the public sign-up
//! form, would run a command on the admin's machine when the export is opened.
//!
//! The rule, applied the same way in both directions so an export imports back unchanged:
//! a cell that starts with one of those characters, possibly after apostrophes, gets one more
//! apostrophe in front on export, which makes spreadsheets treat it as text. On import, one
//! leading apostrophe is removed from such a cell (an apostrophe followed by the rest of a
//! cell of that shape) and from no other. Spreadsheets set to a European locale split cells
//! at `;` as well as at `,`, so the rule applies to each `;`-separated part of a cell too:
//! `Politics;=evil` is written `Politics;'=evil`.

use std::borrow::Cow;

/// Whether a spreadsheet could read `part`, after its leading apostrophes, as a formula.
fn is_formula_like(part: &[u8]) -> bool {
    let rest = part
        .iter()
        .position(|b| *b != b'\'')
        .map_or(&[][..], |i| &part[i..]);
    matches!(
        rest.first(),
        Some(b'=' | b'+' | b'-' | b'@' | b'\t' | b'\r')
    )
}

/// The cell as written to an export: each formula-like part prefixed with `'`.
pub(super) fn neutralise(cell: &str) -> Cow<'_, str> {
    if !cell.split(';').any(|p| is_formula_like(p.as_bytes())) {
        return Cow::Borrowed(cell);
    }
    let parts: Vec<Cow<'_, str>> = cell
        .split(';')
        .map(|p| {
            if is_formula_like(p.as_bytes()) {
                Cow::Owned(format!("'{p}"))
            } else {
                Cow::Borrowed(p)
            }
        })
        .collect();
    Cow::Owned(parts.join(";"))
}

/// The cell as it was before [`neutralise`]: each part without the `'` in front of a
/// formula-like rest.
pub(super) fn restore(cell: &[u8]) -> Cow<'_, [u8]> {
    let restored = |part: &[u8]| part.strip_prefix(b"'").is_some_and(is_formula_like);
    if !cell.split(|b| *b == b';').any(restored) {
        return Cow::Borrowed(cell);
    }
    let mut out = Vec::with_capacity(cell.len());
    for (i, part) in cell.split(|b| *b == b';').enumerate() {
        if i > 0 {
            out.push(b';');
        }
        out.extend_from_slice(if restored(part) { &part[1..] } else { part });
    }
    Cow::Owned(out)
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
            "Politics;=evil;'-x;;'",
            "Bob;@SUM(1)",
        ] {
            let out = neutralise(value);
            for part in out.split(';') {
                assert!(
                    !matches!(
                        part.as_bytes().first(),
                        Some(b'=' | b'+' | b'-' | b'@' | b'\t' | b'\r')
                    ),
                    "{out:?}"
                );
            }
            assert_eq!(&*restore(out.as_bytes()), value.as_bytes(), "{value:?}");
        }
        assert_eq!(neutralise("=1+2"), "'=1+2");
        assert_eq!(neutralise("Politics;=evil"), "Politics;'=evil");
        assert_eq!(neutralise("O'Brien"), "O'Brien");
        // A hand-written apostrophe before plain text is kept.
        assert_eq!(&*restore(b"'Tis"), b"'Tis");
    }
}
