//! `dispatch preview`: the next digest of a list, written to files, nothing recorded.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use chrono::Utc;

use super::{Ctx, Outcome};
use crate::domain::{CategorySet, EditionKind, EmailAddress, Hole, Token};
use crate::edition::{self, DigestPlan};
use crate::mail::mime::{MessageTemplate, Recipient};
use crate::store::ListRow;

/// Stands in for a reader's token in previews: right length, obviously not real.
pub(crate) const PREVIEW_TOKEN: &str = "PREVIEW-NOT-A-REAL-TOK";

/// Options of `preview`.
#[derive(Debug, clap::Args)]
pub struct PreviewArgs {
    /// The list whose next digest to build.
    list: String,
    /// Folder for digest.html, digest.txt and digest.eml.
    #[arg(long, default_value = "preview")]
    out: PathBuf,
    /// Render the digest as this subscriber gets it (their categories and name).
    #[arg(long)]
    subscriber: Option<EmailAddress>,
    /// Open the HTML in the default browser.
    #[arg(long)]
    open: bool,
}

pub(super) async fn run(args: PreviewArgs, ctx: &Ctx) -> Result<Outcome> {
    const _: () = assert!(PREVIEW_TOKEN.len() == Token::LEN);
    let store = ctx.store().await?;
    let list = store.list_by_slug(&args.list).await?;
    let now = Utc::now();
    let plan = edition::plan_digest(&store, &ctx.config, &list, now).await?;
    let (to, name, categories) = match &args.subscriber {
        Some(email) => {
            let s = store.subscriber_by_email(email).await?;
            let subs = store.subscriptions_of(s.id).await?;
            let sub = subs
                .iter()
                .find(|x| x.list == list.slug)
                .with_context(|| format!("{email} is not subscribed to {}", list.slug))?;
            (
                email.clone(),
                s.name,
                sub.categories.as_deref().map(CategorySet::from_stored),
            )
        }
        None => (EmailAddress::parse("reader@example.com")?, None, None),
    };
    print_plan(&list, &plan);
    let Some(rendered) = edition::render_plan(&ctx.config, &list, &plan, categories.as_ref(), now)
    else {
        println!("this reader's categories have no story in the window: they would get no message");
        return Ok(Outcome::Ok);
    };
    if plan.story_count() == 0 && !list.send_empty {
        println!(
            "note: no stories in the window; the list does not send empty digests, so this would be skipped"
        );
    }
    std::fs::create_dir_all(&args.out)
        .with_context(|| format!("creating {}", args.out.display()))?;
    let fill = |h: Hole, html: bool| match h {
        Hole::Token => PREVIEW_TOKEN.to_owned(),
        Hole::Name => name
            .as_deref()
            .map(|n| {
                format!(
                    " {}",
                    if html {
                        crate::mail::mime::html_escape(n)
                    } else {
                        n.to_owned()
                    }
                )
            })
            .unwrap_or_default(),
    };
    let html_path = args.out.join("digest.html");
    write(&html_path, rendered.html.fill(|h| fill(h, true)).as_bytes())?;
    write(
        &args.out.join("digest.txt"),
        rendered.text.fill(|h| fill(h, false)).as_bytes(),
    )?;
    let headers =
        edition::common_headers(&ctx.config, &list, EditionKind::Digest, &rendered.subject);
    let template = MessageTemplate::new(&headers, &rendered.text, &rendered.html);
    let mut eml = Vec::with_capacity(template.size_hint());
    let message_id = crate::mail::mime::message_id(0, 0, template.message_id_domain());
    template.personalise(
        &Recipient {
            to: &to,
            name: name.as_deref(),
            token: PREVIEW_TOKEN,
            message_id: &message_id,
        },
        &mut eml,
    );
    write(&args.out.join("digest.eml"), &eml)?;
    println!("subject: {}", rendered.subject);
    println!(
        "wrote {}/digest.html, digest.txt, digest.eml ({} bytes of HTML)",
        args.out.display(),
        std::fs::metadata(&html_path)?.len()
    );
    if args.open {
        open_in_browser(&html_path);
    }
    Ok(Outcome::Ok)
}

/// Prints the window and the story count per category.
pub(crate) fn print_plan(list: &ListRow, plan: &DigestPlan) {
    let tz = list.tz().0;
    println!(
        "list {}: window {} → {} ({})",
        list.slug,
        plan.window_start.with_timezone(&tz).format("%d %b %H:%M"),
        plan.window_end.with_timezone(&tz).format("%d %b %H:%M %Z"),
        list.timezone
    );
    for s in &plan.sections {
        let total = s.articles.len() + s.more;
        println!(
            "  {:<20} {total} stor{}",
            s.category.as_str(),
            if total == 1 { "y" } else { "ies" }
        );
    }
    println!("  {:<20} {}", "total", plan.story_count());
}

fn write(path: &Path, bytes: &[u8]) -> Result<()> {
    std::fs::write(path, bytes).with_context(|| format!("writing {}", path.display()))
}

fn open_in_browser(path: &Path) {
    let opener = if cfg!(target_os = "macos") {
        "open"
    } else {
        "xdg-open"
    };
    if let Err(e) = std::process::Command::new(opener).arg(path).spawn() {
        eprintln!("could not run {opener} to open {}: {e}", path.display());
    }
}
