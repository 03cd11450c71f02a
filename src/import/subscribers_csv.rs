//! Streaming reader for subscriber CSV files, and the export writer that produces files it reads.
//!
//! The format (documented for admins in `subscribers/README.md`):
//!
//! - UTF-8 (a leading byte-order mark is skipped), `,`-separated, fields quoted with `"` when
//!   they hold a comma, a quote or a line break; LF or CRLF line ends. Rows whose cells are
//!   all blank (blank lines, Excel's trailing `,,,` rows) are skipped.
//! - A header row naming the columns, matched case-insensitively after trimming:
//!   `email` (required), `name`, `categories` (separated by `;`). The export columns `status`
//!   and `list` are recognised and ignored silently, so an export imports again; any other
//!   column is ignored with one warning naming it.
//! - Row length: a row *shorter* than the header is accepted, its missing trailing cells being
//!   empty (hand-written files often omit them). A row *longer* than the header is an error,
//!   because it almost always means an unquoted comma shifted the columns, and guessing would
//!   put a name into the categories.
//!
//! Every rejected row is a [`RowError`] carrying the physical line it starts on (the header is
//! line 1; a quoted field spanning lines counts all of its lines), so the admin can open the
//! file at that line. Rows are read one at a time into a reused buffer; the only memory that
//! grows with the file is a 16-byte entry per accepted address for duplicate detection.

use std::collections::HashMap;
use std::fmt;
use std::hash::{BuildHasherDefault, Hash, Hasher};
use std::io::{self, Read};

use csv::ByteRecord;
use sha2::{Digest, Sha256};

use crate::domain::{Category, CategorySet, EmailAddress};

/// The longest email cell accepted, in bytes (RFC 5321's path limit, as in [`EmailAddress`]).
pub const MAX_EMAIL_LEN: usize = 254;
/// The longest name accepted, in characters.
pub const MAX_NAME_CHARS: usize = 200;
/// The longest categories cell accepted, in characters.
pub const MAX_CATEGORIES_CHARS: usize = 1000;

/// Columns written by [`write_export`] that an import recognises and deliberately ignores:
/// a subscriber's status and list are decided by the import command, not by the file.
const EXPORT_ONLY_COLUMNS: [&str; 2] = ["status", "list"];

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
        /// The columns the header does name, quoted and comma-separated.
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
    /// The name, whitespace collapsed; `None` when the column is absent or the cell empty.
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

/// Where each known column sits in a row.
#[derive(Debug)]
struct Columns {
    email: usize,
    name: Option<usize>,
    categories: Option<usize>,
    /// The export's `status` column, if present.
    status: Option<usize>,
    /// How many fields the header has; longer rows are rejected.
    width: usize,
}

/// The list's categories with their lower-cased keys computed once, so matching a cell does
/// not allocate per comparison the way `Category`'s `PartialEq` does.
#[derive(Debug)]
struct ListCategories {
    set: CategorySet,
    keys: Vec<(String, Category)>,
}

/// The first 96 bits of SHA-256 over the lower-cased address.
///
/// 96 bits keep the chance of two different addresses in a million-row file colliding (and
/// the second being wrongly reported as a duplicate) near 10^-17, in 12 bytes instead of the
/// ~40 a `String` would take.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Fingerprint([u32; 3]);

impl Hash for Fingerprint {
    fn hash<H: Hasher>(&self, state: &mut H) {
        // The bits are already uniformly distributed; hand 64 of them to the table as they are.
        state.write_u64((u64::from(self.0[0]) << 32) | u64::from(self.0[1]));
    }
}

/// A hasher that passes a precomputed `u64` through, for [`Fingerprint`] keys.
#[derive(Default)]
struct PassThrough(u64);

impl Hasher for PassThrough {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        // Only reached if someone hashes something other than a Fingerprint; stay correct.
        for &b in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(b);
        }
    }
    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }
}

/// Row validation state, kept apart from the csv reader so a row can be checked while the
/// reader's record buffer is borrowed.
#[derive(Debug)]
struct Validator {
    columns: Columns,
    list: Option<ListCategories>,
    list_name: Option<String>,
    /// Fingerprint of each accepted address → the line it was first accepted on (saturating
    /// at `u32::MAX`, four billion lines being far beyond any real file).
    seen: HashMap<Fingerprint, u32, BuildHasherDefault<PassThrough>>,
}

