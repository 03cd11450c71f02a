//! A pre-encoded MIME message with holes: personalising a message is a splice.
//!
//! [`MessageTemplate::new`] writes the complete message once per edition variant: the header
//! block (RFC 5322), a `multipart/alternative` body (RFC 2046 §5.1.4) with a text/plain part
//! and a text/html part, both UTF-8 in quoted-printable (RFC 2045 §6.7). Wherever a reader's
//! value goes it leaves a hole. [`MessageTemplate::personalise`] then copies the encoded chunks
//! and the reader's values into the caller's buffer, so the cost per reader is a few
//! `extend_from_slice` calls.
//!
//! The holes are kept atomic: a reader's token is a fixed-length run of QP-literal characters
//! ([`Token::LEN`] of `[A-Za-z0-9_-]`), so the encoder reserves that many columns on one line
//! and never puts a soft line break inside. A reader's name varies in length, so the encoder
//! ends the line before a name hole with a soft break; the name is encoded per reader on lines
//! of its own and ends with a soft break too, which keeps every line within 76 characters.
//!
//! Each part's transfer encoding is the smaller for its content (RFC 2045 §6.7 and §6.8):
//! quoted-printable for English, where most bytes stand for themselves, and base64 for Urdu,
//! where quoted-printable writes each two-byte letter as six characters (an Urdu digest would
//! be 2.6 times its size, and Gmail clips a message past about 102 KB). In base64 a hole
//! cannot simply be spliced, since every 3 bytes become 4 characters: a reader's values are
//! encoded with the 0–2 bytes before them and the bytes after them up to a 3-byte boundary
//! as one small per-reader *chunk*, which ends its base64 line (decoders skip line breaks,
//! RFC 2045 §6.8), so the static text after it starts on a fresh line and a fresh quantum.
//! A name varies in length, so its chunk runs to the end of its line and is padded there with
//! 0–2 spaces before the CRLF: trailing spaces no reader sees (after `</tr>` in the HTML, at
//! a line's end in the text).
//!
//! The output is 7-bit clean with CRLF line endings: non-ASCII header text is written as
//! RFC 2047 encoded-words.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use chrono::{DateTime, Utc};
use lettre::message::Mailbox;
use rand::distr::{Alphanumeric, SampleString};

use crate::domain::{EmailAddress, Hole, Segment, Template, Token, WebUrl};

/// Headers that are the same for every reader of an edition variant.
#[derive(Debug, Clone)]
pub struct CommonHeaders {
    /// `From:` (RFC 5322 §3.6.2).
    pub from: Mailbox,
    /// `Reply-To:`, when replies should go elsewhere than `From`.
    pub reply_to: Option<Mailbox>,
    /// The subject, any Unicode (encoded as RFC 2047 encoded-words when not plain ASCII).
    pub subject: String,
    /// The origination date (RFC 5322 §3.6.1), written with the zone `+0000`.
    pub date: DateTime<Utc>,
    /// `List-Id` (RFC 2919): `Daily Digest <daily.news.example.com>`, or just the id.
    pub list_id: String,
    /// The public base URL: the one-click link is `{public_url}/unsubscribe/{token}`.
    pub public_url: WebUrl,
    /// The mailbox for `mailto:` unsubscribes, e.g. `unsubscribe@news.example.com`; empty to
    /// leave the `mailto:` URI out.
    pub unsubscribe_mailbox: String,
    /// The right-hand side of Message-IDs made with [`message_id`].
    pub message_id_domain: String,
    /// `Feedback-ID` for Gmail's feedback loop (`a:b:c:SenderId`); never per reader.
    pub feedback_id: Option<String>,
}

/// One reader's values for [`MessageTemplate::personalise`].
#[derive(Debug, Clone, Copy)]
pub struct Recipient<'a> {
    /// The reader's address, written in `To:`.
    pub to: &'a EmailAddress,
    /// The reader's name: the `To:` display name and the greeting's name hole.
    pub name: Option<&'a str>,
    /// The reader's token: [`Token::LEN`] characters of `[A-Za-z0-9_-]`.
    pub token: &'a str,
    /// The Message-ID with its angle brackets, as made by [`message_id`].
    pub message_id: &'a str,
}

/// Makes a Message-ID (RFC 5322 §3.6.4) for the message of one edition to one subscriber:
/// `<e123.s456.RANDOM@domain>`.
///
/// The random part keeps ids unique across installations and database resets that reuse row
/// ids. Store the result with the delivery and reuse it on retries, so that a message sent
/// twice after a crash carries the same id and clients can fold the copies together.
pub fn message_id(edition_id: i64, subscriber_id: i64, domain: &str) -> String {
    let random = Alphanumeric.sample_string(&mut rand::rng(), 16);
    let domain: String = domain
        .trim()
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-'))
        .map(|c| c.to_ascii_lowercase())
        .collect();
    let domain = if domain.is_empty() {
        "localhost".to_owned()
    } else {
        domain
    };
    format!("<e{edition_id}.s{subscriber_id}.{random}@{domain}>")
}

