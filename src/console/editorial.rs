//! The console's pages: articles and breaking news, editions with live progress, and the
//! admins' read-only views (audit log, users, lists, subscribers, API keys).

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::time::{Duration, Instant};

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::http::header::CONTENT_TYPE;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Redirect, Response};
use maud::{Markup, html};
use serde::Deserialize;

use super::{ClientIp, ConsoleState, Posted, Signed, pages};
use crate::domain::{DeliveryStatus, EditionStatus};
use crate::store::{Created, EditionRow, StoreError};

/// The small script behind live progress (it only updates numbers the page already shows)
/// and the list form's next sends as one types (the form's "Show next sends" does the same
/// without it).
const JS: &str = r#"(function(){
var el=document.querySelector('[data-events]');if(!el||!window.EventSource)return;
var es=new EventSource(el.getAttribute('data-events'));
es.onmessage=function(m){var d=JSON.parse(m.data);
Object.keys(d).forEach(function(k){var t=document.getElementById('p-'+k);if(t)t.textContent=d[k];});
if(d.final)es.close();};})();
(function(){var box=document.querySelector('[data-next-sends]');if(!box||!window.fetch)return;
var s=document.getElementById('schedule'),z=document.getElementById('timezone'),timer;
function update(){clearTimeout(timer);timer=setTimeout(function(){
fetch(box.getAttribute('data-next-sends')+'?schedule='+encodeURIComponent(s.value)+'&timezone='+encodeURIComponent(z.value),{credentials:'same-origin'})
.then(function(r){return r.ok?r.text():null;}).then(function(t){if(t!==null)box.innerHTML=t;});},300);}
s.addEventListener('input',update);z.addEventListener('input',update);})();
"#;

/// `GET /assets/console.js`.
pub(super) async fn script() -> Response {
    ([(CONTENT_TYPE, "text/javascript; charset=utf-8")], JS).into_response()
}

pub(super) fn page(signed: &Signed, title: &str, script: bool, content: Markup) -> Response {
    pages::layout(title, Some((&signed.user, &signed.csrf)), script, content).into_response()
}

pub(super) fn csrf_field(signed: &Signed) -> Markup {
    html! { input type="hidden" name="csrf" value=(signed.csrf); }
}

/// `GET /`: what is sending now, and the way to the articles.
pub(super) async fn home(State(st): State<ConsoleState>, signed: Signed) -> Response {
    let sending = match st.store.editions_sending().await {
        Ok(e) => e,
        Err(e) => return pages::server_error("reading editions failed", e),
    };
    page(
        &signed,
        "Console",
        false,
        html! {
            h1 { "Newsroom console" }
            div.card {
                p { a href="/articles" { "Articles" } ": find a story and send it as breaking news." }
                p { a href="/editions" { "Editions" } ": what is sending and what went out." }
                p { a href="/schedule" { "Schedule" } ": each list's next digests, and a preview of the next one." }
            }
            h2 { "Sending now" }
            (editions_table(&sending))
        },
    )
}

/// The articles page's filters.
#[derive(Debug, Default, Deserialize)]
pub(super) struct ArticleFilter {
    q: Option<String>,
    category: Option<String>,
    language: Option<String>,
}

pub(super) fn non_empty(s: &Option<String>) -> Option<&str> {
    s.as_deref().map(str::trim).filter(|s| !s.is_empty())
}