/// A streaming subscriber CSV reader. See the [module documentation](self) for the format.
///
/// Iterate with [`CsvReader::next_row`] or as an [`Iterator`]; the iteration ends after the
/// last row, or after an I/O error, which is returned once as a [`RowError`].
pub struct CsvReader<R> {
    csv: csv::Reader<SkipBom<R>>,
    record: ByteRecord,
    validator: Validator,
    warnings: Vec<String>,
    done: bool,
}

impl<R: Read> CsvReader<R> {
    /// Reads the header row and prepares to stream rows for a list carrying `list_categories`
    /// (`None`: the list carries every category, so any valid category is accepted).
    pub fn new(input: R, list_categories: Option<CategorySet>) -> Result<Self, ImportError> {
        let mut csv = csv::ReaderBuilder::new()
            // We read the header ourselves so that it is line 1 like any other record and
            // its cells get the same UTF-8 and trimming treatment.
            .has_headers(false)
            // Row length is checked per row so one bad row does not end the import.
            .flexible(true)
            // Records end at LF only. With the default (CR, LF or CRLF) csv 1.4 reports every
            // record after a CRLF one line too early; a CR left at the end of the last cell is
            // trimmed with the other whitespace.
            .terminator(csv::Terminator::Any(b'\n'))
            .from_reader(SkipBom::new(input));
        let mut header = ByteRecord::new();
        match csv.read_byte_record(&mut header) {
            Ok(true) => {}
            Ok(false) => return Err(ImportError::Empty),
            Err(e) => return Err(ImportError::Header(e.to_string())),
        }
        let (columns, warnings) = parse_header(&header)?;
        let list = list_categories.map(|set| ListCategories {
            keys: set.iter().map(|c| (c.key(), c.clone())).collect(),
            set,
        });
        Ok(Self {
            csv,
            record: ByteRecord::new(),
            validator: Validator {
                columns,
                list,
                list_name: None,
                seen: HashMap::default(),
            },
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
        let read = loop {
            let read = self.csv.read_byte_record(&mut self.record);
            let blank = self.record.iter().all(|cell| cell.trim_ascii().is_empty());
            if !(matches!(read, Ok(true)) && blank) {
                break read;
            }
        };
        match read {
            Ok(false) => {
                self.done = true;
                None
            }
            Ok(true) => {
                let line = self.record.position().map_or(0, csv::Position::line);
                Some(
                    self.validator
                        .check(&self.record, line)
                        .map_err(|reason| RowError { line, reason }),
                )
            }
            Err(e) => {
                // With byte records and `flexible`, only I/O errors remain; the reader cannot
                // continue after one, so report it once and stop.
                self.done = true;
                let line = e
                    .position()
                    .map_or_else(|| self.csv.position().line(), csv::Position::line);
                Some(Err(RowError {
                    line,
                    reason: format!("cannot read the file any further: {e}"),
                }))
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

/// Finds the known columns and builds the one warning about unknown ones.
fn parse_header(header: &ByteRecord) -> Result<(Columns, Vec<String>), ImportError> {
    let mut email = None;
    let mut name = None;
    let mut categories = None;
    let mut status = None;
    let mut names = Vec::with_capacity(header.len());
    let mut unknown = Vec::new();
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
            "" => {
                unknown.push(format!("column {} (no name)", i + 1));
                None
            }
            _ => {
                unknown.push(format!("{:?}", text.trim()));
                None
            }
        };
        if let Some(slot) = slot {
            if slot.is_some() {
                return Err(ImportError::DuplicateColumn(key));
            }
            *slot = Some(i);
        }
        names.push(format!("{:?}", text.trim()));
    }
    let Some(email) = email else {
        return Err(ImportError::MissingEmailColumn {
            found: names.join(", "),
        });
    };
    let warnings = if unknown.is_empty() {
        Vec::new()
    } else {
        vec![format!(
            "ignoring unknown column{} {} (known columns: email, name, categories)",
            if unknown.len() == 1 { "" } else { "s" },
            unknown.join(", ")
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

impl Validator {
    /// Checks one record; on success remembers its address so a later copy is a duplicate.
    fn check(&mut self, record: &ByteRecord, line: u64) -> Result<SubscriberRow, String> {
        let width = self.columns.width;
        if record.len() > width {
            return Err(format!(
                "expected {width} fields as in the header, found {}; quote any name or categories cell that contains a comma",
                record.len()
            ));
        }
        let email = self.email(record)?;
        let name = self.name(record)?;
        let categories = self.categories(record)?;
        let fingerprint = fingerprint(&email);
        if let Some(first) = self.seen.get(&fingerprint) {
            return Err(format!("duplicate of line {first}"));
        }
        self.seen
            .insert(fingerprint, u32::try_from(line).unwrap_or(u32::MAX));
        let unsubscribed = self
            .columns
            .status
            .and_then(|i| record.get(i))
            .is_some_and(|cell| cell.trim_ascii().eq_ignore_ascii_case(b"unsubscribed"));
        Ok(SubscriberRow {
            line,
            email,
            name,
            categories,
            unsubscribed,
        })
    }

    fn email(&self, record: &ByteRecord) -> Result<EmailAddress, String> {
        let raw = record
            .get(self.columns.email)
            .unwrap_or_default()
            .trim_ascii();
        if raw.is_empty() {
            return Err("missing email address".to_owned());
        }
        // Checked before parsing so the message does not quote a huge cell back.
        if raw.len() > MAX_EMAIL_LEN {
            return Err(format!(
                "email address is {} bytes long; at most {MAX_EMAIL_LEN} are allowed",
                raw.len()
            ));
        }
        let text = utf8("email", raw)?;
        EmailAddress::parse(text).map_err(|e| e.to_string())
    }

    fn name(&self, record: &ByteRecord) -> Result<Option<String>, String> {
        let Some(raw) = self.columns.name.and_then(|i| record.get(i)) else {
            return Ok(None);
        };
        let text = utf8("name", raw)?;
        let chars = text.chars().count();
        if chars > MAX_NAME_CHARS {
            return Err(format!(
                "name is {chars} characters long; at most {MAX_NAME_CHARS} are allowed"
            ));
        }
        clean_name(text)
    }

    fn categories(&self, record: &ByteRecord) -> Result<Option<CategorySet>, String> {
        let Some(raw) = self.columns.categories.and_then(|i| record.get(i)) else {
            return Ok(None);
        };
        let text = utf8("categories", raw)?;
        let chars = text.chars().count();
        if chars > MAX_CATEGORIES_CHARS {
            return Err(format!(
                "categories cell is {chars} characters long; at most {MAX_CATEGORIES_CHARS} are allowed"
            ));
        }
        // `,` is accepted too, as everywhere else categories are typed (CategorySet::parse_list).
        let mut chosen = Vec::new();
        for part in text
            .split([';', ','])
            .map(str::trim)
            .filter(|p| !p.is_empty())
        {
            let category = match &self.list {
                None => Category::parse(part).map_err(|e| e.to_string())?,
                Some(list) => list.find(part).cloned().ok_or_else(|| {
                    let list_name = match &self.list_name {
                        Some(slug) => format!("list {slug}"),
                        None => "this list".to_owned(),
                    };
                    format!(
                        "category {part:?} is not carried by {list_name} (it carries: {})",
                        list.set
                    )
                })?,
            };
            chosen.push(category);
        }
        // A cell of separators only chooses nothing, which would silently mute the subscriber;
        // treat it like an empty cell: all the list carries.
        Ok((!chosen.is_empty()).then(|| CategorySet::new(chosen)))
    }
}

impl ListCategories {
    /// The list's category matching `part` case-insensitively.
    fn find(&self, part: &str) -> Option<&Category> {
        if part.is_ascii() {
            self.keys
                .iter()
                .find(|(key, _)| key.eq_ignore_ascii_case(part))
                .map(|(_, c)| c)
        } else {
            let key = part.to_lowercase();
            self.keys.iter().find(|(k, _)| *k == key).map(|(_, c)| c)
        }
    }
}

/// Decodes a cell, naming the column and the first bad byte when it is not UTF-8.
fn utf8<'a>(column: &str, raw: &'a [u8]) -> Result<&'a str, String> {
    std::str::from_utf8(raw).map_err(|e| {
        let at = e.valid_up_to();
        // Invariant: a UTF-8 error always lies before the end, so `raw[at]` exists.
        format!(
            "column {column:?} is not valid UTF-8 (byte 0x{:02X} at position {}); save the file as UTF-8",
            raw[at],
            at + 1
        )
    })
}

/// Collapses whitespace runs (including line breaks inside a quoted cell) to one space and
/// rejects other control characters, which have no place in a name that ends up in headers.
fn clean_name(text: &str) -> Result<Option<String>, String> {
    let mut out = String::with_capacity(text.len());
    let mut space = false;
    for c in text.chars() {
        if c.is_whitespace() {
            space = true;
        } else if c.is_control() {
            return Err(format!(
                "name contains the control character U+{:04X}",
                u32::from(c)
            ));
        } else {
            if space && !out.is_empty() {
                out.push(' ');
            }
            space = false;
            out.push(c);
        }
    }
    Ok((!out.is_empty()).then_some(out))
}

/// The duplicate-detection key: SHA-256 of [`EmailAddress::canonical`], truncated to 96 bits.
fn fingerprint(email: &EmailAddress) -> Fingerprint {
    let s = email.as_str();
    let digest = if s.is_ascii() {
        // The common case, without allocating: an address is at most 254 bytes.
        let mut buf = [0u8; MAX_EMAIL_LEN];
        let lower = &mut buf[..s.len()];
        lower.copy_from_slice(s.as_bytes());
        lower.make_ascii_lowercase();
        Sha256::digest(lower)
    } else {
        Sha256::digest(email.canonical().as_bytes())
    };
    let word =
        |i: usize| u32::from_le_bytes([digest[i], digest[i + 1], digest[i + 2], digest[i + 3]]);
    Fingerprint([word(0), word(4), word(8)])
}

/// A reader that drops a UTF-8 byte-order mark at the start of the stream.
///
/// Spreadsheet programs (Excel's "CSV UTF-8") write one; the csv crate would otherwise make it
/// part of the first column's name, and `email` would not be found.
struct SkipBom<R> {
    inner: R,
    head: [u8; 3],
    start: usize,
    end: usize,
    checked: bool,
}

impl<R> SkipBom<R> {
    fn new(inner: R) -> Self {
        Self {
            inner,
            head: [0; 3],
            start: 0,
            end: 0,
            checked: false,
        }
    }
}

impl<R: Read> Read for SkipBom<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if !self.checked {
            // A short read may deliver fewer than three bytes; keep reading until we know.
            while self.end < 3 {
                let n = self.inner.read(&mut self.head[self.end..])?;
                if n == 0 {
                    break;
                }
                self.end += n;
            }
            self.checked = true;
            if self.head[..self.end] == *b"\xEF\xBB\xBF" {
                self.start = self.end;
            }
        }
        if self.start < self.end {
            let n = buf.len().min(self.end - self.start);
            buf[..n].copy_from_slice(&self.head[self.start..self.start + n]);
            self.start += n;
            return Ok(n);
        }
        self.inner.read(buf)
    }
}

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
/// [`CsvReader`] reads back (it ignores `status` and `list`).
///
/// Categories are written in their stored form (`Business;Politics`); `None` and an empty set
/// both become an empty cell, which imports as `None`.
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
            row.email.as_str(),
            row.name.as_deref().unwrap_or(""),
            categories.as_str(),
            row.status.as_str(),
            row.list.as_str(),
        ])?;
    }
    w.flush()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(s: &str) -> CategorySet {
        CategorySet::parse_list(s).unwrap()
    }

