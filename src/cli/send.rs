//! `dispatch send …` and `dispatch editions …`.

use std::collections::HashSet;
use std::io::IsTerminal;
use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::time::Duration as StdDuration;

use anyhow::{Context, Result, bail};
use chrono::Utc;
use clap::Subcommand;

use super::{Ctx, JsonFlag, Outcome, Table};
use crate::delivery::{Engine, Mode, Report};
use crate::domain::EmailAddress;
use crate::edition;
use crate::mail::mime::{MessageTemplate, Recipient};
use crate::mail::transport::Transport;
use crate::store::{Created, DeliveryStatus, EditionKind, EditionStatus, Store};

/// Send commands.
#[derive(Debug, Subcommand)]
pub enum SendCmd {
    /// Build the list's digest now (same window rules as the schedule) and deliver it.
    Digest { list: String },
    /// Send an article as breaking news to every list that carries breaking news (or one).
    /// Once per article per list: running it again sends nothing twice.
    Breaking {
        article_id: i64,
        #[arg(long)]
        list: Option<String>,
    },
    /// Send the next digest to one address, without recording an edition.
    Test {
        #[arg(long)]
        to: EmailAddress,
        /// The list whose digest to send [default: the only list, if there is one].
        #[arg(long)]
        list: Option<String>,
    },
}

/// Edition commands.
#[derive(Debug, Subcommand)]
pub enum EditionsCmd {
    /// Editions, newest first.
    List {
        #[arg(long)]
        list: Option<String>,
        #[arg(long, default_value_t = 30)]
        limit: i64,
        #[command(flatten)]
        json: JsonFlag,
    },
    /// One edition: deliveries by status and the most common errors.
    Show {
        id: i64,
        #[command(flatten)]
        json: JsonFlag,
    },
    /// Continue a paused edition (after fixing what paused it) and deliver what is left.
    Resume { id: i64 },
    /// Stop an edition: its unsent messages are not sent.
    Cancel { id: i64 },
    /// Compact finished editions older than `[retention] days` now (the daemon does it every
    /// hour): their counts and failures stay, their other delivery rows go.
    Compact {
        /// Instead of `[retention] days`.
        #[arg(long)]
        older_than_days: Option<u32>,
    },
}

/// The sending engine for `ctx`: built before anything is recorded, so that a transport or
/// DKIM key that cannot work fails the command with nothing changed.
pub(crate) fn engine(store: &Store, ctx: &Ctx) -> Result<Engine> {
    let transport = Transport::from_config(&ctx.config).context("setting up the mail transport")?;
    Engine::new(store.clone(), Arc::new(ctx.config.clone()), transport)
}

/// Runs `engine` over `editions` with a progress bar on a terminal, log lines otherwise.
/// SIGTERM or Ctrl-C stops it as it stops the daemon: no new claims, transactions in flight
/// finish, every outcome is committed; a second signal exits at once.
pub(crate) async fn deliver(
    store: &Store,
    engine: &Engine,
    editions: HashSet<i64>,
) -> Result<Report> {
    let mut total = 0;
    for id in &editions {
        total += store.pending_deliveries(Some(*id)).await?;
    }
    let progress = engine.progress();
    let bar = if std::io::stderr().is_terminal() {
        let pb = indicatif::ProgressBar::new(total as u64);
        pb.set_style(
            indicatif::ProgressStyle::with_template(
                "{bar:40.cyan/blue} {pos}/{len} sent {msg} {per_sec} eta {eta}",
            )
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
        );
        pb
    } else {
        indicatif::ProgressBar::hidden()
    };
    let ticker = {
        let bar = bar.clone();
        let progress = Arc::clone(&progress);
        let hidden = bar.is_hidden();
        tokio::spawn(async move {
            let mut last_log = std::time::Instant::now();
            loop {
                tokio::time::sleep(StdDuration::from_millis(200)).await;
                let (sent, failed) = (progress.sent.load(Relaxed), progress.failed.load(Relaxed));
                bar.set_position(sent + failed);
                bar.set_message(format!("({failed} failed)"));
                if hidden && last_log.elapsed() > StdDuration::from_secs(5) {
                    tracing::info!(sent, failed, total, "sending");
                    last_log = std::time::Instant::now();
                }
            }
        })
    };
    let report = engine
        .run(
            Some(editions),
            Mode::UntilIdle {
                wait_for_retries: StdDuration::from_secs(30),
            },
            crate::daemon::shutdown_on_signals(),
        )
        .await;
    ticker.abort();
    bar.finish_and_clear();
    report
}