/// `GET /articles`: newest first, search by title, filter by category and language.
pub(super) async fn articles(
    State(st): State<ConsoleState>,
    signed: Signed,
    Query(filter): Query<ArticleFilter>,
) -> Response {
    let (q, cat, lang) = (
        non_empty(&filter.q),
        non_empty(&filter.category),
        non_empty(&filter.language),
    );
    let rows = match st.store.find_articles(q, cat, lang, 50).await {
        Ok(r) => r,
        Err(e) => return pages::server_error("reading articles failed", e),
    };
    let (cats, langs) = match st.store.article_facets().await {
        Ok(f) => f,
        Err(e) => return pages::server_error("reading article categories failed", e),
    };
    page(
        &signed,
        "Articles",
        false,
        html! {
            h1 { "Articles" }
            form.card.row method="get" action="/articles" role="search" {
                div { label for="q" { "Title" } input #q type="search" name="q" value=[q]; }
                div {
                    label for="category" { "Category" }
                    select #category name="category" {
                        option value="" { "Any" }
                        @for c in &cats { option value=(c) selected[Some(c.as_str()) == cat] { (c) } }
                    }
                }
                div {
                    label for="language" { "Language" }
                    select #language name="language" {
                        option value="" { "Any" }
                        @for l in &langs { option value=(l) selected[Some(l.as_str()) == lang] { (l) } }
                    }
                }
                button type="submit" { "Search" }
            }
            @if rows.is_empty() {
                p.note { "No articles match." }
            } @else {
                table {
                    thead { tr { th { "Title" } th.hide-phone { "Category" } th.hide-phone { "Published" } th { "Action" } } }
                    tbody {
                        @for a in &rows {
                            tr {
                                td { a href=(a.url) { (a.title) } }
                                td.hide-phone { (a.category) }
                                td.hide-phone { (a.published_at) }
                                td { a href={ "/articles/" (a.id) "/breaking" } { "Send as breaking news" } }
                            }
                        }
                    }
                }
            }
        },
    )
}

/// Who already sent `article_id` as breaking news, from the audit log.
async fn sent_by(st: &ConsoleState, article_id: i64) -> Option<String> {
    let row = st
        .store
        .last_audit_of(&format!("article:{article_id}"), "breaking.send")
        .await
        .ok()??;
    Some(format!("{} at {}", row.actor, row.at))
}

/// `GET /articles/{id}/breaking`: the lists (those carrying breaking news preselected) with
/// their reader counts, what readers get, and "Send now".
pub(super) async fn breaking_page(
    State(st): State<ConsoleState>,
    signed: Signed,
    Path(id): Path<i64>,
    Query(q): Query<PreviewFor>,
) -> Response {
    breaking_form(&st, &signed, id, None, non_empty(&q.preview)).await
}

/// Which list's message the breaking-news page previews.
#[derive(Debug, Default, Deserialize)]
pub(super) struct PreviewFor {
    preview: Option<String>,
}

/// The token shown in a preview's unsubscribe and preference links.
const PREVIEW_TOKEN: &str = "preview-token-not-real";

/// Subject, HTML and text part of a rendered message, with a stand-in token and no name.
/// The HTML goes in an iframe with an empty `sandbox`: no scripts, no forms, no navigation
/// of the console, whatever the story's HTML holds.
pub(super) fn rendered_parts(r: &crate::render::Rendered) -> Markup {
    let fill = |h: crate::domain::Hole| match h {
        crate::domain::Hole::Token => PREVIEW_TOKEN.to_owned(),
        crate::domain::Hole::Name => String::new(),
    };
    html! {
        p { strong { "Subject: " } (r.subject) }
        iframe title="The HTML part" sandbox="" srcdoc=(r.html.fill(fill)) {}
        h3 { "Text part" }
        pre tabindex="0" aria-label="The text part" { (r.text.fill(fill)) }
    }
}

/// Subject, sandboxed HTML and text part of what readers of one list get.
fn preview(
    st: &ConsoleState,
    article: &crate::store::ArticleRow,
    lists: &[crate::store::ListRow],
    wanted: Option<&str>,
) -> Markup {
    let chosen = wanted
        .and_then(|w| lists.iter().find(|l| l.slug == w))
        .or_else(|| lists.iter().find(|l| l.sends_breaking))
        .or_else(|| lists.first());
    let Some(list) = chosen else {
        return html! { p.note { "There are no lists yet." } };
    };
    let rendered = crate::edition::preview_breaking(&st.config, list, article);
    html! {
        section.card aria-labelledby="preview-title" {
            h2 #preview-title { "What readers of " (list.name) " get" }
            @if lists.len() > 1 {
                form.row method="get" {
                    div {
                        label for="preview" { "Preview for" }
                        select #preview name="preview" {
                            @for l in lists { option value=(l.slug) selected[l.id == list.id] { (l.name) } }
                        }
                    }
                    button.quiet type="submit" { "Show" }
                }
            }
            @match rendered {
                Some(r) => (rendered_parts(&r)),
                None => p.note { "This list's categories leave this story out: its readers get nothing." }
            }
        }
    }
}

