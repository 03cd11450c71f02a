//! Telling RSS, Atom and JSON Lines apart by their content.

use super::{BOM, FeedFormat};

/// Tells the format from the content: after a byte-order mark and whitespace, `<` is XML
/// (the root element tells RSS from Atom) and `{` is JSON Lines. `None` for anything else,
/// including XML whose root is not a feed.
pub fn detect(bytes: &[u8]) -> Option<FeedFormat> {
    let s = bytes.strip_prefix(BOM).unwrap_or(bytes).trim_ascii_start();
    match s.first()? {
        b'{' => Some(FeedFormat::JsonLines),
        b'<' => {
            let root = xml_root_name(s)?;
            // Ignore a namespace prefix such as `rdf:RDF` or `atom:feed`.
            let local = root.rsplit(|b| *b == b':').next().unwrap_or(root);
            match local {
                b"rss" | b"RDF" => Some(FeedFormat::Rss),
                b"feed" | b"entry" => Some(FeedFormat::Atom),
                _ => None,
            }
        }
        _ => None,
    }
}

/// The name of the first element, skipping the XML declaration, processing instructions,
/// comments and a DOCTYPE (with its internal subset, whose declarations hold `>` too).
fn xml_root_name(mut s: &[u8]) -> Option<&[u8]> {
    loop {
        s = s.trim_ascii_start();
        if s.starts_with(b"<?") {
            s = after(s, b"?>")?;
        } else if s.starts_with(b"<!--") {
            s = after(s, b"-->")?;
        } else if s.starts_with(b"<!") {
            s = after_doctype(s)?;
        } else if let Some(rest) = s.strip_prefix(b"<") {
            let end = rest
                .iter()
                .position(|b| b.is_ascii_whitespace() || *b == b'>' || *b == b'/')
                .unwrap_or(rest.len());
            return Some(&rest[..end]);
        } else {
            return None;
        }
    }
}

/// What follows the first `end` in `s`.
fn after<'a>(s: &'a [u8], end: &[u8]) -> Option<&'a [u8]> {
    let at = s.windows(end.len()).position(|w| w == end)?;
    Some(&s[at + end.len()..])
}

/// What follows a `<!DOCTYPE …>` declaration at the start of `s` (XML 1.0 §2.8): its `>` is
/// the first one outside quoted literals and outside the `[…]` internal subset, within which
/// markup declarations, comments and processing instructions are skipped whole.
fn after_doctype(s: &[u8]) -> Option<&[u8]> {
    let mut i = 2; // past "<!"
    let mut in_subset = false;
    while i < s.len() {
        match s[i] {
            quote @ (b'"' | b'\'') => {
                let close = s[i + 1..].iter().position(|b| *b == quote)?;
                i += close + 2;
                continue;
            }
            b'<' if in_subset => {
                let rest = &s[i..];
                let skipped = if rest.starts_with(b"<!--") {
                    after(rest, b"-->")?
                } else if rest.starts_with(b"<?") {
                    after(rest, b"?>")?
                } else {
                    // A declaration such as <!ENTITY x "a>b">: quoted literals may hold `>`.
                    after_declaration(rest)?
                };
                i = s.len() - skipped.len();
                continue;
            }
            b'[' if !in_subset => in_subset = true,
            b']' if in_subset => in_subset = false,
            b'>' if !in_subset => return Some(&s[i + 1..]),
            _ => {}
        }
        i += 1;
    }
    None
}

/// What follows one markup declaration (`<!ENTITY …>`, `<!ELEMENT …>`) at the start of `s`.
fn after_declaration(s: &[u8]) -> Option<&[u8]> {
    let mut i = 1;
    while i < s.len() {
        match s[i] {
            quote @ (b'"' | b'\'') => {
                let close = s[i + 1..].iter().position(|b| *b == quote)?;
                i += close + 2;
                continue;
            }
            b'>' => return Some(&s[i + 1..]),
            _ => {}
        }
        i += 1;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_internal_dtd_subset_does_not_hide_the_root() {
        let doc = br#"<?xml version="1.0"?>
<!DOCTYPE rss [
  <!ENTITY xxe SYSTEM "file:///etc/passwd">
  <!ENTITY gt2 "a>b">
  <!-- a comment with > and ] in it -->
  <?pi with > ?>
  <!ATTLIST item x CDATA '>'>
]>
<rss version="2.0"><channel/></rss>"#;
        assert_eq!(detect(doc), Some(FeedFormat::Rss));
        assert_eq!(
            detect(b"<!DOCTYPE feed SYSTEM \"x>y.dtd\"><feed/>"),
            Some(FeedFormat::Atom)
        );
        assert_eq!(detect(b"<!DOCTYPE rss [ <!ENTITY x \"unterminated"), None);
    }
}
