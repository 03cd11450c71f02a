//! The `text/plain` part, written as text rather than converted from the HTML.
//!
//! Prose wraps at 72 columns; URLs are never wrapped or broken and stand on their own lines so
//! that clients linkify them whole (and, in Urdu text, no RTL run swallows them). It says the
//! same words as the HTML part. Nothing is escaped here: this is not markup.

use super::{Group, Hole, Page, Story, Template};

/// Column limit for prose (RFC 5322 recommends at most 78; 72 leaves room for quoting).
const WIDTH: usize = 72;

/// The digest body.
pub(super) fn digest(page: &Page, groups: &[Group]) -> Template {
    let mut w = Writer::default();
    header(&mut w, page);
    w.push("Hello");
    w.t.push_hole(Hole::Name);
    w.push(",\n\n");
    for g in groups {
        w.heading(&g.heading);
        for s in &g.stories {
            story(&mut w, s, false);
        }
        if let Some((label, url)) = &g.more {
            w.wrapped(label);
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
    let mut w = Writer::default();
    header(&mut w, page);
    w.heading("Breaking news");
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
        w.line("Sent as breaking news");
    }
    if let Some(url) = &s.url {
        if lead {
            w.blank();
            w.line("Read the full story:");
        }
        w.line(url);
    }
    w.blank();
}

fn footer(w: &mut Writer, page: &Page) {
    w.line("-----");
    w.wrapped(&format!(
        "You receive this because you subscribed to {} from {}.",
        page.list_name, page.publication
    ));
    w.wrapped(&page.postal_address);
    w.blank();
    w.line("Unsubscribe:");
    w.push(&page.unsubscribe);
    w.t.push_hole(Hole::Token);
    w.push("\n\nChange your preferences:\n");
    w.push(&page.preferences);
    w.t.push_hole(Hole::Token);
    w.push("\n");
    if let Some(url) = &page.web_view {
        w.blank();
        w.line("View in your browser:");
        w.line(url);
    }
}

/// Builds the template directly (no markers needed: holes are pushed, never parsed).
#[derive(Default)]
struct Writer {
    t: Template,
}

impl Writer {
    fn push(&mut self, s: &str) {
        self.t.push_str(s);
    }

    /// A line exactly as given (for URLs).
    fn line(&mut self, s: &str) {
        self.push(s);
        self.push("\n");
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
