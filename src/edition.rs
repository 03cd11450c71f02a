//! Building editions: choosing a window's stories for a list, recording the edition with its
//! recipient snapshot, and rendering an edition's variants for sending or preview.
//!
//! The selection rules live in [`crate::digest`] (pure), the SQL in [`crate::store`]; this
//! module connects them.

use std::collections::HashMap;
use std::sync::Arc;

use anyhow::{Context, Result};
use chrono::{DateTime, Duration, Utc};

use crate::config::Config;
use crate::digest::{self, ArticleView, Section};
use crate::domain::{Category, CategorySet};
use crate::render::{self, EditionContext, Rendered};
use crate::store::{
    ArticleRow, Created, DbTime, EditionKind, EditionRow, ListRow, NewEdition, Store, StoreError,
};

/// The stories a digest of `list` would carry now, and its window.
#[derive(Debug)]
pub struct DigestPlan {
    pub window_start: DateTime<Utc>,
    pub window_end: DateTime<Utc>,
    /// Every selected story in display order, with its was-breaking mark.
    pub articles: Vec<ArticleView>,
    pub sections: Vec<Section>,
}

impl DigestPlan {
    /// Number of stories.
    pub fn story_count(&self) -> usize {
        self.articles.len()
    }
}

/// Converts a stored article for rendering. Categories were validated on the way in; a
/// hand-written row with an unusable category is shown under "General News" rather than lost.
pub fn article_view(a: &ArticleRow, was_breaking: bool) -> ArticleView {
    ArticleView {
        id: a.id,
        url: a.url.clone(),
        title: a.title.clone(),
        summary: a.summary.clone(),
        author: a.author.clone(),
        category: Category::parse(&a.category)
            .or_else(|_| Category::parse("General News"))
            .unwrap_or_else(|_| unreachable!("constant category is valid")),
        language: a.language.clone(),
        image_url: a.image_url.clone(),
        published_at: crate::store::parse_db_time(&a.published_at).unwrap_or_default(),
        was_breaking,
    }
}

fn category_order(config: &Config) -> Vec<Category> {
    config
        .digest
        .category_order
        .iter()
        .filter_map(|c| Category::parse(c).ok())
        .collect()
}

/// Groups stories into sections with the configured order and cap.
pub fn sections_of(config: &Config, articles: Vec<ArticleView>) -> Vec<Section> {
    digest::group(
        articles,
        &category_order(config),
        config.digest.max_per_category as usize,
        &config.publication.url,
    )
}

/// Plans the next digest of `list` as of `now`: the window starts where the list's last
/// digest ended (or `first_window_hours` ago for a new list) and ends at `now`.
///
/// Stored times have whole seconds, and a story stored in the second a digest is built may
/// commit after the digest read the articles. So consecutive windows share their boundary
/// second (both include it), and a story the previous digest already carried is left out:
/// every story is in exactly one digest, none falls between two.
pub async fn plan_digest(
    store: &Store,
    config: &Config,
    list: &ListRow,
    now: DateTime<Utc>,
) -> Result<DigestPlan> {
    let window_start = match store.last_digest_end(list.id).await? {
        Some(end) => end,
        None => now - Duration::hours(i64::from(config.digest.first_window_hours)),
    };
    let window_end = now.max(window_start);
    // Late arrivals are welcome for as long as a new list looks back.
    let grace = Duration::hours(i64::from(config.digest.first_window_hours));
    let carried: std::collections::HashSet<i64> = store
        .digest_articles_ending_at(list.id, window_start)
        .await?
        .into_iter()
        .collect();
    let mut rows = store
        .articles_in_window(window_start, window_end, grace)
        .await?;
    rows.retain(|a| !carried.contains(&a.id));
    let breaking: std::collections::HashSet<i64> =
        store.sent_as_breaking(list.id).await?.into_iter().collect();
    let views: Vec<ArticleView> = rows
        .iter()
        .map(|a| article_view(a, breaking.contains(&a.id)))
        .collect();
    let selected = digest::select(
        views,
        list.category_set().as_ref(),
        config.digest.repeat_breaking,
    );
    let sections = sections_of(config, selected.clone());
    // Display order: the sections' order, all stories (not only those shown under the cap).
    let mut ordered = Vec::with_capacity(selected.len());
    for s in &sections {
        let mut all: Vec<&ArticleView> = selected
            .iter()
            .filter(|a| a.category == s.category)
            .collect();
        all.sort_by(|a, b| b.published_at.cmp(&a.published_at).then(b.id.cmp(&a.id)));
        ordered.extend(all.into_iter().cloned());
    }
    Ok(DigestPlan {
        window_start,
        window_end,
        articles: ordered,
        sections,
    })
}

