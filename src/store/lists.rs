//! Lists: create, read, update, delete.

use serde::Serialize;
use sqlx::FromRow;

use super::{Result, Store, StoreError, db, now_text};
use crate::domain::{CategorySet, ListSlug, Timezone};
use crate::i18n::Language;
use crate::schedule::Schedule;

/// A list as stored.
#[derive(Debug, Clone, FromRow, Serialize)]
pub struct ListRow {
    pub id: i64,
    pub slug: String,
    pub name: String,
    pub description: String,
    pub schedule: Option<String>,
    pub timezone: String,
    pub categories: Option<String>,
    pub sends_breaking: bool,
    pub send_empty: bool,
    pub double_opt_in: bool,
    /// The list's language tag; `None` = `[publication] language`.
    pub language: Option<String>,
    pub created_at: String,
    pub updated_at: String,
}

impl ListRow {
    /// The categories the list carries; `None` = all.
    pub fn category_set(&self) -> Option<CategorySet> {
        self.categories.as_deref().map(CategorySet::from_stored)
    }

    /// The list's time zone (validated when stored; UTC if the row was edited by hand badly).
    pub fn tz(&self) -> Timezone {
        Timezone::parse(&self.timezone).unwrap_or(Timezone(chrono_tz::UTC))
    }

    /// The list's language: its own, else `default` (`[publication] language`). A tag that is
    /// no longer shipped (edited by hand) also falls back to `default`.
    pub fn language_or(&self, default: Language) -> Language {
        self.language
            .as_deref()
            .and_then(Language::parse)
            .unwrap_or(default)
    }

    /// What is wrong with the stored schedule and time zone: each problem as a phrase that
    /// follows "list SLUG", with the `lists update` option that mends it. The CLI and the
    /// console refuse both, but a row written by an older version or edited by hand can still
    /// hold one, and the scheduler would then silently never send (or send in UTC).
    pub fn stored_problems(&self) -> Vec<(String, &'static str)> {
        let mut problems = Vec::new();
        if let Some(raw) = self.schedule.as_deref()
            && let Err(e) = Schedule::parse(raw)
        {
            problems.push((
                format!("gets no scheduled digests: {e}"),
                "--schedule \"0 7 * * *\"",
            ));
        }
        if let Err(e) = Timezone::parse(&self.timezone) {
            problems.push((
                format!("has its schedule read in UTC: {e}"),
                "--timezone Asia/Karachi",
            ));
        }
        problems
    }

    /// The parsed schedule, if any (validated when stored).
    pub fn parsed_schedule(&self) -> Option<Schedule> {
        self.schedule
            .as_deref()
            .and_then(|s| Schedule::parse(s).ok())
    }
}

/// The settable fields of a list. For updates, `None` leaves a field unchanged.
#[derive(Debug, Clone, Default)]
pub struct ListSpec {
    pub name: Option<String>,
    pub description: Option<String>,
    /// `Some(None)` removes the schedule.
    pub schedule: Option<Option<Schedule>>,
    pub timezone: Option<Timezone>,
    /// `Some(None)` = carry every category.
    pub categories: Option<Option<CategorySet>>,
    pub sends_breaking: Option<bool>,
    pub send_empty: Option<bool>,
    pub double_opt_in: Option<bool>,
    /// The list's language.
    pub language: Option<Language>,
}

const LIST_COLUMNS: &str = "id, slug, name, description, schedule, timezone, categories, sends_breaking, send_empty, double_opt_in, language, created_at, updated_at";

