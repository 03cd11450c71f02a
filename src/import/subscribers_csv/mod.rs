//! Streaming reader for subscriber CSV files, and the export writer that produces files it reads.
//!
//! The format (documented for admins in `subscribers/README.md`):
//!
//! - UTF-8 (a leading byte-order mark is skipped), `,`-separated, fields quoted with `"` when
//!   they hold a comma, a quote or a line break; LF, CRLF or CR-only line ends. Rows whose
//!   cells are all blank (blank lines, Excel's trailing `,,,` rows) are skipped.
//! - A header row naming the columns, matched case-insensitively after trimming:
//!   `email` (required), `name`, `categories` (separated by `;`). The export columns `status`
//!   and `list` are recognised and ignored silently, so an export imports again; any other
//!   column is ignored with one warning naming it (the first ten of them).
//! - Row length: a row *shorter* than the header is accepted, its missing trailing cells being
//!   empty (hand-written files often omit them). A row *longer* than the header is an error,
//!   because it almost always means an unquoted comma shifted the columns, and guessing would
//!   put a name into the categories.
//! - A quoted cell that spans lines must be closed properly; a broken quote rejects its row
//!   and the lines after it are read as rows (see `reader.rs`).
//! - A cell starting `'` followed by `=`, `+`, `-`, `@`, tab or CR loses that `'`: it is how the
//!   export guards against formula injection (see `formula.rs`).
//!
//! Every rejected row is a [`RowError`] carrying the physical line it starts on (the header is
//! line 1; a quoted field spanning lines counts all of its lines), so the admin can open the
//! file at that line. Rows are read one at a time into a reused buffer; the only memory that
//! grows with the file is a 16-byte entry per accepted address for duplicate detection.
//!
//! - `reader`: raw records with their lines; `header`: the columns; `row`: one record into a
//!   [`SubscriberRow`]; `formula`: the formula guard; `export`: [`write_export`].

use std::fmt;
use std::io::Read;

use crate::domain::{CategorySet, EmailAddress};

mod export;
mod formula;
mod header;
mod reader;
mod row;

pub use crate::domain::MAX_NAME_CHARS;
pub use export::{ExportRow, write_export};

use reader::{Raw, Records};
use row::{ListCategories, Validator};

/// The longest email cell accepted, in bytes (RFC 5321's path limit, as in [`EmailAddress`]).
pub const MAX_EMAIL_LEN: usize = 254;
/// The longest categories cell accepted, in characters.
pub const MAX_CATEGORIES_CHARS: usize = 1000;

/// A file that cannot be imported at all (as opposed to a bad row, see [`RowError`]).
#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    /// No header row: the file is empty or holds only blank lines.
    #[error("the file is empty: the first row must name the columns, e.g. `email,name,categories`")]
    Empty,
    /// The header row has no `email` column.
    #[error(
        "the header row has no `email` column (it has: {found}); the first row must name the columns, e.g. `email,name,categories`"
    )]
    MissingEmailColumn {
        /// The columns the header does name, quoted and comma-separated (the first ten).
        found: String,
    },
    /// A known column is named twice, so it is unclear which cell to use.
    #[error("the header row names the column `{0}` twice")]
    DuplicateColumn(String),
    /// The header row could not be read or is not UTF-8.
    #[error("cannot read the header row: {0}")]
    Header(String),
}

/// One accepted row: a valid, not-yet-seen address with its optional name and categories.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubscriberRow {
    /// The physical line the row starts on (header = line 1).
    pub line: u64,
    /// The address, normalised by [`EmailAddress::parse`].
    pub email: EmailAddress,
    /// The name, cleaned by [`crate::domain::clean_text`]; `None` when the column is absent
    /// or the cell empty.
    pub name: Option<String>,
    /// The chosen categories in the list's spelling; `None` (all the list carries) when the
    /// column is absent or the cell holds no category.
    pub categories: Option<CategorySet>,
    /// The row comes from an export where this subscription was `unsubscribed`: importing
    /// it must not subscribe the address (an unsubscribe travels with the data).
    pub unsubscribed: bool,
}

/// A rejected row: where it starts and why it was rejected.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RowError {
    /// The physical line the row starts on (header = line 1).
    pub line: u64,
    /// What is wrong, for a person: names the column and the value where that helps.
    pub reason: String,
}

impl RowError {
    /// The error as `{file}:{line}: {reason}`, the form editors and terminals link to.
    pub fn located(&self, file: &str) -> String {
        format!("{file}:{}: {}", self.line, self.reason)
    }
}

impl fmt::Display for RowError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "line {}: {}", self.line, self.reason)
    }
}

impl std::error::Error for RowError {}

/// A streaming subscriber CSV reader. See the [module documentation](self) for the format.
///
/// Iterate with [`CsvReader::next_row`] or as an [`Iterator`]; the iteration ends after the
/// last row, or after an I/O error, which is returned once as a [`RowError`].
pub struct CsvReader<R> {
    records: Records<R>,
    validator: Validator,
    warnings: Vec<String>,
    done: bool,
}

impl<R: Read> CsvReader<R> {
    /// Reads the header row and prepares to stream rows for a list carrying `list_categories`
    /// (`None`: the list carries every category, so any valid category is accepted).
    pub fn new(input: R, list_categories: Option<CategorySet>) -> Result<Self, ImportError> {
        let read_error = |e: std::io::Error| ImportError::Header(e.to_string());
        let mut records = Records::new(input).map_err(read_error)?;
        let (columns, warnings) = match records.next().map_err(read_error)? {
            None => return Err(ImportError::Empty),
            Some(Raw::Broken { reason, .. }) => return Err(ImportError::Header(reason)),
            Some(Raw::Record { .. }) => header::parse(records.fields())?,
        };
        Ok(Self {
            records,
            validator: Validator::new(columns, list_categories.map(ListCategories::new)),
            warnings,
            done: false,
        })
    }

    /// Names the list in "not carried by list …" errors (otherwise they say "this list").
    pub fn with_list_name(mut self, slug: impl Into<String>) -> Self {
        self.validator.list_name = Some(slug.into());
        self
    }

    /// Warnings about the file as a whole (unknown columns), for the import report.
    pub fn warnings(&self) -> &[String] {
        &self.warnings
    }

    /// The next row: accepted, rejected with its line, or `None` at the end of the file.
    pub fn next_row(&mut self) -> Option<Result<SubscriberRow, RowError>> {
        if self.done {
            return None;
        }
        loop {
            match self.records.next() {
                Ok(None) => {
                    self.done = true;
                    return None;
                }
                Ok(Some(Raw::Broken { line, reason })) => {
                    return Some(Err(RowError { line, reason }));
                }
                Ok(Some(Raw::Record { line })) => {
                    let fields = self.records.fields();
                    if fields.iter().all(|cell| cell.trim_ascii().is_empty()) {
                        continue;
                    }
                    return Some(
                        self.validator
                            .check(fields, line)
                            .map_err(|reason| RowError { line, reason }),
                    );
                }
                Err(e) => {
                    // The reader cannot continue after an I/O error; report it once and stop.
                    self.done = true;
                    return Some(Err(RowError {
                        line: self.records.line(),
                        reason: format!("cannot read the file any further: {e}"),
                    }));
                }
            }
        }
    }
}

impl<R: Read> Iterator for CsvReader<R> {
    type Item = Result<SubscriberRow, RowError>;
    fn next(&mut self) -> Option<Self::Item> {
        self.next_row()
    }
}

#[cfg(test)]
mod tests;