    fn read_all(input: &[u8], list: Option<CategorySet>) -> (Vec<SubscriberRow>, Vec<RowError>) {
        let reader = CsvReader::new(input, list).unwrap().with_list_name("daily");
        let mut good = Vec::new();
        let mut bad = Vec::new();
        for r in reader {
            match r {
                Ok(row) => good.push(row),
                Err(e) => bad.push(e),
            }
        }
        (good, bad)
    }

    #[test]
    fn reads_plain_rows() {
        let input = b"email,name,categories\n\
            ayesha.khan@example.pk,Ayesha Khan,Politics;Business\n\
            bilal@example.com,,\n";
        let (good, bad) = read_all(input, None);
        assert!(bad.is_empty(), "{bad:?}");
        assert_eq!(good.len(), 2);
        assert_eq!(good[0].line, 2);
        assert_eq!(good[0].email.as_str(), "ayesha.khan@example.pk");
        assert_eq!(good[0].name.as_deref(), Some("Ayesha Khan"));
        assert_eq!(good[0].categories, Some(set("Business;Politics")));
        assert_eq!(good[1].line, 3);
        assert_eq!(good[1].name, None);
        assert_eq!(good[1].categories, None);
    }

    #[test]
    fn each_defect_is_reported_with_its_line_and_good_rows_still_come_through() {
        let long_name = "N".repeat(201);
        let long_email = format!("{}@example.pk", "a".repeat(250));
        let long_categories = "Politics;".repeat(120);
        let mut input = Vec::new();
        input.extend_from_slice(b"email,name,categories\n"); // 1
        input.extend_from_slice(b"good.one@example.pk,Good One,Politics\n"); // 2
        input.extend_from_slice(b"not-an-address,Bad Address,\n"); // 3
        input.extend_from_slice(b"cricket.fan@example.pk,Fan,Cricket\n"); // 4
        input.extend_from_slice(b"GOOD.ONE@Example.PK,Again,\n"); // 5
        input.extend_from_slice(b"latin1@example.pk,Caf\xE9,\n"); // 6
        input.extend_from_slice(format!("{long_email},Long,\n").as_bytes()); // 7
        input.extend_from_slice(format!("long.name@example.pk,{long_name},\n").as_bytes()); // 8
        input.extend_from_slice(format!("long.cats@example.pk,,{long_categories}\n").as_bytes()); // 9
        input.extend_from_slice(b",No Address,Business\n"); // 10
        input.extend_from_slice(b"extra@example.pk,Extra,Sport,surplus\n"); // 11
        input.extend_from_slice(b"good.two@example.com,Good Two,business\n"); // 12
        let list = set("Business;Politics");
        let (good, bad) = read_all(&input, Some(list));

        let lines: Vec<u64> = good.iter().map(|r| r.line).collect();
        assert_eq!(lines, [2, 12]);
        // The list's spelling wins over the file's.
        assert_eq!(good[1].categories.as_ref().unwrap().to_stored(), "Business");

        let got: Vec<(u64, &str)> = bad.iter().map(|e| (e.line, e.reason.as_str())).collect();
        let expect_prefix: [(u64, &str); 9] = [
            (3, "invalid email address \"not-an-address\""),
            (
                4,
                "category \"Cricket\" is not carried by list daily (it carries: Business, Politics)",
            ),
            (5, "duplicate of line 2"),
            (
                6,
                "column \"name\" is not valid UTF-8 (byte 0xE9 at position 4)",
            ),
            (7, "email address is 261 bytes long"),
            (8, "name is 201 characters long"),
            (9, "categories cell is 1080 characters long"),
            (10, "missing email address"),
            (11, "expected 3 fields as in the header, found 4"),
        ];
        assert_eq!(got.len(), expect_prefix.len(), "{got:#?}");
        for ((line, reason), (want_line, want)) in got.iter().zip(expect_prefix) {
            assert_eq!(*line, want_line);
            assert!(
                reason.starts_with(want),
                "line {line}: {reason:?} should start with {want:?}"
            );
        }
        assert_eq!(
            bad[0].located("subs.csv"),
            format!("subs.csv:3: {}", bad[0].reason)
        );
    }

