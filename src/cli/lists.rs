//! `dispatch lists …`

use anyhow::Result;
use chrono::Utc;
use clap::{Args, Subcommand};

use super::{Ctx, JsonFlag, Outcome, Table};
use crate::domain::{CategorySet, ListSlug, Timezone};
use crate::i18n::Language;
use crate::schedule::Schedule;
use crate::store::{ListRow, ListSpec};

/// List commands.
#[derive(Debug, Subcommand)]
pub enum ListsCmd {
    /// Create a list.
    Create {
        /// Short name used in URLs and List-Id: lowercase letters, digits, '-'.
        slug: ListSlug,
        #[command(flatten)]
        opts: ListOpts,
    },
    /// Show every list.
    List(JsonFlag),
    /// Show one list with its next scheduled sends.
    Show {
        slug: String,
        #[command(flatten)]
        json: JsonFlag,
    },
    /// Change a list; only the options given change.
    Update {
        slug: String,
        #[command(flatten)]
        opts: ListOpts,
        /// Remove the schedule (no scheduled digests).
        #[arg(long, conflicts_with = "schedule")]
        no_schedule: bool,
        /// Carry every category again.
        #[arg(long, conflicts_with = "categories")]
        all_categories: bool,
    },
    /// Delete a list (refused while it has subscribers, unless --force).
    Delete {
        slug: String,
        /// Delete even with subscribers: their subscriptions to this list and its editions go too.
        #[arg(long)]
        force: bool,
    },
}

/// The settable options of a list.
#[derive(Debug, Args)]
pub struct ListOpts {
    /// Display name, e.g. "Daily Digest".
    #[arg(long)]
    name: Option<String>,
    /// A sentence shown to readers on the preferences page.
    #[arg(long)]
    description: Option<String>,
    /// 5-field crontab line in the list's time zone, e.g. "0 7 * * *" (07:00 daily) or
    /// "30 6 * * 1-5" (06:30 Monday to Friday).
    #[arg(long, value_parser = Schedule::parse)]
    schedule: Option<Schedule>,
    /// IANA time zone for the schedule and dates, e.g. Asia/Karachi.
    #[arg(long, value_parser = Timezone::parse)]
    timezone: Option<Timezone>,
    /// Categories the list carries, comma-separated (default: all).
    #[arg(long, value_parser = CategorySet::parse_list)]
    categories: Option<CategorySet>,
    /// The language of the list's emails and reader pages: en or ur (default: [publication]
    /// language).
    #[arg(long)]
    language: Option<Language>,
    /// Send breaking news to this list.
    #[arg(long, num_args = 0..=1, default_missing_value = "true")]
    breaking: Option<bool>,
    /// New web sign-ups must confirm their address before they get mail.
    #[arg(long, num_args = 0..=1, default_missing_value = "true")]
    double_opt_in: Option<bool>,
    /// Send a digest even when no story was published in its window.
    #[arg(long, num_args = 0..=1, default_missing_value = "true")]
    send_empty: Option<bool>,
}

impl ListOpts {
    fn spec(self) -> ListSpec {
        ListSpec {
            name: self.name,
            description: self.description,
            schedule: self.schedule.map(Some),
            timezone: self.timezone,
            categories: self.categories.map(Some),
            sends_breaking: self.breaking,
            send_empty: self.send_empty,
            double_opt_in: self.double_opt_in,
            language: self.language,
        }
    }
}

