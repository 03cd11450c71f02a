//! HTML read token by token, in time linear in its length: html5ever's tokenizer without its
//! tree builder, whose scope checks make deeply nested input quadratic (see
//! `render/clean.rs`). [`html_text`] turns an HTML field into text for the store (feed titles
//! and summaries, and the HTTP API to come); the renderer's summary whitelist walks the same
//! tokens.

use std::cell::{Cell, RefCell};

use html5ever::tendril::StrTendril;
use html5ever::tokenizer::states::RawKind;
use html5ever::tokenizer::{
    BufferQueue, Tag, TagKind, Token, TokenSink, TokenSinkResult, Tokenizer, TokenizerOpts,
};
use html5ever::{LocalName, local_name};

/// The text of an HTML fragment, for a field that must be plain text (feed titles and
/// summaries): entities decoded, tags removed (block-level ones leave a space, so
/// `<p>One</p><p>Two</p>` reads "One Two" while `<b>Pak</b>istan` stays one word), and the
/// content of scripts, styles and other elements that never hold text for a reader (such as
/// `<svg>` and `<template>`) gone. Whitespace is left for the caller's cleaning. Linear in the
/// input.
pub fn html_text(html: &str) -> String {
    let mut out = String::with_capacity(html.len().min(64 * 1024));
    walk_html(html, |piece| match piece {
        Piece::Text(t) => out.push_str(t),
        Piece::Start(Tag { name, .. }) | Piece::End(name) => {
            if is_block(name) {
                out.push(' ');
            }
        }
    });
    out
}

/// Elements that break a line of text where they start and end.
fn is_block(name: &LocalName) -> bool {
    matches!(
        &**name,
        "p" | "br"
            | "div"
            | "li"
            | "ul"
            | "ol"
            | "dl"
            | "dt"
            | "dd"
            | "h1"
            | "h2"
            | "h3"
            | "h4"
            | "h5"
            | "h6"
            | "tr"
            | "td"
            | "th"
            | "table"
            | "blockquote"
            | "pre"
            | "section"
            | "article"
            | "aside"
            | "header"
            | "footer"
            | "nav"
            | "figure"
            | "figcaption"
            | "hr"
    )
}

/// Elements whose content is never text for a reader: code, styling, metadata and embedded
/// documents. [`walk_html`] drops them with everything inside.
fn is_dropped_content(name: &LocalName) -> bool {
    matches!(
        &**name,
        "script"
            | "style"
            | "template"
            | "title"
            | "noscript"
            | "svg"
            | "math"
            | "iframe"
            | "noembed"
            | "noframes"
            | "xmp"
            | "object"
    )
}

/// What [`walk_html`] reports, in document order.
pub(crate) enum Piece<'a> {
    /// Text, entities decoded.
    Text(&'a str),
    /// A start tag (possibly self-closing) with its attributes.
    Start(&'a Tag),
    /// An end tag.
    End(&'a LocalName),
}

/// Runs html5ever's tokenizer over `html` and calls `each` for every text run and tag outside
/// [dropped content](is_dropped_content); comments, doctypes and NUL characters are skipped.
pub(crate) fn walk_html(html: &str, each: impl FnMut(Piece<'_>)) {
    struct Sink<F> {
        each: RefCell<F>,
        /// Inside dropped content: its element's name and how many of them are open.
        skipping: RefCell<Option<(LocalName, usize)>>,
        /// The tokenizer is in PLAINTEXT state: everything that follows is text.
        plaintext: Cell<bool>,
    }

    impl<F: FnMut(Piece<'_>)> TokenSink for Sink<F> {
        type Handle = ();

        fn process_token(&self, token: Token, _line: u64) -> TokenSinkResult<()> {
            // The tokenizer only accepts a state change in answer to a tag; every other token
            // must be answered with `Continue`.
            let Token::TagToken(tag) = token else {
                if let Token::CharacterTokens(text) = token
                    && self.skipping.borrow().is_none()
                {
                    (self.each.borrow_mut())(Piece::Text(&text));
                }
                return TokenSinkResult::Continue;
            };
            let mut skipping = self.skipping.borrow_mut();
            if let Some((name, open)) = skipping.as_mut() {
                if tag.name == *name {
                    match tag.kind {
                        TagKind::StartTag if !tag.self_closing => *open += 1,
                        TagKind::EndTag => *open -= 1,
                        TagKind::StartTag => {}
                    }
                }
                if *open == 0 {
                    *skipping = None;
                }
                return TokenSinkResult::Continue;
            }
            match tag.kind {
                TagKind::StartTag => {
                    if is_dropped_content(&tag.name) {
                        if !tag.self_closing {
                            *skipping = Some((tag.name.clone(), 1));
                            return raw_state(&tag.name);
                        }
                        return TokenSinkResult::Continue;
                    }
                    (self.each.borrow_mut())(Piece::Start(&tag));
                    if tag.name == local_name!("plaintext") && !self.plaintext.get() {
                        self.plaintext.set(true);
                        return TokenSinkResult::Plaintext;
                    }
                    match &*tag.name {
                        "textarea" => TokenSinkResult::RawData(RawKind::Rcdata),
                        _ => TokenSinkResult::Continue,
                    }
                }
                TagKind::EndTag => {
                    (self.each.borrow_mut())(Piece::End(&tag.name));
                    TokenSinkResult::Continue
                }
            }
        }
    }

    /// The tokenizer state an element's content is read in (HTML standard §13.2.6.4.7): for
    /// script-like elements their text is raw, so `<script>a<b</script>` has no `<b>` tag.
    fn raw_state(name: &LocalName) -> TokenSinkResult<()> {
        match &**name {
            "script" => TokenSinkResult::RawData(RawKind::ScriptData),
            "title" => TokenSinkResult::RawData(RawKind::Rcdata),
            "style" | "noscript" | "iframe" | "noembed" | "noframes" | "xmp" => {
                TokenSinkResult::RawData(RawKind::Rawtext)
            }
            _ => TokenSinkResult::Continue,
        }
    }

    let tokenizer = Tokenizer::new(
        Sink {
            each: RefCell::new(each),
            skipping: RefCell::new(None),
            plaintext: Cell::new(false),
        },
        TokenizerOpts::default(),
    );
    let input = BufferQueue::default();
    // In pieces: a tendril holds at most 4 GiB, and the tokenizer reads across pieces.
    let mut rest = html;
    while !rest.is_empty() {
        let mut cut = rest.len().min(16 << 20);
        while !rest.is_char_boundary(cut) {
            cut -= 1;
        }
        input.push_back(StrTendril::from_slice(&rest[..cut]));
        rest = &rest[cut..];
    }
    // The sink never asks to run a script or to change the encoding, so the whole input is
    // consumed in one call.
    let _ = tokenizer.feed(&input);
    tokenizer.end();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dropped_content_goes_with_its_element() {
        assert_eq!(
            html_text(
                "a<script>if (x<y) { </b> }</script>b<svg><svg></svg><text>c</text></svg>d<title>t</title>e"
            ),
            "abde"
        );
        assert_eq!(
            html_text("<p>One</p><p>Two</p><b>Pak</b>istan"),
            " One  Two Pakistan"
        );
        assert_eq!(html_text("<textarea><b>kept</b></textarea>"), "<b>kept</b>");
    }

    #[test]
    fn two_hundred_thousand_nested_divs_are_their_text() {
        let divs = format!(
            "{}deep{}",
            "<div>".repeat(200_000),
            "</div>".repeat(200_000)
        );
        assert_eq!(crate::domain::clean_text(&html_text(&divs), 100), "deep");
    }
}
