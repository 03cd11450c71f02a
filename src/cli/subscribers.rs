//! `dispatch subscribers …`

use std::ffi::OsStr;
use std::path::PathBuf;

use anyhow::{Result, bail};
use clap::Subcommand;
use clap::builder::TypedValueParser;
use clap::error::ErrorKind;

use super::{Ctx, JsonFlag, Outcome, Table};
use crate::domain::{CategorySet, EmailAddress, MAX_NAME_CHARS, clean_text, clean_text_within};
use crate::store::subscribers::NewSubscription;
use crate::store::{ImportOutcome, ListRow};

/// Subscriber commands.
#[derive(Debug, Subcommand)]
pub enum SubscribersCmd {
    /// Subscribe an address to a list (active at once: you assert the reader's consent).
    Add {
        #[arg(value_parser = EmailArg)]
        email: EmailAddress,
        #[arg(long)]
        list: String,
        /// The reader's name, at most 200 characters.
        #[arg(long)]
        name: Option<String>,
        /// Only these of the list's categories, comma-separated (default: all).
        #[arg(long, value_parser = CategorySet::parse_list)]
        categories: Option<CategorySet>,
    },
    /// Unsubscribe an address from a list, or from every list.
    Unsubscribe {
        #[arg(value_parser = EmailArg)]
        email: EmailAddress,
        #[arg(long)]
        list: Option<String>,
    },
    /// Erase a subscriber's personal data. If they had unsubscribed, only a hash of the address
    /// stays, so that no import can mail them again.
    Remove {
        #[arg(value_parser = EmailArg)]
        email: EmailAddress,
    },
    /// Issue new unsubscribe/preferences links for an address (e.g. a forwarded digest put
    /// theirs in other hands): every link in messages sent so far stops working.
    RotateToken {
        #[arg(value_parser = EmailArg)]
        email: EmailAddress,
    },
    /// List subscribers.
    List {
        #[arg(long)]
        list: Option<String>,
        /// pending, active, unsubscribed or bounced.
        #[arg(long, value_parser = ["pending", "active", "unsubscribed", "bounced"])]
        status: Option<String>,
        #[command(flatten)]
        json: JsonFlag,
    },
    /// Show a subscriber and each of their lists.
    Show {
        #[arg(value_parser = EmailArg)]
        email: EmailAddress,
        #[command(flatten)]
        json: JsonFlag,
    },
    /// Import subscribers from CSV (columns: email, name, categories).
    Import {
        file: PathBuf,
        #[arg(long)]
        list: String,
        /// Check the file and report what would change, without changing anything.
        #[arg(long)]
        dry_run: bool,
    },
    /// Export subscriptions as CSV (the import format plus status and list columns).
    Export {
        #[arg(long)]
        list: Option<String>,
        /// Write here instead of stdout.
        #[arg(long)]
        output: Option<PathBuf>,
    },
}

/// Parses an address argument. clap's own message for a failed parser repeats the value
/// before ours, which quotes it again; this one names the argument and quotes the value once,
/// cut to 60 characters ([`crate::domain::echo`]).
#[derive(Debug, Clone, Copy)]
struct EmailArg;

impl TypedValueParser for EmailArg {
    type Value = EmailAddress;

    fn parse_ref(
        &self,
        cmd: &clap::Command,
        arg: Option<&clap::Arg>,
        value: &OsStr,
    ) -> Result<EmailAddress, clap::Error> {
        EmailAddress::parse(&value.to_string_lossy()).map_err(|e| {
            let arg = arg.map_or_else(|| "<EMAIL>".to_owned(), ToString::to_string);
            clap::Error::raw(ErrorKind::ValueValidation, format!("{arg}: {e}\n")).with_cmd(cmd)
        })
    }
}

/// Stored text made safe to print: names and consent sources came from people and files,
/// and rows stored before cleaning existed (or written by a CMS) may hold escape sequences.
fn shown(text: &str) -> String {
    clean_text(text, usize::MAX)
}

/// Resolves a subscriber's category choice against what the list carries, in the list's
/// spelling; an unknown category is an error that names it.
pub(crate) fn resolve_categories(
    list: &ListRow,
    chosen: &CategorySet,
) -> Result<CategorySet, String> {
    let Some(carried) = list.category_set() else {
        return Ok(chosen.clone());
    };
    let mut out = Vec::new();
    for c in chosen.iter() {
        match carried.find(c) {
            Some(x) => out.push(x.clone()),
            None => {
                return Err(format!(
                    "category {:?} is not carried by list {} (it carries: {carried})",
                    c.as_str(),
                    list.slug
                ));
            }
        }
    }
    Ok(CategorySet::new(out))
}

