//! Subscriber CSV import and export on the subscribers page (admin).
//!
//! Import runs `dispatch subscribers import`'s own code
//! ([`crate::intake::subscribers::import_from`]: the same reader, batches and per-line
//! report), on a file upload (`multipart/form-data`) or pasted text. The guard reads the body
//! once, capped at 2 MB, and checks its CSRF field like any form. Export streams the CLI's CSV
//! writer to the browser: rows go from the database through a small channel to the writer
//! and out in chunks, so a list of a million is never in memory at once.

use std::io::Write;

use axum::body::{Body, Bytes};
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::http::header::{CONTENT_DISPOSITION, CONTENT_TYPE};
use axum::response::{IntoResponse, Response};
use maud::{Markup, html};
use serde::Deserialize;

use super::editorial::{csrf_field, page};
use super::{ClientIp, ConsoleState, Posted, Signed, pages};
use crate::domain::CategorySet;
use crate::import::subscribers_csv::{ExportRow, write_export};
use crate::intake::subscribers::{ImportReport, ImportTarget, import_from};
use crate::store::{ListRow, StoreError};

/// The report lines a page shows; the rest are counted.
const SHOWN_LINES: usize = 200;

/// The import and export forms.
pub(super) fn forms(signed: &Signed, lists: &[ListRow]) -> Markup {
    let select = |id: &str| {
        html! {
            label for=(id) { "List" }
            select id=(id) name="list" required {
                @for l in lists { option value=(l.slug) { (l.name) " (" (l.slug) ")" } }
            }
        }
    };
    html! {
        section.card aria-labelledby="import-title" {
            h2 #import-title { "Import a CSV" }
            p.muted { "Columns email, name, categories (as " code { "dispatch subscribers import" } "); up to 2 MB here, larger files with the CLI." }
            form method="post" action="/subscribers/import" enctype="multipart/form-data" {
                (csrf_field(signed))
                (select("import-list"))
                label for="file" { "CSV file" }
                input #file type="file" name="file" accept=".csv,text/csv";
                label for="pasted" { "…or paste the CSV" }
                textarea #pasted name="pasted" rows="4" {}
                label.check { input type="checkbox" name="dry_run" value="1"; "Only check: count, change nothing" }
                button type="submit" { "Import" }
            }
        }
        section.card aria-labelledby="export-title" {
            h2 #export-title { "Export a list" }
            form.row method="get" action="/subscribers/export" {
                div { (select("export-list")) }
                button type="submit" { "Download CSV" }
            }
        }
    }
}

/// The report, kept for the page.
#[derive(Default)]
struct Collected {
    lines: Vec<String>,
    more: usize,
    summary: String,
}

impl ImportReport for Collected {
    fn line(&mut self, text: String) {
        if self.lines.len() < SHOWN_LINES {
            self.lines.push(text);
        } else {
            self.more += 1;
        }
    }
    fn summary(&mut self, text: String) {
        self.summary = text;
    }
}

/// `POST /subscribers/import` (admin): imports the uploaded or pasted CSV into a list and
/// shows the per-line report.
pub(super) async fn import(
    State(st): State<ConsoleState>,
    signed: Signed,
    ClientIp(ip): ClientIp,
    Posted(f): Posted,
) -> Response {
    let list = f.get("list").unwrap_or("");
    let file = f.get("file").filter(|t| !t.trim().is_empty());
    let text = file.or_else(|| f.get("pasted").filter(|t| !t.trim().is_empty()));
    let dry_run = f.get("dry_run").is_some();
    let Some(text) = text else {
        return report_page(
            &signed,
            StatusCode::UNPROCESSABLE_ENTITY,
            html! {
                p.err role="alert" { "Choose a CSV file or paste one." }
            },
        );
    };
    let name = if file.is_some() {
        "upload.csv"
    } else {
        "pasted.csv"
    };
    let to = ImportTarget {
        list,
        source: format!("console:{}", signed.user.email),
        dry_run,
    };
    let mut report = Collected::default();
    // Audited before it starts as well as when it ends: an import cut off by the request
    // timeout keeps the batches it committed, and the log must still say who added them.
    if !dry_run {
        st.audit(
            &signed.user.email,
            ip,
            "subscribers.import.start",
            &format!("list:{list}"),
            &format!("{} bytes from {name}", text.len()),
        )
        .await;
    }
    match import_from(&st.store, text.as_bytes(), name, &to, &mut report).await {
        Ok(_) => {
            if !dry_run {
                st.audit(
                    &signed.user.email,
                    ip,
                    "subscribers.import",
                    &format!("list:{list}"),
                    &report.summary,
                )
                .await;
            }
            report_page(
                &signed,
                StatusCode::OK,
                html! {
                    p.note role="status" { (report.summary) }
                    @if !report.lines.is_empty() {
                        h2 { "Lines not imported, and warnings" }
                        pre tabindex="0" aria-label="The import report" {
                            @for l in &report.lines { (l) "\n" }
                            @if report.more > 0 { "… and " (report.more) " more\n" }
                        }
                    }
                },
            )
        }
        Err(e) => match e.downcast_ref::<StoreError>() {
            Some(StoreError::NotFound(_)) => report_page(
                &signed,
                StatusCode::UNPROCESSABLE_ENTITY,
                html! {
                    p.err role="alert" { "List: there is no list " (list) "." }
                },
            ),
            // A header the reader refuses, or an empty file: the reader's own words.
            None => report_page(
                &signed,
                StatusCode::UNPROCESSABLE_ENTITY,
                html! {
                    p.err role="alert" { "Nothing was imported: " (e) }
                },
            ),
            Some(_) => pages::server_error("importing subscribers failed", e),
        },
    }
}