async fn breaking_form(
    st: &ConsoleState,
    signed: &Signed,
    id: i64,
    message: Option<Markup>,
    preview_for: Option<&str>,
) -> Response {
    let article = match st.store.article(id).await {
        Ok(a) => a,
        Err(StoreError::NotFound(_)) => {
            return pages::status_page(StatusCode::NOT_FOUND, "Not found", "No such article.");
        }
        Err(e) => return pages::server_error("reading an article failed", e),
    };
    let lists = match st.store.all_lists().await {
        Ok(l) => l,
        Err(e) => return pages::server_error("reading lists failed", e),
    };
    let mut counts = BTreeMap::new();
    let mut sent_to = BTreeMap::new();
    for l in &lists {
        match st.store.subscription_counts(l.id).await {
            Ok((_, active, _)) => counts.insert(l.id, active),
            Err(e) => return pages::server_error("counting readers failed", e),
        };
        match st.store.sent_as_breaking(l.id).await {
            Ok(ids) => sent_to.insert(l.id, ids.contains(&id)),
            Err(e) => return pages::server_error("reading breaking editions failed", e),
        };
    }
    let already = if sent_to.values().any(|s| *s) {
        sent_by(st, id).await
    } else {
        None
    };
    page(
        signed,
        "Send breaking news",
        false,
        html! {
            h1 { "Send breaking news" }
            @if let Some(m) = message { (m) }
            div.card {
                h2 { (article.title) }
                p.muted { (article.category) " · " (article.published_at) }
                p { (article.summary) }
                p { a href=(article.url) { (article.url) } }
            }
            @if let Some(who) = &already {
                p.note role="status" { "Already sent as breaking news by " (who) "." }
            }
            form.card method="post" {
                (csrf_field(signed))
                fieldset {
                    legend { "Lists" }
                    @for l in &lists {
                        @let done = sent_to.get(&l.id).copied().unwrap_or(false);
                        label.check {
                            input type="checkbox" name="list" value=(l.slug)
                                checked[l.sends_breaking && !done] disabled[done];
                            span { (l.name) " (" (l.slug) "): " (counts.get(&l.id).copied().unwrap_or(0)) " readers"
                                @if done { " — already sent" } }
                        }
                    }
                }
                div.row {
                    button.quiet type="submit" name="action" value="test" { "Send test to me" }
                    button type="submit" name="action" value="send" { "Send now" }
                }
            }
            (preview(st, &article, &lists, preview_for))
        },
    )
}

