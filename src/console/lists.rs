//! The lists pages (admin): create and edit a list, with the next five sends of the typed
//! schedule, and its subscriber counts by status.
//!
//! Every field is parsed by the same functions the CLI's `lists create/update` options use
//! ([`ListSlug::parse`], [`Schedule::parse`], [`Timezone::parse`],
//! [`CategorySet::parse_list`], [`Language::parse`]), so the console accepts exactly what the
//! CLI accepts; an error names its field. "Show next sends" re-renders the form with the
//! typed schedule's next sends and saves nothing, so it works without JavaScript; with it,
//! a few lines of our script ask `GET /lists/next-sends` as one types.

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use chrono::Utc;
use maud::{Markup, html};
use serde::Deserialize;

use super::editorial::{csrf_field, page};
use super::schedule::{UPCOMING, in_zone};
use super::{ClientIp, ConsoleState, Posted, Signed, pages};
use crate::domain::{CategorySet, ListSlug, Timezone};
use crate::i18n::Language;
use crate::schedule::Schedule;
use crate::store::{ListRow, ListSpec, StoreError};
use crate::web::form::Fields;

/// The list form's fields as typed, shown again after an error or a "Show next sends".
#[derive(Debug, Clone, Default)]
struct Typed {
    slug: String,
    name: String,
    description: String,
    schedule: String,
    timezone: String,
    categories: String,
    language: String,
    breaking: bool,
    double_opt_in: bool,
    send_empty: bool,
}

impl Typed {
    fn of_list(l: &ListRow, default_language: Language) -> Self {
        Self {
            slug: l.slug.clone(),
            name: l.name.clone(),
            description: l.description.clone(),
            schedule: l.schedule.clone().unwrap_or_default(),
            timezone: l.timezone.clone(),
            categories: l.category_set().map(|c| c.to_string()).unwrap_or_default(),
            language: l.language_or(default_language).tag().to_owned(),
            breaking: l.sends_breaking,
            double_opt_in: l.double_opt_in,
            send_empty: l.send_empty,
        }
    }

    fn of_form(f: &Fields) -> Self {
        let text = |name: &str| f.get(name).unwrap_or("").trim().to_owned();
        let flag = |name: &str| f.get(name).is_some();
        Self {
            slug: text("slug"),
            name: text("name"),
            description: text("description"),
            schedule: text("schedule"),
            timezone: text("timezone"),
            categories: text("categories"),
            language: text("language"),
            breaking: flag("breaking"),
            double_opt_in: flag("double_opt_in"),
            send_empty: flag("send_empty"),
        }
    }

    /// The whole list as a spec (every field set: the form shows them all), or the errors,
    /// each naming its field.
    fn spec(&self) -> Result<ListSpec, Vec<(&'static str, String)>> {
        let mut errors = Vec::new();
        let mut check = |field: &'static str, r: Result<(), String>| {
            if let Err(e) = r {
                errors.push((field, e));
            }
        };
        let schedule = optional(&self.schedule, Schedule::parse);
        let timezone = Timezone::parse(&self.timezone);
        let categories = optional(&self.categories, CategorySet::parse_list);
        let language = Language::parse(&self.language);
        if self.name.is_empty() {
            check("name", Err("give the list a name readers will see".into()));
        }
        check(
            "schedule",
            schedule.as_ref().map(drop).map_err(ToString::to_string),
        );
        check(
            "timezone",
            timezone.as_ref().map(drop).map_err(ToString::to_string),
        );
        check(
            "categories",
            categories.as_ref().map(drop).map_err(ToString::to_string),
        );
        if language.is_none() {
            let known: Vec<&str> = Language::ALL.iter().map(|l| l.tag()).collect();
            check(
                "language",
                Err(format!(
                    "unknown language {:?}; use one of {}",
                    self.language,
                    known.join(", ")
                )),
            );
        }
        match (schedule, timezone, categories, language) {
            (Ok(schedule), Ok(timezone), Ok(categories), Some(language)) if errors.is_empty() => {
                Ok(ListSpec {
                    name: Some(self.name.clone()),
                    description: Some(self.description.clone()),
                    schedule: Some(schedule),
                    timezone: Some(timezone),
                    categories: Some(categories),
                    sends_breaking: Some(self.breaking),
                    send_empty: Some(self.send_empty),
                    double_opt_in: Some(self.double_opt_in),
                    language: Some(language),
                })
            }
            _ => Err(errors),
        }
    }

    /// What the audit log records of a change.
    fn summary(&self) -> String {
        format!(
            "name={:?} schedule={:?} timezone={} categories={:?} language={} breaking={} double_opt_in={} send_empty={}",
            self.name,
            self.schedule,
            self.timezone,
            self.categories,
            self.language,
            self.breaking,
            self.double_opt_in,
            self.send_empty
        )
    }
}