    #[test]
    fn bom_crlf_and_quoted_fields_keep_line_numbers() {
        let input = "\u{feff}Email , NAME,Categories\r\n\
            \"zainab@example.pk\",\"Zainab, Dr.\",\"Politics;Sport\"\r\n\
            hamza@example.com,\"Hamza\r\nQureshi\",\"General News\"\r\n\
            \"usman@example.pk\",\"Usman \"\"Babu\"\" Tariq\",\r\n\
            bad@@example.pk,Bad,\r\n";
        let (good, bad) = read_all(input.as_bytes(), None);
        assert_eq!(good.len(), 3, "{bad:?}");
        assert_eq!(good[0].name.as_deref(), Some("Zainab, Dr."));
        assert_eq!(good[1].line, 3);
        assert_eq!(good[1].name.as_deref(), Some("Hamza Qureshi"));
        // The quoted line break in Hamza's name makes Usman's row start on line 5.
        assert_eq!(good[2].line, 5);
        assert_eq!(good[2].name.as_deref(), Some("Usman \"Babu\" Tariq"));
        assert_eq!(bad.len(), 1);
        assert_eq!(bad[0].line, 6);
    }

    #[test]
    fn blank_rows_are_skipped() {
        let input = b"email,name\r\n\r\n,\r\n , \r\nx@example.pk,X\r\n,,\r\n";
        let (good, bad) = read_all(input, None);
        assert!(bad.is_empty(), "{bad:?}");
        assert_eq!(good[0].line, 5);
    }

