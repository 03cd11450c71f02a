//! The header row: where the known columns are, and one short warning about the others.

use super::ImportError;
use super::reader::Fields;
use crate::domain::echo;

/// Columns written by the export that an import recognises and deliberately ignores: a
/// subscriber's status and list are decided by the import command, not by the file (an
/// `unsubscribed` status is still honoured, see [`Columns::status`]).
const EXPORT_ONLY_COLUMNS: [&str; 2] = ["status", "list"];

/// How many column names a message lists before "and N more": a header of 100,000 columns
/// must not make a megabyte of warning.
const NAMES_SHOWN: usize = 10;

/// Where each known column sits in a row.
#[derive(Debug)]
pub(super) struct Columns {
    pub(super) email: usize,
    pub(super) name: Option<usize>,
    pub(super) categories: Option<usize>,
    /// The export's `status` column, if present.
    pub(super) status: Option<usize>,
    /// How many fields the header has; longer rows are rejected.
    pub(super) width: usize,
}

/// Finds the known columns and builds the one warning about unknown ones.
pub(super) fn parse(header: Fields<'_>) -> Result<(Columns, Vec<String>), ImportError> {
    let mut email = None;
    let mut name = None;
    let mut categories = None;
    let mut status = None;
    let mut names = Vec::new();
    let mut unknown = Vec::new();
    let mut unknown_count = 0;
    for (i, raw) in header.iter().enumerate() {
        let text = std::str::from_utf8(raw).map_err(|_| {
            ImportError::Header(format!(
                "column {} is not valid UTF-8; save the file as UTF-8",
                i + 1
            ))
        })?;
        let key = text.trim().to_lowercase();
        let slot = match key.as_str() {
            "email" => Some(&mut email),
            "name" => Some(&mut name),
            "categories" => Some(&mut categories),
            "status" => Some(&mut status),
            k if EXPORT_ONLY_COLUMNS.contains(&k) => None,
            k => {
                unknown_count += 1;
                if unknown.len() < NAMES_SHOWN {
                    unknown.push(if k.is_empty() {
                        format!("column {} (no name)", i + 1)
                    } else {
                        format!("{:?}", echo(text.trim()))
                    });
                }
                None
            }
        };
        if let Some(slot) = slot {
            if slot.is_some() {
                return Err(ImportError::DuplicateColumn(key));
            }
            *slot = Some(i);
        }
        if names.len() < NAMES_SHOWN {
            names.push(format!("{:?}", echo(text.trim())));
        }
    }
    let Some(email) = email else {
        return Err(ImportError::MissingEmailColumn {
            found: shortlist(&names, header.len()),
        });
    };
    let warnings = if unknown.is_empty() {
        Vec::new()
    } else {
        vec![format!(
            "ignoring unknown column{} {} (known columns: email, name, categories)",
            if unknown_count == 1 { "" } else { "s" },
            shortlist(&unknown, unknown_count)
        )]
    };
    let columns = Columns {
        email,
        name,
        categories,
        status,
        width: header.len(),
    };
    Ok((columns, warnings))
}

/// `shown` (the first of `total` names), comma-separated, then how many more there are.
fn shortlist(shown: &[String], total: usize) -> String {
    let list = shown.join(", ");
    if total > shown.len() {
        format!("{list} and {} more", total - shown.len())
    } else {
        list
    }
}
