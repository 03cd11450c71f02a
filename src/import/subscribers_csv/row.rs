//! One record into a [`SubscriberRow`]: each cell checked, cleaned and typed, and the address
//! remembered so a later copy is reported as a duplicate.

use std::borrow::Cow;
use std::collections::HashMap;
use std::hash::{BuildHasher, BuildHasherDefault, Hash, Hasher, RandomState};

use super::formula::restore;
use super::header::Columns;
use super::reader::Fields;
use super::{MAX_CATEGORIES_CHARS, MAX_EMAIL_LEN, MAX_NAME_CHARS, SubscriberRow};
use crate::domain::{Category, CategorySet, EmailAddress, clean_text_within};

/// The list's categories with their lower-cased keys computed once, so matching a cell does
/// not allocate per comparison the way `Category`'s `PartialEq` does.
#[derive(Debug)]
pub(super) struct ListCategories {
    set: CategorySet,
    keys: Vec<(String, Category)>,
}

impl ListCategories {
    pub(super) fn new(set: CategorySet) -> Self {
        Self {
            keys: set.iter().map(|c| (c.key(), c.clone())).collect(),
            set,
        }
    }

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

/// 96 bits of two keyed SipHash-1-3 digests of the lower-cased address (see [`Keys`]).
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

/// The two random SipHash keys of one import's fingerprints.
///
/// The fingerprint only has to tell addresses of one file apart, in memory, for one run: a
/// keyed hash with a fresh random key does that as well as a cryptographic digest (a file
/// cannot be built to collide without the key, which never leaves the process), at a tenth
/// of SHA-256's cost per row (callgrind: 3,500 instructions per row for SHA-256).
#[derive(Debug)]
struct Keys(RandomState, RandomState);

impl Default for Keys {
    fn default() -> Self {
        // Each `RandomState::new()` has its own keys (std moves them on per call).
        Self(RandomState::new(), RandomState::new())
    }
}

/// Row validation state, kept apart from the record source so a row can be checked while
/// the source's field buffer is borrowed.
#[derive(Debug)]
pub(super) struct Validator {
    pub(super) columns: Columns,
    pub(super) list: Option<ListCategories>,
    pub(super) list_name: Option<String>,
    /// Fingerprint of each accepted address → the line it was first accepted on (saturating
    /// at `u32::MAX`, four billion lines being far beyond any real file).
    seen: HashMap<Fingerprint, u32, BuildHasherDefault<PassThrough>>,
    keys: Keys,
}

impl Validator {
    pub(super) fn new(columns: Columns, list: Option<ListCategories>) -> Self {
        Self {
            columns,
            list,
            list_name: None,
            seen: HashMap::default(),
            keys: Keys::default(),
        }
    }

    /// Checks one record; on success remembers its address so a later copy is a duplicate.
    pub(super) fn check(&mut self, record: Fields<'_>, line: u64) -> Result<SubscriberRow, String> {
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
        let fingerprint = fingerprint(&self.keys, &email);
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

    /// A cell as it was before the export neutralised formulas in it.
    fn cell<'a>(record: Fields<'a>, column: Option<usize>) -> Option<Cow<'a, [u8]>> {
        column.and_then(|i| record.get(i)).map(restore)
    }

    fn email(&self, record: Fields<'_>) -> Result<EmailAddress, String> {
        let cell = Self::cell(record, Some(self.columns.email)).unwrap_or_default();
        let raw = cell.trim_ascii();
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

    fn name(&self, record: Fields<'_>) -> Result<Option<String>, String> {
        let Some(raw) = Self::cell(record, self.columns.name) else {
            return Ok(None);
        };
        let text = utf8("name", &raw)?;
        // Measured as written, the way the README documents and reports it; the cleaned name
        // is never longer.
        let chars = text.chars().count();
        if chars > MAX_NAME_CHARS {
            return Err(format!(
                "name is {chars} characters long; at most {MAX_NAME_CHARS} are allowed"
            ));
        }
        // The same cleaning as every other path (CLI, feeds, web): line breaks inside a
        // quoted cell become a space, control characters go.
        let name = clean_text_within(text, MAX_NAME_CHARS).map_err(|e| format!("name {e}"))?;
        Ok((!name.is_empty()).then_some(name))
    }

    fn categories(&self, record: Fields<'_>) -> Result<Option<CategorySet>, String> {
        let Some(raw) = Self::cell(record, self.columns.categories) else {
            return Ok(None);
        };
        let text = utf8("categories", &raw)?;
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

/// Decodes a cell, naming the column and the first bad byte when it is not UTF-8.
fn utf8<'a>(column: &str, raw: &'a [u8]) -> Result<&'a str, String> {
    std::str::from_utf8(raw).map_err(|e| {
        let at = e.valid_up_to();
        let byte = raw.get(at).copied().unwrap_or_default();
        format!(
            "column {column:?} is not valid UTF-8 (byte 0x{byte:02X} at position {}); save the file as UTF-8",
            at + 1
        )
    })
}

/// The duplicate-detection key: keyed hashes of [`EmailAddress::canonical`], cut to 96 bits.
fn fingerprint(keys: &Keys, email: &EmailAddress) -> Fingerprint {
    let s = email.as_str();
    let (a, b) = if s.is_ascii() {
        // The common case, without allocating: an address is at most 254 bytes.
        let mut buf = [0u8; MAX_EMAIL_LEN];
        let lower = &mut buf[..s.len()];
        lower.copy_from_slice(s.as_bytes());
        lower.make_ascii_lowercase();
        let lower: &[u8] = lower;
        (keys.0.hash_one(lower), keys.1.hash_one(lower))
    } else {
        let canonical = email.canonical();
        let lower = canonical.as_bytes();
        (keys.0.hash_one(lower), keys.1.hash_one(lower))
    };
    // Truncation intended: 64 + 32 of the 128 bits.
    Fingerprint([(a >> 32) as u32, a as u32, b as u32])
}
