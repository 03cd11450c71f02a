//! `articles import`: RSS 2.0, Atom, JSON Feed or JSON Lines, detected from the content.

use std::path::Path;

use anyhow::Result;
use chrono::Utc;

use super::Outcome;
use crate::domain::Category;
use crate::import::feeds;
use crate::intake::{Write, store_records};
use crate::store::Store;

/// Imports a feed file. Items are idempotent on their GUID (or URL); items that cannot be
/// used are reported as `FILE:ITEM: reason` and skipped.
pub(super) async fn import(
    store: &Store,
    file: &Path,
    bytes: &[u8],
    default: &Category,
) -> Result<Outcome> {
    let name = file.display().to_string();
    let (format, items) =
        feeds::parse(bytes, default, Utc::now()).map_err(|e| anyhow::anyhow!("{name}: {e}"))?;
    let stored = store_records(store, items, false, Write::New).await?;
    for e in &stored.rejected {
        eprintln!("{}", e.located(&name, format));
    }
    println!(
        "{name}: {format}: {} added, {} already stored, {} skipped",
        stored.added,
        stored.existing,
        stored.rejected.len()
    );
    Ok(if stored.rejected.is_empty() {
        Outcome::Ok
    } else {
        Outcome::Rejected
    })
}