    #[test]
    fn short_rows_are_tolerated() {
        let (good, bad) = read_all(b"email,name,categories\nsana@example.pk\n", None);
        assert!(bad.is_empty());
        assert_eq!(good[0].name, None);
        assert_eq!(good[0].categories, None);
    }

    #[test]
    fn unknown_columns_give_one_warning_and_export_columns_none() {
        let input = b"phone,email,City,status,list,\n0300,a@example.pk,Lahore,active,daily,\n";
        let reader = CsvReader::new(&input[..], None).unwrap();
        assert_eq!(
            reader.warnings(),
            [
                "ignoring unknown columns \"phone\", \"City\", column 6 (no name) (known columns: email, name, categories)"
            ]
        );
        let rows: Vec<_> = reader.collect();
        assert_eq!(rows.len(), 1);
        assert!(rows[0].is_ok());

        let reader = CsvReader::new(&b"email,name,status,list\n"[..], None).unwrap();
        assert!(reader.warnings().is_empty());
    }

    #[test]
    fn fatal_header_problems() {
        assert!(matches!(
            CsvReader::new(&b""[..], None),
            Err(ImportError::Empty)
        ));
        assert!(matches!(
            CsvReader::new(&b"\xEF\xBB\xBF\n\n"[..], None),
            Err(ImportError::Empty)
        ));
        let err = CsvReader::new(&b"mail,name\nx@example.pk,X\n"[..], None)
            .err()
            .unwrap();
        assert_eq!(
            err.to_string(),
            "the header row has no `email` column (it has: \"mail\", \"name\"); the first row must name the columns, e.g. `email,name,categories`"
        );
        assert!(matches!(
            CsvReader::new(&b"email,Email\n"[..], None),
            Err(ImportError::DuplicateColumn(_))
        ));
        assert!(matches!(
            CsvReader::new(&b"email,n\xFFme\n"[..], None),
            Err(ImportError::Header(_))
        ));
    }