/// Which body part a name hole is in: it decides how the name is escaped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Part {
    Text,
    Html,
}

/// One chunk of the encoded message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Piece {
    /// `bytes[start..end]`, the same for every reader.
    Static { start: usize, end: usize },
    /// The `To:` header value.
    To,
    /// The Message-ID header value.
    MessageId,
    /// The token inside a URL (header or body): [`Token::LEN`] QP-literal characters.
    Token,
    /// The reader's name, encoded on lines of its own.
    Name(Part),
    /// A base64 chunk holding holes: an index into [`MessageTemplate::chunks`].
    Chunk(usize),
}

/// A part's Content-Transfer-Encoding (RFC 2045 §6).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Encoding {
    QuotedPrintable,
    Base64,
}

impl Encoding {
    /// The smaller encoding for `t`'s static text, estimated: quoted-printable writes a byte
    /// that cannot stand for itself as three characters and adds a soft break per 75
    /// columns; base64 writes 4 characters per 3 bytes and a CRLF per 76.
    fn for_template(t: &Template) -> Self {
        let (mut bytes, mut qp) = (0usize, 0usize);
        for seg in t.segments() {
            if let Segment::Static(s) = seg {
                for &b in s.as_bytes() {
                    bytes += 1;
                    qp += if qp_literal(b) || matches!(b, b' ' | b'\n') {
                        1
                    } else {
                        3
                    };
                }
            }
        }
        let qp = qp + qp / QP_CONTENT * 3;
        let b64 = bytes.div_ceil(3) * 4;
        let b64 = b64 + b64 / B64_LINE * 2;
        if b64 < qp {
            Self::Base64
        } else {
            Self::QuotedPrintable
        }
    }

    fn header(self) -> &'static str {
        match self {
            Self::QuotedPrintable => "quoted-printable",
            Self::Base64 => "base64",
        }
    }
}

/// One reader's part of a base64 body: the bytes around its holes, encoded per reader.
#[derive(Debug, Clone)]
struct Chunk {
    /// The base64 column the chunk starts at (a multiple of 4).
    col: usize,
    items: Vec<ChunkItem>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ChunkItem {
    /// `lits[start..end]`: static bytes before, between or after the holes.
    Lit {
        start: usize,
        end: usize,
    },
    Token,
    Name(Part),
    /// Where 0–2 spaces go so the chunk ends on a 3-byte boundary (just before a CRLF).
    Pad,
}

/// A whole message, encoded once, with holes for each reader's values.
#[derive(Debug, Clone)]
pub struct MessageTemplate {
    bytes: Vec<u8>,
    pieces: Vec<Piece>,
    chunks: Vec<Chunk>,
    /// The static bytes of the chunks, unencoded.
    lits: Vec<u8>,
    message_id_domain: String,
    size_hint: usize,
}

/// RFC 5322 §2.1.1: lines SHOULD be at most 78 characters.
const HEADER_LINE: usize = 78;
/// RFC 2045 §6.7 (5): encoded lines are at most 76 characters; a soft break's `=` counts,
/// so at most 75 characters of content come before one.
const QP_CONTENT: usize = 75;
/// RFC 2045 §6.8: base64 lines are at most 76 characters.
const B64_LINE: usize = 76;
/// Room reserved for a per-reader `To:` header and Message-ID in [`MessageTemplate::size_hint`].
const PER_READER_HEADERS: usize = 512;

impl MessageTemplate {
    /// Encodes the message: headers from `h`, then the text part from `text` and the HTML
    /// part from `html`.
    ///
    /// Header values are made safe rather than rejected: control characters (a CR or LF
    /// would inject a header) become spaces.
    pub fn new(h: &CommonHeaders, text: &Template, html: &Template) -> Self {
        Self::build(h, text, html, None)
    }

    /// [`Self::new`] with both parts in quoted-printable, for the tests of that encoder.
    #[cfg(test)]
    fn new_qp(h: &CommonHeaders, text: &Template, html: &Template) -> Self {
        Self::build(h, text, html, Some(Encoding::QuotedPrintable))
    }

