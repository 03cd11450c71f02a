//! Pre-rendered message bodies with holes for the per-recipient parts.
//!
//! An edition is rendered once per category variant into a [`Template`]: static text with a
//! few [`Hole`]s. Personalising a message for one reader is then a copy of the static bytes
//! with the reader's values spliced in, with no template work per recipient.
//!
//! `render` builds these and `mail::mime` encodes them; the type lives here, below both, so
//! that neither of the two depends on the other.

/// A per-recipient value spliced into a pre-rendered body.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Hole {
    /// The reader's token ([`Token::LEN`](super::Token::LEN) URL-safe characters).
    /// Unsubscribe and preference URLs are `<public_url>/unsubscribe/<token>` and
    /// `<public_url>/preferences/<token>`, so the template holds the URL prefix as static text
    /// and only the token is a hole.
    Token,
    /// The greeting line's name: the reader's name, or nothing. Already escaped for the part
    /// it lands in when filled.
    Name,
}

/// One piece of a template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Segment {
    /// Text that is the same for every reader.
    Static(String),
    /// A per-reader value.
    Hole(Hole),
}

/// A rendered body (HTML or plain text) with holes.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Template {
    segments: Vec<Segment>,
}

impl Template {
    /// An empty template.
    pub fn new() -> Self {
        Self::default()
    }

    /// Appends static text, merging with a preceding static segment.
    pub fn push_str(&mut self, s: &str) {
        if s.is_empty() {
            return;
        }
        if let Some(Segment::Static(last)) = self.segments.last_mut() {
            last.push_str(s);
        } else {
            self.segments.push(Segment::Static(s.to_owned()));
        }
    }

    /// Appends a hole.
    pub fn push_hole(&mut self, hole: Hole) {
        self.segments.push(Segment::Hole(hole));
    }

    /// The segments in order.
    pub fn segments(&self) -> &[Segment] {
        &self.segments
    }

    /// Fills every hole with `fill` and returns the text (used for previews and tests; the
    /// sender splices pre-encoded bytes instead).
    pub fn fill(&self, mut fill: impl FnMut(Hole) -> String) -> String {
        let mut out = String::new();
        for seg in &self.segments {
            match seg {
                Segment::Static(s) => out.push_str(s),
                Segment::Hole(h) => out.push_str(&fill(*h)),
            }
        }
        out
    }

    /// Splits text containing marker strings into a template: each occurrence of a marker
    /// becomes its hole. Lets Maud render markers that are replaced afterwards.
    pub fn from_marked(text: &str, markers: &[(&str, Hole)]) -> Self {
        let mut t = Self::new();
        let mut rest = text;
        loop {
            let next = markers
                .iter()
                .filter_map(|(m, h)| rest.find(m).map(|i| (i, *m, *h)))
                .min_by_key(|(i, _, _)| *i);
            match next {
                Some((i, m, h)) => {
                    t.push_str(&rest[..i]);
                    t.push_hole(h);
                    rest = &rest[i + m.len()..];
                }
                None => {
                    t.push_str(rest);
                    return t;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn markers_become_holes() {
        let t = Template::from_marked(
            "a@@T@@b@@N@@c@@T@@",
            &[("@@T@@", Hole::Token), ("@@N@@", Hole::Name)],
        );
        assert_eq!(
            t.segments(),
            &[
                Segment::Static("a".into()),
                Segment::Hole(Hole::Token),
                Segment::Static("b".into()),
                Segment::Hole(Hole::Name),
                Segment::Static("c".into()),
                Segment::Hole(Hole::Token),
            ]
        );
        assert_eq!(t.fill(|h| format!("{h:?}")), "aTokenbNamecToken");
    }
}
