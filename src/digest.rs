//! Which articles go into an edition, and how they are grouped: pure logic, no I/O.
//!
//! The edition builder loads the window's articles, [`select`]s those the list carries,
//! [`group`]s them into [`Section`]s once per edition, and then asks [`variant`] which sections
//! each distinct choice of categories gets. The renderer runs once per variant.

use chrono::{DateTime, Utc};

use crate::domain::{Category, CategorySet, WebUrl};

/// An article as the digest and the renderer see it: the stored row, plus whether it has
/// already gone to this list as breaking news.
///
/// Text fields are as stored (CMS text, possibly hostile); the renderer cleans and escapes them.
#[derive(Debug, Clone, PartialEq)]
pub struct ArticleView {
    /// The article's row id.
    pub id: i64,
    /// The article's page on the site.
    pub url: String,
    /// The headline.
    pub title: String,
    /// A short summary; may carry CMS HTML, which the renderer sanitises.
    pub summary: String,
    /// The byline, when known.
    pub author: Option<String>,
    /// The article's category.
    pub category: Category,
    /// The article's BCP 47 language tag (`en`, `ur`), when known.
    pub language: Option<String>,
    /// A picture for the story; only `https` URLs are ever shown.
    pub image_url: Option<String>,
    /// When the article was published.
    pub published_at: DateTime<Utc>,
    /// Already sent to this list as breaking news.
    pub was_breaking: bool,
}

/// The stories of one category in an edition.
#[derive(Debug, Clone, PartialEq)]
pub struct Section {
    /// The category, spelled as configured (or as the newest article spells it).
    pub category: Category,
    /// The stories shown, newest first.
    pub articles: Vec<ArticleView>,
    /// How many stories of this category the edition has beyond those shown.
    pub more: usize,
    /// The category's page on the site: `<site url>/category/<percent-encoded category>`.
    pub more_url: String,
}

/// Keeps the articles a list carries.
///
/// `list_categories` of `None` means the list carries every category; `Some(set)` means exactly
/// those (so an empty set carries nothing). Categories match case-insensitively. Articles
/// already sent to the list as breaking news are dropped unless `repeat_breaking` is true.
pub fn select(
    articles: Vec<ArticleView>,
    list_categories: Option<&CategorySet>,
    repeat_breaking: bool,
) -> Vec<ArticleView> {
    articles
        .into_iter()
        .filter(|a| list_categories.is_none_or(|set| set.contains(&a.category)))
        .filter(|a| repeat_breaking || !a.was_breaking)
        .collect()
}

/// Groups articles into sections.
///
/// Sections come in the order of `order` first, then the remaining categories alphabetically
/// (case-insensitively). Within a section stories run newest first, ties broken by id
/// descending so the order is stable. At most `max_per_category` stories are shown (at least
/// one: a section is never empty) and [`Section::more`] counts the rest.
pub fn group(
    articles: Vec<ArticleView>,
    order: &[Category],
    max_per_category: usize,
    site_url: &WebUrl,
) -> Vec<Section> {
    // Config validation rejects 0; a guard anyway, because an empty section would render a
    // heading with nothing under it.
    let cap = max_per_category.max(1);
    let mut buckets: Vec<(Category, Vec<ArticleView>)> = Vec::new();
    for a in articles {
        match buckets.iter_mut().find(|(c, _)| *c == a.category) {
            Some((_, v)) => v.push(a),
            None => buckets.push((a.category.clone(), vec![a])),
        }
    }
    for (_, v) in &mut buckets {
        v.sort_by(|x, y| {
            y.published_at
                .cmp(&x.published_at)
                .then_with(|| y.id.cmp(&x.id))
        });
    }
    let rank = |c: &Category| order.iter().position(|o| o == c).unwrap_or(usize::MAX);
    buckets.sort_by(|(a, _), (b, _)| rank(a).cmp(&rank(b)).then_with(|| a.cmp(b)));

    buckets
        .into_iter()
        .map(|(first_seen, mut articles)| {
            let category = order
                .iter()
                .find(|o| **o == first_seen)
                .cloned()
                .or_else(|| articles.first().map(|a| a.category.clone()))
                .unwrap_or(first_seen);
            let more = articles.len().saturating_sub(cap);
            articles.truncate(cap);
            let more_url = category_url(site_url, &category);
            Section {
                category,
                articles,
                more,
                more_url,
            }
        })
        .collect()
}

/// The sections a reader who chose `chosen` gets: all of them for `None`, otherwise those
/// whose category is in the set (so an empty set gets nothing).
///
/// An empty result means this reader gets no message for the edition.
pub fn variant<'a>(sections: &'a [Section], chosen: Option<&CategorySet>) -> Vec<&'a Section> {
    sections
        .iter()
        .filter(|s| chosen.is_none_or(|set| set.contains(&s.category)))
        .collect()
}

/// The site's page for a category: `<site url>/category/<percent-encoded category>`.
pub fn category_url(site_url: &WebUrl, category: &Category) -> String {
    format!(
        "{}/category/{}",
        site_url.base(),
        percent_encode(category.as_str())
    )
}

