//! Editions: one send of a list (a digest for a window, or one breaking story).

use serde::Serialize;
use sqlx::FromRow;

use super::{Result, Store};

/// The short form of an edition, for status listings.
#[derive(Debug, Clone, FromRow, Serialize)]
pub struct EditionSummary {
    pub id: i64,
    pub kind: String,
    pub status: String,
    pub subject: String,
    pub article_count: i64,
    pub recipient_count: i64,
    pub created_at: String,
}

impl Store {
    /// The newest edition of a list, if any.
    pub async fn last_edition_summary(&self, list_id: i64) -> Result<Option<EditionSummary>> {
        Ok(sqlx::query_as::<_, EditionSummary>(
            "SELECT id, kind, status, subject, article_count, recipient_count, created_at
             FROM editions WHERE list_id = $1 ORDER BY id DESC LIMIT 1",
        )
        .bind(list_id)
        .fetch_optional(self.pool())
        .await?)
    }
}
