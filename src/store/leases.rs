//! Named leases: "one node at a time" for a job every node may run but only one should at
//! once (retention compaction; the feed and SQL-source pollers).
//!
//! A job asks for its lease before each run ([`Store::try_lease`]) and runs only if it got
//! it; the holder's next ask renews it. If the holder dies, its lease runs out and the next
//! node to ask takes it over. Leases are compared with each node's clock, so nodes must keep
//! their clocks in step (NTP) to well within the lease's length, as for sender heartbeats.
//!
//! A lease says who should run a job, not that a run cannot overlap another: a run longer
//! than its lease can meet the next holder's. Jobs whose overlap would be harmful also lock
//! what they change (compaction takes [`Lock::Retention`](super::Lock::Retention)).

use chrono::Duration;
use sqlx::FromRow;

use super::senders::SenderIdentity;
use super::{Result, Store, db};
use crate::domain::DbTime;

/// Who holds a lease: one process, named so an operator can tell which one.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct LeaseHolder(String);

impl LeaseHolder {
    /// The holder name of the process `who`: node, host, process id and start
    /// (`mail-1@mail-1.example:4242:…`), so a restarted process is a new holder.
    pub fn of(who: &SenderIdentity) -> Self {
        Self(format!(
            "{}@{}:{}:{}",
            who.node, who.host, who.pid, who.started
        ))
    }

    /// The holder's name as stored.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A named lease as stored.
#[derive(Debug, Clone, PartialEq, Eq, FromRow)]
pub struct LeaseRow {
    pub name: String,
    pub holder: String,
    pub until: DbTime,
}

impl Store {
    /// Takes the lease `name` for `ttl` from now, or renews it when `holder` has it already.
    /// `true`: the lease is `holder`'s until then; `false`: another holder's lease has not
    /// run out. Any number of nodes may ask at once: one gets it.
    pub async fn try_lease(&self, name: &str, holder: &LeaseHolder, ttl: Duration) -> Result<bool> {
        let now = DbTime::now();
        let until = DbTime::from(now.utc() + ttl);
        // The update applies only when the lease is ours or over, so of two nodes asking at
        // once, the second finds the first one's fresh lease and changes nothing.
        let changed = db!(self.writer(), |c| {
            sqlx::query(
                "INSERT INTO leases (name, holder, until) VALUES ($1, $2, $3)
                 ON CONFLICT (name) DO UPDATE SET holder = excluded.holder, until = excluded.until
                 WHERE leases.holder = excluded.holder OR leases.until <= $4",
            )
            .bind(name)
            .bind(holder.as_str())
            .bind(until)
            .bind(now)
            .execute(c)
            .await
            .affected()
        })?;
        Ok(changed > 0)
    }

    /// Gives the lease up early (at shutdown), so another node need not wait for it to run
    /// out. Returns whether `holder` had it.
    pub async fn release_lease(&self, name: &str, holder: &LeaseHolder) -> Result<bool> {
        let changed = db!(self.writer(), |c| {
            sqlx::query("DELETE FROM leases WHERE name = $1 AND holder = $2")
                .bind(name)
                .bind(holder.as_str())
                .execute(c)
                .await
                .affected()
        })?;
        Ok(changed > 0)
    }

    /// Every lease, by name (held or run out).
    pub async fn leases(&self) -> Result<Vec<LeaseRow>> {
        Ok(db!(self.pool(), |c| {
            sqlx::query_as("SELECT name, holder, until FROM leases ORDER BY name")
                .fetch_all(c)
                .await
        })?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::Backend;
    use crate::store::testutil::{store_test, temp_store_on};

    fn holder(node: &str) -> LeaseHolder {
        LeaseHolder::of(&SenderIdentity {
            host: "h".into(),
            pid: 1,
            started: "s".into(),
            node: node.into(),
        })
    }

    store_test!(a_lease_has_one_holder_until_it_runs_out_or_is_given_up);
    async fn a_lease_has_one_holder_until_it_runs_out_or_is_given_up(backend: Backend) {
        let (store, _d) = temp_store_on(backend).await;
        let (a, b) = (holder("a"), holder("b"));
        let minute = Duration::minutes(1);
        assert!(store.try_lease("job", &a, minute).await.unwrap());
        assert!(
            !store.try_lease("job", &b, minute).await.unwrap(),
            "a holds it"
        );
        assert!(
            store.try_lease("job", &a, minute).await.unwrap(),
            "a renews"
        );
        assert!(
            store.try_lease("other", &b, minute).await.unwrap(),
            "names are separate"
        );
        // A lease that has run out goes to whoever asks next.
        assert!(
            store
                .try_lease("job", &a, Duration::seconds(-1))
                .await
                .unwrap()
        );
        assert!(
            store.try_lease("job", &b, minute).await.unwrap(),
            "a's ran out"
        );
        assert!(!store.try_lease("job", &a, minute).await.unwrap());
        assert!(
            !store.release_lease("job", &a).await.unwrap(),
            "not a's to give"
        );
        assert!(store.release_lease("job", &b).await.unwrap());
        assert!(
            store.try_lease("job", &a, minute).await.unwrap(),
            "given up"
        );
        let rows = store.leases().await.unwrap();
        assert_eq!(rows.len(), 2);
        assert_eq!(rows[0].holder, a.as_str());
    }

    store_test!(
        of_nodes_asking_at_once_exactly_one_gets_the_lease,
        multi_thread
    );
    async fn of_nodes_asking_at_once_exactly_one_gets_the_lease(backend: Backend) {
        let (store, db) = temp_store_on(backend).await;
        // Two handles, as two nodes have: separate pools on the same database.
        let other = db.reopen().await;
        let (a, b) = (holder("a"), holder("b"));
        for round in 0..20 {
            let name = format!("job-{round}");
            let (x, y) = tokio::join!(
                store.try_lease(&name, &a, Duration::minutes(1)),
                other.try_lease(&name, &b, Duration::minutes(1)),
            );
            let won = [x.unwrap(), y.unwrap()];
            assert_eq!(
                won.iter().filter(|w| **w).count(),
                1,
                "round {round}: {won:?}"
            );
        }
    }
}
