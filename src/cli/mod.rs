//! The command line: clap definitions and thin handlers that call the library.

use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::{Args, Parser, Subcommand};

use crate::config::Config;
use crate::store::Store;

mod api_keys;
mod articles;
mod articles_import;
pub mod bounces;
mod db;
mod demo;
mod feeds;
mod lists;
mod output;
mod preview;
mod send;
mod sources;
mod subscribers;
pub mod subscribers_import;
mod users;

pub use output::Table;

/// dispatch: category digests and breaking news for a news site, from SQLite over SMTP.
#[derive(Debug, Parser)]
#[command(name = "dispatch", version, about, long_about = None, propagate_version = true)]
pub struct Cli {
    /// Config file [default: $DISPATCH_CONFIG, else config/dispatch.toml if present, else built-in defaults]
    #[arg(long, global = true, value_name = "PATH")]
    pub config: Option<PathBuf>,

    #[command(subcommand)]
    pub command: Command,
}

/// The top-level commands.
#[derive(Debug, Subcommand)]
// Parsed once per process: boxing the large variants would buy nothing.
#[allow(clippy::large_enum_variant)]
pub enum Command {
    /// Write a starter config (if none exists) and create the database.
    Init {
        /// Where to write the config.
        #[arg(long, default_value = "config/dispatch.toml")]
        path: PathBuf,
    },
    /// Manage lists.
    #[command(subcommand)]
    Lists(lists::ListsCmd),
    /// Manage subscribers.
    #[command(subcommand)]
    Subscribers(subscribers::SubscribersCmd),
    /// Manage articles.
    #[command(subcommand)]
    Articles(articles::ArticlesCmd),
    /// Bearer keys for the HTTP API (/api/v1/): create, list, revoke.
    #[command(subcommand, name = "api-keys")]
    ApiKeys(api_keys::ApiKeysCmd),
    /// The newsroom console's accounts: add (prints a set-password link), list, disable, reset.
    #[command(subcommand)]
    Users(users::UsersCmd),
    /// What was sent, stopped or changed, by whom, when, from where (newest first).
    Audit(users::AuditArgs),
    /// The [[feeds]] the daemon polls: their state, or a poll now.
    #[command(subcommand)]
    Feeds(feeds::FeedsCmd),
    /// The [[sql_sources]] (CMS SQLite files) the daemon reads: their state, or a poll now.
    #[command(subcommand)]
    Sources(sources::SourcesCmd),
    /// Build a list's next digest without recording it: writes digest.html, digest.txt, digest.eml.
    Preview(preview::PreviewArgs),
    /// First run: seed sample lists, readers and stories, send a digest to the outbox, serve the reader pages.
    Demo(demo::DemoArgs),
    /// Run the daemon: scheduled digests, breaking news, sending, and the subscriber web pages.
    Run(RunArgs),
    /// Move or inspect the database: copy SQLite to PostgreSQL, check counts and migrations.
    #[command(subcommand)]
    Db(db::DbCmd),
    /// Deliver editions now.
    #[command(subcommand)]
    Send(send::SendCmd),
    /// Inspect, resume and cancel editions.
    #[command(subcommand)]
    Editions(send::EditionsCmd),
    /// Lists with subscriber counts, article counts and the last edition per list.
    Status(JsonFlag),
    /// Bounces, complaints and mailto: unsubscribes that come back: the pipe, the record.
    #[command(subcommand)]
    Bounces(bounces::BouncesCmd),
}

impl Command {
    /// Whether this is `bounces ingest`, which an MTA runs: its failures must say "try again"
    /// (EX_TEMPFAIL) so the message is kept, even when the config cannot be read.
    pub fn is_ingest(&self) -> bool {
        matches!(self, Self::Bounces(bounces::BouncesCmd::Ingest { .. }))
    }
}

/// `dispatch run`'s options.
#[derive(Debug, Clone, Args)]
pub struct RunArgs {
    /// Run only these parts, comma-separated (default: all). Several nodes sharing a
    /// PostgreSQL database may split them, e.g. `--only web` behind the load balancer.
    #[arg(long, value_enum, value_delimiter = ',', value_name = "ROLE")]
    pub only: Vec<Role>,
}

/// A part of the daemon, for `dispatch run --only`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Role {
    /// Claim and deliver editions and transactional mail.
    Sender,
    /// Build scheduled digests and breaking news; compact old editions; poll the feeds, SQL
    /// sources and bounce mailbox.
    Scheduler,
    /// Serve the reader pages, the CMS API (/api/v1), /healthz and /metrics.
    Web,
}

impl RunArgs {
    /// The roles asked for: all when none was named.
    pub fn roles(&self) -> crate::daemon::Roles {
        if self.only.is_empty() {
            return crate::daemon::Roles::ALL;
        }
        crate::daemon::Roles {
            sender: self.only.contains(&Role::Sender),
            scheduler: self.only.contains(&Role::Scheduler),
            web: self.only.contains(&Role::Web),
        }
    }
}

/// `--json` for commands that print data.
#[derive(Debug, Clone, Copy, Args)]
pub struct JsonFlag {
    /// Print JSON instead of a table.
    #[arg(long)]
    pub json: bool,
}

/// What a command leaves for `main` to turn into an exit status.
#[derive(Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Everything succeeded.
    Ok,
    /// The command ran but some input was rejected (e.g. bad CSV rows).
    Rejected,
    /// Exit with this status (`sysexits.h`, for commands an MTA runs).
    Exit(u8),
}