    fn build(h: &CommonHeaders, text: &Template, html: &Template, force: Option<Encoding>) -> Self {
        let mut b = Builder::default();

        // Header fields (RFC 5322 §3.6). The order matches what most mailers write; DKIM signs
        // by name, not by position.
        write_mailbox_header(
            &mut b.bytes,
            "From",
            mailbox_name(&h.from),
            h.from.email.as_ref(),
        );
        if let Some(r) = &h.reply_to {
            write_mailbox_header(&mut b.bytes, "Reply-To", mailbox_name(r), r.email.as_ref());
        }
        b.bytes.extend_from_slice(b"To: ");
        b.hole(Piece::To);
        b.bytes.extend_from_slice(b"\r\n");
        write_unstructured(&mut b.bytes, "Subject", &h.subject);
        // RFC 5322 §3.3: `+0000` is UTC; `-0000` would mean "zone unknown".
        b.push_str(&format!(
            "Date: {}\r\n",
            h.date.format("%a, %d %b %Y %H:%M:%S +0000")
        ));
        b.bytes.extend_from_slice(b"Message-ID: ");
        b.hole(Piece::MessageId);
        b.bytes.extend_from_slice(b"\r\n");
        b.bytes.extend_from_slice(b"MIME-Version: 1.0\r\n");
        write_list_id(&mut b.bytes, &h.list_id);

        // RFC 2369 §2-3: angle-bracketed URIs separated by commas, leftmost preferred. The
        // header is folded only at the whitespace between the URIs. RFC 8058 §3.1: one HTTPS
        // URI is required for one-click; the mailto: URI serves clients that prefer mail.
        b.bytes.extend_from_slice(b"List-Unsubscribe: <");
        push_url(&mut b.bytes, h.public_url.base());
        b.bytes.extend_from_slice(b"/unsubscribe/");
        b.hole(Piece::Token);
        b.bytes.push(b'>');
        let mailbox = h.unsubscribe_mailbox.trim();
        if !mailbox.is_empty() {
            // RFC 6068: the address and the query are percent-encoded where needed.
            b.bytes.extend_from_slice(b",\r\n <mailto:");
            push_mailto_addr(&mut b.bytes, mailbox);
            b.bytes.extend_from_slice(b"?subject=unsubscribe%20");
            b.hole(Piece::Token);
            b.bytes.push(b'>');
        }
        b.bytes.extend_from_slice(b"\r\n");
        // RFC 8058 §3.1: exactly this key/value pair.
        b.bytes
            .extend_from_slice(b"List-Unsubscribe-Post: List-Unsubscribe=One-Click\r\n");
        // RFC 3834 §5: keeps auto-responders (out-of-office) away from the bounce address.
        b.bytes
            .extend_from_slice(b"Auto-Submitted: auto-generated\r\n");
        if let Some(f) = &h.feedback_id {
            let f = sanitize_header_text(f);
            if !f.is_empty() {
                b.push_str(&format!("Feedback-ID: {f}\r\n"));
            }
        }

        // RFC 2046 §5.1.1: the boundary must not occur in the parts. Quoted-printable output
        // never contains "=_" (an '=' is always followed by hex digits or a line break), nor
        // does base64 (whose '=' only pads the end), so a boundary starting with "=_" cannot
        // collide with either part.
        let boundary = format!(
            "=_dispatch_{}",
            Alphanumeric.sample_string(&mut rand::rng(), 24)
        );
        b.push_str(&format!(
            "Content-Type: multipart/alternative;\r\n boundary=\"{boundary}\"\r\n\r\n"
        ));

        // RFC 2046 §5.1.4: alternatives in increasing order of faithfulness, so the plain text
        // first and the HTML last (the one clients show when they can).
        for (part, template, mime) in [
            (Part::Text, text, "text/plain"),
            (Part::Html, html, "text/html"),
        ] {
            let encoding = force.unwrap_or_else(|| Encoding::for_template(template));
            b.push_str(&format!(
                "--{boundary}\r\nContent-Type: {mime}; charset=utf-8\r\n\
                 Content-Transfer-Encoding: {}\r\n\r\n",
                encoding.header()
            ));
            match encoding {
                Encoding::QuotedPrintable => b.encode_body(template, part),
                Encoding::Base64 => b.encode_base64(template, part),
            }
            // The CRLF before a boundary delimiter belongs to the delimiter (RFC 2046 §5.1.1).
            b.bytes.extend_from_slice(b"\r\n");
        }
        b.push_str(&format!("--{boundary}--\r\n"));
        b.finish(&h.message_id_domain)
    }

    /// Appends the complete message for one reader to `out` (which the caller clears and
    /// reuses: nothing else is allocated).
    ///
    /// The token must be [`Token::LEN`] characters of `[A-Za-z0-9_-]`, as the token module
    /// makes them. Should a caller break that rule, other bytes are percent-encoded so the
    /// message stays well-formed (but lines may then exceed 76 characters).
    ///
    /// Everything written is 7-bit except an internationalised address (RFC 6531), which is
    /// written as it is: sending it needs a relay that offers SMTPUTF8.
    pub fn personalise(&self, r: &Recipient<'_>, out: &mut Vec<u8>) {
        debug_assert!(
            is_valid_token(r.token),
            "token must be {} URL-safe characters",
            Token::LEN
        );
        out.reserve(self.size_hint);
        for piece in &self.pieces {
            match *piece {
                Piece::Static { start, end } => out.extend_from_slice(&self.bytes[start..end]),
                Piece::Token => push_token(out, r.token),
                Piece::To => write_mailbox(out, 4, r.name.unwrap_or(""), r.to.as_str()),
                Piece::MessageId => push_visible(out, r.message_id),
                Piece::Name(part) => encode_name(out, r.name.unwrap_or(""), part),
                Piece::Chunk(i) => self.encode_chunk(i, r, out),
            }
        }
    }