/// An empty field is "none" (no schedule, every category); anything else must parse.
fn optional<T, E>(raw: &str, parse: impl Fn(&str) -> Result<T, E>) -> Result<Option<T>, E> {
    if raw.trim().is_empty() {
        Ok(None)
    } else {
        parse(raw).map(Some)
    }
}

/// The next sends of a typed schedule in a typed zone, or why there are none.
fn next_sends(schedule: &str, timezone: &str) -> Markup {
    let parsed = optional(schedule, Schedule::parse);
    match (parsed, Timezone::parse(timezone)) {
        (Ok(Some(s)), Ok(tz)) => in_zone(&s.upcoming(Utc::now(), tz, UPCOMING), tz),
        (Ok(None), _) => html! { span.muted { "No schedule: no digests are sent on their own." } },
        (Err(e), _) => html! { span.muted { "Schedule: " (e) } },
        (_, Err(e)) => html! { span.muted { "Time zone: " (e) } },
    }
}

/// The query of `GET /lists/next-sends`.
#[derive(Debug, Default, Deserialize)]
pub(super) struct NextSendsQuery {
    #[serde(default)]
    schedule: String,
    #[serde(default)]
    timezone: String,
}

/// `GET /lists/next-sends?schedule=…&timezone=…`: the list of next sends alone, for the
/// script that updates the form as one types.
pub(super) async fn next_sends_fragment(Query(q): Query<NextSendsQuery>) -> Response {
    next_sends(&q.schedule, &q.timezone).into_response()
}

/// The create or edit form. `slug` is the list being edited (`None`: a new list).
fn form_page(
    st: &ConsoleState,
    signed: &Signed,
    slug: Option<&str>,
    typed: &Typed,
    errors: &[(&'static str, String)],
    counts: Option<(i64, i64, i64)>,
    status: StatusCode,
) -> Response {
    let title = match slug {
        Some(s) => format!("List {s}"),
        None => "New list".to_owned(),
    };
    let action = match slug {
        Some(s) => format!("/lists/{s}/edit"),
        None => "/lists/new".to_owned(),
    };
    let error_of = |field: &str| {
        errors
            .iter()
            .find(|(f, _)| *f == field)
            .map(|(_, e)| e.clone())
    };
    let field = |name: &'static str, label: &str, value: &str, hint: &str| {
        let err = error_of(name);
        let hint_id = format!("{name}-hint");
        html! {
            label for=(name) { (label) }
            input id=(name) type="text" name=(name) value=(value)
                aria-describedby=(hint_id) aria-invalid=[err.as_ref().map(|_| "true")];
            @if let Some(e) = err { p.err id={(name) "-err"} { (label) ": " (e) } }
            p.muted id=(hint_id) { (hint) }
        }
    };
    let default_language = st.config.publication.language;
    let body = html! {
        h1 { (title) }
        @if !errors.is_empty() {
            div.err role="alert" {
                p { "Nothing was saved. Please correct:" }
                ul { @for (f, e) in errors { li { a href={"#" (f)} { (f) } ": " (e) } } }
            }
        }
        @if let Some((pending, active, unsub)) = counts {
            p.card { "Subscribers: " (active) " active, " (pending) " pending, " (unsub) " unsubscribed." }
        }
        form.card method="post" action=(action) {
            (csrf_field(signed))
            @if slug.is_none() {
                (field("slug", "Short name (slug)", &typed.slug, "Lowercase letters, digits and '-': used in links and List-Id; it cannot change later."))
            }
            (field("name", "Name", &typed.name, "What readers see, e.g. \"Morning briefing\"."))
            (field("description", "Description", &typed.description, "A sentence on the readers' preferences page."))
            (field("schedule", "Schedule", &typed.schedule, "A crontab line in the list's time zone: \"0 7 * * *\" is 07:00 every day, \"30 6 * * 1-5\" 06:30 Monday to Friday. Empty: no scheduled digests."))
            (field("timezone", "Time zone", &typed.timezone, "An IANA zone such as Europe/Berlin or Asia/Karachi."))
            section aria-labelledby="next-title" {
                h2 #next-title { "Next sends" }
                div #next-sends data-next-sends="/lists/next-sends" aria-live="polite" {
                    (next_sends(&typed.schedule, &typed.timezone))
                }
                button.quiet type="submit" name="do" value="preview" { "Show next sends" }
            }
            (field("categories", "Categories", &typed.categories, "Comma-separated; empty: every category."))
            label for="language" { "Language" }
            select #language name="language" {
                @for l in Language::ALL {
                    option value=(l.tag()) selected[typed.language == l.tag() || (typed.language.is_empty() && l == default_language)] { (l.tag()) }
                }
            }
            @if let Some(e) = error_of("language") { p.err { "Language: " (e) } }
            label.check { input type="checkbox" name="breaking" value="1" checked[typed.breaking]; "Sends breaking news" }
            label.check { input type="checkbox" name="double_opt_in" value="1" checked[typed.double_opt_in]; "Web sign-ups confirm their address first (double opt-in)" }
            label.check { input type="checkbox" name="send_empty" value="1" checked[typed.send_empty]; "Send a digest even with no stories" }
            button type="submit" name="do" value="save" { "Save" }
        }
        p { a href="/lists" { "Back to the lists" } }
    };
    let mut res = page(signed, &title, true, body);
    *res.status_mut() = status;
    res
}