    #[test]
    fn urdu_names_and_categories() {
        let input = "email,name,categories\nfatima@example.pk,فاطمہ علی,سیاست\n";
        let (good, bad) = read_all(input.as_bytes(), None);
        assert!(bad.is_empty(), "{bad:?}");
        assert_eq!(good[0].name.as_deref(), Some("فاطمہ علی"));
        assert_eq!(good[0].categories.as_ref().unwrap().to_stored(), "سیاست");
    }

    #[test]
    fn control_characters_in_names_are_rejected() {
        let (_, bad) = read_all(b"email,name\nx@example.pk,Ali\x07\n", None);
        assert_eq!(bad[0].reason, "name contains the control character U+0007");
    }

    #[test]
    fn separators_only_means_all_categories() {
        let (good, _) = read_all(b"email,categories\nx@example.pk,\" ; ;\"\n", None);
        assert_eq!(good[0].categories, None);
    }

    #[test]
    fn duplicates_compare_the_whole_address_case_insensitively() {
        let input = "email\nÖmer@example.com\nömer@EXAMPLE.com\nomer@example.com\n";
        let (good, bad) = read_all(input.as_bytes(), None);
        assert_eq!(good.len(), 2);
        assert_eq!(bad[0].line, 3);
        assert_eq!(bad[0].reason, "duplicate of line 2");
    }

    #[test]
    fn a_rejected_row_does_not_claim_its_address() {
        let input = b"email,categories\nx@example.pk,Cricket\nx@example.pk,Sport\n";
        let (good, bad) = read_all(input, Some(set("Sport")));
        assert_eq!(bad.len(), 1);
        assert_eq!(good[0].line, 3);
    }

