//! Named leases: work one node at a time may do, such as polling one feed.
//!
//! A lease is a row `(name, holder, expires_at)`. Taking it succeeds when nobody holds it,
//! when its holder's time ran out (a crashed node), or when the taker already holds it (a
//! renewal). One statement does it (`INSERT … ON CONFLICT … DO UPDATE … WHERE`), so two
//! nodes racing for it cannot both win, on SQLite or PostgreSQL.

use chrono::Duration;

use super::{Result, Store};
use crate::domain::DbTime;

impl Store {
    /// Takes (or renews) the lease `name` for `holder` until `ttl` from now. Returns whether
    /// `holder` holds it now.
    pub async fn try_lease(&self, name: &str, holder: &str, ttl: Duration) -> Result<bool> {
        let now = DbTime::now();
        let until = DbTime::from(now.utc() + ttl);
        let won: Option<String> = sqlx::query_scalar(
            "INSERT INTO leases (name, holder, expires_at) VALUES ($1, $2, $3)
             ON CONFLICT (name) DO UPDATE SET holder = $2, expires_at = $3
             WHERE leases.holder = $2 OR leases.expires_at <= $4
             RETURNING holder",
        )
        .bind(name)
        .bind(holder)
        .bind(until)
        .bind(now)
        .fetch_optional(self.writer())
        .await?;
        Ok(won.is_some())
    }

    /// Gives the lease `name` back, if `holder` still holds it.
    pub async fn release_lease(&self, name: &str, holder: &str) -> Result<()> {
        sqlx::query("DELETE FROM leases WHERE name = $1 AND holder = $2")
            .bind(name)
            .bind(holder)
            .execute(self.writer())
            .await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::testutil::temp_store;

    #[tokio::test]
    async fn one_holder_at_a_time_until_release_or_expiry() {
        let (store, _dir) = temp_store().await;
        let ttl = Duration::minutes(2);
        assert!(store.try_lease("feed:x", "a", ttl).await.unwrap());
        assert!(!store.try_lease("feed:x", "b", ttl).await.unwrap());
        assert!(
            store.try_lease("feed:x", "a", ttl).await.unwrap(),
            "renewal"
        );
        assert!(store.try_lease("feed:y", "b", ttl).await.unwrap());
        store.release_lease("feed:x", "b").await.unwrap();
        assert!(!store.try_lease("feed:x", "b", ttl).await.unwrap());
        store.release_lease("feed:x", "a").await.unwrap();
        assert!(store.try_lease("feed:x", "b", ttl).await.unwrap());
        // An expired lease is anyone's.
        assert!(
            store
                .try_lease("feed:z", "a", Duration::seconds(-1))
                .await
                .unwrap()
        );
        assert!(store.try_lease("feed:z", "b", ttl).await.unwrap());
    }
}