pub(super) async fn run(cmd: ListsCmd, ctx: &Ctx) -> Result<Outcome> {
    let store = ctx.store().await?;
    match cmd {
        ListsCmd::Create { slug, opts } => {
            let l = store.create_list(&slug, &opts.spec()).await?;
            println!("created list {}", l.slug);
            print_next_slots(&l);
        }
        ListsCmd::List(flag) => {
            let lists = store.all_lists().await?;
            if flag.json {
                println!("{}", serde_json::to_string_pretty(&lists)?);
            } else {
                let mut t = Table::new([
                    "SLUG",
                    "NAME",
                    "SCHEDULE",
                    "TIMEZONE",
                    "CATEGORIES",
                    "FLAGS",
                ]);
                for l in &lists {
                    t.row([
                        l.slug.clone(),
                        l.name.clone(),
                        l.schedule.clone().unwrap_or_else(|| "-".into()),
                        l.timezone.clone(),
                        l.category_set()
                            .map(|c| c.to_string())
                            .unwrap_or_else(|| "all".into()),
                        flags(l),
                    ]);
                }
                t.print();
            }
        }
        ListsCmd::Show { slug, json } => {
            let l = store.list_by_slug(&slug).await?;
            let (pending, active, unsub) = store.subscription_counts(l.id).await?;
            if json.json {
                let mut v = serde_json::to_value(&l)?;
                v["subscribers"] = serde_json::json!({"pending": pending, "active": active, "unsubscribed": unsub});
                v["next_slots"] = serde_json::json!(
                    next_slots(&l)
                        .iter()
                        .map(chrono::DateTime::to_rfc3339)
                        .collect::<Vec<_>>()
                );
                println!("{}", serde_json::to_string_pretty(&v)?);
            } else {
                println!("list        {}", l.slug);
                println!("name        {}", l.name);
                if !l.description.is_empty() {
                    println!("description {}", l.description);
                }
                println!("schedule    {}", l.schedule.as_deref().unwrap_or("none"));
                println!("timezone    {}", l.timezone);
                match &l.language {
                    Some(_) => println!(
                        "language    {}",
                        l.language_or(ctx.config.publication.language)
                    ),
                    None => println!(
                        "language    {} ([publication] language)",
                        ctx.config.publication.language
                    ),
                }
                println!(
                    "categories  {}",
                    l.category_set()
                        .map(|c| c.to_string())
                        .unwrap_or_else(|| "all".into())
                );
                println!("flags       {}", flags(&l));
                println!("subscribers {active} active, {pending} pending, {unsub} unsubscribed");
                print_next_slots(&l);
            }
        }
        ListsCmd::Update {
            slug,
            opts,
            no_schedule,
            all_categories,
        } => {
            let mut spec = opts.spec();
            if no_schedule {
                spec.schedule = Some(None);
            }
            if all_categories {
                spec.categories = Some(None);
            }
            let l = store.update_list(&slug, &spec).await?;
            println!("updated list {}", l.slug);
            print_next_slots(&l);
        }
        ListsCmd::Delete { slug, force } => {
            let n = store.delete_list(&slug, force).await?;
            if n > 0 {
                println!("deleted list {slug} and its {n} subscription(s)");
            } else {
                println!("deleted list {slug}");
            }
        }
    }
    Ok(Outcome::Ok)
}

fn flags(l: &ListRow) -> String {
    let mut f = Vec::new();
    if l.sends_breaking {
        f.push("breaking");
    }
    if l.double_opt_in {
        f.push("double-opt-in");
    }
    if l.send_empty {
        f.push("send-empty");
    }
    if f.is_empty() {
        "-".into()
    } else {
        f.join(",")
    }
}

fn next_slots(l: &ListRow) -> Vec<chrono::DateTime<chrono_tz::Tz>> {
    let tz = l.tz();
    l.parsed_schedule()
        .map(|s| {
            s.upcoming(Utc::now(), tz, 5)
                .into_iter()
                .map(|t| t.with_timezone(&tz.0))
                .collect()
        })
        .unwrap_or_default()
}

/// Admins see the next sends at once, which catches a wrong crontab line before it matters.
fn print_next_slots(l: &ListRow) {
    // New lines are checked when given, but one stored before a check existed (say
    // `0 7 31 2 *`, which never fires) would otherwise just quietly never send.
    for (problem, mend) in l.stored_problems() {
        eprintln!(
            "warning: list {} {problem}; set a new one with `dispatch lists update {} {mend}`",
            l.slug, l.slug
        );
    }
    let slots = next_slots(l);
    if !slots.is_empty() {
        println!("next sends:");
        for t in slots {
            println!("  {}", t.format("%a %d %b %Y %H:%M %Z"));
        }
    }
}
