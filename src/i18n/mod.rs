//! The reader's language: every fixed word of an email and of the reader pages, and dates.
//!
//! Words come from a Project Fluent catalogue (`locales/{lang}.ftl`, compiled into the binary),
//! which an operator can override message by message from a directory of files of the same form
//! (`[publication] translations`). Dates and times come from CLDR data through ICU4X, never from
//! hand-written month tables; `[publication] digits` chooses Latin (0–9) or Urdu (۰–۹) digits
//! for right-to-left languages.
//!
//! A list's language is one of the shipped [`Language`]s: a catalogue that lacks a message in
//! some language is a test failure, not a runtime surprise.

mod dates;

use std::borrow::Cow;
use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use fluent_bundle::concurrent::FluentBundle;
use fluent_bundle::{FluentArgs, FluentResource, FluentValue};
use serde::{Deserialize, Serialize};

/// A language the catalogue ships, so one a list can be written in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Language {
    /// English.
    En,
    /// Urdu, right to left.
    Ur,
}

impl Language {
    /// Every shipped language, in the order `--help` names them.
    pub const ALL: [Language; 2] = [Language::En, Language::Ur];

    /// The BCP 47 tag, as in `<html lang>`.
    pub fn tag(self) -> &'static str {
        match self {
            Self::En => "en",
            Self::Ur => "ur",
        }
    }

    /// Whether the language is written right to left.
    pub fn is_rtl(self) -> bool {
        matches!(self, Self::Ur)
    }

    /// The shipped catalogue text.
    fn source(self) -> &'static str {
        match self {
            Self::En => include_str!("../../locales/en.ftl"),
            Self::Ur => include_str!("../../locales/ur.ftl"),
        }
    }

    /// Parses a language tag, ignoring case and any region (`en-GB` is English): `None` when
    /// the language is not shipped.
    pub fn parse(tag: &str) -> Option<Self> {
        let primary = tag.trim().split(['-', '_']).next()?;
        Self::ALL
            .into_iter()
            .find(|l| l.tag().eq_ignore_ascii_case(primary))
    }
}

impl fmt::Display for Language {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.tag())
    }
}

impl FromStr for Language {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s).ok_or_else(|| {
            let all: Vec<&str> = Self::ALL.iter().map(|l| l.tag()).collect();
            format!(
                "{s:?} is not a language dispatch ships; expected one of {}",
                all.join(", ")
            )
        })
    }
}

impl Serialize for Language {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.tag())
    }
}

impl<'de> Deserialize<'de> for Language {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// Which digits numbers and dates use in a right-to-left language (`[publication] digits`).
/// Left-to-right languages always use 0–9.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Digits {
    /// 0–9, as Pakistani papers mostly print them.
    #[default]
    Latn,
    /// Extended Arabic-Indic digits ۰–۹ (CLDR `arabext`).
    Arabext,
}

/// The catalogue could not be built from the operator's files.
#[derive(Debug, thiserror::Error)]
pub enum CatalogueError {
    #[error("cannot read translation file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("translation file {path}: {message}")]
    Invalid { path: PathBuf, message: String },
}

type Bundle = FluentBundle<FluentResource>;

/// Every shipped language's messages, with the operator's overrides applied.
pub struct Catalogue {
    bundles: Vec<(Language, Bundle)>,
    digits: Digits,
    /// The directory the overrides came from, for `Debug` and equality.
    overrides: Option<PathBuf>,
}

impl fmt::Debug for Catalogue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Catalogue")
            .field("digits", &self.digits)
            .field("overrides", &self.overrides)
            .finish_non_exhaustive()
    }
}

impl PartialEq for Catalogue {
    fn eq(&self, other: &Self) -> bool {
        self.digits == other.digits && self.overrides == other.overrides
    }
}

impl Default for Catalogue {
    fn default() -> Self {
        Self::shipped(Digits::Latn)
    }
}

impl Catalogue {
    /// The catalogue as shipped.
    pub fn shipped(digits: Digits) -> Self {
        let bundles = Language::ALL
            .into_iter()
            .map(|lang| {
                let mut b = new_bundle(lang, digits);
                // Invariant: the shipped files parse and have no duplicate ids; the
                // `shipped_catalogue_parses` test proves it for every language.
                if let Err(e) = b.add_resource(parse(lang.source()).unwrap_or_else(|e| e)) {
                    tracing::error!(lang = lang.tag(), "shipped catalogue: {e:?}");
                }
                (lang, b)
            })
            .collect();
        Self {
            bundles,
            digits,
            overrides: None,
        }
    }

