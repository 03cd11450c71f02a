//! `/healthz` and `/metrics` for operators.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use axum::extract::State;
use axum::http::StatusCode;
use axum::http::header::CONTENT_TYPE;
use axum::response::{IntoResponse, Response};

use super::AppState;
use crate::store::{Backend, DbTime, FeedState, MetricsSnapshot, SourceState, parse_db_time};

/// `GET /healthz`: 200 when the database answers, 503 otherwise. The body says so, names
/// the database kind (never its address) and this node:
///
/// ```text
/// ok
/// database: postgres
/// node: mail-1
/// ```
pub(super) async fn healthz(State(st): State<AppState>) -> Response {
    let backend = st.store.backend();
    match st.store.ping().await {
        Ok(()) => (
            StatusCode::OK,
            format!("ok\ndatabase: {backend}\nnode: {}\n", st.node),
        )
            .into_response(),
        Err(e) => {
            tracing::warn!(error = %e, "health check: the database does not answer");
            (
                StatusCode::SERVICE_UNAVAILABLE,
                format!(
                    "database unavailable\ndatabase: {backend}\nnode: {}\n",
                    st.node
                ),
            )
                .into_response()
        }
    }
}

/// `GET /metrics`: the Prometheus text exposition format, version 0.0.4.
pub(super) async fn metrics(State(st): State<AppState>) -> Response {
    let snap = match st.store.metrics_snapshot().await {
        Ok(snap) => match st.store.feed_states().await {
            Ok(feeds) => st
                .store
                .source_states()
                .await
                .map(|sources| (snap, feeds, sources)),
            Err(e) => Err(e),
        },
        Err(e) => Err(e),
    };
    match snap {
        Ok((snap, feeds, sources)) => {
            let mut text = render_metrics(&snap, &st.node, st.store.backend());
            render_feed_metrics(&mut text, &st.config.feeds, &feeds);
            render_source_metrics(&mut text, &st.config.sql_sources, &sources);
            (
                StatusCode::OK,
                [(CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")],
                text,
            )
                .into_response()
        }
        Err(e) => {
            tracing::error!(error = %e, "reading metrics failed");
            (StatusCode::SERVICE_UNAVAILABLE, "metrics unavailable\n").into_response()
        }
    }
}

/// A label value escaped as the text format requires (`\`, `"` and newline).
fn label(v: &str) -> String {
    v.replace('\\', r"\\")
        .replace('"', "\\\"")
        .replace('\n', r"\n")
}

fn header(out: &mut String, name: &str, kind: &str, help: &str) {
    // Writing to a String cannot fail.
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
}

/// Renders a snapshot in the Prometheus text format. Every list gets every series (zeros
/// included), so a list that never sent still shows up and rates start from zero.
///
/// The counts are the database's, the same from every node sharing it;
/// `dispatch_node_info` names the node that answered (`node`) and its database kind.
pub fn render_metrics(snap: &MetricsSnapshot, node: &str, backend: Backend) -> String {
    let slug: BTreeMap<i64, String> = snap.lists.iter().map(|(id, s)| (*id, label(s))).collect();
    let mut deliveries: BTreeMap<(i64, &str), (i64, i64)> = BTreeMap::new();
    for d in &snap.deliveries {
        deliveries.insert((d.list_id, d.status.as_str()), (d.count, d.retries));
    }
    let get = |id: i64, status: &str| deliveries.get(&(id, status)).copied().unwrap_or((0, 0));
    let mut out = String::with_capacity(4096);

    header(
        &mut out,
        "dispatch_node_info",
        "gauge",
        "The node that answered and its database; the other series are the database's, the same from every node.",
    );
    let _ = writeln!(
        out,
        "dispatch_node_info{{node=\"{}\",database=\"{backend}\"}} 1",
        label(node)
    );

    header(
        &mut out,
        "dispatch_messages_total",
        "counter",
        "Deliveries that reached a final state, by list and outcome.",
    );
    for (id, s) in &slug {
        for status in ["sent", "failed", "skipped"] {
            let _ = writeln!(
                out,
                "dispatch_messages_total{{list=\"{s}\",status=\"{status}\"}} {}",
                get(*id, status).0
            );
        }
    }

    header(
        &mut out,
        "dispatch_retries_total",
        "counter",
        "Delivery attempts beyond the first, by list.",
    );
    for id in slug.keys() {
        let retries: i64 = deliveries
            .range((*id, "")..)
            .take_while(|((l, _), _)| l == id)
            .map(|(_, (_, r))| r)
            .sum();
        let _ = writeln!(
            out,
            "dispatch_retries_total{{list=\"{}\"}} {retries}",
            slug[id]
        );
    }

    header(
        &mut out,
        "dispatch_queue_depth",
        "gauge",
        "Deliveries queued or being sent, by list.",
    );
    for (id, s) in &slug {
        let depth = get(*id, "queued").0 + get(*id, "sending").0;
        let _ = writeln!(out, "dispatch_queue_depth{{list=\"{s}\"}} {depth}");
    }

    let times: BTreeMap<i64, _> = snap.editions.iter().map(|e| (e.list_id, e)).collect();
    header(
        &mut out,
        "dispatch_last_edition_timestamp_seconds",
        "gauge",
        "When the list's newest edition was made (Unix time; 0 = never).",
    );
    for (id, s) in &slug {
        let t = times
            .get(id)
            .and_then(|e| e.last_created_at.as_deref())
            .and_then(parse_db_time)
            .map_or(0, |t| t.timestamp());
        let _ = writeln!(
            out,
            "dispatch_last_edition_timestamp_seconds{{list=\"{s}\"}} {t}"
        );
    }

    header(
        &mut out,
        "dispatch_last_edition_lateness_seconds",
        "gauge",
        "How long after its scheduled slot the list's newest scheduled edition was made (0 = none).",
    );
    for (id, s) in &slug {
        let late = times
            .get(id)
            .and_then(|e| {
                let slot = parse_db_time(e.slot.as_deref()?)?;
                let made = parse_db_time(e.slot_created_at.as_deref()?)?;
                Some((made - slot).num_seconds())
            })
            .unwrap_or(0);
        let _ = writeln!(
            out,
            "dispatch_last_edition_lateness_seconds{{list=\"{s}\"}} {late}"
        );
    }

    header(
        &mut out,
        "dispatch_subscribers",
        "gauge",
        "Subscriptions by list and status.",
    );
    let mut subs: BTreeMap<(i64, &str), i64> = BTreeMap::new();
    for c in &snap.subscriptions {
        subs.insert((c.list_id, c.status.as_str()), c.count);
    }
    for (id, s) in &slug {
        for status in ["pending", "active", "unsubscribed"] {
            let n = subs.get(&(*id, status)).copied().unwrap_or(0);
            let _ = writeln!(
                out,
                "dispatch_subscribers{{list=\"{s}\",status=\"{status}\"}} {n}"
            );
        }
    }

    header(
        &mut out,
        "dispatch_bounces_total",
        "counter",
        "Messages that came back (and hard bounces at SMTP time), by type.",
    );
    for t in crate::domain::BounceType::ALL {
        let n = snap
            .bounces
            .iter()
            .find(|(k, _)| k == t)
            .map_or(0, |(_, n)| *n);
        let _ = writeln!(out, "dispatch_bounces_total{{type=\"{t}\"}} {n}");
    }
    out
}

/// Appends the series of each configured feed (zeros for a feed never polled), labelled
/// with its URL without credentials or query.
pub(super) fn render_feed_metrics(
    out: &mut String,
    feeds: &[crate::config::Feed],
    states: &[FeedState],
) {
    let rows: Vec<(String, Option<&FeedState>)> = feeds
        .iter()
        .map(|f| {
            (
                label(&f.url.redacted()),
                states.iter().find(|s| s.url == f.url.as_str()),
            )
        })
        .collect();
    if rows.is_empty() {
        return;
    }
    header(
        out,
        "dispatch_feed_polls_total",
        "counter",
        "Polls of each feed, by result (ok, not_modified, error).",
    );
    for (feed, s) in &rows {
        for (result, n) in [
            ("ok", s.map_or(0, |s| s.polls_ok)),
            ("not_modified", s.map_or(0, |s| s.polls_not_modified)),
            ("error", s.map_or(0, |s| s.polls_failed)),
        ] {
            let _ = writeln!(
                out,
                "dispatch_feed_polls_total{{feed=\"{feed}\",result=\"{result}\"}} {n}"
            );
        }
    }
    header(
        out,
        "dispatch_feed_up",
        "gauge",
        "1 when the feed's last poll succeeded, 0 when it failed or it was never polled.",
    );
    for (feed, s) in &rows {
        let up = s.is_some_and(|s| s.failures == 0 && s.last_success_at.is_some());
        let _ = writeln!(out, "dispatch_feed_up{{feed=\"{feed}\"}} {}", u8::from(up));
    }
    header(
        out,
        "dispatch_feed_failures",
        "gauge",
        "Failed polls of the feed in a row.",
    );
    for (feed, s) in &rows {
        let n = s.map_or(0, |s| s.failures);
        let _ = writeln!(out, "dispatch_feed_failures{{feed=\"{feed}\"}} {n}");
    }
    header(
        out,
        "dispatch_feed_last_poll_timestamp_seconds",
        "gauge",
        "When the feed was last polled, whatever the result (Unix time; 0 = never).",
    );
    for (feed, s) in &rows {
        let t = unix(s.and_then(|s| s.last_poll_at));
        let _ = writeln!(
            out,
            "dispatch_feed_last_poll_timestamp_seconds{{feed=\"{feed}\"}} {t}"
        );
    }
    header(
        out,
        "dispatch_feed_last_success_timestamp_seconds",
        "gauge",
        "When the feed last answered with a feed or a 304 (Unix time; 0 = never).",
    );
    for (feed, s) in &rows {
        let t = unix(s.and_then(|s| s.last_success_at));
        let _ = writeln!(
            out,
            "dispatch_feed_last_success_timestamp_seconds{{feed=\"{feed}\"}} {t}"
        );
    }
    header(
        out,
        "dispatch_feed_items_stored_total",
        "counter",
        "New articles stored from the feed.",
    );
    for (feed, s) in &rows {
        let n = s.map_or(0, |s| s.items_stored);
        let _ = writeln!(
            out,
            "dispatch_feed_items_stored_total{{feed=\"{feed}\"}} {n}"
        );
    }
}

/// A stored time as Unix seconds, 0 for never.
fn unix(t: Option<DbTime>) -> i64 {
    t.map_or(0, |t| t.utc().timestamp())
}

/// A metric of a source: its name, type, help text and value.
type Series = (
    &'static str,
    &'static str,
    &'static str,
    fn(&SourceState) -> i64,
);

/// Appends the series of each configured `[[sql_sources]]` entry (zeros for one never
/// polled), labelled with its path, as [`render_feed_metrics`] does for feeds.
pub(super) fn render_source_metrics(
    out: &mut String,
    sources: &[crate::config::SqlSource],
    states: &[SourceState],
) {
    let rows: Vec<(String, Option<&SourceState>)> = sources
        .iter()
        .map(|src| {
            let path = src.path.display().to_string();
            let state = states.iter().find(|s| s.path == path);
            (label(&path), state)
        })
        .collect();
    if rows.is_empty() {
        return;
    }
    let series: [Series; 7] = [
        (
            "dispatch_sql_source_last_poll_timestamp_seconds",
            "gauge",
            "When the source was last read, whatever the result (Unix time; 0 = never).",
            |s| unix(s.last_poll_at),
        ),
        (
            "dispatch_sql_source_last_success_timestamp_seconds",
            "gauge",
            "When a read of the source last succeeded (Unix time; 0 = never).",
            |s| unix(s.last_success_at),
        ),
        (
            "dispatch_sql_source_up",
            "gauge",
            "1 when the source's last read succeeded, 0 when it failed or it was never read.",
            |s| i64::from(s.failures == 0 && s.last_success_at.is_some()),
        ),
        (
            "dispatch_sql_source_failures",
            "gauge",
            "Failed reads of the source in a row.",
            |s| s.failures,
        ),
        (
            "dispatch_sql_source_errors_total",
            "counter",
            "Failed reads of the source (the query failed, the file could not be opened).",
            |s| s.polls_failed,
        ),
        (
            "dispatch_sql_source_rows_stored_total",
            "counter",
            "New articles stored from the source's rows.",
            |s| s.items_stored,
        ),
        (
            "dispatch_sql_source_rows_updated_total",
            "counter",
            "Stored articles revised by a row whose cursor moved.",
            |s| s.items_updated,
        ),
    ];
    for (name, kind, help, value) in series {
        header(out, name, kind, help);
        for (source, s) in &rows {
            let n = s.map_or(0, value);
            let _ = writeln!(out, "{name}{{source=\"{source}\"}} {n}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::metrics::{DeliveryCount, EditionTimes};

    #[test]
    fn renders_zeros_escapes_labels_and_sums() {
        let snap = MetricsSnapshot {
            lists: vec![(1, "daily".into()), (2, "we\"ird".into())],
            deliveries: vec![
                DeliveryCount {
                    list_id: 1,
                    status: "sent".into(),
                    count: 10,
                    retries: 2,
                },
                DeliveryCount {
                    list_id: 1,
                    status: "queued".into(),
                    count: 3,
                    retries: 1,
                },
            ],
            subscriptions: vec![],
            editions: vec![EditionTimes {
                list_id: 1,
                last_created_at: Some("2026-11-28T02:00:30Z".into()),
                slot: Some("2026-11-28T02:00:00Z".into()),
                slot_created_at: Some("2026-11-28T02:00:30Z".into()),
            }],
            bounces: vec![(crate::domain::BounceType::Hard, 4)],
        };
        let text = render_metrics(&snap, "mail-1", Backend::Postgres);
        assert!(text.contains("dispatch_node_info{node=\"mail-1\",database=\"postgres\"} 1\n"));
        assert!(text.contains("dispatch_messages_total{list=\"daily\",status=\"sent\"} 10\n"));
        assert!(text.contains("dispatch_retries_total{list=\"daily\"} 3\n"));
        assert!(text.contains("dispatch_queue_depth{list=\"daily\"} 3\n"));
        assert!(text.contains("dispatch_last_edition_lateness_seconds{list=\"daily\"} 30\n"));
        assert!(text.contains("dispatch_last_edition_timestamp_seconds{list=\"we\\\"ird\"} 0\n"));
        assert!(text.contains("dispatch_subscribers{list=\"daily\",status=\"active\"} 0\n"));
        assert!(text.contains("dispatch_bounces_total{type=\"hard\"} 4\n"));
        assert!(text.contains("dispatch_bounces_total{type=\"auto-reply\"} 0\n"));
    }

    #[test]
    fn sql_sources_have_poll_times_errors_and_rows_like_feeds() {
        let src = |path: &str| crate::config::SqlSource {
            path: path.into(),
            query: "SELECT 1".into(),
            poll_secs: 60,
            default_category: crate::domain::Category::parse("General News").unwrap(),
        };
        let t = DbTime::from(crate::domain::parse_timestamp("2026-12-01T10:00:00Z").unwrap());
        let read = SourceState {
            path: "/var/lib/cms/cms.db".into(),
            cursor: None,
            last_poll_at: Some(t),
            last_success_at: Some(t),
            next_poll_at: None,
            failures: 0,
            last_error: None,
            items_stored: 7,
            items_updated: 2,
            polls_ok: 3,
            polls_failed: 1,
        };
        let mut text = String::new();
        render_source_metrics(
            &mut text,
            &[src("/var/lib/cms/cms.db"), src("/srv/never\"read\".db")],
            &[read],
        );
        let cms = "source=\"/var/lib/cms/cms.db\"";
        for line in [
            format!("dispatch_sql_source_last_poll_timestamp_seconds{{{cms}}} 1796119200\n"),
            format!("dispatch_sql_source_last_success_timestamp_seconds{{{cms}}} 1796119200\n"),
            format!("dispatch_sql_source_up{{{cms}}} 1\n"),
            format!("dispatch_sql_source_errors_total{{{cms}}} 1\n"),
            format!("dispatch_sql_source_rows_stored_total{{{cms}}} 7\n"),
            format!("dispatch_sql_source_rows_updated_total{{{cms}}} 2\n"),
            // Configured but never read: zeros, and the label escaped.
            "dispatch_sql_source_up{source=\"/srv/never\\\"read\\\".db\"} 0\n".to_owned(),
            "dispatch_sql_source_last_poll_timestamp_seconds{source=\"/srv/never\\\"read\\\".db\"} 0\n"
                .to_owned(),
        ] {
            assert!(text.contains(&line), "{line:?} missing from\n{text}");
        }
        assert_eq!(text.matches("# TYPE ").count(), 7);
        let mut none = String::new();
        render_source_metrics(&mut none, &[], &[]);
        assert!(none.is_empty(), "no sources, no series");
    }
}