    /// Writes chunk `i` for reader `r`: its bytes, padded, in base64 from the chunk's column,
    /// then a line break.
    fn encode_chunk(&self, i: usize, r: &Recipient<'_>, out: &mut Vec<u8>) {
        let Some(chunk) = self.chunks.get(i) else {
            return;
        };
        thread_local! {
            // One scratch buffer per sending thread: a chunk is assembled here before it is
            // encoded, so personalising allocates nothing per chunk or per reader.
            static RAW: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
        }
        RAW.with_borrow_mut(|raw| {
            raw.clear();
            let mut pad_at = None;
            for item in &chunk.items {
                match *item {
                    ChunkItem::Lit { start, end } => raw.extend_from_slice(&self.lits[start..end]),
                    ChunkItem::Token => push_token(raw, r.token),
                    ChunkItem::Name(part) => push_name(raw, r.name.unwrap_or(""), part),
                    ChunkItem::Pad => pad_at = Some(raw.len()),
                }
            }
            if let Some(at) = pad_at {
                let pad = (3 - raw.len() % 3) % 3;
                raw.splice(at..at, std::iter::repeat_n(b' ', pad));
            }
            let mut col = chunk.col;
            b64_lines(out, &mut col, raw);
            if col > 0 {
                out.extend_from_slice(b"\r\n");
            }
        });
    }

    /// The Message-ID domain from the headers, for [`message_id`].
    pub fn message_id_domain(&self) -> &str {
        &self.message_id_domain
    }

    /// About how many bytes one personalised message takes.
    pub fn size_hint(&self) -> usize {
        self.size_hint
    }
}

/// Collects the encoded bytes and the piece list.
#[derive(Default)]
struct Builder {
    bytes: Vec<u8>,
    pieces: Vec<Piece>,
    chunks: Vec<Chunk>,
    lits: Vec<u8>,
    /// Where the current static run started.
    start: usize,
}

impl Builder {
    fn push_str(&mut self, s: &str) {
        self.bytes.extend_from_slice(s.as_bytes());
    }

    fn hole(&mut self, piece: Piece) {
        if self.bytes.len() > self.start {
            self.pieces.push(Piece::Static {
                start: self.start,
                end: self.bytes.len(),
            });
        }
        self.pieces.push(piece);
        self.start = self.bytes.len();
    }

    /// Quoted-printable encodes a body template (RFC 2045 §6.7), leaving holes.
    fn encode_body(&mut self, t: &Template, part: Part) {
        let segs = t.segments();
        let mut col = 0usize;
        for (i, seg) in segs.iter().enumerate() {
            match seg {
                Segment::Static(s) => {
                    let last = i + 1 == segs.len();
                    qp_encode(&mut self.bytes, &mut col, s.as_bytes(), last);
                }
                Segment::Hole(Hole::Token) => {
                    // The token is Token::LEN literal columns that must stay on one line.
                    if col + Token::LEN > QP_CONTENT {
                        soft_break(&mut self.bytes, &mut col);
                    }
                    self.hole(Piece::Token);
                    col += Token::LEN;
                }
                Segment::Hole(Hole::Name) => {
                    // The name is encoded per reader from column 0 and ends with its own soft
                    // break, so whatever follows starts a fresh line too.
                    if col > 0 {
                        soft_break(&mut self.bytes, &mut col);
                    }
                    self.hole(Piece::Name(part));
                    col = 0;
                }
            }
        }
    }

