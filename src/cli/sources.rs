//! `dispatch sources …`: the `[[sql_sources]]` (CMS SQLite files) the daemon reads.

use anyhow::{Result, bail};
use clap::Subcommand;

use super::{Ctx, JsonFlag, Outcome, Table};
use crate::domain::DbTime;
use crate::intake::sql::{SourceOutcome, SqlPoller};

/// SQL source commands.
#[derive(Debug, Subcommand)]
pub enum SourcesCmd {
    /// Each configured source: last poll, last success, cursor, items, last error, next poll.
    List(JsonFlag),
    /// Read every configured source now (or only PATH), as the daemon would.
    Poll {
        /// One configured source's path.
        path: Option<String>,
    },
}

pub(super) async fn run(cmd: SourcesCmd, ctx: &Ctx) -> Result<Outcome> {
    let store = ctx.store().await?;
    let sources = &ctx.config.sql_sources;
    match cmd {
        SourcesCmd::List(flag) => {
            let states = store.source_states().await?;
            let time = |t: Option<DbTime>| t.map_or_else(|| "never".to_owned(), DbTime::to_text);
            let mut rows = Vec::new();
            let mut t = Table::new([
                "SOURCE",
                "LAST POLL",
                "LAST SUCCESS",
                "CURSOR",
                "ITEMS",
                "NEXT POLL",
                "LAST ERROR",
            ]);
            for src in sources {
                let path = src.path.display().to_string();
                let s = states.iter().find(|s| s.path == path);
                rows.push(serde_json::json!({
                    "path": path,
                    "poll_secs": src.poll_secs,
                    "last_poll_at": s.and_then(|s| s.last_poll_at).map(DbTime::to_text),
                    "last_success_at": s.and_then(|s| s.last_success_at).map(DbTime::to_text),
                    "next_poll_at": s.and_then(|s| s.next_poll_at).map(DbTime::to_text),
                    "cursor": s.and_then(|s| s.cursor.as_ref()).map(ToString::to_string),
                    "items_stored": s.map_or(0, |s| s.items_stored),
                    "items_updated": s.map_or(0, |s| s.items_updated),
                    "failures": s.map_or(0, |s| s.failures),
                    "last_error": s.and_then(|s| s.last_error.clone()),
                }));
                t.row([
                    path.clone(),
                    time(s.and_then(|s| s.last_poll_at)),
                    time(s.and_then(|s| s.last_success_at)),
                    s.and_then(|s| s.cursor.as_ref())
                        .map_or_else(|| "-".into(), ToString::to_string),
                    s.map_or(0, |s| s.items_stored).to_string(),
                    s.and_then(|s| s.next_poll_at)
                        .map_or_else(|| "at start".to_owned(), DbTime::to_text),
                    s.and_then(|s| s.last_error.clone())
                        .unwrap_or_else(|| "-".into()),
                ]);
            }
            if flag.json {
                println!("{}", serde_json::to_string_pretty(&rows)?);
            } else {
                t.print();
            }
            Ok(Outcome::Ok)
        }
        SourcesCmd::Poll { path } => {
            let chosen: Vec<_> = match &path {
                None => sources.iter().collect(),
                Some(p) => sources
                    .iter()
                    .filter(|s| s.path.as_os_str() == p.trim())
                    .collect(),
            };
            if chosen.is_empty() {
                match path {
                    Some(p) => bail!(
                        "{p:?} is not a configured source; `dispatch sources list` shows the [[sql_sources]] of the config"
                    ),
                    None => bail!("no [[sql_sources]] are configured"),
                }
            }
            let poller = SqlPoller::new(store, ctx.lease_holder());
            let mut failed = false;
            for src in chosen {
                let shown = src.path.display();
                match poller.poll(src, true).await?.outcome {
                    SourceOutcome::Read { rows, stored } => println!(
                        "{shown}: {rows} rows: {} added, {} updated, {} unchanged, {} kept as sent, {} skipped",
                        stored.added,
                        stored.updated,
                        stored.existing,
                        stored.kept_as_sent.len(),
                        stored.rejected.len()
                    ),
                    SourceOutcome::Failed(e) => {
                        failed = true;
                        eprintln!("{shown}: {e}");
                    }
                    SourceOutcome::Skipped => {
                        println!("{shown}: another process is reading it right now");
                    }
                }
            }
            Ok(if failed {
                Outcome::Rejected
            } else {
                Outcome::Ok
            })
        }
    }
}
