//! `dispatch users …` (the newsroom console's accounts) and `dispatch audit`.

use anyhow::{Context as _, Result, bail};
use clap::Subcommand;

use super::{Ctx, JsonFlag, Outcome, Table};
use crate::domain::{DbTime, EmailAddress, Role};
use crate::store::{NewAudit, Store};

/// Console user commands.
#[derive(Debug, Subcommand)]
pub enum UsersCmd {
    /// Add a user and print a one-time link (valid 24 hours) where they set their password.
    Add {
        email: String,
        /// editor: articles, breaking news, editions; admin: also lists, subscribers, users, keys.
        #[arg(long, value_parser = Role::parse)]
        role: Role,
    },
    /// Every user: address, role, state.
    List(JsonFlag),
    /// Disable a user: they are signed out and cannot sign in.
    Disable { email: String },
    /// Clear a user's password (enabling them again) and print a new set-password link.
    Reset { email: String },
}

fn address(raw: &str) -> Result<EmailAddress> {
    EmailAddress::parse(raw).with_context(|| format!("EMAIL {raw:?}"))
}

/// A fresh set-password link: the URL to print and the token's hash to store.
fn link(ctx: &Ctx) -> (String, Vec<u8>, DbTime) {
    crate::console::setup_link(ctx.config.console.public_url.base())
}

async fn audit(store: &Store, action: &str, email: &EmailAddress, detail: &str) -> Result<()> {
    store
        .audit(&NewAudit {
            actor: "cli",
            action,
            subject: &format!("user:{email}"),
            detail,
            ip: None,
        })
        .await?;
    Ok(())
}

pub(super) async fn run(cmd: UsersCmd, ctx: &Ctx) -> Result<Outcome> {
    let store = ctx.store().await?;
    match cmd {
        UsersCmd::Add { email, role } => {
            let email = address(&email)?;
            let (url, hash, expires) = link(ctx);
            store.create_user(&email, role, &hash, expires).await?;
            audit(&store, "user.add", &email, role.as_str()).await?;
            eprintln!(
                "console user {email} ({role}) added. Send them this link (valid 24 hours, once):"
            );
            println!("{url}");
        }
        UsersCmd::List(flag) => {
            let users = store.users().await?;
            let state = |u: &crate::store::UserRow| {
                if u.disabled_at.is_some() {
                    "disabled"
                } else if u.has_password {
                    "active"
                } else {
                    "link sent"
                }
            };
            if flag.json {
                let rows: Vec<_> = users
                    .iter()
                    .map(|u| {
                        serde_json::json!({
                            "email": u.email, "role": u.role, "state": state(u),
                            "created_at": u.created_at.to_text(),
                        })
                    })
                    .collect();
                println!("{}", serde_json::to_string_pretty(&rows)?);
                return Ok(Outcome::Ok);
            }
            let mut t = Table::new(["EMAIL", "ROLE", "STATE", "CREATED"]);
            for u in &users {
                t.row([
                    u.email.clone(),
                    u.role.to_string(),
                    state(u).to_owned(),
                    u.created_at.to_text(),
                ]);
            }
            t.print();
        }
        UsersCmd::Disable { email } => {
            let email = address(&email)?;
            if !store.disable_user(&email).await? {
                bail!("no enabled console user {email}; `dispatch users list` shows them");
            }
            audit(&store, "user.disable", &email, "").await?;
            println!("disabled console user {email}; their sessions are ended");
        }
        UsersCmd::Reset { email } => {
            let email = address(&email)?;
            let (url, hash, expires) = link(ctx);
            if !store.reset_user(&email, &hash, expires).await? {
                bail!("no console user {email}; add one with `dispatch users add`");
            }
            audit(&store, "user.reset", &email, "").await?;
            eprintln!(
                "password of {email} cleared and sessions ended. New link (valid 24 hours, once):"
            );
            println!("{url}");
        }
    }
    Ok(Outcome::Ok)
}

/// `dispatch audit`'s options.
#[derive(Debug, clap::Args)]
pub struct AuditArgs {
    /// Only entries at or after this time (RFC 3339, e.g. 2026-12-01T00:00:00Z).
    #[arg(long, value_parser = parse_since)]
    since: Option<DbTime>,
    /// At most this many entries, newest first.
    #[arg(long, default_value_t = 100)]
    limit: i64,
    /// Print JSON instead of a table.
    #[arg(long)]
    json: bool,
}

fn parse_since(raw: &str) -> Result<DbTime, String> {
    DbTime::parse(raw).ok_or_else(|| {
        format!("expected an RFC 3339 time such as 2026-12-01T00:00:00Z, got {raw:?}")
    })
}

pub(super) async fn run_audit(args: AuditArgs, ctx: &Ctx) -> Result<Outcome> {
    let store = ctx.store().await?;
    let rows = store.audit_log(args.since, args.limit.max(1)).await?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&rows)?);
        return Ok(Outcome::Ok);
    }
    let mut t = Table::new(["AT", "WHO", "ACTION", "SUBJECT", "DETAIL", "IP"]);
    for r in &rows {
        t.row([
            r.at.to_text(),
            r.actor.clone(),
            r.action.clone(),
            r.subject.clone(),
            r.detail.clone(),
            r.ip.clone().unwrap_or_else(|| "-".into()),
        ]);
    }
    t.print();
    Ok(Outcome::Ok)
}
