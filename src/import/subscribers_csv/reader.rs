//! Raw CSV records, each with the physical line it starts on, over `csv-core`.
//!
//! We drive csv-core ourselves rather than through the `csv` crate for three things it does
//! not give: the raw bytes of each record (to see how a quoted cell ended), a restart point
//! after a broken quote, and line numbers we count ourselves for whichever line ending the
//! file uses.
//!
//! - **Line endings:** LF and CRLF (a CR before LF is left in the last cell, where the usual
//!   trimming removes it), or CR alone as old Mac spreadsheets write it: the first line break
//!   of the file decides.
//! - **Broken quotes:** csv-core, like most CSV readers, never fails: a quote that is never
//!   closed makes the rest of the file one cell, and a quote closed and followed by more text
//!   (`"Foo` … `bar,"Baz"`) glues lines together. A quoted cell spanning lines is therefore only
//!   accepted when it is closed properly, by a quote followed by a comma, the line end or the
//!   end of the file (RFC 4180 §2). Otherwise the record is reported as [`Raw::Broken`] with the
//!   line the quote opened on, and reading starts again on the line after it, so the rows that
//!   the quote would have swallowed still arrive.

use std::io::{self, Read};

/// How much is read from the input at a time.
const CHUNK: usize = 64 * 1024;

/// The UTF-8 byte-order mark that spreadsheet programs (Excel's "CSV UTF-8") write first.
const BOM: &[u8] = b"\xEF\xBB\xBF";

const QUOTE: u8 = b'"';
const COMMA: u8 = b',';

/// One record from [`Records::next`].
#[derive(Debug)]
pub(super) enum Raw {
    /// A record; its fields are [`Records::fields`] until the next call.
    Record {
        /// The physical line it starts on (the first line is 1).
        line: u64,
    },
    /// A record that a broken quote made unreadable.
    Broken {
        /// The physical line it starts on.
        line: u64,
        /// What is wrong, for a person.
        reason: String,
    },
}

/// The fields of the last record read.
#[derive(Debug, Clone, Copy)]
pub(super) struct Fields<'a> {
    data: &'a [u8],
    ends: &'a [usize],
}

impl<'a> Fields<'a> {
    /// The number of fields.
    pub(super) fn len(&self) -> usize {
        self.ends.len()
    }

    /// Field `i`, if the record has it.
    pub(super) fn get(&self, i: usize) -> Option<&'a [u8]> {
        let end = *self.ends.get(i)?;
        let start = if i == 0 { 0 } else { self.ends[i - 1] };
        self.data.get(start..end)
    }

    /// Every field in order.
    pub(super) fn iter(&self) -> impl Iterator<Item = &'a [u8]> + '_ {
        (0..self.len()).filter_map(|i| self.get(i))
    }
}

/// A streaming source of [`Raw`] records.
pub(super) struct Records<R> {
    input: R,
    /// `buf[start..pos]` is the current record's raw bytes read so far, `buf[pos..end]` is
    /// read from the input but not yet parsed.
    buf: Vec<u8>,
    start: usize,
    pos: usize,
    end: usize,
    eof: bool,
    core: csv_core::Reader,
    terminator: u8,
    /// The physical line `buf[start]` is on.
    line: u64,
    fields: Vec<u8>,
    ends: Vec<usize>,
    nfields: usize,
    nends: usize,
}

impl<R: Read> Records<R> {
    /// Reads the first chunk to skip a byte-order mark and choose the line ending.
    pub(super) fn new(input: R) -> io::Result<Self> {
        let mut records = Self {
            input,
            buf: vec![0; CHUNK],
            start: 0,
            pos: 0,
            end: 0,
            eof: false,
            core: csv_core::Reader::new(),
            terminator: b'\n',
            line: 1,
            fields: vec![0; 1024],
            ends: vec![0; 64],
            nfields: 0,
            nends: 0,
        };
        // Short reads may deliver less than the BOM or the first line break; fill until we
        // see past both (or the first chunk is full, or the input ends).
        loop {
            let head = &records.buf[..records.end];
            let seen_break =
                memchr::memchr2(b'\n', b'\r', head).is_some_and(|i| i + 1 < head.len());
            if (seen_break && head.len() >= BOM.len()) || records.end == CHUNK || records.eof {
                break;
            }
            records.fill()?;
        }
        if records.buf[..records.end].starts_with(BOM) {
            records.start = BOM.len();
            records.pos = BOM.len();
        }
        records.terminator = sniff_terminator(&records.buf[records.pos..records.end]);
        records.core = core_reader(records.terminator);
        Ok(records)
    }