/// `GET /lists/new`.
pub(super) async fn new_page(State(st): State<ConsoleState>, signed: Signed) -> Response {
    let typed = Typed {
        timezone: "UTC".into(),
        ..Typed::default()
    };
    form_page(&st, &signed, None, &typed, &[], None, StatusCode::OK)
}

/// `POST /lists/new`: creates the list (or shows the next sends, or the errors).
pub(super) async fn create(
    State(st): State<ConsoleState>,
    signed: Signed,
    ClientIp(ip): ClientIp,
    Posted(f): Posted,
) -> Response {
    let typed = Typed::of_form(&f);
    let spec = typed.spec();
    let slug = ListSlug::parse(&typed.slug);
    let mut errors = match &spec {
        Ok(_) => Vec::new(),
        Err(e) => e.clone(),
    };
    if let Err(e) = &slug {
        errors.insert(0, ("slug", e.to_string()));
    }
    if f.get("do") == Some("preview") {
        return form_page(&st, &signed, None, &typed, &[], None, StatusCode::OK);
    }
    let (Ok(spec), Ok(slug), true) = (spec, slug, errors.is_empty()) else {
        return form_page(
            &st,
            &signed,
            None,
            &typed,
            &errors,
            None,
            StatusCode::UNPROCESSABLE_ENTITY,
        );
    };
    match st.store.create_list(&slug, &spec).await {
        Ok(l) => {
            st.audit(
                &signed.user.email,
                ip,
                "list.create",
                &format!("list:{}", l.slug),
                &typed.summary(),
            )
            .await;
            Redirect::to(&format!("/lists/{}/edit", l.slug)).into_response()
        }
        Err(StoreError::Conflict(e)) => {
            let errors = [("slug", e)];
            form_page(
                &st,
                &signed,
                None,
                &typed,
                &errors,
                None,
                StatusCode::CONFLICT,
            )
        }
        Err(e) => pages::server_error("creating a list failed", e),
    }
}

/// `GET /lists/{slug}/edit`: the list's settings and subscriber counts.
pub(super) async fn edit_page(
    State(st): State<ConsoleState>,
    signed: Signed,
    Path(slug): Path<String>,
) -> Response {
    let list = match st.store.list_by_slug(&slug).await {
        Ok(l) => l,
        Err(StoreError::NotFound(_)) => return not_found(),
        Err(e) => return pages::server_error("reading a list failed", e),
    };
    let counts = match st.store.subscription_counts(list.id).await {
        Ok(c) => c,
        Err(e) => return pages::server_error("counting subscribers failed", e),
    };
    let typed = Typed::of_list(&list, st.config.publication.language);
    form_page(
        &st,
        &signed,
        Some(&list.slug),
        &typed,
        &[],
        Some(counts),
        StatusCode::OK,
    )
}

/// `POST /lists/{slug}/edit`: saves every field (or shows the next sends, or the errors).
pub(super) async fn update(
    State(st): State<ConsoleState>,
    signed: Signed,
    ClientIp(ip): ClientIp,
    Path(slug): Path<String>,
    Posted(f): Posted,
) -> Response {
    let list = match st.store.list_by_slug(&slug).await {
        Ok(l) => l,
        Err(StoreError::NotFound(_)) => return not_found(),
        Err(e) => return pages::server_error("reading a list failed", e),
    };
    let counts = st.store.subscription_counts(list.id).await.ok();
    let typed = Typed {
        slug: list.slug.clone(),
        ..Typed::of_form(&f)
    };
    if f.get("do") == Some("preview") {
        return form_page(
            &st,
            &signed,
            Some(&list.slug),
            &typed,
            &[],
            counts,
            StatusCode::OK,
        );
    }
    let spec = match typed.spec() {
        Ok(s) => s,
        Err(errors) => {
            return form_page(
                &st,
                &signed,
                Some(&list.slug),
                &typed,
                &errors,
                counts,
                StatusCode::UNPROCESSABLE_ENTITY,
            );
        }
    };
    match st.store.update_list(&list.slug, &spec).await {
        Ok(l) => {
            st.audit(
                &signed.user.email,
                ip,
                "list.update",
                &format!("list:{}", l.slug),
                &typed.summary(),
            )
            .await;
            Redirect::to(&format!("/lists/{}/edit", l.slug)).into_response()
        }
        Err(e) => pages::server_error("updating a list failed", e),
    }
}

fn not_found() -> Response {
    pages::status_page(StatusCode::NOT_FOUND, "Not found", "There is no such list.")
}
