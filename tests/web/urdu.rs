//! The reader pages of an Urdu list, over real HTTP to the real router: every page a reader
//! reaches from an Urdu email (unsubscribe, unsubscribed, preferences, sign-up and its answer)
//! is `<html lang="ur" dir="rtl">` and carries no fixed word of the English catalogue, while an
//! English list's pages on the same server stay English.

use dispatch::i18n::{Catalogue, Language};
use dispatch::store::ListSpec;
use dispatch::web::RateLimits;

use crate::{App, spawn_app_configured};

async fn spawn() -> App {
    spawn_app_configured(RateLimits::default(), |config| {
        config.digest.category_order = vec!["قومی خبریں".into(), "کھیل".into()];
    })
    .await
}

impl App {
    /// A list named `name` in `language`.
    async fn list_in(&self, slug: &str, name: &str, language: Language) -> i64 {
        let id = self.list(slug, false, None).await;
        let spec = ListSpec {
            name: Some(name.into()),
            language: Some(language),
            ..Default::default()
        };
        self.store.update_list(slug, &spec).await.unwrap();
        id
    }

    /// Subscribes `email` and returns the token its next message would carry.
    async fn reader(&self, list_id: i64, email: &str) -> dispatch::domain::Token {
        self.subscribe(list_id, &[email]).await;
        self.tokens(list_id).await.remove(email).unwrap()
    }

    async fn page(&self, path: &str) -> String {
        let r = self.get(path).await;
        assert_eq!(r.status(), 200, "GET {path}");
        r.text().await.unwrap()
    }

    async fn post(&self, path: &str, form: &str) -> String {
        let (status, body) = self.post_any(path, form).await;
        assert_eq!(status, 200, "POST {path}: {body}");
        body
    }

    async fn post_any(&self, path: &str, form: &str) -> (u16, String) {
        let r = self.post_form(path, form).await;
        let status = r.status().as_u16();
        (status, r.text().await.unwrap())
    }
}

/// The text a reader sees: tags and the `<style>` sheet dropped, and the data the operator
/// chose (the publication's name, which is English in the default config) left out.
fn visible(page: &str) -> String {
    let page = match (page.find("<style>"), page.find("</style>")) {
        (Some(a), Some(b)) => format!("{}{}", &page[..a], &page[b..]),
        _ => page.to_owned(),
    };
    let mut out = String::new();
    let mut in_tag = false;
    for c in page.chars() {
        match c {
            '<' => in_tag = true,
            '>' => {
                in_tag = false;
                out.push(' ');
            }
            c if !in_tag => out.push(c),
            _ => {}
        }
    }
    out.replace("The Daily Ledger", " ")
}

fn has_word(haystack: &str, phrase: &str) -> bool {
    haystack.match_indices(phrase).any(|(i, _)| {
        let before = haystack[..i].chars().next_back();
        let after = haystack[i + phrase.len()..].chars().next();
        !before.is_some_and(char::is_alphanumeric) && !after.is_some_and(char::is_alphanumeric)
    })
}

fn assert_urdu(what: &str, page: &str) {
    assert!(
        page.contains(r#"<html lang="ur" dir="rtl">"#),
        "{what}: {page}"
    );
    let text = visible(page);
    for word in Catalogue::shipped_words(Language::En) {
        assert!(
            !has_word(&text, &word),
            "{what} has the English {word:?}:\n{text}"
        );
    }
}

#[tokio::test]
async fn an_urdu_lists_reader_pages_are_urdu_and_right_to_left() {
    let app = spawn().await;
    let urdu = app.list_in("urdu", "روزانہ خلاصہ", Language::Ur).await;
    let english = app.list_in("daily", "Daily Digest", Language::En).await;
    let token = app.reader(urdu, "ayesha@example.pk").await;
    let t = token.as_str();

    let page = app.page(&format!("/unsubscribe/{t}")).await;
    assert_urdu("unsubscribe", &page);
    assert!(page.contains("روزانہ خلاصہ"), "{page}");
    // The publication's Latin name inside an Urdu sentence is isolated.
    assert!(page.contains("<bdi>The Daily Ledger</bdi>"), "{page}");

    assert_urdu("preferences", &app.page(&format!("/preferences/{t}")).await);
    // No topic ticked: the error names the list, in Urdu.
    let (status, refused) = app
        .post_any(
            &format!("/preferences/{t}"),
            &format!("action=save&list={urdu}&subscribed={urdu}"),
        )
        .await;
    assert_eq!(status, 400);
    assert_urdu("preferences refused", &refused);
    let sport = "%DA%A9%DA%BE%DB%8C%D9%84"; // کھیل
    let saved = app
        .post(
            &format!("/preferences/{t}"),
            &format!("action=save&list={urdu}&subscribed={urdu}&cat.{urdu}={sport}"),
        )
        .await;
    assert_urdu("preferences saved", &saved);
    assert!(saved.contains("محفوظ ہو گیا"), "{saved}");

    let form = app.page("/subscribe?list=urdu").await;
    assert_urdu("sign-up form", &form);
    assert!(
        form.contains(r#"type="email" name="email" dir="ltr""#),
        "{form}"
    );
    let done = app
        .post("/subscribe", "list=urdu&email=bilal%40example.pk")
        .await;
    assert_urdu("sign-up answer", &done);

    assert_urdu(
        "unsubscribed",
        &app.post(&format!("/unsubscribe/{t}"), "").await,
    );

    // The English list on the same server keeps English pages.
    let token = app.reader(english, "omar@example.com").await;
    let page = app.page(&format!("/unsubscribe/{}", token.as_str())).await;
    assert!(page.contains(r#"<html lang="en">"#), "{page}");
    assert!(page.contains("Unsubscribe from Daily Digest?"), "{page}");
}