pub(super) async fn run(cmd: SubscribersCmd, ctx: &Ctx) -> Result<Outcome> {
    let store = ctx.store().await?;
    match cmd {
        SubscribersCmd::Add {
            email,
            list,
            name,
            categories,
        } => {
            let name = match name {
                Some(n) => Some(
                    clean_text_within(&n, MAX_NAME_CHARS)
                        .map_err(|e| anyhow::anyhow!("--name {e}"))?,
                )
                .filter(|n| !n.is_empty()),
                None => None,
            };
            let list = store.list_by_slug(&list).await?;
            let categories = match categories {
                Some(c) => Some(resolve_categories(&list, &c).map_err(anyhow::Error::msg)?),
                None => None,
            };
            let row = NewSubscription {
                email: email.clone(),
                name,
                categories,
            };
            let out = store.subscribe_batch(list.id, &[row], "cli", false).await?;
            match &out[0] {
                ImportOutcome::Added => println!("subscribed {email} to {}", list.slug),
                ImportOutcome::Updated => println!("updated {email} on {}", list.slug),
                ImportOutcome::Unchanged => {
                    println!("{email} is already subscribed to {}", list.slug);
                }
                ImportOutcome::Skipped(why) => {
                    bail!("{email} was not subscribed to {}: {why}", list.slug)
                }
            }
        }
        SubscribersCmd::Unsubscribe { email, list } => {
            let list_id = match &list {
                Some(slug) => Some(store.list_by_slug(slug).await?.id),
                None => None,
            };
            let n = store.unsubscribe_email(&email, list_id).await?;
            match (n, list) {
                (0, _) => println!("{email} had no active subscription to change"),
                (_, Some(slug)) => println!("unsubscribed {email} from {slug}"),
                (n, None) => println!("unsubscribed {email} from {n} list(s)"),
            }
        }
        SubscribersCmd::Remove { email } => {
            if store.erase_subscriber(&email).await? {
                println!(
                    "erased {email}; a hash of the address is kept so their unsubscribe stays in force"
                );
            } else {
                println!("erased {email}; nothing of them is kept");
            }
        }
        SubscribersCmd::RotateToken { email } => {
            let n = store.rotate_tokens(&email).await?;
            println!(
                "new links for {email} on {n} list(s); the links in earlier messages no longer work"
            );
        }
        SubscribersCmd::List { list, status, json } => {
            let list_id = match &list {
                Some(slug) => Some(store.list_by_slug(slug).await?.id),
                None => None,
            };
            let rows = store.list_subscribers(list_id, status.as_deref()).await?;
            if json.json {
                println!("{}", serde_json::to_string_pretty(&rows)?);
            } else {
                let mut t = Table::new(["EMAIL", "NAME", "LIST", "STATUS", "CATEGORIES"]);
                for r in rows {
                    let status = if r.subscriber_status == "active" {
                        r.status
                    } else {
                        format!("{} ({})", r.status, r.subscriber_status)
                    };
                    t.row([
                        shown(&r.email),
                        r.name.as_deref().map(shown).unwrap_or_default(),
                        r.list,
                        status,
                        r.categories
                            .map(|c| CategorySet::from_stored(&c).to_string())
                            .unwrap_or_else(|| "all".into()),
                    ]);
                }
                t.print();
            }
        }
        SubscribersCmd::Show { email, json } => {
            let s = store.subscriber_by_email(&email).await?;
            let subs = store.subscriptions_of(s.id).await?;
            let bounces = store.bounces_of(s.id, 20).await?;
            if json.json {
                let mut v = serde_json::to_value(&s)?;
                v["subscriptions"] = serde_json::to_value(&subs)?;
                v["bounces"] = serde_json::to_value(&bounces)?;
                println!("{}", serde_json::to_string_pretty(&v)?);
            } else {
                println!("email    {}", shown(s.email.as_deref().unwrap_or("")));
                println!("name     {}", s.name.as_deref().map_or("-".into(), shown));
                println!(
                    "status   {}{}",
                    s.status,
                    if s.hard_bounces > 0 {
                        format!(" ({} hard bounces)", s.hard_bounces)
                    } else {
                        String::new()
                    }
                );
                println!(
                    "consent  {} at {}",
                    s.consent_source.as_deref().map_or("-".into(), shown),
                    s.consent_at.as_deref().unwrap_or("-")
                );
                println!("since    {}\n", s.created_at);
                let mut t = Table::new([
                    "LIST",
                    "STATUS",
                    "CATEGORIES",
                    "SINCE",
                    "CONFIRMED",
                    "UNSUBSCRIBED",
                    "WHY",
                ]);
                for x in subs {
                    t.row([
                        x.list,
                        x.status,
                        x.categories
                            .map(|c| CategorySet::from_stored(&c).to_string())
                            .unwrap_or_else(|| "all".into()),
                        x.created_at,
                        x.confirmed_at.unwrap_or_else(|| "-".into()),
                        x.unsubscribed_at.unwrap_or_else(|| "-".into()),
                        x.unsubscribe_reason.unwrap_or_default(),
                    ]);
                }
                t.print();
                if !bounces.is_empty() {
                    println!("\nbounces (newest first):");
                    super::bounces::print_rows(&bounces);
                }
            }
        }
        SubscribersCmd::Import {
            file,
            list,
            dry_run,
        } => {
            return super::subscribers_import::import(&store, &file, &list, dry_run).await;
        }
        SubscribersCmd::Export { list, output } => {
            super::subscribers_import::export(&store, list.as_deref(), output.as_deref()).await?;
        }
    }
    Ok(Outcome::Ok)
}
