//! The export writer: subscriptions as CSV that [`super::CsvReader`] reads back.

use std::io;

use super::formula::neutralise;
use crate::domain::CategorySet;

/// One subscription as exported: a subscriber on a list with its status there.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExportRow {
    /// The address.
    pub email: String,
    /// The subscriber's name, if known.
    pub name: Option<String>,
    /// The chosen categories; `None` means all the list carries.
    pub categories: Option<CategorySet>,
    /// The subscription's status, e.g. `active`.
    pub status: String,
    /// The list's slug.
    pub list: String,
}

/// Writes `email,name,categories,status,list` and one row per item, in the format
/// [`super::CsvReader`] reads back (it ignores `status` and `list`).
///
/// Categories are written in their stored form (`Business;Politics`); `None` and an empty set
/// both become an empty cell, which imports as `None`. As OWASP advises against CSV
/// injection, a formula-like cell (or `;`-separated part of one) gets a leading `'` (see
/// `formula.rs`), which the import removes again.
pub fn write_export<W: io::Write>(
    out: W,
    rows: impl Iterator<Item = ExportRow>,
) -> anyhow::Result<()> {
    let mut w = csv::Writer::from_writer(out);
    w.write_record(["email", "name", "categories", "status", "list"])?;
    for row in rows {
        let categories = row
            .categories
            .as_ref()
            .map(CategorySet::to_stored)
            .unwrap_or_default();
        w.write_record([
            neutralise(&row.email).as_ref(),
            neutralise(row.name.as_deref().unwrap_or("")).as_ref(),
            neutralise(&categories).as_ref(),
            neutralise(&row.status).as_ref(),
            neutralise(&row.list).as_ref(),
        ])?;
    }
    w.flush()?;
    Ok(())
}