impl Store {
    /// Creates a list; fails with [`StoreError::Conflict`] if the slug exists.
    pub async fn create_list(&self, slug: &ListSlug, spec: &ListSpec) -> Result<ListRow> {
        let now = now_text();
        let name = spec.name.clone().unwrap_or_else(|| slug.to_string());
        let res = db!(self.writer(), |c| {
            sqlx::query(
                "INSERT INTO lists (slug, name, description, schedule, timezone, categories, sends_breaking, send_empty, double_opt_in, language, created_at, updated_at)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $11)",
            )
            .bind(slug.as_str())
            .bind(&name)
            .bind(spec.description.clone().unwrap_or_default())
            .bind(spec.schedule.clone().flatten().map(|s| s.as_str().to_owned()))
            .bind(spec.timezone.map(|t| t.name()).unwrap_or("UTC"))
            .bind(stored_categories(spec.categories.clone().flatten()))
            .bind(spec.sends_breaking.unwrap_or(false))
            .bind(spec.send_empty.unwrap_or(false))
            .bind(spec.double_opt_in.unwrap_or(false))
            .bind(spec.language.map(Language::tag))
            .bind(&now)
            .execute(c)
            .await.affected()
        });
        match res {
            Ok(_) => self.list_by_slug(slug.as_str()).await,
            Err(sqlx::Error::Database(e)) if e.is_unique_violation() => Err(StoreError::Conflict(
                format!("a list with slug {:?} already exists", slug.as_str()),
            )),
            Err(e) => Err(e.into()),
        }
    }

    /// The list with this slug.
    pub async fn list_by_slug(&self, slug: &str) -> Result<ListRow> {
        let sql = format!("SELECT {LIST_COLUMNS} FROM lists WHERE slug = $1");
        db!(self.pool(), |c| {
            sqlx::query_as::<_, ListRow>(sqlx::AssertSqlSafe(sql))
                .bind(slug)
                .fetch_optional(c)
                .await
        })?
        .ok_or_else(|| StoreError::NotFound(format!("list {slug:?}")))
    }

    /// The list with this id.
    pub async fn list_by_id(&self, id: i64) -> Result<ListRow> {
        let sql = format!("SELECT {LIST_COLUMNS} FROM lists WHERE id = $1");
        db!(self.pool(), |c| {
            sqlx::query_as::<_, ListRow>(sqlx::AssertSqlSafe(sql))
                .bind(id)
                .fetch_optional(c)
                .await
        })?
        .ok_or_else(|| StoreError::NotFound(format!("list #{id}")))
    }

    /// Every list, by slug.
    pub async fn all_lists(&self) -> Result<Vec<ListRow>> {
        let sql = format!("SELECT {LIST_COLUMNS} FROM lists ORDER BY slug");
        Ok(db!(self.pool(), |c| {
            sqlx::query_as::<_, ListRow>(sqlx::AssertSqlSafe(sql))
                .fetch_all(c)
                .await
        })?)
    }

    /// Applies the `Some` fields of `spec` to the list.
    pub async fn update_list(&self, slug: &str, spec: &ListSpec) -> Result<ListRow> {
        let cur = self.list_by_slug(slug).await?;
        let schedule = match &spec.schedule {
            Some(s) => s.as_ref().map(|s| s.as_str().to_owned()),
            None => cur.schedule.clone(),
        };
        let categories = match &spec.categories {
            Some(c) => stored_categories(c.clone()),
            None => cur.categories.clone(),
        };
        let name = spec.name.clone().unwrap_or(cur.name);
        let description = spec.description.clone().unwrap_or(cur.description);
        let timezone = spec
            .timezone
            .map(|t| t.name().to_owned())
            .unwrap_or(cur.timezone);
        let language = spec.language.map(|l| l.tag().to_owned()).or(cur.language);
        db!(self.writer(), |c| {
            sqlx::query(
                "UPDATE lists SET name = $1, description = $2, schedule = $3, timezone = $4, categories = $5,
                     sends_breaking = $6, send_empty = $7, double_opt_in = $8, language = $9, updated_at = $10
                 WHERE id = $11",
            )
            .bind(&name)
            .bind(&description)
            .bind(&schedule)
            .bind(&timezone)
            .bind(&categories)
            .bind(spec.sends_breaking.unwrap_or(cur.sends_breaking))
            .bind(spec.send_empty.unwrap_or(cur.send_empty))
            .bind(spec.double_opt_in.unwrap_or(cur.double_opt_in))
            .bind(language)
            .bind(now_text())
            .bind(cur.id)
            .execute(c)
            .await.affected()
        })?;
        self.list_by_slug(slug).await
    }

