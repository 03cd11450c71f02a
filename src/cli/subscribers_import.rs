//! CSV import and export of subscribers (wired to `crate::import` once merged).
use std::path::Path;

use anyhow::Result;

use super::Outcome;
use crate::store::Store;

pub(super) async fn import(
    _store: &Store,
    _file: &Path,
    _list: &str,
    _dry_run: bool,
) -> Result<Outcome> {
    anyhow::bail!("not yet wired")
}

pub(super) async fn export(
    _store: &Store,
    _list: Option<&str>,
    _output: Option<&Path>,
) -> Result<()> {
    anyhow::bail!("not yet wired")
}