    /// The shipped catalogue with the messages of `dir/{lang}.ftl` (each file optional) in place
    /// of the shipped ones. A file that does not parse, or that names a message the catalogue
    /// does not have (a typo would otherwise be silently ignored), is an error.
    pub fn load(dir: Option<&Path>, digits: Digits) -> Result<Self, CatalogueError> {
        let mut cat = Self::shipped(digits);
        let Some(dir) = dir else { return Ok(cat) };
        for (lang, bundle) in &mut cat.bundles {
            let path = dir.join(format!("{}.ftl", lang.tag()));
            let text = match std::fs::read_to_string(&path) {
                Ok(t) => t,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(source) => return Err(CatalogueError::Read { path, source }),
            };
            let res = parse(&text).map_err(|_| CatalogueError::Invalid {
                path: path.clone(),
                message: "not valid Fluent syntax".into(),
            })?;
            for id in message_ids(&res) {
                if !bundle.has_message(&id) {
                    return Err(CatalogueError::Invalid {
                        path: path.clone(),
                        message: format!(
                            "message {id:?} is not one dispatch uses (see locales/{}.ftl)",
                            lang.tag()
                        ),
                    });
                }
            }
            bundle.add_resource_overriding(res);
        }
        cat.overrides = Some(dir.to_path_buf());
        Ok(cat)
    }

    /// The strings of one language.
    pub fn strings(&self, lang: Language) -> Strings<'_> {
        let bundle = self
            .bundles
            .iter()
            .find(|(l, _)| *l == lang)
            .or(self.bundles.first())
            .map(|(_, b)| b);
        Strings {
            lang,
            bundle,
            digits: if lang.is_rtl() {
                self.digits
            } else {
                Digits::Latn
            },
        }
    }

    /// The message ids a shipped language defines (for the completeness test).
    pub fn shipped_ids(lang: Language) -> Vec<String> {
        parse(lang.source())
            .map(|r| message_ids(&r))
            .unwrap_or_default()
    }

    /// The literal words of every shipped message of `lang`, placeables left out: what must
    /// not appear in another language's output.
    pub fn shipped_words(lang: Language) -> Vec<String> {
        let Ok(res) = parse(lang.source()) else {
            return Vec::new();
        };
        let mut out = Vec::new();
        for entry in res.entries() {
            if let fluent_syntax::ast::Entry::Message(m) = entry
                && let Some(p) = &m.value
            {
                collect_text(p, &mut out);
            }
        }
        out
    }
}

fn collect_text(p: &fluent_syntax::ast::Pattern<&str>, out: &mut Vec<String>) {
    use fluent_syntax::ast::{Expression, PatternElement};
    for el in &p.elements {
        match el {
            PatternElement::TextElement { value } => {
                let v = value.trim();
                if v.chars().filter(|c| c.is_alphabetic()).count() >= 2 {
                    out.push(v.to_owned());
                }
            }
            PatternElement::Placeable {
                expression: Expression::Select { variants, .. },
            } => {
                for v in variants {
                    collect_text(&v.value, out);
                }
            }
            PatternElement::Placeable { .. } => {}
        }
    }
}

fn new_bundle(lang: Language, digits: Digits) -> Bundle {
    // Invariant: a shipped tag is a valid identifier; the default ("und") would only lose
    // plural rules, and the plural tests would show it.
    let id: unic_langid::LanguageIdentifier = lang.tag().parse().unwrap_or_default();
    let mut b = FluentBundle::new_concurrent(vec![id]);
    // Fluent's own isolation marks (U+2068/U+2069) would land in subject lines and plain text;
    // the renderers isolate what needs it (names, URLs) themselves, with `<bdi>` and `dir`.
    b.set_use_isolating(false);
    if lang.is_rtl() && digits == Digits::Arabext {
        b.set_formatter(Some(arabext_number));
    }
    b
}

/// Writes Fluent numbers with ۰–۹.
fn arabext_number<M>(v: &FluentValue<'_>, _: &M) -> Option<String> {
    match v {
        FluentValue::Number(n) => Some(to_arabext(&n.as_string())),
        _ => None,
    }
}

/// Replaces 0–9 by ۰–۹ (U+06F0…U+06F9).
pub(crate) fn to_arabext(s: &str) -> String {
    s.chars()
        .map(|c| match c.to_digit(10) {
            // Invariant: `d` is 0–9, so the code point is U+06F0…U+06F9.
            Some(d) => char::from_u32(0x06F0 + d).unwrap_or(c),
            None => c,
        })
        .collect()
}

