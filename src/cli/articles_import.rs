//! Feed import (wired to `crate::import` once merged).
use std::path::Path;

use anyhow::Result;

use super::Outcome;
use crate::domain::Category;
use crate::store::Store;

pub(super) async fn import(
    _store: &Store,
    _file: &Path,
    _bytes: &[u8],
    _default: &Category,
) -> Result<Outcome> {
    anyhow::bail!("not yet wired")
}