    #[test]
    fn export_then_import_round_trips() {
        let rows = vec![
            ExportRow {
                email: "ayesha.khan@example.pk".into(),
                name: Some("Khan, Ayesha \"AK\"".into()),
                categories: Some(set("Politics;Business")),
                status: "active".into(),
                list: "daily".into(),
            },
            ExportRow {
                email: "imran@example.com".into(),
                name: Some("عمران احمد".into()),
                categories: None,
                status: "unsubscribed".into(),
                list: "daily".into(),
            },
        ];
        let mut out = Vec::new();
        write_export(&mut out, rows.clone().into_iter()).unwrap();
        let text = String::from_utf8(out.clone()).unwrap();
        assert!(
            text.starts_with("email,name,categories,status,list\n"),
            "{text}"
        );

        let reader = CsvReader::new(&out[..], Some(set("Business;Politics;Sport"))).unwrap();
        assert!(reader.warnings().is_empty());
        let back: Vec<SubscriberRow> = reader.map(Result::unwrap).collect();
        assert_eq!(back.len(), 2);
        for (orig, got) in rows.iter().zip(&back) {
            assert_eq!(got.email.as_str(), orig.email);
            assert_eq!(got.name, orig.name);
            assert_eq!(got.categories, orig.categories);
        }
    }

    #[test]
    fn sample_file_imports_cleanly() {
        let sample = include_bytes!("../../subscribers/sample.csv");
        let list = set("General News;Politics;Business;Sport");
        let reader = CsvReader::new(&sample[..], Some(list)).unwrap();
        assert!(reader.warnings().is_empty());
        let rows: Vec<_> = reader.collect::<Result<_, _>>().unwrap();
        assert!(rows.len() >= 10);
    }

    #[test]
    fn bad_example_file_has_one_row_per_defect() {
        let bad_example = include_bytes!("../../subscribers/bad-example.csv");
        let list = set("General News;Politics;Business;Sport");
        let reader = CsvReader::new(&bad_example[..], Some(list))
            .unwrap()
            .with_list_name("daily");
        assert_eq!(reader.warnings().len(), 1);
        let (good, bad): (Vec<_>, Vec<_>) = reader.partition(Result::is_ok);
        assert_eq!(good.len(), 2);
        let reasons: Vec<String> = bad
            .into_iter()
            .map(|e| e.unwrap_err().to_string())
            .collect();
        for want in [
            "invalid email address",
            "is not carried by list daily",
            "duplicate of line",
            "not valid UTF-8",
            "email address is",
            "name is",
            "categories cell is",
            "missing email address",
            "expected 4 fields",
        ] {
            assert_eq!(
                reasons.iter().filter(|r| r.contains(want)).count(),
                1,
                "{want:?} in {reasons:#?}"
            );
        }
        assert_eq!(reasons.len(), 9);
    }

    /// Throughput check: `cargo test --release --lib import::subscribers_csv -- --ignored`.
    #[test]
    #[ignore = "timing; run in release"]
    fn parses_a_million_rows_quickly() {
        let mut input = String::from("email,name,categories\n");
        for i in 0..1_000_000 {
            input.push_str(&format!(
                "reader.{i}@example.pk,Reader Number {i},Politics;Business\n"
            ));
        }
        let list = set("General News;Politics;Business;Sport");
        let start = std::time::Instant::now();
        let reader = CsvReader::new(input.as_bytes(), Some(list)).unwrap();
        let n = reader.filter(Result::is_ok).count();
        let elapsed = start.elapsed();
        assert_eq!(n, 1_000_000);
        let rate = n as f64 / elapsed.as_secs_f64();
        eprintln!("{n} rows in {elapsed:?}: {rate:.0} rows/s");
    }

    #[test]
    fn an_exported_unsubscribe_is_marked() {
        let input = b"email,name,categories,status,list\na@example.pk,,,active,daily\nb@example.pk,,,Unsubscribed,daily\n";
        let rows: Vec<_> = CsvReader::new(&input[..], None)
            .unwrap()
            .map(|r| r.unwrap())
            .collect();
        assert!(!rows[0].unsubscribed);
        assert!(rows[1].unsubscribed);
    }
}