/// `POST /articles/{id}/breaking`: records a breaking edition for each chosen list (once per
/// article per list: a list that already had it is reported, never sent again).
pub(super) async fn send_breaking(
    State(st): State<ConsoleState>,
    signed: Signed,
    ClientIp(ip): ClientIp,
    Path(id): Path<i64>,
    Posted(fields): Posted,
) -> Response {
    let article = match st.store.article(id).await {
        Ok(a) => a,
        Err(StoreError::NotFound(_)) => {
            return pages::status_page(StatusCode::NOT_FOUND, "Not found", "No such article.");
        }
        Err(e) => return pages::server_error("reading an article failed", e),
    };
    let chosen: Vec<&str> = fields.all("list").collect();
    if chosen.is_empty() {
        let msg = html! { p.err role="alert" { "Choose at least one list." } };
        return breaking_form(&st, &signed, id, Some(msg), None).await;
    }
    if fields.get("action") == Some("test") {
        return send_test(&st, &signed, ip, &article, chosen[0]).await;
    }
    let mut made = Vec::new();
    let mut refused = Vec::new();
    for slug in chosen {
        let list = match st.store.list_by_slug(slug).await {
            Ok(l) => l,
            Err(StoreError::NotFound(_)) => {
                let msg = html! { p.err role="alert" { "There is no list " (slug) "." } };
                return breaking_form(&st, &signed, id, Some(msg), None).await;
            }
            Err(e) => return pages::server_error("reading a list failed", e),
        };
        let editions =
            match crate::edition::create_breaking(&st.store, &st.config, article.id, Some(&list))
                .await
            {
                Ok(e) => e,
                Err(e) => {
                    return pages::server_error(
                        "recording a breaking edition failed",
                        format!("{e:#}"),
                    );
                }
            };
        for (list, c) in editions {
            match c {
                Created::New { id, .. } => made.push((list.slug, id)),
                Created::Existing { .. } => refused.push(list.slug),
            }
        }
    }
    if !made.is_empty() {
        let detail = made
            .iter()
            .map(|(slug, e)| format!("{slug} (edition #{e})"))
            .collect::<Vec<_>>()
            .join(", ");
        st.audit(
            &signed.user.email,
            ip,
            "breaking.send",
            &format!("article:{}", article.id),
            &detail,
        )
        .await;
        tracing::info!(
            article = article.id,
            editions = made.len(),
            "console breaking news"
        );
    }
    if made.len() == 1 && refused.is_empty() {
        return Redirect::to(&format!("/editions/{}", made[0].1)).into_response();
    }
    let who = sent_by(&st, id).await.unwrap_or_else(|| "someone".into());
    let msg = html! {
        @if !made.is_empty() {
            p.note role="status" { "Sending to: "
                @for (i, (slug, e)) in made.iter().enumerate() {
                    @if i > 0 { ", " } a href={ "/editions/" (e) } { (slug) }
                }
            }
        }
        @if !refused.is_empty() {
            p.err role="alert" { "Not sent again to " (refused.join(", ")) ": already sent by " (who) "." }
        }
    };
    let status = if made.is_empty() {
        StatusCode::CONFLICT
    } else {
        StatusCode::OK
    };
    let mut res = breaking_form(&st, &signed, id, Some(msg), None).await;
    if res.status() == StatusCode::OK {
        *res.status_mut() = status;
    }
    res
}

/// "Send test to me": one copy, as readers of the first chosen list get it, to the signed-in
/// user's own address only.
async fn send_test(
    st: &ConsoleState,
    signed: &Signed,
    ip: std::net::IpAddr,
    article: &crate::store::ArticleRow,
    slug: &str,
) -> Response {
    let id = article.id;
    let list = match st.store.list_by_slug(slug).await {
        Ok(l) => l,
        Err(StoreError::NotFound(_)) => {
            let msg = html! { p.err role="alert" { "There is no list " (slug) "." } };
            return breaking_form(st, signed, id, Some(msg), None).await;
        }
        Err(e) => return pages::server_error("reading a list failed", e),
    };
    let Ok(me) = crate::domain::EmailAddress::parse(&signed.user.email) else {
        return pages::server_error("a console user's address is invalid", &signed.user.email);
    };
    let msg = match crate::edition::send_test_breaking(&st.config, &list, article, &me).await {
        Ok(()) => {
            st.audit(
                &signed.user.email,
                ip,
                "breaking.test",
                &format!("article:{id}"),
                &list.slug,
            )
            .await;
            html! { p.note role="status" { "Test sent to " (me) " as readers of " (list.name) " get it." } }
        }
        Err(e) => {
            tracing::warn!(error = %format!("{e:#}"), "console test message failed");
            html! { p.err role="alert" { "The test could not be sent: " (format!("{e:#}")) } }
        }
    };
    breaking_form(st, signed, id, Some(msg), Some(&list.slug)).await
}

fn editions_table(rows: &[EditionRow]) -> Markup {
    html! {
        @if rows.is_empty() {
            p.muted { "None." }
        } @else {
            table {
                thead { tr { th { "#" } th { "Subject" } th.hide-phone { "Kind" } th { "Status" } th.hide-phone { "Readers" } th.hide-phone { "Made" } } }
                tbody {
                    @for e in rows {
                        tr {
                            td { a href={ "/editions/" (e.id) } { (e.id) } }
                            td { a href={ "/editions/" (e.id) } { (e.subject) } }
                            td.hide-phone { (e.kind) }
                            td { (e.status) }
                            td.hide-phone { (e.recipient_count) }
                            td.hide-phone { (e.created_at) }
                        }
                    }
                }
            }
        }
    }
}