/// The rendering context of an edition of `list`, dated `date`.
fn context<'a>(
    config: &'a Config,
    list: &'a ListRow,
    kind: EditionKind,
    date: DateTime<Utc>,
) -> EditionContext<'a> {
    EditionContext {
        publication: &config.publication,
        strings: config
            .catalogue
            .strings(list.language_or(config.publication.language)),
        public_url: &config.web.public_url,
        site_url: &config.publication.url,
        list_name: &list.name,
        list_description: &list.description,
        kind,
        date: date.with_timezone(&list.tz().0),
        web_view_url: None,
    }
}

/// Builds and records the list's digest as of `now` (for `slot`, when scheduled).
///
/// An empty digest is recorded as skipped unless the list sends empty digests, so the next
/// window still starts at this one's end. Readers whose chosen categories have no story are
/// recorded as skipped.
pub async fn create_digest(
    store: &Store,
    config: &Config,
    list: &ListRow,
    now: DateTime<Utc>,
    slot: Option<DateTime<Utc>>,
) -> Result<Created> {
    // A concurrent builder can move the window between planning and recording; plan again.
    for _ in 0..3 {
        let plan = plan_digest(store, config, list, now).await?;
        let refs: Vec<&Section> = plan.sections.iter().collect();
        let rendered = render::render_digest(
            &context(config, list, EditionKind::Digest, slot.unwrap_or(now)),
            &refs,
        );
        let skip_reason = (plan.story_count() == 0 && !list.send_empty)
            .then(|| "no stories were published in the window".to_owned());
        let mut empty_variants = Vec::new();
        if skip_reason.is_none() {
            for v in store.category_variants(list.id).await? {
                let chosen = v.as_deref().map(CategorySet::from_stored);
                if plan.story_count() > 0
                    && digest::variant(&plan.sections, chosen.as_ref()).is_empty()
                {
                    empty_variants.push(v);
                }
            }
        }
        let e = NewEdition {
            list_id: list.id,
            kind: EditionKind::Digest,
            slot,
            breaking_article_id: None,
            window_start: plan.window_start,
            window_end: plan.window_end,
            subject: rendered.subject,
            articles: plan
                .articles
                .iter()
                .map(|a| (a.id, a.was_breaking))
                .collect(),
            skip_reason,
            empty_variants,
        };
        match store.create_edition(&e).await {
            Err(StoreError::Conflict(_)) => continue,
            other => return other.context("recording the edition"),
        }
    }
    anyhow::bail!(
        "the list's window kept moving while building its digest; is another sender running?"
    )
}

/// What readers of `list` get as breaking news of `article` (the console's preview): the
/// same rendering [`create_breaking`] records, with the readers' holes still open. `None`
/// when the list's categories leave the article out (nobody there would get it).
pub fn preview_breaking(config: &Config, list: &ListRow, article: &ArticleRow) -> Option<Rendered> {
    let view = article_view(article, false);
    if let Some(cats) = list.category_set()
        && !cats.contains(&view.category)
    {
        return None;
    }
    Some(render::render_breaking(
        &context(config, list, EditionKind::Breaking, Utc::now()),
        &view,
    ))
}

/// Sends one copy of the breaking news `article` as readers of `list` would get it, to `to`
/// only (the console's "Send test to me"), through the configured transport, at once. Its
/// links carry a random token that is no reader's. Not DKIM-signed: it is a preview.
pub async fn send_test_breaking(
    config: &Config,
    list: &ListRow,
    article: &ArticleRow,
    to: &crate::domain::EmailAddress,
) -> Result<()> {
    let Some(rendered) = preview_breaking(config, list, article) else {
        anyhow::bail!("the list's categories leave this story out");
    };
    let headers = common_headers(config, list, EditionKind::Breaking, &rendered.subject);
    let template = crate::mail::MessageTemplate::new(&headers, &rendered.text, &rendered.html);
    let mut eml = Vec::with_capacity(template.size_hint());
    let message_id = crate::mail::mime::message_id(0, 0, template.message_id_domain());
    // A fresh random token: the right shape for the links, and no reader's.
    let token = crate::domain::Token::generate();
    template.personalise(
        &crate::mail::mime::Recipient {
            to,
            name: None,
            token: token.as_str(),
            message_id: &message_id,
        },
        &mut eml,
    );
    let transport = crate::mail::Transport::from_config(config)
        .map_err(|e| anyhow::anyhow!("the mail transport: {e}"))?;
    let mut session = transport
        .session()
        .await
        .map_err(|e| anyhow::anyhow!("connecting to the relay: {e}"))?;
    session
        .send(config.publication.from.address(), to, &eml)
        .await
        .map_err(|e| anyhow::anyhow!("sending the test message: {e}"))?;
    Ok(())
}