    /// The physical line reading has reached.
    pub(super) fn line(&self) -> u64 {
        self.line
    }

    /// The fields of the record [`Records::next`] returned last as [`Raw::Record`].
    pub(super) fn fields(&self) -> Fields<'_> {
        Fields {
            data: &self.fields[..self.nfields],
            ends: &self.ends[..self.nends],
        }
    }

    /// The next record, or `None` at the end of the input.
    pub(super) fn next(&mut self) -> io::Result<Option<Raw>> {
        self.nfields = 0;
        self.nends = 0;
        loop {
            if self.pos == self.end && !self.eof {
                self.fill()?;
            }
            let input = &self.buf[self.pos..self.end];
            let at_eof = input.is_empty();
            let (result, nin, nout, nend) = self.core.read_record(
                input,
                &mut self.fields[self.nfields..],
                &mut self.ends[self.nends..],
            );
            self.pos += nin;
            self.nfields += nout;
            self.nends += nend;
            match result {
                csv_core::ReadRecordResult::InputEmpty if !at_eof => {}
                csv_core::ReadRecordResult::OutputFull => {
                    let len = self.fields.len();
                    self.fields.resize(len * 2, 0);
                }
                csv_core::ReadRecordResult::OutputEndsFull => {
                    let len = self.ends.len();
                    self.ends.resize(len * 2, 0);
                }
                csv_core::ReadRecordResult::Record => return Ok(Some(self.finish(at_eof))),
                // csv-core answers an empty input with a record or the end; treat anything
                // else there as the end too, so a surprise cannot loop forever.
                csv_core::ReadRecordResult::InputEmpty | csv_core::ReadRecordResult::End => {
                    return Ok(None);
                }
            }
        }
    }

    /// Turns the bytes of the record just parsed into a [`Raw`], restarting after a broken
    /// quote.
    fn finish(&mut self, at_eof: bool) -> Raw {
        let raw = &self.buf[self.start..self.pos];
        let t = self.terminator;
        let leading = raw.iter().take_while(|b| **b == t).count();
        let line = self.line + leading as u64;
        let body = &raw[leading..];
        // Only a record whose quoted cell spans lines, or that ran into the end of the input,
        // can hide a broken quote; one line ending at its terminator cannot.
        let interior_breaks = memchr::memchr_iter(t, body.strip_suffix(&[t]).unwrap_or(body))
            .next()
            .is_some();
        let broken = if (interior_breaks || at_eof) && body.contains(&QUOTE) {
            broken_quote(body, t)
        } else {
            None
        };
        match broken {
            None => {
                self.line += memchr::memchr_iter(t, raw).count() as u64;
                self.start = self.pos;
                Raw::Record { line }
            }
            Some(broken) => {
                let before = &body[..broken.opened];
                let quote_line = line + memchr::memchr_iter(t, before).count() as u64;
                // Start again on the line after the one the quote opened on.
                let next_line = memchr::memchr(t, &body[broken.opened..]);
                let restart = next_line.map_or(body.len(), |i| broken.opened + i + 1);
                let restart_at = self.start + leading + restart;
                self.line = quote_line + u64::from(next_line.is_some());
                self.start = restart_at;
                self.pos = restart_at;
                self.core = core_reader(t);
                let opened = if quote_line == line {
                    "the quoted cell opened here".to_owned()
                } else {
                    format!("the quoted cell opened on line {quote_line}")
                };
                let reason = match broken.kind {
                    BrokenKind::Unterminated => format!(
                        "unterminated quote: {opened} is never closed; the row is skipped and the lines after it are read as rows"
                    ),
                    BrokenKind::TextAfterClose { closed_on } => format!(
                        "unterminated quote: {opened} spans to line {} where a quote is followed by more text; the row is skipped and the lines after it are read as rows",
                        line + closed_on
                    ),
                };
                Raw::Broken { line, reason }
            }
        }
    }

    /// Reads more input after what is buffered, moving the current record to the front first.
    fn fill(&mut self) -> io::Result<()> {
        if self.start > 0 {
            self.buf.copy_within(self.start..self.end, 0);
            self.pos -= self.start;
            self.end -= self.start;
            self.start = 0;
        }
        if self.end == self.buf.len() {
            // One record longer than the buffer: let it grow.
            let len = self.buf.len();
            self.buf.resize(len * 2, 0);
        }
        loop {
            match self.input.read(&mut self.buf[self.end..]) {
                Ok(0) => {
                    self.eof = true;
                    return Ok(());
                }
                Ok(n) => {
                    self.end += n;
                    return Ok(());
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
    }
}

/// A csv-core reader for the dialect we read: `,`, `"` doubled inside quotes, one-byte line
/// terminator.
fn core_reader(terminator: u8) -> csv_core::Reader {
    csv_core::ReaderBuilder::new()
        .terminator(csv_core::Terminator::Any(terminator))
        .build()
}

/// The line terminator: CR when the first line break is a CR not followed by LF, else LF.
fn sniff_terminator(head: &[u8]) -> u8 {
    match memchr::memchr2(b'\n', b'\r', head) {
        Some(i) if head[i] == b'\r' && head.get(i + 1) != Some(&b'\n') => b'\r',
        _ => b'\n',
    }
}

/// A quoted cell that does not end the way RFC 4180 says.
struct Broken {
    /// Where in the record's bytes its opening quote is.
    opened: usize,
    kind: BrokenKind,
}

enum BrokenKind {
    /// The record ran into the end of the input inside the quotes.
    Unterminated,
    /// Closed on this many lines after the record's first, and followed by more text.
    TextAfterClose { closed_on: u64 },
}

/// Follows csv-core's states over one record's bytes (without its leading blank lines) and
/// finds a quoted cell that spans lines and is not closed properly.
fn broken_quote(record: &[u8], terminator: u8) -> Option<Broken> {
    #[derive(Clone, Copy, PartialEq)]
    enum State {
        StartField,
        InField,
        InQuotes,
        QuoteInQuotes,
    }
    let mut state = State::StartField;
    let mut opened = 0;
    let mut breaks_in_quotes = 0u64;
    let mut lines = 0u64;
    for (i, &b) in record.iter().enumerate() {
        if b == terminator {
            lines += 1;
        }
        state = match state {
            State::StartField if b == QUOTE => {
                opened = i;
                breaks_in_quotes = 0;
                State::InQuotes
            }
            State::StartField | State::InField if b == COMMA || b == terminator => {
                State::StartField
            }
            State::StartField | State::InField => State::InField,
            State::InQuotes if b == QUOTE => State::QuoteInQuotes,
            State::InQuotes => {
                if b == terminator {
                    breaks_in_quotes += 1;
                }
                State::InQuotes
            }
            // A doubled quote is one quote inside the cell.
            State::QuoteInQuotes if b == QUOTE => State::InQuotes,
            State::QuoteInQuotes if b == COMMA || b == terminator => State::StartField,
            // Spaces and a CR before the line end are tolerated after the closing quote.
            State::QuoteInQuotes if matches!(b, b' ' | b'\t' | b'\r') => State::QuoteInQuotes,
            State::QuoteInQuotes => {
                if breaks_in_quotes > 0 {
                    return Some(Broken {
                        opened,
                        kind: BrokenKind::TextAfterClose { closed_on: lines },
                    });
                }
                State::InField
            }
        };
    }
    (state == State::InQuotes).then_some(Broken {
        opened,
        kind: BrokenKind::Unterminated,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every record as (line, fields) or (line, reason).
    fn read(input: &[u8]) -> Vec<(u64, Result<Vec<String>, String>)> {
        // A reader that hands out three bytes at a time, to cross every buffer boundary.
        struct Trickle<'a>(&'a [u8]);
        impl Read for Trickle<'_> {
            fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
                let n = buf.len().min(3).min(self.0.len());
                buf[..n].copy_from_slice(&self.0[..n]);
                self.0 = &self.0[n..];
                Ok(n)
            }
        }
        let mut records = Records::new(Trickle(input)).unwrap();
        let mut out = Vec::new();
        while let Some(raw) = records.next().unwrap() {
            out.push(match raw {
                Raw::Record { line } => (
                    line,
                    Ok(records
                        .fields()
                        .iter()
                        .map(|f| String::from_utf8_lossy(f).into_owned())
                        .collect()),
                ),
                Raw::Broken { line, reason } => (line, Err(reason)),
            });
        }
        out
    }

    fn ok(line: u64, fields: &[&str]) -> (u64, Result<Vec<String>, String>) {
        (line, Ok(fields.iter().map(|f| (*f).to_owned()).collect()))
    }

    #[test]
    fn lines_count_blank_lines_and_quoted_breaks() {
        assert_eq!(
            read(b"\xEF\xBB\xBFa,b\n\n\"x\ny\",z\nlast"),
            [ok(1, &["a", "b"]), ok(3, &["x\ny", "z"]), ok(5, &["last"])]
        );
    }

    #[test]
    fn cr_only_files_are_read() {
        assert_eq!(
            read(b"email,name\rx@example.org,X\r\ry@example.org,\"Y\rZ\"\r"),
            [
                ok(1, &["email", "name"]),
                ok(2, &["x@example.org", "X"]),
                ok(4, &["y@example.org", "Y\rZ"]),
            ]
        );
        // CRLF stays LF-terminated with the CR in the last cell.
        assert_eq!(read(b"a\r\nb\r\n"), [ok(1, &["a\r"]), ok(2, &["b\r"])]);
    }

    #[test]
    fn an_unterminated_quote_is_reported_and_the_next_lines_still_read() {
        let got =
            read(b"email,name\nun4@example.org,\"Foo\nun5@example.org,Bar\nun6@example.org,Baz\n");
        assert_eq!(got[0], ok(1, &["email", "name"]));
        assert_eq!(got[1].0, 2);
        let reason = got[1].1.as_ref().unwrap_err();
        assert!(
            reason.starts_with("unterminated quote: the quoted cell opened here is never closed"),
            "{reason}"
        );
        assert_eq!(
            &got[2..],
            [
                ok(3, &["un5@example.org", "Bar"]),
                ok(4, &["un6@example.org", "Baz"])
            ]
        );
    }

    #[test]
    fn a_quote_closed_lines_later_before_more_text_is_broken() {
        let got = read(b"a,\"Foo\nb,Bar\nc,\"Baz\"\n");
        assert_eq!(got[0].0, 1);
        assert!(
            got[0].1.as_ref().unwrap_err().contains("spans to line 3"),
            "{got:?}"
        );
        assert_eq!(&got[1..], [ok(2, &["b", "Bar"]), ok(3, &["c", "Baz"])]);
        // Properly closed multi-line cells, with CRLF and spaces after the quote, are fine.
        assert_eq!(
            read(b"a,\"x\r\ny\" \r\nb\r\n"),
            [ok(1, &["a", "x\r\ny \r"]), ok(3, &["b\r"])]
        );
        // On one line, text after a closing quote is csv's usual leniency.
        assert_eq!(read(b"a,\"b\"c\n"), [ok(1, &["a", "bc"])]);
    }

    #[test]
    fn a_quote_opened_on_the_last_line_is_reported() {
        let got = read(b"a\n\"b");
        assert_eq!(got[0], ok(1, &["a"]));
        assert_eq!(got[1].0, 2);
        assert!(got[1].1.is_err());
        assert_eq!(got.len(), 2);
    }
}