/// `GET /editions`: in progress and recent.
pub(super) async fn editions(State(st): State<ConsoleState>, signed: Signed) -> Response {
    let (sending, recent) = match (
        st.store.editions_sending().await,
        st.store.editions(None, 30).await,
    ) {
        (Ok(s), Ok(r)) => (s, r),
        (Err(e), _) | (_, Err(e)) => return pages::server_error("reading editions failed", e),
    };
    page(
        &signed,
        "Editions",
        false,
        html! {
            h1 { "Editions" }
            h2 { "In progress" }
            (editions_table(&sending))
            h2 { "Recent" }
            (editions_table(&recent))
        },
    )
}

/// One edition's numbers, as the page and the event stream show them.
#[derive(Debug, Clone, serde::Serialize)]
struct Progress {
    status: String,
    sent: i64,
    queued: i64,
    failed: i64,
    skipped: i64,
    rate: String,
    eta: String,
    #[serde(rename = "final")]
    done: bool,
}

async fn progress(
    st: &ConsoleState,
    id: i64,
    rate: Option<f64>,
) -> Result<(EditionRow, Progress), StoreError> {
    let e = st.store.edition(id).await?;
    let counts = st.store.delivery_counts(id).await?;
    let n = |s: DeliveryStatus| counts.get(&s).copied().unwrap_or(0);
    let queued = n(DeliveryStatus::Queued) + n(DeliveryStatus::Sending);
    let (rate_text, eta) = match rate {
        Some(r) if r > 0.0 => (format!("{r:.1}/s"), format!("{:.0} s", queued as f64 / r)),
        _ => ("–".to_owned(), "–".to_owned()),
    };
    let p = Progress {
        status: e.status.to_string(),
        sent: n(DeliveryStatus::Sent),
        queued,
        failed: n(DeliveryStatus::Failed),
        skipped: n(DeliveryStatus::Skipped),
        rate: rate_text,
        eta,
        done: e.status.is_final(),
    };
    Ok((e, p))
}

/// `GET /editions/{id}`: the numbers (live with JavaScript), pause, resume, cancel.
pub(super) async fn edition_page(
    State(st): State<ConsoleState>,
    signed: Signed,
    Path(id): Path<i64>,
) -> Response {
    let (e, p) = match progress(&st, id, None).await {
        Ok(x) => x,
        Err(StoreError::NotFound(_)) => {
            return pages::status_page(StatusCode::NOT_FOUND, "Not found", "No such edition.");
        }
        Err(e) => return pages::server_error("reading an edition failed", e),
    };
    page(
        &signed,
        &format!("Edition #{id}"),
        true,
        html! {
            h1 { "Edition #" (id) ": " (e.subject) }
            div.card data-events={ "/editions/" (id) "/events" } {
                dl.progress {
                    dt { "Status" } dd #p-status aria-live="polite" { (p.status) }
                    dt { "Sent" } dd #p-sent { (p.sent) }
                    dt { "Queued" } dd #p-queued { (p.queued) }
                    dt { "Failed" } dd #p-failed { (p.failed) }
                    dt { "Skipped" } dd #p-skipped { (p.skipped) }
                    dt { "Rate" } dd #p-rate { (p.rate) }
                    dt { "Time left" } dd #p-eta { (p.eta) }
                }
                @if let Some(r) = &e.status_reason { p.muted { (r) } }
            }
            @if !e.status.is_final() {
                div.card.row {
                    @if e.status == EditionStatus::Sending {
                        form method="post" action={ "/editions/" (id) "/pause" } {
                            (csrf_field(&signed)) button.quiet type="submit" { "Pause" }
                        }
                    }
                    @if e.status == EditionStatus::Paused {
                        form method="post" action={ "/editions/" (id) "/resume" } {
                            (csrf_field(&signed)) button type="submit" { "Resume" }
                        }
                    }
                    form method="post" action={ "/editions/" (id) "/cancel" } {
                        (csrf_field(&signed))
                        label.check { input type="checkbox" name="confirm" value="yes" required; "Yes, stop this edition for good" }
                        button.danger type="submit" { "Cancel edition" }
                    }
                }
            }
        },
    )
}