/// Records a breaking-news edition of `article_id` for each list that carries breaking news
/// (or only `only`). Once per article per list: a second call finds the existing editions.
pub async fn create_breaking(
    store: &Store,
    config: &Config,
    article_id: i64,
    only: Option<&ListRow>,
) -> Result<Vec<(ListRow, Created)>> {
    let article = store.article(article_id).await?;
    let lists: Vec<ListRow> = match only {
        Some(l) => vec![l.clone()],
        None => store
            .all_lists()
            .await?
            .into_iter()
            .filter(|l| l.sends_breaking)
            .collect(),
    };
    let now = Utc::now();
    let mut out = Vec::new();
    for list in lists {
        let view = article_view(&article, false);
        if let Some(cats) = list.category_set()
            && !cats.contains(&view.category)
        {
            continue;
        }
        let rendered =
            render::render_breaking(&context(config, &list, EditionKind::Breaking, now), &view);
        let e = NewEdition {
            list_id: list.id,
            kind: EditionKind::Breaking,
            slot: None,
            breaking_article_id: Some(article.id),
            window_start: now,
            window_end: now,
            subject: rendered.subject,
            articles: vec![(article.id, false)],
            skip_reason: None,
            empty_variants: store
                .category_variants(list.id)
                .await?
                .into_iter()
                .filter(|v| {
                    v.as_deref()
                        .map(CategorySet::from_stored)
                        .is_some_and(|c| !c.contains(&view.category))
                })
                .collect(),
        };
        let created = store.create_edition(&e).await?;
        out.push((list, created));
    }
    Ok(out)
}

/// Renders the variants of a recorded edition on demand, once per category choice.
pub struct EditionRenderer {
    edition: EditionRow,
    list: ListRow,
    sections: Vec<Section>,
    breaking: Option<ArticleView>,
    cache: HashMap<Option<String>, Option<Arc<Rendered>>>,
}

impl EditionRenderer {
    /// Loads what the edition needs from the store.
    pub async fn load(store: &Store, config: &Config, edition: EditionRow) -> Result<Self> {
        let list = store.list_by_id(edition.list_id).await?;
        let articles: Vec<ArticleView> = store
            .edition_articles(edition.id)
            .await?
            .iter()
            .map(|(a, was)| article_view(a, *was))
            .collect();
        let breaking = if edition.is_breaking() {
            articles.first().cloned()
        } else {
            None
        };
        let sections = sections_of(config, articles);
        Ok(Self {
            edition,
            list,
            sections,
            breaking,
            cache: HashMap::new(),
        })
    }

    /// The edition.
    pub fn edition(&self) -> &EditionRow {
        &self.edition
    }

    /// The edition's list.
    pub fn list(&self) -> &ListRow {
        &self.list
    }

    /// The rendering for readers who chose `categories` (stored form; `None` = all), or
    /// `None` when that choice leaves nothing to send.
    pub fn variant(&mut self, config: &Config, categories: Option<&str>) -> Option<Arc<Rendered>> {
        let key = categories.map(str::to_owned);
        if let Some(hit) = self.cache.get(&key) {
            return hit.clone();
        }
        let date = self
            .edition
            .slot
            .map(DbTime::utc)
            .unwrap_or_else(|| self.edition.created());
        let kind = if self.edition.is_breaking() {
            EditionKind::Breaking
        } else {
            EditionKind::Digest
        };
        let ctx = context(config, &self.list, kind, date);
        let chosen = categories.map(CategorySet::from_stored);
        let rendered = match &self.breaking {
            Some(a) => {
                let wanted = chosen.as_ref().is_none_or(|c| c.contains(&a.category));
                wanted.then(|| render::render_breaking(&ctx, a))
            }
            None => {
                let sections = digest::variant(&self.sections, chosen.as_ref());
                let empty_edition = self.sections.is_empty();
                (!sections.is_empty() || empty_edition)
                    .then(|| render::render_digest(&ctx, &sections))
            }
        };
        let rendered = rendered.map(Arc::new);
        self.cache.insert(key, rendered.clone());
        rendered
    }
}

