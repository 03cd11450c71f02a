//! `dispatch feeds …`: the `[[feeds]]` the daemon polls.

use anyhow::{Result, bail};
use clap::Subcommand;

use super::{Ctx, JsonFlag, Outcome, Table};
use crate::domain::DbTime;
use crate::intake::feeds::{PollOutcome, Poller};
use crate::intake::fetch::FetchLimits;
use crate::store::FeedState;

/// Feed commands.
#[derive(Debug, Subcommand)]
pub enum FeedsCmd {
    /// Each configured feed: last poll, last success, items stored, last error, next poll.
    List(JsonFlag),
    /// Poll every configured feed now (or only URL), as the daemon would.
    Poll {
        /// One configured feed's URL.
        url: Option<String>,
    },
}

pub(super) async fn run(cmd: FeedsCmd, ctx: &Ctx) -> Result<Outcome> {
    let store = ctx.store().await?;
    let feeds = &ctx.config.feeds;
    match cmd {
        FeedsCmd::List(flag) => {
            let states = store.feed_states().await?;
            let state_of = |url: &str| states.iter().find(|s| s.url == url);
            let time = |t: Option<DbTime>| t.map_or_else(|| "never".to_owned(), DbTime::to_text);
            if flag.json {
                let rows: Vec<_> = feeds
                    .iter()
                    .map(|f| {
                        let s = state_of(f.url.as_str());
                        serde_json::json!({
                            "url": f.url.redacted(),
                            "poll_secs": f.poll_secs,
                            "last_poll_at": s.and_then(|s| s.last_poll_at).map(DbTime::to_text),
                            "last_success_at": s.and_then(|s| s.last_success_at).map(DbTime::to_text),
                            "next_poll_at": s.and_then(|s| s.next_poll_at).map(DbTime::to_text),
                            "items_stored": s.map_or(0, |s| s.items_stored),
                            "failures": s.map_or(0, |s| s.failures),
                            "last_error": s.and_then(|s| s.last_error.clone()),
                            "polls": s.map(counts),
                        })
                    })
                    .collect();
                println!("{}", serde_json::to_string_pretty(&rows)?);
                return Ok(Outcome::Ok);
            }
            let mut t = Table::new([
                "FEED",
                "LAST POLL",
                "LAST SUCCESS",
                "ITEMS",
                "NEXT POLL",
                "LAST ERROR",
            ]);
            for f in feeds {
                let s = state_of(f.url.as_str());
                t.row([
                    f.url.redacted(),
                    time(s.and_then(|s| s.last_poll_at)),
                    time(s.and_then(|s| s.last_success_at)),
                    s.map_or(0, |s| s.items_stored).to_string(),
                    s.and_then(|s| s.next_poll_at)
                        .map_or_else(|| "at start".to_owned(), DbTime::to_text),
                    s.and_then(|s| s.last_error.clone())
                        .unwrap_or_else(|| "-".into()),
                ]);
            }
            t.print();
            Ok(Outcome::Ok)
        }
        FeedsCmd::Poll { url } => {
            let chosen: Vec<_> = match &url {
                None => feeds.iter().collect(),
                Some(u) => feeds
                    .iter()
                    .filter(|f| f.url.as_str() == u.trim())
                    .collect(),
            };
            if chosen.is_empty() {
                match url {
                    Some(u) => bail!(
                        "{u:?} is not a configured feed; `dispatch feeds list` shows the [[feeds]] of the config"
                    ),
                    None => bail!("no [[feeds]] are configured"),
                }
            }
            let poller = Poller::new(store, FetchLimits::default(), ctx.lease_holder())?;
            let mut failed = false;
            for f in chosen {
                let report = poller.poll(f, true).await?;
                let label = f.url.redacted();
                match report.outcome {
                    PollOutcome::NotModified => println!("{label}: not modified"),
                    PollOutcome::Stored { format, stored } => {
                        for e in &stored.rejected {
                            eprintln!("{label}: {e}");
                        }
                        println!(
                            "{label}: {format}: {} added, {} updated, {} already stored, {} kept as sent, {} skipped",
                            stored.added,
                            stored.updated,
                            stored.existing,
                            stored.kept_as_sent.len(),
                            stored.rejected.len()
                        );
                    }
                    PollOutcome::Failed(e) => {
                        failed = true;
                        eprintln!("{label}: {e}");
                    }
                    PollOutcome::Skipped => {
                        println!("{label}: another process is polling it right now");
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

fn counts(s: &FeedState) -> serde_json::Value {
    serde_json::json!({
        "ok": s.polls_ok, "not_modified": s.polls_not_modified, "failed": s.polls_failed,
    })
}