/// `GET /editions/{id}/events`: server-sent events with the numbers once a second, until
/// the edition is finished.
pub(super) async fn edition_events(
    State(st): State<ConsoleState>,
    _: Signed,
    Path(id): Path<i64>,
) -> Response {
    struct Tick {
        st: ConsoleState,
        last: Option<(Instant, i64)>,
        done: bool,
    }
    let start = Tick {
        st,
        last: None,
        done: false,
    };
    let stream = futures_util::stream::unfold(start, move |mut t| async move {
        if t.done {
            return None;
        }
        if t.last.is_some() {
            let pause = tokio::time::sleep(Duration::from_secs(1));
            match t.st.stopping.clone() {
                Some(mut stopping) => tokio::select! {
                    () = pause => {}
                    _ = stopping.wait_for(|s| *s) => return None,
                },
                None => pause.await,
            }
        }
        let rate = t.last;
        let (_, mut p) = match progress(&t.st, id, None).await {
            Ok(x) => x,
            Err(e) => {
                tracing::warn!(error = %e, "console progress stream ended");
                return None;
            }
        };
        let now = Instant::now();
        if let Some((at, sent)) = rate {
            let secs = now.duration_since(at).as_secs_f64();
            if secs > 0.0 && p.sent >= sent {
                let r = (p.sent - sent) as f64 / secs;
                if r > 0.0 {
                    p.rate = format!("{r:.1}/s");
                    p.eta = format!("{:.0} s", p.queued as f64 / r);
                }
            }
        }
        t.last = Some((now, p.sent));
        t.done = p.done;
        let data = serde_json::to_string(&p).unwrap_or_default();
        Some((Ok::<_, Infallible>(Event::default().data(data)), t))
    });
    Sse::new(stream)
        .keep_alive(KeepAlive::default())
        .into_response()
}

/// `POST /editions/{id}/pause|resume|cancel` (cancel needs the confirmation box).
pub(super) async fn edition_action(
    State(st): State<ConsoleState>,
    signed: Signed,
    ClientIp(ip): ClientIp,
    Path((id, action)): Path<(i64, String)>,
    Posted(fields): Posted,
) -> Response {
    let (status, reason) = match action.as_str() {
        "pause" => (EditionStatus::Paused, "paused in the console"),
        "resume" => (EditionStatus::Sending, ""),
        "cancel" => {
            if fields.get("confirm") != Some("yes") {
                return pages::status_page(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    "Not cancelled",
                    "Tick the confirmation box to cancel an edition.",
                );
            }
            (EditionStatus::Cancelled, "cancelled in the console")
        }
        _ => {
            return pages::status_page(StatusCode::NOT_FOUND, "Not found", "No such action.");
        }
    };
    if status == EditionStatus::Sending {
        match st.store.edition(id).await {
            Ok(e) if e.status == EditionStatus::Paused => {}
            Ok(e) => {
                return pages::status_page(
                    StatusCode::CONFLICT,
                    "Not resumed",
                    &format!(
                        "Edition #{id} is {}; only a paused edition resumes.",
                        e.status
                    ),
                );
            }
            Err(StoreError::NotFound(_)) => {
                return pages::status_page(StatusCode::NOT_FOUND, "Not found", "No such edition.");
            }
            Err(e) => return pages::server_error("reading an edition failed", e),
        }
    }
    let reason = (!reason.is_empty()).then(|| format!("{reason} by {}", signed.user.email));
    match st
        .store
        .set_edition_status(id, status, reason.as_deref())
        .await
    {
        Ok(()) => {
            st.audit(
                &signed.user.email,
                ip,
                &format!("edition.{action}"),
                &format!("edition:{id}"),
                "",
            )
            .await;
            Redirect::to(&format!("/editions/{id}")).into_response()
        }
        Err(StoreError::NotFound(_)) => {
            pages::status_page(StatusCode::NOT_FOUND, "Not found", "No such edition.")
        }
        Err(StoreError::Conflict(m)) => pages::status_page(StatusCode::CONFLICT, "Not changed", &m),
        Err(e) => pages::server_error("changing an edition failed", e),
    }
}