fn print_report(store_pending: i64, r: &Report) {
    println!(
        "sent {}, hard bounces {}, failed {}, skipped {}, to retry later {}",
        r.sent, r.bounced, r.failed, r.skipped, r.retry_later
    );
    for (id, why) in &r.paused {
        println!("edition #{id} paused: {why}");
    }
    if store_pending > 0 && r.paused.is_empty() {
        println!(
            "{store_pending} message(s) wait for a retry; `dispatch run` delivers them when due"
        );
    }
}

pub(super) async fn run_send(cmd: SendCmd, ctx: &Ctx) -> Result<Outcome> {
    let store = ctx.store().await?;
    match cmd {
        SendCmd::Digest { list } => {
            let list = store.list_by_slug(&list).await?;
            let engine = engine(&store, ctx)?;
            let created =
                edition::create_digest(&store, &ctx.config, &list, Utc::now(), None).await?;
            let Created::New {
                id,
                queued,
                skipped,
            } = created
            else {
                bail!("an edition for this slot exists already");
            };
            let e = store.edition(id).await?;
            if e.status == EditionStatus::Skipped {
                println!(
                    "edition #{id}: {}; nothing sent (the next digest starts after this window)",
                    e.status_reason.unwrap_or_default()
                );
                return Ok(Outcome::Ok);
            }
            println!(
                "edition #{id}: \"{}\" to {queued} reader(s){}",
                e.subject,
                if skipped > 0 {
                    format!(" ({skipped} skipped: no story in their categories)")
                } else {
                    String::new()
                }
            );
            let report = deliver(&store, &engine, HashSet::from([id])).await?;
            print_report(store.pending_deliveries(Some(id)).await?, &report);
            Ok(if report.paused.is_empty() {
                Outcome::Ok
            } else {
                Outcome::Rejected
            })
        }
        SendCmd::Breaking { article_id, list } => {
            let only = match list {
                Some(slug) => Some(store.list_by_slug(&slug).await?),
                None => None,
            };
            let engine = engine(&store, ctx)?;
            let created =
                edition::create_breaking(&store, &ctx.config, article_id, only.as_ref()).await?;
            if created.is_empty() {
                println!("no list carries breaking news in this article's category");
                return Ok(Outcome::Ok);
            }
            let mut ids = HashSet::new();
            for (l, c) in &created {
                match c {
                    Created::New { id, queued, .. } => {
                        println!("{}: edition #{id} to {queued} reader(s)", l.slug);
                        ids.insert(*id);
                    }
                    Created::Existing { id } => {
                        let e = store.edition(*id).await?;
                        println!(
                            "{}: already sent as edition #{id} ({}); not sending again",
                            l.slug, e.status
                        );
                    }
                }
            }
            if ids.is_empty() {
                return Ok(Outcome::Ok);
            }
            let report = deliver(&store, &engine, ids).await?;
            print_report(store.pending_deliveries(None).await?, &report);
            Ok(if report.paused.is_empty() {
                Outcome::Ok
            } else {
                Outcome::Rejected
            })
        }
        SendCmd::Test { to, list } => {
            let list = match list {
                Some(slug) => store.list_by_slug(&slug).await?,
                None => {
                    let mut all = store.all_lists().await?;
                    if all.len() != 1 {
                        bail!("there are {} lists; name one with --list", all.len());
                    }
                    all.remove(0)
                }
            };
            let now = Utc::now();
            let plan = edition::plan_digest(&store, &ctx.config, &list, now).await?;
            super::preview::print_plan(&list, &plan);
            let rendered = edition::render_plan(&ctx.config, &list, &plan, None, now)
                .context("nothing to render")?;
            let headers = edition::common_headers(
                &ctx.config,
                &list,
                EditionKind::Digest,
                &format!("[test] {}", rendered.subject),
            );
            let template = MessageTemplate::new(&headers, &rendered.text, &rendered.html);
            let mut bytes = Vec::with_capacity(template.size_hint());
            let message_id = crate::mail::mime::message_id(0, 0, template.message_id_domain());
            template.personalise(
                &Recipient {
                    to: &to,
                    name: None,
                    token: super::preview::PREVIEW_TOKEN,
                    message_id: &message_id,
                },
                &mut bytes,
            );
            let from = ctx.config.publication.from.address();
            // Signed like every real message, so a test shows what DKIM verifiers will see.
            if let Some(d) = &ctx.config.dkim {
                let signer =
                    crate::mail::DkimSigner::from_config(d).context("loading the DKIM key")?;
                let header = signer.sign(&bytes)?;
                bytes.splice(0..0, header.into_bytes());
            }
            let transport = Transport::from_config(&ctx.config)?;
            let mut session = transport.session().await?;
            session
                .send(from, &to, &bytes)
                .await
                .with_context(|| format!("sending the test message to @{}", to.domain()))?;
            session.close().await;
            println!("sent a test digest to {to} ({message_id})");
            Ok(Outcome::Ok)
        }
    }
}