/// Everything a handler needs.
pub struct Ctx {
    pub config: Config,
    pub config_path: Option<PathBuf>,
}

impl Ctx {
    /// This process as the holder of named leases (`feeds poll`, `sources poll`), named after
    /// the configured node, as the daemon's are.
    pub fn lease_holder(&self) -> crate::store::LeaseHolder {
        let node = self.config.node.name_or_host();
        crate::store::LeaseHolder::of(&crate::delivery::owner::current(Some(&node)))
    }

    /// Opens the configured database.
    pub async fn store(&self) -> Result<Store> {
        let target = self.config.database.target();
        Store::connect(&target)
            .await
            .with_context(|| format!("opening database {target}"))
    }
}

/// Runs one parsed command.
pub async fn run(cli: Cli, ctx: Ctx) -> Result<Outcome> {
    match cli.command {
        Command::Init { path } => init(&ctx, &path).await,
        Command::Lists(cmd) => lists::run(cmd, &ctx).await,
        Command::Subscribers(cmd) => subscribers::run(cmd, &ctx).await,
        Command::Articles(cmd) => articles::run(cmd, &ctx).await,
        Command::Feeds(cmd) => feeds::run(cmd, &ctx).await,
        Command::Sources(cmd) => sources::run(cmd, &ctx).await,
        Command::ApiKeys(cmd) => api_keys::run(cmd, &ctx).await,
        Command::Users(cmd) => users::run(cmd, &ctx).await,
        Command::Audit(args) => users::run_audit(args, &ctx).await,
        Command::Status(flag) => status(&ctx, flag).await,
        Command::Preview(args) => preview::run(args, &ctx).await,
        Command::Demo(args) => demo::run(args, &ctx).await,
        Command::Run(args) => {
            // Signals are caught from the start: one that comes while the database is still
            // opening (a PostgreSQL server that does not answer holds it for up to two
            // minutes) stops the daemon cleanly instead of killing it. Dropping the open
            // rolls back any migration it was running.
            let shutdown = crate::daemon::shutdown_on_signals();
            let mut stopped = shutdown.clone();
            let store = tokio::select! {
                store = ctx.store() => store?,
                _ = stopped.wait_for(|s| *s) => {
                    tracing::info!("stopped before the database was open");
                    return Ok(Outcome::Ok);
                }
            };
            crate::daemon::run(
                store,
                std::sync::Arc::new(ctx.config.clone()),
                args.roles(),
                shutdown,
            )
            .await?;
            Ok(Outcome::Ok)
        }
        Command::Db(cmd) => db::run(cmd, &ctx).await,
        Command::Send(cmd) => send::run_send(cmd, &ctx).await,
        Command::Editions(cmd) => send::run_editions(cmd, &ctx).await,
        Command::Bounces(cmd) => bounces::run(cmd, &ctx).await,
    }
}

async fn init(ctx: &Ctx, path: &std::path::Path) -> Result<Outcome> {
    if path.exists() {
        println!("config {} already exists; left as it is", path.display());
    } else {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        }
        std::fs::write(path, crate::config::STARTER_CONFIG)
            .with_context(|| format!("writing {}", path.display()))?;
        println!("wrote starter config {}", path.display());
    }
    let store = ctx.store().await?;
    store.close().await;
    println!("database ready at {}", ctx.config.database.target());
    Ok(Outcome::Ok)
}

async fn status(ctx: &Ctx, flag: JsonFlag) -> Result<Outcome> {
    let store = ctx.store().await?;
    let lists = store.all_lists().await?;
    let (articles, breaking, recent) = store.article_counts().await?;
    let mut rows = Vec::new();
    for l in &lists {
        let (pending, active, unsub) = store.subscription_counts(l.id).await?;
        let last = store.last_edition_summary(l.id).await?;
        rows.push(serde_json::json!({
            "list": l.slug, "name": l.name, "schedule": l.schedule, "timezone": l.timezone,
            "pending": pending, "active": active, "unsubscribed": unsub,
            "last_edition": last,
        }));
    }
    if flag.json {
        let doc = serde_json::json!({
            "lists": rows,
            "articles": {"total": articles, "breaking": breaking, "last_24h": recent},
        });
        println!("{}", serde_json::to_string_pretty(&doc)?);
        return Ok(Outcome::Ok);
    }
    let mut t = Table::new([
        "LIST",
        "SCHEDULE",
        "ACTIVE",
        "PENDING",
        "UNSUBSCRIBED",
        "LAST EDITION",
    ]);
    for r in &rows {
        let last = r["last_edition"]
            .as_object()
            .map(|e| {
                format!(
                    "#{} {} {} ({})",
                    e["id"],
                    e["kind"].as_str().unwrap_or(""),
                    e["status"].as_str().unwrap_or(""),
                    e["created_at"].as_str().unwrap_or("")
                )
            })
            .unwrap_or_else(|| "never".into());
        let sched = match (r["schedule"].as_str(), r["timezone"].as_str()) {
            (Some(s), Some(tz)) => format!("{s} {tz}"),
            _ => "-".into(),
        };
        t.row([
            r["list"].as_str().unwrap_or("").to_owned(),
            sched,
            r["active"].to_string(),
            r["pending"].to_string(),
            r["unsubscribed"].to_string(),
            last,
        ]);
    }
    t.print();
    println!(
        "\narticles: {articles} stored, {breaking} breaking, {recent} published in the last 24 hours"
    );
    Ok(Outcome::Ok)
}