fn parse(text: &str) -> Result<FluentResource, FluentResource> {
    FluentResource::try_new(text.to_owned()).map_err(|(res, _)| res)
}

fn message_ids(res: &FluentResource) -> Vec<String> {
    res.entries()
        .filter_map(|e| match e {
            fluent_syntax::ast::Entry::Message(m) => Some(m.id.name.to_owned()),
            _ => None,
        })
        .collect()
}

/// A value for a message's variable.
#[derive(Debug, Clone, Copy)]
pub enum Arg<'a> {
    /// Text, inserted as it is (the renderers escape the result).
    Str(&'a str),
    /// A count: selects the plural form and is written in the language's digits.
    Num(usize),
}

/// The messages and date formats of one language.
#[derive(Clone, Copy)]
pub struct Strings<'a> {
    lang: Language,
    bundle: Option<&'a Bundle>,
    digits: Digits,
}

impl fmt::Debug for Strings<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Strings")
            .field("lang", &self.lang)
            .field("digits", &self.digits)
            .finish_non_exhaustive()
    }
}

impl<'a> Strings<'a> {
    /// The language these strings are in.
    pub fn language(&self) -> Language {
        self.lang
    }

    /// The digits numbers and dates are written in.
    pub fn digits(&self) -> Digits {
        self.digits
    }

    /// A message without variables.
    pub fn get(&self, id: &str) -> String {
        self.format(id, &[])
    }

    /// A message with its variables. A missing message gives its id (the completeness test
    /// keeps that from shipping); a missing variable gives its name in braces, as Fluent does.
    pub fn format(&self, id: &str, args: &[(&str, Arg<'_>)]) -> String {
        let Some(bundle) = self.bundle else {
            return id.to_owned();
        };
        let Some(pattern) = bundle.get_message(id).and_then(|m| m.value()) else {
            tracing::warn!(lang = self.lang.tag(), id, "missing translation");
            return id.to_owned();
        };
        let mut fa = FluentArgs::new();
        for (k, v) in args {
            match v {
                Arg::Str(s) => fa.set(*k, FluentValue::String(Cow::Borrowed(s))),
                Arg::Num(n) => fa.set(*k, FluentValue::from(*n)),
            }
        }
        let mut errors = Vec::new();
        let out = bundle.format_pattern(pattern, Some(&fa), &mut errors);
        if !errors.is_empty() {
            tracing::warn!(lang = self.lang.tag(), id, "translation: {errors:?}");
        }
        out.into_owned()
    }

    /// [`Self::format`] as escaped HTML, for Maud's `PreEscaped`. In a right-to-left language
    /// the string values named in `isolate` (list and publication names, authors, the
    /// greeting's name) are wrapped in `<bdi>`, so that a Latin name inside an Urdu sentence
    /// keeps its own order and does not reorder the punctuation around it (UAX #9 isolates).
    pub fn format_html(&self, id: &str, args: &[(&str, Arg<'_>)], isolate: &[&str]) -> String {
        if !self.lang.is_rtl() || isolate.is_empty() {
            return maud::html! { (self.format(id, args)) }.into_string();
        }
        // U+0002 cannot come from stored text: cleaning removes control characters.
        let marks: Vec<(String, &str)> = args
            .iter()
            .enumerate()
            .filter_map(|(i, (k, v))| match v {
                Arg::Str(value) if isolate.contains(k) => Some((format!("\u{2}{i}\u{2}"), *value)),
                _ => None,
            })
            .collect();
        let mut next = marks.iter();
        let marked: Vec<(&str, Arg<'_>)> = args
            .iter()
            .map(|(k, v)| match v {
                Arg::Str(_) if isolate.contains(k) => match next.next() {
                    Some((mark, _)) => (*k, Arg::Str(mark)),
                    None => (*k, *v),
                },
                _ => (*k, *v),
            })
            .collect();
        let mut html = maud::html! { (self.format(id, &marked)) }.into_string();
        for (mark, value) in &marks {
            let inner = maud::html! { (value) }.into_string();
            html = html.replace(mark.as_str(), &format!("<bdi>{inner}</bdi>"));
        }
        html
    }

    /// A number in the language's digits.
    pub fn number(&self, n: usize) -> String {
        self.digits_of(n.to_string())
    }

    fn digits_of(&self, s: String) -> String {
        match self.digits {
            Digits::Latn => s,
            Digits::Arabext => to_arabext(&s),
        }
    }
}

#[cfg(test)]
mod tests;
