//! `rss`: the sending process's peak memory while it sends a 100,000-recipient digest of
//! about 30 KB per message to `smtp-sink`.
//!
//! Target: at most 100 MB peak RSS (`VmHWM` of the child that sends), with every message
//! sent. No outside reference: the bound is what proves the sender streams claims in
//! batches rather than loading the edition's recipients, so the figure must not grow with
//! the list (compare the smtp benchmark's peak at a fifth of the recipients). The step is
//! the smtp benchmark's without `smtp-source`, so nothing else in the process counts.

use anyhow::Result;

use crate::Ctx;
use crate::child;
use crate::setup::{LIST, prepare_send};
use crate::smtp::SendStep;
use crate::table::{Row, Verdict, thousands};
use crate::tools::{self, Tool};

/// Recipients at full scale.
const RECIPIENTS: u64 = 100_000;
/// The target, in MiB.
const TARGET_MB: f64 = 100.0;

pub(crate) async fn run(ctx: &Ctx) -> Result<Vec<Row>> {
    let [sink] = match tools::find_all([Tool::SmtpSink]) {
        Ok(paths) => paths,
        Err(why) => return Ok(Row::skipped("rss", &why)),
    };
    let n = ctx.scale.count(RECIPIENTS);
    let (db, [edition]) = prepare_send(&ctx.dir, n, [LIST]).await?;
    let r = child::spawn(&SendStep {
        db,
        edition,
        n,
        sink,
        reference: None,
    })?;
    let (send, rss) = (r.output.send, r.rss_mb);
    eprintln!(
        "sent {} of {} in {:.1} s ({}/s), peak RSS {rss:.0} MB, CPU {:.1} s",
        send.sent,
        thousands(n as f64),
        send.secs,
        thousands(send.per_sec()),
        r.cpu_secs
    );
    Ok(vec![Row::new(
        "rss",
        format!("≤ 100 MB sending to {}", thousands(n as f64)),
        format!("{rss:.0} MB peak ({}/s)", thousands(send.per_sec())),
        Verdict::of(rss <= TARGET_MB && send.sent == n),
    )])
}
