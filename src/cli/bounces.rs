//! `dispatch bounces …`: the pipe bounces arrive through, and what they did.

use std::io::Read as _;

use anyhow::Result;
use clap::Subcommand;

use super::{Ctx, JsonFlag, Outcome, Table};
use crate::bounces::{self, Settings};
use crate::domain::{BounceSource, BounceType, EmailAddress};
use crate::store::BounceRow;

/// Bounce commands.
#[derive(Debug, Subcommand)]
pub enum BouncesCmd {
    /// Read one message (a bounce, complaint, auto-reply or mailto: unsubscribe) on stdin
    /// and record it. For a Postfix pipe(8) transport or alias. Exit status per sysexits.h:
    /// 0 recorded (also when unidentified or a repeat), 75 (EX_TEMPFAIL) when it could not be
    /// recorded now, so Postfix keeps the message and tries again.
    Ingest {
        /// The envelope recipient (Postfix `${original_recipient}`); else the environment's
        /// ORIGINAL_RECIPIENT or RECIPIENT (local(8) aliases), else the message's headers.
        #[arg(long, value_name = "ADDRESS")]
        recipient: Option<String>,
    },
    /// Recorded bounce events, newest first.
    List {
        /// Only this type.
        #[arg(long = "type", value_name = "TYPE", value_parser = ["hard", "soft", "rejected", "complaint", "auto-reply", "unsubscribe", "other", "unidentified"])]
        kind: Option<String>,
        /// At most this many.
        #[arg(long, default_value_t = 100)]
        limit: i64,
        #[command(flatten)]
        json: JsonFlag,
    },
    /// Undo a bounce status for a reader who fixed their mailbox: active again, earlier
    /// bounces no longer count.
    Reactivate { email: EmailAddress },
}

/// EX_TEMPFAIL (sysexits.h): try again later.
pub const EX_TEMPFAIL: u8 = 75;

pub(super) async fn run(cmd: BouncesCmd, ctx: &Ctx) -> Result<Outcome> {
    match cmd {
        BouncesCmd::Ingest { recipient } => Ok(ingest(ctx, recipient).await),
        BouncesCmd::List { kind, limit, json } => {
            let store = ctx.store().await?;
            let kind = kind
                .map(|k| k.parse::<BounceType>())
                .transpose()
                .map_err(anyhow::Error::msg)?;
            let rows = store.bounce_events(kind, limit.clamp(1, 100_000)).await?;
            if json.json {
                println!("{}", serde_json::to_string_pretty(&rows)?);
            } else {
                print_rows(&rows);
            }
            Ok(Outcome::Ok)
        }
        BouncesCmd::Reactivate { email } => {
            let store = ctx.store().await?;
            if store.reactivate(&email).await? {
                println!("{email} is active again; earlier bounces no longer count");
            } else {
                println!("{email} was not bounced; nothing changed");
            }
            Ok(Outcome::Ok)
        }
    }
}

/// Reads stdin and records it; any failure is a temporary one for the MTA, never a lost
/// bounce.
async fn ingest(ctx: &Ctx, recipient: Option<String>) -> Outcome {
    let mut raw = Vec::new();
    if let Err(e) = std::io::stdin().lock().read_to_end(&mut raw) {
        eprintln!("error: reading the message from stdin: {e}");
        return Outcome::Exit(EX_TEMPFAIL);
    }
    let recipient = recipient
        .or_else(|| std::env::var("ORIGINAL_RECIPIENT").ok())
        .or_else(|| std::env::var("RECIPIENT").ok())
        .filter(|r| !r.trim().is_empty());
    let store = match ctx.store().await {
        Ok(s) => s,
        Err(e) => {
            eprintln!("error: {e:#}; the message was not recorded (try again later)");
            return Outcome::Exit(EX_TEMPFAIL);
        }
    };
    let settings = Settings::from_config(&ctx.config);
    let result = bounces::ingest(
        &store,
        &settings,
        &raw,
        BounceSource::Pipe,
        recipient.as_deref(),
    )
    .await;
    store.close().await;
    match result {
        Ok(done) => {
            let types: Vec<&str> = done.types.iter().map(|t| t.as_str()).collect();
            if done.recorded.duplicate {
                println!("already recorded ({}); nothing changed", types.join(", "));
            } else {
                println!(
                    "recorded: {}{}{}",
                    types.join(", "),
                    if done.recorded.marked_bounced > 0 {
                        format!(
                            "; {} reader(s) marked bounced",
                            done.recorded.marked_bounced
                        )
                    } else {
                        String::new()
                    },
                    if done.recorded.unsubscribed > 0 {
                        format!("; {} subscription(s) ended", done.recorded.unsubscribed)
                    } else {
                        String::new()
                    }
                );
            }
            Outcome::Ok
        }
        Err(e) => {
            eprintln!("error: recording the message failed: {e}; try again later");
            Outcome::Exit(EX_TEMPFAIL)
        }
    }
}

/// Who an event is about, for a person: the reader, or for an unidentified message its From
/// and Subject.
pub(super) fn who(r: &BounceRow) -> String {
    match (&r.email, r.kind) {
        (Some(e), _) => e.clone(),
        (None, BounceType::Unidentified) => format!(
            "{} — {}",
            r.from_addr.as_deref().unwrap_or("(no From)"),
            r.subject.as_deref().unwrap_or("(no Subject)")
        ),
        (None, _) if r.note.as_deref() == Some("the reader was erased") => "(erased)".into(),
        (None, _) => "-".into(),
    }
}

pub(super) fn print_rows(rows: &[BounceRow]) {
    let mut t = Table::new([
        "RECEIVED", "TYPE", "SOURCE", "READER", "EDITION", "LIST", "STATUS", "DETAIL",
    ]);
    for r in rows {
        t.row([
            r.received_at.clone(),
            r.kind.to_string(),
            r.source.to_string(),
            who(r),
            r.edition_id.map_or("-".into(), |e| format!("#{e}")),
            r.list.clone().unwrap_or_else(|| "-".into()),
            r.status.clone().unwrap_or_else(|| "-".into()),
            r.diagnostic
                .clone()
                .or_else(|| r.note.clone())
                .unwrap_or_default(),
        ]);
    }
    t.print();
}