    /// Base64 encodes a body template (RFC 2045 §6.8) with its line breaks as CRLF (the
    /// canonical form of text, RFC 2046 §4.1.1), leaving holes as per-reader chunks.
    fn encode_base64(&mut self, t: &Template, part: Part) {
        enum Item {
            Static(Vec<u8>),
            Hole(Hole),
        }
        let mut items: Vec<Item> = t
            .segments()
            .iter()
            .map(|seg| match seg {
                Segment::Static(s) => Item::Static(canonical_crlf(s.as_bytes())),
                Segment::Hole(h) => Item::Hole(*h),
            })
            .collect();
        let mut col = 0usize;
        let mut carry: Vec<u8> = Vec::new();
        let mut i = 0;
        while i < items.len() {
            if let Item::Static(bytes) = &items[i] {
                carry.extend_from_slice(bytes);
                let whole = carry.len() / 3 * 3;
                b64_lines(&mut self.bytes, &mut col, &carry[..whole]);
                carry.drain(..whole);
                i += 1;
                continue;
            }
            // A hole: the chunk takes the carried bytes, the holes, and what follows up to a
            // 3-byte boundary (fixed-length tokens) or to the end of the line (a name).
            let mut chunk = Chunk {
                col,
                items: Vec::new(),
            };
            let mut len = 0usize;
            let mut has_name = false;
            let lit = |b: &mut Builder, chunk: &mut Chunk, bytes: &[u8]| {
                if !bytes.is_empty() {
                    let start = b.lits.len();
                    b.lits.extend_from_slice(bytes);
                    chunk.items.push(ChunkItem::Lit {
                        start,
                        end: b.lits.len(),
                    });
                }
            };
            lit(self, &mut chunk, &carry);
            len += carry.len();
            carry.clear();
            while let Some(item) = items.get_mut(i) {
                match item {
                    Item::Hole(Hole::Token) => {
                        chunk.items.push(ChunkItem::Token);
                        len += Token::LEN;
                        i += 1;
                    }
                    Item::Hole(Hole::Name) => {
                        chunk.items.push(ChunkItem::Name(part));
                        has_name = true;
                        i += 1;
                    }
                    Item::Static(bytes) if has_name => {
                        if let Some(p) = bytes.windows(2).position(|w| w == b"\r\n") {
                            let rest = bytes.split_off(p + 2);
                            lit(self, &mut chunk, &bytes[..p]);
                            chunk.items.push(ChunkItem::Pad);
                            lit(self, &mut chunk, b"\r\n");
                            *bytes = rest;
                            break;
                        }
                        lit(self, &mut chunk, bytes);
                        i += 1;
                    }
                    Item::Static(bytes) => {
                        let need = (3 - len % 3) % 3;
                        let take = need.min(bytes.len());
                        let rest = bytes.split_off(take);
                        lit(self, &mut chunk, bytes);
                        len += take;
                        *bytes = rest;
                        if len.is_multiple_of(3) {
                            break;
                        }
                        i += 1;
                    }
                }
            }
            self.chunks.push(chunk);
            self.hole(Piece::Chunk(self.chunks.len() - 1));
            col = 0;
        }
        // The part's last bytes, with base64's '=' padding: nothing follows them.
        b64_lines(&mut self.bytes, &mut col, &carry);
    }