    /// Deletes a list. Refuses while it has pending or active subscribers unless `force`;
    /// with `force` its subscriptions and editions go too (subscribers stay).
    pub async fn delete_list(&self, slug: &str, force: bool) -> Result<u64> {
        let list = self.list_by_slug(slug).await?;
        let mut tx = self.write_tx().await?;
        let live: i64 = db!(&mut tx, |c| {
            sqlx::query_scalar(
                "SELECT COUNT(*) FROM subscriptions WHERE list_id = $1 AND status IN ('pending', 'active')",
            )
            .bind(list.id)
            .fetch_one(c)
            .await
        })?;
        if live > 0 && !force {
            return Err(StoreError::Conflict(format!(
                "list {slug:?} still has {live} subscriber(s); unsubscribe them first or pass --force"
            )));
        }
        db!(&mut tx, |c| {
            sqlx::query("DELETE FROM lists WHERE id = $1")
                .bind(list.id)
                .execute(c)
                .await
                .affected()
        })?;
        tx.commit().await?;
        Ok(live as u64)
    }
}

fn stored_categories(c: Option<CategorySet>) -> Option<String> {
    c.filter(|c| !c.is_empty()).map(|c| c.to_stored())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::Backend;
    use crate::store::testutil::{store_test, temp_store_on};

    fn slug(s: &str) -> ListSlug {
        ListSlug::parse(s).unwrap()
    }

    store_test!(create_read_update_delete);
    async fn create_read_update_delete(backend: Backend) {
        let (store, _d) = temp_store_on(backend).await;
        let spec = ListSpec {
            name: Some("Daily Digest".into()),
            schedule: Some(Some(Schedule::parse("0 7 * * *").unwrap())),
            timezone: Some(Timezone::parse("Asia/Karachi").unwrap()),
            categories: Some(Some(CategorySet::parse_list("Politics,Business").unwrap())),
            sends_breaking: Some(true),
            ..Default::default()
        };
        let l = store.create_list(&slug("daily"), &spec).await.unwrap();
        assert_eq!(l.name, "Daily Digest");
        assert_eq!(l.categories.as_deref(), Some("Business;Politics"));
        assert!(l.sends_breaking && !l.send_empty);
        assert!(matches!(
            store.create_list(&slug("daily"), &spec).await,
            Err(StoreError::Conflict(_))
        ));

        let l = store
            .update_list(
                "daily",
                &ListSpec {
                    schedule: Some(None),
                    send_empty: Some(true),
                    ..Default::default()
                },
            )
            .await
            .unwrap();
        assert_eq!(l.schedule, None);
        assert!(l.send_empty);
        assert_eq!(l.timezone, "Asia/Karachi");
        assert_eq!(store.all_lists().await.unwrap().len(), 1);
        assert_eq!(store.list_by_id(l.id).await.unwrap().slug, "daily");

        assert_eq!(store.delete_list("daily", false).await.unwrap(), 0);
        assert!(matches!(
            store.list_by_slug("daily").await,
            Err(StoreError::NotFound(_))
        ));
    }

    store_test!(a_list_keeps_its_language_and_falls_back_to_the_publications);
    async fn a_list_keeps_its_language_and_falls_back_to_the_publications(backend: Backend) {
        let (store, _d) = temp_store_on(backend).await;
        let plain = store
            .create_list(&slug("daily"), &ListSpec::default())
            .await
            .unwrap();
        assert_eq!(plain.language, None);
        assert_eq!(plain.language_or(Language::Ur), Language::Ur);
        let urdu = ListSpec {
            language: Some(Language::Ur),
            ..Default::default()
        };
        let ur = store.create_list(&slug("urdu"), &urdu).await.unwrap();
        assert_eq!(ur.language.as_deref(), Some("ur"));
        assert_eq!(ur.language_or(Language::En), Language::Ur);
        // An update that does not name the language keeps it.
        let renamed = ListSpec {
            name: Some("روزانہ خلاصہ".into()),
            ..Default::default()
        };
        let ur = store.update_list("urdu", &renamed).await.unwrap();
        assert_eq!(ur.language_or(Language::En), Language::Ur);
        let english = ListSpec {
            language: Some(Language::En),
            ..Default::default()
        };
        let en = store.update_list("daily", &english).await.unwrap();
        assert_eq!(en.language_or(Language::Ur), Language::En);
    }
}
