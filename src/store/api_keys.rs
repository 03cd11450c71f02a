//! API keys: a name, a role and the SHA-256 of the key; never the key itself.

use sqlx::FromRow;

use super::{Result, Store, StoreError, db};
use crate::domain::{ApiKey, DbTime, Role};

/// A key as listed (no hash).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiKeyRow {
    pub id: i64,
    pub name: String,
    pub role: Role,
    pub created_at: DbTime,
    pub revoked_at: Option<DbTime>,
}

#[derive(FromRow)]
struct Raw {
    id: i64,
    name: String,
    role: String,
    created_at: DbTime,
    revoked_at: Option<DbTime>,
}

impl TryFrom<Raw> for ApiKeyRow {
    type Error = StoreError;
    fn try_from(r: Raw) -> Result<Self> {
        // The schema's CHECK admits only the two roles; anything else was edited by hand.
        let role = Role::parse(&r.role).map_err(|e| {
            StoreError::Conflict(format!("api key {:?} has a bad role: {e}", r.name))
        })?;
        Ok(Self {
            id: r.id,
            name: r.name,
            role,
            created_at: r.created_at,
            revoked_at: r.revoked_at,
        })
    }
}

impl Store {
    /// Stores a new key's hash under `name`; a name already used by a key not revoked is a
    /// conflict.
    pub async fn create_api_key(&self, name: &str, role: Role, key: &ApiKey) -> Result<ApiKeyRow> {
        let raw: std::result::Result<Raw, sqlx::Error> = db!(self.writer(), |c| {
            sqlx::query_as(
                "INSERT INTO api_keys (name, role, key_hash, created_at) VALUES ($1, $2, $3, $4)
                 RETURNING id, name, role, created_at, revoked_at",
            )
            .bind(name)
            .bind(role.as_str())
            .bind(key.hash())
            .bind(DbTime::now())
            .fetch_one(c)
            .await
        });
        match raw {
            Ok(r) => r.try_into(),
            Err(sqlx::Error::Database(e)) if e.is_unique_violation() => Err(StoreError::Conflict(
                format!("an API key named {name:?} exists; revoke it first or pick another name"),
            )),
            Err(e) => Err(e.into()),
        }
    }

    /// Every key, revoked ones included, oldest first.
    pub async fn api_keys(&self) -> Result<Vec<ApiKeyRow>> {
        let rows: Vec<Raw> = db!(self.pool(), |c| {
            sqlx::query_as(
                "SELECT id, name, role, created_at, revoked_at FROM api_keys ORDER BY id",
            )
            .fetch_all(c)
            .await
        })?;
        rows.into_iter().map(TryInto::try_into).collect()
    }

    /// Revokes the key named `name`. Returns whether one was revoked.
    pub async fn revoke_api_key(&self, name: &str) -> Result<bool> {
        let n = db!(self.writer(), |c| {
            sqlx::query(
                "UPDATE api_keys SET revoked_at = $1 WHERE name = $2 AND revoked_at IS NULL",
            )
            .bind(DbTime::now())
            .bind(name)
            .execute(c)
            .await
            .affected()
        })?;
        Ok(n > 0)
    }

    /// The key that hashes to `key`'s hash, unless it was revoked.
    pub async fn api_key_by_key(&self, key: &ApiKey) -> Result<Option<ApiKeyRow>> {
        let raw: Option<Raw> = db!(self.pool(), |c| {
            sqlx::query_as(
                "SELECT id, name, role, created_at, revoked_at FROM api_keys
                 WHERE key_hash = $1 AND revoked_at IS NULL",
            )
            .bind(key.hash())
            .fetch_optional(c)
            .await
        })?;
        raw.map(TryInto::try_into).transpose()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::Backend;
    use crate::store::testutil::{store_test, temp_store_on};

    store_test!(keys_are_found_by_hash_until_revoked_and_names_are_reusable_after);
    async fn keys_are_found_by_hash_until_revoked_and_names_are_reusable_after(backend: Backend) {
        let (store, _dir) = temp_store_on(backend).await;
        let key = ApiKey::generate();
        let row = store
            .create_api_key("cms", Role::Editor, &key)
            .await
            .unwrap();
        assert_eq!(row.role, Role::Editor);
        let stored: Vec<u8> = db!(store.pool(), |c| {
            sqlx::query_scalar("SELECT key_hash FROM api_keys")
                .fetch_one(c)
                .await
        })
        .unwrap();
        assert_eq!(stored, key.hash(), "only the hash is stored");
        assert_eq!(
            store.api_key_by_key(&key).await.unwrap().unwrap().name,
            "cms"
        );
        assert!(
            store
                .api_key_by_key(&ApiKey::generate())
                .await
                .unwrap()
                .is_none()
        );
        let again = store
            .create_api_key("cms", Role::Admin, &ApiKey::generate())
            .await;
        assert!(matches!(again, Err(StoreError::Conflict(_))), "{again:?}");
        assert!(store.revoke_api_key("cms").await.unwrap());
        assert!(!store.revoke_api_key("cms").await.unwrap());
        assert!(store.api_key_by_key(&key).await.unwrap().is_none());
        store
            .create_api_key("cms", Role::Admin, &ApiKey::generate())
            .await
            .unwrap();
        let all = store.api_keys().await.unwrap();
        assert_eq!(all.len(), 2);
        assert!(all[0].revoked_at.is_some() && all[1].revoked_at.is_none());
    }
}