/// The headers every reader of an edition variant shares: the one place they are built.
///
/// Everything comes from the typed config, so nothing here can fail.
pub fn common_headers(
    config: &Config,
    list: &ListRow,
    kind: EditionKind,
    subject: &str,
) -> crate::mail::mime::CommonHeaders {
    let from = &config.publication.from;
    let domain = from.domain().to_owned();
    crate::mail::mime::CommonHeaders {
        from: from.mailbox().clone(),
        reply_to: config.publication.reply_to.clone(),
        subject: subject.to_owned(),
        date: Utc::now(),
        // RFC 2919 §2: "list-label.namespace", one id per list, stable for the list's life;
        // digest and breaking editions of one list share it, different lists never do.
        list_id: format!("{} <{}.{}>", list.name, list.slug, domain),
        public_url: config.web.public_url.clone(),
        unsubscribe_mailbox: format!("unsubscribe@{domain}"),
        message_id_domain: domain,
        // Gmail's feedback loop aggregates per stream: list and kind, never per reader.
        feedback_id: Some(format!("{}:{}:dispatch", list.slug, kind.as_str())),
    }
}

/// Renders a digest plan (not recorded) for readers who chose `categories` (`None` = all):
/// what `preview` and `send test` show. `None` when that choice leaves nothing.
pub fn render_plan(
    config: &Config,
    list: &ListRow,
    plan: &DigestPlan,
    categories: Option<&CategorySet>,
    now: DateTime<Utc>,
) -> Option<Rendered> {
    let sections = digest::variant(&plan.sections, categories);
    if sections.is_empty() && !plan.sections.is_empty() {
        return None;
    }
    Some(render::render_digest(
        &context(config, list, EditionKind::Digest, now),
        &sections,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{DbTime, EmailAddress};
    use crate::store::subscribers::NewSubscription;
    use crate::store::testutil::{daily_list, store_test, temp_store_on};
    use crate::store::{Backend, NewArticle, db};

    store_test!(a_story_stored_in_the_second_a_digest_is_built_is_in_exactly_one_digest);
    async fn a_story_stored_in_the_second_a_digest_is_built_is_in_exactly_one_digest(
        backend: Backend,
    ) {
        let (store, _d) = temp_store_on(backend).await;
        let list_id = daily_list(
            &store,
            &[NewSubscription {
                email: EmailAddress::parse("reader@example.com").unwrap(),
                name: None,
                categories: None,
            }],
        )
        .await;
        let config = Config::default();
        let list = store.list_by_id(list_id).await.unwrap();
        let story = |id: &str| NewArticle {
            external_id: id.into(),
            url: format!("https://news.example.com/{id}"),
            title: id.into(),
            summary: String::new(),
            author: None,
            category: "Politics".into(),
            language: None,
            image_url: None,
            published_at: Utc::now() - Duration::minutes(5),
            breaking: false,
        };
        let (a, _) = store.insert_article(&story("a")).await.unwrap();
        // Built in the same second as `a` and `b` are stored: `b` arrives after the build.
        let at = DbTime::now().utc();
        let first = create_digest(&store, &config, &list, at, None)
            .await
            .unwrap();
        let (b, _) = store.insert_article(&story("b")).await.unwrap();
        db!(store.writer(), |c| {
            sqlx::query("UPDATE articles SET created_at = $1")
                .bind(DbTime::from(at))
                .execute(c)
                .await
                .map(|_| ())
        })
        .unwrap();
        let second = create_digest(&store, &config, &list, at + Duration::hours(1), None)
            .await
            .unwrap();
        let ids = |c: &Created| match c {
            Created::New { id, .. } => *id,
            other => panic!("a new edition, got {other:?}"),
        };
        let carried = |id: i64| {
            let store = store.clone();
            async move {
                store
                    .edition_articles(id)
                    .await
                    .unwrap()
                    .into_iter()
                    .map(|(a, _)| a.id)
                    .collect::<Vec<_>>()
            }
        };
        assert_eq!(carried(ids(&first)).await, [a]);
        assert_eq!(carried(ids(&second)).await, [b], "not lost, not repeated");
    }
}