    fn finish(mut self, message_id_domain: &str) -> MessageTemplate {
        if self.bytes.len() > self.start {
            self.pieces.push(Piece::Static {
                start: self.start,
                end: self.bytes.len(),
            });
        }
        let holes = self
            .pieces
            .iter()
            .filter(|p| !matches!(p, Piece::Static { .. }))
            .count();
        let size_hint = self.bytes.len() + PER_READER_HEADERS + holes * 3 * Token::LEN;
        MessageTemplate {
            bytes: self.bytes,
            pieces: self.pieces,
            chunks: self.chunks,
            lits: self.lits,
            message_id_domain: message_id_domain.trim().to_owned(),
            size_hint,
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Quoted-printable (RFC 2045 §6.7)

const HEX: &[u8; 16] = b"0123456789ABCDEF";

fn soft_break(out: &mut Vec<u8>, col: &mut usize) {
    out.extend_from_slice(b"=\r\n");
    *col = 0;
}

/// Writes one encoded unit (a literal byte or `=XX`), breaking the line first when it would
/// not fit.
#[inline]
fn qp_unit(out: &mut Vec<u8>, col: &mut usize, b: u8, literal: bool) {
    let width = if literal { 1 } else { 3 };
    if *col + width > QP_CONTENT {
        soft_break(out, col);
    }
    // A '.' alone at a line start is special to SMTP (RFC 5321 §4.5.2) and some tools; the
    // encoded form sidesteps any transparency bug on the way.
    if literal && !(*col == 0 && b == b'.') {
        out.push(b);
        *col += 1;
    } else {
        if *col + 3 > QP_CONTENT {
            soft_break(out, col);
        }
        out.extend_from_slice(&[b'=', HEX[usize::from(b >> 4)], HEX[usize::from(b & 15)]]);
        *col += 3;
    }
}

/// Whether `b` may stand for itself (RFC 2045 §6.7 (2)): `!` through `~` except `=`.
#[inline]
fn qp_literal(b: u8) -> bool {
    (33..=126).contains(&b) && b != b'='
}

/// Encodes static body text. Line breaks (`\n` or `\r\n`) become CRLF hard breaks.
/// `end_of_part` says nothing follows, so whitespace at the very end must be encoded.
fn qp_encode(out: &mut Vec<u8>, col: &mut usize, text: &[u8], end_of_part: bool) {
    let mut i = 0;
    while i < text.len() {
        let b = text[i];
        match b {
            b'\n' => {
                out.extend_from_slice(b"\r\n");
                *col = 0;
            }
            b'\r' if text.get(i + 1) == Some(&b'\n') => {}
            b' ' | b'\t' => {
                // RFC 2045 §6.7 (3): whitespace may not end an encoded line, or it could be
                // stripped in transport: encode it when a line break or the end follows.
                let next = text.get(i + 1).copied();
                let at_eol = match next {
                    None => end_of_part,
                    Some(b'\n') => true,
                    Some(b'\r') => text.get(i + 2) == Some(&b'\n'),
                    _ => false,
                };
                qp_unit(out, col, b, !at_eol);
            }
            // "From " at a line start gets mangled into ">From " by some mbox tools.
            b'F' if (*col == 0 || *col + 1 > QP_CONTENT) && text[i..].starts_with(b"From ") => {
                qp_unit(out, col, b, false);
            }
            _ => qp_unit(out, col, b, qp_literal(b)),
        }
        i += 1;
    }
}

/// Encodes a reader's name (from column 0) followed by a soft break, for a name hole.
/// Control characters become spaces; in the HTML part the name is HTML-escaped.
fn encode_name(out: &mut Vec<u8>, name: &str, part: Part) {
    let name = name.trim();
    if name.is_empty() {
        return;
    }
    let mut col = 0usize;
    let mut buf = [0u8; 4];
    // The renderer's greeting is `Hello{Name},`: the hole carries its own leading space.
    for c in std::iter::once(' ').chain(name.chars()) {
        let bytes: &[u8] = match (c, part) {
            (c, _) if c.is_control() => b" ",
            ('&', Part::Html) => b"&amp;",
            ('<', Part::Html) => b"&lt;",
            ('>', Part::Html) => b"&gt;",
            ('"', Part::Html) => b"&quot;",
            ('\'', Part::Html) => b"&#39;",
            (c, _) => c.encode_utf8(&mut buf).as_bytes(),
        };
        for &b in bytes {
            // Whitespace inside the name is always followed by something, at least the
            // closing soft break, so it may stay literal. An 'F' at a line start is encoded
            // in case "From " follows.
            let at_line_start = col == 0 || col + 1 > QP_CONTENT;
            let literal = (qp_literal(b) || b == b' ') && !(at_line_start && b == b'F');
            qp_unit(out, &mut col, b, literal);
        }
    }
    out.extend_from_slice(b"=\r\n");
}

// ---------------------------------------------------------------------------------------------
// Base64 (RFC 2045 §6.8)

/// `\n` not preceded by `\r` becomes CRLF.
fn canonical_crlf(s: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(s.len() + s.len() / 32);
    for (i, &b) in s.iter().enumerate() {
        if b == b'\n' && (i == 0 || s[i - 1] != b'\r') {
            out.push(b'\r');
        }
        out.push(b);
    }
    out
}

/// Writes `raw` in base64 from column `col` (a multiple of 4), breaking lines at
/// [`B64_LINE`]. A length that is not a multiple of 3 ends in '=' padding, so only the last
/// bytes of a part may have one.
fn b64_lines(out: &mut Vec<u8>, col: &mut usize, raw: &[u8]) {
    let mut rest = raw;
    let mut buf = [0u8; B64_LINE];
    while !rest.is_empty() {
        if *col >= B64_LINE {
            out.extend_from_slice(b"\r\n");
            *col = 0;
        }
        let room = (B64_LINE - *col) / 4 * 3;
        let n = room.min(rest.len());
        // Invariant: `n` bytes need at most `room / 3 * 4 <= B64_LINE` characters.
        let written = BASE64.encode_slice(&rest[..n], &mut buf).unwrap_or(0);
        out.extend_from_slice(&buf[..written]);
        *col += written;
        rest = &rest[n..];
    }
}

/// A reader's name as the greeting's hole holds it, unencoded: a leading space, control
/// characters as spaces, HTML-escaped in the HTML part. Empty for no name.
fn push_name(out: &mut Vec<u8>, name: &str, part: Part) {
    let name = name.trim();
    if name.is_empty() {
        return;
    }
    let mut buf = [0u8; 4];
    for c in std::iter::once(' ').chain(name.chars()) {
        let bytes: &[u8] = match (c, part) {
            (c, _) if c.is_control() => b" ",
            ('&', Part::Html) => b"&amp;",
            ('<', Part::Html) => b"&lt;",
            ('>', Part::Html) => b"&gt;",
            ('"', Part::Html) => b"&quot;",
            ('\'', Part::Html) => b"&#39;",
            (c, _) => c.encode_utf8(&mut buf).as_bytes(),
        };
        out.extend_from_slice(bytes);
    }
}

/// Escapes `s` the way the HTML part's name hole is filled (for previews and tests).
pub fn html_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

// ---------------------------------------------------------------------------------------------
// Header values

fn is_valid_token(t: &str) -> bool {
    t.len() == Token::LEN && t.bytes().all(is_token_byte)
}

fn is_token_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'-' || b == b'_'
}

/// Writes a token; bytes outside the token alphabet are percent-encoded (the token always
/// sits in a URL), so a bad token can neither break a header nor the QP encoding.
#[inline]
fn push_token(out: &mut Vec<u8>, token: &str) {
    if is_valid_token(token) {
        out.extend_from_slice(token.as_bytes());
    } else {
        for b in token.bytes() {
            if is_token_byte(b) {
                out.push(b);
            } else {
                out.extend_from_slice(&[b'%', HEX[usize::from(b >> 4)], HEX[usize::from(b & 15)]]);
            }
        }
    }
}

/// Writes the printable, non-space characters of `s` (a Message-ID or an address).
fn push_visible(out: &mut Vec<u8>, s: &str) {
    out.extend(s.bytes().filter(|&b| b > b' ' && b != 0x7f));
}

/// Writes a URL for a header: bytes outside printable ASCII are percent-encoded (RFC 3986
/// §2.1), as are `<`, `>` and `"`, which would end the bracketed URI.
fn push_url(out: &mut Vec<u8>, url: &str) {
    for b in url.bytes() {
        if b > b' ' && b < 0x7f && !matches!(b, b'<' | b'>' | b'"') {
            out.push(b);
        } else {
            out.extend_from_slice(&[b'%', HEX[usize::from(b >> 4)], HEX[usize::from(b & 15)]]);
        }
    }
}

/// Writes an address as the `to` of a `mailto:` URI (RFC 6068 §2: percent-encode what is not
/// allowed in `addr-spec` there).
fn push_mailto_addr(out: &mut Vec<u8>, addr: &str) {
    for b in addr.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~!$'*+,;=:@".contains(&b) {
            out.push(b);
        } else {
            out.extend_from_slice(&[b'%', HEX[usize::from(b >> 4)], HEX[usize::from(b & 15)]]);
        }
    }
}

/// Control characters (CR and LF above all) become spaces; the result is trimmed.
fn sanitize_header_text(s: &str) -> String {
    s.chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect::<String>()
        .trim()
        .to_owned()
}

fn mailbox_name(mb: &Mailbox) -> &str {
    mb.name.as_deref().unwrap_or("")
}

/// `Name: mailbox\r\n`.
fn write_mailbox_header(out: &mut Vec<u8>, field: &str, name: &str, addr: &str) {
    out.extend_from_slice(field.as_bytes());
    out.extend_from_slice(b": ");
    write_mailbox(out, field.len() + 2, name, addr);
    out.extend_from_slice(b"\r\n");
}

/// `atext` (RFC 5322 §3.2.3).
fn is_atext(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-/=?^_`{|}~".contains(&b)
}

/// How a display name is written.
enum PhraseForm {
    /// Atoms separated by spaces, written as they are.
    Atoms,
    /// A quoted-string with `\` escapes (RFC 5322 §3.2.4).
    Quoted,
    /// RFC 2047 encoded-words.
    Encoded,
}

/// Longest name written as atoms or quoted; longer ones become encoded-words, which fold.
const MAX_PLAIN_NAME: usize = 60;

fn phrase_form(name: &str) -> PhraseForm {
    let printable = name.bytes().all(|b| (b' '..0x7f).contains(&b));
    // "=?" would read as an encoded-word to a decoder: quote it (RFC 2047 §5 (3) says
    // encoded-words inside quoted-strings are not decoded).
    if !printable || name.len() > MAX_PLAIN_NAME {
        PhraseForm::Encoded
    } else if name.bytes().all(|b| b == b' ' || is_atext(b)) && !name.contains("=?") {
        PhraseForm::Atoms
    } else {
        PhraseForm::Quoted
    }
}

/// Writes a mailbox (RFC 5322 §3.4): `addr`, or `phrase <addr>`. `col` is the column the
/// value starts at. Allocates nothing, so it serves the per-reader `To:` too.
fn write_mailbox(out: &mut Vec<u8>, col: usize, name: &str, addr: &str) {
    let name = name.trim();
    if name.is_empty() {
        push_visible(out, addr);
        return;
    }
    let col = write_phrase(out, col, name);
    // Fold before the address when the line would run long (the FWS between the phrase and
    // the angle-addr, RFC 5322 §3.4).
    if col + 3 + addr.len() > HEADER_LINE {
        out.extend_from_slice(b"\r\n <");
    } else {
        out.extend_from_slice(b" <");
    }
    push_visible(out, addr);
    out.push(b'>');
}

/// Writes a display name or list description (a `phrase`, RFC 5322 §3.2.5) starting at
/// column `col`; returns the column after it.
fn write_phrase(out: &mut Vec<u8>, col: usize, phrase: &str) -> usize {
    match phrase_form(phrase) {
        PhraseForm::Atoms => {
            out.extend_from_slice(phrase.as_bytes());
            col + phrase.len()
        }
        PhraseForm::Quoted => {
            let start = out.len();
            out.push(b'"');
            for b in phrase.bytes() {
                if b == b'"' || b == b'\\' {
                    out.push(b'\\');
                }
                out.push(b);
            }
            out.push(b'"');
            col + (out.len() - start)
        }
        PhraseForm::Encoded => encoded_words(out, col, phrase),
    }
}

/// Writes `text` as RFC 2047 "B" encoded-words starting at column `col`, folding between
/// words, and returns the column after the last one. Each word holds whole UTF-8 characters
/// (RFC 2047 §5 (3): a character may not be split between words) and is at most 75
/// characters long (§2). Control characters become spaces.
fn encoded_words(out: &mut Vec<u8>, mut col: usize, text: &str) -> usize {
    const PREFIX: &[u8] = b"=?UTF-8?B?";
    const OVERHEAD: usize = 12; // "=?UTF-8?B?" + "?="
    const MAX_WORD: usize = 75;
    let mut raw = [0u8; 48];
    let mut b64 = [0u8; 64];
    let mut chars = text
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .peekable();
    let mut first = true;
    while chars.peek().is_some() {
        // Room on this line for the encoded text, in whole base64 quanta.
        let mut room = HEADER_LINE
            .saturating_sub(col + OVERHEAD)
            .min(MAX_WORD - OVERHEAD)
            / 4
            * 3;
        if !first || room < 4 {
            // Adjacent encoded-words are separated by folding white space, which decoders
            // drop (RFC 2047 §6.2), so the decoded text is exactly the input.
            out.extend_from_slice(b"\r\n ");
            col = 1;
            room = (MAX_WORD - OVERHEAD) / 4 * 3;
        }
        first = false;
        let mut n = 0;
        while let Some(&c) = chars.peek() {
            if n + c.len_utf8() > room {
                break;
            }
            n += c.encode_utf8(&mut raw[n..]).len();
            chars.next();
        }
        // Invariant: `room` is at least 45 on a fresh line and b64 holds 64 bytes, so the
        // encoded chunk (at most 60 bytes) always fits.
        let len = BASE64.encode_slice(&raw[..n], &mut b64).unwrap_or(0);
        out.extend_from_slice(PREFIX);
        out.extend_from_slice(&b64[..len]);
        out.extend_from_slice(b"?=");
        col += OVERHEAD + len;
    }
    col
}

/// Writes an unstructured header such as `Subject` (RFC 5322 §3.2.5): printable ASCII as
/// it is, folded at spaces; anything else as encoded-words.
fn write_unstructured(out: &mut Vec<u8>, field: &str, value: &str) {
    let value = sanitize_header_text(value);
    out.extend_from_slice(field.as_bytes());
    out.push(b':');
    let col = field.len() + 1;
    let plain = value.bytes().all(|b| (b' '..0x7f).contains(&b))
        && !value.contains("=?")
        && value.split(' ').all(|w| w.len() < HEADER_LINE - 2);
    if plain {
        // Fold only at the whitespace between words (RFC 5322 §2.2.3); the space moves to
        // the start of the continuation line.
        let mut col = col;
        for word in value.split(' ') {
            if col + 1 + word.len() > HEADER_LINE && col > field.len() + 1 {
                out.extend_from_slice(b"\r\n");
                col = 0;
            }
            out.push(b' ');
            out.extend_from_slice(word.as_bytes());
            col += 1 + word.len();
        }
    } else {
        out.push(b' ');
        encoded_words(out, col + 1, &value);
    }
    out.extend_from_slice(b"\r\n");
}

/// `List-Id: phrase <id>` (RFC 2919 §2). The description may be any Unicode.
fn write_list_id(out: &mut Vec<u8>, list_id: &str) {
    let v = sanitize_header_text(list_id);
    let (phrase, id) = match (v.rfind('<'), v.ends_with('>')) {
        (Some(i), true) => (v[..i].trim(), v[i + 1..v.len() - 1].trim()),
        _ => ("", v.as_str()),
    };
    out.extend_from_slice(b"List-Id: ");
    let mut col = 9;
    if !phrase.is_empty() {
        col = write_phrase(out, col, phrase);
        if col + 3 + id.len() > HEADER_LINE {
            out.extend_from_slice(b"\r\n ");
        } else {
            out.push(b' ');
        }
    }
    out.push(b'<');
    push_visible(out, id);
    out.extend_from_slice(b">\r\n");
}

#[cfg(test)]
pub(crate) mod tests;