/// Percent-encodes everything but RFC 3986 unreserved characters, so a category is one safe
/// path segment whatever it contains (spaces, `/`, `?`, Urdu).
fn percent_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use chrono::TimeZone;

    pub(crate) fn cat(s: &str) -> Category {
        Category::parse(s).unwrap()
    }

    pub(crate) fn article(id: i64, category: &str, minute: u32) -> ArticleView {
        ArticleView {
            id,
            url: format!("https://news.example.com/story/{id}"),
            title: format!("Story {id}"),
            summary: format!("Summary of story {id}."),
            author: None,
            category: cat(category),
            language: None,
            image_url: None,
            published_at: Utc.with_ymd_and_hms(2026, 11, 28, 1, minute, 0).unwrap(),
            was_breaking: false,
        }
    }

    fn site() -> WebUrl {
        WebUrl::parse("https://news.example.com/").unwrap()
    }

    fn ids(s: &Section) -> Vec<i64> {
        s.articles.iter().map(|a| a.id).collect()
    }

    #[test]
    fn select_all_categories_when_list_has_none() {
        let got = select(
            vec![article(1, "Sport", 0), article(2, "Tech", 0)],
            None,
            true,
        );
        assert_eq!(got.len(), 2);
    }

    #[test]
    fn select_filters_by_list_categories_case_insensitively() {
        let set = CategorySet::parse_list("politics, SPORT").unwrap();
        let got = select(
            vec![
                article(1, "Politics", 0),
                article(2, "Business", 0),
                article(3, "sport", 0),
            ],
            Some(&set),
            true,
        );
        assert_eq!(got.iter().map(|a| a.id).collect::<Vec<_>>(), [1, 3]);
        assert!(
            select(
                vec![article(1, "Politics", 0)],
                Some(&CategorySet::default()),
                true
            )
            .is_empty()
        );
    }

    #[test]
    fn select_drops_breaking_only_when_not_repeating() {
        let mut b = article(1, "Politics", 0);
        b.was_breaking = true;
        let all = vec![b, article(2, "Politics", 0)];
        assert_eq!(select(all.clone(), None, true).len(), 2);
        let got = select(all, None, false);
        assert_eq!(got.iter().map(|a| a.id).collect::<Vec<_>>(), [2]);
    }

    #[test]
    fn group_orders_sections_configured_first_then_alphabetically() {
        let order = [cat("General News"), cat("Politics"), cat("Business")];
        let got = group(
            vec![
                article(1, "weather", 0),
                article(2, "Business", 0),
                article(3, "Arts", 0),
                article(4, "general news", 0),
                article(5, "Zoology", 0),
            ],
            &order,
            8,
            &site(),
        );
        let names: Vec<&str> = got.iter().map(|s| s.category.as_str()).collect();
        // Configured spelling wins; unconfigured ones keep the article's.
        assert_eq!(
            names,
            ["General News", "Business", "Arts", "weather", "Zoology"]
        );
    }

    #[test]
    fn group_sorts_newest_first_with_id_tiebreak_and_caps() {
        let got = group(
            vec![
                article(1, "Sport", 10),
                article(2, "Sport", 30),
                article(3, "sport", 30),
                article(4, "Sport", 5),
                article(5, "Sport", 20),
            ],
            &[],
            3,
            &site(),
        );
        assert_eq!(got.len(), 1, "categories merge case-insensitively");
        assert_eq!(ids(&got[0]), [3, 2, 5]);
        assert_eq!(got[0].more, 2);
        let uncapped = group(vec![article(1, "Sport", 0)], &[], 3, &site());
        assert_eq!(uncapped[0].more, 0);
    }

    #[test]
    fn group_never_shows_an_empty_section() {
        let got = group(
            vec![article(1, "Sport", 0), article(2, "Sport", 1)],
            &[],
            0,
            &site(),
        );
        assert_eq!(ids(&got[0]), [2]);
        assert_eq!(got[0].more, 1);
    }

    #[test]
    fn more_url_percent_encodes_the_category() {
        let got = group(vec![article(1, "General News", 0)], &[], 8, &site());
        assert_eq!(
            got[0].more_url,
            "https://news.example.com/category/General%20News"
        );
        assert_eq!(
            category_url(&site(), &cat("کھیل/x?y")),
            "https://news.example.com/category/%DA%A9%DA%BE%DB%8C%D9%84%2Fx%3Fy"
        );
    }

    #[test]
    fn variant_picks_chosen_sections() {
        let sections = group(
            vec![
                article(1, "Politics", 0),
                article(2, "Sport", 0),
                article(3, "Business", 0),
            ],
            &[],
            8,
            &site(),
        );
        assert_eq!(variant(&sections, None).len(), 3);
        let chosen = CategorySet::parse_list("sport;politics").unwrap();
        let names: Vec<&str> = variant(&sections, Some(&chosen))
            .iter()
            .map(|s| s.category.as_str())
            .collect();
        assert_eq!(names, ["Politics", "Sport"]);
        let none = CategorySet::parse_list("Weather").unwrap();
        assert!(
            variant(&sections, Some(&none)).is_empty(),
            "no message for this reader"
        );
        assert!(variant(&sections, Some(&CategorySet::default())).is_empty());
    }
}
