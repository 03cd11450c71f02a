//! The `text/plain` part, written as text rather than converted from the HTML.
//!
//! Prose wraps at 72 columns; URLs are never wrapped or broken and stand on their own lines so
//! that clients linkify them whole (and, in Urdu text, no RTL run swallows them). It says the
//! same words as the HTML part. Nothing is escaped here: this is not markup.

use super::{Dir, Group, Hole, NAME_MARKER, Page, Story, Template};

/// U+200F RIGHT-TO-LEFT MARK.
const RLM: &str = "\u{200F}";

/// Whether the first strongly directional character of `s` is left to right (UAX #9 P2,
/// approximated: letters outside the Hebrew/Arabic blocks count as left to right).
fn starts_ltr(s: &str) -> bool {
    s.chars()
        .find(|c| c.is_alphabetic())
        .is_some_and(|c| !matches!(c, '\u{0590}'..='\u{08FF}' | '\u{FB1D}'..='\u{FDFF}' | '\u{FE70}'..='\u{FEFF}'))
}

/// Column limit for prose (RFC 5322 recommends at most 78; 72 leaves room for quoting).
const WIDTH: usize = 72;

/// The digest body.
pub(super) fn digest(page: &Page, groups: &[Group]) -> Template {
    let mut w = Writer::new(page);
    header(&mut w, page);
    // The greeting with its hole where the catalogue puts `{ $name }`.
    let (before, after) = page
        .greeting
        .text
        .split_once(NAME_MARKER)
        .unwrap_or((page.greeting.text.as_str(), ""));
    w.push(before);
    w.t.push_hole(Hole::Name);
    w.push(after);
    w.push("\n\n");
    for g in groups {
        w.heading(&g.heading);
        for s in &g.stories {
            story(&mut w, s, false);
        }
        if let Some((label, url)) = &g.more {
            w.wrapped(&label.text);
            if let Some(url) = url {
                w.line(url);
            }
            w.blank();
        }
    }
    footer(&mut w, page);
    w.t
}

/// The breaking-news body.
pub(super) fn breaking(page: &Page, s: &Story) -> Template {
    let mut w = Writer::new(page);
    header(&mut w, page);
    w.heading(&page.breaking_banner);
    story(&mut w, s, true);
    footer(&mut w, page);
    w.t
}

fn header(w: &mut Writer, page: &Page) {
    w.wrapped(&page.publication);
    w.wrapped(&format!("{} · {}", page.list_name, page.date));
    if let Some(d) = &page.description {
        w.wrapped(d);
    }
    w.blank();
}

fn story(w: &mut Writer, s: &Story, lead: bool) {
    w.wrapped(&s.title);
    if lead {
        w.blank();
    }
    for p in &s.summary.paragraphs {
        for line in p.split('\n') {
            w.wrapped(line);
        }
        if lead {
            w.blank();
        }
    }
    w.wrapped(&s.meta());
    if s.was_breaking {
        w.line(&s.sent_as_breaking);
    }
    if let Some(url) = &s.url {
        if lead {
            w.blank();
            w.line(&format!("{}:", s.read_full_story));
        }
        w.line(url);
    }
    w.blank();
}

fn footer(w: &mut Writer, page: &Page) {
    w.line("-----");
    w.wrapped(&page.footer_reason.text);
    w.wrapped(&page.postal_address);
    w.blank();
    w.line(&format!("{}:", page.unsubscribe_label));
    w.start_line();
    w.push(&page.unsubscribe);
    w.t.push_hole(Hole::Token);
    w.push("\n\n");
    w.line(&format!("{}:", page.preferences_label));
    w.start_line();
    w.push(&page.preferences);
    w.t.push_hole(Hole::Token);
    w.push("\n");
    if let Some(url) = &page.web_view {
        w.blank();
        w.line(&format!("{}:", page.view_label));
        w.line(url);
    }
}

/// Builds the template directly (no markers needed: holes are pushed, never parsed).
#[derive(Default)]
struct Writer {
    t: Template,
    /// A right-to-left message: a line that starts with left-to-right text (a URL, a Latin
    /// name) gets a RIGHT-TO-LEFT MARK first, so a plain-text client that takes each line's
    /// direction from its first strong character (UAX #9 rule P2) still aligns it right.
    rtl: bool,
}

impl Writer {
    fn new(page: &Page) -> Self {
        Self {
            t: Template::default(),
            rtl: page.dir == Dir::Rtl,
        }
    }

    fn push(&mut self, s: &str) {
        self.t.push_str(s);
    }

    /// A line exactly as given (for URLs).
    fn line(&mut self, s: &str) {
        self.mark_if_ltr(s);
        self.push(s);
        self.push("\n");
    }

    /// Before a line pushed in pieces that starts with a URL.
    fn start_line(&mut self) {
        if self.rtl {
            self.push(RLM);
        }
    }

    fn mark_if_ltr(&mut self, line: &str) {
        if self.rtl && starts_ltr(line) {
            self.push(RLM);
        }
    }

    fn blank(&mut self) {
        self.push("\n");
    }

    /// Prose, wrapped at [`WIDTH`]; a word longer than that (a URL) keeps its own line whole.
    fn wrapped(&mut self, s: &str) {
        let options = textwrap::Options::new(WIDTH).break_words(false);
        for line in textwrap::wrap(s, options) {
            self.line(&line);
        }
    }

    /// A heading underlined to its width.
    fn heading(&mut self, s: &str) {
        self.wrapped(s);
        let width = textwrap::core::display_width(s).clamp(3, WIDTH);
        self.line(&"=".repeat(width));
        self.blank();
    }
}