pub(super) async fn run_editions(cmd: EditionsCmd, ctx: &Ctx) -> Result<Outcome> {
    let store = ctx.store().await?;
    match cmd {
        EditionsCmd::List { list, limit, json } => {
            let list_id = match &list {
                Some(slug) => Some(store.list_by_slug(slug).await?.id),
                None => None,
            };
            let rows = store.editions(list_id, limit).await?;
            let slugs: std::collections::HashMap<i64, String> = store
                .all_lists()
                .await?
                .into_iter()
                .map(|l| (l.id, l.slug))
                .collect();
            if json.json {
                println!("{}", serde_json::to_string_pretty(&rows)?);
                return Ok(Outcome::Ok);
            }
            let mut t = Table::new([
                "ID", "LIST", "KIND", "STATUS", "STORIES", "READERS", "SENT", "CREATED", "SUBJECT",
            ]);
            for e in rows {
                let counts = store.delivery_counts(e.id).await?;
                t.row([
                    e.id.to_string(),
                    slugs.get(&e.list_id).cloned().unwrap_or_default(),
                    e.kind.to_string(),
                    e.status.to_string(),
                    e.article_count.to_string(),
                    e.recipient_count.to_string(),
                    counts
                        .get(&DeliveryStatus::Sent)
                        .copied()
                        .unwrap_or(0)
                        .to_string(),
                    e.created_at.to_string(),
                    e.subject,
                ]);
            }
            t.print();
        }
        EditionsCmd::Show { id, json } => {
            let e = store.edition(id).await?;
            let counts = store.delivery_counts(id).await?;
            let errors = store.last_errors(id, 5).await?;
            let bounces = store.edition_bounces(id).await?;
            if json.json {
                let mut v = serde_json::to_value(&e)?;
                v["deliveries"] = serde_json::to_value(&counts)?;
                v["bounces"] = serde_json::to_value(&bounces)?;
                v["errors"] = serde_json::to_value(&errors)?;
                println!("{}", serde_json::to_string_pretty(&v)?);
                return Ok(Outcome::Ok);
            }
            let list = store.list_by_id(e.list_id).await?;
            println!("edition  #{} ({}) of {}", e.id, e.kind, list.slug);
            println!("subject  {}", e.subject);
            println!(
                "status   {}{}",
                e.status,
                e.status_reason
                    .map(|r| format!(": {r}"))
                    .unwrap_or_default()
            );
            println!("window   {} → {}", e.window_start, e.window_end);
            println!("stories  {}", e.article_count);
            println!("readers  {}", e.recipient_count);
            for (status, n) in &counts {
                println!("  {status:<8} {n}");
            }
            println!(
                "bounces  {} hard, {} soft, {} complaint(s)",
                bounces.hard, bounces.soft, bounces.complaint
            );
            if !errors.is_empty() {
                println!("most common replies:");
                for (reply, n) in errors {
                    println!("  {n:>6} × {reply}");
                }
            }
        }
        EditionsCmd::Resume { id } => {
            let e = store.edition(id).await?;
            if e.status != EditionStatus::Paused && e.status != EditionStatus::Sending {
                bail!(
                    "edition #{id} is {}; only a paused (or still sending) edition can be resumed",
                    e.status
                );
            }
            let engine = engine(&store, ctx)?;
            store
                .set_edition_status(id, EditionStatus::Sending, None)
                .await?;
            println!(
                "resuming edition #{id}: {} message(s) to send",
                store.pending_deliveries(Some(id)).await?
            );
            let report = deliver(&store, &engine, HashSet::from([id])).await?;
            print_report(store.pending_deliveries(Some(id)).await?, &report);
            return Ok(if report.paused.is_empty() {
                Outcome::Ok
            } else {
                Outcome::Rejected
            });
        }
        EditionsCmd::Cancel { id } => {
            store
                .set_edition_status(
                    id,
                    EditionStatus::Cancelled,
                    Some("cancelled with `dispatch editions cancel`"),
                )
                .await?;
            let counts = store.delivery_counts(id).await?;
            println!(
                "cancelled edition #{id}: {} sent before, {} will not be sent",
                counts.get(&DeliveryStatus::Sent).copied().unwrap_or(0),
                counts.get(&DeliveryStatus::Skipped).copied().unwrap_or(0)
            );
        }
        EditionsCmd::Compact { older_than_days } => {
            let days = older_than_days.unwrap_or(ctx.config.retention.days);
            let done = store
                .compact_editions(Utc::now() - chrono::Duration::days(i64::from(days)))
                .await?;
            println!(
                "compacted {} edition(s) finished more than {days} day(s) ago: {} delivery row(s) removed",
                done.editions, done.deliveries
            );
        }
    }
    Ok(Outcome::Ok)
}