fn report_page(signed: &Signed, status: StatusCode, content: Markup) -> Response {
    let mut res = page(
        signed,
        "Import",
        false,
        html! {
            h1 { "Import" }
            (content)
            p { a href="/subscribers" { "Back to the subscribers" } }
        },
    );
    *res.status_mut() = status;
    res
}

/// The query of `GET /subscribers/export`.
#[derive(Debug, Deserialize)]
pub(super) struct ExportOf {
    #[serde(default)]
    list: String,
}

/// How long a download may take no bytes before the export gives up. The reading side holds a
/// database connection and a read snapshot while it waits (on SQLite a snapshot keeps the
/// checkpointer from shrinking the WAL): a browser that stops reading must not hold them for
/// ever. A slow but moving download is never cut off.
const EXPORT_STALL: std::time::Duration = std::time::Duration::from_secs(60);

/// Chunks of CSV to the response body; a closed receiver (the browser went away) or one that
/// takes nothing for [`EXPORT_STALL`] is a write error, which stops the writer and so the
/// database read.
struct ToBody {
    tx: tokio::sync::mpsc::Sender<Result<Bytes, std::io::Error>>,
    runtime: tokio::runtime::Handle,
    stall: std::time::Duration,
}

impl Write for ToBody {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let chunk = Ok(Bytes::copy_from_slice(buf));
        // On a blocking thread (see `export`): waiting here parks no runtime worker.
        match self
            .runtime
            .block_on(tokio::time::timeout(self.stall, self.tx.send(chunk)))
        {
            Ok(Ok(())) => Ok(buf.len()),
            Ok(Err(_)) => Err(std::io::Error::new(
                std::io::ErrorKind::BrokenPipe,
                "the download stopped",
            )),
            Err(_) => Err(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                format!("the download took nothing for {} s", self.stall.as_secs()),
            )),
        }
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// `GET /subscribers/export?list=…` (admin): the list's subscriptions as CSV, streamed.
pub(super) async fn export(
    State(st): State<ConsoleState>,
    signed: Signed,
    ClientIp(ip): ClientIp,
    Query(q): Query<ExportOf>,
) -> Response {
    let list = match st.store.list_by_slug(q.list.trim()).await {
        Ok(l) => l,
        Err(StoreError::NotFound(_)) => {
            return pages::status_page(
                StatusCode::NOT_FOUND,
                "Not found",
                "There is no such list.",
            );
        }
        Err(e) => return pages::server_error("reading a list failed", e),
    };
    st.audit(
        &signed.user.email,
        ip,
        "subscribers.export",
        &format!("list:{}", list.slug),
        "",
    )
    .await;
    let (rows_tx, rows_rx) = std::sync::mpsc::sync_channel::<ExportRow>(1024);
    let (body_tx, mut body_rx) = tokio::sync::mpsc::channel(16);
    // The writer blocks on both channels, so it has a thread of its own.
    let runtime = tokio::runtime::Handle::current();
    tokio::task::spawn_blocking(move || {
        let body = ToBody {
            tx: body_tx,
            runtime,
            stall: EXPORT_STALL,
        };
        let out = std::io::BufWriter::with_capacity(64 * 1024, body);
        if let Err(e) = write_export(out, rows_rx.into_iter()) {
            tracing::info!(error = %e, "console: a CSV export stopped");
        }
    });
    // The read hands rows to a bounded channel whose `send` blocks when the writer is behind
    // (a slow download): that waiting must not happen on a runtime worker, so the read runs
    // on a blocking thread too.
    let store = st.store.clone();
    let handle = tokio::runtime::Handle::current();
    let list_id = list.id;
    tokio::task::spawn_blocking(move || {
        let read = handle.block_on(store.for_each_export_row(Some(list_id), |r| {
            rows_tx
                .send(ExportRow {
                    email: r.email,
                    name: r.name,
                    categories: r.categories.as_deref().map(CategorySet::from_stored),
                    status: r.status,
                    list: r.list,
                })
                .map_err(|_| anyhow::anyhow!("the CSV writer stopped"))
        }));
        if let Err(e) = read {
            tracing::info!(error = %e, "console: reading a CSV export stopped");
        }
    });
    let stream = futures_util::stream::poll_fn(move |cx| body_rx.poll_recv(cx));
    (
        [
            (CONTENT_TYPE, "text/csv; charset=utf-8".to_owned()),
            (
                CONTENT_DISPOSITION,
                format!("attachment; filename=\"{}.csv\"", list.slug),
            ),
        ],
        Body::from_stream(stream),
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_download_that_stops_taking_bytes_ends_the_export_and_a_gone_one_too() {
        let (tx, rx) = tokio::sync::mpsc::channel(1);
        let mut body = ToBody {
            tx,
            runtime: tokio::runtime::Handle::current(),
            stall: std::time::Duration::from_millis(200),
        };
        let (first, second, body) = tokio::task::spawn_blocking(move || {
            let first = body.write(b"email,name\n").map_err(|e| e.kind());
            // Nobody reads: the channel stays full.
            let second = body.write(b"a@example.org,A\n").map_err(|e| e.kind());
            (first, second, body)
        })
        .await
        .unwrap();
        assert_eq!(first, Ok(11));
        assert_eq!(second, Err(std::io::ErrorKind::TimedOut));
        drop(rx);
        let gone = tokio::task::spawn_blocking(move || {
            let mut body = body;
            body.write(b"b@example.org,B\n").map_err(|e| e.kind())
        })
        .await
        .unwrap();
        assert_eq!(gone, Err(std::io::ErrorKind::BrokenPipe));
    }
}