/// `GET /audit` (admin): the newest 200 entries.
pub(super) async fn audit(State(st): State<ConsoleState>, signed: Signed) -> Response {
    let rows = match st.store.audit_log(None, 200).await {
        Ok(r) => r,
        Err(e) => return pages::server_error("reading the audit log failed", e),
    };
    page(
        &signed,
        "Audit log",
        false,
        html! {
            h1 { "Audit log" }
            table {
                thead { tr { th { "When" } th { "Who" } th { "What" } th { "Subject" } th.hide-phone { "Detail" } th.hide-phone { "IP" } } }
                tbody {
                    @for r in &rows {
                        tr { td { (r.at) } td { (r.actor) } td { (r.action) } td { (r.subject) }
                             td.hide-phone { (r.detail) } td.hide-phone { (r.ip.as_deref().unwrap_or("")) } }
                    }
                }
            }
        },
    )
}

/// `GET /lists` (admin): each list with its subscriber counts by status.
pub(super) async fn lists(State(st): State<ConsoleState>, signed: Signed) -> Response {
    let lists = match st.store.all_lists().await {
        Ok(l) => l,
        Err(e) => return pages::server_error("reading lists failed", e),
    };
    let mut rows = Vec::new();
    for l in lists {
        match st.store.subscription_counts(l.id).await {
            Ok(c) => rows.push((l, c)),
            Err(e) => return pages::server_error("counting subscribers failed", e),
        }
    }
    page(
        &signed,
        "Lists",
        false,
        html! {
            h1 { "Lists" }
            p { a href="/lists/new" { "New list" } }
            table {
                thead { tr { th { "List" } th.hide-phone { "Schedule" } th { "Active" } th { "Pending" } th.hide-phone { "Unsubscribed" } th.hide-phone { "Breaking" } } }
                tbody {
                    @for (l, (pending, active, unsub)) in &rows {
                        tr { td { a href={"/lists/" (l.slug) "/edit"} { (l.name) } " (" (l.slug) ")" }
                             td.hide-phone { (l.schedule.as_deref().unwrap_or("–")) " " (l.timezone) }
                             td { (active) } td { (pending) } td.hide-phone { (unsub) }
                             td.hide-phone { @if l.sends_breaking { "yes" } @else { "no" } } }
                    }
                }
            }
        },
    )
}

/// The subscribers page's search.
#[derive(Debug, Default, Deserialize)]
pub(super) struct SubscriberFind {
    email: Option<String>,
}

/// `GET /subscribers?email=…` (admin): find one subscriber by address (the unique index on
/// the canonical address), with their subscriptions and the actions on them.
pub(super) async fn subscribers(
    State(st): State<ConsoleState>,
    signed: Signed,
    Query(find): Query<SubscriberFind>,
) -> Response {
    let typed = non_empty(&find.email).map(str::to_owned);
    subscribers_page(&st, &signed, typed.as_deref(), None).await
}

