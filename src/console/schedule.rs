//! The schedule page (editors and admins): each list's next five digests in the list's time
//! zone, from the scheduler's own evaluator ([`crate::schedule::Schedule::upcoming`]), and a
//! preview of the next digest as it would go out if it were built now
//! ([`crate::edition::plan_digest`] and [`crate::edition::render_plan`], what `dispatch
//! preview` shows). Nothing is recorded.

use axum::extract::{Query, State};
use axum::response::Response;
use chrono::{DateTime, Utc};
use maud::{Markup, html};
use serde::Deserialize;

use super::editorial::{page, rendered_parts};
use super::{ConsoleState, Signed, pages};
use crate::domain::Timezone;
use crate::store::ListRow;

/// How many upcoming sends each list shows.
pub(super) const UPCOMING: usize = 5;

/// Which list's next digest the page previews.
#[derive(Debug, Default, Deserialize)]
pub(super) struct PreviewOf {
    preview: Option<String>,
}

/// `times` as the list's readers' clock shows them, e.g. "Tue 01 Dec 2026 07:00 CET".
pub(super) fn in_zone(times: &[DateTime<Utc>], tz: Timezone) -> Markup {
    html! {
        @if times.is_empty() {
            span.muted { "no sends" }
        } @else {
            ol.times {
                @for t in times {
                    li { time datetime=(t.to_rfc3339()) { (t.with_timezone(&tz.0).format("%a %d %b %Y %H:%M %Z")) } }
                }
            }
        }
    }
}

/// `GET /schedule`: every list's next five digests, and the next digest of one of them.
pub(super) async fn schedule(
    State(st): State<ConsoleState>,
    signed: Signed,
    Query(q): Query<PreviewOf>,
) -> Response {
    let lists = match st.store.all_lists().await {
        Ok(l) => l,
        Err(e) => return pages::server_error("reading lists failed", e),
    };
    let now = Utc::now();
    let wanted = q
        .preview
        .as_deref()
        .map(str::trim)
        .filter(|s| !s.is_empty());
    let chosen = wanted
        .and_then(|w| lists.iter().find(|l| l.slug == w))
        .or_else(|| lists.iter().find(|l| l.parsed_schedule().is_some()))
        .or_else(|| lists.first());
    let preview = match chosen {
        Some(list) => match next_digest(&st, list, now).await {
            Ok(m) => m,
            Err(e) => return pages::server_error("planning a digest preview failed", e),
        },
        None => html! { p.note { "There are no lists yet." } },
    };
    page(
        &signed,
        "Schedule",
        false,
        html! {
            h1 { "Schedule" }
            table {
                caption.muted { "The next " (UPCOMING) " digests of each list, in the list's time zone." }
                thead { tr { th { "List" } th.hide-phone { "Schedule" } th { "Next digests" } } }
                tbody {
                    @for l in &lists {
                        tr {
                            td { (l.name) " (" (l.slug) ")" }
                            td.hide-phone { (l.schedule.as_deref().unwrap_or("–")) " " (l.timezone) }
                            td {
                                @match l.parsed_schedule() {
                                    Some(s) => (in_zone(&s.upcoming(now, l.tz(), UPCOMING), l.tz())),
                                    None => span.muted { "no schedule: digests only when sent by hand" },
                                }
                            }
                        }
                    }
                }
            }
            @if lists.len() > 1 {
                form.row method="get" action="/schedule" {
                    div {
                        label for="preview" { "Preview the next digest of" }
                        select #preview name="preview" {
                            @for l in &lists {
                                option value=(l.slug) selected[chosen.is_some_and(|c| c.id == l.id)] { (l.name) }
                            }
                        }
                    }
                    button.quiet type="submit" { "Show" }
                }
            }
            (preview)
        },
    )
}

/// The digest `list` would send if it were built at `now`: its window, its stories per
/// category and the message itself (as a reader with every category gets it).
async fn next_digest(
    st: &ConsoleState,
    list: &ListRow,
    now: DateTime<Utc>,
) -> anyhow::Result<Markup> {
    let plan = crate::edition::plan_digest(&st.store, &st.config, list, now).await?;
    let rendered = crate::edition::render_plan(&st.config, list, &plan, None, now);
    let tz = list.tz().0;
    Ok(html! {
        section.card aria-labelledby="digest-title" {
            h2 #digest-title { "The next digest of " (list.name) ", if it went out now" }
            p.muted {
                "Stories from " (plan.window_start.with_timezone(&tz).format("%d %b %H:%M"))
                " to " (plan.window_end.with_timezone(&tz).format("%d %b %H:%M %Z")) ": "
                (plan.story_count()) " in all."
            }
            @if plan.story_count() == 0 && !list.send_empty {
                p.note { "No stories yet: this list does not send empty digests, so this one would be skipped." }
            }
            @if let Some(r) = rendered { (rendered_parts(&r)) }
        }
    })
}