async fn subscribers_page(
    st: &ConsoleState,
    signed: &Signed,
    typed: Option<&str>,
    message: Option<Markup>,
) -> Response {
    let found = match typed.map(crate::domain::EmailAddress::parse) {
        None => None,
        Some(Err(e)) => Some(Err(e.to_string())),
        Some(Ok(email)) => match st.store.subscriber_by_email(&email).await {
            Ok(sub) => match (
                st.store.subscriptions_of(sub.id).await,
                st.store.delivery_history(sub.id, HISTORY).await,
            ) {
                (Ok(subs), Ok(history)) => Some(Ok((email, sub, subs, history))),
                (Err(e), _) | (_, Err(e)) => {
                    return pages::server_error("reading subscriptions failed", e);
                }
            },
            Err(StoreError::NotFound(_)) => Some(Err("No subscriber has that address.".into())),
            Err(e) => return pages::server_error("finding a subscriber failed", e),
        },
    };
    let lists = match st.store.all_lists().await {
        Ok(l) => l,
        Err(e) => return pages::server_error("reading lists failed", e),
    };
    page(
        signed,
        "Subscribers",
        false,
        html! {
            h1 { "Subscribers" }
            @if let Some(m) = message { (m) }
            form.card.row method="get" action="/subscribers" role="search" {
                div { label for="email" { "Address" } input #email type="email" name="email" value=[typed] required; }
                button type="submit" { "Find" }
            }
            @match &found {
                None => {},
                Some(Err(e)) => p.note role="status" { (e) },
                Some(Ok((email, sub, subs, history))) => {
                    div.card {
                        h2 { (email) }
                        p.muted { (sub.status) " · since " (sub.created_at) " · " (sub.hard_bounces) " hard bounces" }
                        table {
                            thead { tr { th { "List" } th { "Status" } th.hide-phone { "Since" } th.hide-phone { "Ended" } } }
                            tbody {
                                @for s in subs {
                                    tr { td { (s.list) } td { (s.status) } td.hide-phone { (s.created_at) }
                                         td.hide-phone { (s.unsubscribed_at.as_deref().unwrap_or("–")) } }
                                }
                            }
                        }
                        h3 { "Recent deliveries" }
                        @if history.is_empty() {
                            p.muted { "No deliveries yet." }
                        } @else {
                            table {
                                thead { tr { th { "Edition" } th.hide-phone { "List" } th { "Status" } th { "When" } } }
                                tbody {
                                    @for d in history {
                                        tr { td { a href={"/editions/" (d.edition_id)} { (d.subject) } " (" (d.kind) ")" }
                                             td.hide-phone { (d.list) } td { (d.status) } td { (d.at) } }
                                    }
                                }
                            }
                        }
                        div.row {
                            form method="post" action="/subscribers/unsubscribe" {
                                (csrf_field(signed))
                                input type="hidden" name="email" value=(email);
                                button.quiet type="submit" { "Unsubscribe from every list" }
                            }
                            form method="post" action="/subscribers/erase" {
                                (csrf_field(signed))
                                input type="hidden" name="email" value=(email);
                                label.check { input type="checkbox" name="confirm" value="yes" required; "Yes, erase this person's data" }
                                button.danger type="submit" { "Erase" }
                            }
                        }
                    }
                }
            }
            (super::subscribers_io::forms(signed, &lists))
        },
    )
}

/// How many of a subscriber's latest deliveries their page shows.
const HISTORY: i64 = 20;

/// `POST /subscribers/{unsubscribe|erase}` (admin); erase needs the confirmation box.
pub(super) async fn subscriber_action(
    State(st): State<ConsoleState>,
    signed: Signed,
    ClientIp(ip): ClientIp,
    Path(action): Path<String>,
    Posted(fields): Posted,
) -> Response {
    let raw = fields.get("email").unwrap_or("").to_owned();
    let Ok(email) = crate::domain::EmailAddress::parse(&raw) else {
        let msg = html! { p.err role="alert" { "That is not an email address." } };
        return subscribers_page(&st, &signed, None, Some(msg)).await;
    };
    let done = match action.as_str() {
        "unsubscribe" => st
            .store
            .unsubscribe_email(&email, None)
            .await
            .map(|n| format!("{n} subscription(s) ended")),
        "erase" if fields.get("confirm") == Some("yes") => {
            st.store.erase_subscriber(&email).await.map(|kept| {
                if kept {
                    "erased; a hashed record keeps them from being imported again".to_owned()
                } else {
                    "erased".to_owned()
                }
            })
        }
        "erase" => {
            let msg = html! { p.err role="alert" { "Tick the confirmation box to erase." } };
            return subscribers_page(&st, &signed, Some(email.as_str()), Some(msg)).await;
        }
        _ => return pages::status_page(StatusCode::NOT_FOUND, "Not found", "No such action."),
    };
    match done {
        Ok(what) => {
            // The audit log names the domain only, as the logs do: an erased person's address
            // must not survive in it.
            let subject = format!("subscriber:@{}", email.domain());
            st.audit(
                &signed.user.email,
                ip,
                &format!("subscriber.{action}"),
                &subject,
                &what,
            )
            .await;
            let msg = html! { p.note role="status" { (email) ": " (what) "." } };
            let show = (action == "unsubscribe").then_some(email.as_str());
            subscribers_page(&st, &signed, show, Some(msg)).await
        }
        Err(StoreError::NotFound(_)) => {
            let msg = html! { p.err role="alert" { "No subscriber has that address." } };
            subscribers_page(&st, &signed, None, Some(msg)).await
        }
        Err(e) => pages::server_error("changing a subscriber failed", e),
    }
}
